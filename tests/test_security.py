"""Security: checkpoints loaded with weights_only=True, no eval of config strings, no W&B key in
the saved configs or logs of a run."""

import ast
import os
import subprocess
import sys

import pytest
from conftest import ROOT, TINY

SOURCES = sorted((ROOT / "src").rglob("*.py"))


def _calls(path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            yield node


def _name(func):
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _weights_only_true(call):
    return any(
        k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
        for k in call.keywords
    )


def test_no_eval_or_exec():
    found = [
        f"{p}:{c.lineno}"
        for p in SOURCES
        for c in _calls(p)
        if _name(c.func) in ("eval", "exec") and not isinstance(c.func, ast.Attribute)
    ]
    assert found == []


def test_checkpoints_are_loaded_weights_only():
    checked, unsafe = 0, []
    for path in SOURCES:
        for call in _calls(path):
            name = _name(call.func)
            is_torch_load = (
                name == "load" and isinstance(call.func, ast.Attribute) and _name(call.func.value) == "torch"
            )
            restores = name in ("fit", "test", "validate", "predict", "load_from_checkpoint") and any(
                k.arg == "ckpt_path" or name == "load_from_checkpoint" for k in call.keywords
            )
            if is_torch_load or restores:
                checked += 1
                if not _weights_only_true(call):
                    unsafe.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    assert checked >= 3 and unsafe == []


@pytest.mark.slow
def test_wandb_key_never_written_to_run_folder(tmp_path):
    secret = "0123456789abcdef-test-secret-key-0123456789"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYDRA", "WANDB"))}
    env.update(WANDB_API_KEY=secret, WANDB_MODE="offline", WANDB_DIR=str(tmp_path / "wandb_home"))
    run = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "src" / "train.py"),
            *TINY,
            "trainer.max_epochs=1",
            "logger=wandb",
            "robustness.enabled=false",
            f"paths.data_dir={tmp_path / 'data'}",
            f"hydra.run.dir={run}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / ".hydra" / "config.yaml").is_file() and (run / "metrics.json").is_file()
    assert any((run / "wandb").rglob("*")), "the W&B logger wrote nothing"
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert leaks == [] and secret not in proc.stdout + proc.stderr


@pytest.mark.parametrize("user_setting,asks", [(None, False), ("0", True)])
def test_importing_advaug_stops_albumentations_asking_pypi_unless_the_user_wants_it(user_setting, asks):
    # the request fails at once here (no opener), so a check that runs warns; -W error makes
    # that warning an import error
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    env["PYTHONPATH"] = str(ROOT / "src")
    if user_setting is not None:
        env["NO_ALBUMENTATIONS_UPDATE"] = user_setting
    code = "import urllib.request as u; u.build_opener = None; import advaug, albumentations"
    done = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode != 0) == asks, done.stderr[-2000:]
    assert ("check for updates" in done.stderr) == asks
