"""What every converter shares: opening a download (folder or archive), the atomic, idempotent
output folder, patient-wise splits and the ``dataset.json`` provenance record.

A converter describes its source, lists its cases and hands 2-D slices to a :class:`SliceWriter`;
the writer owns the on-disk format (``images/<id>.png``, ``masks/<id>.png``, ``splits.json``,
``dataset.json``) that :mod:`advaug.data.folder` reads back.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from advaug.data.splits import SPLITS, check_ratios, seeded_split
from advaug.errors import DatasetError
from advaug.utils.io import shared_temp_dir

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
Progress = Callable[[str], None]


def is_archive(path: Path) -> bool:
    """True for the archive formats a dataset is usually downloaded as."""
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


@contextlib.contextmanager
def open_source(src: str | Path, scratch: Path, progress: Progress = print) -> Iterator[Path]:
    """Yield a folder holding the download: ``src`` itself, or an archive unpacked into a
    temporary folder under ``scratch`` (removed afterwards)."""
    src = Path(src).expanduser()
    if src.is_dir():
        yield src
        return
    if not src.exists():
        raise DatasetError(
            f"--src {src} does not exist. Point it at the downloaded archive or its unpacked folder."
        )
    if not is_archive(src):
        raise DatasetError(
            f"--src {src} is neither a folder nor an archive ({', '.join(ARCHIVE_SUFFIXES)}). "
            "Unpack it and pass the folder."
        )
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".unpack-", dir=scratch) as tmp:
        progress(f"unpacking {src.name} ...")
        try:
            if src.name.lower().endswith(".zip"):
                with zipfile.ZipFile(src) as zf:
                    zf.extractall(tmp)
            else:
                with tarfile.open(src) as tf:
                    if not hasattr(tarfile, "data_filter"):  # Python < 3.10.12 lacks extraction filters
                        raise DatasetError(f"--src {src}: unpack the archive yourself and pass the folder.")
                    tf.extractall(tmp, filter="data")  # refuses absolute paths and links out of tmp
        except (zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
            raise DatasetError(
                f"--src {src}: cannot unpack ({exc}). Download it again or unpack it yourself."
            ) from exc
        yield Path(tmp)


def find_folder(root: Path, has: Callable[[Path], bool], what: str, max_depth: int = 4) -> Path:
    """The shallowest folder under ``root`` (itself included) for which ``has(folder)`` holds.

    Lets ``--src`` point at the archive, its unpacked top folder or the dataset folder itself.
    """
    level = [root]
    for _ in range(max_depth + 1):
        for folder in sorted(level):
            if has(folder):
                return folder
        level = [
            c for f in level for c in f.iterdir() if c.is_dir() and not c.name.startswith((".", "__MACOSX"))
        ]
    raise DatasetError(f"{root}: found no {what} (searched {max_depth} folder levels deep). Check --src.")


def visible_files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """Files of ``folder`` ending in one of ``suffixes``, skipping hidden and macOS ``._`` files
    (the MSD archives ship ``._colon_001.nii.gz`` resource forks beside the real files)."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(tuple(suffixes))
    )


def patient_split(patients: Sequence[str], ratios: dict[str, float], seed: int) -> dict[str, list[str]]:
    """Split *patients* (not slices) by ``ratios`` with a seeded shuffle: disjoint, and every split
    gets at least one patient (taken from the largest split), so tiny sets still yield
    train/val/test; fewer than 3 patients is a DatasetError."""
    ratios = check_ratios(ratios, "--split")
    if len(patients) < len(SPLITS):
        raise DatasetError(
            f"only {len(patients)} patient(s) found: need at least 3 (one per train/val/test split). "
            "Check --src or add cases."
        )
    split = seeded_split(sorted(patients), ratios, seed)
    for name in SPLITS:  # a split with ratio 0 still gets one: training needs all three
        if not split[name]:
            largest = max(SPLITS, key=lambda s: len(split[s]))
            split[name] = [split[largest].pop()]
    return {k: sorted(v) for k, v in split.items()}


def window(values: np.ndarray, level: float, width: float) -> np.ndarray:
    """CT windowing: Hounsfield units to [0, 1] (``level`` ± ``width``/2, clipped)."""
    if width <= 0:
        raise DatasetError(f"--window {level} {width}: the width must be positive (e.g. --window 40 400).")
    return np.clip((np.asarray(values, np.float32) - (level - width / 2.0)) / width, 0.0, 1.0)


def settings_match(out: Path, settings: dict[str, Any]) -> bool:
    """True when ``out`` holds a finished conversion made with exactly these settings."""
    info = out / "dataset.json"
    try:
        return json.loads(info.read_text()).get("settings") == json.loads(json.dumps(settings))
    except (OSError, json.JSONDecodeError):
        return False


class SliceWriter:
    """Collects 2-D slices in a temporary folder beside ``out`` and publishes it with a rename.

    Use as a context manager: on an exception the temporary folder is deleted and ``out`` is left
    as it was; :meth:`finish` writes ``splits.json`` and ``dataset.json`` and swaps the folder in.
    """

    def __init__(self, out: Path, size: int, num_classes: int = 2) -> None:
        self.out, self.size, self.num_classes = Path(out), int(size), int(num_classes)
        self.groups: dict[str, list[str]] = {}
        self.fg_pixels = self.pixels = self.empty = 0
        self.tmp: Path | None = None

    def __enter__(self) -> SliceWriter:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = shared_temp_dir(f".{self.out.name}.tmp-", self.out.parent)
        (self.tmp / "images").mkdir()
        (self.tmp / "masks").mkdir()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tmp is not None and self.tmp.exists():
            shutil.rmtree(self.tmp)

    def _resize(self, array: np.ndarray, resample: int) -> Image.Image:
        img = Image.fromarray(array)
        if self.size and img.size != (self.size, self.size):
            img = img.resize((self.size, self.size), resample)
        return img

    def add(self, group: str, sample_id: str, image: np.ndarray, mask: np.ndarray) -> None:
        """Write one pair. ``image``: float in [0,1] (H,W) or uint8 (H,W[,3]); ``mask``: class ids
        (H,W). Saved as 3-channel PNG and as a PNG mask (0/255 when binary, else class ids)."""
        assert self.tmp is not None, "use SliceWriter as a context manager"
        if image.dtype != np.uint8:
            # resize in float ('F' mode) before quantising: keeps the window's grey levels
            image = np.asarray(self._resize(np.asarray(image, np.float32), Image.BILINEAR))
            image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
        else:
            image = np.asarray(self._resize(image, Image.BILINEAR))
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        ids = np.asarray(self._resize(np.asarray(mask, np.uint8), Image.NEAREST))
        Image.fromarray(image).save(self.tmp / "images" / f"{sample_id}.png")
        Image.fromarray(ids * 255 if self.num_classes == 2 else ids).save(
            self.tmp / "masks" / f"{sample_id}.png"
        )
        self.groups.setdefault(group, []).append(sample_id)
        self.fg_pixels += int((ids > 0).sum())
        self.pixels += ids.size
        self.empty += int(not ids.any())

    def finish(
        self,
        ratios: dict[str, float],
        seed: int,
        record: dict[str, Any],
        force: bool,
        progress: Progress = print,
    ) -> dict[str, Any]:
        """Split by group (patient), write ``splits.json`` and ``dataset.json``, publish ``out``."""
        assert self.tmp is not None, "use SliceWriter as a context manager"
        if not self.groups:
            raise DatasetError(
                f"no slices to write into {self.out}: no case had foreground. Check --src and the labels."
            )
        by_split = patient_split(list(self.groups), ratios, seed)
        splits = {name: sorted(i for g in by_split[name] for i in self.groups[g]) for name in SPLITS}
        (self.tmp / "splits.json").write_text(json.dumps(splits, indent=1) + "\n")
        counts = {
            "groups": len(self.groups),
            "pairs": sum(len(v) for v in self.groups.values()),
            "empty_masks": self.empty,
            "foreground_fraction": round(self.fg_pixels / max(self.pixels, 1), 6),
            "per_split": {n: {"groups": len(by_split[n]), "pairs": len(splits[n])} for n in SPLITS},
        }
        # the ids of every group: dataset.folds and seeded splits keep each group whole (data/groups.py)
        groups = {g: sorted(ids) for g, ids in sorted(self.groups.items())}
        record = {**record, "counts": counts, "split_groups": by_split, "groups": groups}
        (self.tmp / "dataset.json").write_text(json.dumps(record, indent=2) + "\n")
        self._publish(force)
        progress(
            f"wrote {counts['pairs']} pairs from {counts['groups']} {record.get('group_unit', 'groups')} to {self.out} "
            + "("
            + ", ".join(f"{n}={counts['per_split'][n]['pairs']}" for n in SPLITS)
            + ")"
        )
        return record

    def _publish(self, force: bool) -> None:
        assert self.tmp is not None
        old = None
        if self.out.exists():
            if not force:  # checked before converting too; someone may have written it meanwhile
                raise DatasetError(f"{self.out} already exists. Pass --force to replace it.")
            old = self.out.with_name(f".{self.out.name}.old-{self.tmp.name.rsplit('-', 1)[-1]}")
            self.out.rename(old)
        self.tmp.rename(self.out)
        self.tmp = None
        if old is not None:
            shutil.rmtree(old)


def check_output(out: Path, settings: dict[str, Any], force: bool, progress: Progress = print) -> bool:
    """Decide before any work: True to convert; False when ``out`` is already up to date.

    Raises when ``out`` exists with other contents and ``force`` is not set.
    """
    if out.exists() and not force:
        if settings_match(out, settings):
            progress(f"{out} is already prepared with these settings; nothing to do (--force rebuilds it).")
            return False
        raise DatasetError(
            f"{out} already exists and was not prepared with these settings. "
            "Pass --force to replace it, or choose another --out."
        )
    return True
