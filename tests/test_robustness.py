"""Robustness grid: attacked scores differ from clean ones, the clean row is the test score,
grid errors name the key, and src/evaluate.py re-scores a checkpoint from a tiny run."""

import csv
import json
import shutil

import pytest
import segmentation_models_pytorch as smp
import torch
from conftest import TINY, ConstantNet, compose_config, run_entry_script
from omegaconf import OmegaConf

from advaug import attacks
from advaug.errors import ConfigError
from advaug.evaluation import evaluate_robustness, robustness_markdown, write_robustness
from advaug.evaluation.runner import evaluate_checkpoint
from advaug.metrics import segmentation_metrics, summarize
from advaug.models import SegmentationModule
from advaug.training import train


@pytest.fixture(scope="module")
def model_and_loader():
    torch.manual_seed(0)
    net = smp.create_model("Unet", encoder_name="resnet18", encoder_weights=None, classes=2,
                           decoder_channels=[32, 16, 16, 8, 8])  # fmt: skip
    model = SegmentationModule(net, num_classes=2, optimizer=torch.optim.Adam)
    g = torch.Generator().manual_seed(1)
    loader = [
        {
            "image": torch.rand(2, 3, 32, 32, generator=g),
            "mask": (torch.rand(2, 32, 32, generator=g) > 0.6).long(),
        }
        for _ in range(2)
    ]
    return model, loader


def test_grid_rows_labels_and_attack_changes_score(model_and_loader):
    model, loader = model_and_loader
    before = [p.detach().clone() for p in model.parameters()]
    model.train()
    rows = evaluate_robustness(model, loader, methods=["fgsm", "invfgsm", "pgd"], eps=[0.0012, 0.1176],
                               labels=["true", "pred"], pgd_steps=1)  # fmt: skip
    assert len(rows) == 1 + 3 * 2 * 2
    assert (rows[0]["method"], rows[0]["labels"], rows[0]["steps"]) == ("clean", "none", 0)
    cells = {(r["method"], r["eps"], r["labels"]) for r in rows[1:]}
    assert ("pgd", 0.1176, "pred") in cells and ("invfgsm", 0.0012, "true") in cells
    assert {r["steps"] for r in rows if r["method"] == "pgd"} == {1}
    assert all(r["images"] == 4 for r in rows)
    strong = {(r["method"], r["labels"]): r for r in rows if r["eps"] == 0.1176}
    # the attack is not a silent no-op: scores and predictions move away from the clean ones
    assert strong[("fgsm", "true")]["miou"] != rows[0]["miou"]
    assert strong[("fgsm", "true")]["zero_grad_fraction"] < 0.5
    assert strong[("fgsm", "true")]["delta_miou"] == pytest.approx(
        strong[("fgsm", "true")]["miou"] - rows[0]["miou"]
    )
    # the model is left as it was: same weights, same train/eval flag
    assert model.training
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_clean_row_uses_training_metrics(model_and_loader):
    model, loader = model_and_loader
    rows = evaluate_robustness(model, loader, methods=[], eps=[], labels=[])
    assert len(rows) == 1
    metrics = segmentation_metrics(2)
    model.eval()
    with torch.no_grad():
        for b in loader:
            metrics.update(model(b["image"]).argmax(1), b["mask"])
    expected = summarize(metrics.compute())
    for key in ("miou", "iou_fg", "dice", "miou_img"):
        assert rows[0][key] == pytest.approx(float(expected[key]), abs=1e-6)


def test_works_inside_inference_mode_and_respects_max_batches(model_and_loader):
    model, loader = model_and_loader
    with torch.inference_mode():  # as inside a Lightning evaluation loop
        rows = evaluate_robustness(
            model, loader, methods=["fgsm"], eps=[0.1176], labels=[True], max_batches=1
        )
    assert rows[1]["labels"] == "true" and rows[1]["images"] == 2
    assert rows[1]["miou"] != rows[0]["miou"]


def test_pred_labels_inside_inference_mode(model_and_loader):
    # the predicted labels are then inference tensors: the attack must still take its gradient
    model, loader = model_and_loader
    outside = evaluate_robustness(
        model, loader, methods=["fgsm"], eps=[0.1176], labels=["pred"], max_batches=1
    )
    with torch.inference_mode():
        inside = evaluate_robustness(
            model, loader, methods=["fgsm"], eps=[0.1176], labels=["pred"], max_batches=1
        )
    assert inside[1]["labels"] == "pred"
    assert inside[1]["miou"] == pytest.approx(outside[1]["miou"], abs=1e-6)


@pytest.mark.parametrize(
    "kw,key",
    [
        ({"methods": ["fgsm", "deepfool"]}, "robustness.methods"),
        ({"labels": ["gt"]}, "robustness.labels"),
        ({"eps": [0.1, 2.0]}, "robustness.eps"),
        ({"methods": ["pgd"], "pgd_steps": 0}, "robustness.pgd_steps"),
    ],
)
def test_bad_grid_is_one_clear_error(model_and_loader, kw, key):
    model, loader = model_and_loader
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        evaluate_robustness(model, loader, **kw)


def test_write_robustness_json_and_markdown(model_and_loader, tmp_path):
    model, loader = model_and_loader
    rows = evaluate_robustness(model, loader, methods=["pgd"], eps=[0.0118], labels=["pred"], pgd_steps=2)
    write_robustness(tmp_path, rows, {"dataset": "toy", "aug": "none"})
    data = json.loads((tmp_path / "robustness.json").read_text())
    assert data["meta"] == {"dataset": "toy", "aug": "none"} and data["rows"] == rows
    md = (tmp_path / "robustness.md").read_text().splitlines()
    assert md[0] == "# Robustness toy / none"
    assert md[4].startswith("| clean | none | 0 |") and md[5].startswith("| pgd-2 | pred | 0.0118 |")
    assert not list(tmp_path.glob(".*.tmp"))


# -- integration: the step at the end of train(cfg), and src/evaluate.py on its checkpoint ------------
GRID = ["robustness.methods=[fgsm,pgd]", "robustness.eps=[0.1176]", "robustness.labels=[true,pred]",
        "robustness.pgd_steps=2", "robustness.figure.num_images=2"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("robust")
    cfg = compose_config([f"paths.data_dir={tmp / 'data'}", *TINY, "trainer.max_epochs=1", *GRID], tmp)
    yield train(cfg), tmp / "run"
    # a module fixture's folder is kept whatever the outcome (tmp_path_retention_policy covers
    # tmp_path only): drop the ~175 MB of checkpoints, keep the small outputs for a look
    shutil.rmtree(tmp / "run" / "checkpoints", ignore_errors=True)


def test_training_run_writes_robustness_of_best_checkpoint(tiny_run):
    metrics, run = tiny_run
    data = json.loads((run / "robustness.json").read_text())
    assert data["meta"]["source"] == "train" and data["meta"]["aug"] == "none"
    assert data["meta"]["ckpt_path"] == metrics["best_model_path"]
    rows = data["rows"]
    assert len(rows) == 1 + 2 * 1 * 2 and rows[0]["images"] == metrics["splits"]["test"]
    # the clean row is the test score of the same (best) checkpoint on the same split
    assert rows[0]["miou"] == pytest.approx(metrics["test"]["test/miou"], abs=1e-5)
    assert rows[0]["dice"] == pytest.approx(metrics["test"]["test/dice"], abs=1e-5)
    assert any(abs(r["delta_miou"]) > 1e-4 for r in rows[1:])
    assert (run / "robustness.md").is_file() and (run / "figures" / "samples.png").stat().st_size > 1000
    # one row per test image and cell, the clean rows matching per_image.csv (same checkpoint)
    with open(run / "robustness_per_image.csv") as f:
        cells = list(csv.DictReader(f))
    assert len(cells) == len(rows) * metrics["splits"]["test"]
    with open(run / "per_image.csv") as f:
        test = {r["id"]: r for r in csv.DictReader(f)}
    clean = [r for r in cells if r["attack"] == "clean"]
    assert {r["id"] for r in clean} == set(test)
    for r in clean:
        assert float(r["miou"]) == pytest.approx(float(test[r["id"]]["miou"]), abs=1e-5)
    assert {(r["attack"], r["labels"], float(r["eps"])) for r in cells} == {
        (x["attack"], x["labels"], x["eps"]) for x in rows
    }


def run_evaluate(args, cwd):
    return run_entry_script("evaluate.py", args, cwd)


def test_evaluate_script_rescoring_a_checkpoint(tiny_run, tmp_path):
    metrics, run = tiny_run
    out = tmp_path / "eval"
    proc = run_evaluate([f"ckpt_path={metrics['best_model_path']}", f"hydra.run.dir={out}", *GRID], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((out / "robustness.json").read_text())
    assert data["meta"]["source"] == "evaluate" and data["meta"]["dataset"] == "synthetic"
    assert data["rows"][0]["miou"] == pytest.approx(metrics["test"]["test/miou"], abs=1e-5)
    assert (out / "robustness.md").is_file() and (out / "figures" / "samples.png").is_file()
    with open(out / "robustness_per_image.csv") as f:  # another scored dataset: its images too
        cells = list(csv.DictReader(f))
    assert len(cells) == len(data["rows"]) * metrics["splits"]["test"]


def test_evaluate_with_dataset_override(tiny_run, tmp_path):
    metrics, run = tiny_run
    overrides = [o for o in TINY if o.startswith(("dataset.", "batch_size"))]
    cfg = compose_config(
        [f"ckpt_path={metrics['best_model_path']}", "dataset=synthetic", f"paths.data_dir={tmp_path / 'd'}",
         *overrides, "dataset.generator.seed=5", "robustness.methods=[fgsm]", "robustness.figure.num_images=0"],
        tmp_path, config_name="evaluate",
    )  # fmt: skip
    rows = evaluate_checkpoint(cfg)
    assert [r["method"] for r in rows] == ["clean"] + ["fgsm"] * 6
    assert (tmp_path / "d" / "synthetic").is_dir()  # the overriding dataset was used, not the run's
    assert rows[0]["miou"] != pytest.approx(metrics["test"]["test/miou"], abs=1e-6)


def test_evaluate_missing_checkpoint_is_one_line_error(tmp_path):
    proc = run_evaluate([f"ckpt_path={tmp_path / 'nope.ckpt'}", f"hydra.run.dir={tmp_path / 'e'}"], tmp_path)
    assert proc.returncode == 2
    assert "nope.ckpt: no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_repeated_grid_values_give_one_row_each(model_and_loader):
    model, loader = model_and_loader
    rows = evaluate_robustness(
        model, loader, methods=["fgsm", "fgsm"], eps=[0.1176, 0.1176], labels=[True, "true"], max_batches=1
    )
    assert [(r["method"], r["labels"]) for r in rows] == [("clean", "none"), ("fgsm", "true")]
    assert rows[1]["images"] == rows[0]["images"] == 2  # each batch counted once
    with pytest.raises(ConfigError, match="robustness.max_batches"):
        evaluate_robustness(model, loader, methods=["fgsm"], eps=[0.1], labels=["true"], max_batches=0)


def test_evaluate_checks_the_test_split_against_the_run(tiny_run, tmp_path, caplog):
    # a seeded split changes when files are added to the folder: evaluate.py must not score a
    # "test" split holding images the checkpoint was trained on without saying so
    import shutil

    metrics, run = tiny_run
    recorded = json.loads((run / "splits.json").read_text())
    grid = ["robustness.methods=[fgsm]", "robustness.eps=[0.01]", "robustness.labels=[pred]",
            "robustness.figure.num_images=0"]  # fmt: skip
    cfg = compose_config([f"ckpt_path={metrics['best_model_path']}", *grid], tmp_path / "same", "evaluate")
    evaluate_checkpoint(cfg)
    meta = json.loads((tmp_path / "same" / "run" / "robustness.json").read_text())["meta"]
    assert meta["test_split"] == {"matches_run": True, "images": len(recorded["test"]), "trained_on": 0}

    copy = tmp_path / "copy"
    (copy / "checkpoints").mkdir(parents=True)
    shutil.copy(run / "config_resolved.yaml", copy)
    shutil.copy(metrics["best_model_path"], copy / "checkpoints" / "best.ckpt")
    moved = recorded["test"][0]  # as if this test image had been a training image of the run
    recorded["train"], recorded["test"] = recorded["train"] + [moved], recorded["test"][1:]
    (copy / "splits.json").write_text(json.dumps(recorded))
    cfg = compose_config(
        [f"ckpt_path={copy / 'checkpoints' / 'best.ckpt'}", *grid], tmp_path / "moved", "evaluate"
    )
    with caplog.at_level("WARNING"):
        evaluate_checkpoint(cfg)
    meta = json.loads((tmp_path / "moved" / "run" / "robustness.json").read_text())["meta"]
    assert meta["test_split"] == {"matches_run": False, "images": len(recorded["test"]) + 1, "trained_on": 1}
    assert (
        f"1 of its {len(recorded['test']) + 1} images ('{moved}') were in the run's train split or val split"
        in caplog.text
    )


@pytest.mark.parametrize("method,labels", [("fgsm", "pred"), ("fgsm", "true"), ("pgd", "pred")])
def test_cell_is_the_attack_with_its_labels_scored_against_the_true_mask(model_and_loader, method, labels):
    # the cell attacks with the mask it names (the clean prediction for `pred`), with the PGD
    # steps and the seeded random start asked for, and is always scored against the true mask
    model, loader = model_and_loader
    model.eval()
    batch = loader[0]
    x, y = batch["image"], batch["mask"]
    target = attacks.predicted_labels(model, x) if labels == "pred" else y
    adv = attacks.perturb(
        model, x, target, 0.1176, method, steps=3, generator=torch.Generator().manual_seed(7)
    )
    expected = segmentation_metrics(2)
    with torch.no_grad():
        expected.update(model(adv.images).argmax(1), y)
    expected = summarize(expected.compute())
    rows = evaluate_robustness(
        model, loader, methods=[method], eps=[0.1176], labels=[labels], pgd_steps=3, max_batches=1, seed=7
    )
    for key in ("miou", "iou_fg", "dice"):
        assert rows[1][key] == pytest.approx(float(expected[key]), abs=1e-6), key
    assert rows[1]["steps"] == (3 if method == "pgd" else 1)
    assert rows[1]["attack"] == ("pgd-3" if method == "pgd" else "fgsm")


def test_zero_gradient_share_is_a_mean_over_batches_and_shown_in_percent(model_and_loader, tmp_path):
    _, loader = model_and_loader
    rows = evaluate_robustness(ConstantNet(), loader, methods=["fgsm"], eps=[0.1], labels=["true"])
    assert rows[0]["zero_grad_fraction"] is None and rows[0]["images"] == 4
    assert rows[1]["zero_grad_fraction"] == 1.0  # 2 batches, each entirely zero
    assert rows[1]["delta_miou"] == 0.0  # nothing moved
    write_robustness(tmp_path, rows, {"dataset": "toy"})
    md = (tmp_path / "robustness.md").read_text().splitlines()
    assert md[4].endswith("| +0.0000 |  |") and md[5].endswith("| +0.0000 | 100.0% |")


def test_markdown_has_an_iou_column_per_foreground_class():
    row = {"attack": "clean", "labels": "none", "eps": 0.0, "miou": 0.5, "iou_fg": 0.4, "dice": 0.6,
           "miou_img": 0.5, "iou_c1": 0.25, "iou_c2": 0.75, "dice_c1": 0.3, "dice_c2": 0.9,
           "delta_miou": 0.0, "zero_grad_fraction": None, "images": 3}  # fmt: skip
    md = robustness_markdown([row]).splitlines()
    assert md[2].split(" | ")[-4:-2] == ["IoU c1", "IoU c2"]
    assert md[4].split(" | ")[-4:-2] == ["0.2500", "0.7500"]


def _offline_create_model(original):
    """segmentation_models_pytorch.create_model as on a machine without internet."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    def create_model(*args, encoder_weights=None, **kwargs):
        if encoder_weights is not None:
            try:
                raise ConnectionError("[Errno -2] Name or service not known")
            except ConnectionError as exc:
                raise LocalEntryNotFoundError("cannot find the requested files in the local cache") from exc
        return original(*args, encoder_weights=None, **kwargs)

    return create_model


def test_evaluate_needs_no_download_for_a_pretrained_run(tiny_run, tmp_path, monkeypatch):
    # a model trained online from imagenet weights: the checkpoint replaces them, so evaluating it
    # offline must not try to fetch them
    metrics, run = tiny_run
    copy = tmp_path / "copy"
    (copy / "checkpoints").mkdir(parents=True)
    stored = OmegaConf.load(run / "config_resolved.yaml")
    stored.model.net.encoder_weights = "imagenet"
    OmegaConf.save(stored, copy / "config_resolved.yaml")
    shutil.copy(metrics["best_model_path"], copy / "checkpoints" / "best.ckpt")
    monkeypatch.setattr(smp, "create_model", _offline_create_model(smp.create_model))
    grid = ["robustness.methods=[fgsm]", "robustness.eps=[0.01]", "robustness.labels=[pred]",
            "robustness.figure.num_images=0"]  # fmt: skip
    cfg = compose_config([f"ckpt_path={copy / 'checkpoints' / 'best.ckpt'}", *grid], tmp_path, "evaluate")
    rows = evaluate_checkpoint(cfg)
    assert rows[0]["miou"] == pytest.approx(metrics["test"]["test/miou"], abs=1e-5)


def test_training_offline_with_pretrained_weights_is_one_config_error(tmp_path, tiny_overrides, monkeypatch):
    from advaug.training import build

    monkeypatch.setattr(smp, "create_model", _offline_create_model(smp.create_model))
    cfg = compose_config([*tiny_overrides, "model.net.encoder_weights=imagenet"], tmp_path)
    with pytest.raises(
        ConfigError, match=r"encoder_weights=imagenet: .* could not be downloaded .*encoder_weights=null"
    ):
        build(cfg)
    monkeypatch.setattr(smp, "create_model", lambda *a, **k: (_ for _ in ()).throw(ValueError("other")))
    with pytest.raises(Exception, match="other") as exc:  # any other error is not disguised as offline
        build(cfg)
    assert not isinstance(exc.value, ConfigError)
