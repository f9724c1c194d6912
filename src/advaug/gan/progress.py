"""``GanProgress``: the GAN's training as one bar over all its steps (not one per short epoch), and
its expected duration, measured on the first steps, in the log."""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L

from advaug.utils.progress import progress

log = logging.getLogger(__name__)


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``: a duration as a person reads it."""
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class GanProgress(L.Callback):
    """A bar over the ``total`` generator steps, and one log line after ``measure_steps`` steps
    (past the first, which pays for warm-up) with the measured rate and the time the rest will take."""

    def __init__(self, total: int, enabled: bool | None = None, measure_steps: int = 10) -> None:
        self.total, self.enabled, self.measure_steps = int(total), enabled, max(int(measure_steps), 1)
        self.bar: Any = None
        self.steps = 0
        self.started: float | None = None
        self.estimate_s: float | None = None  # the time the whole training was expected to take

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log.info(
            "GAN: %d steps on %s; the expected time follows after %d steps",
            self.total, trainer.strategy.root_device, self.measure_steps + 1,
        )  # fmt: skip
        self.bar = progress(total=self.total, desc="GAN", unit="step", enabled=self.enabled)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps += 1
        if self.bar is not None:
            self.bar.update()
        if self.steps == 1:
            self.started = time.perf_counter()  # after the first step: warm-up is not the rate
        elif self.steps == self.measure_steps + 1 and self.started is not None:
            rate = self.measure_steps / max(time.perf_counter() - self.started, 1e-9)
            left = max(self.total - self.steps, 0) / rate
            self.estimate_s = self.steps / rate + left
            log.info(
                "GAN: %.2f steps/s on %s: about %s more (%s in all)",
                rate, trainer.strategy.root_device, duration(left), duration(self.estimate_s),
            )  # fmt: skip

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
