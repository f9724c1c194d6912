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


class _Stream:
    def __init__(self, tty):
        self.tty = tty

    def isatty(self):
        return self.tty


def test_the_helper_bar_is_drawn_only_on_a_terminal_and_when_not_turned_off(monkeypatch):
    from advaug.utils.progress import progress, progress_enabled

    monkeypatch.delenv("ADVAUG_PROGRESS", raising=False)
    assert progress_enabled(None, _Stream(True)) and not progress_enabled(None, _Stream(False))
    assert not progress_enabled(False, _Stream(True))  # trainer.enable_progress_bar=false
    monkeypatch.setenv("ADVAUG_PROGRESS", "0")
    assert not progress_enabled(True, _Stream(True))
    with progress(range(3), desc="x") as bar:  # disabled under pytest (no TTY): still iterates
        assert list(bar) == [0, 1, 2]


def test_gan_duration_reads_as_a_person_would():
    from advaug.gan.progress import duration

    assert (duration(42.4), duration(185), duration(3720)) == ("42 s", "3 min 05 s", "1 h 02 min")
