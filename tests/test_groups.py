"""The groups (patients, videos) of a dataset folder: sequences.json, a converter's dataset.json, or none."""

import json

import pytest

from advaug.data.groups import members, read_groups, straddling
from advaug.errors import DatasetError

IDS = ["a", "b", "c", "d"]


def test_sequences_json_maps_ids_to_groups_and_extra_ids_are_ignored(tmp_path):
    (tmp_path / "sequences.json").write_text(json.dumps({"a": 1, "b": 1, "c": 2, "d": 3, "zz": 9}))
    group_of = read_groups(tmp_path, IDS)
    assert group_of == {"a": "1", "b": "1", "c": "2", "d": "3"}
    assert members(group_of) == {"1": ["a", "b"], "2": ["c"], "3": ["d"]}


def test_a_converters_dataset_json_groups_are_read_without_a_sequences_file(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "colon", "groups": {"p1": ["a", "c"], "p2": ["b", "d"]}}))
    assert read_groups(tmp_path, IDS) == {"a": "p1", "b": "p2", "c": "p1", "d": "p2"}


def test_without_a_group_file_every_image_is_its_own_group(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "old", "split_by": "image"}))  # no groups
    assert read_groups(tmp_path, IDS) == {i: i for i in IDS}
    assert read_groups(tmp_path, IDS, groups_file=None) == {i: i for i in IDS}


def test_an_image_without_a_group_or_a_malformed_file_is_named(tmp_path):
    (tmp_path / "sequences.json").write_text(json.dumps({"a": 1, "b": 1}))
    with pytest.raises(DatasetError, match=r"sequences.json: image 'c' has no group \(2 image"):
        read_groups(tmp_path, IDS)
    (tmp_path / "sequences.json").write_text(json.dumps(["a", "b"]))
    with pytest.raises(DatasetError, match="must map each id to its group"):
        read_groups(tmp_path, IDS)
    (tmp_path / "sequences.json").write_text("{")
    with pytest.raises(DatasetError, match="cannot read the groups"):
        read_groups(tmp_path, IDS)


def test_straddling_names_the_groups_in_two_splits():
    group_of = {"a": "1", "b": "1", "c": "2", "d": "3"}
    assert straddling(group_of, {"train": ["a", "c"], "test": ["b", "d"]}) == ["1"]
    assert straddling(group_of, {"train": ["a", "b"], "test": ["c", "d"]}) == []
