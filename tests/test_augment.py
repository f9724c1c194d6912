"""Classic augmentations: alignment of image and mask, class ids, shapes, seeding, pool refresh."""

from types import SimpleNamespace

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import compose_config, slot
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from torch.utils.data import DataLoader

from advaug.augment import Pipeline
from advaug.callbacks import TransformPool
from advaug.data import SegmentationDataModule
from advaug.data.datasets import CleanPairs
from advaug.errors import ConfigError
from advaug.training import train

CLASSIC = ["flip", "rotate", "crop", "jitter", "classic"]
GEOMETRIC = {"flip", "rotate", "crop", "classic"}


def pipeline_for(aug, tmp_path, *overrides):
    cfg = compose_config([f"aug={aug}", "dataset.image_size=32", *overrides], tmp_path)
    return cfg, instantiate(cfg.aug.pipeline)


def blocky_mask(size=32, seed=0):
    """A random mask of 4x4 blocks, so shapes are asymmetric and boundaries are long."""
    rng = np.random.default_rng(seed)
    coarse = (rng.random((size // 4, size // 4)) < 0.4).astype(np.uint8)
    return np.kron(coarse, np.ones((4, 4), np.uint8))


def boundary_band(mask: np.ndarray) -> np.ndarray:
    """Pixels within one pixel of a class boundary (where image interpolation may disagree)."""
    t = torch.from_numpy(mask).float()[None, None]
    dilated = F.max_pool2d(t, 3, 1, 1)
    eroded = -F.max_pool2d(-t, 3, 1, 1)
    return (dilated != eroded)[0, 0].numpy()


@pytest.mark.parametrize("aug", CLASSIC)
def test_mask_stays_aligned_with_image(aug, tmp_path):
    """An image whose foreground equals its mask still matches it after every transform
    (exactly off the boundary; interpolation may only blur the one-pixel boundary band)."""
    _, pipeline = pipeline_for(aug, tmp_path)
    changed = 0
    for seed in range(12):
        mask = blocky_mask(seed=seed)
        image = np.repeat((mask * 200 + 30)[..., None], 3, axis=2).astype(np.uint8)
        pipeline.reseed(seed)
        out = pipeline.compose(image=image, mask=mask)  # this seed's draw (a call would reseed)
        assert out["image"].shape == image.shape and out["image"].dtype == np.uint8
        assert out["mask"].shape == mask.shape
        assert set(np.unique(out["mask"])) <= {0, 1}
        grey = out["image"].astype(float).mean(2)
        if aug == "jitter":  # image only: the mask is untouched and foreground stays brighter
            assert np.array_equal(out["mask"], mask)
            assert grey[mask == 1].min() > grey[mask == 0].max()
        else:
            threshold = (grey.max() + grey.min()) / 2
            wrong = (grey > threshold) != (out["mask"] == 1)
            assert not (wrong & ~boundary_band(out["mask"])).any(), (
                f"{aug}: image and mask disagree off the boundary"
            )
            assert wrong.mean() < 0.25  # a misaligned (e.g. unflipped) mask disagrees on ~half
        changed += not np.array_equal(out["mask"], mask) or not np.array_equal(out["image"], image)
    assert changed >= 6, f"{aug} left most samples unchanged"


@pytest.mark.parametrize("aug", ["rotate", "crop", "classic"])
def test_multiclass_masks_keep_their_class_ids(aug, tmp_path):
    _, pipeline = pipeline_for(aug, tmp_path)
    rng = np.random.default_rng(1)
    mask = np.kron(rng.integers(0, 3, (8, 8)), np.ones((4, 4), np.int64)).astype(np.uint8)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    for seed in range(10):
        pipeline.reseed(seed)
        out = pipeline.compose(image=image, mask=mask)  # this seed's draw (a call would reseed)
        assert set(np.unique(out["mask"])) <= {0, 1, 2}
        assert out["mask"].shape == (32, 32) and out["image"].shape == (32, 32, 3)


def test_pipeline_is_reproducible_under_a_seed(tmp_path):
    _, a = pipeline_for("classic", tmp_path)
    _, b = pipeline_for("classic", tmp_path)
    mask = blocky_mask()
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    torch.manual_seed(0)
    outs_a = [a(image=image, mask=mask) for _ in range(3)]
    torch.manual_seed(0)
    outs_b = [b(image=image, mask=mask) for _ in range(3)]
    for x, y in zip(outs_a, outs_b, strict=True):
        assert np.array_equal(x["image"], y["image"]) and np.array_equal(x["mask"], y["mask"])
    assert not np.array_equal(outs_a[0]["image"], outs_a[1]["image"])  # a stream, not one draw


def test_online_draws_follow_the_torch_stream_a_resume_restores(tmp_path):
    # a resumed run builds a fresh pipeline and restores the torch state of the epoch end: it must
    # draw what the uninterrupted run drew, not replay epoch 0's draws
    _, running = pipeline_for("classic", tmp_path)
    mask = blocky_mask()
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    torch.manual_seed(0)
    epoch0 = [running(image=image, mask=mask)["image"] for _ in range(3)]
    state = torch.get_rng_state()  # what the epoch-end checkpoint holds
    epoch1 = [running(image=image, mask=mask)["image"] for _ in range(3)]
    _, resumed = pipeline_for("classic", tmp_path)
    torch.set_rng_state(state)
    again = [resumed(image=image, mask=mask)["image"] for _ in range(3)]
    assert all(np.array_equal(x, y) for x, y in zip(epoch1, again, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(epoch0, epoch1, strict=True))


def test_online_workers_draw_different_augmentations(tmp_path):
    """Without per-worker reseeding every DataLoader worker replays the same forked random stream."""
    _, pipeline = pipeline_for("rotate", tmp_path, "aug.ops.rotate.p=1.0")
    image = torch.from_numpy(np.repeat(blocky_mask()[None] * 255, 3, 0))
    dataset = CleanPairs(image.repeat(4, 1, 1, 1), torch.from_numpy(blocky_mask()).repeat(4, 1, 1), pipeline)

    def draw():
        torch.manual_seed(0)
        return [b["image"] for b in DataLoader(dataset, batch_size=1, num_workers=2)]

    first, again = draw(), draw()
    assert not torch.equal(first[0], first[1])  # sample 0 from worker 0, sample 1 from worker 1
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))  # reproducible


@pytest.fixture
def datamodule(phantom_root):
    dm = SegmentationDataModule(
        str(phantom_root), image_size=32, batch_size=4, split={"train": 0.5, "val": 0.25, "test": 0.25}
    )
    dm.setup()
    return dm


def test_pool_is_filled_before_training_and_refreshed_every_epoch(datamodule, tmp_path):
    _, pipeline = pipeline_for("classic", tmp_path)
    callback = TransformPool(pipeline, fraction=0.5, seed=3)
    trainer = SimpleNamespace(
        datamodule=datamodule, current_epoch=0, max_epochs=3, max_steps=-1, global_step=0, should_stop=False
    )
    callback.on_fit_start(trainer, None)
    assert len(datamodule.pool) == 4  # half of the 8 train images, before the first loader is built
    pools = [slot(datamodule, "transform")["images"].clone()]
    assert len(datamodule.train_dataset()) == 8 + 4
    for epoch in range(3):  # on_train_epoch_end of epoch e makes the pool of epoch e + 1
        trainer.current_epoch = epoch
        callback.on_train_epoch_end(trainer, None)
        pools.append(slot(datamodule, "transform"))
    assert callback.fills == 3  # epochs 0, 1, 2; nothing after the last epoch
    assert not torch.equal(pools[0], pools[1]["images"]) and not torch.equal(pools[1]["images"], pools[2]["images"])
    assert pools[3] is None  # the last epoch's end dropped it: no epoch trains on it any more
    masks = pools[2]["masks"]
    assert masks.dtype == torch.uint8 and set(masks.unique().tolist()) <= {0, 1}  # stored compactly
    callback.on_fit_start(SimpleNamespace(**{**vars(trainer), "current_epoch": 0}), None)
    assert datamodule.train_dataset()[8]["mask"].dtype == torch.long  # served like the clean pairs
    # made from the uint8 split as held: the same pool as from the float images of train_images()
    from_float, _ = callback.transform(*datamodule.train_images(), epoch=2)
    assert torch.equal(from_float, callback.make_pool(trainer, None, 2)[0])
    assert torch.equal(from_float.float().div(255), pools[2]["images"])
    assert pools[0].shape == (4, 3, 32, 32) and 0.0 <= float(pools[0].min()) and float(pools[0].max()) <= 1.0


def test_opencv_runs_single_threaded_so_forked_loader_workers_cannot_deadlock():
    # a worker forked while OpenCV's pool held its mutex hung forever (CI, 2026-11-27)
    assert cv2.getNumThreads() == 1


def test_pool_is_the_same_for_any_number_of_workers(datamodule, tmp_path):
    _, pipeline = pipeline_for("classic", tmp_path)
    images, masks = datamodule.train_images()
    serial = TransformPool(pipeline, seed=5, num_workers=0).transform(images, masks, epoch=1)
    parallel = TransformPool(pipeline, seed=5, num_workers=2, batch_size=3).transform(images, masks, epoch=1)
    other_epoch = TransformPool(pipeline, seed=5).transform(images, masks, epoch=2)
    assert torch.equal(serial[0], parallel[0]) and torch.equal(serial[1], parallel[1])
    assert not torch.equal(serial[0], other_epoch[0])
    doubled = TransformPool(pipeline, fraction=2.0, seed=5).transform(images, masks, epoch=1)
    assert len(doubled[0]) == 16


def test_protocol_selects_online_transform_or_pool(tmp_path):
    online, _ = pipeline_for("rotate", tmp_path, "aug.protocol=online")
    assert isinstance(instantiate(online.dataset.transform), Pipeline)
    assert not instantiate(online.aug.callbacks.transform_pool).active
    pool, _ = pipeline_for("rotate", tmp_path)
    assert pool.dataset.transform is None and instantiate(pool.aug.callbacks.transform_pool).active
    bad, _ = pipeline_for("flip", tmp_path, "aug.protocol=both")
    with pytest.raises(InstantiationException) as info:  # Hydra wraps constructor errors
        instantiate(bad.aug.callbacks.transform_pool)
    assert isinstance(info.value.__cause__, ConfigError) and "aug.protocol='both'" in str(
        info.value.__cause__
    )
    with pytest.raises(ConfigError, match="aug.fraction"):
        TransformPool(instantiate(pool.aug.pipeline), fraction=0)


def test_train_with_flip_pool_end_to_end(tmp_path, tiny_overrides):
    cfg = compose_config(
        [
            *tiny_overrides,
            "aug=flip",
            "aug.fraction=0.5",
            "aug.num_workers=0",
            "trainer.max_epochs=1",
            "robustness.enabled=false",
        ],
        tmp_path,
    )
    metrics = train(cfg)
    assert metrics["aug"] == "flip" and 0.0 <= metrics["test"]["test/miou"] <= 1.0
    first = next(r for r in metrics["history"] if r["epoch"] == 1)
    assert first["train/samples"] == 8 + 4  # clean ∪ pool from the very first epoch
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_pool_indices_round_the_fraction_and_refuse_an_empty_pool():
    from advaug.callbacks.transform_pool import pool_indices, to_uint8

    picked = pool_indices(8, 0.7, seed=0, epoch=0)
    assert len(picked) == 6 and len(set(picked.tolist())) == 6  # round(5.6), distinct samples
    with pytest.raises(ConfigError, match=r"aug\.fraction=0\.01 selects no sample of a 8-sample"):
        pool_indices(8, 0.01, seed=0, epoch=0)
    with pytest.raises(ConfigError, match=r"aug\.num_workers=-1"):
        TransformPool(Pipeline({"flip": A.HorizontalFlip()}), num_workers=-1)
    # floats back to uint8 round to the nearest level (truncation would darken every float pixel)
    assert to_uint8(torch.tensor([0.5, 0.999, 1.0]).view(1, 3, 1, 1)).flatten().tolist() == [128, 255, 255]


def test_online_protocol_never_fills_a_pool(datamodule):
    callback = TransformPool(Pipeline({"flip": A.HorizontalFlip()}), protocol="online")
    trainer = SimpleNamespace(
        datamodule=datamodule, current_epoch=0, max_epochs=3, max_steps=-1, global_step=0, should_stop=False
    )
    callback.on_fit_start(trainer, None)
    callback.on_train_epoch_end(trainer, None)
    assert len(datamodule.pool) == 0 and callback.fills == 0


def test_sample_seed_depends_on_each_key_and_its_position():
    from advaug.augment import sample_seed

    seeds = [sample_seed(5, 1, 2), sample_seed(5, 2, 1), sample_seed(1, 5, 2), sample_seed(5, 1, 3)]
    assert len(set(seeds)) == 4  # (seed, epoch, k): no two orders or samples share a stream
    assert sample_seed(5, 1, 2) == sample_seed(5, 1, 2) and all(0 <= s < 2**32 for s in seeds)
    assert sample_seed(0, 0, -1) != sample_seed(0, 0, -2)  # the negative keys the pools use


def test_pipeline_refuses_empty_or_foreign_ops_and_skips_disabled_ones():
    with pytest.raises(ConfigError, match="aug.ops is empty"):
        Pipeline({})
    with pytest.raises(ConfigError, match="aug.ops is empty"):
        Pipeline({"flip": None})  # every step disabled (~aug.ops.x or x: null)
    with pytest.raises(ConfigError, match=r"aug\.ops: 'flip' is not an albumentations transform"):
        Pipeline({"flip": "flip"})
    pipeline = Pipeline({"flip": A.HorizontalFlip(p=1.0), "jitter": None, "vflip": A.VerticalFlip(p=1.0)})
    image = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    out = pipeline(image=image, mask=np.array([[0, 1], [1, 1]], np.uint8))  # both flips, in order
    assert np.array_equal(out["image"], image[::-1, ::-1]) and out["mask"].tolist() == [[1, 1], [1, 0]]
    assert repr(Pipeline({"flip": A.HorizontalFlip()})) == "Pipeline(flip)"  # the config's names
    assert repr(pipeline) == "Pipeline(flip, vflip)"  # not the disabled jitter
    assert repr(Pipeline([A.HorizontalFlip(), A.VerticalFlip()])) == "Pipeline(HorizontalFlip, VerticalFlip)"


def test_pipeline_p_is_the_chance_of_applying_the_whole_compose():
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    mask = blocky_mask(8)
    never = Pipeline({"flip": A.HorizontalFlip(p=1.0)}, p=0.0)
    for _ in range(5):
        out = never(image=image, mask=mask)
        assert np.array_equal(out["image"], image) and np.array_equal(out["mask"], mask)


def test_masks_are_resampled_nearest_so_no_class_id_is_invented():
    # a 0/2 mask rotated by 45 degrees: linear interpolation would put 1s on every edge
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 2
    pipeline = Pipeline({"rotate": A.Rotate(limit=(45, 45), p=1.0)})
    out = pipeline(image=np.zeros((32, 32, 3), np.uint8), mask=mask)
    assert set(np.unique(out["mask"]).tolist()) == {0, 2}


def test_transformed_pairs_take_the_indexed_sources_and_seed_each_sample():
    from advaug.augment import TransformedPairs, transformed_copies

    images = torch.stack([torch.full((3, 8, 8), v, dtype=torch.uint8) for v in (10, 20, 30)])
    masks = torch.stack([torch.full((8, 8), v, dtype=torch.uint8) for v in (0, 1, 0)])
    keep = Pipeline({"jitter": A.ColorJitter(brightness=0, contrast=0, saturation=0, hue=0, p=1.0)})
    out_images, out_masks = transformed_copies(TransformedPairs(images, masks, keep, [2, 0, 1, 1], seed=0, epoch=0))
    assert out_images[:, 0, 0, 0].tolist() == [30, 10, 20, 20] and out_masks[:, 0, 0].tolist() == [0, 0, 1, 1]
    assert out_masks.dtype == torch.long and out_images.dtype == torch.uint8
    # the same source twice (aug.fraction > 1) gets two draws, one per sample position
    noisy = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 3, 16, 16), dtype=np.uint8))
    flips = Pipeline({"rotate": A.RandomRotate90(p=1.0)})
    copies = TransformedPairs(
        noisy, torch.zeros(1, 16, 16, dtype=torch.uint8), flips, [0] * 6, seed=1, epoch=0
    )
    draws = {copies[k][0].numpy().tobytes() for k in range(6)}
    assert len(draws) > 1
    assert torch.equal(copies[3][0], copies[3][0])  # a sample is its own seed's draw, every time
    other = TransformedPairs(
        noisy, torch.zeros(1, 16, 16, dtype=torch.uint8), flips, [0] * 6, seed=2, epoch=0
    )
    assert any(not torch.equal(copies[k][0], other[k][0]) for k in range(6))
    # and each epoch draws afresh: with aug.fraction=1 the same samples are picked every epoch
    later = TransformedPairs(
        noisy, torch.zeros(1, 16, 16, dtype=torch.uint8), flips, [0] * 6, seed=1, epoch=1
    )
    assert any(not torch.equal(copies[k][0], later[k][0]) for k in range(6))


def test_a_pipeline_that_changes_the_sample_size_is_refused():
    from advaug.augment import TransformedPairs

    crop = Pipeline({"crop": A.CenterCrop(4, 4)})
    image, mask = torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.zeros(1, 8, 8, dtype=torch.uint8)
    pairs = TransformedPairs(image, mask, crop, [0], seed=0, epoch=0)
    with pytest.raises(ConfigError, match=r"changed the sample size from \(8, 8\) to \(4, 4\)"):
        pairs[0]
