"""Base class of the callbacks that fill the DataModule's extra-sample pool (train = clean ∪ pool).

Lightning 2.x builds the first train loader in ``fit_loop.run`` after ``on_fit_start`` and
rebuilds it (``reload_dataloaders_every_n_epochs=1``) *before* ``on_train_epoch_start``. So the
pool for epoch 0 is made in ``on_fit_start`` and the pool for epoch ``e + 1`` in
``on_train_epoch_end`` of epoch ``e``; a pool made in ``on_train_epoch_start`` would arrive one
epoch late.

Resume: a checkpoint restores the DataModule (with its pool, or without it when the producer
marked it ``rebuildable``) and this callback's state before ``on_fit_start``, but the loop's epoch
only after it. So ``on_fit_start`` of a resumed run keeps the restored pool, or remakes the one of
``pool_epoch`` with the global random state left as the checkpoint restored it. A finished run
extended to more epochs (``trainer.max_epochs`` raised) made no pool after its last epoch: the
resumed run makes the one its next epoch is due, as the longer uninterrupted run did.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L
import torch

from advaug.callbacks.resume_state import rng_state_kept
from advaug.callbacks.stopping import fit_ends_before
from advaug.errors import ConfigError

log = logging.getLogger(__name__)


class PoolCallback(L.Callback):
    """Calls :meth:`make_pool` and hands the result to ``trainer.datamodule.set_extra``.

    ``every_n_epochs``: refill before every n-th epoch (1 = a fresh pool each epoch,
    0 = fill once before the first epoch and keep it).

    Subclasses whose pool depends only on ``(epoch, seeds, clean data)``, not on the weights or the
    global random state, set ``rebuildable = True``: checkpoints then leave the pool out and a
    resumed run remakes it.
    """

    rebuildable = False

    def __init__(self, every_n_epochs: int = 1) -> None:
        if every_n_epochs < 0:
            raise ConfigError(f"every_n_epochs={every_n_epochs}: use 0 (fill once) or a positive period.")
        self.every_n_epochs = int(every_n_epochs)
        self.last_fill_s: float | None = None
        self.fills = 0
        self.pool_epoch: int | None = None  # the epoch the current pool was made for (checkpointed)
        self.next_epoch: int | None = None  # the epoch after the last one ended (checkpointed)
        self._restored = False

    @property
    def active(self) -> bool:
        """False when the callback has nothing to do (e.g. the online protocol)."""
        return True

    def make_pool(
        self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the pool for ``epoch``: float images in [0,1] (N,3,H,W) and long masks (N,H,W)."""
        raise NotImplementedError

    def _fill(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> None:
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "set_extra"):
            raise ConfigError(
                f"{type(self).__name__} needs a datamodule with set_extra() (advaug.data.SegmentationDataModule); "
                "pass it as trainer.fit(model, datamodule=...)."
            )
        started = time.perf_counter()
        images, masks = self.make_pool(trainer, pl_module, epoch)
        datamodule.set_extra(images, masks, rebuildable=self.rebuildable)
        self.pool_epoch = epoch
        self.last_fill_s, self.fills = time.perf_counter() - started, self.fills + 1
        log.info(
            "%s: pool of %d samples for epoch %d in %.2f s",
            type(self).__name__,
            len(images),
            epoch,
            self.last_fill_s,
        )

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.active:
            return
        if not self._restored:
            self._fill(trainer, pl_module, trainer.current_epoch)
        elif self._due(self.next_epoch) and self.pool_epoch != self.next_epoch:
            # the checkpoint ended a run's last epoch, after which no pool was made; the longer
            # run made it from this random state (a DataLoader draws its base seed), so draw
            self._fill(trainer, pl_module, self.next_epoch)
        elif getattr(trainer.datamodule, "pool_left_out", False) and self.pool_epoch is not None:
            with rng_state_kept():  # the uninterrupted run drew for it before the checkpoint
                self._fill(trainer, pl_module, self.pool_epoch)
        # else: the checkpoint restored the pool itself

    def _due(self, epoch: int | None) -> bool:
        """Whether a fresh pool is made for ``epoch`` (every ``every_n_epochs``-th epoch)."""
        return epoch is not None and self.every_n_epochs > 0 and epoch % self.every_n_epochs == 0

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restored = False  # a later fit of the same callback starts afresh unless it loads again

    def state_dict(self) -> dict[str, Any]:
        return {"pool_epoch": self.pool_epoch, "next_epoch": self.next_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pool_epoch = state_dict.get("pool_epoch")
        self.next_epoch = state_dict.get("next_epoch")  # absent in checkpoints of older versions
        self._restored = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        upcoming = trainer.current_epoch + 1
        self.next_epoch = upcoming
        if not self.active or fit_ends_before(trainer, upcoming):
            return
        if self._due(upcoming):
            self._fill(trainer, pl_module, upcoming)
