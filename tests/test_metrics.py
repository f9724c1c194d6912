import pytest
import torch

from advaug.metrics import segmentation_metrics, summarize


def test_scores_match_hand_computed_example():
    # 2 images 2x2, binary. Image 1: pred fg at 2 px, target fg at 1 of them + 1 other.
    preds = torch.tensor([[[1, 1], [0, 0]], [[0, 0], [0, 0]]])
    target = torch.tensor([[[1, 0], [1, 0]], [[0, 0], [0, 0]]])
    m = segmentation_metrics(2)
    m.update(preds, target)
    s = summarize(m.compute())
    # pooled: fg TP=1 FP=1 FN=1 -> IoU 1/3, Dice 2/4; bg TP=5 FP=1 FN=1 -> IoU 5/7
    assert s["iou_fg"].item() == pytest.approx(1 / 3)
    assert s["dice"].item() == pytest.approx(0.5)
    assert s["miou"].item() == pytest.approx((1 / 3 + 5 / 7) / 2)
    # per image: image 1 has bg IoU 1/3 and fg IoU 1/3; image 2 has bg IoU 1 and no fg anywhere
    # (empty union, skipped): the mean over the valid (image, class) scores is (1/3 + 1/3 + 1) / 3
    assert s["miou_img"].item() == pytest.approx(5 / 9)


def test_index_masks_are_not_misread_as_one_hot():
    # An all-background prediction of a binary mask scores ~0.5 mIoU, not a broken value.
    target = torch.zeros(4, 16, 16, dtype=torch.long)
    target[:, :4, :4] = 1
    m = segmentation_metrics(2)
    m.update(torch.zeros_like(target), target)
    s = summarize(m.compute())
    assert s["iou_fg"].item() == 0.0
    assert s["miou"].item() == pytest.approx((240 / 256) / 2)


def test_multiclass_foreground_mean():
    target = torch.tensor([[[0, 1], [2, 2]]])
    m = segmentation_metrics(3)
    m.update(target.clone(), target)
    s = summarize(m.compute())
    assert s["miou"].item() == pytest.approx(1.0)
    assert s["iou_fg"].item() == pytest.approx(1.0)


def test_class_absent_from_predictions_and_targets_is_left_out():
    # Keras MeanIoU semantics: class 2 never occurs anywhere, so it has no IoU / Dice (0/0) and
    # does not pull the averages down (it used to count as IoU 0 and make Dice NaN)
    target = torch.tensor([[[0, 1], [1, 0]]])
    m = segmentation_metrics(3)
    m.update(target.clone(), target)
    s = summarize(m.compute())
    assert s["miou"].item() == pytest.approx(1.0)
    assert s["iou_fg"].item() == pytest.approx(1.0)
    assert s["dice"].item() == pytest.approx(1.0)


def test_split_without_foreground():
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    m = segmentation_metrics(2)
    m.update(target.clone(), target)  # predicted empty: foreground scores are undefined, not 0
    s = summarize(m.compute())
    assert s["miou"].item() == pytest.approx(1.0)
    assert torch.isnan(s["iou_fg"]) and torch.isnan(s["dice"])
    preds = target.clone()
    preds[0, 0, 0] = 1  # a false positive: foreground IoU is then 0 (its union is not empty)
    m = segmentation_metrics(2)
    m.update(preds, target)
    s = summarize(m.compute())
    assert s["iou_fg"].item() == 0.0 and s["dice"].item() == 0.0
    assert s["miou"].item() == pytest.approx((31 / 32) / 2)


def test_multiclass_scores_each_foreground_class():
    # class 1: TP 2, FP 1, FN 0 -> IoU 2/3, Dice 4/5; class 2: TP 1, FP 0, FN 1 -> IoU 1/2, Dice 2/3
    target = torch.tensor([[[0, 1, 1, 2], [2, 0, 0, 0]]])
    preds = torch.tensor([[[1, 1, 1, 2], [0, 0, 0, 0]]])
    m = segmentation_metrics(3)
    m.update(preds, target)
    s = summarize(m.compute())
    assert s["iou_c1"].item() == pytest.approx(2 / 3) and s["dice_c1"].item() == pytest.approx(4 / 5)
    assert s["iou_c2"].item() == pytest.approx(1 / 2) and s["dice_c2"].item() == pytest.approx(2 / 3)
    assert s["iou_fg"].item() == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert "iou_c0" not in s
    binary = segmentation_metrics(2)
    binary.update(preds.clamp(max=1), target.clamp(max=1))
    assert not any(k.startswith(("iou_c", "dice_c")) for k in summarize(binary.compute()))  # = iou_fg


def test_per_class_keys_in_class_order():
    from advaug.metric_keys import per_class_keys

    keys = ["test/iou_c10", "test/iou_c2", "test/miou", "test/dice_c2", "iou_c1", "iou_cx"]
    assert per_class_keys(keys) == ["iou_c1", "iou_c2", "iou_c10"]
    assert per_class_keys(keys, "dice") == ["dice_c2"]


def test_dice_and_iou_are_pooled_over_the_split_not_averaged_per_image():
    # image 1: its 1 foreground pixel found (Dice 1); image 2: 1 of 3 found (Dice 2/4). Pooled:
    # TP=2 FN=2 FP=0 -> Dice 4/6 and IoU 2/4 (a per-image mean would give Dice 3/4, IoU 2/3)
    target = torch.tensor([[[1, 0], [0, 0]], [[1, 1], [1, 0]]])
    preds = torch.tensor([[[1, 0], [0, 0]], [[1, 0], [0, 0]]])
    m = segmentation_metrics(2)
    m.update(preds, target)
    s = summarize(m.compute())
    assert s["dice"].item() == pytest.approx(4 / 6)
    assert s["iou_fg"].item() == pytest.approx(2 / 4)
