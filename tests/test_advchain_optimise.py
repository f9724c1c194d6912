"""advaug/advchain/optimise.py: on a tiny trained model the optimised chain raises the
divergence over its random start (and a descent lowers it: the gradient is wired), no mask is
needed, and the model comes back as it was (modes, requires_grad, BatchNorm statistics)."""

import pytest
import torch
from advchain_helpers import tiny_net, trained_net

from advaug.advchain.budgets import ChainBudgets
from advaug.advchain.optimise import ChainObjective, optimise_chain
from advaug.errors import ConfigError

CHAINS = [("noise",), ("bias",), ("elastic",), ("affine",), ("noise", "bias", "elastic", "affine")]


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(0)
    return trained_net(30)


def run(net, x, transforms, seed, **objective):
    b = ChainBudgets(transforms=transforms)
    return optimise_chain(net, x, b, ChainObjective(**objective), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("transforms", CHAINS)
@pytest.mark.parametrize("divergence, contour", [("kl", 0.0), ("mse", 0.5)])
def test_the_optimised_chain_raises_the_divergence_and_a_descent_lowers_it(fitted, transforms, divergence, contour):
    net, x, _ = fitted
    # the default, one step of one budget: a jump to near the budget's edge, raising the divergence
    # on average (one large affine step can miss for a few images: the mean over 4 starts)
    ups = [run(net, x, transforms, seed, divergence=divergence, contour_weight=contour) for seed in range(4)]
    assert sum(u.end.mean() for u in ups) > sum(u.start.mean() for u in ups), transforms
    for seed in range(2):
        # small steps: the linear picture holds, so the sign of the step decides
        small = {"divergence": divergence, "contour_weight": contour, "step_size": 0.02}
        rise = run(net, x, transforms, seed, **small)
        b = ChainBudgets(transforms=transforms)
        fall = optimise_chain(net, x, b, ChainObjective(**small), generator=torch.Generator().manual_seed(seed), direction=-1)
        assert torch.equal(rise.start, fall.start)  # the same random start
        assert rise.end.mean() > rise.start.mean() > fall.end.mean(), (transforms, seed)


def test_more_steps_from_the_same_start(fitted):
    net, x, _ = fitted
    one = run(net, x, CHAINS[-1], 0, step_size=0.05, n_iter=1)
    three = run(net, x, CHAINS[-1], 0, step_size=0.05, n_iter=3)
    assert torch.equal(one.start, three.start) and three.end.mean() > one.end.mean()


def test_no_step_is_the_random_start(fitted):
    net, x, _ = fitted
    r = run(net, x, CHAINS[-1], 0, n_iter=0)
    assert torch.equal(r.start, r.end) and r.start.mean() > 0


def test_label_free_it_reads_images_only_and_the_seed_fixes_the_start(fitted):
    net, x, _ = fitted  # no mask is passed anywhere
    a, b = run(net, x, CHAINS[-1], 3), run(net, x, CHAINS[-1], 3)
    assert torch.equal(a.transformed.images, b.transformed.images)
    assert not torch.equal(run(net, x, CHAINS[-1], 4).transformed.images, a.transformed.images)


@pytest.mark.parametrize("use_eval_mode", [True, False])
def test_the_model_comes_back_as_it_was(use_eval_mode):
    net = tiny_net().train()
    net[3].eval()  # one layer in its own mode
    net[0].weight.requires_grad_(False)
    stats = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(4, 3, 16, 16)
    optimise_chain(net, x, ChainBudgets(), ChainObjective(n_iter=2), use_eval_mode=use_eval_mode)
    assert net.training and not net[3].training and net[1].training
    assert not net[0].weight.requires_grad and net[0].bias.requires_grad
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(v, stats[k]) for k, v in net.state_dict().items())  # BatchNorm statistics too
    assert all(m.track_running_stats for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))


@pytest.mark.parametrize(
    "kwargs, key",
    [({"divergence": "js"}, "aug.divergence"), ({"n_iter": -1}, "aug.n_iter"), ({"step_size": 0}, "aug.step_size"),
     ({"contour_weight": -0.5}, "aug.contour_weight")],
)  # fmt: skip
def test_bad_objectives_are_refused(kwargs, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        ChainObjective(**kwargs)
