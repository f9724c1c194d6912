"""CT converters (MSD colon, VerSe lumbar) on tiny synthetic NIfTI volumes made here with nibabel:
slice choice, windowing, orientation, masks, patient-wise splits, provenance, atomic/idempotent output."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import CVC, link_cvc_frames
from PIL import Image

from advaug.data.converters import prepare
from advaug.data.converters.common import patient_split
from advaug.data.converters.ct import square_fov
from advaug.data.folder import find_pairs, load_pairs
from advaug.data.splits import read_splits
from advaug.errors import DatasetError

nib = pytest.importorskip("nibabel")
ROOT = Path(__file__).resolve().parents[1]
QUIET = {"progress": lambda msg: None}


def save_nifti(path: Path, data: np.ndarray, spacing=(1.0, 1.0, 2.5), lps: bool = False) -> None:
    """Write ``data`` given in RAS voxel order; ``lps`` stores it flipped in x and y with a
    matching affine (as many scanners do), so a correct reader sees the same anatomy."""
    affine = np.diag([*spacing, 1.0])
    if lps:
        data = data[::-1, ::-1]
        affine[0, 0], affine[1, 1] = -spacing[0], -spacing[1]
        affine[0, 3], affine[1, 3] = spacing[0] * (data.shape[0] - 1), spacing[1] * (data.shape[1] - 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data), affine), str(path))


def body(shape) -> np.ndarray:
    """Air (-1000 HU) around an elliptic soft-tissue body (30 HU)."""
    x, y = np.mgrid[0 : shape[0], 0 : shape[1]]
    inside = ((x - shape[0] / 2) / (shape[0] * 0.45)) ** 2 + ((y - shape[1] / 2) / (shape[1] * 0.4)) ** 2 <= 1
    hu = np.full(shape, -1000.0, np.float32)
    hu[inside] = 30.0
    return hu


def colon_case(n_tumour: int, z0: int = 6, shape=(40, 40, 24)):
    """A CT with a 100 HU tumour disc (radius 4) at RAS voxel (x=28, y=30) in ``n_tumour`` slices."""
    hu, label = body(shape), np.zeros(shape, np.int16)
    x, y = np.mgrid[0 : shape[0], 0 : shape[1]]
    disc = (x - 28) ** 2 + (y - 30) ** 2 <= 16
    for z in range(z0, z0 + n_tumour):
        hu[..., z][disc] = 100.0
        label[..., z][disc] = 1
    return hu.astype(np.int16), label


DISC_PIXELS = int(((np.mgrid[-4:5, -4:5] ** 2).sum(0) <= 16).sum())
TUMOUR_SLICES = {"colon_001": 5, "colon_002": 3, "colon_005": 4, "colon_007": 6, "colon_010": 2}


@pytest.fixture(scope="module")
def msd_colon(tmp_path_factory) -> Path:
    """A Task10_Colon folder as unpacked from the MSD archive (with its ._ files and imagesTs)."""
    task = tmp_path_factory.mktemp("msd") / "Task10_Colon"
    for k, (case, n) in enumerate(TUMOUR_SLICES.items()):
        hu, label = colon_case(n)
        lps = k % 2 == 1  # half of the cases stored LPS: the reader must reorient
        save_nifti(task / "imagesTr" / f"{case}.nii.gz", hu, lps=lps)
        save_nifti(task / "labelsTr" / f"{case}.nii.gz", label, lps=lps)
        (task / "imagesTr" / f"._{case}.nii.gz").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    save_nifti(task / "imagesTs" / "colon_099.nii.gz", colon_case(2)[0])
    (task / "dataset.json").write_text(
        json.dumps({"name": "ColonCancer", "labels": {"0": "bg", "1": "colon cancer"}})
    )
    return task


def slices_by_case(out: Path) -> dict[str, list[str]]:
    ids = [p.stem for p in sorted((out / "images").iterdir())]
    groups: dict[str, list[str]] = {}
    for i in ids:
        groups.setdefault(i.rsplit("_z", 1)[0], []).append(i)
    return groups


def test_colon_slices_window_orientation_and_provenance(msd_colon, tmp_path):
    out = tmp_path / "colon"
    record = prepare("colon", msd_colon, out, size=0, empty_fraction=0.4, **QUIET)
    groups = slices_by_case(out)
    assert set(groups) == set(TUMOUR_SLICES)  # imagesTs and ._ files ignored
    for case, n in TUMOUR_SLICES.items():
        assert len(groups[case]) == n + round(0.4 * n), case

    pairs = find_pairs(out)
    images, masks = load_pairs(pairs, size=40, num_classes=2)
    assert images.shape == (len(pairs), 3, 40, 40)
    tumour = masks.flatten(1).any(1)
    assert int(tumour.sum()) == sum(TUMOUR_SLICES.values())  # every tumour slice, empties have empty masks
    # radiological view: RAS (x=28, y=30) -> row 39-30 = 9, col 39-28 = 11, for RAS and LPS-stored cases alike
    for k in np.flatnonzero(tumour.numpy()):
        rows, cols = np.nonzero(masks[k].numpy())
        assert (rows.mean(), cols.mean()) == (9.0, 11.0)
        assert int(masks[k].sum()) == DISC_PIXELS  # not resized (size=0): the disc exactly
    # abdomen window 40/400: tumour 100 HU -> 0.65*255, body 30 HU -> 0.475*255, air -> 0
    k = int(np.flatnonzero(tumour.numpy())[0])
    assert images[k, 0, 9, 11] == 166 and images[k, 1, 20, 20] == 121 and images[k, 2, 0, 0] == 0
    assert images[k, 0].equal(images[k, 2])  # grey in 3 channels

    info = json.loads((out / "dataset.json").read_text())
    assert info == record
    assert info["source"]["licence"] == "CC-BY-SA 4.0" and "Task10_Colon" in info["source"]["dataset"]
    assert info["settings"]["window"] == {"level": 40.0, "width": 400.0}
    assert info["preprocessing"]["ct_window_hu"] == [-160.0, 240.0]
    assert info["counts"]["pairs"] == len(pairs) and info["counts"]["groups"] == 5
    assert info["counts"]["empty_masks"] == len(pairs) - sum(TUMOUR_SLICES.values())


def test_colon_split_is_by_patient(msd_colon, tmp_path):
    out = tmp_path / "colon"
    prepare("colon", msd_colon, out, size=16, empty_fraction=0.5, **QUIET)
    splits = read_splits(out / "splits.json", [p.id for p in find_pairs(out)])
    owner = {}
    for name, ids in splits.items():
        assert ids, name
        for i in ids:
            assert owner.setdefault(i.rsplit("_z", 1)[0], name) == name  # one patient, one split
    assert sorted(i for ids in splits.values() for i in ids) == sorted(p.id for p in find_pairs(out))
    info = json.loads((out / "dataset.json").read_text())
    assert info["split_by"] == "patient"
    assert {p for g in info["split_groups"].values() for p in g} == set(TUMOUR_SLICES)
    assert Image.open(next((out / "images").iterdir())).size == (16, 16)


def test_idempotent_refuses_without_force_and_rebuilds_identically(msd_colon, tmp_path, capsys):
    out = tmp_path / "colon"
    prepare("colon", msd_colon, out, size=16)
    printed = capsys.readouterr().out
    assert "[5/5] colon_010" in printed and "wrote" in printed  # progress
    before = {
        p.relative_to(out): (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()
    }

    assert prepare("colon", msd_colon, out, size=16) is None  # same settings: nothing to do
    assert "nothing to do" in capsys.readouterr().out
    with pytest.raises(DatasetError, match="--force"):
        prepare("colon", msd_colon, out, size=16, window=(50, 350), **QUIET)
    assert {
        p.relative_to(out): (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()
    } == before

    prepare("colon", msd_colon, out, size=16, force=True, **QUIET)  # deterministic: same bytes again
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == {k: v[0] for k, v in before.items()}
    assert [p.name for p in tmp_path.iterdir()] == ["colon"]  # no temp or old folders left

    prepare("colon", msd_colon, out, size=16, window=(50, 350), force=True, **QUIET)
    assert json.loads((out / "dataset.json").read_text())["settings"]["window"]["level"] == 50.0


def test_failure_leaves_nothing_half_written(msd_colon, tmp_path):
    src = tmp_path / "Task10_Colon"
    for sub in ("imagesTr", "labelsTr"):
        (src / sub).mkdir(parents=True)
        for name in ("colon_001", "colon_002", "colon_005"):
            (src / sub / f"{name}.nii.gz").symlink_to(msd_colon / sub / f"{name}.nii.gz")
    (src / "labelsTr" / "colon_005.nii.gz").unlink()
    (src / "labelsTr" / "colon_005.nii.gz").write_bytes(b"not a nifti")
    out = tmp_path / "out" / "colon"
    with pytest.raises(DatasetError, match=r"colon_005\.nii\.gz: cannot read"):
        prepare("colon", src, out, size=16, **QUIET)
    assert not out.exists() and list((tmp_path / "out").iterdir()) == []


def test_colon_from_archive_and_cli(msd_colon, tmp_path):
    archive = tmp_path / "Task10_Colon.tar"
    with tarfile.open(archive, "w") as tf:
        tf.add(msd_colon, arcname="Task10_Colon")
    out = tmp_path / "data" / "colon"
    cmd = [
        sys.executable,
        str(ROOT / "src" / "prepare_data.py"),
        "colon",
        "--src",
        str(archive),
        "--out",
        str(out),
    ]
    proc = subprocess.run([*cmd, "--size", "16"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "unpacking Task10_Colon.tar" in proc.stdout and "[5/5]" in proc.stdout
    assert len(list((out / "images").iterdir())) == sum(TUMOUR_SLICES.values()) + sum(
        round(0.1 * n) for n in TUMOUR_SLICES.values()
    )
    assert sorted(p.name for p in out.parent.iterdir()) == ["colon"]  # unpacked copy removed
    proc = subprocess.run([*cmd, "--size", "32"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "already exists" in proc.stderr and "--force" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_layout_is_named(tmp_path):
    (tmp_path / "something" / "imagesTr").mkdir(parents=True)
    with pytest.raises(DatasetError, match="imagesTr/ and labelsTr/"):
        prepare("colon", tmp_path, tmp_path / "out", **QUIET)
    with pytest.raises(DatasetError, match="does not exist"):
        prepare("colon", tmp_path / "nope.tar", tmp_path / "out", **QUIET)


# -- VerSe -------------------------------------------------------------------------------------
VERTEBRAE = (18, 19, 20, 21, 22, 23, 24)  # T11, T12, L1-L5: 5 slices each, 1-slice gaps


def verse_case(shape=(32, 32, 42)):
    hu, label = body(shape), np.zeros(shape, np.int16)
    x, y = np.mgrid[0 : shape[0], 0 : shape[1]]
    vertebral_body = (x - 16) ** 2 + (y - 10) ** 2 <= 20
    for i, lab in enumerate(VERTEBRAE):
        for z in range(i * 6, i * 6 + 5):
            hu[..., z][vertebral_body] = 700.0
            label[..., z][vertebral_body] = lab
    return hu.astype(np.int16), label


@pytest.fixture(scope="module")
def verse_root(tmp_path_factory) -> Path:
    """VerSe'20 subject layout: 5 subjects, one with two scans, plus a scan without a mask."""
    root = tmp_path_factory.mktemp("verse") / "dataset-01training"
    hu, label = verse_case()
    scans = [
        "sub-verse001",
        "sub-verse002",
        "sub-verse005",
        "sub-gl003_dir-ax",
        "sub-gl003_dir-sag",
        "sub-gl016",
    ]
    for k, scan in enumerate(scans):
        subject = scan.split("_")[0]
        save_nifti(root / "rawdata" / subject / f"{scan}_ct.nii.gz", hu, spacing=(1, 1, 1), lps=k % 2 == 0)
        save_nifti(
            root / "derivatives" / subject / f"{scan}_seg-vert_msk.nii.gz",
            label,
            spacing=(1, 1, 1),
            lps=k % 2 == 0,
        )
    save_nifti(root / "rawdata" / "sub-verse009" / "sub-verse009_ct.nii.gz", hu, spacing=(1, 1, 1))  # no mask
    return root.parent


def test_lumbar_keeps_lumbar_slices_binary_and_splits_by_subject(verse_root, tmp_path, capsys):
    out = tmp_path / "lumbar"
    prepare("lumbar", verse_root, out, size=0, slice_spacing_mm=0)
    assert "skipping 1 scan(s) without a vertebra mask" in capsys.readouterr().out
    groups = slices_by_case(out)
    assert len(groups) == 6
    lumbar_z = [z for i in range(2, 7) for z in range(i * 6, i * 6 + 5)]
    for scan, ids in groups.items():
        assert [int(i.rsplit("_z", 1)[1]) for i in ids] == lumbar_z, scan  # no thoracic slices
    pairs = find_pairs(out)
    _, masks = load_pairs(pairs, size=32, num_classes=2)
    assert set(masks.unique().tolist()) == {0, 1} and bool(masks.flatten(1).any(1).all())
    splits = json.loads((out / "splits.json").read_text())
    where = {i.rsplit("_z", 1)[0].split("_")[0]: name for name, ids in splits.items() for i in ids}
    assert sorted(where) == ["sub-gl003", "sub-gl016", "sub-verse001", "sub-verse002", "sub-verse005"]
    gl003 = {name for name, ids in splits.items() for i in ids if i.startswith("sub-gl003")}
    assert len(gl003) == 1  # both scans of the subject in one split
    info = json.loads((out / "dataset.json").read_text())
    assert info["source"]["licence"] == "CC BY-SA 4.0" and info["counts"]["groups"] == 5
    assert info["preprocessing"]["ct_window_hu"] == [-500.0, 1300.0]  # bone window default


def test_lumbar_per_level_classes_and_slice_spacing(verse_root, tmp_path):
    out = tmp_path / "lumbar"
    record = prepare("lumbar", verse_root, out, size=0, per_level=True, **QUIET)  # default 5 mm apart
    groups = slices_by_case(out)
    assert all(len(ids) == 5 for ids in groups.values())  # 25 lumbar slices at 1 mm, every 5th
    pairs = find_pairs(out)
    _, masks = load_pairs(pairs, size=32, num_classes=6)
    assert set(masks.unique().tolist()) == {0, 1, 2, 3, 4, 5}  # L1..L5 as classes 1..5
    first = [k for k, p in enumerate(pairs) if p.id.startswith("sub-verse001")]
    assert [int(masks[k].max()) for k in first] == [1, 2, 3, 4, 5]  # z 12, 18, ..., 36: one per level
    assert record["preprocessing"]["num_classes"] == 6
    with pytest.raises(DatasetError, match="mask values"):  # a binary reader refuses class ids 2..5
        load_pairs(pairs, size=32, num_classes=2)


def test_verse_challenge_layout(tmp_path):
    hu, label = verse_case()
    for n in ("verse004", "verse007", "verse012"):
        save_nifti(tmp_path / "src" / f"{n}_CT-orient.nii.gz", hu, spacing=(1, 1, 1))
        save_nifti(tmp_path / "src" / f"{n}_CT-orient_seg.nii.gz", label, spacing=(1, 1, 1))
    record = prepare("lumbar", tmp_path / "src", tmp_path / "out", size=16, **QUIET)
    assert record["counts"]["groups"] == 3 and record["counts"]["pairs"] == 15


def test_square_fov_keeps_proportions():
    image = np.ones((10, 20), np.float32)
    out, mask = square_fov(image, np.ones((10, 20), np.uint8), row_mm=2.0, col_mm=1.0)
    assert out.shape == mask.shape == (20, 20) and out.min() == 1  # 20 mm x 20 mm: resampled, not padded
    out, mask = square_fov(np.ones((10, 10), np.float32), np.ones((10, 10), np.uint8), row_mm=1.0, col_mm=2.0)
    assert out.shape == (20, 20) and out[:5].max() == 0 and out[5:15].min() == 1 and mask[15:].max() == 0


def test_patient_split_never_empty_and_needs_three():
    split = patient_split(["a", "b", "c"], {"train": 0.7, "val": 0.15, "test": 0.15}, seed=0)
    assert sorted(len(v) for v in split.values()) == [1, 1, 1]
    with pytest.raises(DatasetError, match="at least 3"):
        patient_split(["a", "b"], {"train": 0.7, "val": 0.15, "test": 0.15}, seed=0)


@pytest.mark.parametrize("n", [3, 4, 5, 7])
@pytest.mark.parametrize(
    "ratios", [(0.1, 0.45, 0.45), (0.7, 0.15, 0.15), (0.7, 0.3, 0.0), (0.01, 0.5, 0.5), (1, 10, 10)]
)
def test_patient_split_disjoint_complete_and_every_split_filled(n, ratios):
    patients = [f"p{i}" for i in range(n)]
    split = patient_split(patients, dict(zip(("train", "val", "test"), ratios, strict=True)), seed=n)
    every = split["train"] + split["val"] + split["test"]
    assert sorted(every) == patients  # no patient in two splits, none lost
    assert all(split.values())  # training and evaluation need all three


def test_patient_split_needs_a_train_ratio():
    with pytest.raises(DatasetError, match=r"--split 0 0\.5 0\.5: needs a positive train ratio"):
        patient_split(["a", "b", "c"], {"train": 0, "val": 0.5, "test": 0.5}, seed=0)


def test_prepare_refuses_a_zero_train_ratio_before_writing(msd_colon, tmp_path):
    out = tmp_path / "out" / "colon"
    with pytest.raises(DatasetError, match="positive train ratio"):
        prepare("colon", msd_colon, out, size=16, split=(0, 0.5, 0.5), **QUIET)
    assert not (tmp_path / "out").exists()  # refused before anything was made


# -- polyp ---------------------------------------------------------------------------------------
def cvc_source(root: Path, mask_value: int = 255, n: int = 4, ext: str = "png") -> Path:
    """A CVC-ClinicDB layout of ``n`` 40x40 frames with a square polyp of ``mask_value``."""
    (root / "Original").mkdir(parents=True)
    (root / "Ground Truth").mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, n + 1):
        frame = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(frame).save(root / "Original" / f"{i}.{ext}")
        mask = np.zeros((40, 40), np.uint8)
        mask[10:30, 10:30] = mask_value
        Image.fromarray(mask).save(root / "Ground Truth" / f"{i}.png")
    return root


def nothing_left(out: Path) -> bool:
    return not out.exists() and list(out.parent.iterdir()) == []


def test_polyp_truncated_image_is_named_and_nothing_is_written(tmp_path):
    src = cvc_source(tmp_path / "cvc", ext="jpg")
    data = (src / "Original" / "3.jpg").read_bytes()
    (src / "Original" / "3.jpg").write_bytes(data[: len(data) // 3])  # an interrupted download
    out = tmp_path / "out" / "polyp"
    out.parent.mkdir()
    with pytest.raises(DatasetError, match=r"3\.jpg: cannot decode the image"):
        prepare("polyp", src, out, size=16, **QUIET)
    assert nothing_left(out)
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "src" / "prepare_data.py"),
            "polyp",
            "--src",
            str(src),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "3.jpg: cannot decode the image" in proc.stderr and nothing_left(out)


def test_polyp_class_id_masks_need_threshold_one(tmp_path):
    src = cvc_source(tmp_path / "cvc", mask_value=1)
    out = tmp_path / "out" / "polyp"
    out.parent.mkdir()
    with pytest.raises(
        DatasetError, match=r"1\.png: mask holds class ids \(values 0, 1\).*--mask-threshold 1"
    ):
        prepare("polyp", src, out, size=20, split=(0.5, 0.25, 0.25), **QUIET)
    assert nothing_left(out)
    record = prepare("polyp", src, out, size=20, split=(0.5, 0.25, 0.25), mask_threshold=1, **QUIET)
    assert record["counts"]["empty_masks"] == 0 and record["counts"]["foreground_fraction"] == 0.25


def test_polyp_refuses_to_publish_only_empty_masks(tmp_path):
    src = cvc_source(tmp_path / "cvc", mask_value=100)  # all below the default threshold 128
    out = tmp_path / "out" / "polyp"
    out.parent.mkdir()
    with pytest.raises(DatasetError, match=r"Ground Truth: all 4 masks are empty after binarising at >= 128"):
        prepare("polyp", src, out, size=20, **QUIET)
    assert nothing_left(out)


@pytest.mark.skipif(not CVC.is_dir(), reason="needs ../shared/datasets/cvc-clinicdb")
def test_polyp_keeps_cvc_clinicdb_videos_whole_with_its_sequences_json(tmp_path):
    # 4 frames from each of 4 real CVC-ClinicDB videos, symlinked, with the shared sequences.json
    videos = json.loads((CVC / "sequences.json").read_text())
    frames = [i for v in (1, 2, 3, 4) for i in sorted(k for k, g in videos.items() if g == v)[:4]]
    src = link_cvc_frames(tmp_path / "cvc", frames)
    out = tmp_path / "out" / "polyp"
    record = prepare("polyp", src, out, size=16, split=(0.5, 0.25, 0.25), **QUIET)
    assert record["split_by"] == "video" and record["group_unit"] == "videos"
    assert record["groups"] == {f"video_{v}": [i for i in frames if videos[i] == v] for v in (1, 2, 3, 4)}
    splits = read_splits(out / "splits.json", frames)
    placed = {name: {videos[i] for i in ids} for name, ids in splits.items()}
    assert sorted(len(v) for v in placed.values()) == [1, 1, 2]  # whole videos: 2 / 1 / 1
    assert not (
        placed["train"] & placed["val"] or placed["train"] & placed["test"] or placed["val"] & placed["test"]
    )
    assert json.loads((out / "dataset.json").read_text())["groups"] == record["groups"]


def test_polyp_groups_file_given_on_the_command_line_splits_by_video(tmp_path):
    src = cvc_source(tmp_path / "cvc", n=6)
    groups = tmp_path / "videos.json"
    groups.write_text(json.dumps({"1": 1, "2": 1, "3": 2, "4": 2, "5": 3, "6": 3}))
    out = tmp_path / "out" / "polyp"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "src" / "prepare_data.py"), "polyp",
         "--src", str(src), "--out", str(out), "--size", "16", "--groups", str(groups)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "6 frames of 3 videos: split by video" in proc.stdout
    splits = json.loads((out / "splits.json").read_text())
    assert sorted(len(ids) for ids in splits.values()) == [2, 2, 2]  # one whole video per split
    assert {tuple(ids) for ids in splits.values()} == {("1", "2"), ("3", "4"), ("5", "6")}
    # without it: per image, as before
    record = prepare("polyp", src, tmp_path / "out" / "plain", size=16, **QUIET)
    assert record["split_by"] == "image" and len(record["groups"]) == 6
    with pytest.raises(DatasetError, match="--groups .*nosuch.json: no such file"):
        prepare("polyp", src, tmp_path / "out" / "x", size=16, groups=tmp_path / "nosuch.json", **QUIET)
