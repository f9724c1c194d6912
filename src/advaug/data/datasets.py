"""Torch datasets over in-memory tensors: clean pairs (with an optional on-the-fly transform)
and the extra-sample pool (adversarial or GAN samples as float so small eps survive, transformed
copies as uint8)."""

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
        return {"image": image.float().div_(255.0), "mask": mask.long(), "index": torch.tensor(index)}


def as_float_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 images as floats in [0,1] (x / 255, exact); float images as they are."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images


class ExtraPool(Dataset):
    """Extra training samples: images (N,3,H,W), float in [0,1] or uint8, and masks (N,H,W).

    uint8 images (transformed copies of the uint8 clean set) are kept as they are, a quarter of
    float's memory, and served as floats like the clean pairs; float ones (adversarial, GAN) stay
    float so that small perturbations survive. Masks are held as uint8 when the class ids fit and
    served as long.
    """

    def __init__(self, images: torch.Tensor, masks: torch.Tensor) -> None:
        if len(images) != len(masks):
            raise ValueError(f"pool has {len(images)} images but {len(masks)} masks")
        if masks.dtype != torch.uint8 and (masks.numel() == 0 or (masks.min() >= 0 and masks.max() <= 255)):
            masks = masks.to(torch.uint8)
        self.images, self.masks = images, masks

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = as_float_images(self.images[index])
        return {"image": image, "mask": self.masks[index].long(), "index": torch.tensor(-1 - index)}
