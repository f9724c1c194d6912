import json

import numpy as np
import pytest
from PIL import Image

from advaug.data.synthetic import SyntheticPhantomGenerator, phantom
from advaug.errors import DatasetError


def test_phantom_is_seeded_and_binary():
    a_img, a_mask = phantom(np.random.default_rng(5), 64)
    b_img, b_mask = phantom(np.random.default_rng(5), 64)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    assert a_img.dtype == np.uint8 and a_img.shape == (64, 64)
    assert set(np.unique(a_mask)) <= {0, 1}


def test_lesions_vary_and_some_slices_are_empty():
    rng = np.random.default_rng(0)
    fractions = [phantom(rng, 64)[1].mean() for _ in range(60)]
    assert 0 < sum(f == 0 for f in fractions) < 20  # ~10 % tumour-free slices
    nonzero = [f for f in fractions if f > 0]
    assert max(nonzero) > 3 * min(nonzero)  # sizes vary widely


def test_ensure_writes_on_disk_format_once(tmp_path):
    gen = SyntheticPhantomGenerator(num_images=5, size=32, seed=1)
    root = gen.ensure(tmp_path / "syn")
    assert sorted(p.name for p in (root / "images").iterdir()) == [f"phantom_{i:04d}.png" for i in range(5)]
    mask = np.asarray(Image.open(root / "masks" / "phantom_0000.png"))
    assert set(np.unique(mask)) <= {0, 255}
    info = json.loads((root / "dataset.json").read_text())
    assert "SYNTHETIC" in info["description"] and info["count"] == 5
    stamp = (root / "images" / "phantom_0000.png").stat().st_mtime_ns
    gen.ensure(root)  # same settings: nothing rewritten
    assert (root / "images" / "phantom_0000.png").stat().st_mtime_ns == stamp
    SyntheticPhantomGenerator(num_images=4, size=32, seed=1).ensure(root)  # new settings: regenerated
    assert len(list((root / "images").iterdir())) == 4
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]  # no half-written folder left


def _ensure(root):
    SyntheticPhantomGenerator(num_images=12, size=32, seed=3).ensure(root)


def test_parallel_jobs_generate_once_without_clashing(tmp_path):
    # parallel sweep jobs (joblib) all call ensure() on the same folder at start-up
    import multiprocessing as mp

    root = tmp_path / "syn"
    procs = [mp.get_context("fork").Process(target=_ensure, args=(root,)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(list((root / "images").iterdir())) == len(list((root / "masks").iterdir())) == 12
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_ensure_never_replaces_a_folder_it_did_not_make(tmp_path):
    root = tmp_path / "my_data"
    (root / "images").mkdir(parents=True)
    (root / "images" / "patient1.png").write_bytes(b"precious")
    (root / "dataset.json").write_text(json.dumps({"settings": {"converter": "polyp"}}))
    with pytest.raises(
        DatasetError, match=r"my_data already exists and was not made by .*another dataset\.root"
    ):
        SyntheticPhantomGenerator(num_images=3, size=16).ensure(root)
    assert (root / "images" / "patient1.png").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_data"]  # no lock or temp folder beside it
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(DatasetError, match="a_file already exists"):
        SyntheticPhantomGenerator(num_images=3, size=16).ensure(tmp_path / "a_file")


def test_ensure_fills_an_empty_folder_and_replaces_an_older_generation(tmp_path):
    root = tmp_path / "syn"
    root.mkdir()
    SyntheticPhantomGenerator(num_images=3, size=16).ensure(root)
    assert len(list((root / "images").iterdir())) == 3
    info = json.loads((root / "dataset.json").read_text())
    info["settings"]["generator"] = "synthetic-phantom-v3"  # made by an older version of this module
    (root / "dataset.json").write_text(json.dumps(info))
    SyntheticPhantomGenerator(num_images=4, size=16).ensure(root)
    assert len(list((root / "images").iterdir())) == 4


def test_generated_set_gets_the_usual_folder_permissions(tmp_path):
    # written into a mkdtemp folder (0700) and renamed into place: the data folder was private
    import os

    umask = os.umask(0o022)
    try:
        root = SyntheticPhantomGenerator(num_images=3, size=16, seed=0).ensure(tmp_path / "syn")
    finally:
        os.umask(umask)
    assert oct(root.stat().st_mode & 0o777) == oct(0o755)
