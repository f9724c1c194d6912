"""Reading a dataset folder into decoded splits: which ids go where (``splits.json``, a seeded
split or a k-fold, groups kept whole) and the uint8 tensors of each split, decoded once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from advaug.data.folder import find_pairs, load_pairs
from advaug.data.folds import fold_split
from advaug.data.groups import read_groups
from advaug.data.splits import SPLITS, resolve_splits

Pairs = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Decoding:
    """How every image and mask of a folder is decoded: size, classes, mask threshold, the
    intensity window of 16-bit / float greyscale (None: each image its own min..max)."""

    image_size: int
    num_classes: int
    mask_threshold: int | None
    intensity_range: tuple[float, float] | None

    def load(self, pairs: list) -> Pairs:
        return load_pairs(pairs, self.image_size, self.num_classes, self.mask_threshold, self.intensity_range)


@dataclass(frozen=True)
class SplitPlan:
    """Where the ids go: ``splits_file`` when present, else a shuffle seeded by ``split_seed``
    cut by ``split`` ratios; with ``folds`` and ``fold``, that fold of a k-fold. The groups of
    ``groups_file`` never straddle two splits of a seeded split or of a fold."""

    split: dict[str, float]
    split_seed: int
    splits_file: str
    folds: int | None
    fold: int | None
    groups_file: str | None

    def ids(self, root: Path, all_ids: list[str]) -> dict[str, list[str]]:
        group_of = read_groups(root, all_ids, self.groups_file)
        if self.folds is not None:  # the folds cover every image: no splits.json
            return fold_split(group_of, self.folds, self.fold, self.split, self.split_seed)
        return resolve_splits(root, all_ids, self.split, self.split_seed, self.splits_file, group_of)


def load_splits(root: Path, plan: SplitPlan, decoding: Decoding) -> tuple[dict[str, list[str]], dict[str, Pairs]]:
    """The ids and decoded pairs of every split of ``root``. All or nothing: a split failing to
    load raises before any result exists, so a caller never holds half the splits."""
    by_id = {p.id: p for p in find_pairs(root)}
    ids = plan.ids(root, list(by_id))
    data = {name: decoding.load([by_id[i] for i in ids[name]]) for name in SPLITS}
    return ids, data


def load_every_pair(root: Path, decoding: Decoding) -> tuple[list[str], Pairs]:
    """Every pair of ``root`` whatever its split (scoring a whole external dataset), in id order."""
    pairs = find_pairs(root)
    return [p.id for p in pairs], decoding.load(pairs)
