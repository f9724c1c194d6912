"""A folder of images without masks, for prediction: every image file, decoded and resized as
the training loader does (:func:`advaug.data.folder.load_image`), with its original size."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from advaug.data.datasets import as_float_images
from advaug.data.folder import IMAGE_EXTENSIONS, image_size, index_images, load_image
from advaug.errors import DatasetError


class ImageFolder(Dataset):
    """Items ``{"image": float (3, S, S) in [0, 1], "index": i}``; ``files[i]`` is (id, path) and
    ``sizes[i]`` the original (width, height).

    Every file is checked when the folder is opened (its extension, the training loader's
    :class:`DatasetError` for anything else, and its header), so a non-image file stops a
    prediction before anything is computed or written.
    """

    def __init__(self, folder: str | Path, size: int, intensity_range: Sequence[float] | None = None) -> None:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise DatasetError(f"input={folder}: no such folder (point input at a folder of images).")
        self.files = list(index_images(folder).items())
        if not self.files:
            raise DatasetError(f"input={folder}: the folder holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
        self.sizes = [image_size(path) for _, path in self.files]
        self.size, self.intensity_range = int(size), intensity_range

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        image = load_image(self.files[index][1], self.size, self.intensity_range)
        return {"image": as_float_images(torch.from_numpy(image)), "index": index}
