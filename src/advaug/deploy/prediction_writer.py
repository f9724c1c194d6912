"""``PredictionWriter``: Lightning's prediction writer that saves each image's mask at the image's
original resolution, and optionally its class probabilities and an overlay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image

from advaug.data.folder import decode_rgb
from advaug.data.image_folder import ImageFolder
from advaug.deploy.overlay import mask_overlay

MASKS, PROBABILITIES, OVERLAYS = "masks", "probabilities", "overlays"


def original_size_probabilities(probs: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(C, S, S) probabilities resized bilinearly to (C, height, width): the mask is their argmax
    at the original resolution, smoother than a nearest-neighbour upscale of the small mask."""
    return F.interpolate(probs[None].float(), size=(height, width), mode="bilinear", align_corners=False)[0]


def mask_png(mask: np.ndarray, num_classes: int) -> Image.Image:
    """Class ids as an 8-bit PNG; binary masks as 0/255 (the format the training loader reads)."""
    return Image.fromarray((mask * 255 if num_classes == 2 else mask).astype(np.uint8), mode="L")


class PredictionWriter(BasePredictionWriter):
    """For each image of ``dataset``: ``masks/<id>.png``; with ``probabilities``
    ``probabilities/<id>.png`` (binary: P(foreground) as 0..255) or ``<id>_c<k>.png`` per
    foreground class k; with ``overlays`` ``overlays/<id>.png`` (the mask over the image)."""

    def __init__(
        self,
        out_dir: str | Path,
        dataset: ImageFolder,
        num_classes: int,
        probabilities: bool = False,
        overlays: bool = False,
        overlay_alpha: float = 0.5,
    ) -> None:
        super().__init__(write_interval="batch")
        self.out_dir, self.dataset, self.num_classes = Path(out_dir), dataset, int(num_classes)
        self.probabilities, self.overlays, self.overlay_alpha = probabilities, overlays, float(overlay_alpha)
        self.written = 0
        for sub, wanted in ((MASKS, True), (PROBABILITIES, probabilities), (OVERLAYS, overlays)):
            if wanted:
                (self.out_dir / sub).mkdir(parents=True, exist_ok=True)

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: torch.Tensor,
        batch_indices: Any,
        batch: dict[str, Any],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        for row, index in enumerate(batch["index"].tolist()):
            image_id, path = self.dataset.files[index]
            width, height = self.dataset.sizes[index]
            probs = original_size_probabilities(prediction[row], width, height)
            mask = probs.argmax(0).to(torch.uint8).cpu().numpy()
            mask_png(mask, self.num_classes).save(self.out_dir / MASKS / f"{image_id}.png")
            if self.probabilities:
                self._write_probabilities(image_id, probs)
            if self.overlays:
                rgb = np.asarray(decode_rgb(path, self.dataset.intensity_range))
                overlay = mask_overlay(rgb, mask, self.overlay_alpha)
                Image.fromarray(overlay).save(self.out_dir / OVERLAYS / f"{image_id}.png")
            self.written += 1

    def _write_probabilities(self, image_id: str, probs: torch.Tensor) -> None:
        levels = (probs * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        folder = self.out_dir / PROBABILITIES
        if self.num_classes == 2:
            Image.fromarray(levels[1], mode="L").save(folder / f"{image_id}.png")
            return
        for k in range(1, self.num_classes):
            Image.fromarray(levels[k], mode="L").save(folder / f"{image_id}_c{k}.png")
