"""Mixed batches (aug.batch_fraction): the share of pool rows per batch, the unaugmented run's
steps, seeding, DDP shards, and the loaders that serve them."""

from __future__ import annotations

import pytest
import torch
from test_adversarial_callback import datamodule

from advaug.data.mixed_batches import MixedBatchSampler, batch_sizes, mixed_order, pool_rows
from advaug.errors import ConfigError
from advaug.rules import check_batch_fraction


def batches(order, sizes):
    out, start = [], 0
    for size in sizes:
        out.append(order[start : start + size])
        start += size
    return out


@pytest.mark.parametrize(("n", "b", "world"), [(40, 8, 1), (37, 8, 1), (41, 8, 2), (9, 4, 1)])
def test_each_batch_has_its_share_of_pool_rows_at_the_clean_runs_steps(n, b, world):
    fraction, pool = 0.25, 30
    for rank in range(world):
        sizes = batch_sizes(n, b, world)
        order = mixed_order(n, pool, b, fraction, seed=3, epoch=0, rank=rank, world_size=world)
        assert len(order) == sum(sizes)
        for batch, size in zip(batches(order, sizes), sizes, strict=True):
            assert sum(i >= n for i in batch) == pool_rows(size, fraction)
            assert len(set(batch)) == len(batch)  # no row twice in a batch
        clean = [i for i in order if i < n]
        assert len(set(clean)) == len(clean)  # each clean sample at most once per epoch
    # the unaugmented run's steps: ceil(ceil(n / world) / b) batches, a last batch of 1 dropped
    assert batch_sizes(40, 8) == [8] * 5 and batch_sizes(37, 8) == [8] * 4 + [5]
    assert batch_sizes(9, 4) == [4, 4]  # 9 = 4 + 4 + 1: the single last one dropped, as without the pool
    assert batch_sizes(41, 8, 2) == [8, 8, 5]  # 21 per rank


def test_order_is_seeded_by_seed_and_epoch_and_ranks_share_nothing():
    a = mixed_order(40, 40, 8, 0.25, seed=1, epoch=0)
    assert a == mixed_order(40, 40, 8, 0.25, seed=1, epoch=0)
    assert a != mixed_order(40, 40, 8, 0.25, seed=1, epoch=1) != mixed_order(40, 40, 8, 0.25, seed=2, epoch=0)
    r0, r1 = (set(mixed_order(40, 40, 8, 0.25, 1, 0, rank, 2)) for rank in (0, 1))
    assert not r0 & r1  # the ranks' clean and pool shards are disjoint
    # a pool smaller than the world is shared whole, a short pool shard is cycled
    small = mixed_order(40, 1, 8, 0.25, 1, 0, rank=1, world_size=2)
    assert small.count(40) == 2 + 2 + 1  # 20 rows per rank in batches of 8, 8, 4
    # no pool yet (an epoch before the first one): clean batches of the usual sizes
    assert sorted(mixed_order(40, 0, 8, 0.25, 1, 0)) == list(range(40))


def test_rule_one_pool_row_and_one_clean_row_per_batch():
    check_batch_fraction(None, 8)
    check_batch_fraction(0.25, 8)
    for bad in (0.0, 1.0, 0.05, 0.95, "half"):
        with pytest.raises(ConfigError, match="aug.batch_fraction=.*batch_size=8"):
            check_batch_fraction(bad, 8)


def test_the_datamodule_serves_mixed_batches_from_the_pool(phantom_root):
    dm = datamodule(phantom_root)  # 8 train samples, batch 4
    dm.batch_fraction = 0.25
    dm.setup("fit")
    plain = len(dm.train_dataloader())
    dm.pool.put("adversarial", torch.rand(8, 3, 32, 32), torch.zeros(8, 32, 32, dtype=torch.long))
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, MixedBatchSampler) and len(loader) == plain == 2
    got = list(loader)
    assert [int((b["source"] == 1).sum()) for b in got] == [1, 1] and all(len(b["source"]) == 4 for b in got)
    assert all((b["index"][b["source"] == 1] < 0).all() for b in got)
    dm.on_device = True  # the same batches from the device tensors
    device = list(dm.train_dataloader())
    assert [b["source"].tolist() for b in device] == [b["source"].tolist() for b in got]
    assert all(torch.equal(d["index"], g["index"]) for d, g in zip(device, got, strict=True))
    with pytest.raises(ConfigError, match="aug.batch_fraction"):
        type(dm)(root=str(phantom_root), batch_size=2, batch_fraction=0.2)
