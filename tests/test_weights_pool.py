"""WeightsPool: the slot is declared adversarial, a one-channel model is refused before any pool,
and the slot is carried by checkpoints once the weights have moved."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from advaug.callbacks.weights_pool import WeightsPool
from advaug.data.pool import SamplePool
from advaug.errors import ConfigError


class ConstantPool(WeightsPool):
    rebuildable = True
    default_source = "weights"

    def make_pool(self, trainer, pl_module, epoch):
        return torch.full((2, 3, 4, 4), 0.5), torch.ones(2, 4, 4, dtype=torch.long)


class Net(torch.nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, channels, 1)

    @property
    def device(self):
        return torch.device("cpu")

    def forward(self, x):
        return self.conv(x)


def fake_trainer(pool: SamplePool):
    datamodule = SimpleNamespace(pool=pool, train_images=lambda idx: (torch.rand(len(idx), 3, 4, 4), None))
    return SimpleNamespace(
        datamodule=datamodule,
        reload_dataloaders_every_n_epochs=1,
        current_epoch=0,
        max_epochs=3,
        max_steps=-1,
        global_step=0,
        num_training_batches=1,
        should_stop=False,
    )


def test_setup_declares_the_slot_adversarial():
    pool = SamplePool()
    trainer = fake_trainer(pool)
    callback = ConstantPool()
    callback.setup(trainer, Net(2), "fit")
    pool.put("weights", *callback.make_pool(trainer, None, 0))
    assert pool.adversarial_codes == [pool.source_code("weights")]


def test_a_one_channel_model_is_refused_before_any_pool_is_made():
    pool = SamplePool()
    trainer = fake_trainer(pool)
    callback = ConstantPool()
    callback.setup(trainer, Net(1), "fit")
    with pytest.raises(ConfigError, match="output channels"):
        callback.on_fit_start(trainer, Net(1))
    assert pool.sizes == {}


def test_a_rebuildable_slot_is_carried_once_the_next_epoch_starts():
    pool = SamplePool()
    trainer = fake_trainer(pool)
    callback = ConstantPool()
    callback.setup(trainer, Net(2), "fit")
    pool.put("weights", *callback.make_pool(trainer, None, 0), rebuildable=True)
    assert pool.state_dict()["slots"]["weights"] == {"left_out": True}
    callback.on_train_epoch_start(trainer, Net(2))
    assert len(pool.state_dict()["slots"]["weights"]["images"]) == 2
