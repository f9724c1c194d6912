"""Batches with a fixed share of pool samples (``aug.batch_fraction``), at the unaugmented run's
number of optimizer steps.

Without it the pool joins the epoch (clean ∪ pool: the paper's protocol, twice the steps of
``aug=none``). With ``batch_fraction=f`` every batch keeps the size the unaugmented run's batch
has, and ``round(f x size)`` of its rows come from the pool (AdvProp-style mixed batches, Xie et
al. 2020), so an arm costs what the baseline costs: same steps, same samples per epoch; a
seeded ``1 - f`` share of the clean set is seen per epoch, a fresh one each epoch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from advaug.data.sharding import drops_single_last


def batch_sizes(num_clean: int, batch_size: int, world_size: int = 1) -> list[int]:
    """The sizes of one rank's batches in an epoch of the clean set alone (the unaugmented run's:
    ``ceil(n / world)`` samples per rank, a last batch of one dropped as there)."""
    per_rank = math.ceil(num_clean / world_size)
    sizes = [batch_size] * (per_rank // batch_size) + ([per_rank % batch_size] if per_rank % batch_size else [])
    return sizes[:-1] if drops_single_last(num_clean, batch_size, world_size) else sizes


def pool_rows(size: int, fraction: float) -> int:
    """How many rows of a batch of ``size`` come from the pool."""
    return int(round(fraction * size))


def _cycled(values: torch.Tensor, start: int, count: int) -> list[int]:
    return [int(values[(start + i) % len(values)]) for i in range(count)]


def mixed_order(
    num_clean: int,
    pool_size: int,
    batch_size: int,
    fraction: float,
    seed: int,
    epoch: int,
    rank: int = 0,
    world_size: int = 1,
) -> list[int]:
    """Dataset indices (clean ``0..n-1``, then the pool ``n..n+m-1``) of one rank's epoch, batch
    after batch (:func:`batch_sizes`), each batch its clean rows and then its pool rows. Both sets
    are permuted by ``(seed, epoch)`` (the same on every rank, and on a resumed run) and sharded ``rank::world_size``; a pool
    smaller than the world is shared whole, and a pool shard shorter than needed is cycled."""
    key = np.random.SeedSequence([int(seed) % 2**63, int(epoch)]).generate_state(1)[0]
    generator = torch.Generator().manual_seed(int(key))
    clean = torch.randperm(num_clean, generator=generator)[rank::world_size]
    pool = torch.randperm(pool_size, generator=generator) + num_clean
    pool = pool[rank::world_size] if pool_size >= world_size else pool
    order, used_clean, used_pool = [], 0, 0
    for size in batch_sizes(num_clean, batch_size, world_size):
        k = pool_rows(size, fraction) if pool_size else 0
        order += _cycled(clean, used_clean, size - k) + _cycled(pool, used_pool, k)
        used_clean, used_pool = used_clean + size - k, used_pool + k
    return order


class MixedBatchSampler(DistributedSampler):
    """One rank's :func:`mixed_order` as a sampler, for a DataLoader with ``batch_size`` and no shuffle.

    A :class:`DistributedSampler` so that Lightning keeps it under DDP instead of wrapping it in
    one of its own (which would re-shard the order and mix the batches' rows across ranks); it
    shards itself. The DataModule makes one per train loader, i.e. per epoch.
    """

    def __init__(self, dataset: Dataset, order: list[int], rank: int = 0, world_size: int = 1) -> None:
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=False)
        self.order = list(order)

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)
