"""Serving batches from tensors kept on the training device (``dataset.on_device``): each split
converted once per device, the train set (clean rows, then every pool slot) joined there each
epoch, all as :class:`~advaug.data.device_batches.DeviceBatches`."""

from __future__ import annotations

import torch

from advaug.data.datasets import as_float_images
from advaug.data.device_batches import DeviceBatches
from advaug.errors import ConfigError

Pairs = tuple[torch.Tensor, torch.Tensor]


def check_on_device(world_size: int, has_online_transform: bool) -> None:
    """One device, no per-sample transform: what gathering whole batches on a device allows."""
    if world_size > 1:
        raise ConfigError(
            "dataset.on_device=true serves batches on one device; under DDP every rank needs "
            "its own shard: set dataset.on_device=false."
        )
    if has_online_transform:
        raise ConfigError(
            "dataset.on_device=true gathers whole batches on the device and cannot run an "
            "on-the-fly transform (base=..., aug.transform): use base=none and aug.protocol=pool, "
            "or dataset.on_device=false."
        )


class DeviceSplits:
    """Each split as float images in [0,1] and uint8 masks on one device, converted once, and
    again when the device changes."""

    def __init__(self) -> None:
        self._cache: dict[str, Pairs] = {}

    def get(self, split: str, pairs: Pairs, device: torch.device) -> Pairs:
        cached = self._cache.get(split)
        if cached is None or cached[0].device != device:
            images, masks = pairs
            cached = (images.to(device).float().div_(255.0), masks.to(device))
            self._cache[split] = cached
        return cached


def train_size(clean: Pairs, slots: list) -> int:
    return len(clean[0]) + sum(len(slot) for slot in slots)


def train_batches(
    clean: Pairs, slots: list, batch_size: int, order: list[int] | None = None, drop_last: bool = False
) -> DeviceBatches:
    """The clean rows (index >= 0, source 0) and every slot's rows (index < 0, the slot's source)
    joined on the clean rows' device: shuffled per pass, or in ``order`` (mixed batches)."""
    images, masks = clean
    device = images.device
    images, masks = [images], [masks]
    index = [torch.arange(len(images[0]), device=device)]
    source = [torch.zeros_like(index[0])]
    for slot in slots:  # the slots change per epoch: joined here, on the device
        images.append(as_float_images(slot.images.to(device)))
        masks.append(slot.masks.to(device).to(masks[0].dtype))
        index.append(-1 - slot.offset - torch.arange(len(slot), device=device))
        source.append(torch.full((len(slot),), slot.source, device=device))
    images, masks, index, source = (torch.cat(t) for t in (images, masks, index, source))
    if order is not None:
        rows = torch.tensor(order, dtype=torch.long, device=device)
        return DeviceBatches(images, masks, index, source, batch_size, shuffle=False, order=rows)
    return DeviceBatches(images, masks, index, source, batch_size, shuffle=True, drop_last=drop_last)


def eval_batches(split: Pairs, batch_size: int) -> DeviceBatches:
    """One split in order, every row clean."""
    images, masks = split
    index = torch.arange(len(images), device=images.device)
    return DeviceBatches(images, masks, index, torch.zeros_like(index), batch_size, shuffle=False)
