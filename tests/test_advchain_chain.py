"""advaug/advchain/chain.py: the whole chain at zero parameters is the identity; any parameters
keep images in [0, 1] and move masks only with a geometric part."""

import torch

from advaug.advchain.budgets import ChainBudgets, random_parameters, zero_parameters
from advaug.advchain.chain import apply_chain


def test_the_whole_chain_at_zero_is_the_identity():
    x = torch.rand(3, 3, 32, 32)
    for transforms in (("noise",), ("bias",), ("noise", "bias"), ("elastic", "affine"), ("noise", "bias", "elastic", "affine")):
        b = ChainBudgets(transforms=transforms)
        t = apply_chain(x, zero_parameters(b, x.shape), b)
        assert (t.images - x).abs().max() <= 1e-6, transforms
        assert (t.grid is None) == (not b.geometric)


def test_random_chains_stay_on_the_image_scale_and_photometric_ones_leave_masks_alone():
    x = torch.rand(4, 3, 16, 16)
    masks = torch.randint(0, 2, (4, 16, 16))
    g = torch.Generator().manual_seed(0)
    b = ChainBudgets(noise=5.0, noise_norm="linf", bias=0.9)
    t = apply_chain(x, random_parameters(b, x.shape, g), b)
    assert t.images.min() >= 0 and t.images.max() <= 1 and not torch.equal(t.images, x)
    photometric = ChainBudgets(transforms=("noise", "bias"))
    tp = apply_chain(x, random_parameters(photometric, x.shape, g), photometric)
    assert tp.grid is None and torch.equal(tp.move_masks(masks), masks)
