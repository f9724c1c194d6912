"""``DdpSigterm``: a SIGTERM handler for multi-process runs that cannot deadlock.

Lightning's own handler (2.6.6 here; added by Lightning PR #20825) broadcasts from inside the signal handler. The handler runs
wherever rank 0 happens to be, e.g. between a backward pass and the optimizer step, while the other
ranks wait in the gradient all-reduce: the two collectives never match and every process hangs
(seen here with ``trainer=ddp_cpu``: 10 minutes, until killed; Lightning #20806 describes the
related race). This handler only records the signal and passes it on to the other ranks the
launcher started. Lightning's training loop already broadcasts rank 0's flag at the start of each
batch, outside any handler, so all ranks stop at the same batch and the run is saved as
``interrupted``.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType

import lightning as L

log = logging.getLogger(__name__)


class DdpSigterm(L.Callback):
    """Replace Lightning's SIGTERM handler in runs of more than one process (no-op otherwise)."""

    def _install(self, trainer: L.Trainer) -> None:
        connector = getattr(trainer, "_signal_connector", None)
        if trainer.world_size < 2 or not hasattr(connector, "received_sigterm"):
            return  # one process: Lightning's handler holds no collective; unknown Lightning: leave it

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            if connector.received_sigterm:
                return
            log.info("rank %d: SIGTERM received; stopping at the next batch", trainer.global_rank)
            connector.received_sigterm = True
            launcher = getattr(trainer.strategy, "launcher", None)
            if launcher is not None:  # rank 0 of a script launch: the ranks it started
                launcher.kill(signum)

        # Lightning (re)registers its handler when each fit / validate / test starts; these hooks
        # come after that, and its teardown restores the handler that was there before
        signal.signal(signal.SIGTERM, on_sigterm)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install(trainer)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install(trainer)
