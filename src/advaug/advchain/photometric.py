"""The chain's photometric transforms, pure functions of images in [0, 1] and parameters in
budget units (:mod:`advaug.advchain.budgets`): additive noise and a smooth multiplicative bias
field. Zero parameters return the images unchanged."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def additive_noise(x: Tensor, unit: Tensor, budget: float) -> Tensor:
    """``x + budget * unit`` (``unit`` (N, C, H, W) within the unit box or ball)."""
    return x + budget * unit


def bias_field(unit: Tensor, size: tuple[int, int], budget: float) -> Tensor:
    """The multiplicative field (N, 1, H, W): ``1 + budget * up(unit)``, ``up`` the bilinear
    upsampling of the low-resolution control grid (N, 1, g, g) to the image size. Bilinear
    weights are convex, so ``|field - 1| <= budget`` wherever the control points obey it."""
    return 1.0 + budget * F.interpolate(unit, size=size, mode="bilinear", align_corners=True)


def apply_bias(x: Tensor, unit: Tensor, budget: float) -> Tensor:
    """``x`` times its :func:`bias_field` (one field for all channels)."""
    return x * bias_field(unit, tuple(x.shape[-2:]), budget)
