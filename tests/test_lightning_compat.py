"""Each private Lightning API that ``advaug.utils.lightning_compat`` relies on, checked on real
Lightning objects: a failure here names the internal an upgrade removed or changed."""

from __future__ import annotations

import inspect
from pathlib import Path

import lightning as L
import pytest
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel

from advaug.utils import lightning_compat as compat


def _trainer(tmp_path: Path, **kwargs) -> L.Trainer:
    kwargs = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "default_root_dir": str(tmp_path),
        **kwargs,
    }
    return L.Trainer(**kwargs)


def test_signal_connector_flag_is_the_trainers(tmp_path):
    trainer = _trainer(tmp_path)
    connector = compat.signal_connector(trainer)
    assert connector is not None, "Trainer._signal_connector (with received_sigterm) is gone"
    assert connector.received_sigterm is False
    connector.received_sigterm = True  # what DdpSigterm sets; the training loop reads this property
    assert trainer.received_sigterm is True


def test_signal_connector_is_none_without_the_flag():
    class NoConnector:
        pass

    assert compat.signal_connector(NoConnector()) is None


def test_sigterm_notifier_is_lightnings_handler_name():
    from lightning.pytorch.trainer.connectors.signal_connector import _SignalConnector

    handler = getattr(_SignalConnector, compat.SIGTERM_NOTIFIER, None)
    assert handler is not None, f"_SignalConnector.{compat.SIGTERM_NOTIFIER} is gone"
    assert handler.__code__.co_name == compat.SIGTERM_NOTIFIER


def test_in_sigterm_notifier_finds_the_frame():
    def _sigterm_notifier_fn():  # same code name as Lightning's handler
        raise RuntimeError("broadcast failed")

    try:
        _sigterm_notifier_fn()
    except RuntimeError as exc:
        assert compat.in_sigterm_notifier(exc.__traceback__)
    try:
        raise RuntimeError("elsewhere")
    except RuntimeError as exc:
        assert not compat.in_sigterm_notifier(exc.__traceback__)


def test_logs_written_this_step_follows_log_every_n_steps(tmp_path):
    seen: list[tuple[int, bool]] = []

    class Probe(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            seen.append((trainer.global_step, compat.logs_written_this_step(trainer)))

    trainer = _trainer(tmp_path, max_steps=4, log_every_n_steps=2, callbacks=[Probe()])
    assert hasattr(trainer, "_logger_connector"), "Trainer._logger_connector is gone"
    assert hasattr(type(trainer._logger_connector), "should_update_logs")
    trainer.fit(BoringModel())
    # Lightning writes logs when (global_step + 1) % log_every_n_steps == 0
    assert seen == [(0, False), (1, True), (2, False), (3, True)]


def test_fit_loop_can_stop_early_waits_for_min_epochs(tmp_path):
    seen: list[tuple[int, bool]] = []

    class Probe(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            seen.append((trainer.current_epoch, compat.fit_loop_can_stop_early(trainer)))

    trainer = _trainer(tmp_path, max_epochs=3, min_epochs=2, limit_train_batches=1, callbacks=[Probe()])
    assert isinstance(type(trainer.fit_loop).__dict__.get("_can_stop_early"), property), (
        "_FitLoop._can_stop_early is no longer a property"
    )
    trainer.fit(BoringModel())
    assert seen == [(0, False), (1, True), (2, True)]


def test_accepted_precisions():
    accepted = compat.accepted_precisions()
    for value in ("32-true", "16-mixed", "bf16-mixed", "64-true", 32, "32"):
        assert value in accepted
    assert "fp8" not in accepted


def test_unified_precision():
    assert compat.unified_precision(32) == "32-true"
    assert compat.unified_precision("32") == "32-true"
    assert compat.unified_precision("bf16-mixed") == "bf16-mixed"
    with pytest.raises((ValueError, TypeError)):
        compat.unified_precision("fp8")


def test_relaunches_script(tmp_path):
    from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    assert "cluster_environment" in inspect.signature(_SubprocessScriptLauncher).parameters
    assert not compat.relaunches_script(_trainer(tmp_path))  # one process: no launcher
    ddp = _trainer(tmp_path, devices=2, strategy="ddp")  # not started: the launcher is only built
    assert isinstance(ddp.strategy.launcher, _SubprocessScriptLauncher)
    assert compat.relaunches_script(ddp)


class _Recording(ModelCheckpoint):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.written: list[str] = []

    def _save_checkpoint(self, trainer, filepath):
        self.written.append(Path(filepath).name)
        compat.save_checkpoint_file(self, trainer, filepath)


def test_every_checkpoint_is_written_through_the_save_hook(tmp_path):
    assert callable(getattr(ModelCheckpoint, compat.CHECKPOINT_SAVE_HOOK, None))
    cb = _Recording(dirpath=tmp_path / "ck", filename="best", monitor=None, save_last=True)
    trainer = _trainer(
        tmp_path, max_epochs=1, limit_train_batches=2, callbacks=[cb], enable_checkpointing=True
    )
    trainer.fit(BoringModel())
    assert sorted(cb.written) == ["best.ckpt", "last.ckpt"]
    assert (tmp_path / "ck" / "best.ckpt").is_file() and (tmp_path / "ck" / "last.ckpt").is_file()


def test_save_last_checkpoint_now_and_remove(tmp_path):
    calls: list[bool] = []

    class SaveLast(ModelCheckpoint):
        def on_train_epoch_end(self, trainer, pl_module):
            calls.append(True)
            compat.save_last_checkpoint_now(self, trainer)

    cb = SaveLast(dirpath=tmp_path / "ck", monitor="missing", save_last=True, save_on_train_epoch_end=True)
    trainer = _trainer(
        tmp_path, max_epochs=1, limit_train_batches=2, callbacks=[cb], enable_checkpointing=True
    )
    trainer.fit(BoringModel())
    last = tmp_path / "ck" / "last.ckpt"
    assert calls and last.is_file() and cb.last_model_path == str(last)
    compat.remove_checkpoint_file(cb, trainer, str(last))
    assert not last.exists()
