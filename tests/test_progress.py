"""ProgressBar: the logged metrics are read on logging steps only, and the bar still shows them."""

import functools

import lightning as L
import segmentation_models_pytorch as smp
import torch
from lightning.pytorch.callbacks import TQDMProgressBar

from advaug.callbacks import ProgressBar
from advaug.data import SegmentationDataModule
from advaug.models import SegmentationModule


def test_metrics_are_read_on_logging_steps_only(phantom_root, monkeypatch):
    reads = []
    original = TQDMProgressBar.get_metrics

    def counted(self, trainer, pl_module):
        reads.append((trainer.training, trainer.global_step))
        return original(self, trainer, pl_module)

    monkeypatch.setattr(TQDMProgressBar, "get_metrics", counted)
    torch.manual_seed(0)
    net = smp.create_model("Unet", encoder_name="resnet18", encoder_weights=None, classes=2,
                           decoder_channels=[32, 16, 16, 8, 8])  # fmt: skip
    module = SegmentationModule(net, 2, optimizer=functools.partial(torch.optim.Adam, lr=1e-3))
    dm = SegmentationDataModule(root=str(phantom_root), image_size=32, batch_size=2)  # 6 steps per epoch
    bar = ProgressBar()
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, callbacks=[bar], logger=False,
                        log_every_n_steps=2, enable_checkpointing=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(module, datamodule=dm)
    training_steps = sorted(step for training, step in reads if training)
    # one read per logged step (global step 2, 4, ...) plus one at each epoch end, not 12
    assert training_steps == [2, 4, 6, 6, 8, 10, 12, 12]
    assert any(not training for training, _ in reads)  # after validation the bar is refreshed
    shown = bar.get_metrics(trainer, module)
    assert {"train/loss_step", "val/miou"} <= set(shown)
