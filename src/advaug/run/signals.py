"""SIGTERM: a run stopped by it is *interrupted* (resumable), never *failed*.

``DdpSigterm``: a SIGTERM handler for multi-process runs that cannot deadlock.

Lightning's own handler (2.6.6 here; added by Lightning PR #20825) broadcasts from inside the signal handler. The handler runs
wherever rank 0 happens to be, e.g. between a backward pass and the optimizer step, while the other
ranks wait in the gradient all-reduce: the two collectives never match and every process hangs
(seen here with ``trainer=ddp_cpu``: 10 minutes, until killed; Lightning #20806 describes the
related race). This handler only records the signal and passes it on to the other ranks the
launcher started. Lightning's training loop already broadcasts rank 0's flag at the start of each
batch, outside any handler, so all ranks stop at the same batch and the run is saved as
``interrupted``.

Lightning registers its handler only after setup, the checkpoint restore and ``on_fit_start``
(where the first adversarial pool is made); before that a SIGTERM took Python's default action
and killed rank 0 outright, leaving the other ranks to fail. :meth:`DdpSigterm.guard` installs the
same recording handler around the whole ``fit`` / ``validate`` call, and the flag it records
survives Lightning's reset of its own when each stage starts.

:func:`sigterm_as_interrupt` turns a DDP collective that fails after a SIGTERM into Lightning's
``SIGTERMException``; :func:`stop_workers_on_sigterm` makes a SIGTERM to a joblib sweep end its
worker processes too.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from advaug.errors import exception_chain
from advaug.utils.lightning_compat import in_sigterm_notifier, signal_connector

log = logging.getLogger(__name__)


class DdpSigterm(L.Callback):
    """Replace Lightning's SIGTERM handler in runs of more than one process (no-op otherwise)."""

    def __init__(self) -> None:
        self.received_sigterm = False  # this process got SIGTERM during a guarded call

    @staticmethod
    def _applies(trainer: L.Trainer) -> bool:
        # one process: Lightning's handler holds no collective; unknown Lightning: leave it
        return trainer.world_size > 1 and signal_connector(trainer) is not None

    def _handler(self, trainer: L.Trainer):
        connector = signal_connector(trainer)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            if self.received_sigterm or connector.received_sigterm:
                return
            log.info("rank %d: SIGTERM received; stopping at the next batch", trainer.global_rank)
            self.received_sigterm = connector.received_sigterm = True
            launcher = getattr(trainer.strategy, "launcher", None)
            if launcher is not None:  # rank 0 of a script launch: the ranks it started
                launcher.kill(signum)

        return on_sigterm

    @contextmanager
    def guard(self, trainer: L.Trainer) -> Iterator[None]:
        """This callback's handler around a whole ``trainer.fit`` / ``validate`` call, setup and
        checkpoint restore included; the handler that was there before is restored after it."""
        if not self._applies(trainer):
            yield
            return
        previous = signal.signal(signal.SIGTERM, self._handler(trainer))
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _install(self, trainer: L.Trainer) -> None:
        if not self._applies(trainer):
            return
        # Lightning clears its flag when each stage starts: a SIGTERM received before (in setup,
        # on_fit_start) must still stop this one
        connector = signal_connector(trainer)
        connector.received_sigterm = connector.received_sigterm or self.received_sigterm
        # Lightning (re)registers its handler when each fit / validate / test starts; these hooks
        # come after that, and its teardown restores the handler that was there before
        signal.signal(signal.SIGTERM, self._handler(trainer))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install(trainer)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install(trainer)


def stopped_by_sigterm(trainer: L.Trainer, exc: BaseException) -> bool:
    """True when ``exc`` is the fallout of a SIGTERM this process received, not a fault of the run.

    Under DDP, Lightning's SIGTERM handler kills the other ranks and then broadcasts to them; the
    broadcast, or the next gradient all-reduce with the dead ranks, raises a backend error
    (gloo: "connection reset by peer") instead of Lightning's ``SIGTERMException``. The handler
    sets ``trainer.received_sigterm`` only after its broadcast, so a traceback through it counts too.
    """
    if getattr(trainer, "received_sigterm", False):
        return True
    # DdpSigterm's own record: Lightning clears its flag when a stage starts
    if any(getattr(cb, "received_sigterm", False) is True for cb in getattr(trainer, "callbacks", ())):
        return True
    return any(in_sigterm_notifier(err.__traceback__) for err in exception_chain(exc))


@contextmanager
def sigterm_as_interrupt(trainer: L.Trainer) -> Iterator[None]:
    """Re-raise an error caused by a received SIGTERM (see :func:`stopped_by_sigterm`) as Lightning's
    ``SIGTERMException``, so the run is recorded ``interrupted`` (resumable), not ``failed``."""
    try:
        yield
    except Exception as exc:
        if stopped_by_sigterm(trainer, exc):
            # no message: exit status 0, as Lightning's own SIGTERM stop; the error is the __cause__
            raise SIGTERMException() from exc
        raise


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    log.error("SIGTERM: stopping the sweep and its running jobs (rerun the command to resume them)")
    raise SystemExit(128 + signum)  # unwinds through joblib, which then ends its worker processes


def stop_workers_on_sigterm(config: DictConfig) -> None:
    """Under a launcher that runs the jobs in worker processes (joblib), make SIGTERM to the sweep
    (``timeout``, ``kill``, a scheduler) end them as Ctrl-C does: by default only the sweep
    process died and its workers went on training, unsupervised. In-process jobs (the basic
    launcher) are left to Lightning's own SIGTERM handling."""
    target = str(OmegaConf.select(config, "hydra.launcher._target_", default="") or "")
    if "joblib" in target.lower() and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
