"""What a run's model expects as input, read from its config: the training loader's decoding
(:func:`advaug.data.folder.load_image`: RGB, greyscale replicated, 16-bit / float greyscale mapped
by ``dataset.intensity_range``), a bilinear resize to ``dataset.image_size`` and ``x / 255``, no
mean / std normalisation. Prediction reads images this way; an export writes it as JSON."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from advaug.data.datasets import as_float_images
from advaug.data.folder import check_intensity_range, load_image


@dataclass(frozen=True)
class Preprocessing:
    image_size: int
    num_classes: int
    intensity_range: tuple[float, float] | None = None
    class_names: tuple[str, ...] | None = None

    @classmethod
    def from_config(cls, run_cfg: DictConfig) -> Preprocessing:
        """From a run's saved config (``config_resolved.yaml``): its ``dataset`` node."""
        names = OmegaConf.select(run_cfg, "dataset.class_names", default=None)
        return cls(
            image_size=int(run_cfg.dataset.image_size),
            num_classes=int(run_cfg.dataset.num_classes),
            intensity_range=check_intensity_range(OmegaConf.select(run_cfg, "dataset.intensity_range")),
            class_names=tuple(str(n) for n in names) if names else None,
        )

    @property
    def classes(self) -> list[str]:
        """A name per class id: ``dataset.class_names`` if the run's config has them."""
        if self.class_names:
            return list(self.class_names)
        if self.num_classes == 2:
            return ["background", "foreground"]
        return ["background", *(f"class_{k}" for k in range(1, self.num_classes))]

    def load(self, path: str | Path) -> torch.Tensor:
        """One image file as the model's input: float (3, S, S) in [0, 1]."""
        return as_float_images(torch.from_numpy(load_image(Path(path), self.image_size, self.intensity_range)))

    def describe(self) -> dict[str, Any]:
        """The preprocessing as plain data, for a deployment outside this package."""
        size = self.image_size
        return {
            "input": {
                "layout": "NCHW",
                "shape": ["batch", 3, size, size],
                "dtype": "float32",
                "channels": "RGB (greyscale replicated to 3 channels)",
                "resize": f"bilinear (PIL) to {size}x{size}, aspect ratio not kept",
                "scaling": "x = rgb_uint8 / 255 (values in [0, 1])",
                "mean": [0.0, 0.0, 0.0],
                "std": [1.0, 1.0, 1.0],
                "intensity_range": list(self.intensity_range) if self.intensity_range else None,
                "intensity_range_note": "16-bit / float greyscale: lo..hi -> 0..255, clipped; null: each "
                "image from its own min..max",
            },
            "output": {
                "layout": "NCHW",
                "shape": ["batch", self.num_classes, size, size],
                "what": "logits; softmax over dim 1 gives class probabilities, argmax the class id",
            },
            "num_classes": self.num_classes,
            "classes": self.classes,
        }
