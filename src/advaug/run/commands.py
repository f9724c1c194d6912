"""The entry points: ``python src/<name>.py`` and the console command ``advaug-<name>``
(``pyproject.toml`` ``[project.scripts]``) call the same function here, so they behave alike.

The Hydra commands find ``conf/`` from the package (:func:`advaug.utils.config.config_dir`: the
checkout of an editable install, else the working directory), so they run from any folder, with
the same overrides and ``-m`` sweeps as the scripts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def hydra_command(task: Callable[[Any], Any], config_name: str) -> None:
    """Run ``task(cfg)`` as a Hydra app on ``conf/<config_name>.yaml`` and the command line.

    Registers the ``advaug_*`` resolvers and refuses an unknown ``group=choice`` (or an unquoted
    path holding ``=``) in one line first (:func:`advaug.run.entry.check_choices`, exit status 2).
    Hydra names the job (``hydra.job.name``, the job's ``<name>.log``) after the module of the task
    function, as it named it after the script before; that name is ``config_name``.
    """
    import hydra

    from advaug.run.entry import check_choices
    from advaug.utils.config import config_dir, register_resolvers

    register_resolvers()
    conf = config_dir()
    check_choices(sys.argv[1:], conf)

    def job(cfg: Any) -> Any:
        return task(cfg)

    job.__module__ = config_name  # -> hydra.job.name
    hydra.main(version_base="1.3", config_path=str(conf), config_name=config_name)(job)()


def train() -> None:
    """Train, test and write the run folder (``src/train.py``, ``advaug-train``). The value returned
    to Hydra's sweeper is the best validation mean IoU (-inf for a failed job), never a test score."""
    from advaug.run.entry import run_entry
    from advaug.run.sweep import objective
    from advaug.training import train as train_run

    hydra_command(lambda cfg: objective(run_entry(train_run, cfg, output_dir=cfg.paths.output_dir)), "train")


def evaluate() -> None:
    """Score a checkpoint clean and under attack (``src/evaluate.py``, ``advaug-evaluate``); the
    sweeper gets the clean mean IoU."""
    from advaug.evaluation import evaluate_checkpoint
    from advaug.run.entry import run_entry

    hydra_command(lambda cfg: run_entry(evaluate_checkpoint, cfg)[0]["miou"], "evaluate")


def train_gan() -> None:
    """Train and cache the GAN baseline of ``aug=gan`` (``src/train_gan.py``, ``advaug-train-gan``)."""
    from advaug.gan.training import train_gan as train_gan_run
    from advaug.run.entry import run_entry

    def job(cfg: Any) -> None:
        run_entry(train_gan_run, cfg)

    hydra_command(job, "train_gan")


def check_data() -> None:
    """Validate a dataset folder and print its summary (``src/check_data.py``, ``advaug-check-data``)."""
    from advaug.data.check import check_dataset_config, format_summary
    from advaug.run.entry import run_entry

    def job(cfg: Any) -> None:
        summary = run_entry(lambda c: check_dataset_config(c.dataset), cfg)
        print(format_summary(summary))

    hydra_command(job, "check_data")


def predict() -> None:
    """Masks for every image of a folder by a run's model (``src/predict.py``, ``advaug-predict``)."""
    from advaug.deploy.predict import predict_folder
    from advaug.run.entry import run_entry

    def job(cfg: Any) -> None:
        run_entry(predict_folder, cfg)

    hydra_command(job, "predict")


def export() -> None:
    """A run's network as ONNX / TorchScript with its preprocessing (``src/export.py``, ``advaug-export``)."""
    from advaug.deploy.export import export_model
    from advaug.run.entry import run_entry

    def job(cfg: Any) -> None:
        run_entry(export_model, cfg)

    hydra_command(job, "export")
