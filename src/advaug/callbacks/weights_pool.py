"""``WeightsPool``: a :class:`~advaug.callbacks.pool.PoolCallback` whose samples the current
weights make (an attack, an AdvChain optimisation): its rows are adversarial for the training
step's routing, and a checkpoint written once the weights have moved must carry its slot."""

from __future__ import annotations

import lightning as L
import torch

from advaug.callbacks.adversarial_base import check_two_class_output
from advaug.callbacks.pool import PoolCallback, pool_of


class WeightsPool(PoolCallback):
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "fit":
            pool_of(trainer).mark_adversarial(self.source)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check_model(trainer, pl_module)
        super().on_fit_start(trainer, pl_module)

    def check_model(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Before the first pool: a model with one output channel has a softmax that never changes."""
        images, _ = trainer.datamodule.train_images(torch.arange(1))
        check_two_class_output(pl_module, images)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        pool_of(trainer).weights_changed(self.source)  # a checkpoint from here on must carry the slot
