"""advaug/advchain/budgets.py: random starts and projected steps stay within every budget, in
budget units and in the physical quantities the transforms make of them."""

import math

import pytest
import torch

from advaug.advchain.budgets import ChainBudgets, ascent_step, project, random_parameters, zero_parameters
from advaug.advchain.chain import geometry_grid
from advaug.advchain.geometric import affine_theta, displacement, identity_grid
from advaug.advchain.photometric import bias_field
from advaug.errors import ConfigError

SHAPE = torch.Size((3, 3, 20, 20))


def physical_within(params, b: ChainBudgets) -> None:
    tol = 1e-6
    if "noise" in params:
        delta = b.noise * params["noise"]
        size = delta.flatten(1).norm(dim=1) if b.noise_norm == "l2" else delta.flatten(1).abs().amax(1)
        assert (size <= b.noise + tol).all()
    if "bias" in params:
        assert ((bias_field(params["bias"], (20, 20), b.bias) - 1).abs() <= b.bias + tol).all()
    if "elastic" in params:
        d = displacement(params["elastic"], (20, 20), b.elastic, b.elastic_sigma)
        assert (d.abs() <= b.elastic + tol).all()
    if "affine" in params:
        theta = affine_theta(params["affine"], b.affine_bounds())
        shift = theta[:, :, 2].abs()
        assert (shift <= b.translate + tol).all()
        scales = theta[:, :, :2].pow(2).sum(1).sqrt()  # column norms: 1 + sx, 1 + sy
        assert ((scales - 1).abs() <= b.scale + tol).all()
        angle = torch.atan2(theta[:, 1, 0], theta[:, 0, 0]).abs()
        assert (angle <= math.radians(b.rotate) + tol).all()


@pytest.mark.parametrize("seed", range(12))
def test_budgets_hold_at_the_start_and_after_steps_of_any_size(seed):
    g = torch.Generator().manual_seed(seed)
    draw = lambda *s: float(torch.rand(1, generator=g) * torch.tensor(s[0]))  # noqa: E731
    b = ChainBudgets(
        noise=draw(3.0), noise_norm=("l2", "linf")[seed % 2], bias=draw(0.9), elastic=draw(0.3),
        rotate=draw(180.0), scale=draw(0.9), translate=draw(0.5),
        bias_grid=2 + seed % 4, elastic_grid=2 + seed % 5,
    )  # fmt: skip
    params = random_parameters(b, SHAPE, g)
    physical_within(params, b)
    for _ in range(3):
        grads = {k: torch.randn(v.shape, generator=g) * 10 ** float(torch.randn(1, generator=g)) for k, v in params.items()}
        params = ascent_step(params, grads, b, step_size=draw(5.0) + 1e-3, direction=(-1) ** seed)
        physical_within(params, b)
        assert all((v.abs() <= 1 + 1e-6).all() for v in params.values())


def test_projection_is_the_identity_inside_and_shrinks_outside():
    b = ChainBudgets(noise_norm="l2")
    inside = {"noise": torch.full((1, 3, 2, 2), 0.1), "bias": torch.full((1, 1, 4, 4), 0.5)}
    out = project(inside, b)
    assert all(torch.equal(out[k], inside[k]) for k in inside)
    outside = project({"noise": torch.full((1, 3, 2, 2), 2.0), "bias": torch.full((1, 1, 4, 4), 3.0)}, b)
    assert outside["noise"].norm().item() == pytest.approx(1.0)
    assert torch.equal(outside["bias"], torch.ones(1, 1, 4, 4))


def test_zero_parameters_make_the_identity_grid():
    b = ChainBudgets()
    x = torch.rand(SHAPE)
    grid = geometry_grid(zero_parameters(b, SHAPE), b, (20, 20), x)
    assert torch.equal(grid, identity_grid(3, (20, 20), x.double()))


def test_a_step_moves_along_the_gradient_by_its_size():
    b = ChainBudgets(transforms=("bias",))
    params = {"bias": torch.zeros(1, 1, 4, 4)}
    grad = {"bias": torch.zeros(1, 1, 4, 4)}
    grad["bias"][0, 0, 0, 0] = 5.0
    up = ascent_step(params, grad, b, step_size=0.25)
    assert up["bias"][0, 0, 0, 0].item() == pytest.approx(0.25 * 4)  # sqrt(16) x 0.25, clamped to 1
    down = ascent_step(params, grad, b, step_size=0.1, direction=-1)
    assert down["bias"][0, 0, 0, 0].item() == pytest.approx(-0.4) and down["bias"].abs().sum() == pytest.approx(0.4)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"noise": -0.1}, "aug.noise.budget"),
        ({"bias": float("nan")}, "aug.bias.budget"),
        ({"rotate": -5}, "aug.affine.rotate"),
        ({"scale": 1.0}, "aug.affine.scale"),
        ({"translate": "a lot"}, "aug.affine.translate"),
        ({"elastic": -1}, "aug.elastic.budget"),
        ({"noise_norm": "l1"}, "aug.noise.norm"),
        ({"bias_grid": 1}, "aug.bias.grid"),
        ({"elastic_sigma": 0}, "aug.elastic.sigma"),
        ({"transforms": ("noise", "blur")}, "aug.transforms"),
        ({"transforms": ()}, "aug.transforms"),
    ],
)
def test_bad_budgets_are_one_config_error_naming_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        ChainBudgets(**kwargs)
    assert str(err.value).count("\n") == 0


def test_transforms_keep_the_chain_order():
    assert ChainBudgets(transforms=["affine", "noise"]).transforms == ("noise", "affine")
