"""Sweeps through Hydra's launchers: one folder per job, joblib in parallel, failing jobs alone,
the SLURM example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT, compose_config, script_args
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from test_train import run_script

# -- sweeps ------------------------------------------------------------------------------------


def test_sweep_over_aug_dataset_eps_seed_has_one_dir_per_job(tmp_path):
    sweep = ["aug=fgsm,invfgsm", "dataset=synthetic,folder", "aug.eps=0.05,0.1", "seed=0,1"]
    parsed = OverridesParser.create().parse_overrides(sweep)
    (jobs,) = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    assert len(jobs) == 16
    dirs = set()
    for num, job in enumerate(jobs):
        cfg = compose_config([*job, "dataset.root=/x", f"hydra.job.num={num}"], tmp_path)
        hydra = cfg.hydra
        path = Path(hydra.sweep.dir) / hydra.sweep.subdir
        assert path.name.startswith(f"{num}_")
        assert all(o in str(path) for o in job)  # every swept value is in the folder name
        dirs.add(path)
    assert len(dirs) == 16
    # no job folder lies inside another job's folder
    assert not any(a != b and b.is_relative_to(a) for a in dirs for b in dirs)


@pytest.mark.slow
def test_joblib_launcher_runs_two_jobs_in_parallel(tmp_path):
    # DataLoader workers inside joblib's (loky) worker processes: the training loaders and the
    # classic pool (aug.num_workers=2) both failed there with "'Process' object has no attribute 'env'"
    args = [
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "aug=none,flip",
        "dataset.num_workers=1",
    ]
    proc = run_script([*args, *script_args(tmp_path)], cwd=tmp_path, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout + proc.stderr
    (sweep,) = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    jobs = sorted(p for p in sweep.iterdir() if (p / "metrics.json").is_file())
    assert [p.name.split("_")[0] for p in jobs] == ["0", "1"]
    metrics = [json.loads((j / "metrics.json").read_text()) for j in jobs]
    assert [(m["aug"], m["status"]) for m in metrics] == [("none", "completed"), ("flip", "completed")]


def test_loader_workers_get_a_standard_start_method_inside_joblib(monkeypatch):
    import multiprocessing

    from advaug.data.workers import worker_context

    assert worker_context(2) is None  # an ordinary process: the DataLoader's own default
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda allow_none=False: "loky")
    assert worker_context(0) is None
    context = worker_context(2)
    assert context.get_start_method() == multiprocessing.get_all_start_methods()[0]
    # a standard start method set by the user (spawn for CUDA in workers, forkserver) is kept
    for method in ("fork", "spawn", "forkserver"):
        monkeypatch.setattr(multiprocessing, "get_start_method", lambda allow_none=False, m=method: m)
        assert worker_context(2) is None


@pytest.mark.slow
def test_a_failing_sweep_job_does_not_stop_the_others(tmp_path, phantom_root):
    roots = f"dataset.root={tmp_path / 'missing'},{phantom_root}"
    args = [a for a in script_args(tmp_path) if "generator" not in a]
    proc = run_script(["-m", "dataset=folder", roots, *args], cwd=tmp_path, timeout=400)
    assert proc.returncode != 0  # the sweep reports the failure ...
    assert "does not exist" in proc.stderr
    (sweep,) = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    status = {
        p.name.split("_")[0]: json.loads((p / "metrics.json").read_text())["status"]
        for p in sweep.iterdir()
        if (p / "metrics.json").is_file()
    }
    assert status.get("0") != "completed" and status["1"] == "completed"  # ... after job 1 ran to the end


def test_slurm_launcher_example_composes():
    proc = run_script(["hydra/launcher=slurm_gpu", "--cfg", "hydra", "--package", "hydra.launcher"], ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    launcher = OmegaConf.create(proc.stdout)  # the plugin's schema with our values on top
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.gpus_per_node == launcher.tasks_per_node == 1
