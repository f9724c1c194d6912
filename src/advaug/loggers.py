"""Logger glue: the resolved config for every logger, and what W&B gets: the sample overlays and
the robustness grid as a table (``evaluation/runner.py``), the figures and summary at the end."""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger as _LightningCSVLogger
from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

from advaug.errors import ConfigError

log = logging.getLogger(__name__)

OFFLINE_MODES = ("offline", "dryrun")  # "dryrun": wandb's old name for offline


def wandb_mode(offline: bool, mode: str | None = None) -> tuple[str, str]:
    """The W&B mode of a run and the setting that chose it: ``mode`` (``logger.wandb.mode``),
    else ``WANDB_MODE`` when set in the environment (wandb's own switch: online/offline/disabled),
    else ``logger.wandb.offline``."""
    if mode:
        return mode, f"logger.wandb.mode={mode}"
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"], f"WANDB_MODE={os.environ['WANDB_MODE']}"
    return ("offline" if offline else "online"), f"logger.wandb.offline={str(offline).lower()}"


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, but an existing ``metrics.csv`` is continued, not deleted: a run
    resumed in its own folder keeps the rows logged before the interruption (the steps of an
    epoch cut short appear twice, once per attempt)."""

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir=log_dir)
        path = Path(self.metrics_file_path)
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as f:
                header = next(csv.reader(f), [])
            self.metrics_keys = list(header)  # save() appends, or rewrites when keys are new

    def _check_log_dir_exists(self) -> None:  # Lightning deletes metrics.csv here
        pass


class CSVLogger(_LightningCSVLogger):
    """Lightning's ``CSVLogger`` whose ``metrics.csv`` survives a resume in the same folder
    (Lightning's writer deletes it when the folder is not empty)."""

    @property
    def experiment(self) -> ExperimentWriter:
        existing = self._fs.isfile(Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE)
        if self._experiment is None and existing and rank_zero_only.rank == 0:  # others: a dummy
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return super().experiment


class WandbLogger(_LightningWandbLogger):
    """Lightning's ``WandbLogger`` that starts its own W&B run even when an earlier run is open,
    and leaves ``WANDB_MODE`` alone.

    Lightning reuses an open ``wandb.run``; in a sweep whose jobs share a process (the basic
    launcher, reused joblib workers) every job would then land in the first job's run. And its
    ``offline=True`` sets ``os.environ["WANDB_MODE"] = "dryrun"``, overriding a user's
    ``WANDB_MODE=disabled``/``online`` (and every later job's setting in the same process): here
    ``offline`` becomes ``wandb.init(mode="offline")``, and only when ``WANDB_MODE`` is unset.
    """

    def __init__(
        self, *args: Any, offline: bool = False, log_model: bool | str = False, **kwargs: Any
    ) -> None:
        import wandb

        mode, source = wandb_mode(offline, kwargs.get("mode"))
        if log_model and mode in OFFLINE_MODES:  # Lightning's own refusal is a multi-line traceback
            raise ConfigError(
                f"logger.wandb.log_model={log_model} uploads checkpoints, but this W&B run is offline "
                f"({source}). Go online (`wandb login`, then WANDB_OFFLINE=false or WANDB_MODE=online) "
                "or drop logger.wandb.log_model."
            )
        if mode in OFFLINE_MODES and "mode" not in kwargs and not os.environ.get("WANDB_MODE"):
            kwargs["mode"] = "offline"  # with WANDB_MODE set, wandb reads it itself
        if wandb.run is not None:
            wandb.finish()
        super().__init__(*args, offline=False, log_model=log_model, **kwargs)


def wandb_loggers(loggers: Sequence[Any]) -> list[_LightningWandbLogger]:
    """The W&B loggers among ``loggers`` (a trainer's, or none)."""
    return [lg for lg in loggers if isinstance(lg, _LightningWandbLogger)]


def wandb_overlay(
    image: Tensor, masks: dict[str, Tensor], class_labels: dict[int, str], caption: str = ""
) -> Any:
    """A ``wandb.Image`` of ``image`` (3, H, W) in [0, 1] with each of ``masks`` ((H, W) class ids,
    e.g. ``ground_truth``, ``prediction``) as a W&B mask layer, toggled in the W&B UI."""
    import wandb

    pixels = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    layers = {
        name: {"mask_data": m.detach().to(torch.uint8).cpu().numpy(), "class_labels": dict(class_labels)}
        for name, m in masks.items()
    }
    return wandb.Image(pixels, masks=layers, caption=caption or None)


def class_labels(num_classes: int) -> dict[int, str]:
    """W&B's names of the mask layers' class ids."""
    if num_classes == 2:
        return {0: "background", 1: "foreground"}
    return {0: "background", **{k: f"class_{k}" for k in range(1, num_classes)}}


def log_overlays(
    loggers: Sequence[Any],
    key: str,
    images: Tensor,
    layers: dict[str, Tensor],
    num_classes: int,
    caption: str = "",
    step: int | None = None,
) -> None:
    """Log ``images`` (N, 3, H, W) in [0, 1] to each W&B run under ``key``, each with its rows of
    ``layers`` (name -> (N, H, W) class ids) as mask layers; ``step``: the trainer's global step."""
    runs = wandb_loggers(loggers)
    if not runs:
        return
    labels = class_labels(num_classes)
    shots = [
        wandb_overlay(images[i], {name: m[i] for name, m in layers.items()}, labels, f"{caption} {i}".strip())
        for i in range(len(images))
    ]
    for logger in runs:
        if step is None:
            logger.experiment.log({key: shots})
        else:
            logger.log_metrics({key: shots}, step=step)


def log_sample_overlays(
    loggers: Sequence[Any],
    images: Tensor,
    masks: Tensor,
    preds: Tensor,
    adversarial: Tensor,
    adv_preds: Tensor,
    num_classes: int,
    adv_title: str = "adversarial",
) -> None:
    """The Fig. 3-4 samples for W&B: ``samples/clean`` (each input with its mask and prediction as
    mask layers) and ``samples/adversarial`` (the attacked input, mask and prediction on it)."""
    log_overlays(loggers, "samples/clean", images, {"ground_truth": masks, "prediction": preds}, num_classes,
                 "sample")  # fmt: skip
    log_overlays(loggers, "samples/adversarial", adversarial, {"ground_truth": masks, "prediction": adv_preds},
                 num_classes, adv_title)  # fmt: skip


def log_robustness_table(loggers: Sequence[Any], rows: Sequence[dict[str, Any]]) -> None:
    """The robustness grid as a ``wandb.Table`` (``robustness/grid``): one row per cell, a column
    per scalar of the rows (attack, eps, labels, scores)."""
    runs = wandb_loggers(loggers)
    if not runs or not rows:
        return
    import wandb

    columns = [k for k, v in rows[0].items() if v is None or isinstance(v, (str, int, float, bool))]
    for row in rows[1:]:
        columns += [k for k, v in row.items() if k not in columns and isinstance(v, (str, int, float, bool))]
    data = [[row.get(c) for c in columns] for row in rows]
    for logger in runs:
        logger.experiment.log({"robustness/grid": wandb.Table(columns=columns, data=data)})


def log_config(trainer: L.Trainer, config: dict[str, Any]) -> None:
    """Log the resolved run config as hyperparameters (W&B run config, CSV ``hparams.yaml``)."""
    for logger in trainer.loggers:
        logger.log_hyperparams(config)


# figures the callbacks log to W&B themselves when they draw them (adv/samples at the pool's step,
# gan/samples): finish_wandb leaves them out instead of storing and uploading each a second time
LOGGED_BY_CALLBACKS = ("adv_epoch*.png", "gan_samples.png")


def finish_wandb(trainer: L.Trainer, out_dir: str | Path, summary: dict[str, Any]) -> None:
    """Give each W&B run the PNGs under ``out_dir/figures`` (but those in ``LOGGED_BY_CALLBACKS``,
    logged when drawn) and the final ``summary``, then close it.

    Closing matters in sweeps: the next job in the same process must start a new run. A best
    checkpoint artifact is Lightning's job (``logger.wandb.log_model=true``).
    """
    loggers = [lg for lg in trainer.loggers if isinstance(lg, _LightningWandbLogger)]
    if not loggers or not trainer.is_global_zero:
        return
    import wandb

    figures = [
        p
        for p in sorted((Path(out_dir) / "figures").glob("*.png"))
        if not any(p.match(pattern) for pattern in LOGGED_BY_CALLBACKS)
    ]
    for logger in loggers:
        run = logger.experiment
        if figures:
            run.log({f"figures/{p.stem}": wandb.Image(str(p), caption=p.name) for p in figures})
        run.summary.update(summary)
        if os.environ.get("WANDB_MODE") == "disabled":  # a no-op run: its dir is never written
            log.info("W&B disabled (WANDB_MODE=disabled): nothing recorded")
        else:
            log.info("W&B run %s (%s): %d figures; files in %s", run.name, run.id, len(figures), run.dir)
    wandb.finish()
