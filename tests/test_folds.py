"""k-fold cross-validation grouped by patient or video: folds partition the set, no group
straddles folds or train/val, every id is test exactly once, seeded by the split seed only."""

import json

import pytest
from conftest import SHARED, compose_config
from hydra.utils import instantiate

from advaug.data.folds import assign_folds, fold_split
from advaug.errors import ConfigError, DatasetError
from advaug.rules import check_folds

RATIOS = {"train": 0.7, "val": 0.15, "test": 0.15}
# 40 images in 12 groups of uneven size (videos of 1 to 6 frames)
SIZES = [6, 5, 5, 4, 4, 4, 3, 3, 2, 2, 1, 1]
GROUP_OF = {f"v{g:02d}_f{k}": f"v{g:02d}" for g, n in enumerate(SIZES) for k in range(n)}


def groups_in(ids):
    return {GROUP_OF[i] for i in ids}


@pytest.mark.parametrize("folds", [2, 3, 5])
def test_folds_partition_the_set_and_keep_each_group_whole(folds):
    dealt = assign_folds(GROUP_OF, folds, seed=0)
    assert sorted(i for ids in dealt for i in ids) == sorted(GROUP_OF)  # a partition: every id once
    for a in range(folds):
        for b in range(a + 1, folds):
            assert not groups_in(dealt[a]) & groups_in(dealt[b])
    sizes = [len(ids) for ids in dealt]
    assert max(sizes) - min(sizes) <= max(SIZES)  # balanced up to one group


def test_single_images_give_folds_that_differ_by_at_most_one():
    group_of = {f"img{i:02d}": f"img{i:02d}" for i in range(23)}
    assert sorted(len(ids) for ids in assign_folds(group_of, 5, seed=3)) == [4, 4, 5, 5, 5]


@pytest.mark.parametrize("folds", [3, 5])
def test_every_id_is_test_exactly_once_and_no_group_straddles_train_val_test(folds):
    tested = []
    for fold in range(folds):
        split = fold_split(GROUP_OF, folds, fold, RATIOS, seed=7)
        assert sorted(split["train"] + split["val"] + split["test"]) == sorted(GROUP_OF)
        train, val, test = (groups_in(split[s]) for s in ("train", "val", "test"))
        assert not (train & val or train & test or val & test)
        assert split["train"] and split["val"] and split["test"]
        tested += split["test"]
    assert sorted(tested) == sorted(GROUP_OF)  # each image test once over the K folds


def test_validation_takes_about_its_share_of_the_training_folds():
    group_of = {f"i{k:03d}": f"i{k:03d}" for k in range(100)}
    split = fold_split(group_of, 5, 0, {"train": 0.8, "val": 0.2, "test": 0.0}, seed=0)
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (64, 16, 20)


def test_the_assignment_follows_the_split_seed_only(tmp_path, phantom_root):
    base = [f"dataset.root={phantom_root}", "dataset.generator=null", "dataset.folds=4", "dataset.fold=1"]
    splits = {}
    for seed, split_seed in [(0, 0), (1, 0), (99, 0), (0, 5)]:
        cfg = compose_config([*base, f"seed={seed}", f"dataset.split_seed={split_seed}"], tmp_path)
        dm = instantiate(cfg.dataset, seed=cfg.seed)  # as training.build makes it
        dm.setup("fit")
        splits[(seed, split_seed)] = dm.ids
    assert splits[(0, 0)] == splits[(1, 0)] == splits[(99, 0)]  # every training seed: the same folds
    assert splits[(0, 5)]["test"] != splits[(0, 0)]["test"]  # another split seed: other folds
    assert len(splits[(0, 0)]["test"]) == 4  # 16 phantoms in 4 folds


def test_a_datamodule_fold_ignores_splits_json_and_groups_by_sequences_json(tmp_path, phantom_root):
    root = tmp_path / "grouped"
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
        for f in sorted((phantom_root / sub).iterdir()):
            (root / sub / f.name).symlink_to(f)
    ids = sorted(f.stem for f in (root / "images").iterdir())
    videos = {i: k // 4 for k, i in enumerate(ids)}  # 4 videos of 4 frames
    (root / "sequences.json").write_text(json.dumps(videos))
    (root / "splits.json").write_text(json.dumps({"train": ids[:10], "val": ids[10:13], "test": ids[13:]}))
    tested = []
    for fold in range(4):
        cfg = compose_config(
            [f"dataset.root={root}", "dataset.generator=null", "dataset.folds=4", f"dataset.fold={fold}"], tmp_path
        )
        dm = instantiate(cfg.dataset)
        dm.setup("fit")
        test = dm.ids["test"]
        assert len({videos[i] for i in test}) == 1 and len(test) == 4  # one whole video per fold
        assert not {videos[i] for i in dm.ids["train"]} & {videos[i] for i in dm.ids["val"]}
        tested += test
    assert sorted(tested) == ids
    # without folds: splits.json as before
    cfg = compose_config([f"dataset.root={root}", "dataset.generator=null"], tmp_path)
    dm = instantiate(cfg.dataset)
    dm.setup("fit")
    assert dm.ids["test"] == ids[13:]
    # and a seeded split (no splits.json) keeps each video in one split
    (root / "splits.json").unlink()
    dm = instantiate(cfg.dataset)
    dm.setup("fit")
    assert sorted(len({videos[i] for i in dm.ids[s]}) for s in ("train", "val", "test")) == [1, 1, 2]
    assert not {videos[i] for i in dm.ids["train"]} & {videos[i] for i in dm.ids["test"]}


@pytest.mark.skipif(not (SHARED / "cvc-clinicdb").is_dir(), reason="needs ../shared/datasets/cvc-clinicdb")
def test_cvc_clinicdb_folds_keep_each_video_in_one_fold():
    cvc = SHARED / "cvc-clinicdb"
    videos = {k: str(v) for k, v in json.loads((cvc / "sequences.json").read_text()).items()}
    dealt = assign_folds(videos, 5, seed=0)
    assert sorted(i for ids in dealt for i in ids) == sorted(videos) and len(videos) == 612
    seen = [{videos[i] for i in ids} for ids in dealt]
    assert sum(len(s) for s in seen) == 29  # each of the 29 videos in exactly one fold
    assert max(map(len, dealt)) - min(map(len, dealt)) <= 25  # balanced to about a video


def test_too_few_groups_and_bad_fold_values_are_refused():
    with pytest.raises(DatasetError, match="only 12 group"):
        assign_folds(GROUP_OF, 13, seed=0)
    with pytest.raises(DatasetError, match="leaves 1 group"):
        fold_split({"a": "x", "b": "x", "c": "y", "d": "y"}, 2, 0, RATIOS, seed=0)
    for folds, fold in [(5, 5), (1, 0), (5, None), (None, 0), (5, -1), (2.5, 0)]:
        with pytest.raises(ConfigError, match="dataset.folds=.* needs dataset.folds >= 2"):
            check_folds(folds, fold)
    check_folds(None, None)
    check_folds(5, 4)


def test_the_config_check_refuses_a_fold_out_of_range_before_anything_is_built(tmp_path, tiny_overrides):
    from advaug.training import train

    cfg = compose_config([*tiny_overrides, "dataset.folds=5", "dataset.fold=5"], tmp_path)
    with pytest.raises(ConfigError, match=r"dataset.folds=5 dataset.fold=5"):
        train(cfg)
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()
