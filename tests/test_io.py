import json
import math

import pytest
import torch

from advaug.utils.io import atomic_path, atomic_write_json, read_json


def test_atomic_json_roundtrip_converts_tensors_and_nan(tmp_path):
    path = atomic_write_json(tmp_path / "sub" / "m.json", {"a": torch.tensor(0.5), "b": [math.nan, 1.0]})
    assert read_json(path) == {"a": 0.5, "b": [None, 1.0]}
    assert [p.name for p in path.parent.iterdir()] == ["m.json"]  # no temp file left


def test_failed_write_leaves_previous_file_intact(tmp_path):
    path = atomic_write_json(tmp_path / "m.json", {"v": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"v": object()})
    assert json.loads(path.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_atomic_path_keeps_the_suffix_and_cleans_up_a_failed_write(tmp_path):
    target = tmp_path / "figs" / "grid.png"
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == target.parent and tmp != target
        tmp.write_bytes(b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"first"  # the old file stays, no temporary file is left
    assert [p.name for p in target.parent.iterdir()] == ["grid.png"]


def test_atomic_files_get_the_usual_permissions(tmp_path):
    # mkstemp makes its file 0600: metrics.json, config_resolved.yaml and the figures of a run were
    # unreadable to the group (a shared results folder, a Docker volume) unlike every other output
    import os

    umask = os.umask(0o022)
    try:
        path = atomic_write_json(tmp_path / "m.json", {"v": 1})
        with atomic_path(tmp_path / "f.png") as tmp:
            tmp.write_bytes(b"png")
    finally:
        os.umask(umask)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert oct((tmp_path / "f.png").stat().st_mode & 0o777) == oct(0o644)
