"""HD95 on hand-drawn masks: shifted squares, empty cases, symmetry."""

import math

import numpy as np
import pytest

from advaug.boundary import hd95


def square(size=64, top=20, left=20, side=20):
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


@pytest.mark.parametrize("k", [1, 3, 5])
def test_a_square_shifted_by_k_pixels_has_hd95_k(k):
    assert hd95(square(left=20 + k), square()) == pytest.approx(k)
    assert hd95(square(top=20 + k), square()) == pytest.approx(k)  # either axis
    assert hd95(square(), square(left=20 + k)) == pytest.approx(k)  # symmetric


def test_identical_masks_score_zero_and_a_far_outlier_is_cut_by_the_percentile():
    assert hd95(square(), square()) == 0.0
    pred = square(size=128, side=40)
    pred[120, 120] = True  # one stray pixel ~ 120 px away: the maximum Hausdorff distance is large
    assert hd95(pred, square(size=128, side=40)) == 0.0  # 1 of 157 edge pixels: under 5 %


def test_empty_cases():
    empty = np.zeros((30, 40), dtype=bool)
    some = empty.copy()
    some[5:10, 5:10] = True
    assert hd95(empty, empty) == 0.0
    assert hd95(empty, some) == hd95(some, empty) == pytest.approx(math.hypot(30, 40)) == 50.0


def test_masks_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        hd95(np.zeros((4, 4), bool), np.zeros((4, 5), bool))
