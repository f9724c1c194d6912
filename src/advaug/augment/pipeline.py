"""A seeded albumentations pipeline for (image, mask) pairs, and a dataset that applies it.

albumentations 2.x keeps its own random state inside ``A.Compose`` (``np.random.seed`` and
Lightning's ``seed_everything`` do not reach it), and a DataLoader forks that state into every
worker, so without reseeding all workers replay the same draws. Two seeding modes cover the
two protocols:

* on the fly (``aug.protocol=online``): :class:`Pipeline` reseeds itself before every sample
  from the torch generator of the process it runs in. A DataLoader worker's generator is seeded
  from the run's stream when the loader starts, and the main process's is that stream, which
  checkpoints carry (``ResumeState``): a seeded run is reproducible and a resumed one draws
  what the uninterrupted one drew (the compose's own stream, restarted at construction, would
  replay epoch 0's draws after a resume);
* pool (``aug.protocol=pool``): :class:`TransformedPairs` reseeds per *sample* from
  ``(seed, epoch, index)``, so a pool is identical whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from advaug.data.datasets import apply_joint
from advaug.data.workers import worker_context
from advaug.errors import ConfigError

# OpenCV's own thread pool is not fork-safe: a DataLoader worker forked while a pool thread held
# its mutex waited on it forever (seen in CI: test_pool_is_the_same_for_any_number_of_workers
# hung after a 0-worker pool). Samples are spread over DataLoader workers instead.
cv2.setNumThreads(0)


def sample_seed(*keys: int) -> int:
    """A 32-bit seed derived from integer keys (e.g. run seed, epoch, sample index)."""
    return int(np.random.SeedSequence([int(k) % 2**63 for k in keys]).generate_state(1)[0])


class Pipeline:
    """Named albumentations transforms composed into one joint (image, mask) transform.

    ``ops`` maps a name to an albumentations transform (``None`` disables it), so config files
    can add or remove steps by name (``~aug.ops.jitter``). ``seed`` starts the compose's stream;
    a call reseeds it from the process's torch generator (see the module docstring); a
    :class:`TransformedPairs` sample reseeds it from its own keys. Masks are always resampled with
    nearest-neighbour interpolation, so they keep holding class ids.
    Call it like albumentations: ``pipeline(image=HWC uint8, mask=HW) -> {"image", "mask"}``.
    """

    def __init__(
        self,
        ops: Mapping[str, A.BasicTransform | None] | Sequence[A.BasicTransform],
        p: float = 1.0,
        seed: int = 0,
    ) -> None:
        steps = list(ops.values()) if isinstance(ops, Mapping) else list(ops)
        steps = [s for s in steps if s is not None]
        if not steps:
            raise ConfigError(
                "aug.ops is empty: name at least one albumentations transform, or use aug=none."
            )
        for step in steps:
            if not isinstance(step, A.BasicTransform | A.BaseCompose):
                raise ConfigError(
                    f"aug.ops: {step!r} is not an albumentations transform (give it a _target_)."
                )
        self.names = (
            [name for name, step in ops.items() if step is not None]  # a step set to null is off
            if isinstance(ops, Mapping)
            else [type(s).__name__ for s in steps]
        )
        self.seed = int(seed)
        self.compose = A.Compose(steps, p=p, mask_interpolation=cv2.INTER_NEAREST, seed=int(seed) % 2**32)

    def reseed(self, seed: int) -> None:
        """Restart the pipeline's random stream from ``seed``."""
        self.compose.set_random_seed(int(seed) % 2**32)

    def __call__(self, **data: Any) -> dict[str, Any]:
        # ~50 us per sample; each worker's torch generator differs, so workers never replay
        # each other's draws
        self.reseed(int(torch.randint(0, 2**32, (), dtype=torch.int64)))
        return self.compose(**data)

    def __repr__(self) -> str:
        return f"Pipeline({', '.join(self.names)})"


class Chain:
    """Joint transforms applied one after the other, e.g. the base augmentation and then the aug
    group's on-the-fly pipeline; each step draws its own randomness."""

    def __init__(self, *steps: Any) -> None:
        self.steps = [s for s in steps if s is not None]

    def __call__(self, **data: Any) -> dict[str, Any]:
        for step in self.steps:
            data = step(**data)
        return data

    def __repr__(self) -> str:
        return " -> ".join(map(repr, self.steps))


class TransformedPairs(Dataset):
    """Transformed copies of selected uint8 pairs; sample ``k`` is seeded by ``(seed, epoch, k)``.

    ``images`` (N,3,H,W) and ``masks`` (N,H,W) are uint8; ``indices`` picks the source pairs.
    Yields uint8 images (a quarter of float's memory; ``SamplePool.put`` takes them as they
    are and serves them as floats in [0,1]) and long masks.
    """

    def __init__(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        pipeline: Pipeline,
        indices: Sequence[int],
        seed: int,
        epoch: int,
    ) -> None:
        self.images, self.masks, self.pipeline = images, masks, pipeline
        self.indices, self.seed, self.epoch = list(indices), int(seed), int(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = self.indices[k]
        self.pipeline.reseed(sample_seed(self.seed, self.epoch, k))
        image, mask = apply_joint(self.pipeline.compose, self.images[i], self.masks[i])
        if image.shape[1:] != self.images.shape[2:] or mask.shape != self.masks.shape[1:]:
            raise ConfigError(
                f"aug pipeline changed the sample size from {tuple(self.images.shape[2:])} to "
                f"{tuple(image.shape[1:])}; crops must resize back (RandomResizedCrop size=${{dataset.image_size}})."
            )
        return image, mask.long()


def transformed_copies(
    dataset: TransformedPairs, num_workers: int = 0, batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every sample of ``dataset`` (its ``images[indices]`` and masks, transformed) through a
    DataLoader with ``num_workers`` workers: uint8 images and long masks, in ``indices`` order."""
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        shuffle=False,
        multiprocessing_context=worker_context(num_workers),
    )
    batches = list(loader)
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


# the key that sets the base augmentation's per-sample seeds apart from the producers'
BASE_STREAM = 0xBA5E


def base_copies(
    images: torch.Tensor, masks: torch.Tensor, base: Pipeline, epoch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every uint8 pair through the base augmentation for ``epoch``: sample ``k`` seeded by
    ``(seed, epoch, k)`` on a stream of its own, so a producer's pipeline (seeded by the same run
    seed) does not repeat the base's draws. uint8 images and masks."""
    seed = sample_seed(base.seed, BASE_STREAM)
    copies, copied = transformed_copies(TransformedPairs(images, masks, base, range(len(images)), seed, epoch))
    return copies, copied.to(torch.uint8)
