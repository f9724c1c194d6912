"""``PoolCallback``: base of the producers that fill one slot of the DataModule's
:class:`~advaug.data.pool.SamplePool` (train = clean ∪ every slot) on a :class:`Schedule`.

Lightning 2.x builds the first train loader in ``fit_loop.run`` after ``on_fit_start`` and
rebuilds it (``reload_dataloaders_every_n_epochs=1``) *before* ``on_train_epoch_start``. So the
pool for epoch 0 is made in ``on_fit_start`` and the pool for epoch ``e + 1`` in
``on_train_epoch_end`` of epoch ``e``; a pool made in ``on_train_epoch_start`` would arrive one
epoch late.

Resume: a checkpoint restores the DataModule (with this slot, or without it when the producer
marked it ``rebuildable``) and this callback's state before ``on_fit_start``, but the loop's epoch
only after it. So ``on_fit_start`` of a resumed run keeps the restored slot, or remakes the one of
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
from advaug.callbacks.schedule import Schedule
from advaug.callbacks.stopping import fit_ends_before
from advaug.data.pool import SamplePool
from advaug.errors import ConfigError

log = logging.getLogger(__name__)


def pool_of(trainer: L.Trainer) -> SamplePool:
    """The trainer's DataModule's :class:`SamplePool`; one message when there is none."""
    pool = getattr(trainer.datamodule, "pool", None)
    if not isinstance(pool, SamplePool):
        raise ConfigError(
            "the augmentation callbacks need a DataModule with a SamplePool `pool` "
            "(advaug.data.SegmentationDataModule); pass it as trainer.fit(model, datamodule=...)."
        )
    return pool


class PoolCallback(L.Callback):
    """Calls :meth:`make_pool` for every epoch the schedule makes due and puts the result into
    the pool's slot ``source``.

    Subclasses whose pool depends only on ``(epoch, seeds, clean data)``, not on the weights or the
    global random state, set ``rebuildable = True``: checkpoints then leave the slot out and a
    resumed run remakes it.
    """

    rebuildable = False
    default_source = "pool"

    def __init__(self, every_n_epochs: int = 1, start_epoch: int = 0, source: str | None = None) -> None:
        self.schedule = Schedule(int(start_epoch), int(every_n_epochs))
        self.source = str(source or self.default_source)
        self.last_fill_s: float | None = None
        self.fills = 0
        self.pool_epoch: int | None = None  # the epoch the current pool was made for (checkpointed)
        self.next_epoch: int | None = None  # the epoch a resumed run starts with (checkpointed)
        self._restored = False

    @property
    def state_key(self) -> str:
        return self._generate_state_key(source=self.source)

    @property
    def active(self) -> bool:
        """False when the callback has nothing to do (e.g. the online protocol)."""
        return True

    def make_pool(
        self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the pool for ``epoch``: images (N,3,H,W; float in [0,1] or uint8) and masks (N,H,W)."""
        raise NotImplementedError

    def after_fill(
        self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int, num: int, seconds: float, remade: bool
    ) -> None:
        """Called after the pool of ``epoch`` (``num`` samples) is in place; ``remade``: a pool
        remade on resume, which the uninterrupted run already reported."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or not self.active:
            return
        pool_of(trainer)
        if trainer.reload_dataloaders_every_n_epochs != 1:
            raise ConfigError(
                f"trainer.reload_dataloaders_every_n_epochs={trainer.reload_dataloaders_every_n_epochs}: "
                "the augmentation pool changes between epochs, set it to 1."
            )

    def _fill(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int, remade: bool = False) -> None:
        pool = pool_of(trainer)
        started = time.perf_counter()
        images, masks = self.make_pool(trainer, pl_module, epoch)
        pool.put(self.source, images, masks, rebuildable=self.rebuildable)
        self.pool_epoch = epoch
        self.last_fill_s, self.fills = time.perf_counter() - started, self.fills + 1
        log.info("%s: pool of %d samples for epoch %d in %.2f s", self.source, len(images), epoch, self.last_fill_s)
        self.after_fill(trainer, pl_module, epoch, len(images), self.last_fill_s, remade)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.active:
            return
        due = self.schedule.due
        if not self._restored:
            epoch = trainer.current_epoch
            if due(epoch) and not fit_ends_before(trainer, epoch):
                self._fill(trainer, pl_module, epoch)
        elif due(self.next_epoch) and self.pool_epoch != self.next_epoch and not fit_ends_before(
            trainer, self.next_epoch
        ):
            # the checkpoint ended a run's last epoch, after which no pool was made; the longer
            # run made it from this random state (a DataLoader draws its base seed), so draw
            self._fill(trainer, pl_module, self.next_epoch)
        elif pool_of(trainer).left_out(self.source) and self.pool_epoch is not None:
            with rng_state_kept():  # the uninterrupted run drew for it before the checkpoint
                self._fill(trainer, pl_module, self.pool_epoch, remade=True)
        # else: the checkpoint restored the slot itself

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.next_epoch = trainer.current_epoch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # a checkpoint written after the epoch's last batch resumes with the next epoch
        last = batch_idx + 1 >= trainer.num_training_batches
        self.next_epoch = trainer.current_epoch + (1 if last else 0)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        upcoming = trainer.current_epoch + 1
        self.next_epoch = upcoming
        if not self.active or not self.schedule.due(upcoming):
            return
        if fit_ends_before(trainer, upcoming):
            # no epoch trains on the current pool any more (a run extended from here makes a
            # fresh one first), so the final checkpoint need not carry it
            pool_of(trainer).clear(self.source)
            return
        self._fill(trainer, pl_module, upcoming)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restored = False  # a later fit of the same callback starts afresh unless it loads again

    def state_dict(self) -> dict[str, Any]:
        return {"pool_epoch": self.pool_epoch, "next_epoch": self.next_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pool_epoch = state_dict.get("pool_epoch")
        self.next_epoch = state_dict.get("next_epoch")
        self._restored = True
