"""Every use of a private Lightning API, in one place (tested against ``lightning>=2.6,<2.7``).

Each function says which internal it relies on; ``tests/test_lightning_compat.py`` checks each one
on a real Lightning object, so an upgrade that renames or changes one fails there, by name, not
somewhere deep in a training run. Raise the pin in ``pyproject.toml`` only after those tests pass.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, get_args

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

# the nested function Lightning's SIGTERM handler runs (``_SignalConnector._sigterm_notifier_fn``)
SIGTERM_NOTIFIER = "_sigterm_notifier_fn"
# the ``ModelCheckpoint`` method every checkpoint file (top-k and last) is written through
CHECKPOINT_SAVE_HOOK = "_save_checkpoint"


def signal_connector(trainer: L.Trainer) -> Any | None:
    """``trainer._signal_connector``: the object whose ``received_sigterm`` flag Lightning's SIGTERM
    handler sets and its training loop broadcasts at each batch; None when this Lightning has no
    such object (then callers leave Lightning's own handling alone)."""
    connector = getattr(trainer, "_signal_connector", None)
    return connector if hasattr(connector, "received_sigterm") else None


def in_sigterm_notifier(tb: TracebackType | None) -> bool:
    """Whether a traceback passes through Lightning's SIGTERM handler (:data:`SIGTERM_NOTIFIER`),
    e.g. a DDP broadcast that failed inside it."""
    while tb is not None:
        if tb.tb_frame.f_code.co_name == SIGTERM_NOTIFIER:
            return True
        tb = tb.tb_next
    return False


def logs_written_this_step(trainer: L.Trainer) -> bool:
    """``trainer._logger_connector.should_update_logs``: whether the loggers write at this step
    (``log_every_n_steps``); True when the connector is missing (log every step, as before)."""
    connector = getattr(trainer, "_logger_connector", None)
    return connector is None or bool(connector.should_update_logs)


def fit_loop_can_stop_early(trainer: L.Trainer) -> bool:
    """``trainer.fit_loop._can_stop_early``: whether the fit loop honours ``should_stop`` now
    (False until ``min_epochs`` / ``min_steps`` are met); True when the attribute is missing."""
    return bool(getattr(trainer.fit_loop, "_can_stop_early", True))


def accepted_precisions() -> list[Any]:
    """Every ``precision`` value Lightning accepts, from ``lightning.fabric.connector._PRECISION_INPUT``
    (a ``Union`` of ``Literal`` groups: ``"32-true"``, ``"bf16-mixed"``, ``32``, ...)."""
    from lightning.fabric.connector import _PRECISION_INPUT

    return [a for group in get_args(_PRECISION_INPUT) for a in get_args(group)]


def unified_precision(value: Any) -> str:
    """Lightning's one spelling of a precision (``32`` and ``"32"`` are ``"32-true"``), from
    ``lightning.fabric.connector._convert_precision_to_unified_args``; raises ValueError / TypeError
    for a value Lightning does not know."""
    from lightning.fabric.connector import _convert_precision_to_unified_args

    return str(_convert_precision_to_unified_args(value))


def relaunches_script(trainer: L.Trainer) -> bool:
    """Whether the strategy's launcher starts ranks > 0 by re-running ``sys.argv``: Lightning's
    ``_SubprocessScriptLauncher`` whose cluster environment does not create the processes itself."""
    from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    launcher = getattr(trainer.strategy, "launcher", None)
    return (
        isinstance(launcher, _SubprocessScriptLauncher)
        and not launcher.cluster_environment.creates_processes_externally
    )


def save_checkpoint_file(callback: ModelCheckpoint, trainer: L.Trainer, filepath: str) -> None:
    """``ModelCheckpoint._save_checkpoint``: write one checkpoint file (honouring the callback's
    ``save_weights_only``); a subclass overrides :data:`CHECKPOINT_SAVE_HOOK` to change what is
    written and calls this for the actual write."""
    ModelCheckpoint._save_checkpoint(callback, trainer, filepath)


def save_last_checkpoint_now(callback: ModelCheckpoint, trainer: L.Trainer) -> None:
    """Write ``last.ckpt`` now when this callback saves at train-epoch end and the trainer is not
    sanity-checking / fast-dev-running: ``ModelCheckpoint._should_save_on_train_epoch_end``,
    ``_should_skip_saving_checkpoint``, ``_save_last_checkpoint`` and ``_monitor_candidates``."""
    if callback._should_save_on_train_epoch_end(trainer) and not callback._should_skip_saving_checkpoint(
        trainer
    ):
        callback._save_last_checkpoint(trainer, callback._monitor_candidates(trainer))


def remove_checkpoint_file(callback: ModelCheckpoint, trainer: L.Trainer, filepath: str) -> None:
    """``ModelCheckpoint._remove_checkpoint``: delete a checkpoint file through the strategy
    (rank 0 removes it)."""
    callback._remove_checkpoint(trainer, filepath)
