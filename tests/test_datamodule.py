import pytest
import torch
from conftest import slot
from test_folder import write_pair

from advaug.data import SegmentationDataModule
from advaug.errors import DatasetError


def make(root, **kw):
    kw.setdefault("image_size", 32)
    kw.setdefault("batch_size", 4)
    dm = SegmentationDataModule(root=str(root), **kw)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_splits_shapes_and_dtypes(phantom_root):
    dm = make(phantom_root, split={"train": 0.5, "val": 0.25, "test": 0.25})
    assert {k: len(v) for k, v in dm.ids.items()} == {"train": 8, "val": 4, "test": 4}
    assert set(dm.ids["train"]).isdisjoint(dm.ids["test"])
    images, masks = dm.data["train"]
    assert images.dtype == torch.uint8 and images.shape == (8, 3, 32, 32)  # decoded once, cached
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (4, 3, 32, 32)
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["mask"].dtype == torch.long and batch["mask"].shape == (4, 32, 32)
    assert set(batch["mask"].unique().tolist()) <= {0, 1}
    assert len(dm.val_dataloader().dataset) == 4 and len(dm.test_dataloader().dataset) == 4


def test_split_is_independent_of_training_seed(phantom_root):
    torch.manual_seed(0)
    a = make(phantom_root).ids
    torch.manual_seed(99)
    assert make(phantom_root).ids == a


def test_extra_pool_joins_train_set(phantom_root):
    dm = make(phantom_root, split={"train": 0.5, "val": 0.25, "test": 0.25})
    images, masks = dm.train_images()
    dm.pool.put("extra", images[:3] * 0 + 0.25, masks[:3])
    assert len(dm.pool) == 3 and len(dm.train_dataloader().dataset) == 11
    seen = torch.cat([b["image"] for b in dm.train_dataloader()])
    assert int((seen == 0.25).flatten(1).all(1).sum()) == 3  # pool samples served as given (float)
    state = dm.state_dict()
    dm2 = make(phantom_root, split={"train": 0.5, "val": 0.25, "test": 0.25})
    dm2.load_state_dict(state)
    assert len(dm2.pool) == 3
    dm.pool.clear("extra")
    assert len(dm.pool) == 0 and len(dm.train_dataloader().dataset) == 8
    with pytest.raises(ValueError, match="do not match"):
        dm.pool.put("extra", images[:3], masks[:2])


def test_transform_applied_jointly(phantom_root):
    def flip(image, mask):
        return {"image": image[:, ::-1], "mask": mask[:, ::-1]}

    plain = make(phantom_root)
    flipped = make(phantom_root, transform=flip)
    a, b = plain.train_dataset()[0], flipped.train_dataset()[0]
    assert torch.equal(a["image"].flip(-1), b["image"]) and torch.equal(a["mask"].flip(-1), b["mask"])


def test_empty_split_and_bad_batch_size(phantom_root):
    with pytest.raises(DatasetError, match="'val' split is empty"):
        make(phantom_root, split={"train": 1.0, "val": 0.0, "test": 0.5})
    with pytest.raises(DatasetError, match="batch_size=0"):
        SegmentationDataModule(root=str(phantom_root), batch_size=0)


def test_missing_prepared_dataset_says_how_to_prepare(tmp_path):
    dm = SegmentationDataModule(root=str(tmp_path / "nope"), prepare_hint="Run: python src/prepare_data.py x")
    with pytest.raises(DatasetError, match="prepare_data.py"):
        dm.prepare_data()


def test_real_isbi_images(tmp_path):
    from conftest import SHARED

    root = SHARED / "isbi2012-em"
    if not root.is_dir():
        pytest.skip("../shared/datasets/isbi2012-em not present")
    dm = make(root, split={"train": 20, "val": 5, "test": 5}, split_seed=1234, image_size=64)
    images, masks = dm.data["train"]
    assert images.shape == (20, 3, 64, 64)
    fg = masks.float().mean().item()
    assert 0.6 < fg < 0.9  # cell interior (255) covers most pixels, membranes are class 0


@pytest.mark.parametrize("on_device", [False, True])
def test_uint8_pool_images_are_held_as_uint8_and_served_as_the_exact_floats(phantom_root, on_device):
    dm = make(phantom_root, on_device=on_device)
    float_images, masks = dm.train_images()
    uint8_images = float_images.mul(255).round().to(torch.uint8)  # as transformed copies come
    dm.pool.put("extra", uint8_images, masks)
    assert dm.state_dict()["pool"]["slots"]["extra"]["images"].dtype == torch.uint8  # a quarter of the bytes
    assert torch.equal(slot(dm, "extra")["images"], float_images)
    served = {}
    for batch in dm.train_dataloader():
        for image, index in zip(batch["image"], batch["index"].tolist(), strict=True):
            served[index] = image
    n = len(float_images)
    assert all(torch.equal(served[-1 - i], float_images[i]) for i in range(n))  # pool rows
    assert all(torch.equal(served[i], float_images[i]) for i in range(n))  # clean rows
    dm.pool.put("extra", float_images + 0.001, masks)  # float pools (adversarial, GAN) stay float
    assert dm.state_dict()["pool"]["slots"]["extra"]["images"].dtype == torch.float32


@pytest.mark.parametrize("on_device,expected", [(False, "cpu"), (True, "meta")])
def test_an_on_device_pool_is_held_on_the_training_device(phantom_root, monkeypatch, on_device, expected):
    # a pool made on the GPU (adversarial copies) stays there with on_device instead of a trip
    # to the host and back each epoch; the meta device stands in for a GPU on this machine
    dm = make(phantom_root, on_device=on_device)
    monkeypatch.setattr(dm, "_device", lambda: torch.device("meta"))
    images = torch.rand(2, 3, 4, 4)
    masks = torch.zeros(2, 4, 4, dtype=torch.uint8)  # uint8: the pool checks no class ids
    dm.pool.put("extra", images, masks)
    assert dm.pool.raw("extra")[0].device.type == expected and dm.pool.raw("extra")[1].device.type == expected
    assert len(dm.pool) == 2


def test_pin_memory_follows_the_training_device_unless_set(phantom_root):
    from types import SimpleNamespace

    def on(device: str) -> SimpleNamespace:
        return SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device(device)))

    auto = SegmentationDataModule(root=str(phantom_root))
    assert auto._pin() is False  # no trainer yet
    auto.trainer = on("cpu")
    assert auto._pin() is False
    auto.trainer = on("cuda")
    assert auto._pin() is True  # asynchronous host-to-GPU batch copies
    off = SegmentationDataModule(root=str(phantom_root), pin_memory=False)
    off.trainer = on("cuda")
    assert off._pin() is False


@pytest.mark.parametrize(
    "pin_memory,num_workers,pinned", [(True, 0, True), (True, 2, False), (False, 0, False)]
)
def test_a_pool_is_copied_to_pinned_memory_only_for_an_in_process_loader(
    phantom_root, monkeypatch, pin_memory, num_workers, pinned
):
    # pinned: free mode's epoch-end copy of the pool off the GPU went from 0.095 s to 0.016 s on
    # an H200; forked loader workers may not see page-locked memory, so they get pageable memory
    import advaug.data.pool as pool_module

    calls = []

    def to_host(tensor, pin):
        calls.append(pin)
        return tensor.cpu()

    monkeypatch.setattr(pool_module, "to_host", to_host)
    dm = make(phantom_root, pin_memory=pin_memory, num_workers=num_workers)
    images, masks = dm.train_images()
    dm.pool.put("extra", images.double(), masks)  # converted to float before the copy, on its device
    assert calls == [pinned, pinned]  # images and masks
    assert dm.pool.raw("extra")[0].dtype == torch.float32 and torch.equal(dm.pool.raw("extra")[0], images)


def test_to_host_returns_a_host_tensor_as_it_is():
    from advaug.data.pool import to_host

    t = torch.rand(2, 3, 4, 4)
    assert to_host(t, pin=True) is t and to_host(t, pin=False) is t


def test_device_batches_cover_every_sample_once_per_pass_in_a_new_order():
    from advaug.data.device_batches import DeviceBatches

    images = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1).expand(10, 3, 2, 2)
    masks = torch.arange(10, dtype=torch.uint8).view(10, 1, 1).expand(10, 2, 2)
    index = torch.cat([torch.arange(6), -1 - torch.arange(4)])
    batches = DeviceBatches(images, masks, index, torch.zeros(len(index), dtype=torch.long), batch_size=4, shuffle=True)
    torch.manual_seed(0)
    passes = [list(batches), list(batches)]
    assert len(batches) == 3 and [len(b["image"]) for b in passes[0]] == [4, 4, 2]
    orders = [torch.cat([b["image"][:, 0, 0, 0] for b in p]).long().tolist() for p in passes]
    assert sorted(orders[0]) == list(range(10)) and sorted(orders[1]) == list(range(10))
    assert orders[0] != orders[1]  # reshuffled every pass
    for b in passes[0]:  # rows stay aligned: image, mask and id of the same sample
        assert b["mask"].dtype == torch.long
        assert torch.equal(b["mask"][:, 0, 0], b["image"][:, 0, 0, 0].long())
        assert torch.equal(b["index"], index[b["image"][:, 0, 0, 0].long()])
    ordered = list(DeviceBatches(images, masks, index, torch.zeros(len(index), dtype=torch.long), batch_size=4, shuffle=False))
    assert torch.cat([b["index"] for b in ordered]).tolist() == index.tolist()


def test_on_device_loaders_serve_the_same_samples_as_the_default_ones(phantom_root):
    plain = SegmentationDataModule(root=str(phantom_root), batch_size=4)
    fast = SegmentationDataModule(root=str(phantom_root), batch_size=4, on_device=True)
    for dm in (plain, fast):
        dm.setup("fit")
        dm.pool.put("extra", *dm.train_images(torch.arange(3)))
    n = fast.num_train()
    assert len(fast.train_dataloader()) == len(plain.train_dataloader()) == -(-(n + 3) // 4)  # clean + 3 pool
    for split in ("val", "test"):  # in order, batch for batch
        for a, b in zip(
            getattr(plain, f"{split}_dataloader")(), getattr(fast, f"{split}_dataloader")(), strict=True
        ):
            assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
            assert torch.equal(a["index"], b["index"])
    seen = torch.cat([b["index"] for b in fast.train_dataloader()]).sort().values.tolist()
    assert seen == [-3, -2, -1, *range(n)]  # every clean and pool sample once
    pool = [b for b in fast.train_dataloader() if (b["index"] < 0).any()]
    rows = torch.cat([b["image"][b["index"] < 0] for b in pool])
    assert torch.equal(rows.sort(0).values, slot(fast, "extra")["images"].sort(0).values)


def test_on_device_refuses_a_transform():
    from advaug.errors import ConfigError

    dm = SegmentationDataModule(root="unused", on_device=True, transform=lambda **kw: kw)
    dm.data = {"train": (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, 4, 4, dtype=torch.uint8))}
    with pytest.raises(ConfigError, match="on-the-fly transform"):
        dm.train_dataloader()


def test_failed_setup_leaves_no_half_loaded_splits(tmp_path):
    for i in range(6):
        write_pair(tmp_path, f"p{i}")
    split = {"train": 2, "val": 2, "test": 2}
    test_id = make(tmp_path, split=split).ids["test"][0]
    bad = tmp_path / "images" / f"{test_id}.png"
    good = bad.read_bytes()
    bad.write_bytes(b"not a png")
    dm = SegmentationDataModule(root=str(tmp_path), image_size=16, split=split)
    with pytest.raises(DatasetError, match=rf"{test_id}\.png: cannot decode"):
        dm.setup("fit")
    assert dm.data == {} and dm.ids == {}  # train/val were loaded, but not kept
    bad.write_bytes(good)  # the user fixes the file and retries: every split is loaded
    dm.setup("fit")
    assert set(dm.data) == {"train", "val", "test"} and len(dm.test_dataloader().dataset) == 2


@pytest.mark.parametrize("on_device", [False, True])
def test_a_last_training_batch_of_one_is_dropped(phantom_root, on_device):
    # BatchNorm cannot train on one sample ("Expected more than 1 value per channel")
    dm = make(phantom_root, split={"train": 0.5, "val": 0.25, "test": 0.25}, on_device=on_device)
    assert dm.num_train() == 8
    dm.pool.put("extra", *dm.train_images(torch.arange(1)))  # 8 + 1 samples at batch size 4: 4, 4, 1
    sizes = [len(b["image"]) for b in dm.train_dataloader()]
    assert sizes == [4, 4] and len(dm.train_dataloader()) == 2
    dm.pool.put("extra", *dm.train_images(torch.arange(2)))  # 8 + 2: the last batch of 2 is kept
    assert [len(b["image"]) for b in dm.train_dataloader()] == [4, 4, 2]
    assert [len(b["image"]) for b in dm.val_dataloader()] == [4]  # evaluation never drops


def test_device_batches_drop_last():
    from advaug.data.device_batches import DeviceBatches

    images, masks, index = torch.zeros(9, 3, 2, 2), torch.zeros(9, 2, 2, dtype=torch.uint8), torch.arange(9)
    batches = DeviceBatches(images, masks, index, torch.zeros(len(index), dtype=torch.long), batch_size=4, shuffle=True, drop_last=True)
    assert len(batches) == 2 and [len(b["index"]) for b in batches] == [4, 4]


def test_datamodule_arguments_checked_and_eval_batch_size_used(phantom_root, tmp_path):
    with pytest.raises(DatasetError, match=r"dataset\.num_classes=1: need background"):
        SegmentationDataModule(root=str(phantom_root), num_classes=1)
    dm = make(phantom_root, split={"train": 0.5, "val": 0.25, "test": 0.25}, eval_batch_size=3)
    assert dm.val_dataloader().batch_size == 3 and dm.train_dataloader().batch_size == 4
    images, masks = dm.train_images(torch.arange(2))
    assert images.dtype == torch.float32 and masks.dtype == torch.long and masks.shape == (2, 32, 32)
    # a missing folder without a prepare hint is left to setup(), which names dataset.root
    missing = SegmentationDataModule(root=str(tmp_path / "nope"))
    missing.prepare_data()
    with pytest.raises(DatasetError, match=r"nope does not exist\. Set dataset\.root="):
        missing.setup("fit")


def test_setup_decodes_the_folder_once(phantom_root, monkeypatch):
    import advaug.data.split_loading as split_loading

    dm = make(phantom_root)
    monkeypatch.setattr(split_loading, "find_pairs", lambda root: pytest.fail("setup read the folder again"))
    dm.setup("test")
    assert len(dm.data["test"][0]) == len(dm.ids["test"])


def test_pool_put_refuses_masks_that_do_not_match(phantom_root):
    dm = make(phantom_root)
    images, masks = dm.train_images(torch.arange(2))
    with pytest.raises(ValueError, match="do not match"):
        dm.pool.put("extra", images, None)
    with pytest.raises(ValueError, match="do not match"):  # 5-d images whose dims 0, 2.. equal the masks'
        dm.pool.put("extra", images[:, None], images[:, 0:1].expand(2, 3, 32, 32) > 0)


def test_a_pool_left_out_of_the_checkpoint_blocks_training_until_remade(phantom_root):
    from advaug.errors import ConfigError

    dm = make(phantom_root)
    dm.load_state_dict({"pool": {"slots": {"extra": {"left_out": True}}}})
    assert dm.pool.left_out_names == ["extra"] and len(dm.pool) == 0
    with pytest.raises(ConfigError, match="left the pool slot.s. extra out"):
        dm.train_dataloader()
    dm.pool.put("extra", *dm.train_images(torch.arange(2)), rebuildable=True)  # the producer remakes it
    assert not dm.pool.left_out_names and len(dm.pool) == 2
    assert len(dm.train_dataloader().dataset) == dm.num_train() + 2
    assert dm.state_dict() == {"pool": {"slots": {"extra": {"left_out": True}}}}


def test_single_last_batch_counted_per_rank_and_a_lone_sample_kept(phantom_root):
    from types import SimpleNamespace

    dm = make(phantom_root)  # batch size 4
    assert dm._drop_single_last(5) and not dm._drop_single_last(1)  # one sample is all there is: keep it
    dm.trainer = SimpleNamespace(world_size=2)
    # 9 samples on 2 ranks: Lightning pads to 5 per rank, 4 + 1 each
    assert dm._drop_single_last(9) and not dm._drop_single_last(8)


def test_ddp_eval_loaders_shard_without_repeats_in_order(phantom_root):
    from types import SimpleNamespace

    from advaug.errors import ConfigError

    cpu = SimpleNamespace(root_device=torch.device("cpu"))
    dm = make(phantom_root, split={"train": 0.5, "val": 0.25, "test": 0.25})  # val: 4 samples
    dm.trainer = SimpleNamespace(world_size=2, global_rank=1, strategy=cpu)
    assert list(dm.val_dataloader().sampler) == [1, 3]
    dm.trainer = SimpleNamespace(world_size=4, global_rank=0, strategy=cpu)
    assert list(dm.val_dataloader().sampler) == [0]  # as many samples as ranks is enough
    dm.trainer = SimpleNamespace(world_size=5, global_rank=0, strategy=cpu)
    with pytest.raises(ConfigError, match="the val split has 4 sample.* has 5 processes"):
        dm.val_dataloader()
    on_device = make(phantom_root, on_device=True)
    on_device.trainer = SimpleNamespace(world_size=2, global_rank=0, strategy=cpu)
    with pytest.raises(ConfigError, match="under DDP every rank needs"):
        on_device.train_dataloader()


def test_on_device_split_follows_a_new_device(phantom_root):
    from types import SimpleNamespace

    dm = make(phantom_root, on_device=True)
    assert dm._device_split("val")[0].device.type == "cpu"
    dm.trainer = SimpleNamespace(world_size=1, strategy=SimpleNamespace(root_device=torch.device("meta")))
    images, masks = dm._device_split("val")
    assert images.device.type == "meta" and masks.device.type == "meta"


def test_dataset_and_batch_arguments_checked():
    from advaug.data.datasets import CleanPairs
    from advaug.data.device_batches import DeviceBatches

    images = torch.zeros(3, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(TypeError, match="uint8"):
        CleanPairs(images, torch.zeros(3, 4, 4, dtype=torch.long))
    masks = torch.zeros(3, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match="3 images, 3 masks, 2 ids"):
        DeviceBatches(images.float(), masks, torch.arange(2), torch.zeros(len(torch.arange(2)), dtype=torch.long), batch_size=2, shuffle=False)
    with pytest.raises(ValueError, match="batch_size=0"):
        DeviceBatches(images.float(), masks, torch.arange(3), torch.zeros(len(torch.arange(3)), dtype=torch.long), batch_size=0, shuffle=False)
