"""``src/predict.py``: a run's model on every image of a folder, masks at the original resolution.

Outputs go to a hidden staging folder inside ``output`` and are moved into place only once every
image has been predicted: a failure (an unreadable image) leaves no half-written result.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from advaug.data.image_folder import ImageFolder
from advaug.deploy.prediction_writer import PredictionWriter
from advaug.deploy.run_model import load_run, resolve_checkpoint
from advaug.errors import ConfigError
from advaug.utils.io import atomic_write_json

log = logging.getLogger(__name__)
SUMMARY = "predict.json"


def accelerator(device: str) -> str:
    """``device`` (auto | cpu | cuda | gpu) as a Lightning accelerator."""
    device = str(device or "auto").lower()
    if device == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if device in ("cuda", "gpu"):
        return "gpu"
    if device == "cpu":
        return "cpu"
    raise ConfigError(f"device={device}: choose auto, cpu or cuda.")


def _move_into(staging: Path, output: Path) -> None:
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            target = output / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)


def predict_folder(cfg: DictConfig) -> dict[str, Any]:
    """Predict ``cfg.input`` with the model of ``cfg.ckpt_path`` / ``cfg.run_dir`` into ``cfg.output``
    (default: this command's run folder); returns what ``predict.json`` records."""
    if not cfg.get("input"):
        raise ConfigError(
            "input is required: python src/predict.py ckpt_path=<run>/checkpoints/best.ckpt input=<folder> "
            "output=<folder>"
        )
    if int(cfg.get("batch_size", 8)) < 1:
        raise ConfigError(f"batch_size={cfg.batch_size}: must be at least 1.")
    run = load_run(resolve_checkpoint(cfg.get("ckpt_path"), cfg.get("run_dir")), cfg.get("run_config"))
    pre = run.preprocessing
    dataset = ImageFolder(cfg.input, pre.image_size, pre.intensity_range)  # every file checked here
    output = Path(cfg.get("output") or cfg.paths.output_dir).expanduser()
    output.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".predict-", dir=output))
    try:
        writer = PredictionWriter(
            staging,
            dataset,
            pre.num_classes,
            probabilities=bool(cfg.get("probabilities", False)),
            overlays=bool(cfg.get("overlays", False)),
            overlay_alpha=float(cfg.get("overlay_alpha", 0.5)),
        )
        trainer = L.Trainer(
            accelerator=accelerator(cfg.get("device", "auto")),
            devices=1,
            precision=cfg.get("precision", "32-true"),
            logger=False,
            callbacks=[writer],
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=bool(cfg.get("progress_bar", True)),
        )
        loader = DataLoader(
            dataset, batch_size=int(cfg.get("batch_size", 8)), num_workers=int(cfg.get("num_workers", 0))
        )
        trainer.predict(run.model, dataloaders=loader, return_predictions=False)
        summary = {
            "ckpt_path": str(run.ckpt_path),
            "run_config": str(run.config_path),
            "input": str(Path(cfg.input).expanduser().resolve()),
            "images": writer.written,
            "outputs": sorted(p.name for p in staging.iterdir() if p.is_dir()),
            "preprocessing": pre.describe(),
        }
        atomic_write_json(staging / SUMMARY, summary)
        _move_into(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("predicted %d images: masks in %s", summary["images"], output / "masks")
    print(f"predicted {summary['images']} images: masks in {output / 'masks'}")
    return summary
