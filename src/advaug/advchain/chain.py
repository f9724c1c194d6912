"""The chain itself: noise -> bias -> elastic -> affine applied to a batch from parameters in
budget units (:mod:`advaug.advchain.budgets`), as a pure function. The photometric part is
clamped to [0, 1] before the warp, so every transformed image stays on the image scale."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from advaug.advchain.budgets import ChainBudgets, Params
from advaug.advchain.geometric import affine_theta, displacement, sampling_grid, warp, warp_masks
from advaug.advchain.photometric import additive_noise, apply_bias


@dataclass
class Transformed:
    """The transformed images and the sampling grid of the geometry (None: no geometric part)."""

    images: Tensor
    grid: Tensor | None

    def move_masks(self, masks: Tensor) -> Tensor:
        """Class masks (N, H, W) moved by the geometry (nearest neighbour)."""
        return masks if self.grid is None else warp_masks(masks, self.grid)


def geometry_grid(params: Params, budgets: ChainBudgets, size: tuple[int, int], like: Tensor) -> Tensor | None:
    """The sampling grid of the chain's elastic and affine parts (float64, as the warps of
    :mod:`advaug.advchain.geometric`), or None without them."""
    if not budgets.geometric:
        return None
    like = like.double()
    theta = field = None
    if "affine" in params:
        theta = affine_theta(params["affine"].double(), budgets.affine_bounds(like.device))
    if "elastic" in params:
        field = displacement(params["elastic"].double(), size, budgets.elastic, budgets.elastic_sigma)
    return sampling_grid(size, len(like), like, theta, field)


def apply_chain(x: Tensor, params: Params, budgets: ChainBudgets) -> Transformed:
    """``x`` (N, C, H, W) in [0, 1] through the chain given by ``params``."""
    out = x
    if "noise" in params:
        out = additive_noise(out, params["noise"], budgets.noise)
    if "bias" in params:
        out = apply_bias(out, params["bias"], budgets.bias)
    if "noise" in params or "bias" in params:
        out = torch.clamp(out, 0.0, 1.0)
    grid = geometry_grid(params, budgets, tuple(x.shape[-2:]), x)
    return Transformed(out if grid is None else warp(out, grid), grid)
