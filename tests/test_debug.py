"""conf/debug/: every choice composes with every aug= choice, and each runs src/train.py end to end
(one run per debug config, on tiny data)."""

import json

import pytest
from conftest import ROOT, TINY, compose_config, run_entry_script
from omegaconf import OmegaConf

from advaug.config_checks import check_config

AUGS = sorted(p.stem for p in (ROOT / "conf" / "aug").glob("*.yaml") if not p.stem.startswith("_"))
DEBUGS = sorted(p.stem for p in (ROOT / "conf" / "debug").glob("*.yaml") if not p.stem.startswith("_"))


def test_the_debug_choices_are_the_documented_four():
    assert DEBUGS == ["fdr", "limit", "overfit", "profiler"]


@pytest.mark.parametrize("aug", AUGS)
def test_debug_limit_composes_and_shrinks_every_aug(aug, tmp_path):
    cfg = compose_config(["debug=limit", f"aug={aug}"], tmp_path)
    check_config(cfg)
    assert cfg.task_name == "debug" and cfg.trainer.limit_train_batches == 3 and cfg.trainer.max_epochs == 2
    assert cfg.robustness.max_batches == 1 and cfg.robustness.pgd_steps == 2
    if "fraction" in cfg.aug:  # the pools of the classic and adversarial methods
        assert cfg.aug.fraction == 0.1
    if aug == "gan":
        assert (cfg.aug.gan.steps, cfg.aug.num_samples) == (5, 16)
    if aug in ("pgd", "invpgd"):  # their pools run 1 attack step, not 10
        assert cfg.aug.steps == 1 and cfg.aug.callbacks.adversarial.steps == 1
    # outside debug=limit the same aug keeps its own sizes
    plain = compose_config([f"aug={aug}"], tmp_path / "plain")
    assert "debug_limits" not in plain and OmegaConf.select(plain, "aug.fraction") in (None, 1.0)
    if aug == "gan":
        assert plain.aug.gan.steps is None and plain.aug.gan.cpu_steps == 800
    if aug in ("pgd", "invpgd"):
        assert plain.aug.steps == 10


def _run(tmp_path, *overrides):
    args = [f"paths.data_dir={tmp_path / 'data'}", f"paths.log_dir={tmp_path / 'logs'}", *TINY, *overrides]
    done = run_entry_script("train.py", args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = (tmp_path / "logs" / "debug" / "runs").iterdir()  # task_name=debug: its own folder
    return run, json.loads((run / "metrics.json").read_text())


def test_debug_fdr_runs_one_batch_of_each_stage(tmp_path):
    run, metrics = _run(tmp_path, "debug=fdr", "aug=fgsm")
    assert metrics["status"] == "completed" and metrics["test"]
    rows = json.loads((run / "robustness.json").read_text())["rows"]
    assert [r["attack"] for r in rows] == ["clean", "fgsm", "invfgsm", "pgd-2"]
    assert rows[0]["images"] == 4  # one batch of the test split


def test_debug_limit_with_the_gan_trains_a_few_gan_steps(tmp_path):
    run, metrics = _run(tmp_path, "debug=limit", "aug=gan")
    assert metrics["status"] == "completed" and metrics["epochs"] == 2
    (gan,) = [p for p in (tmp_path / "logs" / "gan").iterdir() if p.is_dir()]
    record = json.loads((gan / "gan.json").read_text())
    assert record["steps"] == 5  # debug_limits.gan_steps, not the CPU default of 800
    assert metrics["splits"]["train"] == 8


def test_debug_overfit_lowers_the_loss_on_fixed_batches(tmp_path):
    run, metrics = _run(tmp_path, "debug=overfit", "trainer.max_epochs=8")
    losses = [r["train/loss"] for r in metrics["history"] if "train/loss" in r]
    assert len(losses) == 8 and losses[-1] < 0.8 * losses[0]
    assert not (run / "robustness.json").exists() and metrics["test"] == {}


def test_debug_profiler_writes_the_simple_profile(tmp_path):
    run, metrics = _run(tmp_path, "debug=profiler")
    assert metrics["status"] == "completed"
    profile = run / "fit-profile.txt"
    assert profile.is_file() and "run_training_epoch" in profile.read_text()
