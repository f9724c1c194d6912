"""``MetricsHistory``: which epoch each validation is recorded as, train throughput, resume merging."""

import logging
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.trainer.states import TrainerFn

from advaug.callbacks import metrics_history
from advaug.callbacks.metrics_history import MetricsHistory


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(metrics_history.time, "perf_counter", fake)
    return fake


def fake_trainer(fn=TrainerFn.FITTING, epoch=0, world_size=1, **metrics):
    return SimpleNamespace(
        sanity_checking=False,
        state=SimpleNamespace(fn=fn),
        current_epoch=epoch,
        world_size=world_size,
        callback_metrics={k.replace("__", "/"): torch.tensor(v) for k, v in metrics.items()},
    )


def validate(cb, trainer):
    cb.on_validation_start(trainer, None)
    cb.on_validation_end(trainer, None)


def train_epoch(cb, trainer, clock, batches, seconds, validate_after=None):
    """One training epoch of ``batches`` batch sizes taking ``seconds``, then its validation."""
    cb.on_train_epoch_start(trainer, None)
    for i, size in enumerate(batches):
        cb.on_train_batch_end(trainer, None, None, {"image": torch.zeros(size, 3, 2, 2)}, i)
    clock.now += seconds
    if validate_after is not None:
        validate(cb, validate_after)
        clock.now += 100.0  # validation time: not part of the training throughput
    cb.on_train_epoch_end(trainer, None)


def test_history_rows_epochs_throughput_and_losses(clock, caplog):
    cb = MetricsHistory()
    validate(cb, fake_trainer(TrainerFn.VALIDATING, val__miou=0.5, train__loss_step=9.0))  # before fit
    sanity = fake_trainer(val__miou=0.1)
    sanity.sanity_checking = True
    validate(cb, sanity)  # Lightning's sanity check: recorded nowhere
    assert cb.history == [{"epoch": 0, "val/miou": 0.5}]  # val/* only, as floats
    assert type(cb.history[0]["val/miou"]) is float

    first = fake_trainer(epoch=0, world_size=2, val__miou=0.75, train__loss_epoch=0.25)
    with caplog.at_level(logging.INFO, logger=metrics_history.__name__):
        train_epoch(cb, first, clock, [4, 4], seconds=4.0, validate_after=first)
    # the job log's line: the epoch number once, then every value so far
    line = "epoch 1  train/epoch_s=4.0000  train/samples=16.0000  train/img_per_s=4.0000  val/miou=0.7500"
    assert caplog.messages == [line]
    # an epoch without validation (check_val_every_n_epoch > 1): its end stops the clock
    second = fake_trainer(epoch=1, world_size=2, train__loss_epoch=0.125)
    train_epoch(cb, second, clock, [4, 2], seconds=2.0)
    assert cb.history == [
        {"epoch": 0, "val/miou": 0.5},
        # samples of all ranks (world size 2) over the epoch's training time, validation excluded
        {"epoch": 1, "train/epoch_s": 4.0, "train/samples": 16, "train/img_per_s": 4.0,
         "val/miou": 0.75, "train/loss": 0.25},
        {"epoch": 2, "train/epoch_s": 2.0, "train/samples": 12, "train/img_per_s": 6.0, "train/loss": 0.125},
    ]  # fmt: skip


def test_loaded_history_is_merged_never_replacing_known_epochs():
    # testing the best checkpoint (epoch 1) restores callbacks: the epochs after it must stay
    cb = MetricsHistory()
    cb.history = [{"epoch": e, "val/miou": 0.1 * e} for e in range(4)]
    best = {"history": [{"epoch": 0, "val/miou": 9.0}, {"epoch": 1, "val/miou": 9.0}]}
    cb.load_state_dict(best)
    assert cb.history == [{"epoch": e, "val/miou": 0.1 * e} for e in range(4)]
    resumed = MetricsHistory()  # a resumed run starts empty and gets every recorded epoch
    resumed.load_state_dict(cb.state_dict())
    assert resumed.history == cb.history and resumed.history[0] is not cb.history[0]
