"""scripts/gan_quality.py: the no-GAN floor it scores generators against, with a known answer."""

from __future__ import annotations

import importlib.util

import torch
from conftest import ROOT

spec = importlib.util.spec_from_file_location("gan_quality", ROOT / "scripts" / "gan_quality.py")
gan_quality = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gan_quality)


def test_the_floor_paints_each_class_with_its_training_mean_colour():
    masks = torch.tensor([[[0, 1]]])  # one 1x2 image: background left, foreground right
    images = torch.tensor([[[[0.2, 0.8]], [[0.2, 0.8]], [[0.2, 0.8]]]])
    val_masks = torch.tensor([[[1, 0]]])
    val_images = torch.tensor([[[[0.6, 0.2]], [[0.8, 0.2]], [[1.0, 0.2]]]])
    # painted: foreground 0.8 on the left, background 0.2 on the right -> |0.6-0.8|, |0.8-0.8|, |1-0.8|
    expected = (0.2 + 0.0 + 0.2 + 0 + 0 + 0) / 6
    assert abs(gan_quality.class_mean_floor((images, masks), (val_images, val_masks)) - expected) < 1e-6
