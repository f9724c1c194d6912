"""CT volumes (NIfTI) to 2-D axial slices: shared by the colon (MSD) and lumbar (VerSe) converters.

Each volume is reoriented to RAS with nibabel, windowed to [0, 1], and cut into axial slices shown
in the radiological convention (anterior up, the patient's right on the image's left). In-plane
voxels need not be square: each slice is padded to a square field of view in millimetres before
it is resized, so anatomy keeps its proportions.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advaug.data.converters.common import Progress, SliceWriter, window
from advaug.errors import DatasetError
from advaug.utils.progress import progress as progress_bar

NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass(frozen=True)
class Case:
    """One CT scan and its label volume; ``patient`` groups scans for the split."""

    patient: str
    scan: str
    image: Path
    label: Path


@dataclass(frozen=True)
class SliceOptions:
    """How slices are chosen and rendered (recorded in ``dataset.json``)."""

    level: float
    width: float
    size: int = 128
    empty_fraction: float = 0.0
    slice_spacing_mm: float = 0.0
    seed: int = 0


def nifti_stem(path: Path) -> str:
    """File name without ``.nii`` / ``.nii.gz``."""
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def load_ras(path: Path, dtype: type = np.float32) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Load a NIfTI volume reoriented to RAS; return the array and its voxel size in mm."""
    import nibabel as nib  # only the CT converters need it

    try:
        img = nib.as_closest_canonical(nib.load(str(path)))
        if dtype == np.float32:
            data = img.get_fdata(dtype=np.float32)
        else:  # labels: round, since some tools store them as scaled floats
            data = np.rint(np.asanyarray(img.dataobj))
    except Exception as exc:  # nibabel raises many types (ImageFileError, EOFError, zlib.error ...)
        raise DatasetError(f"{path}: cannot read the NIfTI volume ({exc}). Download the file again.") from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DatasetError(f"{path}: expected a 3-D volume, got shape {data.shape}.")
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    return data.astype(dtype, copy=False), zooms  # type: ignore[return-value]


def to_display(slice_xy: np.ndarray) -> np.ndarray:
    """RAS axial slice (x, y) -> image rows/cols in the radiological convention."""
    return np.fliplr(np.rot90(slice_xy))


def square_fov(
    image: np.ndarray, mask: np.ndarray, row_mm: float, col_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pad image (with 0 = below the window) and mask (background) to a square extent in mm, and
    resample the short-spaced axis so pixels are square; keeps proportions through the resize."""
    from PIL import Image

    rows, cols = image.shape
    height, width = rows * row_mm, cols * col_mm
    px = min(row_mm, col_mm)
    new_rows, new_cols = max(1, round(height / px)), max(1, round(width / px))
    if (new_rows, new_cols) != (rows, cols):
        image = np.asarray(
            Image.fromarray(image.astype(np.float32)).resize((new_cols, new_rows), Image.BILINEAR)
        )
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize((new_cols, new_rows), Image.NEAREST))
    side = max(image.shape)
    pad = [((side - n) // 2, side - n - (side - n) // 2) for n in image.shape]
    return np.pad(image, pad), np.pad(mask, pad)


def choose_slices(
    has_fg: np.ndarray, options: SliceOptions, z_mm: float, rng: np.random.Generator
) -> tuple[list[int], list[int]]:
    """Axial indices to keep: foreground slices (thinned to ``slice_spacing_mm`` apart) and a share
    ``empty_fraction`` (relative to the kept foreground slices) of foreground-free ones."""
    fg = np.flatnonzero(has_fg)
    if options.slice_spacing_mm > 0 and len(fg):
        step = max(1, round(options.slice_spacing_mm / z_mm))
        fg = fg[::step]
    empty = np.flatnonzero(~has_fg)
    n_empty = min(len(empty), round(options.empty_fraction * len(fg)))
    chosen = rng.choice(empty, size=n_empty, replace=False) if n_empty else np.array([], int)
    return [int(z) for z in fg], sorted(int(z) for z in chosen)


def write_cases(
    cases: Sequence[Case],
    writer: SliceWriter,
    to_classes: Callable[[np.ndarray], np.ndarray],
    options: SliceOptions,
    progress: Progress = print,
) -> int:
    """Cut every case into slices and hand them to ``writer``; return the number of slices.

    ``to_classes`` maps the label volume to the class ids written (0 = background).
    """
    total = 0
    for k, case in enumerate(progress_bar(cases, desc="volumes", unit="case"), 1):
        image, zooms = load_ras(case.image)
        labels, _ = load_ras(case.label, dtype=np.int32)
        if image.shape != labels.shape:
            raise DatasetError(
                f"{case.label}: label volume {labels.shape} does not match its image {case.image.name} {image.shape}."
            )
        classes = to_classes(labels).astype(np.uint8)
        # seeded per patient: the slices of one case do not depend on which other cases are present
        rng = np.random.default_rng([options.seed, zlib.crc32(case.scan.encode())])
        fg, empty = choose_slices(classes.any(axis=(0, 1)), options, zooms[2], rng)
        for z in sorted(fg + empty):
            img = to_display(window(image[:, :, z], options.level, options.width))
            msk = to_display(classes[:, :, z])
            img, msk = square_fov(img, msk, row_mm=zooms[1], col_mm=zooms[0])
            writer.add(case.patient, f"{case.scan}_z{z:04d}", img, msk)
        total += len(fg) + len(empty)
        progress(f"[{k}/{len(cases)}] {case.scan}: {len(fg)} slices with foreground + {len(empty)} without")
    return total
