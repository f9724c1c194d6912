"""``GanPool``: train (or load) the pix2pix GAN on the train split, then fill the pool with
generated pairs: real train masks after random geometric transforms, and the generator's images
for them."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger

from advaug.augment.pipeline import Pipeline, TransformedPairs, sample_seed, transformed_copies
from advaug.callbacks.pool import PoolCallback, pool_of
from advaug.callbacks.transform_pool import to_uint8
from advaug.errors import ConfigError
from advaug.figures import pairs_grid
from advaug.gan.module import Pix2PixGAN
from advaug.gan.recipe import GanRecipe
from advaug.loggers import log_overlays

log = logging.getLogger(__name__)


class GanPool(PoolCallback):
    """Pool of ``num_samples`` generated pairs (default: the train split's size), refreshed every
    ``every_n_epochs`` epochs with new mask transforms and new dropout noise.

    The GAN is trained on ``trainer.datamodule.train_images()`` (the training split only) through
    ``recipe`` before the first epoch, or loaded from its cache. The first pool is drawn as a PNG
    grid into ``figures_dir`` (and to W&B when a WandbLogger is attached).

    A pool is seeded by ``(seed, epoch)`` and made by the cached generator, so checkpoints leave it
    out and a resumed run draws it again (``rebuildable``).
    """

    rebuildable = True
    default_source = "gan"

    def __init__(
        self,
        recipe: GanRecipe,
        mask_pipeline: Pipeline,
        protocol: str = "pool",
        num_samples: int | None = None,
        seed: int = 0,
        num_workers: int = 0,
        every_n_epochs: int = 1,
        figures_dir: str | None = None,
        start_epoch: int = 0,
        source: str | None = None,
    ) -> None:
        super().__init__(every_n_epochs, start_epoch, source)
        if protocol != "pool":
            raise ConfigError(
                f"aug.protocol={protocol!r}: aug=gan adds generated pairs to the training set, so only "
                "aug.protocol=pool is defined for it."
            )
        if num_samples is not None and num_samples < 1:
            raise ConfigError(
                f"aug.num_samples={num_samples}: must be >= 1 (or null = size of the train split)."
            )
        self.recipe, self.mask_pipeline = recipe, mask_pipeline
        self.num_samples, self.seed, self.num_workers = num_samples, int(seed), int(num_workers)
        self.figures_dir = Path(figures_dir) if figures_dir else None
        self.gan: Pix2PixGAN | None = None
        self.gan_dir: Path | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        images, masks = trainer.datamodule.train_images()
        name = getattr(trainer.datamodule, "name", "dataset")
        self.gan, self.gan_dir = self.recipe.ensure(name, images, masks)
        self.gan.to(pl_module.device)
        super().on_fit_start(trainer, pl_module)
        if trainer.is_global_zero:
            self._draw(trainer)

    def sample(
        self, images: torch.Tensor, masks: torch.Tensor, epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Generated pairs for ``epoch`` from the train split's masks (images only ride along)."""
        n = self.num_samples or len(masks)
        rng = np.random.default_rng(sample_seed(self.seed, epoch, -2))
        indices = rng.choice(len(masks), n, replace=n > len(masks))
        _, new_masks = transformed_copies(
            TransformedPairs(to_uint8(images), masks.to(torch.uint8), self.mask_pipeline, indices, self.seed, epoch),
            self.num_workers,
        )
        assert self.gan is not None, "sample() before the GAN was loaded"
        fakes = self.gan.generate(new_masks, seed=sample_seed(self.seed, epoch, -3))
        return fakes, new_masks

    def make_pool(
        self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sample(*trainer.datamodule.data["train"], epoch)  # uint8, as held

    def _draw(self, trainer: L.Trainer) -> None:
        pool = pool_of(trainer).get(self.source)
        if pool is None or self.figures_dir is None:
            return
        images, masks = pool
        k = min(8, len(masks))
        path = pairs_grid(
            masks[:k],
            images[:k],
            self.figures_dir / "gan_samples.png",
            num_classes=self.gan.num_classes,
        )
        log.info("GAN samples of the first pool: %s (generator cached in %s)", path, self.gan_dir)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="gan/samples", images=[str(path)], caption=["mask | generated"])
        log_overlays(trainer.loggers, "gan/overlays", images[:k], {"conditioning_mask": masks[:k]},
                     self.gan.num_classes, "generated")  # fmt: skip
