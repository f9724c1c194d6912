"""Segmentation scores from torchmetrics, and their reduction into the numbers we report.

- ``miou``: dataset-level IoU averaged over all classes *including background* (the paper's
  "mean IoU", like Keras ``MeanIoU``; an empty prediction scores about 0.5 on binary data);
- ``iou_fg`` / ``dice``: dataset-level IoU / Dice averaged over the foreground classes only;
- ``miou_img``: torchmetrics ``MeanIoU`` averaged per image (empty unions skipped).

A class that occurs neither in the predictions nor in the targets of the whole split has no
IoU or Dice (0 / 0): it is left out of the averages, as Keras ``MeanIoU`` leaves it out, instead
of counting as 0 (or making Dice NaN). A split without any foreground, predicted empty, thus has
``miou`` 1 and NaN ``iou_fg`` / ``dice`` (written as null in JSON).

With more than one foreground class, each foreground class ``k`` also gets its own ``iou_c<k>``
and ``dice_c<k>`` (the averages alone do not say which class fails).
"""

from __future__ import annotations

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassJaccardIndex
from torchmetrics.segmentation import DiceScore, MeanIoU

REPORTED = ("miou", "iou_fg", "dice", "miou_img")


def segmentation_metrics(num_classes: int) -> MetricCollection:
    """A fresh collection; feed it ``(preds, target)`` as class-index tensors (N,H,W)."""
    return MetricCollection(
        {
            # NaN, not 0, for a class absent from predictions and targets: summarize() skips it
            "iou": MulticlassJaccardIndex(
                num_classes=num_classes, average="none", zero_division=float("nan")
            ),
            "dice": DiceScore(
                num_classes=num_classes,
                include_background=True,
                average="none",
                aggregation_level="global",
                input_format="index",
            ),
            "miou_img": MeanIoU(num_classes=num_classes, include_background=True, input_format="index"),
        }
    )


def summarize(raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Reduce the collection's per-class output to the reported scalars (classes without a
    score, NaN, are skipped; all of them NaN gives NaN)."""
    iou, dice = raw["iou"].float(), raw["dice"].float()
    scores = {
        "miou": iou.nanmean(),
        "iou_fg": iou[1:].nanmean(),
        "dice": dice[1:].nanmean(),
        "miou_img": raw["miou_img"].float().mean(),
    }
    if len(iou) > 2:  # binary: iou_c1 would repeat iou_fg
        for k in range(1, len(iou)):
            scores[f"iou_c{k}"] = iou[k]
            scores[f"dice_c{k}"] = dice[k]
    return scores
