"""``ChainBudgets``: which transforms the chain has and how far each may go, and the parameters
in *budget units*: every transform's parameters are stored divided by their budget, so a budget
is the unit box (L-inf) or the unit ball (the L2 noise), the projection is a clamp or a rescale,
and zero parameters are the identity.

| transform | parameters (N rows) | budget (physical) |
|---|---|---|
| noise   | (N, C, H, W)  | ``noise`` per pixel (``linf``) or per image (``l2``) on the [0, 1] scale |
| bias    | (N, 1, g, g)  | ``|field - 1| <= bias`` (a multiplicative field, g = ``bias_grid``) |
| elastic | (N, 2, g, g)  | displacement ``<= elastic`` per axis, in half image sides (affine_grid's units) |
| affine  | (N, 5)        | rotation ``<= rotate`` degrees, scale change ``<= scale`` per axis, shift ``<= translate`` |
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from advaug.rules import (
    check_budget,
    check_chain_transforms,
    check_count,
    check_noise_norm,
    check_positive,
    check_scale_budget,
)

Params = dict[str, Tensor]
AFFINE_PARAMS = 5  # rotation, x scale, y scale, x shift, y shift


@dataclass(frozen=True)
class ChainBudgets:
    """The chain's transforms (in the fixed order noise, bias, elastic, affine) and their budgets;
    defaults follow AdvChain's README (bias 0.3, rotation 30 degrees, scale 0.2, shift 0.1)."""

    transforms: tuple[str, ...] = ("noise", "bias", "elastic", "affine")
    noise: float = 1.0
    noise_norm: str = "l2"
    bias: float = 0.3
    bias_grid: int = 4
    elastic: float = 0.05
    elastic_grid: int = 8
    elastic_sigma: float = 1.0
    rotate: float = 30.0
    scale: float = 0.2
    translate: float = 0.1

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise the values once, here
        set_(self, "transforms", check_chain_transforms(self.transforms, "aug.transforms"))
        for name, key in (
            ("noise", "aug.noise.budget"),
            ("bias", "aug.bias.budget"),
            ("elastic", "aug.elastic.budget"),
            ("rotate", "aug.affine.rotate"),
            ("scale", "aug.affine.scale"),
            ("translate", "aug.affine.translate"),
        ):
            set_(self, name, check_budget(getattr(self, name), key))
        set_(self, "noise_norm", check_noise_norm(self.noise_norm, "aug.noise.norm"))
        check_count(self.bias_grid, "aug.bias.grid", 2)
        check_count(self.elastic_grid, "aug.elastic.grid", 2)
        set_(self, "elastic_sigma", check_positive(self.elastic_sigma, "aug.elastic.sigma"))
        check_scale_budget(self.scale, "aug.affine.scale")

    @property
    def geometric(self) -> bool:
        """Whether the chain moves pixels (then masks and the clean prediction move too)."""
        return any(t in self.transforms for t in ("elastic", "affine"))

    def affine_bounds(self, device=None) -> Tensor:
        """The affine parameters' physical bounds: radians, scale changes, shifts."""
        values = [math.radians(self.rotate), self.scale, self.scale, self.translate, self.translate]
        return torch.tensor(values, device=device)


def _shapes(budgets: ChainBudgets, shape: torch.Size) -> dict[str, tuple[int, ...]]:
    n, c, h, w = shape
    table = {
        "noise": (n, c, h, w),
        "bias": (n, 1, budgets.bias_grid, budgets.bias_grid),
        "elastic": (n, 2, budgets.elastic_grid, budgets.elastic_grid),
        "affine": (n, AFFINE_PARAMS),
    }
    return {name: table[name] for name in budgets.transforms}


def zero_parameters(budgets: ChainBudgets, shape: torch.Size, device=None) -> Params:
    """The identity chain for images of ``shape`` (N, C, H, W)."""
    return {name: torch.zeros(s, device=device) for name, s in _shapes(budgets, shape).items()}


def _l2_rows(t: Tensor) -> Tensor:
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.ndim - 1)))


def random_parameters(
    budgets: ChainBudgets, shape: torch.Size, generator: torch.Generator | None = None, device=None
) -> Params:
    """A random start within the budgets, drawn on ``generator``'s device (CPU by default, so a
    seeded start is the same on every device) and moved to ``device``: uniform in the box; the L2
    noise a uniform direction with a radius ~ U(0, 1)."""
    on = generator.device if generator is not None else "cpu"
    out = {}
    for name, s in _shapes(budgets, shape).items():
        if name == "noise" and budgets.noise_norm == "l2":
            direction = torch.randn(s, generator=generator, device=on)
            radius = torch.rand(s[0], generator=generator, device=on).view(-1, *([1] * (len(s) - 1)))
            value = direction / _l2_rows(direction).clamp_min(1e-12) * radius
        else:
            value = torch.rand(s, generator=generator, device=on) * 2 - 1
        out[name] = value.to(device)
    return out


def project(params: Params, budgets: ChainBudgets) -> Params:
    """Back into the budgets: the unit box, the unit L2 ball per image for the L2 noise."""
    out = {}
    for name, value in params.items():
        if name == "noise" and budgets.noise_norm == "l2":
            out[name] = value / _l2_rows(value).clamp_min(1.0)
        else:
            out[name] = value.clamp(-1.0, 1.0)
    return out


def ascent_step(params: Params, grads: Params, budgets: ChainBudgets, step_size: float, direction: int = 1) -> Params:
    """One normalised gradient step per image and transform, then :func:`project`: each image's
    parameters move by ``step_size`` budgets (``step_size x sqrt(k)`` in L2 for a box of ``k``
    parameters, ``step_size`` for the L2 noise) along its gradient (``direction=-1``: against it)."""
    moved = {}
    for name, value in params.items():
        grad = grads[name]
        k = value[0].numel()
        length = step_size * (1.0 if name == "noise" and budgets.noise_norm == "l2" else math.sqrt(k))
        unit = grad / _l2_rows(grad).clamp_min(1e-12)
        moved[name] = value.detach() + direction * length * unit.detach()
    return project(moved, budgets)
