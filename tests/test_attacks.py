"""The attack maths: agreement with torchattacks, loss direction, eps handling, side effects."""

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


def test_inv_fgsm_equals_torchattacks_targeted_by_true_label(model_and_batch):
    model, x, y = model_and_batch
    atk = torchattacks.FGSM(model, eps=0.1)
    atk.set_mode_targeted_by_label(quiet=True)
    assert torch.equal(attacks.inv_fgsm(model, x, y, 0.1), atk(x, y))


def test_pgd_without_random_start_equals_torchattacks(model_and_batch):
    model, x, y = model_and_batch
    ours = attacks.pgd(model, x, y, 0.03, steps=3, step_size=0.01, random_start=False)
    ref = torchattacks.PGD(model, eps=0.03, alpha=0.01, steps=3, random_start=False)(x, y)
    assert torch.equal(ours, ref)


def test_directions_change_loss_and_stay_in_ball(model_and_batch):
    model, x, y = model_and_batch

    def loss(images):
        with torch.no_grad():
            return F.cross_entropy(model(images), y).item()

    clean = loss(x)
    for method, worse in [("fgsm", True), ("pgd", True), ("inv_fgsm", False), ("inv_pgd", False)]:
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
    with pytest.raises(ConfigError, match="choose one of"):
        attacks.perturb(model, x, y, 0.1, "deepfool")
    with pytest.raises(ConfigError, match="fp16"):
        attacks.fgsm(model, x, y, 0.1, precision="fp16")
    single = smp.create_model(
        "Unet", encoder_name="resnet18", encoder_weights=None, classes=1, decoder_channels=[32, 16, 16, 8, 8]
    )
    with pytest.raises(ConfigError, match="single output channel"):
        attacks.fgsm(single, x, y, 0.1)
