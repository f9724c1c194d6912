"""Converters from public downloads to the project's on-disk format (``src/prepare_data.py``).

``prepare(name, src, out, **options)`` is the one entry: it checks ``out`` (idempotent, refuses to
overwrite without ``force``), opens the download (folder or archive), converts into a temporary
folder and renames it into place, with ``dataset.json`` recording source, licence, preprocessing
and counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from advaug.data.converters import msd_colon, polyp, verse
from advaug.data.converters.common import Progress, SliceWriter, check_output, open_source
from advaug.data.converters.ct import SliceOptions, write_cases
from advaug.data.splits import check_ratios

FORMAT_VERSION = 1
NAMES = ("colon", "lumbar", "polyp")


def _ratios(split: Sequence[float]) -> dict[str, float]:
    return dict(zip(("train", "val", "test"), (float(v) for v in split), strict=True))


def prepare(
    name: str,
    src: str | Path,
    out: str | Path,
    *,
    size: int = 128,
    split: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    force: bool = False,
    window: Sequence[float] | None = None,
    empty_fraction: float | None = None,
    slice_spacing_mm: float | None = None,
    labels: Sequence[int] = verse.LUMBAR_LABELS,
    per_level: bool = False,
    mask_threshold: int = 128,
    groups: str | Path | None = None,
    progress: Progress = print,
) -> dict[str, Any] | None:
    """Convert the download at ``src`` for dataset ``name`` into ``out``.

    Returns the ``dataset.json`` record, or None when ``out`` was already up to date.
    CT options left at None take the dataset's defaults (``msd_colon.DEFAULTS``, ``verse.DEFAULTS``).
    ``groups`` (polyp): the file mapping each frame to its video (default: a ``sequences.json``
    beside the images, when there); the split is then by video.
    """
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {NAMES}")
    src, out = Path(src).expanduser().resolve(), Path(out).expanduser().resolve()
    settings: dict[str, Any] = {
        "converter": name,
        "format_version": FORMAT_VERSION,
        "src": str(src),
        "size": int(size),
        "split": _ratios(split),
        "seed": int(seed),
    }
    if name == "polyp":
        settings["mask_threshold"] = int(mask_threshold)
        if groups is not None:
            groups = Path(groups).expanduser().resolve()
            settings["groups"] = str(groups)
    else:
        module = msd_colon if name == "colon" else verse
        defaults = module.DEFAULTS
        level, width = window if window is not None else defaults["window"]
        options = SliceOptions(
            level=float(level),
            width=float(width),
            size=int(size),
            empty_fraction=float(defaults["empty_fraction"] if empty_fraction is None else empty_fraction),
            slice_spacing_mm=float(
                defaults["slice_spacing_mm"] if slice_spacing_mm is None else slice_spacing_mm
            ),
            seed=int(seed),
        )
        settings.update(
            window={"level": options.level, "width": options.width},
            empty_fraction=options.empty_fraction,
            slice_spacing_mm=options.slice_spacing_mm,
        )
        if name == "lumbar":
            settings.update(labels=[int(v) for v in labels], per_level=bool(per_level))
    check_ratios(settings["split"], "--split")  # refuse bad ratios before converting anything
    if not check_output(out, settings, force, progress):
        return None

    with open_source(src, scratch=out.parent, progress=progress) as folder:
        if name == "polyp":
            with SliceWriter(out, size) as writer:
                report = polyp.convert(folder, writer, mask_threshold, progress, groups)
                source = polyp.SOURCES[report["source_layout"]]
                unit = "videos" if report["grouped_by_video"] else "images"
                record = _record(name, source, settings, unit, report)
                return writer.finish(settings["split"], seed, record, force, progress)
        if name == "colon":
            cases, to_classes, num_classes = msd_colon.find_cases(folder), msd_colon.to_classes, 2
            source, classes = msd_colon.SOURCE, ["background", "colon cancer"]
        else:
            cases = verse.find_cases(folder, progress)
            to_classes = verse.label_mapper(labels, per_level)
            num_classes = len(labels) + 1 if per_level else 2
            source = verse.SOURCE
            classes = (
                ["background", *(f"label {v}" for v in labels)]
                if per_level
                else ["background", "lumbar vertebra"]
            )
        progress(f"{len(cases)} scan(s) of {len({c.patient for c in cases})} patient(s) in {folder}")
        with SliceWriter(out, size, num_classes) as writer:
            write_cases(cases, writer, to_classes, options, progress)
            preprocessing = {
                "ct_window_hu": [options.level - options.width / 2, options.level + options.width / 2],
                "orientation": "RAS reoriented; axial slices, radiological view (anterior up, patient right on the left)",
                "fov": "padded to a square field of view in mm, then resized",
                "classes": classes,
                "num_classes": num_classes,
            }
            record = _record(name, source, settings, "patients", preprocessing)
            return writer.finish(settings["split"], seed, record, force, progress)


def _record(name: str, source: dict, settings: dict, unit: str, details: dict) -> dict[str, Any]:
    return {
        "name": name,
        "source": source,
        "settings": settings,
        "preprocessing": {"size": settings["size"], "channels": 3, **details},
        "group_unit": unit,
        "split_by": {"patients": "patient", "videos": "video"}.get(unit, "image"),
        "format": "images/<id>.png (RGB) + masks/<id>.png (0/255, or class ids when more than 2 classes)",
    }
