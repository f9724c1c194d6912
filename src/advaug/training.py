"""``train(cfg)``: the whole run, separate from the Hydra wrapper so tests can call it directly."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from advaug.callbacks.checkpoint import RunCheckpoint
from advaug.callbacks.metrics_history import MetricsHistory
from advaug.callbacks.splits_record import SplitsRecord
from advaug.config_checks import check_config
from advaug.loggers import finish_wandb, log_config
from advaug.metric_keys import PER_IMAGE_FILE
from advaug.models.pretrained import instantiate_model
from advaug.run.distributed import check_launch, is_rank_zero
from advaug.run.folder import METRICS_FILE, RUN_CONFIG, SPLITS_RECORD, completed_record, run_config
from advaug.run.resume import resolve_ckpt_path
from advaug.run.signals import DdpSigterm, sigterm_as_interrupt
from advaug.utils.config_tree import print_config_tree
from advaug.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


def instantiate_dict(node: DictConfig | None) -> list[Any]:
    """Instantiate each named entry of a config dict (``callbacks``, ``logger``); skip nulls."""
    if not node:
        return []
    return [instantiate(v) for v in node.values() if v is not None and "_target_" in v]


def build(
    cfg: DictConfig, resume_from: str | None = None
) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Instantiate datamodule, model and trainer (with callbacks and loggers) from the config;
    ``resume_from``: the checkpoint the run will resume (its split is checked against this one's)."""
    datamodule = instantiate(cfg.dataset, seed=cfg.seed)  # the run's seed orders the mixed batches
    model = instantiate_model(cfg.model)
    callbacks = instantiate_dict(cfg.get("callbacks")) + instantiate_dict(cfg.aug.get("callbacks"))
    # a run output like metrics.json, so not a config choice (callbacks=none keeps it)
    callbacks.append(SplitsRecord(Path(cfg.paths.output_dir) / SPLITS_RECORD, resume_from))
    callbacks.append(DdpSigterm())  # Lightning's SIGTERM handler can deadlock a DDP run
    loggers = instantiate_dict(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return datamodule, model, trainer


def _history(trainer: L.Trainer) -> list[dict[str, float]]:
    for cb in trainer.callbacks:
        if isinstance(cb, MetricsHistory):
            return sorted(cb.history, key=lambda r: r["epoch"])
    return []


def write_test_per_image(
    model: L.LightningModule, best: str, datamodule: Any, path: Path, device: Any
) -> Path:
    """``per_image.csv``: the best checkpoint (as for ``trainer.test``) scored image by image on the
    test split (:mod:`advaug.per_image`)."""
    from advaug.evaluation import load_weights
    from advaug.per_image import score_images

    scored = load_weights(model, best) if best else model
    ids = (getattr(datamodule, "ids", None) or {}).get("test")
    recorder = score_images(scored, datamodule.test_dataloader(), model.num_classes, ids, device)
    if ids is not None and len(recorder.rows) != len(ids):  # e.g. rank 0's shard of a DDP test split
        log.warning("%s: %d of the %d test images scored", path.name, len(recorder.rows), len(ids))
    return recorder.write(path)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train, test the best checkpoint and write ``metrics.json`` (and ``per_image.csv``, the test
    split image by image) into ``cfg.paths.output_dir``.

    Returns the metrics dict that was written.
    """
    started = time.time()
    out = Path(cfg.paths.output_dir)
    check_config(cfg)  # bad values fail here, before anything is built or written
    ckpt_path = resolve_ckpt_path(cfg)  # None, or the checkpoint to resume (docs/troubleshooting.md)
    L.seed_everything(cfg.seed, workers=True)
    # built before anything is written: a ConfigError from a constructor (aug.fraction, aug.precision,
    # the GAN recipe) must leave no config_resolved.yaml behind, like one from check_config
    datamodule, model, trainer = build(cfg, ckpt_path)
    check_launch(trainer)
    out.mkdir(parents=True, exist_ok=True)
    run_cfg = run_config(cfg)
    if is_rank_zero():  # DDP ranks > 0 re-run this script in the same run dir
        atomic_write_text(out / RUN_CONFIG, OmegaConf.to_yaml(run_cfg, resolve=True))
        if cfg.get("print_config", True):
            print_config_tree(run_cfg)
    log_config(trainer, OmegaConf.to_container(run_cfg, resolve=True))  # W&B run config, hparams.yaml
    guard = next(cb for cb in trainer.callbacks if isinstance(cb, DdpSigterm)).guard(trainer)
    with sigterm_as_interrupt(trainer), guard:  # a DDP collective failing after a SIGTERM is no fault
        if cfg.get("validate_before_training", True) and not ckpt_path:
            trainer.validate(model, datamodule=datamodule, verbose=False)  # epoch 0 of Table 1
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)

    test: dict[str, float] = {}
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None else ""
    if cfg.get("test", True):
        results = trainer.test(
            model, datamodule=datamodule, ckpt_path=best or None, verbose=False, weights_only=True
        )
        test = {k: float(v) for k, v in results[0].items()} if results else {}
        if trainer.is_global_zero:
            write_test_per_image(model, best, datamodule, out / PER_IMAGE_FILE, trainer.strategy.root_device)
    if cfg.get("robustness") and cfg.robustness.get("enabled") and trainer.is_global_zero:
        from advaug.evaluation import load_weights, run_robustness

        meta = {"source": "train", "ckpt_path": best, **{k: cfg.get(k) for k in ("task_name", "seed")}}
        meta.update(dataset=cfg.dataset.get("name"), aug=cfg.aug.get("name"))
        robust_model = load_weights(model, best) if best else model  # the best checkpoint, as for test
        shown = trainer.progress_bar_callback is not None  # trainer.enable_progress_bar=false: no bar
        run_robustness(
            cfg.robustness, robust_model, datamodule, out, meta, trainer.strategy.root_device, trainer.loggers,
            show_progress=shown,
        )

    metrics = completed_record(cfg, trainer, datamodule, test, _history(trainer), started)
    if cfg.get("eval_datasets") and trainer.is_global_zero:  # the best checkpoint on other datasets
        from advaug.evaluation.external import score_external

        metrics["external"] = score_external(cfg, model, best, out, trainer.strategy.root_device)
        metrics["wall_time_s"] = time.time() - started
    if trainer.is_global_zero:
        atomic_write_json(out / METRICS_FILE, metrics)
        log.info("test: %s", "  ".join(f"{k}={v:.4f}" for k, v in test.items()))
        log.info("outputs written to %s", out)
    if isinstance(checkpoint, RunCheckpoint):  # after metrics.json: a crash before it can still resume
        checkpoint.run_completed(trainer)
    finish_wandb(trainer, out, {k: metrics[k] for k in ("best_val_miou", "epochs", "wall_time_s")} | test)
    return metrics
