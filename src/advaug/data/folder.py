"""The on-disk format: ``<root>/images/<id>.<ext>`` + ``<root>/masks/<id>.<ext>`` (+ ``splits.json``).

Everything is checked at the door with errors that name the file and the fix, then decoded once
into uint8 tensors: images (N, 3, S, S), masks (N, S, S) holding class ids.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from advaug.errors import DatasetError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass
class Pair:
    """One image and its mask, matched by file stem."""

    id: str
    image: Path
    mask: Path


def index_images(folder: Path) -> dict[str, Path]:
    """The image files of ``folder`` by id (file stem), sorted; hidden files and sub-folders are
    skipped, any other file or two files of one id is a :class:`DatasetError`."""
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DatasetError(
                f"{path}: not an image file (expected one of {', '.join(IMAGE_EXTENSIONS)}). "
                "Move it out of the dataset folder."
            )
        if path.stem in files:
            raise DatasetError(
                f"{path}: two files share the id '{path.stem}' ({files[path.stem].name}). Keep one."
            )
        files[path.stem] = path
    return files


def find_pairs(root: str | Path) -> list[Pair]:
    """List the (image, mask) pairs of a dataset folder, sorted by id; raise on any mismatch."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"dataset folder {root} does not exist. Set dataset.root=<folder with images/ and masks/> "
            "or prepare it first (see README, 'Your own data')."
        )
    for sub in ("images", "masks"):
        if not (root / sub).is_dir():
            raise DatasetError(
                f"{root / sub} is missing: a dataset folder needs images/ and masks/ side by side."
            )
    images, masks = index_images(root / "images"), index_images(root / "masks")
    if not images:
        raise DatasetError(f"{root / 'images'} holds no images.")
    lonely_images = sorted(set(images) - set(masks))
    lonely_masks = sorted(set(masks) - set(images))
    if lonely_images:
        raise DatasetError(
            f"{images[lonely_images[0]]} has no mask in {root / 'masks'} "
            f"({len(lonely_images)} image(s) without mask). Add masks/<id>.png or remove the image."
        )
    if lonely_masks:
        raise DatasetError(
            f"{masks[lonely_masks[0]]} has no image in {root / 'images'} "
            f"({len(lonely_masks)} mask(s) without image). Add the image or remove the mask."
        )
    return [Pair(i, images[i], masks[i]) for i in sorted(images)]


def _decode_error(path: Path, exc: Exception) -> DatasetError:
    if isinstance(exc, Image.DecompressionBombError):  # PIL refuses > 2x MAX_IMAGE_PIXELS
        return DatasetError(
            f"{path}: image too large to decode safely ({exc}). Downscale it (every image is resized "
            "to dataset.image_size anyway)."
        )
    return DatasetError(f"{path}: cannot decode the image ({exc}). Replace or remove the file.")


def open_image(path: Path) -> Image.Image:
    """Open and fully decode an image file; a truncated, non-image or oversized file is a DatasetError."""
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise _decode_error(path, exc) from exc
    return img


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file from its header, with :func:`open_image`'s errors."""
    try:
        with Image.open(path) as img:
            return img.size
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise _decode_error(path, exc) from exc


HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # 16/32-bit integer and float greyscale


def check_intensity_range(intensity_range: Sequence[float] | None) -> tuple[float, float] | None:
    """``dataset.intensity_range`` as (lo, hi) with lo < hi, or None (each image its own min..max)."""
    if intensity_range is None:
        return None
    values = list(intensity_range)
    if len(values) != 2 or not float(values[0]) < float(values[1]):
        shown = "[" + ", ".join(f"{float(v):g}" for v in values) + "]"
        raise DatasetError(
            f"dataset.intensity_range={shown}: give two numbers, the lower bound below the upper "
            "(e.g. dataset.intensity_range=[0,4095] for 12-bit CT), or null to scale each image by its own range."
        )
    return float(values[0]), float(values[1])


def check_mask_threshold(threshold: int | None, num_classes: int) -> int | None:
    """``dataset.mask_threshold``, refused unless masks are binary (it would be ignored otherwise)."""
    if threshold is not None and num_classes != 2:
        raise DatasetError(
            f"dataset.mask_threshold={threshold} with dataset.num_classes={num_classes}: the threshold "
            "binarises masks (foreground = pixels >= threshold), so it applies only to binary masks "
            "(num_classes=2). Multi-class masks must hold class ids exactly: set dataset.mask_threshold=null."
        )
    return threshold


def decode_rgb(path: Path, intensity_range: Sequence[float] | None = None) -> Image.Image:
    """Decode an image as an 8-bit RGB image at its own size; grayscale is replicated to 3 channels.

    16-bit, 32-bit and float greyscale images are mapped to 0..255 from ``intensity_range``
    (lo, hi), clipped, the same for every image; without it each image from its own min..max.
    """
    window = check_intensity_range(intensity_range)
    img = open_image(path)
    if img.mode in HIGH_DEPTH_MODES:
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = window if window is not None else (float(arr.min()), float(arr.max()))
        arr = np.clip((arr - lo) / (hi - lo), 0.0, 1.0) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(np.rint(arr).astype(np.uint8))
    return img.convert("RGB")


def load_image(path: Path, size: int, intensity_range: Sequence[float] | None = None) -> np.ndarray:
    """Decode an image as RGB uint8 (3, size, size) (:func:`decode_rgb`, resized bilinearly): what
    the model sees, in training and in prediction alike."""
    img = decode_rgb(path, intensity_range).resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


def _single_channel(raw: np.ndarray, path: Path) -> np.ndarray:
    """An (H, W, C) mask as (H, W): grey stored as RGB(A) or LA is fine, colours are refused."""
    colour = raw[..., :-1] if raw.shape[-1] in (2, 4) else raw  # drop alpha
    first = colour[..., 0]
    if not (colour == first[..., None]).all():
        raise DatasetError(
            f"{path}: mask has colours (its channels differ), so class ids cannot be read from it. "
            "Save masks single-channel: class ids 0..C-1, or 0/255 when binary."
        )
    return first


def threshold_erases_class_ids(raw: np.ndarray, threshold: int | None) -> bool:
    """True when ``raw`` holds class ids (whole values 0..k, k >= 1) that ``>= threshold`` would
    all turn into background: 0/1 masks, or multi-class masks 0..3 under the JPEG threshold.

    Two values {0, k} with k > 1 are a dim binary mask, not class ids (it binarises to empty, which
    the empty-mask checks report); class ids of more than one foreground class show 3+ values."""
    if threshold is None or threshold <= 1 or raw.size == 0 or raw.min() < 0:
        return False
    top = raw.max()
    if not (1 <= top < threshold and np.all(np.mod(raw, 1) == 0)):
        return False
    return bool(top == 1 or len(np.unique(raw)) >= 3)


def mask_to_ids(raw: np.ndarray, path: Path, num_classes: int, threshold: int | None) -> np.ndarray:
    """Map raw mask pixels to class ids; accept ids 0..C-1, or {0,255} when binary.

    ``threshold`` (binary only) maps pixels >= threshold to 1, for lossy (JPEG) masks.
    """
    if raw.ndim == 3:
        raw = _single_channel(raw, path)
    if num_classes == 2 and threshold is not None:
        if threshold_erases_class_ids(raw, threshold):  # class-id masks would all become background
            top = int(raw.max())
            more = "" if top == 1 else f" and set dataset.num_classes={top + 1}"
            raise DatasetError(
                f"{path}: mask holds class ids {'0/1' if top == 1 else f'0..{top}'}, which "
                f"dataset.mask_threshold={threshold} would turn into background. Unset it "
                f"(dataset.mask_threshold=null){more} for class-id masks."
            )
        return (raw >= threshold).astype(np.uint8)
    values = np.unique(raw)
    # negative (ignore labels) or fractional values are no class ids: uint8 would wrap or truncate them
    whole = bool(np.all(values >= 0) and np.all(np.mod(values, 1) == 0))
    if whole and values.max(initial=0) < num_classes:
        return raw.astype(np.uint8)
    if num_classes == 2 and set(values.tolist()) <= {0, 255}:
        return (raw == 255).astype(np.uint8)
    listed = [f"{v:g}" if isinstance(v, float) else str(v) for v in values[:8].tolist()]
    shown = ", ".join(listed) + (" ..." if len(values) > 8 else "")
    if not whole:
        fix = (
            "Negative values (ignore labels) are not supported: map them to a class id."
            if values.min() < 0
            else "Fractional values are not class ids: save masks as integers (class ids or 0/255)."
        )
    elif values.max() < 128:  # small whole values: class ids of more classes than configured
        fix = (
            f"They look like class ids 0..{values.max():g}: set dataset.num_classes={values.max() + 1:g}"
            + (
                " (for lossy JPEG binary masks, dataset.mask_threshold=128 instead)."
                if num_classes == 2
                else "."
            )
        )
    elif num_classes == 2:
        fix = "For lossy (JPEG) binary masks set dataset.mask_threshold=128."
    elif set(values.tolist()) <= {0, 255}:
        fix = "0/255 is read as a binary mask only with dataset.num_classes=2; multi-class masks hold class ids."
    else:
        fix = f"Masks must hold class ids 0..{num_classes - 1}; set dataset.num_classes to match."
    binary = " nor {0,255}" if num_classes == 2 else ""
    raise DatasetError(
        f"{path}: mask values {{{shown}}} are neither class ids 0..{num_classes - 1}{binary}. {fix}"
    )


def read_mask_ids(path: Path, image_path: Path, num_classes: int, threshold: int | None) -> np.ndarray:
    """Decode a mask to class ids at its own resolution, checking its size against the image's."""
    img = open_image(path)
    ref_size = image_size(image_path)
    if img.size != ref_size:
        raise DatasetError(
            f"{path}: mask is {img.size[0]}x{img.size[1]} but its image {image_path.name} is "
            f"{ref_size[0]}x{ref_size[1]}. Image and mask must have the same size."
        )
    return mask_to_ids(np.asarray(img), path, num_classes, threshold)


def load_mask(path: Path, image_path: Path, size: int, num_classes: int, threshold: int | None) -> np.ndarray:
    """Decode a mask to class ids (size, size) uint8, checking its size against the image's."""
    ids = read_mask_ids(path, image_path, num_classes, threshold)
    return np.asarray(Image.fromarray(ids).resize((size, size), Image.NEAREST), dtype=np.uint8)


def load_pairs(
    pairs: Sequence[Pair],
    size: int,
    num_classes: int,
    threshold: int | None = None,
    intensity_range: Sequence[float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode pairs into uint8 tensors: images (N, 3, size, size), masks (N, size, size)."""
    images = np.empty((len(pairs), 3, size, size), dtype=np.uint8)
    masks = np.empty((len(pairs), size, size), dtype=np.uint8)
    for i, pair in enumerate(pairs):
        images[i] = load_image(pair.image, size, intensity_range)
        masks[i] = load_mask(pair.mask, pair.image, size, num_classes, threshold)
    return torch.from_numpy(images), torch.from_numpy(masks)
