"""Per-image scores: the rows of ``per_image.csv`` (test split) and ``robustness_per_image.csv``
(every robustness cell), which the report's paired tests compare image by image.

One row per image: ``id`` (the file stem in the dataset folder), ``miou`` (the paper's mean IoU,
background included, over the classes present in the image's mask or prediction), ``iou_fg`` /
``dice`` (averaged over the foreground classes present), ``hd95`` (:mod:`advaug.boundary`, averaged
over the foreground classes present), ``mask_pixels`` / ``pred_pixels`` (foreground pixels).
An image whose mask and prediction both hold no foreground scores ``iou_fg`` = ``dice`` = 1 and
``hd95`` = 0; IoU and Dice come from torchmetrics (``mean_iou``, ``dice_score`` per sample).

The dataset-level scores of ``metrics.json`` stay the paper's (IoU of the pooled pixels); the mean
of these rows is another number (each image weighted equally).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchmetrics.functional.segmentation import dice_score, mean_iou

from advaug.attacks import eval_mode
from advaug.boundary import hd95
from advaug.metric_keys import PER_IMAGE_FIELDS
from advaug.reporting.tables import rows_csv


def image_scores(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> list[dict[str, float]]:
    """The scores of each image of class-index tensors ``pred``, ``target`` (N, H, W)."""
    iou = mean_iou(pred, target, num_classes, include_background=True, per_class=True, input_format="index")
    dice = dice_score(
        pred, target, num_classes, include_background=True, average="none", input_format="index"
    )
    classes = torch.arange(num_classes, device=pred.device).view(1, -1, 1, 1)
    present = ((pred.unsqueeze(1) == classes) | (target.unsqueeze(1) == classes)).flatten(2).any(2)
    nan = torch.tensor(float("nan"), device=pred.device)
    iou, dice = torch.where(present, iou.float(), nan), torch.where(present, dice.float(), nan)
    fg = present[:, 1:].any(1)  # some foreground in the mask or the prediction
    one = torch.ones_like(iou[:, 0])
    scores = {
        "miou": iou.nanmean(1),
        "iou_fg": torch.where(fg, iou[:, 1:].nanmean(1), one),
        "dice": torch.where(fg, dice[:, 1:].nanmean(1), one),
        "mask_pixels": (target > 0).flatten(1).sum(1),
        "pred_pixels": (pred > 0).flatten(1).sum(1),
    }
    values = {k: v.tolist() for k, v in scores.items()}
    p, t, shown = pred.cpu().numpy(), target.cpu().numpy(), present[:, 1:].cpu().numpy()
    rows = []
    for i in range(len(p)):
        distances = [hd95(p[i] == k, t[i] == k) for k in range(1, num_classes) if shown[i, k - 1]]
        row = {k: values[k][i] for k in ("miou", "iou_fg", "dice")}
        row["hd95"] = sum(distances) / len(distances) if distances else 0.0
        rows.append(row | {k: int(values[k][i]) for k in ("mask_pixels", "pred_pixels")})
    return rows


class PerImageRecorder:
    """Rows collected batch by batch; ``ids`` maps a batch's ``index`` (the sample's position in its
    split) to the image id (the position itself without them)."""

    def __init__(self, num_classes: int, ids: Sequence[str] | None = None) -> None:
        self.num_classes, self.ids = int(num_classes), list(ids) if ids is not None else None
        self.rows: list[dict[str, Any]] = []

    def _id(self, index: int) -> str:
        return self.ids[index] if self.ids is not None and 0 <= index < len(self.ids) else str(index)

    def update(self, pred: torch.Tensor, target: torch.Tensor, index: Iterable[int], **labels: Any) -> None:
        """Add one row per image of the batch; ``labels`` (a robustness cell) lead each row."""
        for i, scores in zip(index, image_scores(pred, target, self.num_classes), strict=True):
            self.rows.append({**labels, "id": self._id(int(i)), **scores})

    def write(self, path: str | Path, label_fields: Sequence[str] = ()) -> Path:
        """Write the rows as CSV, atomically (``label_fields`` first, then :data:`PER_IMAGE_FIELDS`)."""
        return rows_csv(path, self.rows, [*label_fields, *PER_IMAGE_FIELDS])


def batch_index(batch: dict[str, torch.Tensor], start: int) -> list[int]:
    """The split positions of a batch's images: its ``index`` entry, else ``start, start + 1, ...``."""
    if "index" in batch:
        return [int(i) for i in batch["index"].tolist()]
    return list(range(start, start + len(batch["image"])))


def score_images(
    model: nn.Module,
    loader: Iterable[dict[str, torch.Tensor]],
    num_classes: int,
    ids: Sequence[str] | None = None,
    device: torch.device | str | None = None,
) -> PerImageRecorder:
    """Score ``model``'s clean predictions on every image of ``loader`` (eval mode, no gradients)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    recorder, seen = PerImageRecorder(num_classes, ids), 0
    with eval_mode(model), torch.no_grad():
        for batch in loader:
            x, y = batch["image"].to(device), batch["mask"].to(device)
            recorder.update(model(x).argmax(1), y, batch_index(batch, seen))
            seen += len(x)
    return recorder
