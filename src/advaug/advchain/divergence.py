"""The label-free objective: how far the prediction on the transformed image is from the clean
prediction (moved by the same geometry), per image. Pure functions of probabilities and logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from advaug.rules import check_divergence

_SOBEL = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])


def contours(prob: Tensor) -> Tensor:
    """Edge strength (N, C, H, W) of each class map: the Sobel gradient magnitude."""
    c = prob.shape[1]
    kx = _SOBEL.to(prob).view(1, 1, 3, 3).expand(c, 1, 3, 3)
    x = F.pad(prob, (1, 1, 1, 1), mode="replicate")
    gx, gy = F.conv2d(x, kx, groups=c), F.conv2d(x, kx.transpose(-1, -2), groups=c)
    return torch.sqrt(gx**2 + gy**2 + 1e-12)


def _weighted_mean(per_pixel: Tensor, weights: Tensor | None) -> Tensor:
    """(N, H, W) -> (N,): each image's mean over its pixels, weighted by ``weights`` (N, H, W)."""
    if weights is None:
        return per_pixel.flatten(1).mean(1)
    w = weights.to(per_pixel.dtype)
    return (per_pixel * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1.0)


def prediction_divergence(
    reference: Tensor,
    logits: Tensor,
    kind: str = "kl",
    weights: Tensor | None = None,
    contour_weight: float = 0.0,
) -> Tensor:
    """Per image (N,): ``kl`` = KL(reference || softmax(logits)) summed over classes, or ``mse`` =
    the squared difference of the probabilities averaged over classes, each averaged over the
    pixels with ``weights`` (N, H, W, in [0, 1]: the share of each pixel inside the image; all 1
    if None); plus ``contour_weight`` x the squared difference of
    their :func:`contours`. ``reference``: probabilities (N, C, H, W); it is not detached here,
    so a gradient flows through the geometry that moved it (the clean prediction itself the
    caller detaches)."""
    check_divergence(kind)
    reference = reference.float()
    logits = logits.float()
    if kind == "kl":
        log_p = F.log_softmax(logits, 1)
        per_pixel = (reference * (reference.clamp_min(1e-8).log() - log_p)).sum(1)
        prob = log_p.exp()
    else:
        prob = logits.softmax(1)
        per_pixel = ((prob - reference) ** 2).mean(1)
    out = _weighted_mean(per_pixel, weights)
    if contour_weight:
        edges = ((contours(prob) - contours(reference)) ** 2).mean(1)
        out = out + contour_weight * _weighted_mean(edges, weights)
    return out
