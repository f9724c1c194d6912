"""Each value rule has one function and one message, whichever part of advaug applies it."""

import pytest
import torch

from advaug import rules
from advaug.attacks import perturb, sample_eps
from advaug.callbacks import adversarial_augmentation
from advaug.errors import ConfigError, DatasetError
from advaug.evaluation.robustness import normalize_grid


@pytest.mark.parametrize("eps", [0.0, 0.1, 1, 1.0, torch.tensor([0.0, 0.5, 1.0])])
def test_eps_on_the_image_scale_passes(eps):
    rules.check_eps(eps, "aug.eps")


@pytest.mark.parametrize(
    "eps,shown",
    [(-0.1, "-0.1"), (1.5, "1.5"), (float("nan"), "nan"), (True, "True"), ("0.1", "0.1"),
     (torch.tensor([0.1, 2.0]), r"\[0\.1000*\d*, 2\.0\]")],
)  # fmt: skip
def test_eps_off_the_image_scale_names_the_key_and_value(eps, shown):
    with pytest.raises(ConfigError, match=rf"^aug\.eps={shown}: eps is a perturbation size on the \[0, 1\] image"):
        rules.check_eps(eps, "aug.eps")


def test_one_eps_message_from_every_door():
    messages = []
    for call in (
        lambda: rules.check_eps(2.0, "k"),
        lambda: sample_eps(2.0, 3),
        lambda: normalize_grid(["fgsm"], [2.0], ["true"], 1),
        lambda: adversarial_augmentation("fgsm", eps=2.0),
    ):
        with pytest.raises(ConfigError) as err:
            call()
        messages.append(str(err.value).split(": ", 1)[1])
    assert len(set(messages)) == 1


def test_attack_names_have_one_spelling():
    assert rules.ATTACKS == ("fgsm", "invfgsm", "pgd", "invpgd")
    assert set(rules.SINGLE_STEP) <= set(rules.ATTACKS)
    for name in rules.ATTACKS:
        assert rules.check_attack(name, "aug.method") == name
    for old in ("inv_fgsm", "inv_pgd", "FGSM", "deepfool"):
        with pytest.raises(ConfigError, match=rf"^robustness\.methods='{old}' is not an attack: choose one of "):
            rules.check_attack(old, "robustness.methods")


def test_the_same_attack_names_in_callbacks_and_robustness():
    for name in rules.ATTACKS:
        settings = {"steps": 2} if name in ("pgd", "invpgd") else {}
        assert adversarial_augmentation(name, eps=0.1, **settings).method == name
        assert normalize_grid([name], [0.1], ["true"], 2)[0] == [name]
    with pytest.raises(ConfigError, match=r"^aug\.method='inv_fgsm' is not an attack"):
        adversarial_augmentation("inv_fgsm", eps=0.1)


@pytest.mark.parametrize("n,ok", [(2, True), (5, True), (1, False), (0, False)])
def test_num_classes_needs_background_plus_one(n, ok):
    if ok:
        rules.check_num_classes(n, "dataset.num_classes")
        return
    with pytest.raises(DatasetError, match=rf"^dataset\.num_classes={n}: need background plus at least one class"):
        rules.check_num_classes(n, "dataset.num_classes", DatasetError)


def test_the_model_and_the_data_share_the_class_rule(phantom_root):
    from advaug.data import SegmentationDataModule
    from advaug.models import SegmentationModule

    with pytest.raises(DatasetError, match=r"^dataset\.num_classes=1: need background plus at least one class"):
        SegmentationDataModule(str(phantom_root), num_classes=1)
    with pytest.raises(ConfigError, match=r"^model\.num_classes=1: need background plus at least one class"):
        SegmentationModule(torch.nn.Conv2d(3, 1, 1), num_classes=1, optimizer=torch.optim.SGD)


def test_a_single_output_channel_is_refused_by_the_attack():
    x, y = torch.rand(2, 3, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long)
    with pytest.raises(ConfigError, match=r"^the model's output channels=1: need background plus at least one"):
        perturb(torch.nn.Conv2d(3, 1, 1), x, y, 0.1, "fgsm")


def test_precision_steps_labels_and_sampling():
    assert [rules.check_precision(p) for p in ("fp32", "bf16")] == ["fp32", "bf16"]
    with pytest.raises(ConfigError, match=r"^aug\.precision='fp16': choose 'fp32' or 'bf16'"):
        adversarial_augmentation("pgd", eps=0.1, precision="fp16")
    with pytest.raises(ConfigError, match=r"^precision='fp16': choose 'fp32' or 'bf16'"):
        perturb(torch.nn.Conv2d(3, 2, 1), torch.rand(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long), 0.1,
                precision="fp16")  # fmt: skip
    assert rules.check_steps(3) == 3
    with pytest.raises(ConfigError, match=r"^aug\.steps=0: a multi-step attack needs at least 1 step"):
        adversarial_augmentation("pgd", eps=0.1, steps=0)
    with pytest.raises(ConfigError, match=r"^robustness\.pgd_steps=0: a multi-step attack needs at least 1 step"):
        normalize_grid(["pgd"], [0.1], ["true"], 0)
    assert [rules.check_labels(v) for v in (True, "true", "PRED")] == ["true", "true", "pred"]
    with pytest.raises(ConfigError, match=r"^robustness\.labels='gt': choose 'true'"):
        normalize_grid(["fgsm"], [0.1], ["gt"], 1)
    with pytest.raises(ConfigError, match=r"^aug\.eps_sampling='normal': choose 'fixed' or 'uniform'"):
        adversarial_augmentation("fgsm", eps=0.1, eps_sampling="normal")
