"""``polyp``: colonoscopy frames with polyp masks, Kvasir-SEG or CVC-ClinicDB layouts, imported as
they are apart from resizing.

Accepted layouts (``--src``: the download archive or a folder above them):

* Kvasir-SEG: ``Kvasir-SEG/images/<id>.jpg`` + ``Kvasir-SEG/masks/<id>.jpg`` (JPEG masks);
* CVC-ClinicDB: ``Original/<n>.tif|png`` + ``Ground Truth/<n>.tif|png`` (one format folder is
  used when ``PNG/`` and ``TIF/`` copies are both present).

Masks are binarised at ``mask_threshold`` (JPEG compression leaves values between 0 and 255); how
many masks needed it is printed and recorded; 0/1 class-id masks need ``--mask-threshold 1``, and a
conversion whose masks all end up empty is refused. Frames are split per image (the public files carry
no patient or video ids), unless a group file maps each frame to its video: ``--groups FILE``, or a
``sequences.json`` beside the images folder (``{"<id>": <video>}``, CVC-ClinicDB's 29 videos); then
the split is by video, no video's frames in two splits, and ``dataset.json`` records the groups.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from advaug.data.converters.common import Progress, SliceWriter, find_folder
from advaug.data.folder import find_pairs, open_image, threshold_erases_class_ids
from advaug.data.groups import read_groups
from advaug.errors import DatasetError
from advaug.utils.progress import progress as progress_bar

SOURCES = {
    "kvasir-seg": {
        "dataset": "Kvasir-SEG",
        "url": "https://datasets.simula.no/kvasir-seg/ (kvasir-seg.zip)",
        "licence": "research and educational use only; cite the paper",
        "citation": "Jha et al., Kvasir-SEG: A Segmented Polyp Dataset, MMM 2020",
    },
    "cvc-clinicdb": {
        "dataset": "CVC-ClinicDB",
        "url": "https://polyp.grand-challenge.org/CVCClinicDB/",
        "licence": "research use; cite the paper",
        "citation": "Bernal et al., Computerized Medical Imaging and Graphics 43, 99-111 (2015)",
    },
}
LAYOUTS = (("images", "masks", "kvasir-seg"), ("Original", "Ground Truth", "cvc-clinicdb"))


def find_layout(root: Path) -> tuple[Path, Path, str]:
    """The (images, masks) folders and which source they look like."""

    def has_pair(folder: Path) -> bool:
        return any((folder / i).is_dir() and (folder / m).is_dir() for i, m, _ in LAYOUTS)

    base = find_folder(
        root, has_pair, "images/ + masks/ (Kvasir-SEG) or Original/ + 'Ground Truth'/ (CVC-ClinicDB)"
    )
    for images, masks, source in LAYOUTS:
        if (base / images).is_dir() and (base / masks).is_dir():
            return base / images, base / masks, source
    raise AssertionError("unreachable")


GROUPS_FILE = "sequences.json"  # beside the images folder: each frame's video


def frame_groups(base: Path, ids: list[str], groups: Path | None) -> dict[str, str] | None:
    """``{id: video}`` from ``groups`` (a file given), else ``base/sequences.json`` when there, else None."""
    path = Path(groups) if groups is not None else base / GROUPS_FILE
    if groups is not None and not path.is_file():
        raise DatasetError(f"--groups {path}: no such file (a JSON object mapping each frame id to its video).")
    if not path.is_file():
        return None
    return read_groups(path.parent, ids, path.name)


def convert(
    root: Path,
    writer: SliceWriter,
    mask_threshold: int = 128,
    progress: Progress = print,
    groups: Path | None = None,
) -> dict:
    """Write every (image, mask) pair through ``writer`` (grouped by video when a group file is
    found, see :func:`frame_groups`); return the mask report."""
    images, masks, source = find_layout(root)
    pairs = find_pairs(images.parent) if images.name == "images" else _cvc_pairs(images, masks)
    group_of = frame_groups(images.parent, [p.id for p in pairs], groups)
    if group_of is not None:
        progress(f"{len(pairs)} frames of {len(set(group_of.values()))} videos: split by video")
    lossy = with_polyp = 0
    for k, pair in enumerate(progress_bar(pairs, desc="polyp", unit="pair"), 1):
        # open_image: a truncated or unreadable file is a DatasetError naming it, not a traceback
        image = np.asarray(open_image(pair.image).convert("RGB"))
        raw = np.asarray(open_image(pair.mask).convert("L"))
        if raw.shape != image.shape[:2]:
            raise DatasetError(
                f"{pair.mask}: mask is {raw.shape[1]}x{raw.shape[0]} but its image {pair.image.name} is "
                f"{image.shape[1]}x{image.shape[0]}. Image and mask must have the same size."
            )
        if threshold_erases_class_ids(raw, mask_threshold):
            raise DatasetError(
                f"{pair.mask}: mask holds class ids (values {', '.join(f'{v:g}' for v in np.unique(raw))}), "
                f"which --mask-threshold {mask_threshold} would turn into background. Pass --mask-threshold 1 "
                "to read every non-zero id as polyp."
            )
        lossy += int(not np.isin(raw, (0, 255)).all())
        binary = (raw >= mask_threshold).astype(np.uint8)
        with_polyp += int(binary.any())
        writer.add(pair.id if group_of is None else f"video_{group_of[pair.id]}", pair.id, image, binary)
        if k % 100 == 0 or k == len(pairs):
            progress(f"[{k}/{len(pairs)}] {pair.id}")
    if not with_polyp:  # nothing to learn from: refuse before publishing (the writer drops its folder)
        raise DatasetError(
            f"{masks}: all {len(pairs)} masks are empty after binarising at >= {mask_threshold}. "
            "Check that the masks mark polyps (0/255) and --mask-threshold."
        )
    progress(
        f"{lossy} of {len(pairs)} masks were not exactly 0/255 (lossy); binarised at >= {mask_threshold}"
    )
    return {
        "source_layout": source,
        "masks_not_binary": lossy,
        "mask_threshold": mask_threshold,
        "grouped_by_video": group_of is not None,
    }


def _cvc_pairs(images: Path, masks: Path):
    from advaug.data.folder import IMAGE_EXTENSIONS, Pair

    def index(folder: Path) -> dict[str, Path]:
        return {
            p.stem: p
            for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
        }

    imgs, msks = index(images), index(masks)
    missing = sorted(set(imgs) ^ set(msks))
    if missing:
        raise DatasetError(f"{images.parent}: '{missing[0]}' is in only one of Original/ and Ground Truth/.")
    return [Pair(i, imgs[i], msks[i]) for i in sorted(imgs, key=lambda s: (len(s), s))]
