"""GAN baseline: networks, a few training steps, the cache, sampling, and aug=gan end to end."""

import json

import numpy as np
import pytest
import torch
from conftest import compose_config
from hydra.utils import instantiate
from PIL import Image

from advaug.callbacks import GanPool
from advaug.data import SegmentationDataModule
from advaug.data.pool import SamplePool
from advaug.errors import ConfigError
from advaug.gan import Pix2PixGAN
from advaug.gan.networks import PatchDiscriminator, UNetGenerator
from advaug.gan.training import train_gan
from advaug.training import train

SMALL_GAN = ["module.ngf=8", "module.ndf=8", "module.depth=3", "trainer.accelerator=cpu"]


def gan_overrides(tmp_path, prefix="gan.", steps=4):
    return [
        f"paths.data_dir={tmp_path / 'data'}",
        "dataset.image_size=32",
        "dataset.generator.num_images=16",
        "dataset.split={train: 0.5, val: 0.25, test: 0.25}",
        f"{prefix}steps={steps}",
        *(prefix + o for o in SMALL_GAN),
    ]


def test_networks_map_masks_to_images_and_patches():
    gen, disc = UNetGenerator(2, 3, ngf=8, depth=3), PatchDiscriminator(5, ndf=8, layers=3)
    out = gen(torch.rand(2, 2, 32, 32))
    assert out.shape == (2, 3, 32, 32) and out.abs().max() <= 1.0
    logits = disc(torch.cat([torch.rand(2, 2, 32, 32), out], 1))
    assert logits.shape[:2] == (2, 1) and logits.shape[-1] > 1  # one logit per patch
    with pytest.raises(ConfigError, match="depth"):
        gen(torch.rand(1, 2, 36, 36))


def test_gan_trains_a_few_steps_with_finite_losses_and_is_cached(tmp_path):
    cfg = compose_config(gan_overrides(tmp_path), tmp_path, config_name="train_gan")
    summary = train_gan(cfg)
    assert summary["train_pairs"] == 8 and summary["steps"] == 4 and summary["train_time_s"] > 0
    assert len(summary["history"]) == 4
    for row in summary["history"]:
        assert all(np.isfinite(row[k]) for k in ("gan/d_loss", "gan/g_adv", "gan/g_l1"))
    folder = tmp_path / "logs" / "gan"
    (cached,) = [p for p in folder.iterdir() if p.is_dir()]
    assert cached.name.startswith("synthetic-seed1234-")
    grid = Image.open(tmp_path / "run" / "gan_samples.png")
    assert grid.size[0] > 3 * 32 and grid.size[1] > 8 * 32  # 8 rows of mask | generated | real
    weights = (cached / "generator.pt").stat().st_mtime_ns
    again = train_gan(cfg)  # a second job with the same dataset, split and seed reuses it
    assert (
        again["cache_dir"] == summary["cache_dir"] and (cached / "generator.pt").stat().st_mtime_ns == weights
    )
    other = train_gan(compose_config([*gan_overrides(tmp_path), "seed=7"], tmp_path, config_name="train_gan"))
    assert other["cache_dir"] != summary["cache_dir"]
    # loading the cached generator draws nothing from the global stream (a resumed run restored it)
    state = torch.get_rng_state()
    loaded = instantiate(cfg.gan).load(cached)
    assert torch.equal(torch.get_rng_state(), state) and not loaded.training


def test_generate_is_seeded_and_in_range():
    gan = Pix2PixGAN(num_classes=3, ngf=8, ndf=8, depth=3)
    masks = torch.randint(0, 3, (4, 32, 32))
    a, b, c = gan.generate(masks, seed=1), gan.generate(masks, seed=1), gan.generate(masks, seed=2)
    assert a.shape == (4, 3, 32, 32) and 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    assert torch.equal(a, b) and not torch.equal(a, c)  # dropout noise, reproducible
    with pytest.raises(ValueError, match="class ids"):
        gan.generate(torch.full((1, 32, 32), 3))


def test_gan_pool_samples_valid_pairs(tmp_path, phantom_root):
    cfg = compose_config(
        [*gan_overrides(tmp_path, prefix="aug.gan."), "aug=gan", "aug.num_samples=12", "aug.num_workers=0"],
        tmp_path,
    )
    pool: GanPool = instantiate(cfg.aug.callbacks.gan_pool)
    dm = SegmentationDataModule(
        str(phantom_root), image_size=32, split={"train": 0.5, "val": 0.25, "test": 0.25}
    )
    dm.setup()
    images, masks = dm.train_images()
    pool.gan = Pix2PixGAN(num_classes=2, ngf=8, ndf=8, depth=3)  # untrained is enough for shapes and ids
    fakes, new_masks = pool.sample(images, masks, epoch=0)
    assert fakes.shape == (12, 3, 32, 32) and new_masks.shape == (12, 32, 32)
    assert new_masks.dtype == torch.long and set(new_masks.unique().tolist()) <= {0, 1}
    assert 0.0 <= float(fakes.min()) and float(fakes.max()) <= 1.0
    same, _ = pool.sample(images, masks, epoch=0)
    other = pool.sample(images, masks, epoch=1)[1]
    assert torch.equal(fakes, same) and not torch.equal(new_masks, other)
    originals = {m.numpy().tobytes() for m in masks}
    assert any(m.numpy().tobytes() not in originals for m in new_masks)  # geometric transforms applied
    with pytest.raises(ConfigError, match="protocol"):
        GanPool(pool.recipe, pool.mask_pipeline, protocol="online")


def test_train_with_aug_gan_end_to_end(tmp_path, tiny_overrides):
    overrides = [
        *tiny_overrides,
        *gan_overrides(tmp_path, prefix="aug.gan.")[4:],
        "aug=gan",
        "aug.num_workers=0",
        "trainer.max_epochs=1",
        "robustness.enabled=false",
    ]
    metrics = train(compose_config(overrides, tmp_path))
    assert metrics["aug"] == "gan" and 0.0 <= metrics["test"]["test/miou"] <= 1.0
    first = next(r for r in metrics["history"] if r["epoch"] == 1)
    assert first["train/samples"] == 8 + 8  # original ∪ as many generated pairs as train images
    assert (tmp_path / "run" / "figures" / "gan_samples.png").is_file()
    (cached,) = [p for p in (tmp_path / "logs" / "gan").iterdir() if p.is_dir()]
    info = json.loads((cached / "gan.json").read_text())
    assert info["train_pairs"] == 8  # the training split only


def test_cache_key_covers_trainer_settings_and_normalises_spellings(tmp_path):
    # a smoke run (max_steps=1, limit_train_batches=1) must not train into the full run's folder;
    # equal settings spelled differently (32 / "32-true", 100 / 100.0) share one
    import functools

    import lightning as L

    from advaug.gan import GanRecipe

    images, masks = torch.rand(4, 3, 32, 32), torch.randint(0, 2, (4, 32, 32))

    def key(module=(), **trainer):
        base = {"accelerator": "cpu", "devices": 1, "precision": "32-true", "enable_progress_bar": False}
        gan = functools.partial(Pix2PixGAN, num_classes=2, depth=3, **dict(module))
        recipe = GanRecipe(gan, functools.partial(L.Trainer, **(base | trainer)), str(tmp_path), steps=4)
        return recipe.folder("x", images, masks).name

    default = key()
    for changed in (
        {"max_steps": 1},
        {"limit_train_batches": 1},
        {"max_time": "00:00:01"},
        {"deterministic": True},
    ):
        assert key(**changed) != default, changed
    assert key(precision=32) == key(precision="32") == default
    assert key(accelerator="gpu", devices=2, log_every_n_steps=1, enable_model_summary=True) == default
    assert key(module={"l1_weight": 100}) == key(module={"l1_weight": 100.0})
    assert key(module={"l1_weight": 10}) != key(module={"l1_weight": 100})


def test_constructor_messages_name_both_config_paths():
    # the recipe is `gan` under src/train_gan.py and `aug.gan` under src/train.py
    with pytest.raises(ConfigError, match=r"^\[aug\.\]gan\.module\.depth=1"):
        UNetGenerator(2, depth=1)
    with pytest.raises(ConfigError, match=r"^\[aug\.\]gan\.steps=0"):
        from advaug.gan import GanRecipe

        GanRecipe(Pix2PixGAN, None, "unused", steps=0)


def test_failed_gan_training_leaves_no_partial_cache_folder(tmp_path, monkeypatch):
    # a failure after the generator was saved (here: drawing the samples) left <key>.tmp/ with a
    # generator.pt in logs/gan/ until the next training of the same key
    import advaug.gan.recipe

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(advaug.gan.recipe, "pairs_grid", broken)
    cfg = compose_config(gan_overrides(tmp_path), tmp_path, config_name="train_gan")
    with pytest.raises(RuntimeError, match="disk full"):
        train_gan(cfg)
    left = [p.name for p in (tmp_path / "logs" / "gan").iterdir() if not p.name.endswith(".lock")]
    assert left == []


def test_gan_pool_draws_new_masks_and_noise_per_epoch_and_one_small_grid_on_rank_zero(tmp_path, monkeypatch):
    # stubs for the mask transforms, the generator and the grid: no GAN, no figure (fast)
    from types import SimpleNamespace

    import advaug.callbacks.gan_pool as gan_pool

    with pytest.raises(ConfigError, match=r"aug\.num_samples=0: must be >= 1"):
        GanPool(None, None, num_samples=0)
    picked, seeds, grids = [], [], []

    def copies(pairs, num_workers):
        picked.append(list(pairs.indices))
        return pairs.images[pairs.indices], pairs.masks[pairs.indices].long()

    monkeypatch.setattr(gan_pool, "transformed_copies", copies)
    monkeypatch.setattr(
        gan_pool,
        "pairs_grid",
        lambda masks, images, path, num_classes: grids.append((len(masks), path)) or path,
    )
    gan = SimpleNamespace(
        num_classes=2,
        to=lambda device: None,
        generate=lambda masks, seed: seeds.append(seed) or torch.zeros(len(masks), 3, 2, 2),
    )
    images = torch.zeros(10, 3, 2, 2, dtype=torch.uint8)
    masks = torch.zeros(10, 2, 2, dtype=torch.uint8)
    pool = GanPool(SimpleNamespace(ensure=lambda name, images, masks: (gan, tmp_path)), None, seed=1)
    pool.gan = gan
    pool.sample(images, masks, epoch=0)
    pool.sample(images, masks, epoch=1)
    assert sorted(picked[0]) == list(range(10))  # each train mask once while the pool is no larger
    assert picked[0] != picked[1] and seeds[0] != seeds[1]  # other masks and other noise next epoch

    class Data:
        name, data = "fake", {"train": (images, masks)}

        def train_images(self):
            return images.float() / 255, masks.long()

        pool = SamplePool()

    def fit_start(rank_zero):
        trainer = SimpleNamespace(datamodule=Data(), current_epoch=0, is_global_zero=rank_zero, loggers=[],
                                  max_epochs=5, max_steps=-1, global_step=0, should_stop=False)  # fmt: skip
        pool.on_fit_start(trainer, SimpleNamespace(device="cpu"))

    fit_start(rank_zero=True)  # figures_dir unset: no grid
    pool.figures_dir = tmp_path
    fit_start(rank_zero=False)  # other DDP ranks draw none
    assert grids == []
    fit_start(rank_zero=True)
    assert grids == [(8, tmp_path / "gan_samples.png")]  # the first 8 pairs of the 10-sample pool
