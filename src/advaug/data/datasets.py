"""Torch datasets over in-memory tensors: the clean pairs, with an optional on-the-fly transform
(the extra samples' slots are :class:`advaug.data.pool.SlotSamples`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset


def apply_joint(transform: Callable, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply an albumentations-style ``transform(image=HWC, mask=HW)`` to uint8 tensors (3,H,W), (H,W)."""
    out = transform(image=image.permute(1, 2, 0).numpy(), mask=mask.numpy())
    return (
        torch.from_numpy(np.ascontiguousarray(out["image"])).permute(2, 0, 1),
        torch.from_numpy(np.ascontiguousarray(out["mask"])),
    )


class CleanPairs(Dataset):
    """uint8 images (N,3,H,W) and masks (N,H,W) -> float image in [0,1], long mask.

    ``transform`` is an albumentations-style callable ``t(image=HWC uint8, mask=HW) -> dict``
    applied jointly to image and mask (one random draw for both).
    """

    def __init__(self, images: torch.Tensor, masks: torch.Tensor, transform: Callable | None = None) -> None:
        if images.dtype != torch.uint8 or masks.dtype != torch.uint8:
            raise TypeError("CleanPairs expects uint8 tensors")
        self.images, self.masks, self.transform = images, masks, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, mask = self.images[index], self.masks[index]
        if self.transform is not None:
            image, mask = apply_joint(self.transform, image, mask)
        return {
            "image": image.float().div_(255.0),
            "mask": mask.long(),
            "index": torch.tensor(index),
            "source": torch.tensor(0),  # advaug.data.pool.CLEAN
        }


def as_float_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 images as floats in [0,1] (x / 255, exact); float images as they are."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images
