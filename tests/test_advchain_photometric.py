"""advaug/advchain/photometric.py: noise and bias field, identity at zero, smooth, within budget."""

import torch

from advaug.advchain.photometric import additive_noise, apply_bias, bias_field


def test_zero_parameters_are_the_identity():
    x = torch.rand(2, 3, 17, 23)
    assert (additive_noise(x, torch.zeros_like(x), 0.7) - x).abs().max() <= 1e-6
    assert (apply_bias(x, torch.zeros(2, 1, 4, 4), 0.3) - x).abs().max() <= 1e-6


def test_the_bias_field_is_smooth_multiplicative_and_shared_by_the_channels():
    unit = torch.zeros(1, 1, 3, 3)
    unit[0, 0, 0, 0] = 1.0  # the top-left control point at the budget
    field = bias_field(unit, (21, 21), 0.3)
    assert field[0, 0, 0, 0].item() == torch.tensor(1.3).item()
    assert field[0, 0, -1, -1].item() == 1.0
    row = field[0, 0, 0, :11]
    assert (row[1:] <= row[:-1]).all()  # falls off linearly towards the next control point
    x = torch.full((1, 3, 21, 21), 0.5)
    out = apply_bias(x, unit, 0.3)
    assert torch.equal(out[:, 0], out[:, 2]) and torch.allclose(out, 0.5 * field.expand_as(out))


def test_noise_adds_budget_times_unit():
    x = torch.zeros(1, 1, 2, 2)
    unit = torch.tensor([[[[1.0, -0.5], [0.0, 0.25]]]])
    assert torch.allclose(additive_noise(x, unit, 0.2), 0.2 * unit)
