"""``ProgressBar``: Lightning's TQDM bar without a host-device sync per training step."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar


class ProgressBar(TQDMProgressBar):
    """TQDM bar that reads the logged metrics only on the steps the loggers write them.

    The bar's postfix turns every logged tensor into a number with ``.item()``; on a GPU each one
    waits until the device has finished all queued work, so at ``refresh_rate=1`` the host could
    never run ahead of the GPU. The per-step value (``train/loss_step``) only changes on the
    steps that log it (``trainer.log_every_n_steps``), so in between the last postfix is shown.
    """

    def __init__(self, refresh_rate: int = 1, leave: bool = False) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self._postfix: dict[str, Any] | None = None

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        every = max(int(trainer.log_every_n_steps), 1)
        if self._postfix is None or not trainer.training or trainer.global_step % every == 0:
            self._postfix = super().get_metrics(trainer, pl_module)
        return self._postfix

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._postfix = None  # the epoch's metrics (train/loss_epoch) are new
        super().on_train_epoch_end(trainer, pl_module)
