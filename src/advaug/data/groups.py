"""Which images belong together (one patient, one video): a group never straddles two splits or
two folds, because its frames or slices are near-duplicates and would leak the test set into training.

The groups come from the dataset folder, first found of:

* ``<root>/<groups_file>`` (default ``sequences.json``): ``{"<id>": <group>, ...}``, as CVC-ClinicDB's
  video numbers;
* ``<root>/dataset.json`` written by ``src/prepare_data.py``: its ``"groups"``, ``{"<group>": [ids]}``
  (the patient of every CT slice, the video of every polyp frame).

Without either, every image is its own group.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from advaug.errors import DatasetError

log = logging.getLogger(__name__)

DATASET_RECORD = "dataset.json"


def _load(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the groups ({exc}). Fix the JSON or delete the file.") from exc


def read_groups(root: str | Path, ids: Sequence[str], groups_file: str | None = "sequences.json") -> dict[str, str]:
    """``{id: group}`` for every id (each id its own group when the folder records none).

    Ids in the file that the folder lacks are ignored (a subset of a dataset keeps its file); an id
    of the folder without a group is a :class:`DatasetError` naming it, as is a malformed file.
    """
    root = Path(root)
    path, group_of = root / (groups_file or ""), None
    if groups_file and path.is_file():
        data = _load(path)
        if not isinstance(data, dict) or not all(isinstance(v, (str, int)) for v in data.values()):
            raise DatasetError(f'{path}: must map each id to its group, e.g. {{"cvc_001": 1, "cvc_002": 1}}.')
        group_of = {str(k): str(v) for k, v in data.items()}
    elif (root / DATASET_RECORD).is_file():
        path = root / DATASET_RECORD
        data = _load(path)
        groups = data.get("groups") if isinstance(data, dict) else None
        if groups is not None:
            if not isinstance(groups, dict) or not all(isinstance(v, list) for v in groups.values()):
                raise DatasetError(f'{path}: "groups" must map each group to its ids, e.g. {{"patient_1": ["a", "b"]}}.')
            group_of = {str(i): str(g) for g, members in groups.items() for i in members}
    if group_of is None:
        return {i: i for i in ids}
    lacking = [i for i in ids if i not in group_of]
    if lacking:
        raise DatasetError(
            f"{path}: image '{lacking[0]}' has no group ({len(lacking)} image(s) without one). Add every id "
            "of the folder to it, or delete the file to treat every image as its own group."
        )
    log.info("%d images in %d groups (%s)", len(ids), len({group_of[i] for i in ids}), path.name)
    return {i: group_of[i] for i in ids}


def members(group_of: dict[str, str]) -> dict[str, list[str]]:
    """``{group: sorted ids}``, the groups in sorted order."""
    out: dict[str, list[str]] = {}
    for i in sorted(group_of):
        out.setdefault(group_of[i], []).append(i)
    return dict(sorted(out.items()))


def straddling(group_of: dict[str, str], splits: dict[str, list[str]]) -> list[str]:
    """The groups whose ids lie in more than one of ``splits`` (none, when the split is grouped)."""
    where: dict[str, set[str]] = {}
    for name, ids in splits.items():
        for i in ids:
            where.setdefault(group_of.get(i, i), set()).add(name)
    return sorted(g for g, names in where.items() if len(names) > 1)
