"""Checks of a composed training config, run before anything is built or written.

Each problem raises one :class:`~advaug.errors.ConfigError` naming the key, its value and a fix,
so that a bad override fails in a second instead of deep inside Lightning (or after an epoch).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from advaug.errors import ConfigError

# Subtrees whose `eps`-like keys are perturbation sizes on the [0, 1] image scale. The optimizer's
# `eps` (Adam's numerical epsilon) is a different quantity and is not checked here.
EPS_SUBTREES = ("aug", "robustness", "evaluation")
EPS_KEYS = ("eps", "epsilon", "eps_max", "eps_grid", "eps_values", "epsilons")


def _positive_int(cfg: DictConfig, key: str, example: str) -> None:
    value = OmegaConf.select(cfg, key, default=None)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key}={value}: must be a whole number >= 1 (e.g. {key}={example}).")


def _walk(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """Yield (dotted key, value) for every leaf below ``node`` (a resolved container)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, f"{prefix}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{prefix}[{i}]")
    else:
        yield prefix, node


def _eps_values(cfg: DictConfig) -> Iterator[tuple[str, Any]]:
    for name in EPS_SUBTREES:
        sub = cfg.get(name)
        if not isinstance(sub, (DictConfig, ListConfig)):
            continue
        container = OmegaConf.to_container(sub, resolve=True)
        for key, value in _walk(container, name):
            leaf = key.rsplit(".", 1)[-1].split("[", 1)[0]
            if leaf in EPS_KEYS:
                yield key, value


def check_eps_range(cfg: DictConfig) -> None:
    """Every perturbation size in ``aug``/``robustness``/``evaluation`` lies in [0, 1]."""
    for key, value in _eps_values(cfg):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
            raise ConfigError(
                f"{key}={value}: eps is a perturbation size on the [0, 1] image scale and must lie in "
                f"[0, 1] (the paper uses 0.1; 3/255 = 0.0118 is a common small value)."
            )


def check_image_size(cfg: DictConfig) -> None:
    """The UNet's encoder halves the image ``encoder_depth`` times: the size must divide evenly."""
    size = OmegaConf.select(cfg, "dataset.image_size", default=None)
    depth = OmegaConf.select(cfg, "model.net.encoder_depth", default=None)
    if size is None or depth is None:
        return
    _positive_int(cfg, "dataset.image_size", "128")
    factor = 2 ** int(depth)
    if int(size) % factor:
        lower = max(factor, int(size) // factor * factor)
        raise ConfigError(
            f"dataset.image_size={size}: a UNet with model.net.encoder_depth={depth} needs a multiple of "
            f"{factor} (e.g. dataset.image_size={lower} or {lower + factor})."
        )


def check_config(cfg: DictConfig) -> None:
    """Refuse out-of-range values of a training config with one clear :class:`ConfigError`."""
    _positive_int(cfg, "trainer.max_epochs", "10")
    min_epochs = OmegaConf.select(cfg, "trainer.min_epochs", default=None)
    max_epochs = OmegaConf.select(cfg, "trainer.max_epochs", default=None)
    if min_epochs is not None and max_epochs is not None and int(min_epochs) > int(max_epochs):
        raise ConfigError(
            f"trainer.min_epochs={min_epochs} is larger than trainer.max_epochs={max_epochs}: "
            f"lower trainer.min_epochs (e.g. trainer.min_epochs=1)."
        )
    _positive_int(cfg, "batch_size", "8")
    _positive_int(cfg, "dataset.batch_size", "8")
    _positive_int(cfg, "dataset.eval_batch_size", "8")
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed={seed}: must be a non-negative whole number (e.g. seed=1234).")
    check_image_size(cfg)
    check_eps_range(cfg)
