"""Logger glue: the resolved config for every logger, and what W&B gets at the end of a run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger

log = logging.getLogger(__name__)


class WandbLogger(_LightningWandbLogger):
    """Lightning's ``WandbLogger`` that starts its own W&B run even when an earlier run is open.

    Lightning reuses an open ``wandb.run``; in a sweep whose jobs share a process (the basic
    launcher, reused joblib workers) every job would then land in the first job's run.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import wandb

        if wandb.run is not None:
            wandb.finish()
        super().__init__(*args, **kwargs)


def log_config(trainer: L.Trainer, config: dict[str, Any]) -> None:
    """Log the resolved run config as hyperparameters (W&B run config, CSV ``hparams.yaml``)."""
    for logger in trainer.loggers:
        logger.log_hyperparams(config)


def finish_wandb(trainer: L.Trainer, out_dir: str | Path, summary: dict[str, Any]) -> None:
    """Give each W&B run the PNGs under ``out_dir/figures`` and the final ``summary``, then close it.

    Closing matters in sweeps: the next job in the same process must start a new run. A best
    checkpoint artifact is Lightning's job (``logger.wandb.log_model=true``).
    """
    loggers = [lg for lg in trainer.loggers if isinstance(lg, _LightningWandbLogger)]
    if not loggers or not trainer.is_global_zero:
        return
    import wandb

    figures = sorted((Path(out_dir) / "figures").glob("*.png"))
    for logger in loggers:
        run = logger.experiment
        if figures:
            run.log({f"figures/{p.stem}": wandb.Image(str(p), caption=p.name) for p in figures})
        run.summary.update(summary)
        log.info("W&B run %s (%s): %d figures; files in %s", run.name, run.id, len(figures), run.dir)
    wandb.finish()
