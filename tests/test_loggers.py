"""W&B offline (names, config, history, figures, modes) and the CSV metrics across a resume
(advaug/loggers.py)."""

from __future__ import annotations

import csv
import os

import pytest
import wandb
from conftest import compose_config
from omegaconf import OmegaConf

from advaug.errors import ConfigError
from advaug.training import train

# -- W&B ---------------------------------------------------------------------------------------


def test_wandb_names_follow_the_sweep(tmp_path):
    cfg = compose_config(
        ["logger=wandb", "aug=invfgsm", "aug.eps=0.05", "seed=3", "task_name=paper"], tmp_path
    )
    logger = cfg.logger.wandb
    assert (logger.name, logger.group, logger.offline) == ("invfgsm-synthetic-eps0.05-seed3", "paper", True)
    assert "csv" in cfg.logger  # W&B comes on top of the CSV log, not instead


def test_wandb_offline_run_has_config_history_and_figures(tmp_path, tiny_overrides, monkeypatch):
    secret = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_API_KEY", secret)
    monkeypatch.setenv("WANDB_SILENT", "true")
    overrides = [
        *tiny_overrides,
        "logger=wandb",
        "trainer.max_epochs=1",
        "robustness.methods=[fgsm]",
        "robustness.eps=[0.01]",
        "robustness.max_batches=1",
    ]
    cfg = compose_config(overrides, tmp_path)
    metrics = train(cfg)
    wandb.teardown()  # waits for the wandb-core service to flush the event log (as at process exit)
    out = tmp_path / "run"
    assert (out / "figures" / "samples.png").is_file()
    (run_dir,) = list((out / "wandb").glob("offline-run-*"))
    # wandb >= 0.19 keeps config, history and summary in the run's event log (what `wandb sync`
    # uploads) rather than in files/*.yaml|json when offline: look for them there
    (events,) = list(run_dir.glob("run-*.wandb"))
    log = events.read_bytes()
    for expected in (
        "decoder_channels",
        "none-synthetic-eps0-seed1234",
        "val/miou",
        "test/miou",
        "best_val_miou",
    ):
        assert expected.encode() in log, expected
    assert list((run_dir / "files" / "media" / "images" / "figures").glob("samples_*.png"))
    assert metrics["test"]["test/miou"] >= 0
    assert (out / "csv" / "hparams.yaml").is_file()
    for path in out.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_wandb_run_stores_each_adversarial_figure_once(tmp_path, tiny_overrides, monkeypatch):
    # the callback logs adv_epochNNN.png at its step (adv/samples); the end of the run logged every
    # figures/*.png again under figures/, so the offline run held (and uploaded) each one twice
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    overrides = [*tiny_overrides, "logger=wandb", "aug=fgsm", "trainer.max_epochs=1", "test=false"]
    train(compose_config([*overrides, "robustness.enabled=false"], tmp_path))
    wandb.teardown()
    out = tmp_path / "run"
    drawn = sorted(p.name for p in (out / "figures").glob("adv_epoch*.png"))
    assert drawn == ["adv_epoch000.png"]
    (run_dir,) = list((out / "wandb").glob("offline-run-*"))
    media = run_dir / "files" / "media" / "images"
    assert len(list((media / "adv").glob("samples_*.png"))) == 1  # one per pool, at its step
    assert not list(media.glob("figures/adv_epoch*.png"))  # not a second copy at the end
    # and the pool's attacked samples as W&B images with the mask and the prediction as layers
    shots = list((media / "adv").glob("overlays_*.png"))
    assert 1 <= len(shots) <= 4  # aug.figure_samples (4), fewer distinct files where two are equal
    assert list((media / "mask" / "adv").glob("overlays_*.mask.png"))


def _wandb_logger(tmp_path, **kwargs):
    from advaug.loggers import WandbLogger

    return WandbLogger(project="advaug-test", save_dir=str(tmp_path), **kwargs)


def test_wandb_mode_disabled_is_honoured_and_writes_no_run(tmp_path, monkeypatch):
    # Lightning's offline=True (the config default) set WANDB_MODE=dryrun over the user's value
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = _wandb_logger(tmp_path, offline=True)
    logger.experiment.log({"x": 1.0})
    wandb.finish()
    assert os.environ["WANDB_MODE"] == "disabled"
    assert not list(tmp_path.rglob("offline-run-*")) and not list(tmp_path.rglob("run-*"))


def test_wandb_offline_from_the_config_leaves_wandb_mode_unset(tmp_path, monkeypatch):
    # WANDB_MODE unset: logger.wandb.offline decides, without leaking into the environment (a
    # later job of the same sweep process would take it for the user's WANDB_MODE)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = _wandb_logger(tmp_path, offline=True)
    logger.experiment.log({"x": 1.0})
    wandb.finish()
    assert "WANDB_MODE" not in os.environ
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 1


@pytest.mark.parametrize("env_mode", [None, "offline"])
def test_wandb_log_model_offline_is_one_config_error(tmp_path, monkeypatch, env_mode):
    from hydra.utils import instantiate

    from advaug.run.entry import user_error

    if env_mode:
        monkeypatch.setenv("WANDB_MODE", env_mode)
    else:
        monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = compose_config(["logger=wandb", "logger.wandb.log_model=true"], tmp_path)
    with pytest.raises(Exception) as exc:
        instantiate(cfg.logger.wandb)
    found = user_error(exc.value)  # what src/train.py prints as its one line
    assert isinstance(found, ConfigError), exc.value
    setting = f"WANDB_MODE={env_mode}" if env_mode else "logger.wandb.offline=true"
    assert "logger.wandb.log_model=True" in str(found) and setting in str(found)
    assert "WANDB_OFFLINE=false" in str(found) and "WANDB_MODE=online" in str(found)
    assert not (tmp_path / "run" / "wandb").exists()


def test_csv_metrics_survive_a_resume_in_the_same_folder(tmp_path):
    # Lightning's writer deletes metrics.csv when its folder is not empty: a run resumed in place
    # lost every row logged before the interruption
    from advaug.loggers import CSVLogger

    first = CSVLogger(save_dir=str(tmp_path), name="csv", version="")
    first.log_metrics({"val/miou": 0.5}, step=0)
    first.log_metrics({"train/loss_step": 0.9}, step=4)
    first.save()
    again = CSVLogger(save_dir=str(tmp_path), name="csv", version="")
    again.log_metrics({"train/loss_step": 0.8}, step=9)
    again.log_metrics({"val/dice": 0.3}, step=9)  # a key the file has no column for yet
    again.save()
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["0", "4", "9", "9"]
    assert (
        rows[0]["val/miou"] == "0.5" and rows[2]["train/loss_step"] == "0.8" and rows[3]["val/dice"] == "0.3"
    )


# -- TensorBoard, the config tree, W&B overlays and tables (issue 26) ---------------------------


def test_tensorboard_logger_writes_event_files(tmp_path, tiny_overrides):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = compose_config([*tiny_overrides, "logger=tensorboard", "trainer.max_epochs=1",
                          "robustness.enabled=false", "trainer.log_every_n_steps=1"], tmp_path)  # fmt: skip
    train(cfg)
    folder = tmp_path / "run" / "tensorboard"
    assert list(folder.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(folder))
    events.Reload()
    assert {"val/miou", "train/loss_step", "test/miou"} <= set(events.Tags()["scalars"])
    assert (tmp_path / "run" / "csv" / "metrics.csv").is_file()  # on top of the CSV log


def test_the_config_tree_prints_every_group(tmp_path):
    import io

    from advaug.utils.config_tree import print_config_tree

    cfg = compose_config(["aug=invfgsm", "model.net.encoder_name=resnet34"], tmp_path)
    cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    out = io.StringIO()
    print_config_tree(cfg, file=out)
    text = out.getvalue()
    lines = text.splitlines()
    assert lines[0] == "config"
    for group in ("dataset", "model", "aug", "trainer", "logger"):
        assert any(line.endswith(f"── {group}") for line in lines), group
    assert "encoder_name: 'resnet34'" in text and "name: 'invfgsm'" in text and "seed: 1234" in text
    # the groups come first, in FIRST's order
    top = [line[4:].split(":")[0] for line in lines if line[:4] in ("├── ", "└── ")]
    assert top[:9] == ["dataset", "model", "optim", "aug", "base", "trainer", "logger", "callbacks", "robustness"]
    assert "seed" in top[9:] and "paths" in top[9:]


def test_a_run_prints_its_config_tree(tmp_path, tiny_overrides, capsys):
    train(compose_config([*tiny_overrides, "trainer.max_epochs=1", "robustness.enabled=false", "test=false"],
                         tmp_path))  # fmt: skip
    printed = capsys.readouterr().out
    assert printed.startswith("config\n") and "decoder_channels: [16, 8, 8]" in printed
    assert (tmp_path / "run" / "config_resolved.yaml").is_file()


def test_wandb_gets_mask_overlays_and_the_robustness_table(tmp_path, tiny_overrides, monkeypatch):
    import json

    wandb.teardown()  # wandb's process-wide settings of an earlier test would outlive its WANDB_MODE
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    overrides = [*tiny_overrides, "logger=wandb", "trainer.max_epochs=1", "robustness.methods=[fgsm]",
                 "robustness.eps=[0.01]", "robustness.labels=[true]", "robustness.max_batches=1",
                 "robustness.figure.num_images=2"]  # fmt: skip
    train(compose_config(overrides, tmp_path))
    wandb.teardown()
    (run_dir,) = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    media = run_dir / "files" / "media"
    (table,) = list((media / "table" / "robustness").glob("grid_*.table.json"))
    grid = json.loads(table.read_text())
    assert {"attack", "eps", "labels", "miou", "dice"} <= set(grid["columns"])
    attack = grid["columns"].index("attack")
    assert [row[attack] for row in grid["data"]] == ["clean", "fgsm"]
    robustness = json.loads((tmp_path / "run" / "robustness.json").read_text())
    miou = grid["columns"].index("miou")
    assert [row[miou] for row in grid["data"]] == [r["miou"] for r in robustness["rows"]]
    for key in ("clean", "adversarial"):
        assert len(list((media / "images" / "samples").glob(f"{key}_*.png"))) == 2, key
    # the mask layers (ground truth, prediction) are PNGs of their own, named by content: up to
    # 2 images x 2 layers per key, fewer where two layers are the same map (an empty prediction)
    for key in ("clean", "adversarial"):
        layers = list((media / "images" / "mask" / "samples").glob(f"{key}_*.mask.png"))
        assert 1 <= len(layers) <= 4, key


def test_wandb_overlay_holds_the_class_ids_as_mask_layers():
    import numpy as np
    import torch

    from advaug.loggers import wandb_overlay

    image = torch.rand(3, 8, 8)
    mask = torch.zeros(8, 8, dtype=torch.long)
    mask[2:4, 2:4] = 1
    pred = torch.ones(8, 8, dtype=torch.long)
    got = wandb_overlay(image, {"ground_truth": mask, "prediction": pred}, {0: "background", 1: "foreground"})
    assert isinstance(got, wandb.Image) and set(got._masks) == {"ground_truth", "prediction"}
    layer = got._masks["ground_truth"]
    assert np.array_equal(layer._val["mask_data"], mask.numpy().astype(np.uint8))
    assert layer._val["class_labels"] == {0: "background", 1: "foreground"}
