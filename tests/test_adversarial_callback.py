"""The adversarial augmentation callback: pool contents and size, schedule, loss direction,
free mode, figures, end-to-end run through train(cfg), and bad input."""

from __future__ import annotations

import csv
import json

import lightning as L
import pytest
import segmentation_models_pytorch as smp
import torch
from conftest import ConstantNet, compose_config, slot

from advaug import attacks
from advaug.callbacks import adversarial_augmentation
from advaug.callbacks.adversarial_base import choose_indices, gather_rows
from advaug.callbacks.adversarial_base import generator_for as _generator
from advaug.data import SegmentationDataModule
from advaug.errors import ConfigError
from advaug.figures import adversarial_grid, amplified_difference
from advaug.models import SegmentationModule
from advaug.training import train


def tiny_module(classes: int = 2, seed: int = 0, **options) -> SegmentationModule:
    torch.manual_seed(seed)
    net = smp.create_model(
        "Unet",
        encoder_name="resnet18",
        encoder_weights=None,
        classes=classes,
        decoder_channels=[32, 16, 16, 8, 8],
    )
    return SegmentationModule(
        net, num_classes=2, optimizer=lambda params: torch.optim.Adam(params, lr=1e-3), **options
    )


def datamodule(root) -> SegmentationDataModule:
    # 16 phantoms -> 8 train, 4 val, 4 test
    return SegmentationDataModule(
        root=str(root), image_size=32, batch_size=4, split={"train": 0.5, "val": 0.25, "test": 0.25}
    )


def trainer(tmp_path, callbacks, max_epochs=1, **kw) -> L.Trainer:
    kw.setdefault("logger", False)
    return L.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        reload_dataloaders_every_n_epochs=1,
        inference_mode=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=str(tmp_path),
        **kw,
    )


class Recorder(L.Callback):
    """The sample indices of every training batch, per epoch (clean >= 0, pool < 0)."""

    def __init__(self):
        self.batches: dict[int, list[torch.Tensor]] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.batches.setdefault(trainer.current_epoch, []).append(batch["index"].cpu())


class PoolAtEpochStart(L.Callback):
    """The pool (float images, masks) each epoch trains on."""

    def __init__(self):
        self.pools: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_epoch_start(self, trainer, pl_module):
        self.pools[trainer.current_epoch] = slot(trainer.datamodule, "adversarial")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A UNet trained briefly (3 epochs on 8 phantoms) and its data."""
    root = tmp_path_factory.mktemp("syn")
    from advaug.data.synthetic import SyntheticPhantomGenerator

    SyntheticPhantomGenerator(num_images=16, size=32, seed=0).ensure(root)
    module = tiny_module()
    L.seed_everything(0)
    trainer(root.parent, [], max_epochs=3).fit(module, datamodule=datamodule(root))
    return module, root


def test_pool_size_schedule_and_mixed_batches(phantom_root, tmp_path):
    cb = adversarial_augmentation(
        "fgsm", eps=0.05, start_epoch=1, every_n_epochs=2, fraction=0.5, figure_samples=0
    )
    rec, dm = Recorder(), datamodule(phantom_root)
    L.seed_everything(0)
    trainer(tmp_path, [cb, rec], max_epochs=4).fit(tiny_module(), datamodule=dm)
    # fresh pools for epochs 1 and 3 only (start_epoch=1, every 2 epochs); the pool of 1 persists into 2
    assert [h["epoch"] for h in cb.history] == [1, 3]
    assert all(h["adv/num_samples"] == 4 for h in cb.history)  # 0.5 x 8 train images
    assert len(dm.pool) == 4  # epoch 4 would reuse the pool of 3 (every 2 epochs): kept
    seen = {e: torch.cat(b) for e, b in rec.batches.items()}
    assert len(seen[0]) == 8 and (seen[0] >= 0).all()  # epoch 0: clean only
    for epoch in (1, 2, 3):
        assert len(seen[epoch]) == 12 and int((seen[epoch] < 0).sum()) == 4
    mixed = [b for e in (1, 2, 3) for b in rec.batches[e] if (b < 0).any() and (b >= 0).any()]
    assert mixed, "no batch mixed clean and adversarial samples"
    assert cb.state_dict()["pool_epoch"] == 3 and cb.state_dict()["next_epoch"] == 4


def test_pool_is_fgsm_of_current_weights_and_changes_loss(trained, tmp_path):
    module, root = trained
    for method, raises in (("fgsm", True), ("invfgsm", False)):
        cb = adversarial_augmentation(method, eps=0.03, eps_sampling="fixed", figure_samples=2)
        dm, seen = datamodule(root), PoolAtEpochStart()
        t = trainer(
            tmp_path / method,
            [cb, seen],
            logger=L.pytorch.loggers.CSVLogger(str(tmp_path / method)),
            limit_train_batches=1,
        )
        weights = {k: v.clone() for k, v in module.state_dict().items()}
        t.fit(module, datamodule=dm)  # pool made in on_fit_start from the trained weights
        change = cb.history[0]["adv/loss_change"]
        assert (change > 0) == raises, (method, cb.history[0])
        assert cb.history[0]["adv/loss_adv"] == pytest.approx(cb.history[0]["adv/loss_clean"] + change)
        # the pool equals attacks.py applied to the train split with the weights of that moment
        module.load_state_dict(weights)
        images, masks = dm.train_images()
        expected = attacks.perturb(module, images, masks, 0.03, "fgsm" if raises else "invfgsm")
        assert torch.equal(seen.pools[0]["images"], expected.images)
        assert torch.equal(seen.pools[0]["masks"], masks)
        # after the last epoch nothing trains on the pool: the final checkpoint does not carry it
        assert len(dm.pool) == 0 and dm.state_dict() == {"pool": {"slots": {"adversarial": {"left_out": False}}}}
        assert (tmp_path / method / "figures" / "adv_epoch000.png").stat().st_size > 1000
        rows = list(csv.DictReader(open(next((tmp_path / method).rglob("metrics.csv")))))
        logged = [float(r["adv/loss_change"]) for r in rows if r.get("adv/loss_change")]
        assert logged and logged[0] == pytest.approx(change)
        assert 0.0 <= cb.history[0]["adv/zero_grad_frac"] < 0.5


def test_free_mode_fills_pool_from_training_gradient(phantom_root, tmp_path):
    eps = 0.02
    cb = adversarial_augmentation("fgsm", eps=eps, eps_sampling="fixed", mode="free", figure_samples=2)
    rec, dm = Recorder(), datamodule(phantom_root)
    L.seed_everything(0)
    trainer(tmp_path, [cb, rec], max_epochs=2).fit(tiny_module(), datamodule=dm)
    assert [h["epoch"] for h in cb.history] == [1] and len(dm.pool) == 8
    assert int((torch.cat(rec.batches[1]) < 0).sum()) == 8  # epoch 1 trains on the collected copies
    pool = slot(dm, "adversarial")["images"]
    clean, masks = dm.train_images()
    # every pool image is a clean training image moved by at most eps, most pixels by exactly eps
    match = [int(((pool[i] - clean).flatten(1).abs().amax(1) <= eps + 1e-6).nonzero()[0]) for i in range(8)]
    assert sorted(match) == list(range(8))
    assert torch.equal(slot(dm, "adversarial")["masks"], masks[match])
    moved = (pool - clean[match]).abs()
    assert (moved[(clean[match] > eps) & (clean[match] < 1 - eps)] - eps).abs().max() < 1e-6
    assert (tmp_path / "figures" / "adv_epoch001.png").is_file()


@pytest.mark.parametrize("mode", ["free", "regenerate"])
def test_no_loss_statistics_and_no_figure(phantom_root, tmp_path, mode):
    # loss_stats_samples=0 and figure_samples=0: the pool is still made, the loss change is NaN
    cb = adversarial_augmentation("fgsm", mode=mode, loss_stats_samples=0, figure_samples=0)
    dm = datamodule(phantom_root)
    trainer(tmp_path, [cb], max_epochs=3).fit(tiny_module(), datamodule=dm)
    assert [h["adv/num_samples"] for h in cb.history][-1] == 8
    assert len(dm.pool) == (8 if mode == "free" else 0)  # regenerate drops the pool after the last epoch
    assert all(h["adv/loss_change"] != h["adv/loss_change"] for h in cb.history)  # NaN: not measured
    assert not (tmp_path / "figures").exists()


def test_free_mode_keeps_exactly_the_chosen_clean_rows_when_pool_rows_are_in_the_batches(
    phantom_root, tmp_path
):
    # epoch 1 trains on clean + the pool from epoch 0, collecting for epoch 2 with fraction 0.5:
    # only the chosen *clean* rows may land in the new pool, each once, with its own mask
    eps = 0.02
    cb = adversarial_augmentation("fgsm", eps=eps, eps_sampling="fixed", mode="free", fraction=0.5, seed=5)
    dm = datamodule(phantom_root)
    L.seed_everything(0)
    trainer(tmp_path, [cb], max_epochs=3).fit(tiny_module(), datamodule=dm)
    assert [h["epoch"] for h in cb.history] == [1, 2]
    clean, masks = dm.train_images()
    chosen = choose_indices(len(clean), 0.5, 5, 2).tolist()
    pool = slot(dm, "adversarial")["images"]
    assert len(pool) == len(chosen)
    match = [
        int(((pool[i] - clean).flatten(1).abs().amax(1) <= eps + 1e-6).nonzero()[0]) for i in range(len(pool))
    ]
    assert sorted(match) == chosen
    assert torch.equal(slot(dm, "adversarial")["masks"].long(), masks[match])


def test_train_end_to_end_with_aug_fgsm(tmp_path, tiny_overrides):
    cfg = compose_config(
        [
            *tiny_overrides,
            "trainer.max_epochs=2",
            "aug=fgsm",
            "aug.eps=0.0118",
            "aug.fraction=0.5",
            "robustness.enabled=false",
        ],
        tmp_path,
    )
    assert cfg.aug.callbacks.adversarial.eps == 0.0118 and cfg.aug.name == "fgsm"
    metrics = train(cfg)
    out = tmp_path / "run"
    assert json.loads((out / "metrics.json").read_text())["aug"] == "fgsm"
    assert [r["train/samples"] for r in metrics["history"][1:]] == [12, 12]  # 8 clean + 4 adversarial
    assert sorted(p.name for p in (out / "figures").glob("adv_*")) == ["adv_epoch000.png", "adv_epoch001.png"]


@pytest.mark.parametrize("choice", ["invfgsm", "pgd", "invpgd"])
def test_configs_build_the_callback(tmp_path, choice):
    cfg = compose_config([f"aug={choice}", "aug.mode=regenerate", "aug.labels=pred", "seed=7"], tmp_path)
    from hydra.utils import instantiate

    cb = instantiate(cfg.aug.callbacks.adversarial)
    assert (cb.method, cb.eps, cb.eps_sampling, cb.labels, cb.seed) == (choice, 0.1, "uniform", "pred", 7)
    assert cfg.aug.transform is None


@pytest.mark.parametrize(
    "choice, overrides, random_start",
    [
        ("fgsm", [], False),  # the paper's step: the pool is a function of the weights
        ("fgsm", ["aug.random_start=true"], True),  # fast FGSM (Wong et al. 2020)
        ("invfgsm", ["aug.random_start=true"], True),
        ("pgd", [], True),  # Madry et al.'s start, as before the key existed
        ("invpgd", ["aug.random_start=false"], False),
    ],
)
def test_random_start_reaches_the_callback_and_decides_rebuildable(tmp_path, choice, overrides, random_start):
    from hydra.utils import instantiate

    cfg = compose_config([f"aug={choice}", *overrides], tmp_path)
    cb = instantiate(cfg.aug.callbacks.adversarial)
    assert cb.random_start is random_start
    assert cb.rebuildable is not random_start  # a random draw cannot be remade from a checkpoint


def test_fgsm_random_start_pool_draws_from_the_seeded_global_generator(trained):
    module, root = trained
    dm = datamodule(root)
    dm.setup("fit")
    fake = type("FakeTrainer", (), {"datamodule": dm, "global_rank": 0, "world_size": 1, "progress_bar_callback": None, "is_global_zero": True})()

    def pool(seed, **kw):
        cb = adversarial_augmentation("invfgsm", eps=0.03, eps_sampling="fixed", figure_samples=0, **kw)
        torch.manual_seed(seed)
        return cb.make_pool(fake, module, epoch=0)[0]

    images, masks = dm.train_images()
    torch.manual_seed(5)
    expected = attacks.invfgsm(module, images, masks, 0.03, random_start=True)
    assert torch.equal(pool(5, random_start=True), expected)
    assert torch.equal(pool(5, random_start=True), pool(5, random_start=True))
    assert not torch.equal(pool(5, random_start=True), pool(6, random_start=True))
    assert torch.equal(pool(5), attacks.invfgsm(module, images, masks, 0.03))  # no draw without it


def test_free_mode_refuses_a_random_start(tmp_path):
    from hydra.utils import instantiate

    from advaug.run.entry import user_error

    cfg = compose_config(["aug=invfgsm", "aug.mode=free", "aug.random_start=true"], tmp_path)
    with pytest.raises(Exception) as info:  # Hydra wraps the constructor's error
        instantiate(cfg.aug.callbacks.adversarial)
    error = user_error(info.value)
    assert isinstance(error, ConfigError)
    assert str(error).startswith("aug.mode=free with aug.random_start=true: free mode reuses the training")
    for random_start in (None, False):  # the default and an explicit no are fine
        assert adversarial_augmentation("fgsm", mode="free", random_start=random_start).method == "fgsm"


def test_bad_input_is_one_clear_error(phantom_root, tmp_path):
    for kwargs, message in [
        ({"eps": -0.1}, "aug.eps"),
        ({"eps": 1.5}, "aug.eps"),
        ({"method": "deepfool"}, "aug.method"),
        ({"fraction": 0.0}, "aug.fraction"),
        ({"fraction": 1.5}, "aug.fraction"),
        ({"mode": "online"}, "aug.mode"),
        ({"labels": "gt"}, "aug.labels"),
        ({"method": "pgd", "mode": "free"}, "single-step"),
    ]:
        with pytest.raises(ConfigError, match=message):
            adversarial_augmentation(**kwargs)
    module = tiny_module()
    module.net = tiny_module(classes=1).net  # a net with one output channel
    with pytest.raises(ConfigError, match="single output channel"):
        trainer(tmp_path, [adversarial_augmentation()]).fit(module, datamodule=datamodule(phantom_root))
    with pytest.raises(ConfigError, match="reload_dataloaders_every_n_epochs"):
        t = L.Trainer(
            accelerator="cpu",
            max_epochs=1,
            callbacks=[adversarial_augmentation()],
            logger=False,
            enable_checkpointing=False,
            default_root_dir=str(tmp_path),
        )
        t.fit(tiny_module(), datamodule=datamodule(phantom_root))


def test_helpers_schedule_choice_and_gather():
    a, b = choose_indices(10, 0.3, 1, 4), choose_indices(10, 0.3, 1, 4)
    assert torch.equal(a, b) and len(a) == 3 and len(a.unique()) == 3
    assert len(choose_indices(3, 0.01, 0, 0)) == 1  # at least one sample

    class TwoRanks:  # simulates all_gather of rank 0 holding `mine` and rank 1 holding `other`
        world_size = 2

        def __init__(self, other):
            self.other, self.strategy = other, self

        def all_gather(self, t):
            if t.dtype == torch.long and t.shape == (1,):
                return torch.stack([t, torch.tensor([len(self.other)])])
            pad = t.new_zeros(t.shape)
            pad[: len(self.other)] = self.other
            return torch.stack([t, pad])

    mine, other = torch.arange(6.0).view(3, 2), torch.full((1, 2), -1.0)
    assert torch.equal(gather_rows(TwoRanks(other), mine), torch.cat([mine, other]))


def test_figure_grid(tmp_path):
    x = torch.rand(3, 3, 16, 16)
    adv = (x + 0.01 * torch.randn_like(x).sign()).clamp(0, 1)
    masks = (torch.rand(3, 16, 16) > 0.5).long()
    diff = amplified_difference(x, adv)
    assert diff.shape == x.shape and diff.min() >= 0 and diff.max() <= 1
    assert diff.flatten(1).sub(0.5).abs().amax(1).min() == pytest.approx(0.5)  # peak change fills the range
    path = adversarial_grid(x, masks, adv, tmp_path / "f" / "grid.png", preds=masks, max_samples=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_only_every_n_epochs(tmp_path, tiny_overrides):
    cfg = compose_config(
        [*tiny_overrides, "trainer.max_epochs=3", "aug=invfgsm", "aug.figure_every_n_epochs=2"]
        + ["robustness.enabled=false", "test=false"],
        tmp_path,
    )
    train(cfg)
    figures = sorted(p.name for p in (tmp_path / "run" / "figures").glob("adv_*"))
    assert figures == ["adv_epoch000.png", "adv_epoch002.png"]  # pools for epochs 0, 1, 2; figures 0, 2
    with pytest.raises(ConfigError, match="figure_every_n_epochs"):
        adversarial_augmentation(figure_every_n_epochs=0)


class StopAtOnce(L.Callback):
    """Asks the trainer to stop after every epoch (as early stopping would)."""

    def on_train_epoch_end(self, trainer, pl_module):
        trainer.should_stop = True


@pytest.mark.parametrize("mode", ["regenerate", "free"])
def test_pools_go_on_while_min_epochs_overrules_a_stop_request(phantom_root, tmp_path, mode):
    # Lightning ignores should_stop until min_epochs are done: those epochs still get fresh pools
    # (they used to train on no pool, regenerate, or a stale one, free)
    cb = adversarial_augmentation("fgsm", eps=0.03, mode=mode, figure_samples=0, loss_stats_samples=0)
    rec = Recorder()
    t = trainer(tmp_path, [StopAtOnce(), cb, rec], max_epochs=4, min_epochs=3)
    t.fit(tiny_module(), datamodule=datamodule(phantom_root))
    assert sorted(rec.batches) == [0, 1, 2]  # the stop is honoured after epoch 2
    pool_rows = {e: sum(int((b < 0).sum()) for b in bs) for e, bs in rec.batches.items()}
    expected = [0, 1, 2] if mode == "regenerate" else [1, 2]
    assert [h["epoch"] for h in cb.history] == expected
    assert all(pool_rows[e] == 8 for e in expected)


def test_no_pool_for_an_epoch_max_steps_never_reaches(phantom_root, tmp_path):
    cb = adversarial_augmentation("fgsm", eps=0.03, figure_samples=0, loss_stats_samples=0)
    t = trainer(tmp_path, [cb], max_epochs=5, max_steps=6)  # 4 steps per epoch: ends in epoch 1
    dm = datamodule(phantom_root)
    t.fit(tiny_module(), datamodule=dm)
    assert t.global_step == 6 and [h["epoch"] for h in cb.history] == [0, 1]
    assert len(dm.pool) == 0  # the last pool is dropped, as after max_epochs


class FakeTrainer:
    """What the callback's hooks read from a single-device Trainer, without running a fit."""

    global_rank, world_size, is_global_zero, global_step = 0, 1, True, 0
    max_epochs, max_steps, should_stop, num_training_batches = 10, -1, False, 1
    progress_bar_callback = None  # no terminal bar in tests

    def __init__(self, dm, root, epoch=0):
        self.datamodule, self.default_root_dir, self.current_epoch, self.loggers = dm, str(root), epoch, []


def test_train_mode_attack_with_sync_batchnorm_under_ddp_is_refused(phantom_root, tmp_path):
    # ranks attack different numbers of batches; a train-mode SyncBatchNorm forward waits for all
    dm = datamodule(phantom_root)
    dm.setup("fit")
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(tiny_module())
    ddp = FakeTrainer(dm, tmp_path)
    ddp.world_size = 2
    cb = adversarial_augmentation("fgsm", use_eval_mode=False, figure_samples=0)
    with pytest.raises(ConfigError, match="sync_batchnorm"):
        cb.on_fit_start(ddp, synced)
    for trainer_, module, eval_mode in [
        (ddp, synced, True),  # eval mode: BatchNorm does not synchronise
        (ddp, tiny_module(), False),  # plain BatchNorm: each rank on its own
        (FakeTrainer(dm, tmp_path), synced, False),  # one process: nothing to wait for
    ]:
        cb = adversarial_augmentation("fgsm", use_eval_mode=eval_mode, figure_samples=0)
        cb.check_sync_batchnorm(trainer_, module)


def test_chosen_samples_change_with_the_epoch():
    chosen = [choose_indices(100, 0.2, 0, epoch) for epoch in range(3)]
    assert not torch.equal(chosen[0], chosen[1]) and not torch.equal(chosen[1], chosen[2])
    assert len(choose_indices(7, 0.5, 0, 0)) == 4  # round(3.5), not int(3.5)


def test_regenerate_pred_labels_per_sample_eps_keeps_true_masks_and_logs(trained, tmp_path):
    # labels=pred: the attack differentiates against the prediction, the pool keeps the true masks;
    # each sample keeps its own uniform eps across attack batches of 1
    module, root = trained
    module.eval()
    dm = datamodule(root)
    dm.setup("fit")
    cb = adversarial_augmentation("fgsm", eps=0.1, labels="pred", fraction=0.5, attack_batch_size=1,
                                 seed=3, loss_stats_samples=1, figure_samples=0)  # fmt: skip
    cb._fill(FakeTrainer(dm, tmp_path), module, 2)
    chosen = choose_indices(8, 0.5, 3, 2)
    clean, masks = dm.train_images(chosen)
    pool = slot(dm, "adversarial")
    assert torch.equal(pool["masks"], masks)
    eps = attacks.sample_eps(0.1, 4, "uniform", _generator(4, 2))
    inner = (clean > 0.1) & (clean < 0.9)
    for i in range(4):
        moved = (pool["images"][i] - clean[i])[inner[i]].abs()
        assert moved.max() == pytest.approx(float(eps[i]), abs=1e-6), i
        expected = attacks.fgsm(
            module, clean[i : i + 1], attacks.predicted_labels(module, clean[i : i + 1]), eps[i]
        )
        assert torch.allclose(pool["images"][i], expected[0], atol=1e-6)
    assert cb.history[-1]["adv/num_samples"] == 4.0  # the pool, not the 1 loss-statistics sample
    # a model with no input gradient: the logged share is 1 (a sample mean over attack batches)
    cb = adversarial_augmentation("fgsm", eps=0.1, fraction=0.5, attack_batch_size=3, figure_samples=0)
    cb._fill(FakeTrainer(dm, tmp_path), ConstantNet(), 0)
    assert cb.history[-1]["adv/zero_grad_frac"] == 1.0


@pytest.mark.parametrize("method,sign", [("fgsm", 1), ("invfgsm", -1)])
def test_free_mode_hooks_direction_clamp_schedule_and_pool_rows(phantom_root, tmp_path, method, sign):
    dm = datamodule(phantom_root)
    dm.setup("fit")
    clean, masks = dm.train_images()
    cb = adversarial_augmentation(method, eps=0.1, eps_sampling="fixed", mode="free", start_epoch=2,
                                 loss_stats_samples=0, figure_samples=0)  # fmt: skip
    module, trainer_ = ConstantNet(), FakeTrainer(dm, tmp_path)
    grad = torch.randn(10, *clean.shape[1:], generator=torch.Generator().manual_seed(0))
    grad[:, :, :8] = 0  # a quarter of every clean row has no gradient
    grad[8:] = 0  # two rows of the previous pool (index < 0) in the batch: no gradient at all
    for epoch in (0, 1):  # start_epoch=2: epoch 0 collects nothing, epoch 1 collects the pool of 2
        trainer_.current_epoch = epoch
        cb.on_train_epoch_start(trainer_, module)
        batch = {"image": torch.cat([clean, clean[:2]]).clone(), "mask": torch.cat([masks, masks[:2]]),
                 "index": torch.cat([torch.arange(8), torch.tensor([-1, -2])])}  # fmt: skip
        cb.on_train_batch_start(trainer_, module, batch, 0)
        if batch["image"].requires_grad:
            batch["image"].grad = grad.clone()
        cb.on_train_batch_end(trainer_, module, None, batch, 0)
        cb.on_train_epoch_end(trainer_, module)
        assert [h["epoch"] for h in cb.history] == ([] if epoch == 0 else [2])
    pool = slot(dm, "adversarial")
    expected = (clean + sign * 0.1 * grad[:8].sign()).clamp(0, 1)
    assert torch.allclose(pool["images"], expected, atol=1e-6) and torch.equal(pool["masks"], masks)
    assert cb.history[0]["adv/zero_grad_frac"] == pytest.approx(0.25)  # the clean rows only


@pytest.mark.parametrize("num_classes,dtype", [(2, torch.uint8), (256, torch.uint8), (300, torch.long)])
def test_free_mode_holds_mask_slots_as_uint8_when_the_class_ids_fit(
    phantom_root, tmp_path, num_classes, dtype
):
    # uint8 slots: an eighth of the bytes copied to the host at each epoch's end
    dm = datamodule(phantom_root)
    dm.setup("fit")
    clean, masks = dm.train_images()
    cb = adversarial_augmentation("fgsm", eps=0.1, eps_sampling="fixed", mode="free", loss_stats_samples=2,
                                 figure_samples=0)  # fmt: skip
    module, trainer_ = ConstantNet(), FakeTrainer(dm, tmp_path)
    module.num_classes = num_classes
    trainer_.current_epoch = 0
    cb.on_train_epoch_start(trainer_, module)
    batch = {"image": clean.clone(), "mask": masks.clone(), "index": torch.arange(len(clean))}
    cb.on_train_batch_start(trainer_, module, batch, 0)
    batch["image"].grad = torch.ones_like(clean)
    cb.on_train_batch_end(trainer_, module, None, batch, 0)
    assert cb._buffer["mask"].dtype == dtype
    cb.on_train_epoch_end(trainer_, module)
    assert torch.equal(slot(dm, "adversarial")["masks"].long(), masks)
    assert cb.history[-1]["adv/loss_adv"] == cb.history[-1]["adv/loss_adv"]  # long targets: not NaN
