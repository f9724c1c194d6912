"""The chain's geometric transforms as one sampling grid for ``grid_sample``: an elastic
deformation (a low-resolution displacement field, smoothed and upsampled) followed by an
affine map (rotation, scale, shift), composed into one grid so the image is interpolated once.
Masks follow with nearest-neighbour sampling, probabilities bilinearly. Pure functions; the
grids are in ``affine_grid``'s normalised coordinates (``align_corners=True``: -1 and 1 are the
centres of the border pixels), and zero parameters give the identity grid.

Grids and warps are computed in float64 and the result cast back: in float32 the identity grid
lands up to ~1e-7 x the image side off the pixel centres (4e-5 at 352 px), so zero parameters
would not give the image back; the warps are a small part of the cost next to the network.

A grid maps each *output* pixel to where it is read in the input (as ``affine_grid``): a shift
``t`` moves the content by ``-t``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

ALIGN = True  # the grids' corner convention, one for every call here


def affine_theta(unit: Tensor, bounds: Tensor) -> Tensor:
    """(N, 2, 3) matrices from affine parameters in budget units (N, 5) times their ``bounds``
    (radians, x and y scale change, x and y shift): ``[R(a) diag(1 + sx, 1 + sy) | t]``."""
    a, sx, sy, tx, ty = (unit * bounds.to(unit)).unbind(1)
    cos, sin = torch.cos(a), torch.sin(a)
    row0 = torch.stack([cos * (1 + sx), -sin * (1 + sy), tx], 1)
    row1 = torch.stack([sin * (1 + sx), cos * (1 + sy), ty], 1)
    return torch.stack([row0, row1], 1)


def identity_grid(n: int, size: tuple[int, int], like: Tensor) -> Tensor:
    """The (N, H, W, 2) grid that samples every pixel where it is."""
    theta = torch.eye(2, 3, dtype=like.dtype, device=like.device).expand(n, 2, 3)
    return F.affine_grid(theta, (n, 1, *size), align_corners=ALIGN)


def gaussian_smooth(field: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian smoothing (normalised kernel, replicated borders) of (N, C, h, w):
    each value becomes a convex combination, so bounds on the field still hold."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=field.dtype, device=field.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = field.shape[1]
    x = F.pad(field, (radius, radius, 0, 0), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def displacement(unit: Tensor, size: tuple[int, int], budget: float, sigma: float) -> Tensor:
    """The dense displacement (N, 2, H, W) in grid units from control points (N, 2, g, g) in
    budget units: smoothed on the control grid (``sigma`` in control cells), then bilinearly
    upsampled; both are convex averages, so each component stays within ``budget``."""
    return budget * F.interpolate(gaussian_smooth(unit, sigma), size=size, mode="bilinear", align_corners=ALIGN)


def sampling_grid(
    size: tuple[int, int],
    n: int,
    like: Tensor,
    theta: Tensor | None = None,
    field: Tensor | None = None,
) -> Tensor:
    """The (N, H, W, 2) grid of elastic-then-affine: ``out(q) = x(A q + d(A q))`` for the affine
    map ``A`` (``theta``, identity if None) and the displacement ``d`` (``field`` (N, 2, H, W),
    none if None), ``d`` read at ``A q`` bilinearly (border values outside)."""
    grid = identity_grid(n, size, like) if theta is None else F.affine_grid(theta, (n, 1, *size), align_corners=ALIGN)
    if field is None:
        return grid
    moved = F.grid_sample(field, grid, mode="bilinear", padding_mode="border", align_corners=ALIGN)
    return grid + moved.permute(0, 2, 3, 1)


def warp(x: Tensor, grid: Tensor, mode: str = "bilinear", padding: str = "zeros") -> Tensor:
    """``x`` (N, C, H, W) read at ``grid``; zeros outside the image (or the border's values,
    ``padding="border"``); in float64, see above."""
    out = F.grid_sample(x.double(), grid.double(), mode=mode, padding_mode=padding, align_corners=ALIGN)
    return out.to(x.dtype)


def warp_masks(masks: Tensor, grid: Tensor) -> Tensor:
    """Class masks (N, H, W) moved by ``grid`` with nearest-neighbour sampling (class 0 outside)."""
    moved = warp(masks[:, None].float(), grid, mode="nearest")
    return moved[:, 0].round().to(masks.dtype)


def coverage(grid: Tensor) -> Tensor:
    """(N, H, W) in [0, 1]: how much of each output pixel is read from inside the image (1 inside,
    0 outside, the bilinear share at the edge). Continuous in the grid, unlike a hard inside /
    outside test, whose jumps (a whole border row leaving the image under a tiny rotation) would
    make the divergence's gradient point nowhere in particular."""
    ones = torch.ones(grid.shape[0], 1, *grid.shape[1:3], dtype=grid.dtype, device=grid.device)
    return warp(ones, grid)[:, 0]
