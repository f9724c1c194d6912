"""The boundary metric: 95th-percentile Hausdorff distance (HD95) of two binary masks, in pixels.

torchmetrics has a (maximum) Hausdorff distance but no percentile, and its surface distances come
from an all-pairs distance transform (quadratic memory; 0.7 s for a pair of 128² square masks on a
shared 2-core CPU); the edges and distances here come from scipy.ndimage instead
(``binary_erosion``, ``distance_transform_edt``: 2 ms for the same pair).

Definition (MONAI's ``compute_hausdorff_distance(percentile=95)``): the edge pixels of each mask
are its foreground pixels that 4-connected erosion removes (foreground on the image border is
edge); each edge pixel of one mask has a Euclidean distance to the nearest edge pixel of the
other; HD95 is the larger of the two directed 95th percentiles (numpy's linear interpolation).

Empty cases (so that every image has a number a paired test can use):

- both masks empty: 0 (they agree everywhere);
- exactly one empty: the image diagonal, sqrt(H² + W²), the largest distance the image holds.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

PERCENTILE = 95.0


def _edges(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hd95(pred: np.ndarray, target: np.ndarray, percentile: float = PERCENTILE) -> float:
    """HD95 in pixels between the boolean masks ``pred`` and ``target`` (H, W), empty cases as above."""
    pred, target = np.asarray(pred, dtype=bool), np.asarray(target, dtype=bool)
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(f"hd95: masks must be 2-D and of one shape, got {pred.shape} and {target.shape}")
    has_pred, has_target = bool(pred.any()), bool(target.any())
    if not (has_pred or has_target):
        return 0.0
    if has_pred != has_target:
        return math.hypot(*pred.shape)
    edge_pred, edge_target = _edges(pred), _edges(target)
    # distance of every pixel to the nearest edge pixel of the other mask (EDT of its complement)
    to_target = ndimage.distance_transform_edt(~edge_target)[edge_pred]
    to_pred = ndimage.distance_transform_edt(~edge_pred)[edge_target]
    return float(max(np.percentile(to_target, percentile), np.percentile(to_pred, percentile)))
