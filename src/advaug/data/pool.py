"""``SamplePool``: the extra training samples, in named slots, one per producer.

The training set is ``clean ∪ every slot``. A producer (adversarial attack, classic transform,
GAN) owns one slot: :meth:`SamplePool.put` replaces that slot only, so several producers compose.
Every sample is served with its *source*: 0 for clean samples, else the code of its slot (its
position in :attr:`SamplePool.sources`), so a training step can route or weight by source.

Checkpoints carry each slot, except a slot its producer can remake exactly from the checkpoint
being written (``rebuildable``): that one is left out, and a resumed run must remake it before
training (:meth:`SamplePool.left_out`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from advaug.data.datasets import as_float_images
from advaug.errors import ConfigError

log = logging.getLogger(__name__)

CLEAN = "clean"

# Largest slot copied into pinned memory: PyTorch's pinned allocator rounds each block up to a
# power of two and caches it, and two pools are alive while one replaces the other, so a big pool
# would hold up to four times its size page-locked; bigger ones take the pageable copy.
PIN_POOL_MAX_BYTES = 1 << 30


def to_host(tensor: torch.Tensor, pin: bool) -> torch.Tensor:
    """``tensor`` on the host. From a CUDA device with ``pin``, into page-locked memory: the GPU
    then copies it by DMA at the bus's speed, where a pageable copy is staged through the
    driver's buffers (free mode's epoch-end publish, see benchmarks/). A host tensor comes back
    as it is."""
    size = tensor.numel() * tensor.element_size()
    if tensor.device.type != "cuda" or not pin or size > PIN_POOL_MAX_BYTES:
        return tensor.cpu()
    try:
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
    except RuntimeError as exc:  # page-locked memory refused (limits, sandbox): a speed-up only
        log.warning("pool kept in pageable host memory: pinning %d bytes failed (%s)", size, exc)
        return tensor.cpu()
    return host.copy_(tensor)


@dataclass(frozen=True)
class Placement:
    """Where slots live: on ``device`` (batches served there), else on the host, pinned or not."""

    device: torch.device | None = None
    pin: bool = False


class SlotSamples(Dataset):
    """One slot as a dataset: float images in [0,1] (uint8 ones converted), long masks, the
    sample's ``index`` (negative: ``-1 - offset - i``, so it never names a clean sample) and its
    ``source`` code."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor, source: int, offset: int) -> None:
        self.images, self.masks, self.source, self.offset = images, masks, int(source), int(offset)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "image": as_float_images(self.images[index]),
            "mask": self.masks[index].long(),
            "index": torch.tensor(-1 - self.offset - index),
            "source": torch.tensor(self.source),
        }


@dataclass
class _Slot:
    images: torch.Tensor | None = None
    masks: torch.Tensor | None = None
    rebuildable: bool = False
    left_out: bool = False

    def __len__(self) -> int:
        return 0 if self.images is None else len(self.images)


def _check_pair(name: str, images: torch.Tensor, masks: torch.Tensor | None) -> None:
    if images.ndim != 4 or masks is None or masks.shape != images.shape[:1] + images.shape[2:]:
        raise ValueError(
            f"pool slot {name!r}: images {tuple(images.shape)} (N,3,H,W) and masks "
            f"{None if masks is None else tuple(masks.shape)} (N,H,W) do not match"
        )


class SamplePool:
    """Named slots of extra training samples (see the module docstring).

    Args:
        placement: called at each :meth:`put`, says where the slot goes (the DataModule knows
            its device and loader settings only once the trainer is attached).
    """

    def __init__(self, placement: Callable[[], Placement] = Placement) -> None:
        self._placement = placement
        self._slots: dict[str, _Slot] = {}
        self._adversarial: set[str] = set()  # declared by the producers at each fit's setup

    # -- slots ---------------------------------------------------------------------------------
    @property
    def sources(self) -> list[str]:
        """Source names by code: ``clean`` is 0, then the slots in the order they were first used."""
        return [CLEAN, *self._slots]

    def source_code(self, name: str) -> int:
        return self.sources.index(name)

    def mark_adversarial(self, name: str) -> None:
        """Slot ``name`` holds adversarial samples (its producer says so before training): a
        model with twin normalisation layers routes them there, ``aug.adv_loss_weight`` weighs them."""
        self._adversarial.add(name)

    @property
    def adversarial_codes(self) -> list[int]:
        """The source codes of the adversarial slots (those that have a code yet)."""
        return [code for code, name in enumerate(self.sources) if name in self._adversarial]

    def put(self, name: str, images: torch.Tensor, masks: torch.Tensor, rebuildable: bool = False) -> None:
        """Replace slot ``name`` with images (N,3,H,W; float in [0,1] kept float so small
        perturbations survive, uint8 kept uint8) and masks (N,H,W; uint8 where the class ids fit).
        ``rebuildable``: the producer can remake this slot from the checkpoint written next."""
        if name == CLEAN:
            raise ValueError(f"pool slot name {CLEAN!r} is taken by the clean samples")
        _check_pair(name, images, masks)
        images, masks = images.detach(), masks.detach()
        images = images if images.dtype == torch.uint8 else images.float()
        if masks.dtype != torch.uint8 and (masks.numel() == 0 or (masks.min() >= 0 and masks.max() <= 255)):
            masks = masks.to(torch.uint8)
        place = self._placement()
        if place.device is not None:  # stays on (or goes once to) the device its batches are served on
            images, masks = images.to(place.device), masks.to(place.device)
        else:
            images, masks = to_host(images, place.pin), to_host(masks, place.pin)
        self._slots[name] = _Slot(images.contiguous(), masks.contiguous(), bool(rebuildable))

    def clear(self, name: str) -> None:
        """Empty slot ``name`` (it keeps its source code)."""
        if name in self._slots:
            self._slots[name] = _Slot()

    def weights_changed(self, name: str) -> None:
        """Slot ``name`` can no longer be remade from the next checkpoint (its producer's input,
        e.g. the model weights, moves on from here): checkpoints carry it again."""
        if name in self._slots:
            self._slots[name].rebuildable = False

    @property
    def sizes(self) -> dict[str, int]:
        return {name: len(slot) for name, slot in self._slots.items()}

    def __len__(self) -> int:
        return sum(self.sizes.values())

    def get(self, name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Slot ``name`` on the host as float images in [0,1] and its masks, or None when empty."""
        slot = self._slots.get(name)
        if slot is None or slot.images is None:
            return None
        return as_float_images(slot.images.cpu()), slot.masks.cpu()

    def raw(self, name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Slot ``name`` as held (dtype and device), or None when empty."""
        slot = self._slots.get(name)
        return None if slot is None or slot.images is None else (slot.images, slot.masks)

    def left_out(self, name: str) -> bool:
        """Whether the restored checkpoint left slot ``name`` out for its producer to remake."""
        slot = self._slots.get(name)
        return slot is not None and slot.left_out

    @property
    def left_out_names(self) -> list[str]:
        return [name for name, slot in self._slots.items() if slot.left_out]

    def check_remade(self) -> None:
        """Before serving: every slot a checkpoint left out has been remade by its producer."""
        if self.left_out_names:
            raise ConfigError(
                f"the checkpoint left the pool slot(s) {', '.join(self.left_out_names)} out for their "
                "augmentation callback to remake, but no callback did: resume with the same aug config as "
                "the interrupted run."
            )

    # -- serving -------------------------------------------------------------------------------
    def datasets(self) -> list[SlotSamples]:
        """The non-empty slots as datasets, in source order, with running negative indices."""
        out, offset = [], 0
        for code, slot in enumerate(self._slots.values(), start=1):
            if slot.images is not None and len(slot):
                out.append(SlotSamples(slot.images, slot.masks, code, offset))
                offset += len(slot)
        return out

    # -- checkpoint ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Every slot as held (uint8 stays uint8), on the host, so a checkpoint loads anywhere;
        a rebuildable slot as ``None`` with ``left_out``."""
        slots = {}
        for name, slot in self._slots.items():
            if slot.images is not None and slot.rebuildable:
                slots[name] = {"left_out": True}
            elif slot.images is None:
                slots[name] = {"left_out": slot.left_out}
            else:
                slots[name] = {"images": slot.images.cpu(), "masks": slot.masks.cpu()}
        return {"slots": slots}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._slots = {}
        for name, saved in (state.get("slots") or {}).items():
            if "images" in saved:
                self.put(name, saved["images"], saved["masks"])
            else:
                self._slots[name] = _Slot(left_out=bool(saved.get("left_out")))
