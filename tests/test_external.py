"""External scoring (``eval_datasets``): the best checkpoint scored on other datasets after training,
and the mismatches refused before training."""

import csv
import json

import pytest
from conftest import CVC, compose_config, link_cvc_frames

from advaug.errors import ConfigError
from advaug.evaluation.external import external_sets
from advaug.metric_keys import PER_IMAGE_FIELDS
from advaug.training import train

needs_cvc = pytest.mark.skipif(not CVC.is_dir(), reason="needs ../shared/datasets/cvc-clinicdb")
FRAMES = ["cvc_001", "cvc_002", "cvc_030", "cvc_200", "cvc_500", "cvc_612"]


@pytest.fixture
def cvc_subset(tmp_path):
    """A handful of real CVC-ClinicDB frames, symlinked (nothing copied), with the video groups."""
    return link_cvc_frames(tmp_path / "cvc", FRAMES)


@needs_cvc
def test_a_run_scores_its_best_checkpoint_on_an_external_dataset(tmp_path, tiny_overrides, cvc_subset):
    entry = f"eval_datasets=[{{dataset: cvc_clinicdb, root: {cvc_subset}}}]"
    cfg = compose_config(
        [*tiny_overrides, "trainer.max_epochs=1", "robustness.enabled=false", entry], tmp_path
    )
    metrics = train(cfg)
    out = tmp_path / "run"
    written = json.loads((out / "metrics.json").read_text())
    ext = written["external"]["cvc_clinicdb"]
    assert ext == metrics["external"]["cvc_clinicdb"]
    assert (ext["dataset"], ext["split"], ext["images"], ext["root"]) == (
        "cvc_clinicdb",
        "all",
        6,
        str(cvc_subset),
    )
    assert set(ext["test"]) >= {"test/miou", "test/iou_fg", "test/dice", "test/miou_img"}
    assert 0 <= ext["test"]["test/miou"] <= 1
    with open(out / "external" / "cvc_clinicdb" / "per_image.csv") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == list(PER_IMAGE_FIELDS)  # the test split's per_image.csv format
    assert [r["id"] for r in rows] == FRAMES
    assert all(int(r["mask_pixels"]) > 0 for r in rows)  # every CVC frame shows a polyp (at 32x32 too)
    assert (out / "per_image.csv").is_file() and "test/miou" in written["test"]  # the run's own test split


@needs_cvc
def test_an_external_set_can_get_the_robustness_grid_on_its_whole_folder(
    tmp_path, tiny_overrides, cvc_subset
):
    entry = f"eval_datasets=[{{dataset: cvc_clinicdb, root: {cvc_subset}, robustness: true, name: cvc}}]"
    grid = ["robustness.enabled=false", "robustness.methods=[fgsm]", "robustness.eps=[0.01]",
            "robustness.labels=[pred]", "robustness.figure.num_images=0"]  # fmt: skip
    cfg = compose_config([*tiny_overrides, "trainer.max_epochs=1", *grid, entry], tmp_path)
    train(cfg)
    folder = tmp_path / "run" / "external" / "cvc"
    robustness = json.loads((folder / "robustness.json").read_text())
    assert [r["method"] for r in robustness["rows"]] == ["clean", "fgsm"]
    assert robustness["meta"]["split"] == "all" and robustness["meta"]["dataset"] == "cvc_clinicdb"
    assert robustness["rows"][0]["images"] == 6
    assert (folder / "robustness_per_image.csv").is_file() and (folder / "per_image.csv").is_file()
    assert not (tmp_path / "run" / "robustness.json").exists()  # the run's own grid stays off


def test_entries_default_to_the_whole_folder_and_read_at_the_training_size(tmp_path, tiny_overrides):
    items = "eval_datasets=[cvc_clinicdb,{dataset: cvc_clinicdb, split: test}]"
    sets = external_sets(compose_config([*tiny_overrides, items], tmp_path))
    assert [(s.name, s.split, s.dataset) for s in sets] == [
        ("cvc_clinicdb", "all", "cvc_clinicdb"), ("cvc_clinicdb_test", "test", "cvc_clinicdb")
    ]  # fmt: skip
    node = sets[0].node
    assert node.image_size == 32 and node.mask_threshold == 128 and node.transform is None
    assert node.root.endswith("shared/datasets/cvc-clinicdb") and node.batch_size == 4


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ("[nosuch]", r"eval_datasets\[0\]=nosuch: no dataset config conf/dataset/nosuch.yaml"),
        ("[{dataset: cvc_clinicdb, split: holdout}]", r"eval_datasets\[0\]\.split=holdout: choose one of"),
        ("[cvc_clinicdb,cvc_clinicdb]", r"eval_datasets\[1\]: a second entry named 'cvc_clinicdb'"),
        ("[{dataset: cvc_clinicdb, image_size: 64}]", r"cvc_clinicdb asks for image_size=64 .* synthetic at "
         r"dataset.image_size=32"),
        ("[{dataset: folder, root: /no/such/folder}]", r"eval_datasets\[0\]: dataset folder: folder /no/such/folder "
         "does not exist"),
    ],
)  # fmt: skip
def test_bad_entries_stop_the_run_before_training(tmp_path, tiny_overrides, items, message):
    cfg = compose_config([*tiny_overrides, f"eval_datasets={items}"], tmp_path)
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()  # nothing built or written


def test_a_class_count_mismatch_names_both_datasets_before_training(tmp_path, tiny_overrides):
    cfg = compose_config([*tiny_overrides, "dataset.num_classes=3", "eval_datasets=[cvc_clinicdb]"], tmp_path)
    with pytest.raises(ConfigError) as caught:
        train(cfg)
    message = str(caught.value)
    assert message.startswith("eval_datasets[0]: dataset cvc_clinicdb has num_classes=2 but the model trains on "
                              "dataset synthetic with dataset.num_classes=3")  # fmt: skip
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()
