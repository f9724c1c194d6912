from types import SimpleNamespace

import pytest
import torch

from advaug.data.device_serving import DeviceSplits, check_on_device, eval_batches, train_batches, train_size
from advaug.errors import ConfigError


def clean(n=3):
    return torch.rand(n, 3, 4, 4), torch.zeros(n, 4, 4, dtype=torch.uint8)


class Slot(SimpleNamespace):
    """A pool slot's served fields (data/pool.py's SlotSamples)."""

    def __init__(self, images, masks, source, offset):
        super().__init__(images=images, masks=masks, source=source, offset=offset)

    def __len__(self):
        return len(self.images)


def slot(n, code, offset):
    images = torch.full((n, 3, 4, 4), 255, dtype=torch.uint8)
    return Slot(images, torch.ones(n, 4, 4, dtype=torch.long), code, offset)


def test_train_batches_join_clean_rows_and_slots_with_their_ids_and_sources():
    slots = [slot(2, 1, 0), slot(1, 2, 2)]
    assert train_size(clean(), slots) == 6
    batches = train_batches(clean(), slots, batch_size=6)
    assert sorted(batches.index.tolist()) == [-3, -2, -1, 0, 1, 2]
    assert batches.source.tolist() == [0, 0, 0, 1, 1, 2]
    assert batches.images[3:].eq(1.0).all() and batches.masks.dtype == torch.uint8
    (batch,) = list(batches)
    assert sorted(batch["index"].tolist()) == [-3, -2, -1, 0, 1, 2]
    ordered = train_batches(clean(), slots, batch_size=2, order=[5, 0, 3, 1])
    assert [b["index"].tolist() for b in ordered] == [[-3, 0], [-1, 1]]
    assert len(train_batches(clean(), slots, batch_size=4, drop_last=True)) == 1


def test_eval_batches_in_order_all_clean():
    batches = list(eval_batches(clean(5), batch_size=2))
    assert [b["index"].tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    assert all(b["source"].eq(0).all() for b in batches)


def test_device_splits_convert_once_per_device():
    pairs = (torch.full((2, 3, 4, 4), 51, dtype=torch.uint8), torch.zeros(2, 4, 4, dtype=torch.uint8))
    cache = DeviceSplits()
    first = cache.get("val", pairs, torch.device("cpu"))
    assert first[0].dtype == torch.float32 and torch.allclose(first[0], torch.tensor(0.2))
    assert cache.get("val", pairs, torch.device("cpu"))[0] is first[0]
    assert cache.get("val", pairs, torch.device("meta"))[0].device.type == "meta"


def test_check_on_device_refuses_ddp_and_online_transforms():
    check_on_device(1, False)
    with pytest.raises(ConfigError, match="under DDP every rank needs"):
        check_on_device(2, False)
    with pytest.raises(ConfigError, match="cannot run an on-the-fly transform"):
        check_on_device(1, True)
