"""SamplePool: named slots, sources in batches, checkpoint state, and two producers in one run."""

from __future__ import annotations

import albumentations as A
import lightning as L
import pytest
import torch

from advaug.augment.pipeline import Pipeline
from advaug.callbacks import RegenerateAdversarial, TransformPool
from advaug.callbacks.schedule import Schedule
from advaug.data import SegmentationDataModule
from advaug.data.pool import CLEAN, SamplePool, SlotSamples
from advaug.errors import ConfigError


def pair(n, value=0.5, size=4):
    return torch.full((n, 3, size, size), value), torch.ones(n, size, size, dtype=torch.long)


def test_slots_compose_and_keep_their_source_codes():
    pool = SamplePool()
    pool.put("flip", *pair(3, 0.25))
    pool.put("invfgsm", *pair(2, 0.75))
    assert pool.sizes == {"flip": 3, "invfgsm": 2} and len(pool) == 5
    assert pool.sources == [CLEAN, "flip", "invfgsm"] and pool.source_code("invfgsm") == 2
    pool.put("flip", *pair(1, 0.5))  # a producer replaces its own slot only
    assert pool.sizes == {"flip": 1, "invfgsm": 2}
    flip, adv = pool.datasets()
    assert [int(flip[0]["source"]), int(adv[1]["source"])] == [1, 2]
    assert [int(flip[0]["index"]), int(adv[0]["index"]), int(adv[1]["index"])] == [-1, -2, -3]
    pool.clear("flip")
    assert pool.sizes == {"flip": 0, "invfgsm": 2} and pool.source_code("invfgsm") == 2
    with pytest.raises(ValueError, match="taken by the clean samples"):
        pool.put(CLEAN, *pair(1))


def test_masks_are_held_as_uint8_when_they_fit_and_served_long():
    pool = SamplePool()
    pool.put("a", torch.rand(3, 3, 4, 4), torch.tensor([0, 1, 2]).view(3, 1, 1).expand(3, 4, 4).long())
    assert pool.raw("a")[1].dtype == torch.uint8
    item = pool.datasets()[0][2]
    assert item["mask"].dtype == torch.long and int(item["mask"].max()) == 2
    pool.put("wide", torch.rand(2, 3, 4, 4), torch.full((2, 4, 4), 300, dtype=torch.long))
    assert pool.raw("wide")[1].dtype == torch.long
    pool.put("ignore", torch.rand(2, 3, 4, 4), torch.full((2, 4, 4), -1, dtype=torch.long))
    assert int(pool.datasets()[2][0]["mask"].max()) == -1  # no uint8 wrap to 255
    uint8 = torch.full((1, 3, 4, 4), 51, dtype=torch.uint8)
    pool.put("u8", uint8, torch.zeros(1, 4, 4))
    assert pool.raw("u8")[0].dtype == torch.uint8 and torch.equal(pool.get("u8")[0], uint8.float() / 255)
    assert isinstance(pool.datasets()[0], SlotSamples)


def test_state_leaves_rebuildable_slots_out_until_their_producer_remakes_them():
    pool = SamplePool()
    pool.put("kept", *pair(2, 0.1))
    pool.put("remade", *pair(3, 0.2), rebuildable=True)
    state = pool.state_dict()
    assert state["slots"]["remade"] == {"left_out": True} and len(state["slots"]["kept"]["images"]) == 2
    restored = SamplePool()
    restored.load_state_dict(state)
    assert restored.sizes == {"kept": 2, "remade": 0} and restored.left_out_names == ["remade"]
    assert restored.sources == pool.sources  # codes survive the checkpoint
    restored.put("remade", *pair(3, 0.2), rebuildable=True)
    assert restored.left_out_names == [] and len(restored) == 5
    pool.weights_changed("remade")  # its producer's weights moved on: the checkpoint carries it
    assert len(pool.state_dict()["slots"]["remade"]["images"]) == 3


def test_schedule_has_one_meaning_of_zero():
    assert [e for e in range(8) if Schedule(2, 3).due(e)] == [2, 5]
    assert [e for e in range(5) if Schedule(1, 0).due(e)] == [1]  # one pool at start_epoch, kept
    assert not Schedule().due(None)
    with pytest.raises(ConfigError, match="every_n_epochs"):
        Schedule(0, -1)


class Sources(L.Callback):
    def __init__(self):
        self.seen: dict[int, list[int]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.setdefault(trainer.current_epoch, []).extend(batch["source"].tolist())


def test_a_transform_pool_and_an_adversarial_pool_train_together(phantom_root):
    from test_pool_resume import tiny_module

    L.seed_everything(0)
    dm = SegmentationDataModule(str(phantom_root), image_size=32, batch_size=4)
    flip = TransformPool(Pipeline({"flip": A.HorizontalFlip(p=1.0)}, seed=1), seed=1, source="flip")
    adv = RegenerateAdversarial("invfgsm", eps=0.05, fraction=0.5, figure_samples=0, seed=2, source="invfgsm")
    sources = Sources()
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, logger=False, callbacks=[flip, adv, sources],
                        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                        limit_val_batches=0, reload_dataloaders_every_n_epochs=1, num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(tiny_module(), datamodule=dm)
    n = dm.num_train()
    assert dm.pool.sources == [CLEAN, "flip", "invfgsm"]
    for epoch in (0, 1):  # sizes add up: every clean sample, a flip of each, half of them attacked
        seen = sources.seen[epoch]
        assert [seen.count(code) for code in (0, 1, 2)] == [n, n, round(0.5 * n)]
    assert dm.pool.sizes == {"flip": 0, "invfgsm": 0}  # no epoch after the last trains on them
    assert adv.history[0]["adv/num_samples"] == round(0.5 * n)
