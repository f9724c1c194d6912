"""``train_gan(cfg)``: the body of ``src/train_gan.py`` (tests call it directly)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from advaug.config_checks import check_gan_config
from advaug.gan.recipe import GanRecipe
from advaug.utils.io import atomic_write_json, read_json

log = logging.getLogger(__name__)


def train_gan(cfg: DictConfig) -> dict[str, Any]:
    """Train (or find cached) the GAN for ``cfg.dataset``'s training split.

    Writes ``gan.json`` (cache folder, training time, loss history) and ``gan_samples.png`` into
    ``cfg.paths.output_dir`` and returns the summary.
    """
    check_gan_config(cfg)  # bad values fail here, before anything is built or written
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    datamodule = instantiate(cfg.dataset)
    datamodule.prepare_data()
    datamodule.setup("fit")
    images, masks = datamodule.train_images()
    recipe: GanRecipe = instantiate(cfg.gan)
    _, folder = recipe.ensure(datamodule.name, images, masks, force=bool(cfg.get("force", False)))
    summary = {
        "dataset": datamodule.name,
        "seed": cfg.seed,
        "cache_dir": str(folder),
        **read_json(folder / "gan.json"),
    }
    atomic_write_json(out / "gan.json", summary)
    shutil.copyfile(folder / "samples.png", out / "gan_samples.png")
    log.info(
        "GAN for %s (%d train pairs): %s, trained in %.1f s",
        datamodule.name,
        len(images),
        folder,
        summary["train_time_s"],
    )
    return summary
