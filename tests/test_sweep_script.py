"""scripts/sweep_one_gpu.sh: parallel jobs in fixed folders; a rerun skips what is completed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TINY

SCRIPT = ROOT / "scripts" / "sweep_one_gpu.sh"


def test_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


@pytest.mark.slow
def test_runs_each_job_once_and_a_rerun_skips_completed_ones(tmp_path):
    root = tmp_path / "sweep"
    tiny = [o.replace(" ", "") for o in TINY if not o.startswith("trainer.accelerator")]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HYDRA")},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # python3 = this venv
        "EXPERIMENT": "paper_cpu",
        "TRAINER": "cpu",
        "METHODS": "none fgsm+aug.eps=0.05+aug.fraction=0.5",
        "SEEDS": "0",
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
    for job in ("none_seed0", "fgsm+aug.eps-0.05+aug.fraction-0.5_seed0"):
        metrics = json.loads((root / job / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["aug"] == job.split("_")[0].split("+")[0]
    config = (root / "fgsm+aug.eps-0.05+aug.fraction-0.5_seed0" / "config_resolved.yaml").read_text()
    assert "eps: 0.05" in config and "fraction: 0.5" in config  # the variant's overrides reached the job
    ran = (root / "_logs" / "jobs.txt").read_text().splitlines()
    assert len(ran) == 2 and all(" rc=0 " in line for line in ran)  # the rerun started nothing
    assert "2 completed jobs" in done.stdout
