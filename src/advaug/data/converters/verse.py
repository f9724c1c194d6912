"""``lumbar``: VerSe 2019/2020 (CT, vertebra labels 1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6, 28 T13).

Accepted layouts (``--src``: a download archive or a folder above them):

* subject-based (VerSe'19 and '20 as released on OSF/GitHub):
  ``rawdata/sub-*/sub-*_ct.nii.gz`` + ``derivatives/sub-*/sub-*_seg-vert_msk.nii.gz``
  (any prefix folders such as ``dataset-01training/``, several scans per subject allowed);
* challenge layout: ``<id>.nii.gz`` + ``<id>_seg.nii.gz`` side by side (e.g. ``verse004_CT-orient``).

The patient is the file-name part before the first ``_`` (``sub-gl003``, ``verse004``), so scans of
one subject stay in one split. The mask covers the whole labelled vertebra (VerSe does not label the
vertebral body separately). Scans without a mask are skipped and reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from advaug.data.converters.common import Progress
from advaug.data.converters.ct import NIFTI_SUFFIXES, Case, nifti_stem
from advaug.errors import DatasetError

SOURCE = {
    "dataset": "VerSe 2019/2020 (Large Scale Vertebrae Segmentation Challenge)",
    "url": "https://github.com/anjany/verse (download links to OSF)",
    "licence": "CC BY-SA 4.0",
    "citation": "Sekuboyina et al., Medical Image Analysis 73, 102166 (2021); "
    "Löffler et al., Radiology: Artificial Intelligence 2(4), e190138 (2020)",
    "task": "lumbar vertebrae in CT",
}
LUMBAR_LABELS = (20, 21, 22, 23, 24)  # L1-L5; add 25 for a transitional L6
DEFAULTS = {"window": (400.0, 1800.0), "empty_fraction": 0.0, "slice_spacing_mm": 5.0}


def _is_nifti(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.name.lower().endswith(NIFTI_SUFFIXES)


def find_cases(root: Path, progress: Progress = print) -> list[Case]:
    """List (CT, vertebra mask) pairs in either VerSe layout, one entry per scan."""
    files = [p for p in sorted(root.rglob("*.nii*")) if _is_nifti(p)]
    masks = {nifti_stem(p): p for p in files if nifti_stem(p).endswith(("_seg-vert_msk", "_seg"))}
    cases: dict[str, Case] = {}
    unlabelled = []
    for path in files:
        stem = nifti_stem(path)
        if stem.endswith(("_seg-vert_msk", "_seg", "_msk")) or "_seg-" in stem:
            continue
        scan = stem[: -len("_ct")] if stem.endswith("_ct") else stem
        mask = masks.get(f"{scan}_seg-vert_msk") or masks.get(f"{stem}_seg")
        if mask is None:
            unlabelled.append(path)
            continue
        if scan in cases:  # the same scan in both the '19 and '20 downloads
            continue
        cases[scan] = Case(patient=scan.split("_", 1)[0], scan=scan, image=path, label=mask)
    if unlabelled:
        progress(f"skipping {len(unlabelled)} scan(s) without a vertebra mask, e.g. {unlabelled[0].name}")
    if not cases:
        raise DatasetError(
            f"{root}: found no VerSe scans with masks (expected rawdata/sub-*/*_ct.nii.gz with "
            "derivatives/sub-*/*_seg-vert_msk.nii.gz, or <id>.nii.gz with <id>_seg.nii.gz). Check --src."
        )
    return sorted(cases.values(), key=lambda c: c.scan)


def label_mapper(labels: Sequence[int] = LUMBAR_LABELS, per_level: bool = False):
    """Map VerSe labels to class ids: 1 for any of ``labels`` (binary), or 1..len(labels) per level."""
    labels = [int(v) for v in labels]
    if not labels:
        raise DatasetError("--labels is empty: give the VerSe labels to keep, e.g. --labels 20 21 22 23 24.")

    def to_classes(volume: np.ndarray) -> np.ndarray:
        if not per_level:
            return np.isin(volume, labels).astype(np.uint8)
        lut = np.zeros(max(int(volume.max(initial=0)), max(labels)) + 1, np.uint8)
        lut[labels] = np.arange(1, len(labels) + 1)
        return lut[np.clip(volume, 0, None).astype(np.int64)]

    return to_classes
