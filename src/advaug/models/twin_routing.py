"""The routing of one forward through twin BatchNorm layers (:mod:`advaug.models.twin_norm`):
which rows are adversarial (:class:`Split`), the object every twin layer of a net shares
(:class:`AuxRoute`), and the sort that puts a mixed batch clean-first at the net's forward."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch import Tensor, nn


class Split(NamedTuple):
    """One forward's routing, worked out once for all layers: ``kind`` is ``main`` (no adversarial
    sample), ``aux`` (only adversarial ones) or ``mixed``, where the twin layers see the clean rows
    first: the first ``n_main`` rows are the main layer's, the rest the twin's (views, no copy).
    ``perm`` sorts a batch that is not already clean rows first, ``inverse`` puts it back; both
    None when no sorting is needed."""

    kind: str
    size: int
    n_main: int
    perm: Tensor | None
    inverse: Tensor | None


def make_split(aux_mask: Tensor, device: torch.device | str | None = None) -> Split:
    """The :class:`Split` of a bool mask of shape (N,): one host read of the mask per forward,
    not one per layer."""
    if aux_mask.dim() != 1 or aux_mask.dtype != torch.bool:
        raise ValueError(
            f"aux_mask must be a bool tensor of shape (N,), got {aux_mask.dtype} {tuple(aux_mask.shape)}"
        )
    flags = aux_mask.detach().cpu()
    size, n_aux = flags.numel(), int(flags.sum())
    n_main = size - n_aux
    if n_aux == 0 or n_main == 0:
        return Split("main" if n_aux == 0 else "aux", size, n_main, None, None)
    if bool(flags[n_main:].all()):  # clean rows first: the parts are views, no gather
        return Split("mixed", size, n_main, None, None)
    order = torch.cat([(~flags).nonzero().squeeze(1), flags.nonzero().squeeze(1)])
    device = aux_mask.device if device is None else device
    return Split("mixed", size, n_main, order.to(device), torch.argsort(order).to(device))


class AuxRoute:
    """The routing of the current forward, one object referenced by every twin layer of a net (set
    by :func:`routed`): the layers share it without global state, and a deep copy of the net
    shares its own copy. ``sorted``: the net's forward has sorted a mixed batch clean-first (a
    twin layer reached some other way would see the rows unsorted)."""

    __slots__ = ("split", "sorted")

    def __init__(self) -> None:
        self.split: Split | None = None
        self.sorted = False


def _rows(value: object, index: Tensor, size: int) -> object:
    """``value`` with the rows of every batch tensor in it (first dimension ``size``; in tuples,
    lists and dicts too) taken in ``index`` order. Indexing keeps channels_last."""
    if isinstance(value, Tensor):
        return value[index] if value.dim() > 0 and value.shape[0] == size else value
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple
        return type(value)(*(_rows(v, index, size) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_rows(v, index, size) for v in value)
    if isinstance(value, dict):
        return {k: _rows(v, index, size) for k, v in value.items()}
    return value


@contextmanager
def sorted_rows(net: nn.Module, split: Split, routes: list[AuxRoute]) -> Iterator[None]:
    """While active, ``net``'s forward sorts its input rows clean first and its output rows back.
    Correct because every layer of a CNN treats the rows of a batch alike (a batch statistic does
    not depend on their order), and much cheaper than a gather and a scatter in every twin layer."""
    if split.perm is None:
        yield
        return
    perm, inverse, size = split.perm, split.inverse, split.size

    def mark(value: bool) -> None:
        for route in routes:
            route.sorted = value

    def sort_input(_module: nn.Module, args: tuple, kwargs: dict) -> tuple[object, object]:
        mark(True)
        return _rows(args, perm, size), _rows(kwargs, perm, size)

    def unsort_output(_module: nn.Module, _args: tuple, out: object) -> object:
        mark(False)
        return _rows(out, inverse, size)

    handles = [
        net.register_forward_pre_hook(sort_input, with_kwargs=True),
        net.register_forward_hook(unsort_output),
    ]
    try:
        yield
    finally:
        mark(False)
        for handle in handles:
            handle.remove()
