"""advaug.evaluation.runner without a training run: the robustness step's split / grid / figure
wiring, checkpoint loading, the run config next to a checkpoint and the test-split check."""

import json
import logging
import os

import pytest
import torch
from conftest import TINY, ConstantNet, compose_config
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from advaug.errors import ConfigError
from advaug.evaluation import runner
from advaug.evaluation.runner import (
    check_test_split,
    evaluate_checkpoint,
    find_run_config,
    load_weights,
    run_robustness,
)


class TinyNet(torch.nn.Module):
    """A 1x1 convolution: two classes, non-zero input gradients (an attack moves the image)."""

    num_classes = 2

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 2, 1)

    def forward(self, x):
        return self.conv(x)


def batches(n_batches, size, seed):
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "image": torch.rand(size, 3, 8, 8, generator=g),
            "mask": (torch.rand(size, 8, 8, generator=g) > 0.5).long(),
        }
        for _ in range(n_batches)
    ]


class Splits:
    """A datamodule with a test split of 2 x 2 images and a val split of 2 x 3 images; ``predict``
    exists (as on a LightningDataModule) but is no split the robustness grid may score."""

    def test_dataloader(self):
        return batches(2, 2, seed=1)

    def val_dataloader(self):
        return batches(2, 3, seed=2)

    def predict_dataloader(self):
        return batches(1, 1, seed=3)


def grid(**extra):
    return OmegaConf.create(
        {
            "methods": ["fgsm"],
            "eps": [0.1],
            "labels": ["true"],
            "pgd_steps": 1,
            "figure": {"num_images": 0},
            **extra,
        }
    )


def test_run_robustness_scores_the_test_split_by_default_and_records_split_and_grid(tmp_path):
    node = grid()
    rows = run_robustness(node, ConstantNet(), Splits(), tmp_path, {"dataset": "toy", "aug": "none"})
    assert [r["images"] for r in rows] == [4, 4]  # the test split (2 x 2), not val (2 x 3)
    meta = json.loads((tmp_path / "robustness.json").read_text())["meta"]
    assert meta["dataset"] == "toy" and meta["aug"] == "none" and meta["split"] == "test"
    assert meta["grid"] == OmegaConf.to_container(node)  # the grid as scored, for the report
    assert not (tmp_path / "figures").exists()  # figure.num_images=0: no Fig. 3-4 grid

    rows = run_robustness(grid(split="val", max_batches=1), ConstantNet(), Splits(), tmp_path / "v", {})
    assert rows[0]["images"] == 3  # the first val batch only
    assert json.loads((tmp_path / "v" / "robustness.json").read_text())["meta"]["split"] == "val"


def test_run_robustness_refuses_a_split_that_is_not_train_val_test_or_all(tmp_path):
    with pytest.raises(ConfigError, match=r"robustness\.split='predict': choose train, val, test or all"):
        run_robustness(grid(split="predict"), ConstantNet(), Splits(), tmp_path, {})

    class TestOnly:
        test_dataloader = Splits.test_dataloader

    with pytest.raises(ConfigError, match=r"robustness\.split='val'"):
        run_robustness(grid(split="val"), ConstantNet(), TestOnly(), tmp_path, {})
    assert not (tmp_path / "robustness.json").exists()


def test_run_robustness_passes_the_grid_on_and_moves_the_model(tmp_path, monkeypatch):
    calls = []
    real = runner.evaluate_robustness

    def spy(model, loader, **kw):
        calls.append(kw)
        return real(model, loader, **kw)

    class Moved(ConstantNet):
        def to(self, *args, **kwargs):
            self.moved_to = args
            return super().to(*args, **kwargs)

    monkeypatch.setattr(runner, "evaluate_robustness", spy)
    model = Moved()
    node = grid(methods=["pgd"], pgd_steps=3, seed=7, precision="bf16", max_batches=1)
    run_robustness(node, model, Splits(), tmp_path, {}, device="cpu")
    assert model.moved_to == ("cpu",)
    (kw,) = calls
    assert (kw["methods"], kw["eps"], kw["labels"]) == (["pgd"], [0.1], ["true"])
    assert (kw["pgd_steps"], kw["seed"], kw["precision"], kw["max_batches"]) == (3, 7, "bf16", 1)
    run_robustness(grid(), ConstantNet(), Splits(), tmp_path, {})  # the defaults: seed 0, fp32, all batches
    assert (calls[1]["seed"], calls[1]["precision"], calls[1]["max_batches"]) == (0, "fp32", None)


@pytest.mark.parametrize("labels", ["TRUE", "pred"])
def test_sample_figure_attacks_the_first_images_with_the_labels_asked_for(tmp_path, monkeypatch, labels):
    from advaug import figures

    drawn, attacked = {}, {}
    real_perturb = runner.perturb

    def perturb(model, x, target, eps, method, **kw):
        attacked.update(target=target.clone(), eps=eps, method=method)
        return real_perturb(model, x, target, eps, method, **kw)

    def sample_grid(x, y, adv, pred, path, title, adv_title, adv_pred):
        drawn.update(x=x, y=y, adv=adv, pred=pred, path=path, title=title, adv_title=adv_title)
        return path

    monkeypatch.setattr(runner, "perturb", perturb)
    monkeypatch.setattr(figures, "sample_grid", sample_grid)
    model = TinyNet()
    model.train()
    figure = {"num_images": 2, "method": "fgsm", "eps": 0.1, "labels": labels}
    run_robustness(
        grid(figure=figure, split="val"), model, Splits(), tmp_path, {"dataset": "toy", "aug": "fgsm"}
    )
    first = Splits().val_dataloader()[0]
    assert torch.equal(drawn["x"], first["image"][:2]) and torch.equal(drawn["y"], first["mask"][:2])
    assert drawn["path"] == tmp_path / "figures" / "samples.png"
    with torch.no_grad():
        pred = model(first["image"][:2]).argmax(1)
    assert torch.equal(drawn["pred"], pred)
    # the attack uses the true mask for "true" (any case), the clean prediction for "pred"
    assert torch.equal(attacked["target"], first["mask"][:2] if labels == "TRUE" else pred)
    assert (attacked["method"], attacked["eps"]) == ("fgsm", 0.1)
    assert (drawn["adv"] - drawn["x"]).abs().max() == pytest.approx(0.1, abs=1e-6)  # the attacked image
    assert drawn["title"] == "toy / model trained with aug=fgsm"
    assert drawn["adv_title"] == f"fgsm eps=0.1 ({labels.lower()} labels)"
    assert model.training  # left in the mode it came in


def test_load_weights_takes_a_lightning_checkpoint_or_a_plain_state_dict(tmp_path):
    source = TinyNet()
    with torch.no_grad():
        source.conv.weight.fill_(0.25)
    torch.save({"state_dict": source.state_dict(), "epoch": 3}, tmp_path / "best.ckpt")
    torch.save(source.state_dict(), tmp_path / "plain.pt")
    for name in ("best.ckpt", "plain.pt"):
        model = load_weights(TinyNet(), tmp_path / name)
        assert torch.equal(model.conv.weight, source.conv.weight), name
    with pytest.raises(ConfigError, match=r"nope\.ckpt: no such file"):
        load_weights(TinyNet(), tmp_path / "nope.ckpt")
    torch.save({"state_dict": {"conv.weight": source.conv.weight}}, tmp_path / "partial.ckpt")
    with pytest.raises(
        RuntimeError, match="Missing key"
    ):  # a checkpoint of another model: no silent partial load
        load_weights(TinyNet(), tmp_path / "partial.ckpt")


class _RunsCode:
    """Unpickling this object runs code (it creates a folder): what weights_only=True refuses."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.makedirs, (self.path,)


def test_load_weights_never_runs_code_pickled_in_a_checkpoint(tmp_path):
    marker = tmp_path / "code_ran"
    torch.save(
        {"state_dict": TinyNet().state_dict(), "extra": _RunsCode(str(marker))}, tmp_path / "evil.ckpt"
    )
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        load_weights(TinyNet(), tmp_path / "evil.ckpt")
    assert not marker.exists()


def test_find_run_config_prefers_the_resolved_config_nearest_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "best.ckpt"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / ".hydra" / "config.yaml").write_text("a: 1\n")
    assert find_run_config(ckpt) == run / ".hydra" / "config.yaml"
    (run / "config_resolved.yaml").write_text("a: 1\n")
    assert find_run_config(ckpt) == run / "config_resolved.yaml"  # resolved first
    (run / "checkpoints" / ".hydra").mkdir()
    (run / "checkpoints" / ".hydra" / "config.yaml").write_text("a: 2\n")
    assert (
        find_run_config(ckpt) == run / "checkpoints" / ".hydra" / "config.yaml"
    )  # the ckpt's own folder first
    explicit = tmp_path / "mine.yaml"
    explicit.write_text("a: 3\n")
    assert find_run_config(ckpt, str(explicit)) == explicit
    with pytest.raises(ConfigError, match=r"run_config=.*nope\.yaml: no such file"):
        find_run_config(ckpt, str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="pass run_config="):
        find_run_config(tmp_path / "elsewhere" / "x" / "best.ckpt")


def _record(folder, **splits):
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "splits.json").write_text(json.dumps(splits))
    return folder / "checkpoints" / "best.ckpt"


def test_check_test_split_counts_train_and_val_images_in_a_changed_test_split(tmp_path, caplog):
    assert check_test_split(tmp_path / "checkpoints" / "best.ckpt", {"test": ["a"]}) is None  # no record
    ckpt = _record(tmp_path / "run", train=[f"t{i}" for i in range(8)], val=["v0", "v1"], test=["a", "b"])
    with caplog.at_level(logging.WARNING):
        assert check_test_split(ckpt, {"test": ["b", "a"]}) == {
            "matches_run": True,
            "images": 2,
            "trained_on": 0,
        }
    assert not caplog.text
    # a test split that is only a part of the run's is not the run's: no image trained on, though
    with caplog.at_level(logging.WARNING):
        assert check_test_split(ckpt, {"test": ["a"]}) == {"matches_run": False, "images": 1, "trained_on": 0}
    assert "its images differ (none was trained on)" in caplog.text
    caplog.clear()
    test = ["a", "v1", "t6", "t5", "t4", "t3", "t2", "t1"]  # 7 trained-on images, val ones included
    with caplog.at_level(logging.WARNING):
        assert check_test_split(ckpt, {"test": test}) == {"matches_run": False, "images": 8, "trained_on": 7}
    assert (
        "7 of its 8 images ('t1', 't2', 't3', 't4', 't5' ...) were in the run's train split or val"
        in caplog.text
    )


@pytest.mark.parametrize(
    "text", ['{"train": ["a"], "test": ["b"]}', "[1, 2]", '{"train": 1, "val": [], "test": []}', "{"]
)
def test_check_test_split_warns_and_gives_up_on_an_unreadable_record(tmp_path, caplog, text):
    ckpt = _record(tmp_path / "run")
    (tmp_path / "run" / "splits.json").write_text(text)
    with caplog.at_level(logging.WARNING):
        assert check_test_split(ckpt, {"test": ["b"]}) is None
    assert "cannot read the run's splits" in caplog.text


EVAL_GRID = ["robustness.methods=[fgsm]", "robustness.eps=[0.01]", "robustness.labels=[pred]",
             "robustness.figure.num_images=0"]  # fmt: skip


@pytest.fixture
def small_run(tmp_path):
    """A run folder as train(cfg) leaves it (config_resolved.yaml, checkpoints/best.ckpt), of a
    1x1-convolution model: evaluate_checkpoint without a training run or a U-Net."""
    cfg = compose_config([f"paths.data_dir={tmp_path / 'data'}", *TINY, "seed=3"], tmp_path / "train")
    with open_dict(cfg):
        cfg.model.net = {"_target_": "torch.nn.Conv2d", "in_channels": 3, "out_channels": 2, "kernel_size": 1}
        del cfg.hydra
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    OmegaConf.save(cfg, run / "config_resolved.yaml", resolve=True)
    model = instantiate(cfg.model)
    torch.save({"state_dict": model.state_dict()}, run / "checkpoints" / "best.ckpt")
    return run


def test_evaluate_checkpoint_records_what_it_scored(small_run, tmp_path):
    ckpt = small_run / "checkpoints" / ".." / "checkpoints" / "best.ckpt"
    rows = evaluate_checkpoint(compose_config([f"ckpt_path={ckpt}", *EVAL_GRID], tmp_path / "ev", "evaluate"))
    assert [r["method"] for r in rows] == ["clean", "fgsm"] and rows[0]["images"] == 4  # the run's test split
    meta = json.loads((tmp_path / "ev" / "run" / "robustness.json").read_text())["meta"]
    assert meta["source"] == "evaluate" and meta["split"] == "test"
    assert meta["ckpt_path"] == str(small_run.resolve() / "checkpoints" / "best.ckpt")  # resolved
    assert (meta["dataset"], meta["aug"], meta["seed"]) == ("synthetic", "none", 3)  # the run's
    assert "test_split" in meta  # the run's own dataset: its test split is checked (no record: None)

    other = [f"paths.data_dir={tmp_path / 'other'}", "dataset=synthetic", "dataset.image_size=32",
             "dataset.generator.num_images=20", "dataset.split={train: 0.5, val: 0.25, test: 0.25}"]  # fmt: skip
    rows = evaluate_checkpoint(
        compose_config([f"ckpt_path={ckpt}", *other, *EVAL_GRID], tmp_path / "ev2", "evaluate")
    )
    assert rows[0]["images"] == 5  # the dataset given on the command line, not the run's
    meta = json.loads((tmp_path / "ev2" / "run" / "robustness.json").read_text())["meta"]
    assert "test_split" not in meta  # another dataset: no run split to compare with


def test_evaluate_checkpoint_needs_a_checkpoint_of_a_model_with_the_datasets_classes(small_run, tmp_path):
    with pytest.raises(ConfigError, match="ckpt_path is required"):
        evaluate_checkpoint(compose_config(EVAL_GRID, tmp_path / "a", "evaluate"))
    three = ["dataset=synthetic", "dataset.num_classes=3", f"paths.data_dir={tmp_path / 'three'}"]
    cfg = compose_config(
        [f"ckpt_path={small_run / 'checkpoints' / 'best.ckpt'}", *three], tmp_path / "b", "evaluate"
    )
    with pytest.raises(ConfigError, match="has num_classes=3 but the checkpoint's model predicts 2"):
        evaluate_checkpoint(cfg)
    assert not (tmp_path / "three").exists()  # refused before any data is made
