"""Names of the scores in logs and JSON files, without importing torch (``src/report.py`` reads
them and starts in well under a second)."""

from __future__ import annotations

import re
from collections.abc import Iterable


def per_class_keys(keys: Iterable[str], base: str = "iou") -> list[str]:
    """The per-class keys ``<base>_c<k>`` among ``keys`` (prefixes such as ``test/`` stripped),
    in class order."""
    found = {k.rsplit("/", 1)[-1] for k in keys}
    matches = [k for k in found if re.fullmatch(rf"{base}_c\d+", k)]
    return sorted(matches, key=lambda k: int(k.rsplit("_c", 1)[1]))


# one row per image (src/advaug/per_image.py writes them, src/advaug/reporting/paired.py reads them)
PER_IMAGE_FILE = "per_image.csv"  # the test split, beside metrics.json
ROBUSTNESS_PER_IMAGE_FILE = "robustness_per_image.csv"  # every robustness cell, beside robustness.json
EXTERNAL_DIR = "external"  # <run>/external/<name>/per_image.csv: each eval_datasets entry (evaluation/external.py)
PER_IMAGE_SCORES = ("miou", "iou_fg", "dice", "hd95")
PER_IMAGE_FIELDS = ("id", *PER_IMAGE_SCORES, "mask_pixels", "pred_pixels")
LOWER_IS_BETTER = frozenset({"hd95"})
