"""conf/hparams_search/eps_optuna.yaml: an Optuna study of 3 trials on tiny data, end to end; its
value is each trial's best validation mean IoU, and a failed trial scores -inf, not a crashed study."""

import json
import math
import subprocess
import sys

import pytest
from conftest import ROOT, TINY, subprocess_env
from omegaconf import OmegaConf


def _study(tmp_path, *overrides):
    sweep = tmp_path / "sweep"
    args = [sys.executable, str(ROOT / "src" / "train.py"), "hparams_search=eps_optuna", *TINY,
            "robustness.enabled=false", "test=false", "trainer.max_epochs=1", "hydra.sweeper.n_trials=3",
            f"paths.data_dir={tmp_path / 'data'}", f"paths.log_dir={tmp_path / 'logs'}",
            f"hydra.sweep.dir={sweep}", *overrides]  # fmt: skip
    done = subprocess.run(args, cwd=tmp_path, env=subprocess_env(tmp_path), capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    return done, sweep


@pytest.mark.slow
def test_an_optuna_study_maximises_the_validation_score(tmp_path):
    done, sweep = _study(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    jobs = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]
    assert len(jobs) == 3 and all(j["status"] == "completed" for j in jobs)
    assert best.best_value == pytest.approx(max(j["best_val_miou"] for j in jobs))
    assert 0.0004 <= best.best_params["aug.eps"] <= 0.12 and 0.1 <= best.best_params["aug.fraction"] <= 1.0
    configs = [OmegaConf.load(p) for p in sorted(sweep.glob("*/config_resolved.yaml"))]
    assert {c.aug.name for c in configs} == {"invfgsm"}


@pytest.mark.slow
def test_failed_trials_score_minus_inf_and_the_study_ends(tmp_path):
    done, sweep = _study(tmp_path, "trainer.min_epochs=5")  # min > max epochs: every trial fails
    assert done.returncode == 1  # the sweep summary says that jobs failed, after the study
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == -math.inf
    assert json.loads((sweep / "summary.json").read_text())["counts"] == {"failed": 3}
