"""``advaug.data.check`` and ``src/check_data.py``: a dataset folder validated up front."""

import numpy as np
import pytest
from conftest import run_entry_script
from omegaconf import OmegaConf
from PIL import Image
from test_folder import write_pair

from advaug.data.check import check_dataset, check_dataset_config, format_summary
from advaug.errors import DatasetError


def test_summary_of_phantoms(phantom_root):
    summary = check_dataset(phantom_root, split={"train": 0.5, "val": 0.25, "test": 0.25})
    assert summary["counts"] == {"pairs": 16, "train": 8, "val": 4, "test": 4, "unused": 0}
    assert summary["sizes"] == {"32x32": 16} and summary["modes"] == {"L": 16}
    fg = sum(int((np.asarray(Image.open(p)) == 255).sum()) for p in (phantom_root / "masks").glob("*.png"))
    assert summary["class_pixels"] == {"0": 16 * 32 * 32 - fg, "1": fg}
    assert summary["foreground_share"] == pytest.approx(fg / (16 * 32 * 32))
    text = format_summary(summary)
    assert "pairs: 16" in text and "32x32 (16)" in text and "foreground share" in text


def test_mixed_grayscale_and_rgb_is_a_note_not_an_error(tmp_path):
    for i in range(3):
        write_pair(tmp_path, f"g{i}")
        write_pair(tmp_path, f"c{i}", image=np.full((20, 24, 3), 50, np.uint8))
    summary = check_dataset(tmp_path)
    assert summary["modes"] == {"L": 3, "RGB": 3}
    assert any("mixed" in n for n in summary["notes"])


def _truncate(root):
    data = (root / "images" / "b.png").read_bytes()
    (root / "images" / "b.png").write_bytes(data[: len(data) // 2])


def _bad_values(root):
    mask = np.zeros((20, 24), np.uint8)
    mask[0, 0] = 77
    Image.fromarray(mask).save(root / "masks" / "b.png")


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda r: (r / "masks" / "b.png").unlink(), r"b\.png has no mask"),
        (lambda r: (r / "images" / "c.png").unlink(), r"c\.png has no image"),
        (lambda r: (r / "images" / "readme.txt").write_text("x"), r"readme\.txt: not an image"),
        (_truncate, r"b\.png: cannot decode"),
        (
            lambda r: Image.fromarray(np.zeros((8, 8), np.uint8)).save(r / "masks" / "b.png"),
            r"b\.png: mask is 8x8",
        ),
        (_bad_values, r"b\.png: mask values \{0, 77\}"),
    ],
)
def test_every_bad_file_is_named(tmp_path, break_it, message):
    for name in "abcd":
        write_pair(tmp_path, name)
    break_it(tmp_path)
    with pytest.raises(DatasetError, match=message):
        check_dataset(tmp_path, split={"train": 2, "val": 1, "test": 1})


def test_empty_split_after_splitting(tmp_path):
    write_pair(tmp_path, "a")
    write_pair(tmp_path, "b")
    with pytest.raises(DatasetError, match="'val' split is empty"):
        check_dataset(tmp_path, split={"train": 0.7, "val": 0.15, "test": 0.15})


def run_check(args, cwd):
    return run_entry_script("check_data.py", args, cwd)


def test_script_prints_summary_or_one_error_line(tmp_path, phantom_root):
    ok = run_check(
        ["dataset=folder", f"dataset.root={phantom_root}", "dataset.split={train: 8, val: 4, test: 4}"],
        tmp_path,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "pairs: 16  (train 8, val 4, test 4" in ok.stdout and "mask classes" in ok.stdout
    bad = tmp_path / "bad"
    for name in "abc":
        write_pair(bad, name)
    (bad / "masks" / "b.png").unlink()
    proc = run_check(["dataset=folder", f"dataset.root={bad}"], tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "b.png has no mask" in lines[0] and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]  # the check wrote nothing


def test_check_data_refuses_a_foreign_synthetic_root(tmp_path):
    root = tmp_path / "real"
    (root / "masks").mkdir(parents=True)
    (root / "notes.txt").write_text("annotations")
    dataset = OmegaConf.create(
        {
            "root": str(root),
            "generator": {"_target_": "advaug.data.SyntheticPhantomGenerator", "num_images": 3, "size": 16},
        }
    )
    with pytest.raises(DatasetError, match="was not made by the synthetic phantom generator"):
        check_dataset_config(dataset)
    assert (root / "notes.txt").read_text() == "annotations"


def test_check_data_never_replaces_a_synthetic_set_made_with_other_settings(tmp_path):
    def node(num_images):
        gen = {"_target_": "advaug.data.SyntheticPhantomGenerator", "num_images": num_images, "size": 32}
        return OmegaConf.create({"root": str(tmp_path / "syn"), "generator": gen, "split": None})

    summary = check_dataset_config(node(8))  # none there yet: generated, as train.py would
    assert summary["counts"]["pairs"] == 8
    assert not any("would regenerate" in n for n in summary["notes"])
    before = (tmp_path / "syn" / "dataset.json").read_text()
    summary = check_dataset_config(node(12))  # other settings: checked as it is
    assert summary["counts"]["pairs"] == 8 and (tmp_path / "syn" / "dataset.json").read_text() == before
    # a note, which check_data.py prints (a log warning was never shown: its job log is off)
    assert "'num_images': 8" in summary["notes"][0] and "would regenerate it" in summary["notes"][0]
    assert "would regenerate it" in format_summary(summary)


def test_many_image_sizes_are_summarised():
    from advaug.data.check import _most_common

    sizes = {f"{i}x{i}": 100 - i for i in range(20)}
    line = _most_common(sizes)
    assert line.startswith("0x0 (100), 1x1 (99)") and line.endswith("... and 12 more sizes")
    assert _most_common({"8x8": 3}) == "8x8 (3)"


def test_pairs_left_out_of_splits_json_are_named(tmp_path, caplog):
    # a splits.json written before new images were added: the new pairs silently went unused
    import json

    from advaug.data.splits import resolve_splits

    for name in "abcdef":
        write_pair(tmp_path, name)
    (tmp_path / "splits.json").write_text(json.dumps({"train": ["a", "b"], "val": ["c"], "test": ["d"]}))
    summary = check_dataset(tmp_path)
    assert summary["counts"]["unused"] == 2
    assert any("2 pair(s) are in no split of splits.json" in n and "'e'" in n for n in summary["notes"])
    assert "in no split" in format_summary(summary)
    with caplog.at_level("WARNING"):
        resolve_splits(tmp_path, list("abcdef"), {"train": 0.7, "val": 0.15, "test": 0.15}, 0)
    assert "2 pair(s) are in no split of splits.json" in caplog.text


def test_summary_sizes_width_first_shares_and_masks_without_foreground(tmp_path):
    write_pair(tmp_path, "a")
    write_pair(tmp_path, "b", image=np.full((20, 24, 3), 50, np.uint8))  # colour beside grayscale
    write_pair(tmp_path, "c", mask=np.zeros((20, 24), np.uint8))  # no foreground
    write_pair(tmp_path, "d", image=np.full((16, 16), 9, np.uint8))
    summary = check_dataset(tmp_path, split={"train": 2, "val": 1, "test": 1})
    assert summary["sizes"] == {"24x20": 3, "16x16": 1}  # width x height, as PIL names them
    assert summary["empty_masks"] == 1
    fg = int(sum((np.asarray(Image.open(p)) == 255).sum() for p in (tmp_path / "masks").glob("*.png")))
    total = 3 * 20 * 24 + 16 * 16
    assert summary["class_pixels"] == {"0": total - fg, "1": fg}
    assert summary["class_share"] == pytest.approx({"0": (total - fg) / total, "1": fg / total})
    assert summary["notes"] == [
        "grayscale and colour images are mixed (3 grayscale): all are converted to RGB, "
        "grayscale by repeating the channel.",
        "2 different image sizes: all are resized to dataset.image_size.",
    ]
    text = format_summary(summary)
    assert "masks without foreground: 1 of 4" in text and "unused" not in text
    assert "24x20 (3), 16x16 (1)" in text and f"1: {fg} ({fg / total:.1%})" in text


def test_uniform_phantoms_have_no_notes_and_name_the_split_seed(phantom_root):
    ratios = {"train": 0.5, "val": 0.25, "test": 0.25}
    summary = check_dataset(phantom_root, split=ratios, split_seed=7)
    masks = [np.asarray(Image.open(p)) for p in (phantom_root / "masks").glob("*.png")]
    assert summary["empty_masks"] == sum(not m.any() for m in masks) == 2  # the phantoms' empty ones
    assert summary["notes"] == []  # one size, one mode, every class present
    assert summary["split_source"] == f"seeded ({ratios}, seed 7)"


def test_notes_on_deep_images_absent_classes_and_empty_masks(tmp_path):
    deep = np.full((20, 24), 1000, np.uint16)
    deep[0, 0] = 0
    ids = np.zeros((20, 24), np.uint8)
    ids[2:6, 2:6] = 2  # class 1 never occurs
    for name in "abcd":
        write_pair(tmp_path, name, image=deep, mask=ids)
    split = {"train": 2, "val": 1, "test": 1}
    notes = check_dataset(tmp_path, num_classes=3, split=split)["notes"]
    assert len(notes) == 2 and "4 image(s) are 16-bit" in notes[0] and "its own min..max" in notes[0]
    assert notes[1] == "class(es) [1] never occur in any mask: check dataset.num_classes=3."
    windowed = check_dataset(tmp_path, num_classes=3, split=split, intensity_range=[0, 4095])["notes"]
    assert windowed[0] == (
        "4 image(s) are 16-bit, 32-bit or float greyscale: mapped from "
        "dataset.intensity_range=[0.0, 4095.0] to 0..255 (clipped)."
    )
    with pytest.raises(DatasetError, match=r"dataset\.intensity_range=\[0, 100, 200\]: give two numbers"):
        check_dataset(tmp_path, split=split, intensity_range=[0, 100, 200])
    for name in "abcd":
        write_pair(tmp_path, name, mask=np.zeros((20, 24), np.uint8))
    summary = check_dataset(tmp_path, num_classes=3, split=split)
    assert summary["empty_masks"] == 4
    assert summary["notes"] == ["no mask has any foreground pixel: check that masks/ holds the right files."]


def test_check_dataset_config_passes_every_dataset_option(tmp_path):
    import json

    from advaug.data import SegmentationDataModule
    from advaug.data.splits import SPLITS

    root = tmp_path / "ds"
    lossy = np.zeros((20, 24), np.uint8)
    lossy[5:10, 5:12] = 200  # a JPEG-like binary mask: only dataset.mask_threshold reads it
    three = np.zeros((20, 24), np.uint8)
    three[0:4, 0:4], three[10:14, 10:14] = 1, 2
    for name in "abcd":
        write_pair(root, name, image=np.full((20, 24), 3000, np.uint16), mask=lossy)
    (root / "mine.json").write_text(json.dumps({"train": ["a", "b"], "val": ["c"], "test": ["d"]}))
    node = {
        "root": str(root),
        "mask_threshold": 128,
        "splits_file": "mine.json",
        "intensity_range": [0, 4095],
    }
    summary = check_dataset_config(OmegaConf.create(node))
    assert summary["split_source"] == "mine.json" and summary["class_pixels"]["1"] == 4 * 5 * 7
    assert "dataset.intensity_range=[0.0, 4095.0]" in summary["notes"][0]
    for name in "abcd":
        write_pair(root, name, mask=three)
    node = {"root": str(root), "num_classes": 3, "split": {"train": 2, "val": 1, "test": 1}, "split_seed": 5}
    summary = check_dataset_config(OmegaConf.create(node))
    assert set(summary["class_pixels"]) == {"0", "1", "2"}
    assert summary["split_source"] == "seeded ({'train': 2.0, 'val': 1.0, 'test': 1.0}, seed 5)"
    # no split given: the datamodule's default ratios, so the counts are the ones training uses
    for i in range(20):  # 20 pairs: 14/3/3 under 70/15/15 (16 would round 80/10/10 alike)
        write_pair(tmp_path / "twenty", f"p{i:02d}")
    summary = check_dataset_config(OmegaConf.create({"root": str(tmp_path / "twenty")}))
    dm = SegmentationDataModule(root=str(tmp_path / "twenty"), image_size=16)
    dm.setup()
    assert {s: summary["counts"][s] for s in SPLITS} == {s: len(dm.data[s][0]) for s in SPLITS}
    hint = {"root": str(tmp_path / "missing"), "prepare_hint": "Run: python src/prepare_data.py x"}
    with pytest.raises(DatasetError, match=r"missing does not exist\. Run: python src/prepare_data\.py x"):
        check_dataset_config(OmegaConf.create(hint))


def test_palette_images_count_as_grey_only_when_their_colours_are_grey(tmp_path):
    colour = np.zeros((20, 24, 3), np.uint8)
    colour[:, :12] = (200, 30, 30)
    grey = np.zeros((20, 24, 3), np.uint8)
    grey[:, :12] = 90
    for i in range(3):
        write_pair(tmp_path, f"c{i}", image=colour)
    write_pair(tmp_path, "p", image=colour)
    Image.fromarray(colour).convert("P", palette=Image.ADAPTIVE).save(tmp_path / "images" / "p.png")
    summary = check_dataset(tmp_path)
    assert summary["modes"] == {"RGB": 3, "P": 1}
    assert not any("mixed" in n for n in summary["notes"])  # a colour palette is colour
    Image.fromarray(grey).convert("P", palette=Image.ADAPTIVE).save(tmp_path / "images" / "p.png")
    summary = check_dataset(tmp_path)
    assert any("mixed (1 grayscale)" in n for n in summary["notes"])


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])  # what PNG holds
def test_deep_greyscale_images_count_as_grey_beside_colour_ones(tmp_path, mode):
    for i in range(2):
        write_pair(tmp_path, f"c{i}", image=np.full((20, 24, 3), 50, np.uint8))
    write_pair(tmp_path, "d")
    Image.fromarray(np.full((20, 24), 1000, np.int32)).convert(mode).save(tmp_path / "images" / "d.png")
    summary = check_dataset(tmp_path)
    assert any("mixed (1 grayscale)" in n for n in summary["notes"]), summary
