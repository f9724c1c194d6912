"""advaug/advchain/geometric.py: identity at zero, a known affine moves a square (image and mask
together) where expected, the elastic field stays smooth and within budget."""

import math

import torch

from advaug.advchain.budgets import ChainBudgets
from advaug.advchain.chain import apply_chain, geometry_grid
from advaug.advchain.geometric import (
    affine_theta,
    coverage,
    displacement,
    gaussian_smooth,
    identity_grid,
    sampling_grid,
    warp,
    warp_masks,
)

N = 21  # 20 pixel steps from -1 to 1: one pixel is 0.1 in grid units


def square(rows=slice(5, 10), cols=slice(8, 13)):
    mask = torch.zeros(1, N, N, dtype=torch.long)
    mask[0, rows, cols] = 1
    return mask[:, None].float().expand(1, 3, N, N).clone(), mask


def test_zero_parameters_are_the_identity_for_images_masks_and_probabilities():
    for size in ((21, 21), (32, 48), (128, 128)):
        x = torch.rand(2, 3, *size)
        masks = torch.randint(0, 3, (2, *size))
        for name in ("elastic", "affine"):
            b = ChainBudgets(transforms=(name,))
            zero = {name: torch.zeros((2, 2, 8, 8) if name == "elastic" else (2, 5))}
            t = apply_chain(x, zero, b)
            assert (t.images - x).abs().max() <= 1e-6
            assert torch.equal(t.move_masks(masks), masks)
            assert torch.equal(coverage(t.grid), torch.ones(2, *size, dtype=torch.float64))


def test_a_shift_moves_image_and_mask_together_by_the_expected_pixels():
    x, mask = square()
    b = ChainBudgets(transforms=("affine",), translate=0.5)
    params = {"affine": torch.tensor([[0.0, 0.0, 0.0, 0.6, -0.4]])}  # x shift 0.3, y shift -0.2
    t = apply_chain(x, params, b)
    expected, _ = square(rows=slice(7, 12), cols=slice(5, 10))  # content moves by -shift: 3 left, 2 down
    assert (t.images - expected).abs().max() <= 1e-6
    assert torch.equal(t.move_masks(mask), expected[:, 0].long())


def test_a_quarter_turn_lands_the_square_where_expected():
    x, mask = square()
    b = ChainBudgets(transforms=("affine",), rotate=90.0)
    t = apply_chain(x, {"affine": torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0]])}, b)
    # out(row r, col c) reads in(row c, col 20 - r): input cols 8..12 -> rows 8..12, rows 5..9 -> cols 5..9
    expected, _ = square(rows=slice(8, 13), cols=slice(5, 10))
    assert (t.images - expected).abs().max() <= 1e-6
    assert torch.equal(t.move_masks(mask), expected[:, 0].long())


def test_a_scale_and_its_theta():
    theta = affine_theta(torch.tensor([[0.5, 1.0, -1.0, 0.0, 0.0]]), torch.tensor([math.pi / 3, 0.2, 0.2, 0.1, 0.1]))
    a = math.pi / 6
    want = torch.tensor([[[1.2 * math.cos(a), -0.8 * math.sin(a), 0.0], [1.2 * math.sin(a), 0.8 * math.cos(a), 0.0]]])
    assert torch.allclose(theta, want, atol=1e-6)


def test_elastic_warp_moves_image_and_mask_together():
    x, mask = square(rows=slice(4, 15), cols=slice(6, 16))
    b = ChainBudgets(transforms=("elastic",), elastic=0.4, elastic_grid=4, elastic_sigma=0.5)
    unit = torch.rand(1, 2, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    t = apply_chain(x, {"elastic": unit}, b)
    moved = t.move_masks(mask)
    assert not torch.equal(moved, mask)  # it did move
    agree = ((t.images[:, 0] > 0.5).long() == moved).float().mean()
    assert agree >= 0.98


def test_displacement_is_smooth_and_within_budget_and_the_grid_composes_elastic_then_affine():
    unit = torch.ones(1, 2, 5, 5)
    d = displacement(unit, (30, 30), 0.05, 1.0)
    assert torch.allclose(d, torch.full_like(d, 0.05))  # a constant field stays itself
    spike = torch.zeros(1, 1, 9, 9)
    spike[0, 0, 4, 4] = 1.0
    smooth = gaussian_smooth(spike, 1.0)
    assert smooth.sum().item() == torch.tensor(1.0).item() or abs(smooth.sum().item() - 1) < 1e-6
    assert smooth.max() < 0.2 and smooth[0, 0, 4, 4] == smooth.max()
    like = torch.zeros(1, dtype=torch.float64)
    shift = torch.tensor([[[1.0, 0.0, 0.1], [0.0, 1.0, 0.0]]], dtype=torch.float64)
    grid = sampling_grid((11, 11), 1, like, shift, d.double())
    assert torch.allclose(grid, identity_grid(1, (11, 11), like) + torch.tensor([0.15, 0.05], dtype=torch.float64))


def test_outside_the_image_images_read_zero_and_masks_background():
    x, mask = square(rows=slice(0, N), cols=slice(0, N))
    b = ChainBudgets(transforms=("affine",), translate=0.5)
    t = apply_chain(x, {"affine": torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0]])}, b)  # 5 px: the right 5 cols come from outside
    assert (t.images[..., -5:] == 0).all() and (t.images[..., :-5] == 1).all()
    assert (t.move_masks(mask)[..., -5:] == 0).all()
    cov = coverage(t.grid)
    assert (cov[..., -5:] == 0).all() and (cov[..., :-5] == 1).all()


def test_warp_masks_keeps_class_ids_and_dtype():
    masks = torch.randint(0, 4, (2, 16, 16), dtype=torch.uint8)
    grid = geometry_grid({"affine": torch.rand(2, 5) * 2 - 1}, ChainBudgets(transforms=("affine",)), (16, 16), torch.zeros(2))
    out = warp_masks(masks, grid)
    assert out.dtype == torch.uint8 and set(out.unique().tolist()) <= {0, 1, 2, 3}
    assert torch.equal(warp(masks[:, None].double(), grid, "nearest")[:, 0].to(torch.uint8), out)
