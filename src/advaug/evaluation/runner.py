"""Glue between configs and :mod:`advaug.evaluation.robustness`: the step at the end of a training
run, and ``src/evaluate.py`` (a saved checkpoint re-scored on a test split)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from advaug.attacks import perturb
from advaug.errors import ConfigError
from advaug.evaluation.robustness import evaluate_robustness, write_robustness
from advaug.loggers import log_robustness_table, log_sample_overlays
from advaug.metric_keys import ROBUSTNESS_PER_IMAGE_FILE
from advaug.per_image import PerImageRecorder
from advaug.run.folder import splits_record_of

log = logging.getLogger(__name__)
RUN_CONFIGS = ("config_resolved.yaml", ".hydra/config.yaml")


def load_weights(model: nn.Module, ckpt_path: str | Path) -> nn.Module:
    """Load a Lightning checkpoint's ``state_dict`` into ``model`` (``weights_only=True``: no pickled code)."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise ConfigError(f"ckpt_path={path}: no such file (point it at checkpoints/best.ckpt of a run).")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state.get("state_dict", state))
    return model


def run_robustness(
    node: DictConfig,
    model: nn.Module,
    datamodule: Any,
    out_dir: str | Path,
    meta: dict[str, Any],
    device: torch.device | str | None = None,
    loggers: Sequence[Any] = (),
    show_progress: bool | None = None,
) -> list[dict[str, Any]]:
    """Score ``model`` on ``datamodule``'s ``node.split`` loader over the configured grid
    (``show_progress``: the grid's bar, None = on a terminal).

    Writes ``robustness.json`` / ``robustness.md``, ``robustness_per_image.csv`` (one row per image
    and cell) and, when ``node.figure.num_images > 0``, the
    Fig. 3-4 grid ``figures/samples.png`` into ``out_dir``. A W&B logger among ``loggers`` gets the
    grid as a table and the samples as images with mask overlays. Returns the rows.
    """
    split = node.get("split", "test")
    loader_fn = getattr(datamodule, f"{split}_dataloader", None)
    if split not in ("train", "val", "test", "all") or loader_fn is None:
        raise ConfigError(f"robustness.split={split!r}: choose train, val, test or all (the whole folder).")
    if split == "all":
        datamodule.load_all()  # the ids of the per-image rows
    model = model.to(device) if device is not None else model
    recorder = PerImageRecorder(model.num_classes, (getattr(datamodule, "ids", None) or {}).get(split))
    rows = evaluate_robustness(
        model,
        loader_fn(),
        methods=node.methods,
        eps=node.eps,
        labels=node.labels,
        pgd_steps=node.pgd_steps,
        max_batches=node.get("max_batches"),
        seed=node.get("seed", 0),
        precision=node.get("precision", "fp32"),
        per_image=recorder,
        show_progress=show_progress,
    )
    meta = {**meta, "split": split, "grid": OmegaConf.to_container(node, resolve=True)}
    path = write_robustness(out_dir, rows, meta)
    recorder.write(Path(out_dir) / ROBUSTNESS_PER_IMAGE_FILE, ("attack", "labels", "eps"))
    worst = min(rows, key=lambda r: r["miou"])
    log.info(
        "robustness: clean mIoU %.4f, worst %.4f (%s eps=%g labels=%s) -> %s",
        rows[0]["miou"], worst["miou"], worst["method"], worst["eps"], worst["labels"], path,
    )  # fmt: skip
    log_robustness_table(loggers, rows)
    figure = node.get("figure")
    if figure and figure.get("num_images", 0) > 0:
        sample_figure(model, loader_fn(), figure, Path(out_dir) / "figures" / "samples.png", meta, loggers)
    return rows


def sample_figure(
    model: nn.Module, loader: Any, figure: DictConfig, path: Path, meta: dict, loggers: Sequence[Any] = ()
) -> Path:
    """The paper's Fig. 3-4: input / mask / adversarial image / prediction for the first test images."""
    from advaug.figures import sample_grid  # matplotlib only when a figure is asked for

    batch = next(iter(loader))
    device = next(model.parameters()).device
    n = int(figure.num_images)
    x, y = batch["image"][:n].to(device), batch["mask"][:n].to(device)
    labels = str(figure.get("labels", "true")).lower()
    was_training = model.training
    model.eval()
    with torch.no_grad():
        pred = model(x).argmax(1)
    target = y if labels == "true" else pred
    adv = perturb(model, x, target, float(figure.eps), str(figure.method)).images
    with torch.no_grad():
        adv_pred = model(adv).argmax(1)
    model.train(was_training)
    title = f"{meta.get('dataset')} / model trained with aug={meta.get('aug')}"
    adv_title = f"{figure.method} eps={float(figure.eps):g} ({labels} labels)"
    log_sample_overlays(loggers, x, y, pred, adv, adv_pred, model.num_classes, adv_title)
    return sample_grid(x, y, adv, pred, path, title=title, adv_title=adv_title, adv_pred=adv_pred)


def find_run_config(ckpt_path: Path, explicit: str | None = None) -> Path:
    """The run's saved config: ``explicit`` or config_resolved.yaml / .hydra/config.yaml above the ckpt."""
    if explicit:
        if not Path(explicit).is_file():
            raise ConfigError(f"run_config={explicit}: no such file.")
        return Path(explicit)
    for folder in (ckpt_path.parent, ckpt_path.parent.parent):
        for name in RUN_CONFIGS:
            if (folder / name).is_file():
                return folder / name
    raise ConfigError(
        f"no config_resolved.yaml or .hydra/config.yaml next to {ckpt_path} (looked in its folder and the one "
        "above); pass run_config=<path to the run's config_resolved.yaml>."
    )


def check_test_split(ckpt_path: Path, ids: dict[str, list[str]]) -> dict[str, Any] | None:
    """Compare the test split being scored with the one the run recorded (``splits.json`` beside
    its config): a seeded split changes when files are added to the folder, and its new "test"
    images may then include training images. Warns on a difference; None without a record."""
    record = splits_record_of(ckpt_path)
    if record is None:
        return None
    try:
        run_ids = json.loads(record.read_text())
        run_test, trained = set(run_ids["test"]), set(run_ids["train"]) | set(run_ids["val"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: cannot read the run's splits (%s); the test split is not checked", record, exc)
        return None
    test = ids["test"]
    seen = sorted(i for i in test if i in trained)
    result = {"matches_run": set(test) == run_test, "images": len(test), "trained_on": len(seen)}
    if not result["matches_run"]:
        shown = ", ".join(f"'{i}'" for i in seen[:5]) + (" ..." if len(seen) > 5 else "")
        leak = (
            f"{len(seen)} of its {len(test)} images ({shown}) were in the run's train split or val split, "
            "so the scores are not a held-out result"
            if seen
            else "its images differ (none was trained on)"
        )
        log.warning(
            "the test split scored here is not the run's test split (%s): %s. The dataset folder changed "
            "since training: copy %s into the dataset folder as splits.json to score the run's own test split.",
            record, leak, record,
        )  # fmt: skip
    return result


def evaluate_checkpoint(cfg: DictConfig) -> list[dict[str, Any]]:
    """``src/evaluate.py``: rebuild the run's model, load ``cfg.ckpt_path``, score the grid on the test split.

    The dataset is ``cfg.dataset`` when given on the command line (``dataset=colon``), else the run's own.
    """
    if not cfg.get("ckpt_path"):
        raise ConfigError(
            "ckpt_path is required: python src/evaluate.py ckpt_path=<run>/checkpoints/best.ckpt"
        )
    ckpt = Path(cfg.ckpt_path).expanduser().resolve()
    if not ckpt.is_file():
        raise ConfigError(f"ckpt_path={ckpt}: no such file (point it at checkpoints/best.ckpt of a run).")
    run_cfg = OmegaConf.load(find_run_config(ckpt, cfg.get("run_config")))
    dataset_cfg = cfg.dataset if cfg.get("dataset") else run_cfg.dataset
    with open_dict(dataset_cfg):
        dataset_cfg.transform = dataset_cfg.base = None  # the test split is never augmented
        trained = OmegaConf.select(run_cfg, "dataset.image_size")
        if cfg.get("dataset") and trained is not None and dataset_cfg.get("image_size") != trained:
            log.info(
                "dataset %s read at the model's training size %s (not its dataset.image_size=%s)",
                dataset_cfg.get("name"), trained, dataset_cfg.get("image_size"),
            )  # fmt: skip
            dataset_cfg.image_size = trained  # as eval_datasets reads an external set
    if OmegaConf.select(run_cfg, "model.net.encoder_weights") is not None:
        with open_dict(run_cfg):  # the checkpoint replaces them: no download (works offline)
            run_cfg.model.net.encoder_weights = None
    model = load_weights(instantiate(run_cfg.model), ckpt)
    datamodule = instantiate(dataset_cfg)
    if datamodule.num_classes != model.num_classes:
        raise ConfigError(
            f"dataset {dataset_cfg.get('name')} has num_classes={datamodule.num_classes} but the checkpoint's "
            f"model predicts {model.num_classes}; evaluate on a dataset with the same classes."
        )
    datamodule.prepare_data()
    if cfg.robustness.get("split") != "all":  # all: every pair of the folder, no split needed
        datamodule.setup("test")
    device = cfg.get("device") or "auto"
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    meta = {
        "source": "evaluate",
        "ckpt_path": str(ckpt),
        "dataset": dataset_cfg.get("name"),
        "aug": OmegaConf.select(run_cfg, "aug.name"),
        "base": OmegaConf.select(run_cfg, "base.name", default="none"),
        "seed": OmegaConf.select(run_cfg, "seed"),
    }
    if not cfg.get("dataset") and cfg.robustness.get("split") != "all" and getattr(datamodule, "ids", None):
        meta["test_split"] = check_test_split(ckpt, datamodule.ids)
    out = Path(cfg.paths.output_dir)
    rows = run_robustness(cfg.robustness, model, datamodule, out, meta, device=device)
    log.info("outputs written to %s", out)
    return rows
