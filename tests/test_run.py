"""The run lifecycle package (``advaug.run``): the completed record, the entry commands, and a
console command (``[project.scripts]``) run end to end on tiny data from a folder without ``conf/``."""

from __future__ import annotations

import importlib
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import ROOT, TINY, subprocess_env
from omegaconf import OmegaConf

from advaug.run import folder


def _project_scripts() -> dict[str, str]:
    """``[project.scripts]`` of pyproject.toml (``name = "module:function"`` lines; no tomllib on 3.10)."""
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.scripts]\n", 1)[1].split("\n[", 1)[0]
    pairs = (line.split("=", 1) for line in section.splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip(): v.strip().strip('"') for k, v in pairs}


SCRIPTS = _project_scripts()
# the wrapper pip writes for a console script (pip's ScriptMaker template)
WRAPPER = """#!{python}
import re
import sys
from {module} import {func}
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit({func}())
"""


def console_script(name: str, bin_dir: Path) -> Path:
    """``bin_dir/<name>``, the file ``pip install -e .`` writes for ``[project.scripts]`` ``name``."""
    module, func = SCRIPTS[name].split(":")
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text(WRAPPER.format(python=sys.executable, module=module, func=func))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_every_entry_script_has_a_console_command_that_imports():
    scripts = {p.stem for p in (ROOT / "src").glob("*.py")}
    assert {f"advaug-{s.replace('_', '-')}" for s in scripts} == set(SCRIPTS)
    for target in SCRIPTS.values():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), target


def test_completed_record_holds_the_run_and_its_scores():
    checkpoint = SimpleNamespace(best_model_path="/r/best.ckpt", best_model_score=0.5)
    trainer = SimpleNamespace(
        checkpoint_callback=checkpoint,
        current_epoch=3,
        strategy=SimpleNamespace(root_device=torch.device("cpu")),
        precision="32-true",
    )
    cfg = OmegaConf.create(
        {"task_name": "train", "seed": 1, "dataset": {"name": "syn"}, "aug": {"name": "flip"}}
    )
    datamodule = SimpleNamespace(ids={"train": [1, 2], "val": [3]})
    history = [{"epoch": 0, "val/miou": 0.1}]
    record = folder.completed_record(cfg, trainer, datamodule, {"test/miou": 0.4}, history, time.time() - 2)
    assert record["status"] == folder.COMPLETED and record["aug"] == "flip" and record["seed"] == 1
    assert record["splits"] == {"train": 2, "val": 1} and record["epochs"] == 3
    assert record["best_model_path"] == "/r/best.ckpt" and record["best_val_miou"] == 0.5
    assert record["test"] == {"test/miou": 0.4} and record["history"] == history
    assert 2 <= record["wall_time_s"] < 60 and "environment" in record
    trainer.checkpoint_callback = None  # callbacks=none
    record = folder.completed_record(cfg, trainer, datamodule, {}, [], time.time())
    assert record["best_model_path"] == "" and record["best_val_miou"] is None


def test_status_round_trip(tmp_path):
    assert folder.read_status(tmp_path) is None and not folder.is_completed(tmp_path)
    folder.record_failure(tmp_path, ValueError("bad"), status=folder.INTERRUPTED, cause="x")
    assert folder.read_status(tmp_path) == {
        "status": "interrupted",
        "error": "bad",
        "error_type": "ValueError",
        "cause": "x",
    }
    (tmp_path / folder.METRICS_FILE).write_text(json.dumps({"status": folder.COMPLETED}))
    assert folder.is_completed(tmp_path) and folder.record_failure(tmp_path, ValueError("late")) is None


def test_hydra_command_names_the_job_after_the_script(tmp_path, monkeypatch):
    from advaug.run import commands

    seen = {}

    def task(cfg):
        from hydra.core.hydra_config import HydraConfig

        seen.update(name=HydraConfig.get().job.name, aug=cfg.aug.name)

    monkeypatch.chdir(tmp_path)  # no conf/ here: found from the package
    argv = ["advaug-train", "aug=flip", f"hydra.run.dir={tmp_path / 'run'}", "hydra/job_logging=none"]
    monkeypatch.setattr(sys, "argv", argv)
    commands.hydra_command(task, "train")
    assert seen == {"name": "train", "aug": "flip"}  # the job name python src/train.py gives it


def test_unknown_choice_is_refused_by_the_console_command_too(tmp_path):
    command = console_script("advaug-train", tmp_path / "bin")
    env = subprocess_env(tmp_path)
    env["PYTHONPATH"] = str(ROOT / "src")
    done = subprocess.run([str(command), "aug=nope"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "aug=nope: no such choice" in done.stderr


@pytest.mark.slow
def test_console_command_trains_a_sweep_end_to_end(tmp_path):
    """``advaug-train -m ...`` from a folder without ``conf/``: overrides and the sweep apply,
    every job completes and the sweep's summary.json lists them."""
    command = console_script("advaug-train", tmp_path / "bin")
    env = subprocess_env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, "trainer.max_epochs=1", "robustness.enabled=false", "test=false", "logger=none",
            "seed=0,1", f"paths.data_dir={tmp_path / 'data'}", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    done = subprocess.run(
        [str(command), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["counts"] == {"ok": 2}
    seeds = sorted(
        json.loads((sweep / j["job"] / "metrics.json").read_text())["seed"] for j in summary["jobs"]
    )
    assert seeds == [0, 1]
    assert all((sweep / j["job"] / "train.log").is_file() for j in summary["jobs"])
