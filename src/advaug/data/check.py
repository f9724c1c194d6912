"""Up-front integrity check of a dataset folder (as nnU-Net's ``verify_dataset_integrity``).

Decodes every image and mask once with the same rules as training (``folder.py``), so every
problem that would stop a run stops here, with the same message naming the file, and prints what
the folder holds: pairs per split, image sizes and modes, the mask class histogram.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from advaug.data.folder import (
    HIGH_DEPTH_MODES,
    check_intensity_range,
    check_mask_threshold,
    find_pairs,
    open_image,
    read_mask_ids,
)
from advaug.data.splits import SPLITS, resolve_splits, unused_ids, unused_note
from advaug.errors import DatasetError

GRAYSCALE_MODES = ("1", "L", "LA", *HIGH_DEPTH_MODES)


def is_grayscale(image: Image.Image) -> bool:
    """Whether ``image`` holds grey values only: a grey mode, or a palette ("P", "PA") image whose
    pixels all use grey palette entries (a colour palette image is colour)."""
    if image.mode in GRAYSCALE_MODES:
        return True
    if image.mode not in ("P", "PA"):
        return False
    rgb = np.asarray(image.convert("RGB"))
    return bool((rgb == rgb[..., :1]).all())


def check_dataset(
    root: str | Path,
    num_classes: int = 2,
    mask_threshold: int | None = None,
    split: dict[str, float] | None = None,
    split_seed: int = 0,
    splits_file: str = "splits.json",
    intensity_range: list[float] | None = None,
) -> dict[str, Any]:
    """Validate every pair under ``root``; return a summary dict or raise :class:`DatasetError`.

    The summary holds ``counts`` (pairs and per split), ``sizes`` and ``modes`` (how many images
    of each), ``class_pixels`` (per class id, at the files' own resolution), ``foreground_share``
    (pixels of classes >= 1 over all pixels), ``empty_masks`` (masks without foreground) and
    ``notes`` (things that are handled but worth knowing).
    """
    root = Path(root)
    intensity_range = check_intensity_range(intensity_range)
    check_mask_threshold(mask_threshold, num_classes)
    pairs = find_pairs(root)
    ratios = dict(split or {"train": 0.7, "val": 0.15, "test": 0.15})
    splits = resolve_splits(root, [p.id for p in pairs], ratios, split_seed, splits_file)
    sizes: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    grey = 0
    pixels = np.zeros(num_classes, dtype=np.int64)
    empty = 0
    for pair in pairs:
        image = open_image(pair.image)
        sizes[f"{image.size[0]}x{image.size[1]}"] += 1
        modes[image.mode] += 1
        grey += is_grayscale(image)
        ids = read_mask_ids(pair.mask, pair.image, num_classes, mask_threshold)
        counts = np.bincount(ids.ravel(), minlength=num_classes)
        pixels += counts[:num_classes]
        empty += int(counts[1:].sum() == 0)
    notes = []
    left_out = unused_note(root / splits_file, [p.id for p in pairs], splits)
    if left_out:
        notes.append(left_out)
    if 0 < grey < len(pairs):
        notes.append(
            f"grayscale and colour images are mixed ({grey} grayscale): all are converted to RGB, "
            "grayscale by repeating the channel."
        )
    deep = sum(n for m, n in modes.items() if m in HIGH_DEPTH_MODES)
    if deep:
        notes.append(
            f"{deep} image(s) are 16-bit, 32-bit or float greyscale: "
            + (
                f"mapped from dataset.intensity_range={list(intensity_range)} to 0..255 (clipped)."
                if intensity_range is not None
                else "each is stretched from its own min..max to 0..255, so one grey value means different "
                "intensities in different images; for CT-like data set dataset.intensity_range=[lo,hi]."
            )
        )
    if len(sizes) > 1:
        notes.append(f"{len(sizes)} different image sizes: all are resized to dataset.image_size.")
    absent = [c for c in range(1, num_classes) if pixels[c] == 0]
    if pixels[1:].sum() == 0:
        notes.append("no mask has any foreground pixel: check that masks/ holds the right files.")
    elif absent:
        notes.append(f"class(es) {absent} never occur in any mask: check dataset.num_classes={num_classes}.")
    total = int(pixels.sum())
    return {
        "root": str(root),
        "counts": {
            "pairs": len(pairs),
            **{s: len(splits[s]) for s in SPLITS},
            "unused": len(unused_ids([p.id for p in pairs], splits)),
        },
        "split_source": splits_file
        if (root / splits_file).is_file()
        else f"seeded ({ratios}, seed {split_seed})",
        "sizes": dict(sizes.most_common()),
        "modes": dict(modes.most_common()),
        "class_pixels": {str(c): int(n) for c, n in enumerate(pixels)},
        "class_share": {str(c): float(n) / total for c, n in enumerate(pixels)},
        "foreground_share": float(pixels[1:].sum()) / total,
        "empty_masks": empty,
        "notes": notes,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a few human-readable lines."""
    counts = summary["counts"]
    lines = [
        f"dataset {summary['root']}: OK",
        f"  pairs: {counts['pairs']}  (train {counts['train']}, val {counts['val']}, test {counts['test']}"
        f"{', unused ' + str(counts['unused']) if counts.get('unused') else ''}; "
        f"split: {summary['split_source']})",
        "  image sizes: " + _most_common(summary["sizes"]),
        "  image modes: " + ", ".join(f"{k} ({v})" for k, v in summary["modes"].items()),
        "  mask classes (pixels): "
        + ", ".join(
            f"{c}: {n} ({summary['class_share'][c]:.1%})" for c, n in summary["class_pixels"].items()
        ),
        f"  foreground share: {summary['foreground_share']:.2%}; masks without foreground: "
        f"{summary['empty_masks']} of {counts['pairs']}",
    ]
    lines += [f"  note: {n}" for n in summary["notes"]]
    return "\n".join(lines)


def _most_common(counts: dict[str, int], top: int = 8) -> str:
    """``"576x720 (600), 1072x1350 (100), ... and 331 more sizes"``: Kvasir has 333 sizes."""
    shown = ", ".join(f"{k} ({v})" for k, v in list(counts.items())[:top])
    rest = len(counts) - top
    return shown + (f", ... and {rest} more sizes" if rest > 0 else "")


def check_dataset_config(dataset: Any) -> dict[str, Any]:
    """:func:`check_dataset` for a ``dataset`` config node (conf/dataset/*.yaml).

    Generates the embedded synthetic set first when the config has a ``generator`` and the folder
    holds none; a set generated with other settings is checked as it is, never replaced (a
    training run would regenerate it: the summary says so).
    """
    root = Path(str(dataset.root))
    generator = dataset.get("generator")
    stale = None
    if generator:
        from hydra.utils import instantiate

        made = instantiate(generator)
        recorded = made.recorded_settings(root)
        if recorded is None:
            made.ensure(root)
        elif recorded != made.settings:
            # a note of the summary: check_data.py prints those (its job log is off)
            stale = (
                f"{root} holds the synthetic set generated with {recorded}, not the configured "
                f"{made.settings}: checked as it is (src/train.py with this config would regenerate it)."
            )
    elif not root.is_dir() and dataset.get("prepare_hint"):
        raise DatasetError(f"dataset folder {root} does not exist. {dataset.prepare_hint}")
    split = dataset.get("split")
    summary = check_dataset(
        root,
        num_classes=int(dataset.get("num_classes", 2)),
        mask_threshold=dataset.get("mask_threshold"),
        split=None if split is None else {k: float(v) for k, v in split.items()},
        split_seed=int(dataset.get("split_seed", 0)),
        splits_file=str(dataset.get("splits_file", "splits.json")),
        intensity_range=dataset.get("intensity_range"),
    )
    if stale:
        summary["notes"].insert(0, stale)
    return summary
