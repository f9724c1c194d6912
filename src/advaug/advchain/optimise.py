"""Optimise the chain's parameters against a model: start random within the budgets, take
``n_iter`` normalised gradient steps that raise the divergence between the prediction on the
transformed image and the clean prediction moved by the same geometry, project back after each.
No label is used (the objective is VAT-style). During the optimisation the model's weights get
no gradient and its normalisation layers' running statistics do not move (eval mode, or train
mode with the layers told not to track: :func:`statistics_frozen`); its modes, tracking and
``requires_grad`` flags are restored after."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from advaug.advchain.budgets import ChainBudgets, Params, ascent_step, random_parameters
from advaug.advchain.chain import Transformed, apply_chain
from advaug.advchain.divergence import prediction_divergence
from advaug.advchain.geometric import coverage, warp
from advaug.attacks import eval_mode
from advaug.rules import check_budget, check_count, check_divergence, check_positive


@dataclass(frozen=True)
class ChainObjective:
    """How the parameters are optimised: ``n_iter`` steps (0: the random start only) of
    ``step_size`` budgets, on ``divergence`` (``kl`` | ``mse``) plus ``contour_weight`` x the
    contour term."""

    n_iter: int = 1
    step_size: float = 1.0
    divergence: str = "kl"
    contour_weight: float = 0.0

    def __post_init__(self) -> None:
        check_count(self.n_iter, "aug.n_iter", 0)
        check_positive(self.step_size, "aug.step_size")
        check_divergence(self.divergence, "aug.divergence")
        check_budget(self.contour_weight, "aug.contour_weight", "the contour term")


@dataclass
class ChainResult:
    """The optimised parameters, the batch they transform, and the divergence per image at the
    random start and at the end (None where not measured)."""

    params: Params
    transformed: Transformed
    start: Tensor | None
    end: Tensor | None


@contextlib.contextmanager
def statistics_frozen(model: nn.Module) -> Iterator[None]:
    """Train-mode forwards inside normalise with the batch's statistics but leave the running
    ones untouched: ``track_running_stats`` is off (AdvChain's way). Unlike restoring the
    buffers afterwards, nothing is written in place, so a training step's pending backward, which
    saved those buffers, still works."""
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    flags = [m.track_running_stats for m in layers]
    for m in layers:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m, flag in zip(layers, flags, strict=True):
            m.track_running_stats = flag


@contextlib.contextmanager
def weights_frozen(model: nn.Module) -> Iterator[None]:
    """No parameter of ``model`` requires a gradient inside; each flag comes back on exit."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _frozen_mode(model: nn.Module, use_eval_mode: bool) -> contextlib.AbstractContextManager:
    return eval_mode(model) if use_eval_mode else statistics_frozen(model)


def divergence_of(
    forward: Callable[[Tensor], Tensor], reference: Tensor, t: Transformed, objective: ChainObjective
) -> Tensor:
    """Per image: the prediction on ``t.images`` against ``reference`` moved by ``t``'s geometry
    (border values outside, so it stays a distribution), weighted by how much of each pixel comes
    from inside the image (:func:`~advaug.advchain.geometric.coverage`)."""
    weights = None if t.grid is None else coverage(t.grid)
    moved = reference if t.grid is None else warp(reference, t.grid, padding="border")
    return prediction_divergence(moved, forward(t.images), objective.divergence, weights, objective.contour_weight)


def optimise_chain(
    model: nn.Module,
    x: Tensor,
    budgets: ChainBudgets,
    objective: ChainObjective,
    *,
    reference: Tensor | None = None,
    forward: Callable[[Tensor], Tensor] | None = None,
    use_eval_mode: bool = True,
    generator: torch.Generator | None = None,
    direction: int = 1,
    measure: bool = True,
) -> ChainResult:
    """The chain for batch ``x`` (N, C, H, W) in [0, 1], optimised against ``model``.

    ``reference``: the clean probabilities (default: ``softmax(model(x))`` in the same mode);
    ``forward``: how to call the model (default ``model``; e.g. routed through twin layers);
    ``use_eval_mode``: optimise in eval mode, else in the model's own mode with the running
    statistics frozen (:func:`statistics_frozen`); ``generator``: the random start's (CPU by default); ``direction=-1`` descends (lowers the
    divergence: a check that the gradient is wired); ``measure``: also return the divergence per
    image at the start and at the end (one more forward).
    """
    forward = forward or model
    x = x.detach()
    with torch.inference_mode(False), torch.enable_grad(), _frozen_mode(model, use_eval_mode), weights_frozen(model):
        if reference is None:
            with torch.no_grad():
                reference = forward(x).float().softmax(1)
        reference = reference.detach()
        params = random_parameters(budgets, x.shape, generator, x.device)
        start = None
        for step in range(objective.n_iter):
            params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
            score = divergence_of(forward, reference, apply_chain(x, params, budgets), objective)
            if step == 0:
                start = score.detach()
            names = list(params)
            grads = torch.autograd.grad(score.sum(), [params[k] for k in names])
            params = ascent_step(params, dict(zip(names, grads, strict=True)), budgets, objective.step_size, direction)
        params = {k: v.detach() for k, v in params.items()}
        with torch.no_grad():
            transformed = apply_chain(x, params, budgets)
            end = None
            if measure:
                end = divergence_of(forward, reference, transformed, objective).detach()
                if start is None:  # no step: the start is the end
                    start = end
    return ChainResult(params, transformed, start if measure else None, end)
