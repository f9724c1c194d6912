"""Twin ("auxiliary") BatchNorm layers for AdvProp-style training (Xie et al., CVPR 2020).

Clean and adversarial images have different feature statistics: one BatchNorm normalising both
mixes two distributions. :func:`add_twin_norms` gives every ``nn.BatchNorm2d`` of a net a twin
for the adversarial samples; :func:`routed` says, for one forward, which samples those are
(the per-forward bookkeeping: :mod:`advaug.models.twin_routing`).
Outside :func:`routed` every layer is exactly a plain BatchNorm2d (validation, test, attacks and
export all use the main statistics), and :func:`main_only` gives the plain net back.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import chain

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from advaug.errors import ConfigError
from advaug.models.twin_routing import AuxRoute, make_split, sorted_rows
from advaug.rules import check_aux_norm

KEY = "model.aux_norm"


def _batch_norm(stats: _BatchNorm, x: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    """``_BatchNorm.forward`` of ``stats`` (its running statistics, momentum and mode) with the
    given affine parameters: how a twin normalises with the main layer's weight and bias."""
    factor = 0.0 if stats.momentum is None else stats.momentum
    if stats.training and stats.track_running_stats and stats.num_batches_tracked is not None:
        stats.num_batches_tracked.add_(1)
        factor = 1.0 / float(stats.num_batches_tracked) if stats.momentum is None else stats.momentum
    use_batch = stats.training or (stats.running_mean is None and stats.running_var is None)
    track = not stats.training or stats.track_running_stats
    return F.batch_norm(
        x,
        stats.running_mean if track else None,
        stats.running_var if track else None,
        weight,
        bias,
        use_batch,
        factor,
        stats.eps,
    )


def _with_unused(
    weight: Tensor | None, bias: Tensor | None, unused: tuple[Tensor | None, ...]
) -> tuple[Tensor | None, Tensor | None]:
    """``weight`` and ``bias`` with a zero that depends on ``unused`` added to one of them: the
    parameters a forward does not use still get a (zero) gradient, so DDP with
    ``find_unused_parameters=False`` does not wait for them. Added to a (C,) vector, not to the
    output: no extra pass over the activations."""
    kept = [p for p in unused if p is not None]
    if not kept or (weight is None and bias is None):
        return weight, bias
    zero = 0 * sum(p.sum() for p in kept)
    return (weight, bias + zero) if bias is not None else (weight + zero, bias)


def _bias_kwarg(bias: bool) -> dict[str, bool]:
    """BatchNorm's ``bias`` switch (torch 2.14+) only where it is off: older torch lacks it."""
    return {} if bias else {"bias": False}


class TwinBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm2d (same parameter and buffer names, so the same state_dict keys) with a twin
    ``aux`` for the samples its :class:`AuxRoute` marks adversarial. With no routing set it is the
    plain BatchNorm2d, bit for bit. ``mode`` ``stats``: the twin has its own running statistics and
    uses the main weight and bias; ``affine``: its own statistics, weight and bias."""

    def __init__(
        self,
        num_features: int,
        mode: str = "stats",
        route: AuxRoute | None = None,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        bias: bool = True,
    ) -> None:
        if check_aux_norm(mode, KEY) == "none":
            raise ConfigError(
                f"{KEY}='none' has no twin layer: add_twin_norms(net, 'none') leaves the net as it is."
            )
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device, dtype, **_bias_kwarg(bias)
        )
        self.mode = mode
        self.route = AuxRoute() if route is None else route
        own = affine and mode == "affine"
        self.aux = nn.BatchNorm2d(
            num_features, eps, momentum, own, track_running_stats, device, dtype, **_bias_kwarg(bias)
        )
        self.copy_main_to_aux()

    @classmethod
    def from_batch_norm(cls, bn: nn.BatchNorm2d, mode: str, route: AuxRoute) -> TwinBatchNorm2d:
        """A twin layer holding ``bn``'s own parameter and buffer tensors (an optimizer built on the
        plain net still updates them), its twin starting as a copy of them."""
        like = next(chain(bn.parameters(recurse=False), bn.buffers(recurse=False)), None)
        twin = cls(
            bn.num_features,
            mode,
            route,
            bn.eps,
            bn.momentum,
            bn.affine,
            bn.track_running_stats,
            device=None if like is None else like.device,
            dtype=None if like is None or not like.is_floating_point() else like.dtype,
            bias=not bn.affine or bn.bias is not None,
        )
        _take_tensors(twin, bn)
        twin.copy_main_to_aux()
        return twin.train(bn.training)

    @torch.no_grad()
    def copy_main_to_aux(self) -> None:
        """The twin's statistics (and, in ``affine`` mode, weight and bias) := the main layer's."""
        for name, mine in chain(self.aux.named_parameters(), self.aux.named_buffers()):
            mine.copy_(getattr(self, name))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mode={self.mode}"

    def aux_affine(self) -> tuple[Tensor | None, Tensor | None]:
        """The twin's weight and bias: its own in ``affine`` mode, the main layer's in ``stats``."""
        return (self.aux.weight, self.aux.bias) if self.aux.affine else (self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        split = self.route.split
        if split is None:
            return super().forward(x)
        self._check_input_dim(x)
        if x.shape[0] != split.size:
            raise ValueError(f"routed: the aux mask has {split.size} entries but the batch has {x.shape[0]}")
        aux_weight, aux_bias = self.aux_affine()
        if split.kind == "main":
            unused = (self.aux.weight, self.aux.bias) if self.aux.affine else ()
            return _batch_norm(self, x, *_with_unused(self.weight, self.bias, unused))
        if split.kind == "aux":
            unused = (self.weight, self.bias) if self.aux.affine else ()
            return _batch_norm(self.aux, x, *_with_unused(aux_weight, aux_bias, unused))
        # clean rows first (routed sorted the net's input): two views, one cat, no gather per layer
        if split.perm is not None and not self.route.sorted:
            raise RuntimeError(
                "routed(net, mask): call net itself inside; its forward sorts a mixed batch clean-first "
                "for the twin layers, and this one was reached without it"
            )
        n = split.n_main
        return torch.cat(
            [
                _batch_norm(self, x[:n], self.weight, self.bias),
                _batch_norm(self.aux, x[n:], aux_weight, aux_bias),
            ]
        )


def _take_tensors(dst: nn.Module, src: nn.Module) -> None:
    """``dst`` holds ``src``'s own parameters and buffers, the same tensor objects."""
    for name, value in chain(src.named_parameters(recurse=False), src.named_buffers(recurse=False)):
        setattr(dst, name, value)


def _swap(
    net: nn.Module, want: Callable[[nn.Module], bool], make: Callable[[nn.Module], nn.Module]
) -> nn.Module:
    """Replace, in place, every submodule ``want`` picks by ``make(it)`` (a module reached twice is
    replaced once); returns ``net``, or its replacement if ``net`` itself is picked."""
    made: dict[int, nn.Module] = {}

    def new(old: nn.Module) -> nn.Module:
        if id(old) not in made:
            made[id(old)] = make(old)
        return made[id(old)]

    if want(net):
        return new(net)
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if want(child):
                setattr(parent, name, new(child))
    return net


def _is_plain_bn(module: nn.Module) -> bool:
    return isinstance(module, nn.BatchNorm2d) and not isinstance(module, TwinBatchNorm2d)


def add_twin_norms(net: nn.Module, mode: str) -> nn.Module:
    """Give every ``nn.BatchNorm2d`` of ``net`` (in place) a twin for adversarial samples, all
    sharing one :class:`AuxRoute`; ``mode`` is one of :data:`advaug.rules.AUX_NORMS` (``none``
    returns ``net`` untouched). Returns ``net``."""
    if check_aux_norm(mode, KEY) == "none":
        return net
    modules = list(net.modules())
    if any(isinstance(m, nn.SyncBatchNorm) for m in modules):
        raise ConfigError(
            f"{KEY}={mode!r}: the network has SyncBatchNorm layers, which twin BatchNorm does not support "
            f"(their statistics are gathered across processes); use {KEY}=none or plain BatchNorm2d."
        )
    if any(isinstance(m, TwinBatchNorm2d) for m in modules):
        raise ConfigError(
            f"{KEY}={mode!r}: the network already has twin BatchNorm layers (add_twin_norms ran twice)."
        )
    if not any(_is_plain_bn(m) for m in modules):
        raise ConfigError(
            f"{KEY}={mode!r}: the network has no BatchNorm2d layer to give a twin; use {KEY}=none."
        )
    route = AuxRoute()
    return _swap(net, _is_plain_bn, lambda bn: TwinBatchNorm2d.from_batch_norm(bn, mode, route))


def twin_layers(net: nn.Module) -> list[TwinBatchNorm2d]:
    return [m for m in net.modules() if isinstance(m, TwinBatchNorm2d)]


@contextmanager
def routed(net: nn.Module, aux_mask: Tensor | None) -> Iterator[nn.Module]:
    """For the forwards of ``net`` inside: rows of the batch where ``aux_mask`` (bool, shape (N,))
    is True go through the twin layers, the others through the main ones; the output keeps the
    input's row order. ``None``, or a net without twin layers: plain BatchNorm. Call ``net``
    itself inside (a mixed batch is sorted at its forward); the previous routing comes back on
    exit."""
    layers = twin_layers(net)
    routes = list({id(layer.route): layer.route for layer in layers}.values())
    split = None
    if aux_mask is not None and layers:
        like = next(chain(layers[0].buffers(), layers[0].parameters()), aux_mask)
        split = make_split(aux_mask, like.device)
    before = [route.split for route in routes]
    for route in routes:
        route.split = split
    try:
        if split is None:
            yield net
        else:
            with sorted_rows(net, split, routes):
                yield net
    finally:
        for route, old in zip(routes, before, strict=True):
            route.split = old


def _plain_copy(twin: TwinBatchNorm2d) -> nn.BatchNorm2d:
    bias = not twin.affine or twin.bias is not None
    bn = nn.BatchNorm2d(
        twin.num_features,
        twin.eps,
        twin.momentum,
        twin.affine,
        twin.track_running_stats,
        "meta",
        **_bias_kwarg(bias),
    )
    _take_tensors(bn, twin)
    return bn.train(twin.training)


def main_only(net: nn.Module) -> nn.Module:
    """A deep copy of ``net`` with every twin layer turned back into a plain ``nn.BatchNorm2d``
    holding the main weights and statistics: for export, and to compare with a plain model."""
    return _swap(copy.deepcopy(net), lambda m: isinstance(m, TwinBatchNorm2d), _plain_copy)
