"""A PNG grid of generated pairs, so a user can judge the GAN: mask | generated (| real)."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from advaug.utils.io import atomic_path


def pairs_grid(
    masks: torch.Tensor,
    fakes: torch.Tensor,
    path: str | Path,
    real: torch.Tensor | None = None,
    num_classes: int = 2,
) -> Path:
    """One row per sample: the mask (grey levels = class ids), the generated image and, when
    given, the real image of that mask. Written atomically. Returns ``path``."""
    if len(masks) == 0 or fakes.shape[0] != masks.shape[0]:
        raise ValueError(f"pairs_grid: {len(masks)} masks and {len(fakes)} images")
    shown = masks.float().div(max(num_classes - 1, 1)).unsqueeze(1).expand(-1, 3, -1, -1)
    columns = [shown, fakes.float()] + ([real.float()] if real is not None else [])
    tiles = torch.stack(columns, 1).flatten(0, 1).clamp(0, 1)
    grid = make_grid(tiles, nrow=len(columns), padding=2, pad_value=1.0)
    with atomic_path(path) as tmp:
        save_image(grid, tmp, format="png")
    return Path(path)
