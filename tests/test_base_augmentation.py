"""The base augmentation (``base=``): configs, on-the-fly use, the copies the producers see, and a
stacked sweep that the report labels ``base + aug``."""

from __future__ import annotations

import albumentations as A
import lightning as L
import pytest
import torch
from conftest import compose_config, script_args, slot
from hydra.utils import instantiate
from test_adversarial_callback import datamodule, tiny_module, trainer
from test_train import run_script

from advaug.augment import Pipeline
from advaug.augment.pipeline import Chain
from advaug.callbacks import adversarial_augmentation
from advaug.callbacks.transform_pool import TransformPool
from advaug.data import SegmentationDataModule
from advaug.errors import ConfigError
from advaug.reporting import write_report


def hflip(seed: int = 0) -> Pipeline:
    return Pipeline({"hflip": A.HorizontalFlip(p=1.0)}, seed=seed)


def with_base(root, base) -> SegmentationDataModule:
    dm = datamodule(root)
    dm.base = base
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("choice", ["flip", "rotate", "crop", "jitter", "classic"])
def test_base_configs_take_the_steps_of_the_aug_of_the_same_name(tmp_path, tiny_overrides, choice):
    stacked = compose_config([*tiny_overrides, f"base={choice}", "aug=invfgsm"], tmp_path)
    plain = compose_config([*tiny_overrides, f"aug={choice}"], tmp_path)
    assert stacked.base.name == choice and stacked.aug.name == "invfgsm"
    assert stacked.base.ops == plain.aug.ops
    if choice == "classic":  # the steps of all four files
        assert list(stacked.base.ops) == ["crop", "hflip", "vflip", "rotate", "jitter"]
    dm = instantiate(stacked.dataset)
    assert isinstance(dm.base, Pipeline) and dm.base.names == list(plain.aug.ops)
    assert "callbacks" not in stacked.base  # a base augmentation produces no pool of its own


def test_no_base_by_default_and_none_for_the_other_entry_configs(tmp_path, tiny_overrides):
    cfg = compose_config(tiny_overrides, tmp_path)
    assert cfg.base.name == "none" and instantiate(cfg.dataset).base is None
    for name in ("evaluate", "check_data"):
        assert compose_config(["ckpt_path=x"] if name == "evaluate" else [], tmp_path, name).base.pipeline is None
    assert compose_config([], tmp_path, "train_gan").base.name == "none"


def test_base_copies_are_seeded_per_epoch_cached_and_the_clean_split_stays(phantom_root):
    dm = with_base(phantom_root, hflip())
    images, masks = dm.data["train"]
    copies, copied_masks = dm.training_pairs(0)
    assert torch.equal(copies, images.flip(-1)) and torch.equal(copied_masks, masks.flip(-1))
    assert dm.training_pairs(0)[0] is copies  # once per epoch, for every producer
    assert dm.training_pairs()[0] is images  # no epoch: the split as held
    x, y = dm.train_images(torch.tensor([2, 5]), epoch=0)
    assert torch.equal(x, images[[2, 5]].flip(-1).float() / 255) and torch.equal(y, masks[[2, 5]].flip(-1).long())
    rotate = Pipeline({"rotate": A.Rotate(limit=30, p=1.0)}, seed=3)
    dm = with_base(phantom_root, rotate)
    first, other = dm.training_pairs(0)[0].clone(), dm.training_pairs(1)[0]
    dm._base_copies = None
    again = dm.training_pairs(0)[0]
    assert torch.equal(first, again) and not torch.equal(first, other)  # seeded by (seed, epoch, k)


def test_base_runs_on_the_fly_before_the_aug_transform(phantom_root):
    dm = with_base(phantom_root, hflip())
    assert dm.online_transform() is dm.base
    sample = dm.train_dataset()[0]
    assert torch.equal(sample["image"], dm.data["train"][0][0].flip(-1).float() / 255)
    dm.transform = Pipeline({"vflip": A.VerticalFlip(p=1.0)})
    chained = dm.online_transform()
    assert isinstance(chained, Chain) and chained.steps == [dm.base, dm.transform]
    assert torch.equal(dm.train_dataset()[0]["image"], dm.data["train"][0][0].flip(-1, -2).float() / 255)
    dm.on_device = True
    with pytest.raises(ConfigError, match="base=none"):
        dm.train_dataloader()


def test_the_attack_sees_the_base_augmented_image(phantom_root, tmp_path):
    eps = 0.02
    cb = adversarial_augmentation("fgsm", eps=eps, eps_sampling="fixed", figure_samples=0, every_n_epochs=0)
    dm = datamodule(phantom_root)
    dm.base = hflip()
    L.seed_everything(0)
    trainer(tmp_path, [cb], max_epochs=1, limit_train_batches=1).fit(tiny_module(), datamodule=dm)
    pool = slot(dm, "adversarial")
    flipped, masks = dm.train_images(epoch=0)
    clean, _ = dm.train_images()
    assert torch.equal(pool["masks"], masks)  # the masks of the flipped images
    assert (pool["images"] - flipped).abs().max() <= eps + 1e-6  # within eps of the flipped images
    assert (pool["images"] - clean).abs().max() > 0.5  # and far from the unflipped ones


def test_a_same_steps_control_copies_the_base_augmented_samples(phantom_root, tmp_path):
    identity = Pipeline({"identity": A.NoOp()})
    control = TransformPool(identity, fraction=1.0, seed=0, every_n_epochs=0, source="same_steps")
    dm = datamodule(phantom_root)
    dm.base = hflip()
    trainer(tmp_path, [control], max_epochs=1, limit_train_batches=1).fit(tiny_module(), datamodule=dm)
    pool, (flipped, _) = slot(dm, "same_steps"), dm.train_images(epoch=0)
    got = sorted(pool["images"].reshape(len(flipped), -1).tolist())
    assert got == sorted(flipped.reshape(len(flipped), -1).tolist())  # a copy of each (the pool draws its own order)
    sources = {int(s) for b in dm.train_dataloader() for s in b["source"]}
    assert sources == {0, dm.pool.sources.index("same_steps")}


@pytest.mark.slow
def test_a_stacked_sweep_writes_one_labelled_row_per_arm(tmp_path):
    proc = run_script(["-m", *script_args(tmp_path), "aug=none,invfgsm", "base=none,flip"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    page = write_report([sweep], n_resamples=100)["tables.md"].read_text()
    table3 = page.split("## Table 3")[1].split("## Paired")[0]
    rows = {line.split("|")[1].strip() for line in table3.splitlines() if line.startswith("| ")}
    assert {"none", "invfgsm", "flip + none", "flip + invfgsm"} <= rows
    assert "| synthetic | flip + invfgsm (vs flip + none) |" in page


def test_the_design_cards_sweep_composes_for_every_cell(tmp_path, tiny_overrides):
    # python src/train.py -m aug=none,invfgsm,fgsm base=none,rotate aug.eps=0.0039,0.0118 (+ same_steps)
    from advaug.config_checks import check_config

    for aug in ("none", "same_steps", "invfgsm", "fgsm"):
        for base in ("none", "rotate"):
            cfg = compose_config([*tiny_overrides, f"aug={aug}", f"base={base}", "aug.eps=0.0039"], tmp_path)
            check_config(cfg)
            assert cfg.aug.eps == 0.0039 and cfg.base.name == base
