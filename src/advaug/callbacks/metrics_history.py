"""Per-epoch validation history, including epoch 0 (validated before any training step)."""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger(__name__)


class MetricsHistory(L.Callback):
    """Records ``val/*`` metrics after each validation run.

    A validation run before ``fit`` (``trainer.validate``) is recorded as epoch 0; validation after
    training epoch ``e`` (0-based) as epoch ``e + 1``, so "epoch 10" means after 10 epochs of
    training, as in the paper's Table 1. The history is part of the checkpoint, so a resumed run
    keeps the epochs before the interruption.
    """

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self._t0: float | None = None
        self._samples = 0

    def _row(self, epoch: int) -> dict[str, float]:
        for row in self.history:
            if row["epoch"] == epoch:
                return row
        self.history.append({"epoch": epoch})
        return self.history[-1]

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on_validation_end runs after the module has logged its epoch-level metrics.
        if trainer.sanity_checking:
            return
        epoch = 0 if trainer.state.fn == TrainerFn.VALIDATING else trainer.current_epoch + 1
        row = self._row(epoch)
        row.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")})
        self._print(row)

    @rank_zero_only
    def _print(self, row: dict[str, float]) -> None:
        shown = "  ".join(f"{k}={v:.4f}" for k, v in row.items() if k != "epoch")
        log.info("epoch %d  %s", row["epoch"], shown)

    # Train throughput: samples seen between the start of the epoch and its validation.
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0, self._samples = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # all ranks together: under DDP each rank sees an equal shard (DistributedSampler pads)
        self._samples += len(batch["image"]) * trainer.world_size

    def _stop_clock(self, trainer: L.Trainer) -> None:
        if self._t0 is not None and self._samples:
            seconds = time.perf_counter() - self._t0
            row = self._row(trainer.current_epoch + 1)
            row["train/epoch_s"] = seconds
            row["train/samples"] = self._samples
            row["train/img_per_s"] = self._samples / seconds
        self._t0 = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            self._stop_clock(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_clock(trainer)
        loss = trainer.callback_metrics.get("train/loss_epoch")
        if loss is not None:
            self._row(trainer.current_epoch + 1)["train/loss"] = float(loss)

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Merge, not replace: Lightning also restores callbacks when testing the best checkpoint,
        # which would drop the epochs after it; a resumed run starts empty and gets them all.
        known = {row["epoch"] for row in self.history}
        self.history += [dict(r) for r in state_dict.get("history", []) if r["epoch"] not in known]
