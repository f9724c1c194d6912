"""k-fold cross-validation grouped by patient or video (``dataset.folds=K dataset.fold=i``).

The groups (:mod:`advaug.data.groups`) are dealt into ``K`` folds of about equal image counts;
fold ``i`` is the test split, validation is carved from the other folds (whole groups, about
``split.val / (split.train + split.val)`` of their images) and the rest is train. Everything is
seeded by the split seed (``dataset.split_seed``), never by the training seed: every seed of a
sweep and every fold of one seed see the same assignment, and over the ``K`` folds every image is
test exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from advaug.data.groups import members, read_groups
from advaug.data.splits import check_ratios
from advaug.errors import DatasetError
from advaug.rules import check_folds


def assign_folds(group_of: dict[str, str], folds: int, seed: int) -> list[list[str]]:
    """The ids of each of ``folds`` folds (sorted), whole groups only, image counts balanced.

    The groups are shuffled with ``seed``, then dealt largest first (a stable sort of the shuffled
    order, so groups of one size keep their random order) each to the fold holding the fewest
    images so far: single images give folds that differ by at most one.
    """
    check_folds(folds, 0)
    groups = members(group_of)
    if len(groups) < folds:
        raise DatasetError(
            f"dataset.folds={folds}: only {len(groups)} group(s) (patients / videos) to deal into {folds} folds; "
            "lower dataset.folds."
        )
    names = list(groups)
    order = [names[k] for k in np.random.default_rng(seed).permutation(len(names))]
    order.sort(key=lambda g: -len(groups[g]))
    dealt: list[list[str]] = [[] for _ in range(folds)]
    for g in order:
        target = min(range(folds), key=lambda k: (len(dealt[k]), k))
        dealt[target].extend(groups[g])
    return [sorted(ids) for ids in dealt]


def fold_split(
    group_of: dict[str, str], folds: int, fold: int, ratios: dict[str, float], seed: int
) -> dict[str, list[str]]:
    """train / val / test of fold ``fold``: test = that fold; val = whole groups of the other folds,
    drawn with ``(seed, fold)`` until they hold ``ratios.val / (ratios.train + ratios.val)`` of those
    images (at least one group, and one group left for train)."""
    check_folds(folds, fold)
    ratios = check_ratios(ratios)
    dealt = assign_folds(group_of, folds, seed)
    test = dealt[fold]
    rest = {i: group_of[i] for k, ids in enumerate(dealt) if k != fold for i in ids}
    groups = members(rest)
    if len(groups) < 2:
        raise DatasetError(
            f"dataset.folds={folds}: fold {fold} leaves {len(groups)} group(s) outside its test fold, too few "
            "for a train and a validation split; lower dataset.folds or add images."
        )
    names = list(groups)
    order = [names[k] for k in np.random.default_rng([seed, fold]).permutation(len(names))]
    wanted = round(len(rest) * ratios["val"] / (ratios["train"] + ratios["val"]))
    val: list[str] = []
    for g in order[:-1]:  # the last group always stays for train
        if val and len(val) >= wanted:
            break
        val.extend(groups[g])
    taken = set(val)
    return {
        "train": sorted(i for i in rest if i not in taken),
        "val": sorted(val),
        "test": list(test),
    }


def resolve_fold_splits(
    root: str | Path,
    ids: Sequence[str],
    folds: int,
    fold: int,
    ratios: dict[str, float],
    seed: int,
    groups_file: str | None = "sequences.json",
) -> dict[str, list[str]]:
    """The splits of fold ``fold`` of the folder's images, grouped by its group file
    (:func:`advaug.data.groups.read_groups`). A ``splits.json`` is not used: the folds cover every image."""
    return fold_split(read_groups(root, ids, groups_file), folds, fold, ratios, seed)
