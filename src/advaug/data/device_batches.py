"""``DeviceBatches``: whole batches gathered from tensors that already sit on the training
device — no per-sample Python, no collate, no host-to-device copy per step. For small sets that
fit in GPU memory (``dataset.on_device=true``); an iterable Lightning takes as a dataloader."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch


class DeviceBatches:
    """Batches ``{"image", "mask", "index", "source"}`` of ``images`` (float, N×3×H×W), ``masks``
    (N×H×W, served as long), ``index`` (the sample ids the free adversarial mode reads: >= 0
    clean, < 0 pool) and ``source`` (0 clean, else the pool slot's code), all on one device. ``shuffle``: a fresh ``torch.randperm`` on that device per pass
    (its generator is the device's global one, seeded by ``seed_everything`` and restored on
    resume); otherwise in order, or in ``order`` (rows, e.g. mixed batches) when given. The last
    batch may be smaller; ``drop_last`` leaves it out.
    """

    def __init__(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        index: torch.Tensor,
        source: torch.Tensor,
        batch_size: int,
        shuffle: bool,
        drop_last: bool = False,
        order: torch.Tensor | None = None,
    ) -> None:
        if not (len(images) == len(masks) == len(index) == len(source)):
            raise ValueError(
                f"DeviceBatches: {len(images)} images, {len(masks)} masks, {len(index)} ids, {len(source)} sources"
            )
        if batch_size < 1:
            raise ValueError(f"DeviceBatches: batch_size={batch_size}")
        self.images, self.masks, self.index, self.source = images, masks, index, source
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), bool(shuffle), bool(drop_last)
        self.order = order

    def __len__(self) -> int:
        n = len(self.images) if self.order is None else len(self.order)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        n, device = len(self.images), self.images.device
        order = torch.randperm(n, device=device) if self.shuffle else torch.arange(n, device=device)
        order = order if self.order is None else self.order
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            rows = order[start : start + self.batch_size]
            yield {
                "image": self.images[rows],
                "mask": self.masks[rows].long(),
                "index": self.index[rows],
                "source": self.source[rows],
            }
