"""Pools a producer can remake are left out of checkpoints, and a resumed run remakes them
exactly: same pool, same weights at the end as the uninterrupted run (CPU, deterministic)."""

from types import SimpleNamespace

import albumentations as A
import lightning as L
import pytest
import torch
from test_adversarial_callback import tiny_module

from advaug.augment.pipeline import Pipeline
from advaug.callbacks import RunCheckpoint, TransformPool, adversarial_augmentation
from advaug.callbacks.pool import PoolCallback
from advaug.callbacks.resume_state import ResumeState
from advaug.data import SegmentationDataModule
from advaug.data.pool import SamplePool
from advaug.errors import ConfigError


class PoolLog(L.Callback):
    """A copy of the pool each epoch trains on."""

    def __init__(self):
        self.pools: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_epoch_start(self, trainer, pl_module):
        pool = trainer.datamodule.pool
        self.pools[trainer.current_epoch] = {name: pool.get(name)[0].clone() for name in pool.sources[1:]}


def same_pools(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return sorted(a) == sorted(b) and all(torch.equal(a[name], b[name]) for name in a)


def producers(kind):
    """``flip+pgd``: two producers in one run, one slot left out of checkpoints and one kept."""
    made = []
    for name in kind.split("+"):
        if name == "flip":
            made.append(TransformPool(Pipeline({"flip": A.HorizontalFlip(p=0.5)}, seed=1), seed=1))
        elif name == "fgsm":
            made.append(adversarial_augmentation("fgsm", eps=0.05, figure_samples=0, seed=2))
        else:
            made.append(adversarial_augmentation("pgd", eps=0.05, steps=2, random_start=True,
                                                 figure_samples=0, seed=2))  # fmt: skip
    return made


def fit(root, tmp_path, kind, max_epochs, ckpt_path=None):
    # fgsm on a model with twin BatchNorms (model.aux_norm=affine): their statistics and affine
    # parameters resume too. At 64 pixels, where one adversarial row in a batch can be normalised.
    twin = kind == "fgsm"
    L.seed_everything(0)
    dm = SegmentationDataModule(
        str(root), image_size=64 if twin else 32, batch_size=4, split={"train": 0.5, "val": 0.25, "test": 0.25}
    )
    log = PoolLog()
    every_epoch = RunCheckpoint(dirpath=tmp_path, filename="e{epoch}", auto_insert_metric_name=False, save_top_k=-1,
                                monitor=None, save_on_train_epoch_end=True, best_weights_only=False)  # fmt: skip
    module = tiny_module(aux_norm="affine" if twin else "none")
    trainer = L.Trainer(accelerator="cpu", max_epochs=max_epochs, deterministic=True, logger=False,
                        callbacks=[*producers(kind), ResumeState(), log, every_epoch], enable_progress_bar=False,
                        enable_model_summary=False, reload_dataloaders_every_n_epochs=1, inference_mode=False,
                        num_sanity_val_steps=0, limit_val_batches=0)  # fmt: skip
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=False)
    return log.pools, module.state_dict()


@pytest.mark.parametrize(
    "kind,left_out", [("flip", [True]), ("fgsm", [True]), ("pgd", [False]), ("flip+pgd", [True, False])]
)
def test_resumed_run_remakes_the_pool_the_checkpoint_left_out(phantom_root, tmp_path, kind, left_out):
    pools, weights = fit(phantom_root, tmp_path / "a", kind, max_epochs=3)
    saved = torch.load(tmp_path / "a" / "e0.ckpt", weights_only=True)["SegmentationDataModule"]
    # the epoch-0 checkpoint, written right after the pools for epoch 1 were made: a seeded
    # transform pool and an FGSM pool of those weights are left out; a random-start PGD pool
    # cannot be remade and is kept
    slots = list(saved["pool"]["slots"].values())
    assert [("images" not in slot) for slot in slots] == left_out
    assert [slot.get("left_out", False) for slot in slots] == left_out

    resumed_pools, resumed_weights = fit(
        phantom_root, tmp_path / "b", kind, 3, ckpt_path=tmp_path / "a" / "e0.ckpt"
    )
    assert sorted(resumed_pools) == [1, 2]
    assert all(same_pools(resumed_pools[e], pools[e]) for e in (1, 2))
    assert all(len(resumed_pools[e]) == len(left_out) for e in (1, 2))
    assert all(torch.equal(resumed_weights[k], weights[k]) for k in weights)
    assert any(".aux." in k for k in weights) == (kind == "fgsm")


@pytest.mark.parametrize("kind", ["flip", "fgsm"])
def test_a_finished_run_extended_trains_on_the_pool_its_next_epoch_is_due(phantom_root, tmp_path, kind):
    # the 2-epoch run made no pool after its last epoch; extended to 3 it must make epoch 2's
    # pool as the 3-epoch run did, not train epoch 2 on epoch 1's
    pools, weights = fit(phantom_root, tmp_path / "long", kind, max_epochs=3)
    fit(phantom_root, tmp_path / "short", kind, max_epochs=2)
    extended_pools, extended_weights = fit(
        phantom_root, tmp_path / "ext", kind, 3, ckpt_path=tmp_path / "short" / "e1.ckpt"
    )
    assert sorted(extended_pools) == [2] and same_pools(extended_pools[2], pools[2])
    assert all(torch.equal(extended_weights[k], weights[k]) for k in weights)


def test_a_left_out_pool_nobody_remakes_is_an_error(phantom_root, tmp_path):
    dm = SegmentationDataModule(str(phantom_root), image_size=32, batch_size=4)
    dm.setup("fit")
    dm.pool.put("extra", *dm.train_images(), rebuildable=True)
    state = dm.state_dict()
    assert state == {"pool": {"slots": {"extra": {"left_out": True}}}}
    fresh = SegmentationDataModule(str(phantom_root), image_size=32, batch_size=4)
    fresh.setup("fit")
    fresh.load_state_dict(state)
    with pytest.raises(ConfigError, match="same aug config"):
        fresh.train_dataloader()


def test_a_callback_that_loaded_a_state_fills_afresh_in_its_next_fit(phantom_root, tmp_path):
    # the resume path of on_fit_start belongs to the fit that loaded the state only
    (cb,) = producers("flip")
    cb.load_state_dict({"pool_epoch": 5})
    dm = SegmentationDataModule(str(phantom_root), image_size=32, batch_size=4)

    def fit():
        trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, callbacks=[cb], enable_progress_bar=False,
                            enable_checkpointing=False, enable_model_summary=False, limit_val_batches=0,
                            reload_dataloaders_every_n_epochs=1, num_sanity_val_steps=0)  # fmt: skip
        trainer.fit(tiny_module(), datamodule=dm)

    fit()  # "resumed" with no pool in the checkpoint: none is made
    assert cb.pool_epoch == 5 and len(dm.pool) == 0
    fit()  # a fresh fit: the pool of epoch 0 (dropped after the last epoch: nothing trains on it)
    assert cb.pool_epoch == 0 and cb.fills == 1


# -- PoolCallback bookkeeping with a fake trainer (no fit: fast) ----------------------------------
class CountingPool(PoolCallback):
    """Records the epochs it makes pools for; draws from the global generator like a loader does."""

    rebuildable = True

    def __init__(self, every_n_epochs=1):
        super().__init__(every_n_epochs)
        self.made = []

    def make_pool(self, trainer, pl_module, epoch):
        self.made.append(epoch)
        torch.rand(1)
        return torch.full((1, 3, 2, 2), epoch / 10), torch.zeros(1, 2, 2, dtype=torch.long)


class FakeData:
    """A real SamplePool whose puts record their ``rebuildable`` flag."""

    def __init__(self, pool_left_out=False):
        self.pool, self.rebuildable = SamplePool(), []
        if pool_left_out:
            self.pool.load_state_dict({"slots": {"pool": {"left_out": True}}})
        put = self.pool.put

        def recording_put(name, images, masks, rebuildable=False):
            self.rebuildable.append(rebuildable)
            put(name, images, masks, rebuildable)

        self.pool.put = recording_put


def fake_trainer(data, epoch=0, max_epochs=5):
    return SimpleNamespace(
        datamodule=data,
        current_epoch=epoch,
        max_epochs=max_epochs,
        max_steps=-1,
        global_step=0,
        should_stop=False,
    )


def test_pool_callback_records_its_epochs_and_refills_when_due():
    with pytest.raises(ConfigError, match="every_n_epochs=-1"):
        CountingPool(every_n_epochs=-1)
    cb, data = CountingPool(), FakeData()
    trainer = fake_trainer(data)
    cb.on_fit_start(trainer, None)
    assert cb.made == [0] and data.rebuildable == [True]  # a seeded pool: checkpoints leave it out
    assert cb.state_dict() == {"pool_epoch": 0, "next_epoch": None}
    cb.on_train_epoch_end(trainer, None)
    assert cb.made == [0, 1] and cb.state_dict() == {"pool_epoch": 1, "next_epoch": 1}
    once = CountingPool(every_n_epochs=0)  # fill once, keep it
    once.on_fit_start(trainer, None)
    for epoch in range(3):
        once.on_train_epoch_end(fake_trainer(data, epoch), None)
    assert once.made == [0] and once.state_dict() == {"pool_epoch": 0, "next_epoch": 3}
    every_other = CountingPool(every_n_epochs=2)
    for epoch in range(3):
        every_other.on_train_epoch_end(fake_trainer(data, epoch), None)
    assert every_other.made == [2]


def test_resumed_pool_callback_keeps_remakes_or_makes_the_due_pool():
    # on_fit_start of a resumed run: the loop's epoch is still 0, the callback state says which pool
    restored = CountingPool()
    restored.load_state_dict({"pool_epoch": 1, "next_epoch": 1})
    restored.on_fit_start(fake_trainer(FakeData()), None)
    assert restored.made == []  # the checkpoint held the pool itself
    left_out = CountingPool()
    left_out.load_state_dict({"pool_epoch": 1, "next_epoch": 1})
    rng = torch.get_rng_state()
    left_out.on_fit_start(fake_trainer(FakeData(pool_left_out=True)), None)
    assert left_out.made == [1]  # remade for the checkpoint's pool epoch, not the loop's epoch 0
    assert torch.equal(torch.get_rng_state(), rng)  # as the checkpoint restored it
    extended = CountingPool()  # a finished 2-epoch run made no pool after its last epoch
    extended.load_state_dict({"pool_epoch": 1, "next_epoch": 2})
    extended.on_fit_start(fake_trainer(FakeData(pool_left_out=True)), None)
    assert extended.made == [2] and not torch.equal(torch.get_rng_state(), rng)  # drawn like the longer run
    not_due = CountingPool(every_n_epochs=2)  # epoch 1 keeps epoch 0's pool
    not_due.load_state_dict({"pool_epoch": 0, "next_epoch": 1})
    not_due.on_fit_start(fake_trainer(FakeData()), None)
    assert not_due.made == []
    no_epoch = CountingPool()  # nothing recorded to remake: the datamodule names the problem
    no_epoch.load_state_dict({"pool_epoch": None, "next_epoch": None})
    no_epoch.on_fit_start(fake_trainer(FakeData(pool_left_out=True)), None)
    assert no_epoch.made == []
    no_epoch.teardown(None, None, "fit")  # a later fit of the same callback starts afresh
    no_epoch.on_fit_start(fake_trainer(FakeData()), None)
    assert no_epoch.made == [0]
