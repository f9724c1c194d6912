"""The attack maths: agreement with torchattacks, loss direction, eps handling, side effects."""

import copy

import pytest
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F

from advaug import attacks
from advaug.errors import ConfigError

torchattacks = pytest.importorskip("torchattacks")


@pytest.fixture(scope="module")
def model_and_batch():
    torch.manual_seed(0)
    model = smp.create_model(
        "Unet", encoder_name="resnet18", encoder_weights=None, classes=2, decoder_channels=[32, 16, 16, 8, 8]
    )
    x = torch.rand(3, 3, 32, 32)
    y = (torch.rand(3, 32, 32) > 0.7).long()
    return model.eval(), x, y


@pytest.mark.parametrize("eps", [0.0012, 0.0118, 0.1176])
def test_fgsm_equals_torchattacks_bit_for_bit(model_and_batch, eps):
    model, x, y = model_and_batch
    ours = attacks.fgsm(model, x, y, eps)
    ref = torchattacks.FGSM(model, eps=eps)(x, y)
    assert torch.equal(ours, ref)
    assert not torch.equal(ours, x)


def test_invfgsm_equals_torchattacks_targeted_by_true_label(model_and_batch):
    model, x, y = model_and_batch
    atk = torchattacks.FGSM(model, eps=0.1)
    atk.set_mode_targeted_by_label(quiet=True)
    assert torch.equal(attacks.invfgsm(model, x, y, 0.1), atk(x, y))


def test_pgd_without_random_start_equals_torchattacks(model_and_batch):
    model, x, y = model_and_batch
    ours = attacks.pgd(model, x, y, 0.03, steps=3, step_size=0.01, random_start=False)
    ref = torchattacks.PGD(model, eps=0.03, alpha=0.01, steps=3, random_start=False)(x, y)
    assert torch.equal(ours, ref)


@pytest.mark.parametrize("eps, alpha", [(4 / 255, None), (8 / 255, 10 / 255), (0.1176, 0.05)])
def test_fgsm_random_start_equals_torchattacks_ffgsm(model_and_batch, eps, alpha):
    # FFGSM draws torch.randn_like(x).uniform_(-eps, eps) from the global generator: the same
    # seed and the same normal draw burnt first leave it where our U(-eps, eps) start draws from
    model, x, y = model_and_batch
    torch.manual_seed(7)
    ref = torchattacks.FFGSM(model, eps=eps, alpha=eps if alpha is None else alpha)(x, y)
    torch.manual_seed(7)
    torch.randn_like(x)
    ours = attacks.fgsm(model, x, y, eps, random_start=True, step_size=alpha)
    assert torch.equal(ours, ref)
    assert not torch.equal(ours, attacks.fgsm(model, x, y, eps))


def test_invfgsm_random_start_lowers_the_loss_within_the_ball(model_and_batch):
    model, x, y = model_and_batch
    eps = torch.tensor([0.02, 0.05, 0.1])  # per sample
    g = torch.Generator().manual_seed(0)
    start = attacks._random_start(x, eps.view(-1, 1, 1, 1), (0.0, 1.0), g)
    adv = attacks.invfgsm(model, x, y, eps, random_start=True, generator=torch.Generator().manual_seed(0))

    def losses(images):
        with torch.no_grad():
            return F.cross_entropy(model(images), y, reduction="none").mean((1, 2))

    assert (losses(adv) < losses(start)).all()
    delta = (adv - x).flatten(1).abs().max(1).values
    assert (delta <= eps + 1e-6).all() and (delta > 0.9 * eps).all()
    assert adv.min() >= 0 and adv.max() <= 1
    again = attacks.invfgsm(model, x, y, eps, random_start=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(adv, again)


def test_directions_change_loss_and_stay_in_ball(model_and_batch):
    model, x, y = model_and_batch

    def loss(images):
        with torch.no_grad():
            return F.cross_entropy(model(images), y).item()

    clean = loss(x)
    for method, worse in [("fgsm", True), ("pgd", True), ("invfgsm", False), ("invpgd", False)]:
        adv = attacks.perturb(model, x, y, 0.03, method, steps=5).images
        assert (loss(adv) > clean) == worse, method
        assert (adv - x).abs().max() <= 0.03 + 1e-6 and adv.min() >= 0 and adv.max() <= 1


def test_per_sample_eps_and_uniform_sampling(model_and_batch):
    model, x, y = model_and_batch
    eps = torch.tensor([0.0, 0.05, 0.1])
    adv = attacks.fgsm(model, x, y, eps)
    assert torch.equal(adv[0], x[0])
    inner = (x[1:] > 0.1) & (x[1:] < 0.9)  # away from the clamp
    diffs = (adv[1:] - x[1:]).abs()
    assert (
        torch.allclose(diffs[0][inner[0]].max(), torch.tensor(0.05))
        and diffs[1][inner[1]].max() <= 0.1 + 1e-6
    )
    g = torch.Generator().manual_seed(0)
    sigma = attacks.sample_eps(0.1, 1000, "uniform", g)
    assert sigma.min() > 0 and sigma.max() <= 0.1 and 0.04 < sigma.mean() < 0.06
    assert torch.equal(attacks.sample_eps(0.1, 4, "fixed"), torch.full((4,), 0.1))


def test_parameters_untouched_and_mode_restored(model_and_batch):
    model, x, y = model_and_batch
    model.train()
    before = [p.grad for p in model.parameters()]
    attacks.fgsm(model, x, y, 0.01)
    assert all(p.grad is None for p in model.parameters()) and before[0] is None
    assert model.training and all(m.training for m in model.modules())
    model.eval()


def test_attack_works_under_inference_mode(model_and_batch):
    model, x, y = model_and_batch
    with torch.inference_mode():
        adv = attacks.fgsm(model, x, y, 0.01)
    assert not torch.equal(adv, x)


@pytest.mark.parametrize("method", ["fgsm", "pgd"])
def test_labels_made_under_inference_mode(model_and_batch, method):
    # labels created inside inference_mode (a device copy or a prediction in Lightning's eval
    # loops) cannot be saved for the backward as they are: same result as ordinary labels
    model, x, y = model_and_batch
    expected = attacks.perturb(model, x, y, 0.05, method, steps=2, random_start=False).images
    with torch.inference_mode():
        y_inf = y.clone()
        pred = attacks.predicted_labels(model, x)
        adv = attacks.perturb(model, x, y_inf, 0.05, method, steps=2, random_start=False).images
        adv_pred = attacks.perturb(model, x, pred, 0.05, method, steps=2, random_start=False).images
    assert torch.equal(adv, expected)
    assert torch.equal(
        adv_pred, attacks.perturb(model, x, pred.clone(), 0.05, method, steps=2, random_start=False).images
    )


def test_zero_gradient_share_reported(model_and_batch):
    model, x, y = model_and_batch
    res = attacks.perturb(model, x, y, 0.01, "fgsm")
    assert 0.0 <= res.zero_grad_fraction < 0.5


def test_bad_input_refused(model_and_batch):
    model, x, y = model_and_batch
    for eps in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="must lie in"):
            attacks.fgsm(model, x, y, eps)
    with pytest.raises(ConfigError, match="'deepfool' is not an attack: choose one of fgsm, invfgsm, pgd, invpgd"):
        attacks.perturb(model, x, y, 0.1, "deepfool")
    with pytest.raises(ConfigError, match="is not an attack"):  # one spelling: no alias
        attacks.perturb(model, x, y, 0.1, "inv_fgsm")
    with pytest.raises(ConfigError, match="fp16"):
        attacks.fgsm(model, x, y, 0.1, precision="fp16")
    single = smp.create_model(
        "Unet", encoder_name="resnet18", encoder_weights=None, classes=1, decoder_channels=[32, 16, 16, 8, 8]
    )
    with pytest.raises(ConfigError, match="single output channel"):
        attacks.fgsm(single, x, y, 0.1)


class ZeroNet(torch.nn.Module):
    """Two output channels that do not depend on the input: its input gradient is exactly 0."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)
        torch.nn.init.zeros_(self.conv.weight)
        torch.nn.init.zeros_(self.conv.bias)

    def forward(self, x):
        return self.conv(x)


def test_attack_and_predicted_labels_run_in_eval_mode(model_and_batch):
    # a model left in train mode (BatchNorm batch statistics) is attacked as in eval mode, and a
    # partly frozen model (encoder in eval, the rest training) gets each module's own flag back
    shared, x, y = model_and_batch
    model = copy.deepcopy(shared)  # a train-mode forward updates BatchNorm statistics
    expected = attacks.fgsm(model, x, y, 0.05)
    with torch.no_grad():
        expected_pred = model(x).argmax(1)
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append(m.training))
    model.train()
    model.encoder.eval()
    assert torch.equal(attacks.fgsm(model, x, y, 0.05), expected)
    pred = attacks.predicted_labels(model, x)
    assert pred.shape == y.shape and torch.equal(pred, expected_pred)
    assert seen == [False, False]
    assert model.training and not model.encoder.training and model.decoder.training
    assert not any(m.training for m in model.encoder.modules())
    assert all(m.training for m in model.decoder.modules())
    # use_eval_mode=False attacks with the train-mode forward
    attacks.fgsm(model, x, y, 0.05, use_eval_mode=False)
    assert seen[-1] is True


@pytest.mark.parametrize("method", ["fgsm", "pgd"])
def test_a_train_mode_attack_uses_batch_statistics_and_leaves_the_running_ones(model_and_batch, method):
    # use_eval_mode=False: BatchNorm normalises with the batch's statistics, as in training, but
    # the attack's forwards (PGD: one per step) must not move the model's running statistics
    shared, x, y = model_and_batch
    model = copy.deepcopy(shared).train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)  # not the fresh 0 / 1 an update would move away from
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_adv = getattr(attacks, method)(model, x, y, 0.05, use_eval_mode=False, random_start=False)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), [
        k for k in before if not torch.equal(before[k], after[k])
    ]
    assert model.training
    eval_adv = getattr(attacks, method)(model, x, y, 0.05, random_start=False)
    assert not torch.equal(train_adv, eval_adv)  # the batch statistics did take part
    with torch.no_grad():
        expected = model(x).argmax(1)  # train mode: updates the statistics, so compare after
    model.load_state_dict(before)
    assert torch.equal(attacks.predicted_labels(model, x, use_eval_mode=False), expected)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_pgd_default_step_size_is_madry_2_5_eps_over_steps(model_and_batch):
    model, x, y = model_and_batch
    default = attacks.pgd(model, x, y, 0.04, steps=4, random_start=False)
    explicit = attacks.pgd(model, x, y, 0.04, steps=4, step_size=2.5 * 0.04 / 4, random_start=False)
    assert torch.allclose(default, explicit, atol=1e-6)
    smaller = attacks.pgd(model, x, y, 0.04, steps=4, step_size=0.04 / 4, random_start=False)
    assert not torch.allclose(default, smaller, atol=1e-6)


@pytest.mark.parametrize("method", ["pgd", "invpgd"])
def test_pgd_per_sample_eps_projects_onto_each_ball_both_sides(model_and_batch, method):
    model, x, y = model_and_batch
    eps = torch.tensor([0.01, 0.03, 0.05])
    adv = attacks.perturb(model, x, y, eps, method, steps=5, generator=torch.Generator().manual_seed(0))
    delta = (adv.images - x).flatten(1)
    inner = ((x > 0.1) & (x < 0.9)).flatten(1)  # away from the [0, 1] clamp
    for i, e in enumerate(eps.tolist()):
        d = delta[i][inner[i]]
        assert d.max() == pytest.approx(e, abs=1e-6) and d.min() == pytest.approx(-e, abs=1e-6), (i, e)


def test_zero_gradient_gives_share_one_and_pgd_random_start_in_the_ball():
    torch.manual_seed(0)
    model, x = ZeroNet().eval(), torch.rand(2, 3, 16, 16) * 0.5 + 0.25
    y = torch.zeros(2, 16, 16, dtype=torch.long)
    res = attacks.perturb(model, x, y, 0.1, "fgsm")
    assert res.zero_grad_fraction == 1.0 and torch.equal(res.images, x)  # sign(0) = 0: no move
    # PGD with no gradient keeps its random start: U(-eps, eps) noise, reproducible per generator
    res = attacks.perturb(model, x, y, 0.1, "pgd", steps=2, generator=torch.Generator().manual_seed(3))
    delta = res.images - x
    assert res.zero_grad_fraction == 1.0
    assert delta.abs().max() <= 0.1 + 1e-6 and delta.min() < -0.09 and delta.max() > 0.09
    assert abs(delta.mean().item()) < 0.01  # symmetric around x
    again = attacks.perturb(model, x, y, 0.1, "pgd", steps=2, generator=torch.Generator().manual_seed(3))
    other = attacks.perturb(model, x, y, 0.1, "pgd", steps=2, generator=torch.Generator().manual_seed(4))
    assert torch.equal(again.images, res.images) and not torch.equal(other.images, res.images)


def test_uniform_eps_reproducible_per_generator_and_bounds():
    draw = [attacks.sample_eps(0.1, 16, "uniform", torch.Generator().manual_seed(s)) for s in (0, 0, 1)]
    assert torch.equal(draw[0], draw[1]) and not torch.equal(draw[0], draw[2])
    for eps in (0.0, 1.0):  # the image scale's ends are allowed
        assert attacks.sample_eps(eps, 2).tolist() == [eps, eps]
    with pytest.raises(ConfigError, match="sampling"):
        attacks.sample_eps(0.1, 4, "normal")


def test_pgd_steps_and_custom_clamp_range(model_and_batch):
    model, x, y = model_and_batch
    with pytest.raises(ConfigError, match="at least 1"):
        attacks.pgd(model, x, y, 0.1, steps=0)
    # images normalised to [-1, 1]: the attack clamps to the range it is given, not to [0, 1]
    xn = x * 2 - 1
    adv = attacks.fgsm(model, xn, y, 0.1, clamp=(-1.0, 1.0))
    assert adv.min() >= -1 and adv.max() <= 1 and adv.min() < -0.95
    assert (adv - xn).abs().max() <= 0.1 + 1e-6
