"""advaug/advchain/divergence.py: known answers for KL, MSE, the weights and the contour term."""

import math

import pytest
import torch

from advaug.advchain.divergence import contours, prediction_divergence
from advaug.errors import ConfigError


def logits_of(prob):
    return prob.log()


def test_equal_predictions_diverge_by_zero():
    p = torch.softmax(torch.randn(2, 3, 8, 8), 1)
    for kind in ("kl", "mse"):
        assert prediction_divergence(p, logits_of(p), kind, contour_weight=0.5).abs().max() < 1e-6


def test_known_values():
    ref = torch.zeros(1, 2, 1, 2)
    ref[:, 0] = 1.0  # certain of class 0 at both pixels
    q = torch.tensor([0.5, 0.5]).view(1, 2, 1, 1).expand(1, 2, 1, 2)
    assert prediction_divergence(ref, logits_of(q), "kl").item() == pytest.approx(math.log(2))
    assert prediction_divergence(ref, logits_of(q), "mse").item() == pytest.approx(0.25)
    weights = torch.tensor([[[1.0, 0.0]]])
    other = q.clone()
    other[..., 1] = torch.tensor([0.9, 0.1]).view(1, 2, 1)
    assert prediction_divergence(ref, logits_of(other), "kl", weights).item() == pytest.approx(math.log(2))


def test_contours_see_edges_only():
    flat = torch.full((1, 2, 6, 6), 0.5)
    assert contours(flat).max() < 1e-5
    step = torch.zeros(1, 1, 6, 6)
    step[..., 3:] = 1.0
    edges = contours(step)
    assert edges[0, 0, :, 2:4].min() > 1 and edges[0, 0, :, 0].max() < 1e-5


def test_unknown_divergence_is_refused():
    with pytest.raises(ConfigError, match="aug.divergence"):
        prediction_divergence(torch.ones(1, 2, 1, 1) / 2, torch.zeros(1, 2, 1, 1), "l1")
