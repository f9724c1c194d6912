"""``DdpSigterm``: a SIGTERM handler for multi-process runs that cannot deadlock.

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
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import lightning as L

from advaug.utils.lightning_compat import signal_connector

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
