"""The run folder: its file names, its status (``metrics.json``) and the completed run's record.

A run folder is *complete* only when ``metrics.json`` says ``"status": "completed"`` (written
atomically as the last step of ``train``). A failed run says ``"status": "failed"`` with the
message; a killed run has no ``metrics.json`` at all. Reports and sweeps rely on this.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from advaug.utils.io import atomic_write_json

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
RUN_CONFIG = "config_resolved.yaml"  # the run's config, every interpolation resolved
SPLITS_RECORD = "splits.json"  # the run's train/val/test ids, in <root>/splits.json's format


def run_config(cfg: Any) -> Any:
    """``cfg`` without the ``hydra`` node (the compose API and a Hydra job add it): what a run
    writes to ``RUN_CONFIG`` (resolved) and what a rerun's config is compared with."""
    from omegaconf import OmegaConf

    return OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])


def splits_record_of(ckpt_path: str | Path) -> Path | None:
    """The ``splits.json`` of the run that wrote ``ckpt_path`` (beside it, or in the run folder
    above ``checkpoints/``), or None when that run recorded none."""
    ckpt = Path(ckpt_path)
    return next(
        (f / SPLITS_RECORD for f in (ckpt.parent, ckpt.parent.parent) if (f / SPLITS_RECORD).is_file()), None
    )


COMPLETED, FAILED, INTERRUPTED = "completed", "failed", "interrupted"


def read_status(run_dir: str | Path) -> dict[str, Any] | None:
    """The parsed ``metrics.json`` of ``run_dir``, or None when it is absent or unreadable."""
    path = Path(run_dir) / METRICS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def is_completed(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a finished run (its results must never be overwritten)."""
    status = read_status(run_dir)
    return bool(status) and status.get("status") == COMPLETED


def record_failure(
    run_dir: str | Path, exc: BaseException, status: str = FAILED, **extra: Any
) -> Path | None:
    """Write ``metrics.json`` with ``status`` and the error message, atomically.

    Never replaces the record of a completed run (returns None then).
    """
    run_dir = Path(run_dir)
    if is_completed(run_dir):
        log.warning("%s already holds a completed run; its metrics.json is left as it is", run_dir)
        return None
    record = {"status": status, "error": str(exc), "error_type": type(exc).__name__, **extra}
    return atomic_write_json(run_dir / METRICS_FILE, record)


def completed_record(
    cfg: Any,
    trainer: Any,
    datamodule: Any,
    test: dict[str, float],
    history: list[dict[str, float]],
    started: float,
) -> dict[str, Any]:
    """The ``metrics.json`` of a completed training run: ``status: completed``, what was trained,
    the best checkpoint and its validation score, the test scores, the per-epoch ``history`` and the
    wall time since ``started`` (a ``time.time()``)."""
    from advaug.utils.environment import describe

    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None else ""
    return {
        "status": "completed",
        "task": cfg.get("task_name"),
        "dataset": cfg.dataset.get("name"),
        "aug": cfg.aug.get("name"),
        "base": (cfg.get("base") or {}).get("name", "none"),
        "seed": cfg.seed,
        # k-fold cross-validation (dataset.folds / dataset.fold): the report joins the folds of a seed
        "folds": cfg.dataset.get("folds"),
        "fold": cfg.dataset.get("fold"),
        "epochs": trainer.current_epoch,
        "splits": {k: len(v) for k, v in getattr(datamodule, "ids", {}).items()},
        "best_model_path": best,
        "best_val_miou": float(checkpoint.best_model_score)
        if checkpoint and checkpoint.best_model_score is not None
        else None,
        "test": test,
        "history": history,
        "wall_time_s": time.time() - started,
        "environment": describe(trainer.strategy.root_device, str(trainer.precision)),
    }
