"""``GanRecipe``: train a :class:`Pix2PixGAN` on a training split once, cache it, reuse it.

The cache folder is ``<cache_dir>/<dataset>-seed<seed>-<key>/`` where ``key`` hashes the training
split's pixels and masks, the module's hyperparameters, the schedule and the seed: every sweep job
with the same dataset, split and seed reuses one generator, and any change trains a new one. A
file lock makes concurrent jobs (joblib launcher) wait for the one that trains.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from filelock import FileLock
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from advaug.errors import ConfigError
from advaug.figures import pairs_grid
from advaug.gan.module import Pix2PixGAN
from advaug.gan.networks import key
from advaug.gan.progress import GanProgress
from advaug.utils.io import atomic_write_json

log = logging.getLogger(__name__)

FORMAT = "pix2pix-v1"  # bump when the saved layout or the training code changes meaning


def fingerprint(images: torch.Tensor, masks: torch.Tensor) -> str:
    """SHA-1 of a split's content (images quantised to uint8, masks as uint8)."""
    h = hashlib.sha1()
    h.update(images.mul(255).round().to(torch.uint8).contiguous().numpy().tobytes())
    h.update(masks.to(torch.uint8).contiguous().numpy().tobytes())
    h.update(str(tuple(images.shape)).encode())
    return h.hexdigest()


# Trainer keywords that do not change the trained generator: where it runs and what it reports.
# ``max_epochs`` and ``logger`` are set by :meth:`GanRecipe._train` over the partial's own.
COSMETIC_TRAINER_KEYS = frozenset(
    {"accelerator", "devices", "log_every_n_steps", "logger", "callbacks", "default_root_dir", "max_epochs"}
)


def _plain(value: Any) -> Any:
    """Config values as JSON-able Python values (lists for sequences)."""
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    return list(value) if isinstance(value, tuple) else value


def _canonical(value: Any) -> Any:
    """``value`` with numbers as floats (``100`` and ``100.0`` hash alike), recursively."""
    value = _plain(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def _precision(value: Any) -> str:
    """Lightning's one spelling of a precision (``32`` and ``"32"`` are ``"32-true"``)."""
    from advaug.utils.lightning_compat import unified_precision

    try:
        return unified_precision(value)
    except (ValueError, TypeError):  # not one Lightning knows: the Trainer will say so
        return str(value)


def trainer_settings(trainer: Callable[..., L.Trainer]) -> dict[str, Any]:
    """The trainer partial's keywords that change the trained generator, normalised."""
    kwargs = trainer.keywords if isinstance(trainer, functools.partial) else {}
    kept = {k: v for k, v in kwargs.items() if k not in COSMETIC_TRAINER_KEYS and not k.startswith("enable_")}
    kept["precision"] = _precision(kept.get("precision", "32-true"))  # Lightning's default
    return _canonical(kept)


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block without changing torch/numpy/python random states, so a segmentation run is
    the same whether its generator came from the cache or was trained just now."""
    np_state, py_state = np.random.get_state(), random.getstate()
    env = {k: os.environ.get(k) for k in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")}
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
            for k, v in env.items():  # seed_everything also sets these
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


class GanRecipe:
    """How to train the GAN; :meth:`ensure` returns a trained module (cached or fresh).

    ``module``: partial of :class:`Pix2PixGAN`; ``trainer``: partial of ``lightning.Trainer``
    (device settings; the epoch count follows from ``steps``); ``steps``: generator updates
    (batches), rounded up to whole epochs; None = ``gpu_steps`` on an accelerator, ``cpu_steps``
    when the trainer runs on a CPU, so that ``aug=gan`` stays minutes long there
    (docs/augmentations.md); ``show_progress``: a bar over the steps (None = on a terminal).
    """

    def __init__(
        self,
        module: Callable[..., Pix2PixGAN],
        trainer: Callable[..., L.Trainer],
        cache_dir: str,
        steps: int | None = 2000,
        batch_size: int = 8,
        seed: int = 0,
        num_grid: int = 8,
        gpu_steps: int = 2000,
        cpu_steps: int = 800,
        show_progress: bool | None = None,
    ) -> None:
        for name, value in (("steps", steps), ("gpu_steps", gpu_steps), ("cpu_steps", cpu_steps)):
            if value is not None and value < 1:
                raise ConfigError(f"{key(name)}={value}: must be >= 1 (steps: or null = by device).")
        if batch_size < 1:
            raise ConfigError(f"{key('batch_size')}={batch_size}: must be >= 1.")
        self.module, self.trainer = module, trainer
        self.cache_dir, self.batch_size = Path(cache_dir), int(batch_size)
        self.requested_steps = None if steps is None else int(steps)
        self.gpu_steps, self.cpu_steps = int(gpu_steps), int(cpu_steps)
        self.seed, self.num_grid, self.show_progress = int(seed), int(num_grid), show_progress

    @property
    def on_cpu(self) -> bool:
        """Whether the trainer partial trains on a CPU (``accelerator=auto`` without a GPU too)."""
        kwargs = self.trainer.keywords if isinstance(self.trainer, functools.partial) else {}
        accelerator = str(kwargs.get("accelerator", "auto")).lower()
        if accelerator == "auto":
            mps = getattr(torch.backends, "mps", None)
            return not (torch.cuda.is_available() or (mps is not None and mps.is_available()))
        return accelerator == "cpu"

    @property
    def steps(self) -> int:
        """The generator updates this recipe trains: ``steps`` when given, else by device."""
        if self.requested_steps is not None:
            return self.requested_steps
        return self.cpu_steps if self.on_cpu else self.gpu_steps

    def settings(self) -> dict[str, Any]:
        """What determines the trained generator (hashed into the cache key)."""
        kwargs = self.module.keywords if isinstance(self.module, functools.partial) else {}
        # every trainer keyword that changes the result (max_steps, limit_train_batches, max_time,
        # deterministic, precision, ...): a smoke run must not train into a full run's folder
        return {
            "format": FORMAT,
            "module": _canonical(kwargs),
            "steps": self.steps,
            "batch_size": self.batch_size,
            "trainer": trainer_settings(self.trainer),
            "seed": self.seed,
        }

    def folder(self, name: str, images: torch.Tensor, masks: torch.Tensor) -> Path:
        """The cache folder for this dataset split and these settings."""
        material = json.dumps(
            {"data": fingerprint(images, masks), **self.settings()}, sort_keys=True, default=str
        )
        key = hashlib.sha1(material.encode()).hexdigest()[:12]
        return self.cache_dir / f"{name}-seed{self.seed}-{key}"

    def ensure(
        self, name: str, images: torch.Tensor, masks: torch.Tensor, force: bool = False
    ) -> tuple[Pix2PixGAN, Path]:
        """Load the cached generator for this split, or train, save and return it.

        ``images`` (N,3,H,W) float in [0,1] and ``masks`` (N,H,W): the TRAINING split only.
        """
        folder = self.folder(name, images, masks)
        folder.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder) + ".lock"):
            if force and folder.exists():
                shutil.rmtree(folder)
            if not (folder / "generator.pt").is_file():
                try:
                    self._train(folder, images, masks)
                finally:  # renamed into place on success; a failure leaves no half-written folder
                    shutil.rmtree(folder.with_name(folder.name + ".tmp"), ignore_errors=True)
            else:
                log.info("GAN: reusing the cached generator in %s", folder)
        return self.load(folder), folder

    def load(self, folder: Path) -> Pix2PixGAN:
        """A module holding the cached generator weights (the discriminator is not kept)."""
        saved = torch.load(Path(folder) / "generator.pt", map_location="cpu", weights_only=True)
        # building the module draws its (then overwritten) initial weights from the global
        # generator: keep it out of the run's random stream, which a resumed run has restored
        with preserved_rng():
            module = Pix2PixGAN(**saved["hparams"])
        module.generator.load_state_dict(saved["generator"])
        return module.eval()

    def _train(self, folder: Path, images: torch.Tensor, masks: torch.Tensor) -> None:
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        batches = math.ceil(len(images) / self.batch_size)
        epochs = math.ceil(self.steps / batches)
        kwargs = self.trainer.keywords if isinstance(self.trainer, functools.partial) else {}
        # fewer steps than one epoch has (debug=limit): that many batches, not the whole epoch
        limit = (
            {"limit_train_batches": self.steps}
            if self.steps < batches and "limit_train_batches" not in kwargs
            else {}
        )
        total = self.steps if limit else epochs * batches
        log.info(
            "GAN: training on %d pairs for %d epochs (%d steps) into %s",
            len(images),
            epochs,
            total,
            folder,
        )
        started = time.perf_counter()
        with preserved_rng():
            L.seed_everything(self.seed, workers=True, verbose=False)
            module = self.module()
            loader = DataLoader(
                TensorDataset(images.float(), masks.long()),
                batch_size=self.batch_size,
                shuffle=True,
                generator=torch.Generator().manual_seed(self.seed),
            )
            bar = GanProgress(total, enabled=self.show_progress)
            csv = CSVLogger(str(tmp), name="csv", version="")
            trainer = self.trainer(max_epochs=epochs, logger=csv, callbacks=[bar], **limit)
            trainer.fit(module, train_dataloaders=loader)
            seconds = time.perf_counter() - started
            pick = torch.arange(min(self.num_grid, len(masks)))
            fakes = module.generate(masks[pick], seed=self.seed)
        torch.save(
            {"hparams": dict(module.hparams), "generator": module.generator.cpu().state_dict()},
            tmp / "generator.pt",
        )
        pairs_grid(masks[pick], fakes, tmp / "samples.png", real=images[pick], num_classes=module.num_classes)
        atomic_write_json(
            tmp / "gan.json",
            {
                "settings": self.settings(),
                "train_pairs": len(images),
                "epochs": epochs,
                "steps": trainer.fit_loop.epoch_loop.batch_progress.total.completed,
                "train_time_s": seconds,
                "expected_time_s": bar.estimate_s,
                "device": str(trainer.strategy.root_device),
                "history": module.history,
            },
        )
        tmp.rename(folder)
        log.info("GAN: trained in %.1f s; samples in %s", seconds, folder / "samples.png")
