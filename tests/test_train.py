"""End-to-end: train(cfg) on tiny synthetic data, and src/train.py as a user runs it."""

import csv
import json
import math

import pytest
from conftest import FIVE_STAGES, compose_config, run_entry_script

from advaug.metric_keys import PER_IMAGE_FIELDS
from advaug.run.sweep import objective
from advaug.training import train


def test_one_epoch_run_writes_metrics_and_checkpoints(tiny_cfg, tmp_path):
    metrics = train(tiny_cfg)
    out = tmp_path / "run"
    written = json.loads((out / "metrics.json").read_text())
    assert written["status"] == "completed" and written["test"] == metrics["test"]
    assert [r["epoch"] for r in written["history"]] == [0, 1]  # validated before training
    assert {"val/miou", "val/iou_fg", "val/dice", "val/miou_img"} <= set(written["history"][0])
    assert 0.0 <= written["test"]["test/miou"] <= 1.0
    assert (out / "checkpoints" / "best.ckpt").is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    assert (out / "csv" / "metrics.csv").is_file()
    assert (out / "config_resolved.yaml").is_file()
    assert written["splits"] == {"train": 8, "val": 4, "test": 4}
    # the ids of each split, in splits.json's own format: a seeded split is recorded with the run
    # (copy it to <root>/splits.json to freeze it; evaluate.py checks its test split against it)
    split_ids = json.loads((out / "splits.json").read_text())
    assert {k: len(v) for k, v in split_ids.items()} == written["splits"]
    assert len(set().union(*split_ids.values())) == 16
    env = written["environment"]  # provenance for reports: where and with what this ran
    assert env["device"].startswith("cpu") and env["precision"] == "32-true" and env["torch"]
    assert env["commit"] is None or len(env["commit"]) >= 7
    # one row per test image, named by its id (the paired tests of the report pair on it)
    with open(out / "per_image.csv") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == list(PER_IMAGE_FIELDS)
    assert sorted(r["id"] for r in rows) == sorted(split_ids["test"])
    assert all(0 <= float(r["miou"]) <= 1 and float(r["hd95"]) >= 0 for r in rows)
    assert sum(int(r["mask_pixels"]) for r in rows) > 0
    # the sweeper's objective is the validation score the checkpoint was chosen by, not a test score
    assert objective(metrics) == written["best_val_miou"] is not None


def test_the_sweep_objective_is_validation_and_a_failure_is_minus_inf():
    assert objective({"best_val_miou": 0.7, "test": {"test/miou": 0.9}}) == 0.7
    assert objective(None) == -math.inf  # a failed sweep job: run_entry returned None
    assert objective({"status": "completed", "best_val_miou": None}) == -math.inf
    assert objective({"best_val_miou": math.nan}) == -math.inf  # a diverged run scores worst, not NaN


def test_keep_last_false_deletes_last_ckpt_once_the_run_completed(tmp_path, tiny_overrides):
    overrides = [
        "trainer.max_epochs=2",
        "robustness.enabled=false",
        "callbacks.model_checkpoint.keep_last=false",
    ]
    cfg = compose_config([*tiny_overrides, *overrides], tmp_path)
    metrics = train(cfg)
    run = tmp_path / "run"
    assert metrics["status"] == "completed" and metrics["test"]  # tested with the best file first
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt"]
    assert metrics["best_model_path"] == str(run / "checkpoints" / "best.ckpt")


def test_training_reduces_loss(tmp_path, tiny_overrides):
    cfg = compose_config(
        [*tiny_overrides, *FIVE_STAGES, "trainer.max_epochs=3", "dataset.generator.num_images=24", "test=false"], tmp_path
    )
    history = train(cfg)["history"]
    losses = [r["train/loss"] for r in history if "train/loss" in r]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert history[-1]["val/loss"] < history[0]["val/loss"]
    assert all(r["train/img_per_s"] > 0 for r in history[1:])


def test_epoch_train_loss_is_the_mean_of_the_step_losses(tmp_path, tiny_overrides):
    # the epoch loss is accumulated on the device (not via self.log every step): check it against
    # the step losses the CSV logger wrote with log_every_n_steps=1 (equal batches: plain mean)
    import csv

    cfg = compose_config(
        [*tiny_overrides, "trainer.max_epochs=2", "trainer.log_every_n_steps=1", "test=false"], tmp_path
    )
    history = train(cfg)["history"]
    rows = list(csv.DictReader(open(tmp_path / "run" / "csv" / "metrics.csv")))
    for epoch in (0, 1):
        steps = [
            float(r["train/loss_step"]) for r in rows if r["train/loss_step"] and int(r["epoch"]) == epoch
        ]
        assert len(steps) == 2  # 8 train images, batch 4
        assert history[epoch + 1]["train/loss"] == pytest.approx(sum(steps) / len(steps), rel=1e-5)


def test_same_seed_same_metrics(tmp_path, tiny_overrides):
    runs = []
    for name in ("a", "b"):
        cfg = compose_config(
            [*tiny_overrides, "trainer.max_epochs=1", "trainer.deterministic=true"], tmp_path / name
        )
        runs.append(train(cfg))
    assert runs[0]["test"] == runs[1]["test"]
    assert runs[0]["history"][-1]["val/loss"] == runs[1]["history"][-1]["val/loss"]


def run_script(args, cwd, timeout=300):
    return run_entry_script("train.py", args, cwd, timeout)


def script_overrides(tmp_path):
    from conftest import TINY

    return [
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        *TINY,
        "trainer.max_epochs=1",
    ]


def test_script_runs_with_overrides(tmp_path):
    proc = run_script(script_overrides(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list((tmp_path / "logs" / "train" / "runs").iterdir())
    assert len(runs) == 1
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["dataset"] == "synthetic" and metrics["epochs"] == 1
    assert (runs[0] / ".hydra" / "config.yaml").is_file()
    log = proc.stdout + proc.stderr
    assert "epoch 1" in log and "outputs written to" in log


def test_script_bad_dataset_folder_is_one_clear_error(tmp_path):
    overrides = [o for o in script_overrides(tmp_path) if "generator" not in o]
    proc = run_script(["dataset=folder", f"dataset.root={tmp_path / 'missing'}", *overrides], tmp_path)
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_multirun_two_seeds(tmp_path):
    proc = run_script(["-m", "seed=0,1", *script_overrides(tmp_path)], cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "metrics.json").is_file())
    assert len(jobs) == 2
    seeds = sorted(json.loads((j / "metrics.json").read_text())["seed"] for j in jobs)
    assert seeds == [0, 1]


def test_error_in_a_config_constructor_is_one_clear_line(tmp_path):
    # aug.fraction is checked by the callback's constructor, which Hydra's instantiate wraps
    proc = run_script([*script_overrides(tmp_path), "aug=fgsm", "aug.fraction=2"], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "fraction" in proc.stderr and "Traceback" not in proc.stderr
    assert "InstantiationException" not in proc.stderr


def test_compiled_network_trains_attacks_and_keeps_plain_checkpoint_keys(tmp_path, tiny_overrides):
    # backend=eager exercises the torch.compile wiring (dynamo tracing, the attack's input
    # gradient through the compiled module) without a C++ toolchain or minutes of codegen
    import torch

    runs = {}
    for name, extra in (("plain", []), ("compiled", ["model.compile={backend: eager}"])):
        cfg = compose_config(
            [*tiny_overrides, "trainer.max_epochs=1", "trainer.deterministic=true", "aug=fgsm", *extra],
            tmp_path / name,
        )
        runs[name] = train(cfg)
    assert runs["compiled"]["test"] == pytest.approx(runs["plain"]["test"], abs=1e-6)
    state = torch.load(tmp_path / "compiled" / "run" / "checkpoints" / "best.ckpt", weights_only=True)
    assert not any("_orig_mod" in k for k in state["state_dict"])  # loads into an uncompiled model


@pytest.mark.parametrize(
    "aug,samples",
    [(["aug=none"], [8, 8]), (["aug=fgsm", "aug.mode=free"], [8, 16]), (["aug=flip"], [16, 16])],
    ids=["none", "free", "flip"],
)
def test_on_device_batches_train_end_to_end(tmp_path, tiny_overrides, aug, samples):
    # dataset.on_device: whole batches gathered from device tensors (here the CPU "device"),
    # with the adversarial free mode (reads the batch ids) and a pool-protocol baseline
    cfg = compose_config([*tiny_overrides, "trainer.max_epochs=2", "dataset.on_device=true", *aug], tmp_path)
    metrics = train(cfg)
    assert metrics["status"] == "completed" and 0.0 <= metrics["test"]["test/miou"] <= 1.0
    # 8 clean per epoch, + the pool: free mode's from epoch 1, the flip pool from epoch 0
    assert [r["train/samples"] for r in metrics["history"][1:]] == samples


def test_multi_class_run_reports_each_class(tmp_path):
    # 3 classes: the averages alone hide which class fails, so each foreground class gets its own
    # IoU / Dice in the history, the test scores, robustness.json / .md and the report's Table 3
    import numpy as np
    from PIL import Image

    from advaug.reporting import write_report

    root = tmp_path / "three"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for k in range(12):
        mask = np.zeros((32, 32), np.uint8)
        mask[2 + k % 4 : 12 + k % 4, 3:13], mask[18:28, 16 + k % 5 : 28] = 1, 2
        image = rng.integers(0, 60, (32, 32), dtype=np.uint8) + (mask * 90).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"c{k:02d}.png")
        Image.fromarray(mask).save(root / "masks" / f"c{k:02d}.png")
    cfg = compose_config(
        ["dataset=folder", f"dataset.root={root}", "dataset.num_classes=3", "dataset.image_size=32",
         "dataset.split={train: 0.5, val: 0.25, test: 0.25}", "batch_size=4", "trainer.accelerator=cpu",
         "trainer.enable_progress_bar=false", "model.net.decoder_channels=[32,16,16,8,8]",
         "trainer.max_epochs=1", "robustness.methods=[fgsm]", "robustness.eps=[0.0118]",
         "robustness.labels=[pred]"],
        tmp_path,
    )  # fmt: skip
    metrics = train(cfg)
    out = tmp_path / "run"
    written = json.loads((out / "metrics.json").read_text())
    per_class = {"iou_c1", "iou_c2", "dice_c1", "dice_c2"}
    assert {f"val/{k}" for k in per_class} <= set(written["history"][-1])
    assert {f"test/{k}" for k in per_class} <= set(metrics["test"])
    test = metrics["test"]
    assert test["test/iou_fg"] == pytest.approx((test["test/iou_c1"] + test["test/iou_c2"]) / 2, abs=1e-6)
    assert "val/iou_c0" not in written["history"][-1]  # background is in miou already
    rows = json.loads((out / "robustness.json").read_text())["rows"]
    assert all({"iou_c1", "iou_c2"} <= set(r) for r in rows)
    assert "| IoU c1 | IoU c2 |" in (out / "robustness.md").read_text()
    page = write_report([out], tmp_path / "report")["tables.md"].read_text()
    assert "#### IoU of class 1" in page and "#### IoU of class 2" in page
