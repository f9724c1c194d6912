"""A run's model and preprocessing from its checkpoint and saved config, without Hydra:
``load_run("logs/train/runs/<time>")`` (or the path of a ``.ckpt`` in it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from advaug.deploy.preprocessing import Preprocessing
from advaug.errors import ConfigError
from advaug.evaluation.runner import find_run_config
from advaug.models import SegmentationModule

BEST = Path("checkpoints") / "best.ckpt"


@dataclass
class RunModel:
    """The model (eval mode, on the CPU), what its input must look like, and where both came from."""

    model: SegmentationModule
    preprocessing: Preprocessing
    ckpt_path: Path
    config_path: Path
    config: DictConfig


def resolve_checkpoint(ckpt_path: str | Path | None = None, run_dir: str | Path | None = None) -> Path:
    """The checkpoint named by ``ckpt_path`` (a file, or a run folder) or ``run_dir`` (a run
    folder: its ``checkpoints/best.ckpt``)."""
    if ckpt_path and run_dir:
        raise ConfigError(f"ckpt_path={ckpt_path} and run_dir={run_dir}: give one of the two.")
    given = ckpt_path or run_dir
    if not given:
        raise ConfigError(
            "no model given: set ckpt_path=<run>/checkpoints/best.ckpt or run_dir=<run folder>."
        )
    path = Path(given).expanduser().resolve()
    key = "ckpt_path" if ckpt_path else "run_dir"
    if path.is_dir():
        if not (path / BEST).is_file():
            raise ConfigError(f"{key}={given}: the folder holds no {BEST}; point {key} at a run folder.")
        return path / BEST
    if not path.is_file():
        raise ConfigError(f"{key}={given}: no such file or folder (point it at a run's checkpoints/best.ckpt).")
    return path


def load_run(path: str | Path, run_config: str | Path | None = None) -> RunModel:
    """The model of a run folder or checkpoint, with the run's preprocessing.

    The network is rebuilt from the checkpoint's hyper-parameters (its net spec,
    :mod:`advaug.models.net_spec`); a checkpoint written before they held it is rebuilt from the
    run's config instead. ``compile`` is off: a loaded model is for prediction and export.
    """
    ckpt = resolve_checkpoint(path)
    config_path = find_run_config(ckpt, str(run_config) if run_config else None)
    cfg = OmegaConf.load(config_path)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    hparams = dict(state.get("hyper_parameters") or {})
    if hparams.get("net"):
        model = SegmentationModule(**{**hparams, "compile": False})
    else:  # older checkpoints: the net from the run's config (its encoder weights come from the file)
        from hydra.utils import instantiate

        with open_dict(cfg):
            cfg.model.compile = False
            if OmegaConf.select(cfg, "model.net.encoder_weights") is not None:
                cfg.model.net.encoder_weights = None
        model = instantiate(cfg.model)
    model.load_state_dict(state["state_dict"])
    preprocessing = Preprocessing.from_config(cfg)
    if preprocessing.num_classes != model.num_classes:
        raise ConfigError(
            f"{config_path}: dataset.num_classes={preprocessing.num_classes} but the checkpoint {ckpt} "
            f"predicts {model.num_classes} classes; pass the run's own config as run_config=<path>."
        )
    return RunModel(model.eval(), preprocessing, ckpt, config_path, cfg)
