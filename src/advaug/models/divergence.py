"""``LossWatch``: stop at the first non-finite training loss without a host-device sync per step.

Reading a CUDA loss on the host (``bool(torch.isfinite(loss))``, ``loss.item()``) waits until the
GPU has finished *everything* queued before it, so the host cannot queue the next step while the
GPU works. Here each loss is copied into pinned host memory asynchronously and a CUDA event marks
the copy; the value is read once the event reports it done (``event.query()``, no wait), usually
one or two steps later. ``flush`` waits for the rest: the module calls it at the last batch of an
epoch, so no epoch-end hook (a pool, a checkpoint) ever sees diverged weights.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import torch

from advaug.errors import TrainingDivergedError


def raise_if_diverged(value: float, epoch: int, step: int, batch_idx: int) -> None:
    """Raise :class:`TrainingDivergedError` naming the step when ``value`` is NaN or infinite."""
    if not math.isfinite(value):  # plain Python: no tensor made per step
        kept = (
            f"checkpoints/last.ckpt keeps the weights of the end of epoch {epoch - 1}."
            if epoch > 0
            else "no epoch had ended, so no checkpoint was written."
        )
        raise TrainingDivergedError(
            f"loss became {value} at epoch {epoch}, step {step} (batch {batch_idx}). "
            f"Lower the learning rate (optim.optimizer.lr) or check the input data; {kept}"
        )


class LossWatch:
    """Checks training losses for NaN / inf, each as soon as it can be read without a wait.

    ``deferred=False`` checks every loss at once (right for CPU tensors, where nothing is queued).
    ``deferred=True`` keeps up to ``max_pending`` unread losses; beyond that it waits for the
    oldest, which bounds how many steps a diverged run goes on. On a CPU tensor the deferred path
    reads the loss at the next ``push`` / ``poll``, one step late (a GPU copy is read when done).
    """

    def __init__(self, deferred: bool, max_pending: int = 8) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending={max_pending}: must be at least 1")
        self.deferred, self.max_pending = bool(deferred), int(max_pending)
        self._pending: deque[tuple[torch.Tensor, Any, tuple[int, int, int]]] = deque()

    def __len__(self) -> int:
        return len(self._pending)

    def push(self, loss: torch.Tensor, epoch: int, step: int, batch_idx: int) -> None:
        """Queue ``loss`` (a scalar) of the step ``(epoch, step, batch_idx)`` for checking."""
        where = (int(epoch), int(step), int(batch_idx))
        value = loss.detach().float().reshape(())
        if not self.deferred:
            raise_if_diverged(float(value), *where)
            return
        self.poll()  # earlier steps first: the error names the first non-finite loss
        self._pending.append((*self._stage(value), where))
        if len(self._pending) > self.max_pending:
            self._read_oldest(wait=True)

    @staticmethod
    def _stage(value: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """A host copy of ``value`` and an event that reports when it is filled (None: now)."""
        if not value.is_cuda:
            return value, None
        host = torch.empty((), dtype=torch.float32, pin_memory=True)
        host.copy_(value, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return host, event

    def poll(self) -> None:
        """Check every queued loss that is readable now, oldest first; never waits."""
        while self._pending and self._read_oldest(wait=False):
            pass

    def flush(self) -> None:
        """Check all queued losses, waiting for the device where needed."""
        while self._pending:
            self._read_oldest(wait=True)

    def clear(self) -> None:
        """Forget the queued losses unread (a run that stops anyway)."""
        self._pending.clear()

    def _read_oldest(self, wait: bool) -> bool:
        host, event, where = self._pending[0]
        if event is not None and not event.query():
            if not wait:
                return False
            event.synchronize()
        self._pending.popleft()
        raise_if_diverged(float(host), *where)
        return True
