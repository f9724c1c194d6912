"""The on-disk format: pairing, decoding, mask conversion, splits, and errors naming the file."""

import json

import numpy as np
import pytest
from PIL import Image

from advaug.data.folder import (
    find_pairs,
    load_pairs,
    mask_to_ids,
    read_mask_ids,
)
from advaug.data.splits import read_splits, seeded_split
from advaug.errors import DatasetError


def write_pair(root, name, image=None, mask=None, ext="png", mask_ext="png"):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    image = np.full((20, 24), 100, np.uint8) if image is None else image
    if mask is None:
        mask = np.zeros(image.shape[:2], np.uint8)
        mask[5:10, 5:12] = 255
    Image.fromarray(image).save(root / "images" / f"{name}.{ext}")
    Image.fromarray(mask).save(root / "masks" / f"{name}.{mask_ext}")


def test_pairs_decode_to_uint8_three_channels(tmp_path):
    write_pair(tmp_path, "a")
    write_pair(tmp_path, "b", image=np.full((20, 24, 3), 7, np.uint8))  # RGB beside grayscale
    pairs = find_pairs(tmp_path)
    assert [p.id for p in pairs] == ["a", "b"]
    images, masks = load_pairs(pairs, size=16, num_classes=2)
    assert images.shape == (2, 3, 16, 16) and images.dtype.is_floating_point is False
    assert masks.shape == (2, 16, 16)
    assert set(masks.unique().tolist()) == {0, 1}
    assert images[0, 0, 0, 0] == 100 and images[0, 2, 0, 0] == 100  # grey replicated
    assert images[1, 1, 3, 3] == 7


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda r: None, "does not exist"),
        (lambda r: (r / "images").mkdir(parents=True), "masks is missing"),
        (lambda r: ((r / "images").mkdir(parents=True), (r / "masks").mkdir()), "holds no images"),
    ],
)
def test_missing_folders(tmp_path, make, message):
    root = tmp_path / "ds"
    make(root)
    with pytest.raises(DatasetError, match=message):
        find_pairs(root)


def test_image_without_mask_names_file(tmp_path):
    write_pair(tmp_path, "a")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "images" / "lonely.png")
    with pytest.raises(DatasetError, match=r"lonely\.png has no mask"):
        find_pairs(tmp_path)


def test_mask_without_image_names_file(tmp_path):
    write_pair(tmp_path, "a")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "masks" / "orphan.png")
    with pytest.raises(DatasetError, match=r"orphan\.png has no image"):
        find_pairs(tmp_path)


def test_non_image_file_is_named(tmp_path):
    write_pair(tmp_path, "a")
    (tmp_path / "images" / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match=r"notes\.txt: not an image"):
        find_pairs(tmp_path)


def test_corrupt_png_is_named(tmp_path):
    write_pair(tmp_path, "a")
    data = (tmp_path / "images" / "a.png").read_bytes()
    (tmp_path / "images" / "a.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"a\.png: cannot decode"):
        load_pairs(find_pairs(tmp_path), 16, 2)


def test_size_mismatch_is_named(tmp_path):
    write_pair(tmp_path, "a", mask=np.zeros((10, 10), np.uint8))
    with pytest.raises(DatasetError, match=r"a\.png: mask is 10x10 but its image a\.png is 24x20"):
        load_pairs(find_pairs(tmp_path), 16, 2)


def test_mask_values_not_ids_nor_binary(tmp_path):
    mask = np.zeros((20, 24), np.uint8)
    mask[0, 0] = 128
    write_pair(tmp_path, "a", mask=mask)
    with pytest.raises(DatasetError, match=r"mask values \{0, 128\}.*mask_threshold=128"):
        load_pairs(find_pairs(tmp_path), 16, 2)


def test_threshold_handles_lossy_masks():
    raw = np.array([[0, 3, 127], [128, 250, 255]], np.uint8)
    assert mask_to_ids(raw, None, 2, 128).tolist() == [[0, 0, 0], [1, 1, 1]]


def test_class_id_masks_kept_and_out_of_range_refused(tmp_path):
    raw = np.array([[0, 1], [2, 2]], np.uint8)
    assert mask_to_ids(raw, None, 3, None).tolist() == raw.tolist()
    with pytest.raises(DatasetError, match="dataset.num_classes"):
        mask_to_ids(raw + 1, tmp_path / "m.png", 3, None)


def test_seeded_split_is_deterministic_disjoint_and_complete():
    ids = [f"{i:03d}" for i in range(50)]
    a = seeded_split(ids, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=3)
    b = seeded_split(ids, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=3)
    c = seeded_split(ids, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=4)
    assert a == b and a != c
    assert [len(a[s]) for s in ("train", "val", "test")] == [34, 8, 8]  # 7.5 rounds to 8
    assert sorted(a["train"] + a["val"] + a["test"]) == ids
    # counts work as ratios too (20/5/5 of 30)
    d = seeded_split(ids[:30], {"train": 20, "val": 5, "test": 5}, seed=0)
    assert [len(d[s]) for s in ("train", "val", "test")] == [20, 5, 5]


def test_splits_json_checked(tmp_path):
    path = tmp_path / "splits.json"
    path.write_text(json.dumps({"train": ["a"], "val": ["b"], "test": ["c"]}))
    assert read_splits(path, ["a", "b", "c"])["val"] == ["b"]
    path.write_text(json.dumps({"train": ["a"], "val": ["a"], "test": ["c"]}))
    with pytest.raises(DatasetError, match="both 'train' and 'val'"):
        read_splits(path, ["a", "b", "c"])
    path.write_text(json.dumps({"train": ["zz"], "val": ["b"], "test": ["c"]}))
    with pytest.raises(DatasetError, match="'zz'"):
        read_splits(path, ["a", "b", "c"])
    path.write_text("{broken")
    with pytest.raises(DatasetError, match="cannot read splits"):
        read_splits(path, ["a"])


@pytest.mark.parametrize(
    "raw, message",
    [
        (np.array([[0, 1], [-1, 1]], np.int32), r"m\.tif: mask values \{-1, 0, 1\}.*Negative values"),
        (np.array([[0, 0.9], [0.9, 0]], np.float32), r"m\.tif: mask values \{0, 0\.9\}.*Fractional"),
    ],
)
def test_negative_and_fractional_mask_values_refused(tmp_path, raw, message):
    # an ignore label -1 would wrap to 255, a soft 0.9 would truncate to background
    with pytest.raises(DatasetError, match=message):
        mask_to_ids(raw, tmp_path / "m.tif", 2, None)
    assert mask_to_ids(np.array([[0.0, 1.0]], np.float32), tmp_path / "m.tif", 2, None).tolist() == [[0, 1]]


def test_int32_tiff_with_ignore_label_is_named(tmp_path):
    write_pair(tmp_path, "a")
    mask = np.zeros((20, 24), np.int32)
    mask[5:10, 5:10], mask[0, 0] = 1, -1
    (tmp_path / "masks" / "a.png").unlink()
    Image.fromarray(mask, mode="I").save(tmp_path / "masks" / "a.tif")
    with pytest.raises(DatasetError, match=r"a\.tif: mask values \{-1, 0, 1\}"):
        load_pairs(find_pairs(tmp_path), 16, 2)


def test_colour_mask_refused_grey_rgb_and_alpha_accepted(tmp_path):
    green = np.zeros((20, 24, 3), np.uint8)
    green[5:10, 5:12, 1] = 255
    write_pair(tmp_path, "a", mask=green)
    with pytest.raises(DatasetError, match=r"a\.png: mask has colours.*single-channel"):
        load_pairs(find_pairs(tmp_path), 16, 2)
    grey = np.zeros((20, 24, 4), np.uint8)
    grey[5:10, 5:12, :3] = 255
    grey[..., 3] = 255  # opaque alpha differs from the colour channels: ignored
    write_pair(tmp_path, "a", mask=grey)
    (pair,) = find_pairs(tmp_path)
    assert int(read_mask_ids(pair.mask, pair.image, 2, None).sum()) == 5 * 7


def test_threshold_refuses_class_id_masks(tmp_path):
    ids = np.zeros((20, 24), np.uint8)
    ids[5:10, 5:12] = 1
    write_pair(tmp_path, "a", mask=ids)
    with pytest.raises(DatasetError, match=r"a\.png: mask holds class ids 0/1.*dataset\.mask_threshold=null"):
        load_pairs(find_pairs(tmp_path), 16, 2, threshold=128)
    (pair,) = find_pairs(tmp_path)
    assert int(read_mask_ids(pair.mask, pair.image, 2, None).sum()) == 5 * 7
    assert int(read_mask_ids(pair.mask, pair.image, 2, 1).sum()) == 5 * 7  # >= 1 keeps 0/1 masks
    empty = np.zeros((20, 24), np.uint8)  # no foreground: nothing to lose, no error
    assert mask_to_ids(empty, tmp_path / "e.png", 2, 128).sum() == 0


def test_oversized_image_is_named(tmp_path, monkeypatch):
    write_pair(tmp_path, "a")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 20x24 = 480 > 2 * 100: PIL refuses it
    with pytest.raises(DatasetError, match=r"a\.png: image too large.*Downscale"):
        load_pairs(find_pairs(tmp_path), 16, 2)


@pytest.mark.parametrize(
    "text, message",
    [
        ('["a", "b"]', r"the top level is not an object \(found list\)"),
        ("5", r"the top level is not an object \(found int\)"),
        ('{"train": "a", "val": ["b"], "test": ["c"]}', "'train' is not a list of id strings"),
        ('{"train": ["a"], "val": [1], "test": ["c"]}', "'val' is not a list of id strings"),
    ],
)
def test_splits_json_format_checked(tmp_path, text, message):
    path = tmp_path / "splits.json"
    path.write_text(text)
    with pytest.raises(DatasetError, match=rf"splits\.json: {message}.*\"train\": \[ids\]"):
        read_splits(path, ["a", "b", "c"])


def test_seeded_split_needs_train_and_fills_small_splits():
    ids = [f"{i}" for i in range(4)]
    with pytest.raises(DatasetError, match="positive train ratio"):
        seeded_split(ids, {"train": 0, "val": 1, "test": 1}, seed=0)
    with pytest.raises(DatasetError, match="positive train ratio"):
        seeded_split(ids, {"train": 1, "val": -1, "test": 1}, seed=0)
    # 0.1 of 4 rounds to no train id: one is taken from the largest split
    split = seeded_split(ids, {"train": 0.1, "val": 0.45, "test": 0.45}, seed=0)
    assert sorted(len(v) for v in split.values()) == [1, 1, 2] and split["train"]
    # a zero ratio stays empty (resolve_splits names it); too few ids are not spread thin
    assert seeded_split(ids, {"train": 1, "val": 0, "test": 1}, seed=0)["val"] == []
    few = seeded_split(ids[:2], {"train": 0.7, "val": 0.15, "test": 0.15}, seed=0)
    assert [len(few[s]) for s in ("train", "val", "test")] == [2, 0, 0]
    for n in range(3, 12):
        for ratios in ({"train": 0.05, "val": 0.5, "test": 0.5}, {"train": 1, "val": 10, "test": 10}):
            split = seeded_split([str(i) for i in range(n)], ratios, seed=n)
            every = split["train"] + split["val"] + split["test"]
            assert sorted(every) == sorted(str(i) for i in range(n))  # disjoint and complete
            assert all(split.values())


def test_class_id_masks_under_binary_config_name_num_classes(tmp_path):
    # a 4-class mask (ids 0..3) under the default num_classes=2: the fix is num_classes=4, not the
    # JPEG threshold (which would turn every class into background)
    ids = np.zeros((20, 24), np.uint8)
    ids[2:6, 2:6], ids[8:12, 8:12], ids[14:18, 14:18] = 1, 2, 3
    with pytest.raises(
        DatasetError, match=r"m\.png: mask values \{0, 1, 2, 3\}.*dataset\.num_classes=4"
    ) as err:
        mask_to_ids(ids, tmp_path / "m.png", 2, None)
    assert "mask_threshold=128" not in str(err.value).split("dataset.num_classes=4")[0]
    with pytest.raises(DatasetError, match=r"dataset\.num_classes=4"):
        mask_to_ids(ids, tmp_path / "m.png", 3, None)
    # following the old advice (mask_threshold=128) must not silently erase the classes
    with pytest.raises(
        DatasetError, match=r"m\.png: mask holds class ids 0\.\.3.*dataset\.mask_threshold=null"
    ):
        mask_to_ids(ids, tmp_path / "m.png", 2, 128)
    assert mask_to_ids(ids, tmp_path / "m.png", 4, None).tolist() == ids.tolist()
    # a dim binary mask (0/100) is no class-id mask: the threshold binarises it (to empty, which the
    # empty-mask checks report) instead of asking for dataset.num_classes=101
    dim = (ids > 0).astype(np.uint8) * 100
    assert mask_to_ids(dim, tmp_path / "m.png", 2, 128).max() == 0
    assert mask_to_ids(dim, tmp_path / "m.png", 2, 50).tolist() == (ids > 0).astype(np.uint8).tolist()


def test_sixteen_bit_images_fixed_intensity_range(tmp_path):
    # two CT-like 16-bit slices: soft tissue 1000 in both, one with bone at 4000. Per image (the
    # default) each is stretched from its own min..max, so the same tissue gets two grey values;
    # dataset.intensity_range=[0, 4095] maps both alike and clips what lies outside
    from advaug.data.folder import load_image

    soft = np.full((24, 24), 1000, np.uint16)
    soft[0, 0] = 0
    bone = soft.copy()
    bone[10:15, 10:15] = 4000
    bone[0, 1] = 5000  # above the window: clipped to white
    Image.fromarray(soft).save(tmp_path / "soft.png")
    Image.fromarray(bone).save(tmp_path / "bone.png")
    assert Image.open(tmp_path / "soft.png").mode.startswith("I")
    per_image = [load_image(tmp_path / f"{n}.png", 24)[0, 5, 5] for n in ("soft", "bone")]
    assert per_image[0] != per_image[1]  # the documented default: each image its own range
    fixed = [load_image(tmp_path / f"{n}.png", 24, intensity_range=(0, 4095)) for n in ("soft", "bone")]
    expected = round(1000 / 4095 * 255)
    assert fixed[0][0, 5, 5] == fixed[1][0, 5, 5] == expected
    assert fixed[1][0, 0, 1] == 255 and fixed[1][0, 12, 12] == round(4000 / 4095 * 255)
    write_pair(tmp_path / "ds", "bone", image=bone)
    images, _ = load_pairs(find_pairs(tmp_path / "ds"), 24, 2, intensity_range=(0, 4095))
    assert int(images[0, 0, 12, 12]) == round(4000 / 4095 * 255)
    with pytest.raises(
        DatasetError, match=r"dataset\.intensity_range=\[5, 5\]: .*lower bound below the upper"
    ):
        load_image(tmp_path / "soft.png", 8, intensity_range=(5, 5))


def test_index_skips_hidden_files_and_folders_reads_upper_case_and_refuses_twins(tmp_path):
    write_pair(tmp_path, "a")
    (tmp_path / "images" / ".DS_Store").write_bytes(b"\0")  # hidden: skipped, not "not an image"
    (tmp_path / "masks" / "thumbs").mkdir()  # a folder: skipped
    Image.fromarray(np.zeros((20, 24), np.uint8)).save(tmp_path / "images" / "B.PNG")
    Image.fromarray(np.zeros((20, 24), np.uint8)).save(tmp_path / "masks" / "B.png")
    assert [(p.id, p.image.name) for p in find_pairs(tmp_path)] == [("B", "B.PNG"), ("a", "a.png")]
    Image.fromarray(np.zeros((20, 24), np.uint8)).save(tmp_path / "images" / "a.jpg")
    with pytest.raises(DatasetError, match=r"a\.png: two files share the id 'a' \(a\.jpg\)"):
        find_pairs(tmp_path)


def test_pairs_sorted_by_id_not_file_name(tmp_path):
    # file names sort "a-1.png" < "a.png" ('-' < '.'), the ids "a" < "a-1"
    write_pair(tmp_path, "a-1")
    write_pair(tmp_path, "a")
    assert [p.id for p in find_pairs(tmp_path)] == ["a", "a-1"]


def test_intensity_range_needs_exactly_two_values_and_flat_images_are_black(tmp_path):
    import warnings

    from advaug.data.folder import check_intensity_range, load_image

    with pytest.raises(DatasetError, match=r"dataset\.intensity_range=\[0, 100, 200\]: give two numbers"):
        check_intensity_range([0, 100, 200])
    assert check_intensity_range([0, 4095]) == (0.0, 4095.0)
    # a constant 16-bit image has no range of its own: black, not 0/0 = NaN cast to uint8
    Image.fromarray(np.full((8, 8), 700, np.uint16)).save(tmp_path / "flat.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(tmp_path / "flat.png", 8).max() == 0


def test_grey_with_alpha_mask_accepted(tmp_path):
    la = np.zeros((20, 24, 2), np.uint8)
    la[5:10, 5:12, 0] = 255
    la[..., 1] = 255  # opaque alpha differs from the grey channel: ignored
    assert int(mask_to_ids(la, tmp_path / "m.png", 2, None).sum()) == 5 * 7


def test_threshold_is_binary_only_and_binary_masks_need_two_classes(tmp_path):
    ids = np.array([[0, 1], [2, 2]], np.uint8)
    # dataset.mask_threshold is ignored for multi-class masks (ids kept, no binarising or error)
    assert mask_to_ids(ids, tmp_path / "m.png", 3, 128).tolist() == ids.tolist()
    # {0, 255} is read as binary only under num_classes=2; with 3 classes 255 is no class id
    binary = np.array([[0, 255], [255, 0]], np.uint8)
    with pytest.raises(DatasetError, match=r"mask values \{0, 255\} are neither class ids 0\.\.2\. ") as err:
        mask_to_ids(binary, tmp_path / "m.png", 3, None)
    # no "nor {0,255}" beside values that are {0,255}: the fix names the binary setting instead
    assert "nor {0,255}" not in str(err.value) and "only with dataset.num_classes=2" in str(err.value)


def test_a_mask_threshold_with_more_than_two_classes_is_refused_up_front(phantom_root):
    from advaug.data import SegmentationDataModule
    from advaug.data.check import check_dataset

    message = r"dataset.mask_threshold=128 with dataset.num_classes=3: .* set dataset.mask_threshold=null"
    with pytest.raises(DatasetError, match=message):
        SegmentationDataModule(root=str(phantom_root), num_classes=3, mask_threshold=128)
    with pytest.raises(DatasetError, match=message):
        check_dataset(phantom_root, num_classes=3, mask_threshold=128)
    SegmentationDataModule(root=str(phantom_root), num_classes=2, mask_threshold=128)  # binary: fine


def test_large_non_binary_values_get_the_threshold_advice_not_num_classes(tmp_path):
    # {0, 200}: a lossy binary mask, not class ids of 201 classes
    raw = np.array([[0, 200], [200, 0]], np.uint8)
    with pytest.raises(DatasetError, match=r"\{0, 200\}.*set dataset\.mask_threshold=128\.") as err:
        mask_to_ids(raw, tmp_path / "m.png", 2, None)
    assert "num_classes=201" not in str(err.value)


def test_mask_resize_keeps_class_ids(tmp_path):
    # bilinear resizing would invent ids between neighbouring classes (0|3 -> 1, 2)
    ids = np.zeros((20, 24), np.uint8)
    ids[:, 12:] = 3
    write_pair(tmp_path, "a", mask=ids)
    _, masks = load_pairs(find_pairs(tmp_path), 48, 4)
    assert set(masks.unique().tolist()) == {0, 3}


def test_splits_json_missing_list_and_bad_ratios_are_dataset_errors(tmp_path):
    path = tmp_path / "splits.json"
    path.write_text(json.dumps({"train": ["a"], "val": ["b"]}))
    with pytest.raises(DatasetError, match=r"splits\.json: no 'test' list"):
        read_splits(path, ["a", "b", "c"])
    ids = [str(i) for i in range(4)]
    with pytest.raises(DatasetError, match=r"dataset\.split=\{'train': 1, 'test': 1\}: needs a positive"):
        seeded_split(ids, {"train": 1, "test": 1}, seed=0)
    with pytest.raises(DatasetError, match="non-negative val/test"):
        seeded_split(ids, {"train": 1, "val": 1, "test": -1}, seed=0)


def test_seeded_split_fills_small_splits_from_the_largest():
    ids = [str(i) for i in range(10)]
    # 0.05 of 10 rounds to 0 for val and test: each takes one id from train (the largest)
    split = seeded_split(ids, {"train": 0.9, "val": 0.05, "test": 0.05}, seed=0)
    assert [len(split[s]) for s in ("train", "val", "test")] == [8, 1, 1]
    assert sorted(split["train"] + split["val"] + split["test"]) == ids
    # val and test both rounding up past n (1.5 -> 2 each of 3, train ratio below float precision)
    split = seeded_split(ids[:3], {"train": 1e-17, "val": 1, "test": 1}, seed=0)
    assert sorted(split["train"] + split["val"] + split["test"]) == ids[:3]
    assert all(len(split[s]) == 1 for s in ("train", "val", "test"))
