"""``SegmentationDataModule``: a folder in the on-disk format, validated and decoded once, split,
and served as clean (optionally transformed) samples plus the extra samples of a :class:`SamplePool`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from advaug.data.datasets import CleanPairs
from advaug.data.device_batches import DeviceBatches
from advaug.data.device_serving import DeviceSplits, check_on_device, eval_batches, train_batches, train_size
from advaug.data.folder import check_intensity_range, check_mask_threshold
from advaug.data.mixed_batches import MixedBatchSampler, mixed_order
from advaug.data.pool import Placement, SamplePool
from advaug.data.sharding import drops_single_last, eval_sampler
from advaug.data.split_loading import Decoding, SplitPlan, load_every_pair, load_splits
from advaug.data.splits import SPLITS
from advaug.data.workers import make_loader
from advaug.errors import DatasetError
from advaug.rules import check_batch_fraction, check_folds, check_num_classes

log = logging.getLogger(__name__)


class SegmentationDataModule(L.LightningDataModule):
    """Images and masks from ``root`` resized to ``image_size``, cached in memory as uint8.

    Splits come from ``root/splits.json`` when present, else from a shuffle seeded by
    ``split_seed`` cut by ``split`` ratios (the split seed is separate from the training seed so
    that all runs of a sweep see the same test set); with ``folds`` and ``fold``, fold ``fold`` of a
    k-fold cross-validation (:mod:`advaug.data.folds`). The groups of ``groups_file`` (patients,
    videos: :mod:`advaug.data.groups`) never straddle two splits of a seeded split or of a fold.
    ``load_all`` reads every pair of the folder as the split ``all`` (external scoring).

    The train set is ``clean ∪ every slot of`` :attr:`pool`: producers (adversarial, transform,
    GAN callbacks) fill their slots; the train loader is rebuilt each epoch, so a new slot takes
    effect at the next epoch.

    ``base`` (a :class:`~advaug.augment.Pipeline`) is the base augmentation: applied on the fly to
    every clean training sample (before ``transform``), and the producers copy base-augmented
    samples (:meth:`training_pairs`), so an attack sees the kind of image the model trains on.
    ``batch_fraction``: that share of every batch comes from the pool, at the clean set's number
    of steps (:mod:`advaug.data.mixed_batches`), the order seeded by ``(seed, epoch)``.
    """

    def __init__(
        self,
        root: str,
        image_size: int = 128,
        num_classes: int = 2,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        split: dict[str, float] | None = None,
        split_seed: int = 0,
        splits_file: str = "splits.json",
        mask_threshold: int | None = None,
        intensity_range: list[float] | None = None,
        transform: Callable | None = None,
        base: Callable | None = None,
        batch_fraction: float | None = None,
        seed: int = 0,
        generator: Any | None = None,
        pin_memory: bool | None = None,
        on_device: bool = False,
        name: str = "folder",
        prepare_hint: str | None = None,
        folds: int | None = None,
        fold: int | None = None,
        groups_file: str | None = "sequences.json",
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise DatasetError(f"batch_size={batch_size}: must be at least 1 (set batch_size=8, say).")
        check_num_classes(num_classes, "dataset.num_classes", DatasetError)
        self.root = Path(root)
        self.image_size, self.num_classes = int(image_size), int(num_classes)
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        # None: pin when training on a CUDA device, so that the batch copy is asynchronous
        # instead of a host-device sync per step
        self.pin_memory = pin_memory
        # serve whole batches from tensors kept on the training device (small sets, one device)
        self.on_device = bool(on_device)
        self._device_splits = DeviceSplits()
        self.split = dict(split or {"train": 0.7, "val": 0.15, "test": 0.15})
        self.split_seed, self.splits_file = int(split_seed), splits_file
        check_folds(folds, fold)
        self.folds, self.fold, self.groups_file = folds, fold, groups_file
        self.mask_threshold, self.transform = check_mask_threshold(mask_threshold, num_classes), transform
        self.base = base
        # a share of each batch from the pool at the clean set's steps (data/mixed_batches.py)
        check_batch_fraction(batch_fraction, self.batch_size)
        self.batch_fraction, self.seed = batch_fraction, int(seed)
        self._base_copies: tuple[int, tuple[torch.Tensor, torch.Tensor]] | None = None  # (epoch, copies)
        # 16-bit / float greyscale mapped from this (lo, hi) window; None: each image its min..max
        self.intensity_range = check_intensity_range(intensity_range)
        self.generator, self.name, self.prepare_hint = generator, name, prepare_hint
        self.plan = SplitPlan(self.split, self.split_seed, splits_file, folds, fold, groups_file)
        self.decoding = Decoding(self.image_size, self.num_classes, self.mask_threshold, self.intensity_range)
        self.data: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.ids: dict[str, list[str]] = {}
        self.pool = SamplePool(self._placement)
        self._state_left_out = False

    # -- Lightning hooks -------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Generate the embedded synthetic set on first use; check that real data is there."""
        if self.generator is not None:
            self.generator.ensure(self.root)
        elif not self.root.is_dir() and self.prepare_hint:
            raise DatasetError(f"dataset folder {self.root} does not exist. {self.prepare_hint}")

    def setup(self, stage: str | None = None) -> None:
        if "train" in self.data:
            return
        # all splits at once: a split failing to load leaves self.data empty, or a retried
        # setup() would return early without it
        ids, data = load_splits(self.root, self.plan, self.decoding)
        self.ids.update(ids)
        self.data.update(data)
        log.info(
            "dataset %s at %s: %s",
            self.name,
            self.root,
            ", ".join(f"{n}={len(self.ids[n])}" for n in SPLITS)
            + ("" if self.folds is None else f" (fold {self.fold} of {self.folds})"),
        )

    def load_all(self) -> list[str]:
        """Read every pair of the folder, whatever its split, as the split ``all`` (scoring a whole
        external dataset: ``all_dataloader``); returns the ids."""
        if "all" not in self.data:
            self.ids["all"], self.data["all"] = load_every_pair(self.root, self.decoding)
            log.info("dataset %s at %s: all=%d", self.name, self.root, len(self.ids["all"]))
        return self.ids["all"]

    # -- extra samples ---------------------------------------------------------------------
    def _placement(self) -> Placement:
        """on_device: slots stay on the training device, where their batches are served, instead
        of a trip to the host and back per epoch. Else host memory, pinned only for an in-process
        loader: drivers may keep page-locked memory out of forked children (MADV_DONTFORK), where
        a worker indexing it would crash."""
        if self.on_device:
            return Placement(device=self._device())
        return Placement(pin=self._pin() and self.num_workers == 0)

    def training_pairs(self, epoch: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The training split as uint8 images (N,3,H,W) and masks (N,H,W): as held without a base
        augmentation or an ``epoch``; else the base-augmented copies for ``epoch``, sample ``k``
        seeded by ``(seed, epoch, k)`` on a stream of its own (not that of a producer's pipeline,
        whose draws would otherwise repeat the base's), made once per epoch for every producer."""
        if self.base is None or epoch is None:
            return self.data["train"]
        if self._base_copies is None or self._base_copies[0] != epoch:
            from advaug.augment.pipeline import base_copies  # not at the top: augment imports data

            self._base_copies = (epoch, base_copies(*self.data["train"], self.base, epoch))
        return self._base_copies[1]

    def train_images(
        self,
        indices: torch.Tensor | None = None,
        device: torch.device | str | None = None,
        epoch: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The training split (or its rows ``indices``; base-augmented for ``epoch``, see
        :meth:`training_pairs`): float images in [0,1] (N,3,H,W) and long masks (N,H,W), on
        ``device`` (default CPU).

        The rows are picked and moved as uint8 and converted there: a quarter of the bytes to
        copy, and no float copy of the whole split per call (same values: x / 255 is exact
        IEEE division on any device).
        """
        images, masks = self.training_pairs(epoch)
        if indices is not None:
            images, masks = images[indices], masks[indices]
        images, masks = images.to(device), masks.to(device)
        return images.float().div_(255.0), masks.long()

    def num_train(self) -> int:
        """Number of clean training samples."""
        return len(self.data["train"][0])

    # -- loaders ---------------------------------------------------------------------------
    def online_transform(self) -> Callable | None:
        """What each clean training sample goes through as it is loaded: base, then transform."""
        if self.base is None or self.transform is None:
            return self.base or self.transform
        from advaug.augment.pipeline import Chain

        return Chain(self.base, self.transform)

    def train_dataset(self) -> Dataset:
        images, masks = self.data["train"]
        clean = CleanPairs(images, masks, self.online_transform())
        slots = self.pool.datasets()
        return ConcatDataset([clean, *slots]) if slots else clean

    def _loader(self, dataset: Dataset, batch_size: int, **order: Any) -> DataLoader:
        return make_loader(dataset, batch_size, self.num_workers, self._pin(), **order)

    def _drop_single_last(self, num_samples: int) -> bool:
        trainer = getattr(self, "trainer", None)
        return drops_single_last(num_samples, self.batch_size, trainer.world_size if trainer is not None else 1)

    def _pin(self) -> bool:
        if self.pin_memory is not None:
            return bool(self.pin_memory)
        return self._device().type == "cuda"

    def _device(self) -> torch.device:
        trainer = getattr(self, "trainer", None)
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _device_split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """A split as float images / uint8 masks on the training device, converted once."""
        return self._device_splits.get(split, self.data[split], self._device())

    def _check_on_device(self) -> None:
        check_on_device(self._rank_and_world()[1], self.online_transform() is not None)

    def train_dataloader(self) -> DataLoader | DeviceBatches:
        self.pool.check_remade()
        if not self.on_device:
            dataset = self.train_dataset()
            if self.batch_fraction is not None:
                rank, world = self._rank_and_world()
                sampler = MixedBatchSampler(dataset, self._mixed_order(len(dataset)), rank, world)
                return self._loader(dataset, self.batch_size, sampler=sampler)
            return self._loader(dataset, self.batch_size, shuffle=True, drop_last=self._drop_single_last(len(dataset)))
        self._check_on_device()
        clean, slots = self._device_split("train"), self.pool.datasets()
        size = train_size(clean, slots)
        if self.batch_fraction is not None:
            return train_batches(clean, slots, self.batch_size, order=self._mixed_order(size))
        return train_batches(clean, slots, self.batch_size, drop_last=self._drop_single_last(size))

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (0, 1) if trainer is None else (trainer.global_rank, trainer.world_size)

    def _mixed_order(self, size: int) -> list[int]:
        """This rank's order of this epoch's mixed batches (``batch_fraction``) over ``size`` samples
        (the clean split first, then the pool), seeded by (seed, epoch)."""
        trainer = getattr(self, "trainer", None)
        epoch = 0 if trainer is None else trainer.current_epoch
        n, (rank, world) = self.num_train(), self._rank_and_world()
        return mixed_order(n, size - n, self.batch_size, self.batch_fraction, self.seed, epoch, rank, world)

    def _eval_loader(self, split: str) -> DataLoader | DeviceBatches:
        if self.on_device:
            self._check_on_device()
            return eval_batches(self._device_split(split), self.eval_batch_size)
        dataset = CleanPairs(*self.data[split])
        rank, world = self._rank_and_world()
        return self._loader(dataset, self.eval_batch_size, sampler=eval_sampler(split, dataset, rank, world))

    def val_dataloader(self) -> DataLoader | DeviceBatches:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader | DeviceBatches:
        return self._eval_loader("test")

    def all_dataloader(self) -> DataLoader | DeviceBatches:
        """Every pair of the folder (:meth:`load_all`), in id order."""
        self.load_all()
        return self._eval_loader("all")

    # -- checkpoint state: the pool's slots, except those their producers can remake ------------
    def state_dict(self) -> dict[str, Any]:
        return {} if self._state_left_out else {"pool": self.pool.state_dict()}

    @contextmanager
    def state_left_out(self) -> Iterator[None]:
        """Within the block ``state_dict()`` is empty, so a checkpoint written there (a
        weights-only best file, :class:`advaug.callbacks.RunCheckpoint`) carries no pool."""
        self._state_left_out = True
        try:
            yield
        finally:
            self._state_left_out = False

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pool.load_state_dict(state_dict.get("pool") or {})
