"""A predicted mask drawn over its image: each foreground class in its own colour, blended."""

from __future__ import annotations

import numpy as np

# class 1 red, 2 green, 3 blue, then yellow, magenta, cyan, ... (cycled); background untouched
PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25], [240, 50, 230], [70, 240, 240],
     [245, 130, 48], [145, 30, 180], [210, 245, 60], [250, 190, 212]],
    dtype=np.float32,
)  # fmt: skip


def class_colour(k: int) -> np.ndarray:
    """The RGB colour of foreground class ``k`` (>= 1)."""
    return PALETTE[(k - 1) % len(PALETTE)]


def mask_overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with every pixel of class k >= 1 of ``mask`` (H, W) blended with
    class k's colour: ``(1 - alpha) * pixel + alpha * colour``. Returns (H, W, 3) uint8."""
    if image.shape[:2] != mask.shape:
        raise ValueError(f"mask_overlay: image {image.shape[:2]} and mask {mask.shape} differ in size")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay_alpha={alpha}: must be in [0, 1]")
    out = image.astype(np.float32)
    for k in np.unique(mask):
        if k == 0:
            continue
        where = mask == k
        out[where] = (1.0 - alpha) * out[where] + alpha * class_colour(int(k))
    return np.rint(out).clip(0, 255).astype(np.uint8)
