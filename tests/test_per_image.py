"""Per-image scores: hand-computed IoU / Dice / HD95 / pixel counts, empty cases, the CSV rows."""

import csv
import math

import pytest
import torch
from conftest import ConstantNet

from advaug.metric_keys import PER_IMAGE_FIELDS
from advaug.per_image import PerImageRecorder, image_scores, score_images


def masks():
    pred = torch.zeros(4, 10, 10, dtype=torch.long)
    target = torch.zeros_like(pred)
    pred[0, 0:4, 0:4] = 1  # 16 px; target 0:4 x 2:6, overlap 8, union 24
    target[0, 0:4, 2:6] = 1
    target[1, 2:4, 2:4] = 1  # prediction empty, mask 4 px
    # image 2: both empty
    pred[3], target[3] = 1, 1  # all foreground: background absent from both
    return pred, target


def test_scores_of_hand_made_images():
    rows = image_scores(*masks(), num_classes=2)
    normal, missed, empty, full = rows
    assert normal["iou_fg"] == pytest.approx(8 / 24) and normal["dice"] == pytest.approx(16 / 32)
    # background: intersection 100 - 24 (the foreground union) = 76, union 100 - 8 = 92
    assert normal["miou"] == pytest.approx((8 / 24 + 76 / 92) / 2)
    assert normal["hd95"] == pytest.approx(2.0)  # shifted by 2 pixels
    assert (normal["mask_pixels"], normal["pred_pixels"]) == (16, 16)
    assert (
        missed["iou_fg"] == 0 and missed["dice"] == 0 and missed["hd95"] == pytest.approx(math.hypot(10, 10))
    )
    assert missed["miou"] == pytest.approx((96 / 100 + 0) / 2) and missed["pred_pixels"] == 0
    assert empty == {"miou": 1.0, "iou_fg": 1.0, "dice": 1.0, "hd95": 0.0, "mask_pixels": 0, "pred_pixels": 0}
    # background absent from mask and prediction: left out of the mean IoU like an absent class
    assert full["miou"] == 1.0 and full["iou_fg"] == 1.0 and full["hd95"] == 0.0


def test_multi_class_averages_the_foreground_classes_present():
    pred = torch.zeros(1, 8, 8, dtype=torch.long)
    target = torch.zeros_like(pred)
    pred[0, :4, :4], target[0, :4, :4] = 1, 1  # class 1 perfect
    target[0, 6:, 6:] = 2  # class 2 missed; class 3 absent from both: skipped
    (row,) = image_scores(pred, target, num_classes=4)
    assert row["iou_fg"] == pytest.approx(0.5) and row["dice"] == pytest.approx(0.5)
    assert row["hd95"] == pytest.approx(math.hypot(8, 8) / 2)
    assert row["mask_pixels"] == 20 and row["pred_pixels"] == 16


def test_recorder_names_images_by_id_and_writes_csv(tmp_path):
    pred, target = masks()
    recorder = PerImageRecorder(2, ids=["a", "b", "c", "d"])
    recorder.update(pred[2:], target[2:], [2, 3], attack="fgsm", labels="true", eps=0.1)
    recorder.update(pred[:2], target[:2], [0, 1], attack="fgsm", labels="true", eps=0.1)
    path = recorder.write(tmp_path / "x.csv", ("attack", "labels", "eps"))
    with open(path) as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["attack", "labels", "eps", *PER_IMAGE_FIELDS]
    assert [r["id"] for r in rows] == ["c", "d", "a", "b"]
    assert float(rows[2]["iou_fg"]) == pytest.approx(1 / 3) and rows[0]["attack"] == "fgsm"
    assert not list(tmp_path.glob(".x.*"))  # written atomically: no temporary file left


def test_score_images_covers_every_image_of_the_loader():
    images = torch.rand(5, 3, 6, 6)
    masks_ = torch.randint(0, 2, (5, 6, 6))
    loader = [{"image": images[:3], "mask": masks_[:3]}, {"image": images[3:], "mask": masks_[3:]}]
    model = ConstantNet()
    torch.nn.init.zeros_(model.conv.bias)  # both logits 0: argmax picks class 0 everywhere
    recorder = score_images(model, loader, 2, ids=list("vwxyz"))
    assert [r["id"] for r in recorder.rows] == list("vwxyz")
    assert all(r["pred_pixels"] == 0 for r in recorder.rows)
    assert [r["mask_pixels"] for r in recorder.rows] == masks_.flatten(1).sum(1).tolist()
