"""Test-only Lightning callbacks that inject faults (imported by ``_target_`` from tests and from
subprocess runs with ``PYTHONPATH=tests``)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import lightning as L
import torch


class EpochEnds(L.Callback):
    """Appends the epoch number to the file ``path`` in every ``on_train_epoch_end`` (ordinary callbacks run
    that hook before the module's own and before the checkpoint callbacks)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        with self.path.open("a") as f:
            f.write(f"{trainer.current_epoch}\n")


class NanLoss(L.Callback):
    """Turns the input batch into NaN from epoch ``at_epoch`` on (only batch ``only_batch`` of
    each epoch when given), so the loss becomes NaN."""

    def __init__(self, at_epoch: int = 1, only_batch: int | None = None) -> None:
        self.at_epoch, self.only_batch = int(at_epoch), only_batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch >= self.at_epoch and self.only_batch in (None, batch_idx):
            batch["image"].fill_(float("nan"))


class PauseOnce(L.Callback):
    """At ``epoch``/``batch``: write ``marker`` and sleep (so a test can kill the process
    mid-epoch). Does nothing once the marker exists, so rerunning the same command goes on."""

    def __init__(self, marker: str, epoch: int = 1, batch: int = 1, seconds: float = 120.0) -> None:
        self.marker, self.epoch, self.batch, self.seconds = Path(marker), int(epoch), int(batch), seconds

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            time.sleep(self.seconds)


class RandomPool(L.Callback):
    """Fills the DataModule's extra pool with noise from the *global* torch RNG after every epoch:
    a resumed run matches only if both the pool and the RNG state are restored."""

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        images, masks = trainer.datamodule.train_images()
        k = max(1, len(images) // 2)
        noisy = (images[:k] + 0.2 * torch.randn_like(images[:k])).clamp(0, 1)
        trainer.datamodule.pool.put("extra", noisy, masks[:k])


class SigtermThenCollectiveError(L.Callback):
    """At ``epoch``/``batch``: SIGTERM to this process, then the error a DDP collective raises once
    Lightning's handler has killed the other ranks (gloo's "connection reset by peer")."""

    def __init__(self, epoch: int = 1, batch: int = 0) -> None:
        self.epoch, self.batch = int(epoch), int(batch)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGTERM)  # Lightning's handler: received_sigterm = True
            raise RuntimeError(
                "[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection reset by peer"
            )


class SigtermRank0BeforeZeroGrad(L.Callback):
    """Rank 0 sends itself SIGTERM at ``epoch``/``batch`` just before ``zero_grad``: its handler runs
    there, while the other ranks go on into the backward pass and its gradient all-reduce (the
    timing that deadlocked Lightning's own handler, which broadcasts from inside the handler)."""

    def __init__(self, epoch: int = 1, batch: int = 1) -> None:
        self.epoch, self.batch = int(epoch), int(batch)

    def on_before_zero_grad(self, trainer, pl_module, optimizer) -> None:
        batch_idx = trainer.fit_loop.epoch_loop.batch_progress.current.ready - 1
        if trainer.global_rank == 0 and trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGTERM)


class SigtermRank0AtFitStart(L.Callback):
    """Rank 0 sends itself SIGTERM in ``on_fit_start``: after setup and the checkpoint restore,
    before Lightning registers its own handler (a preemption while the first pool is made)."""

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.global_rank == 0:
            os.kill(os.getpid(), signal.SIGTERM)
