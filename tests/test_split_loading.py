import json

import pytest
import torch

from advaug.data.split_loading import Decoding, SplitPlan, load_every_pair, load_splits
from advaug.data.splits import SPLITS
from advaug.errors import DatasetError


def plan(**kw):
    base = dict(split={"train": 0.5, "val": 0.25, "test": 0.25}, split_seed=0, splits_file="splits.json")
    return SplitPlan(**{**base, "folds": None, "fold": None, "groups_file": None, **kw})


DECODING = Decoding(image_size=16, num_classes=2, mask_threshold=None, intensity_range=None)


def test_load_splits_cuts_every_id_once_and_decodes_each_split(phantom_root):
    ids, data = load_splits(phantom_root, plan(), DECODING)
    assert [len(ids[s]) for s in SPLITS] == [8, 4, 4]
    assert sorted(sum((ids[s] for s in SPLITS), [])) == sorted(load_every_pair(phantom_root, DECODING)[0])
    images, masks = data["val"]
    assert images.shape == (4, 3, 16, 16) and images.dtype == torch.uint8 and masks.shape == (4, 16, 16)
    assert load_splits(phantom_root, plan(), DECODING)[0] == ids  # seeded: the same cut again
    assert load_splits(phantom_root, plan(split_seed=1), DECODING)[0] != ids


def test_a_fold_plan_and_a_splits_file(phantom_root, tmp_path):
    ids, _ = load_splits(phantom_root, plan(folds=4, fold=1), DECODING)
    assert len(ids["test"]) == 4
    every = load_every_pair(phantom_root, DECODING)[0]
    fixed = {"train": every[:10], "val": every[10:13], "test": every[13:]}
    (tmp_path / "s.json").write_text(json.dumps(fixed))
    assert load_splits(phantom_root, plan(splits_file=str(tmp_path / "s.json")), DECODING)[0] == fixed
    fixed["test"] = ["no-such-id"]
    (tmp_path / "s.json").write_text(json.dumps(fixed))
    with pytest.raises(DatasetError):
        load_splits(phantom_root, plan(splits_file=str(tmp_path / "s.json")), DECODING)


def test_load_every_pair_is_in_id_order(phantom_root):
    ids, (images, masks) = load_every_pair(phantom_root, DECODING)
    assert ids == sorted(ids) and len(images) == len(masks) == len(ids) == 16
