"""SegmentationModule's handling of adversarial rows: the loss weight, twin normalisation routed
by source in a real fit, and the checks of its options."""

from __future__ import annotations

import pytest
import segmentation_models_pytorch as smp
import torch
from test_adversarial_callback import datamodule, trainer

from advaug.callbacks import adversarial_augmentation
from advaug.errors import ConfigError
from advaug.models import SegmentationModule
from advaug.models.segmentation import SegmentationLoss, weighted_loss
from advaug.models.twin_norm import TwinBatchNorm2d


def module(**kw) -> SegmentationModule:
    torch.manual_seed(0)
    net = smp.create_model("Unet", encoder_name="resnet18", encoder_weights=None, classes=2,
                           decoder_channels=[32, 16, 16, 8, 8])  # fmt: skip
    return SegmentationModule(net, num_classes=2, optimizer=lambda params: torch.optim.Adam(params, 1e-3), **kw)


def test_weighted_loss_is_the_weighted_mean_of_the_two_groups():
    torch.manual_seed(0)
    logits, target = torch.randn(6, 2, 8, 8), torch.randint(0, 2, (6, 8, 8))
    adversarial = torch.tensor([False, True, False, False, True, False])
    ce = SegmentationLoss(dice_weight=0.0)
    clean, adv = ce(logits[~adversarial], target[~adversarial]), ce(logits[adversarial], target[adversarial])
    assert torch.allclose(weighted_loss(ce, logits, target, adversarial, 0.5), (4 * clean + 0.5 * 2 * adv) / 5)
    assert torch.allclose(weighted_loss(ce, logits, target, adversarial, 0.0), clean)
    # weight 1, or no adversarial slot: the plain loss over the batch, bit for bit
    assert torch.equal(weighted_loss(ce, logits, target, adversarial, 1.0), ce(logits, target))
    assert torch.equal(weighted_loss(ce, logits, target, None, 0.5), ce(logits, target))
    only_adv = weighted_loss(ce, logits.requires_grad_(), target, torch.ones(6, dtype=torch.bool), 0.0)
    only_adv.backward()  # every row weighs 0: a zero loss that still backpropagates
    assert only_adv == 0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_options_are_checked():
    with pytest.raises(ConfigError, match="model.aux_norm"):
        module(aux_norm="twin")
    with pytest.raises(ConfigError, match="model.compile"):
        module(aux_norm="stats", compile=True)
    with pytest.raises(ConfigError, match="aug.adv_loss_weight"):
        module(adv_loss_weight=-1)


@pytest.mark.parametrize("aux_norm", ["stats", "affine"])
def test_a_fit_routes_adversarial_rows_to_the_twin_layers(phantom_root, tmp_path, aux_norm):
    model = module(aux_norm=aux_norm)
    twins = [m for m in model.net.modules() if isinstance(m, TwinBatchNorm2d)]
    assert twins and all(t.aux is not None for t in twins)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dm = datamodule(phantom_root)
    dm.batch_size, dm.batch_fraction = 8, 0.25  # 2 adversarial rows in the batch of 8 (1 at 1x1 cannot normalise)
    cb = adversarial_augmentation("fgsm", eps=0.01, figure_samples=0, every_n_epochs=0)
    trainer(tmp_path, [cb], max_epochs=2).fit(model, datamodule=dm)
    after = model.state_dict()
    aux_stats = [k for k in after if ".aux." in k and k.endswith("running_mean")]
    main_stats = [k.replace(".aux.", ".") for k in aux_stats]
    assert aux_stats and all(not torch.equal(before[k], after[k]) for k in aux_stats + main_stats)
    aux_affine = [k for k in after if ".aux." in k and k.endswith("weight")]
    assert bool(aux_affine) == (aux_norm == "affine")
    assert all(not torch.equal(before[k], after[k]) for k in aux_affine)  # trained on adversarial rows


def test_an_advprop_arm_trains_end_to_end_at_the_baselines_steps(tmp_path):
    import json

    from conftest import script_args
    from test_train import run_script

    arm = ["base=flip", "aug=fgsm", "aug.eps=0.0157", "model.aux_norm=affine", "aug.batch_fraction=0.25"]
    proc = run_script([*script_args(tmp_path), *arm, "trainer.max_epochs=2", "aug.adv_loss_weight=0.5", "batch_size=8"],
                      cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = list((tmp_path / "logs" / "train" / "runs").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["base"] == "flip" and metrics["aug"] == "fgsm"
    # 8 clean train images at batch 8: aug=none's 1 step and 8 samples per epoch, 2 rows adversarial
    assert [r["train/samples"] for r in metrics["history"] if "train/samples" in r] == [8, 8]
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert any(".aux." in k for k in state)  # the twin layers are checkpointed
