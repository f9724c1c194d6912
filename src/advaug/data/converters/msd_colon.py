"""``colon``: Medical Segmentation Decathlon Task10_Colon (CT, label 1 = colon cancer primaries).

Accepted layouts (``--src``): the ``Task10_Colon.tar`` download, its unpacked folder, or any folder
above one that holds ``imagesTr/`` and ``labelsTr/`` (``colon_XXX.nii.gz`` in both). The unlabelled
``imagesTs/`` and the macOS ``._*`` files in the archive are ignored. One volume = one patient.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from advaug.data.converters.common import find_folder, visible_files
from advaug.data.converters.ct import NIFTI_SUFFIXES, Case, nifti_stem
from advaug.errors import DatasetError

SOURCE = {
    "dataset": "Medical Segmentation Decathlon, Task10_Colon",
    "url": "http://medicaldecathlon.com/ (Task10_Colon.tar)",
    "licence": "CC-BY-SA 4.0",
    "citation": "Antonelli et al., The Medical Segmentation Decathlon, Nature Communications 13, 4128 (2022); "
    "Simpson et al., arXiv:1902.09063 (2019)",
    "task": "colon cancer primaries in portal-venous CT; label 1 = tumour",
}
DEFAULTS = {"window": (40.0, 400.0), "empty_fraction": 0.1, "slice_spacing_mm": 0.0}


def find_cases(root: Path) -> list[Case]:
    """Pair ``imagesTr/<id>.nii.gz`` with ``labelsTr/<id>.nii.gz``; each id is a patient."""
    base = find_folder(
        root,
        lambda f: (f / "imagesTr").is_dir() and (f / "labelsTr").is_dir(),
        "MSD task folder with imagesTr/ and labelsTr/ (e.g. Task10_Colon/)",
    )
    labels = {nifti_stem(p): p for p in visible_files(base / "labelsTr", NIFTI_SUFFIXES)}
    cases = []
    for image in visible_files(base / "imagesTr", NIFTI_SUFFIXES):
        stem = nifti_stem(image)
        if stem not in labels:
            raise DatasetError(
                f"{image} has no label {base / 'labelsTr' / image.name}. Re-download the task archive."
            )
        cases.append(Case(patient=stem, scan=stem, image=image, label=labels[stem]))
    if not cases:
        raise DatasetError(f"{base / 'imagesTr'} holds no .nii.gz volumes. Check --src.")
    return cases


def to_classes(labels: np.ndarray) -> np.ndarray:
    """Tumour (label 1, the task's only foreground label) vs background."""
    return (labels == 1).astype(np.uint8)
