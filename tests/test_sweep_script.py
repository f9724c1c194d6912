"""scripts/sweep_one_gpu.sh: parallel jobs in fixed folders; a rerun skips what is completed."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TINY, subprocess_env

SCRIPT = ROOT / "scripts" / "sweep_one_gpu.sh"


def test_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


@pytest.mark.slow
def test_runs_each_job_once_and_a_rerun_skips_completed_ones(tmp_path):
    root = tmp_path / "sweep"
    tiny = [o.replace(" ", "") for o in TINY if not o.startswith("trainer.accelerator")]
    env = {
        **subprocess_env(tmp_path),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # python3 = this venv
        "EXPERIMENT": "paper_cpu",
        "TRAINER": "cpu",
        "METHODS": "none fgsm+aug.eps=0.05+aug.fraction=0.5",
        "SEEDS": "0",
        "DATASETS": "synthetic_lumbar",  # a dataset axis (the tiny overrides in EXTRA still apply)
        "JOBS": "2",
        "ROOT": str(root),
        "USE_MPS": "0",
        "EXTRA": " ".join([f"paths.data_dir={tmp_path / 'data'}", *tiny, "trainer.max_epochs=1"]),
    }
    for _ in range(2):
        done = subprocess.run(
            ["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout + done.stderr
    for job in ("none_synthetic_lumbar_seed0", "fgsm+aug.eps-0.05+aug.fraction-0.5_synthetic_lumbar_seed0"):
        metrics = json.loads((root / job / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["aug"] == job.split("_")[0].split("+")[0]
        assert metrics["dataset"] == "synthetic_lumbar"
    fgsm_job = root / "fgsm+aug.eps-0.05+aug.fraction-0.5_synthetic_lumbar_seed0"
    config = (fgsm_job / "config_resolved.yaml").read_text()
    assert "eps: 0.05" in config and "fraction: 0.5" in config  # the variant's overrides reached the job
    ran = (root / "_logs" / "jobs.txt").read_text().splitlines()
    assert len(ran) == 2 and all(
        " rc=0 status=completed " in line for line in ran
    )  # the rerun started nothing
    assert "2 completed jobs" in done.stdout


def _processes_mentioning(text):
    """Pids of live processes whose command line contains ``text`` (read from /proc)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue  # ended meanwhile
    return pids


@pytest.mark.slow
def test_deadline_stops_and_waits_for_every_job(tmp_path):
    # `timeout` used to kill xargs and the bash wrappers and return at once: the script printed
    # "finished", stopped MPS and exited while train.py still ran (and jobs.txt missed the job)
    root = tmp_path / "sweep"
    tiny = [o.replace(" ", "") for o in TINY if not o.startswith(("trainer.accelerator", "robustness"))]
    env = {
        **subprocess_env(tmp_path),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "EXPERIMENT": "paper_cpu",
        "TRAINER": "cpu",
        "METHODS": "none",
        "SEEDS": "0",
        "JOBS": "1",
        "ROOT": str(root),
        "USE_MPS": "0",
        "DEADLINE": "15",
        "EXTRA": " ".join(
            [
                f"paths.data_dir={tmp_path / 'data'}",
                *tiny,
                "robustness.enabled=false",
                "trainer.max_epochs=10000",
            ]
        ),
    }
    try:
        done = subprocess.run(
            ["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        left = _processes_mentioning(str(root))
    finally:
        for pid in _processes_mentioning(str(root)):  # do not leak a trainer into the test session
            os.kill(pid, 9)
    assert done.returncode == 0, done.stdout + done.stderr
    assert left == [], "a train.py of this sweep was still running after the script returned"
    assert "deadline of 15 s reached" in done.stdout and "0 completed jobs" in done.stdout
    (line,) = (root / "_logs" / "jobs.txt").read_text().splitlines()  # the stopped job is listed
    assert line.startswith("none_seed0 ") and "stopped at the deadline" in line
    metrics = root / "none_seed0" / "metrics.json"
    status = json.loads(metrics.read_text())["status"] if metrics.is_file() else None
    assert status in (None, "interrupted")  # killed before training began, or saved as interrupted
    assert f" status={status or 'none'} " in line  # the run's own status, not only Lightning's rc=0


REPRODUCE = ROOT / "scripts" / "reproduce_kvasir.sh"


@pytest.mark.slow
def test_reproduce_kvasir_trains_publishes_and_writes_the_page(tmp_path, phantom_root):
    # the whole chain of scripts/reproduce_kvasir.sh at toy scale: phantoms stand in for the
    # prepared Kvasir folder (same on-disk format), 2 methods x 1 seed, 1 epoch, on the CPU
    data = tmp_path / "kvasir"
    shutil.copytree(phantom_root, data)
    ids = sorted(p.stem for p in (data / "images").iterdir())
    (data / "splits.json").write_text(json.dumps({"train": ids[:8], "val": ids[8:12], "test": ids[12:]}))
    tiny = [o.replace(" ", "") for o in TINY if o.startswith(("dataset.image_size", "model.", "robustness."))]
    env = {
        **subprocess_env(tmp_path),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DATA": str(data),
        "ROOT": str(tmp_path / "sweep"),
        "DOCS": str(tmp_path / "docs"),
        "METHODS": "none fgsm",
        "SEEDS": "0",
        "TRAINER": "cpu",
        "USE_MPS": "0",
        "EXTRA": " ".join([*tiny, "batch_size=4", "trainer.max_epochs=1"]),
    }
    done = subprocess.run(
        ["bash", str(REPRODUCE)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    docs = tmp_path / "docs"
    page = (docs / "kvasir-seg.md").read_text()
    assert "| completed jobs | 2: 2 methods × seeds 0 |" in page and "## Table 3" in page
    for job in ("none_seed0", "fgsm_seed0"):
        run = docs / "kvasir-seg" / "runs" / job
        assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
        assert (run / "robustness.json").is_file() and (run / "figures" / "samples.png").is_file()
        assert not list(run.rglob("*.ckpt"))  # only the small files are published
    assert json.loads((docs / "kvasir-seg" / "splits.json").read_text())["test"] == ids[12:]
