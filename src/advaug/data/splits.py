"""Which ids are train, val and test: a ``splits.json`` beside the data, or a seeded split by
ratios; ids in neither are named once (unused)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from advaug.errors import DatasetError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def read_splits(path: Path, ids: Sequence[str]) -> dict[str, list[str]]:
    """Read ``splits.json`` ({"train": [...], "val": [...], "test": [...]}) and check its ids."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read splits ({exc}). Fix the JSON or delete the file.") from exc
    expected = 'It must be {"train": [ids], "val": [ids], "test": [ids]} (ids are file stems).'
    if not isinstance(data, dict):
        raise DatasetError(
            f"{path}: the top level is not an object (found {type(data).__name__}). {expected}"
        )
    known = set(ids)
    splits = {}
    for name in SPLITS:
        if name not in data:
            raise DatasetError(f"{path}: no '{name}' list. It needs train, val and test id lists.")
        if not isinstance(data[name], list) or not all(isinstance(i, str) for i in data[name]):
            raise DatasetError(f"{path}: '{name}' is not a list of id strings. {expected}")
        unknown = [i for i in data[name] if i not in known]
        if unknown:
            raise DatasetError(f"{path}: '{name}' names id '{unknown[0]}' that has no image/mask pair.")
        splits[name] = list(data[name])
    seen: dict[str, str] = {}
    for name in SPLITS:
        for i in splits[name]:
            if i in seen:
                raise DatasetError(
                    f"{path}: id '{i}' is in both '{seen[i]}' and '{name}'. Splits must not overlap."
                )
            seen[i] = name
    return splits


def check_ratios(ratios: dict[str, float], option: str = "dataset.split") -> dict[str, float]:
    """The train/val/test ratios as floats; train must be positive, val and test non-negative."""
    missing = [s for s in SPLITS if s not in ratios]
    values = {s: float(ratios[s]) for s in SPLITS if s in ratios}
    if missing or values["train"] <= 0 or values["val"] < 0 or values["test"] < 0:
        given = " ".join(f"{v:g}" for v in values.values()) if option.startswith("--") else dict(ratios)
        raise DatasetError(
            f"{option}{' ' if option.startswith('--') else '='}{given}: needs a positive train ratio "
            "and non-negative val/test ratios (e.g. train 0.7, val 0.15, test 0.15)."
        )
    return values


def seeded_split(ids: Sequence[str], ratios: dict[str, float], seed: int) -> dict[str, list[str]]:
    """Shuffle ids with ``seed`` and cut them by ``ratios`` (train/val/test, normalised to sum 1).

    Disjoint and complete. A split with a positive ratio that rounds to no id takes one from the
    largest split, when there are enough ids for every such split.
    """
    ratios = check_ratios(ratios)
    total = sum(ratios.values())
    n = len(ids)
    counts = {s: int(round(n * ratios[s] / total)) for s in ("val", "test")}
    while counts["val"] + counts["test"] > n:  # both rounded up past n: train would go negative
        counts[max(("val", "test"), key=counts.get)] -= 1
    counts["train"] = n - counts["val"] - counts["test"]
    wanted = [s for s in SPLITS if ratios[s] > 0]
    if n >= len(wanted):
        for name in wanted:
            if counts[name] == 0:
                counts[max(SPLITS, key=counts.get)] -= 1
                counts[name] = 1
    order = np.random.default_rng(seed).permutation(n)
    shuffled = [ids[k] for k in order]
    n_train, n_val = counts["train"], counts["val"]
    return {
        "train": sorted(shuffled[:n_train]),
        "val": sorted(shuffled[n_train : n_train + n_val]),
        "test": sorted(shuffled[n_train + n_val :]),
    }


def unused_ids(ids: Sequence[str], splits: dict[str, list[str]]) -> list[str]:
    """The ids in no split (a ``splits.json`` need not name every pair), sorted."""
    used = {i for name in SPLITS for i in splits[name]}
    return sorted(set(ids) - used)


def unused_note(path: Path, ids: Sequence[str], splits: dict[str, list[str]]) -> str | None:
    """One line naming the pairs that ``splits.json`` leaves out (they are never used), or None."""
    unused = unused_ids(ids, splits)
    if not unused:
        return None
    shown = ", ".join(f"'{i}'" for i in unused[:5]) + (" ..." if len(unused) > 5 else "")
    return (
        f"{len(unused)} pair(s) are in no split of {path.name} ({shown}): they are not used. Add them to "
        f"{path} or delete it for a seeded split."
    )


def grouped_split(group_of: dict[str, str], ratios: dict[str, float], seed: int) -> dict[str, list[str]]:
    """:func:`seeded_split` of the groups (patients, videos; ``{id: group}``), each group's ids
    kept together: the ratios count groups, as the converters' patient splits do."""
    groups: dict[str, list[str]] = {}
    for i in sorted(group_of):
        groups.setdefault(group_of[i], []).append(i)
    by_group = seeded_split(sorted(groups), ratios, seed)
    return {name: sorted(i for g in by_group[name] for i in groups[g]) for name in SPLITS}


def resolve_splits(
    root: Path,
    ids: Sequence[str],
    ratios: dict[str, float],
    seed: int,
    splits_file: str = "splits.json",
    group_of: dict[str, str] | None = None,
) -> dict[str, list[str]]:
    """The train/val/test ids: ``root/splits_file`` when present, else a seeded split (of the groups
    of ``group_of`` when some group holds several ids: a video's frames stay in one split); none empty."""
    path = Path(root) / splits_file
    grouped = group_of is not None and len(set(group_of.values())) < len(group_of)
    if path.is_file():
        splits = read_splits(path, ids)
    else:
        splits = grouped_split(group_of, ratios, seed) if grouped else seeded_split(ids, ratios, seed)
    note = unused_note(path, ids, splits)
    if note:
        log.warning("%s", note)
    for name in SPLITS:
        if not splits[name]:
            source = path.name if path.is_file() else f"dataset.split={dict(ratios)}"
            raise DatasetError(
                f"{root}: the '{name}' split is empty ({len(ids)} pairs, {source}). "
                "Add images or change dataset.split ratios / splits.json."
            )
    return splits
