"""Classic augmentation under either protocol: fill the pool with transformed copies of the
clean train set each epoch (``pool``), or do nothing because the DataModule applies the same
pipeline on the fly (``online``)."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch

from advaug.augment.pipeline import Pipeline, TransformedPairs, sample_seed, transformed_copies
from advaug.callbacks.pool import PoolCallback
from advaug.errors import ConfigError

PROTOCOLS = ("pool", "online")


def pool_indices(n: int, fraction: float, seed: int, epoch: int) -> np.ndarray:
    """Which clean samples get a transformed copy: ``round(fraction * n)`` indices from seeded
    permutations (``fraction > 1`` makes several copies of each)."""
    count = int(round(fraction * n))
    if count < 1:
        raise ConfigError(f"aug.fraction={fraction} selects no sample of a {n}-sample train set; raise it.")
    rng = np.random.default_rng(sample_seed(seed, epoch, -1))
    return np.concatenate([rng.permutation(n) for _ in range(math.ceil(count / n))])[:count]


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0,1] back to uint8 (exact for images that were uint8); uint8 as they are."""
    if images.dtype == torch.uint8:
        return images
    return images.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


class TransformPool(PoolCallback):
    """Refills the pool with ``pipeline``-transformed copies of ``fraction`` of the clean train set.

    The transform work runs in a DataLoader with ``num_workers`` workers; each sample is seeded
    from ``(seed, epoch, k)``, so a pool does not depend on the number of workers, and a
    checkpoint need not carry it (``rebuildable``).
    """

    rebuildable = True
    default_source = "transform"

    def __init__(
        self,
        pipeline: Pipeline,
        protocol: str = "pool",
        fraction: float = 1.0,
        seed: int = 0,
        num_workers: int = 0,
        batch_size: int = 64,
        every_n_epochs: int = 1,
        start_epoch: int = 0,
        source: str | None = None,
    ) -> None:
        super().__init__(every_n_epochs, start_epoch, source)
        if protocol not in PROTOCOLS:
            raise ConfigError(f"aug.protocol={protocol!r}: use one of {', '.join(PROTOCOLS)}.")
        if not fraction > 0:
            raise ConfigError(f"aug.fraction={fraction}: must be > 0 (1.0 = one copy of each train sample).")
        if num_workers < 0:
            raise ConfigError(f"aug.num_workers={num_workers}: must be >= 0.")
        self.pipeline, self.protocol, self.fraction = pipeline, protocol, float(fraction)
        self.seed, self.num_workers, self.batch_size = int(seed), int(num_workers), int(batch_size)

    @property
    def active(self) -> bool:
        return self.protocol == "pool"

    def transform(
        self, images: torch.Tensor, masks: torch.Tensor, epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Transformed copies for ``epoch`` of images (N,3,H,W), uint8 or float in [0,1], and masks
        (N,H,W): uint8 images (exact, as the clean ones are uint8) and long masks."""
        indices = pool_indices(len(images), self.fraction, self.seed, epoch)
        return transformed_copies(
            TransformedPairs(to_uint8(images), masks.to(torch.uint8), self.pipeline, indices, self.seed, epoch),
            self.num_workers,             self.batch_size,
        )

    def make_pool(
        self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # the split as held (uint8; base-augmented for this epoch under base=): no float round trip
        return self.transform(*trainer.datamodule.training_pairs(epoch), epoch)
