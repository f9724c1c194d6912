"""Checks of a composed training config, run before anything is built or written.

Each problem raises one :class:`~advaug.errors.ConfigError` naming the key, its value and a fix,
so that a bad override fails in a second instead of deep inside Lightning (or after an epoch).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from advaug.controls import CONTROLS
from advaug.errors import ConfigError
from advaug.rules import check_eps, check_folds

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
        if value is not None:
            check_eps(value, key)


def check_eps_used(cfg: DictConfig) -> None:
    """``aug.eps`` (an ``eps=`` preset or ``+aug.eps``) only where an attack reads it: the
    other augmentations would ignore the size asked for. The controls (``none``, ``same_steps``)
    accept it, unused, so that one sweep runs them beside the attacks: ``-m aug=none,fgsm aug.eps=a,b``."""
    eps = OmegaConf.select(cfg, "aug.eps", default=None)
    name = OmegaConf.select(cfg, "aug.name", default="?")
    if eps is not None and name not in CONTROLS and OmegaConf.select(cfg, "aug.method", default=None) is None:
        raise ConfigError(
            f"aug.eps={eps} with aug={name}: only the adversarial augmentations (fgsm, invfgsm, pgd, invpgd) "
            "use eps; choose one of them (e.g. aug=invfgsm) or drop the eps= preset."
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


# what to give for a mandatory (``???``) key, by key; others get a generic example
MISSING_HINTS = {"dataset.root": "/path/to/data", "ckpt_path": "logs/train/runs/<time>/checkpoints/best.ckpt"}

# smallest feature maps the GAN trains with: BatchNorm needs more than one value per channel (a 1x1
# map fails on a batch of one), and the PatchGAN's two final 4x4 stride-1 convolutions each take
# one pixel off its last stride-2 map, so that map needs 3x3 (measured: 2x2 fails, 3x3 trains)
GAN_MIN_GENERATOR_SIDE = 2
GAN_MIN_DISCRIMINATOR_SIDE = 3


def check_missing(cfg: DictConfig) -> None:
    """No mandatory (``???``) value is left unset; each would otherwise crash when first read."""
    run_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # hydra.* is Hydra's own
    missing = sorted(OmegaConf.missing_keys(run_cfg))
    if missing:
        key = missing[0]
        example = MISSING_HINTS.get(key, "<value>")
        raise ConfigError(f"{key} is not set: give it on the command line (e.g. {key}={example}).")


def _number(cfg: DictConfig, key: str) -> float | None:
    """The value of ``key`` as a number (None when unset); a non-number is a :class:`ConfigError`."""
    value = OmegaConf.select(cfg, key, default=None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}={value}: must be a number.")
    return value


def check_model(cfg: DictConfig) -> None:
    """The UNet's encoder exists and its decoder has one width per encoder level."""
    name = OmegaConf.select(cfg, "model.net.encoder_name", default=None)
    if name is not None and not str(name).startswith("tu-"):  # tu-*: any timm model, checked by timm
        from segmentation_models_pytorch.encoders import get_encoder_names

        names = get_encoder_names()
        if name not in names:
            close = difflib.get_close_matches(str(name), names, n=3) or ["resnet18", "resnet34"]
            raise ConfigError(
                f"model.net.encoder_name={name}: not a segmentation_models_pytorch encoder "
                f"(close: {', '.join(close)}; e.g. model.net.encoder_name={close[0]})."
            )
    depth = OmegaConf.select(cfg, "model.net.encoder_depth", default=None)
    channels = OmegaConf.select(cfg, "model.net.decoder_channels", default=None)
    if depth is not None and channels is not None and len(channels) != int(depth):
        widths = [int(c) for c in channels][: int(depth)] or [256]
        widths += [max(widths[-1] // 2, 8)] * (int(depth) - len(widths))  # halve, like the default
        raise ConfigError(
            f"model.net.decoder_channels has {len(channels)} widths but model.net.encoder_depth={depth} "
            f"needs one per level (e.g. model.net.decoder_channels=[{','.join(map(str, widths))}])."
        )


def check_optim(cfg: DictConfig) -> None:
    """A positive learning rate (torch refuses others only when the first epoch starts)."""
    lr = _number(cfg, "optim.optimizer.lr")
    if lr is not None and lr <= 0:
        raise ConfigError(f"optim.optimizer.lr={lr}: must be > 0 (e.g. optim.optimizer.lr=0.001).")


def check_trainer(cfg: DictConfig) -> None:
    """``trainer.precision`` is one Lightning accepts, ``trainer.devices`` is not 0."""
    from advaug.utils.lightning_compat import accepted_precisions

    precision = OmegaConf.select(cfg, "trainer.precision", default=None)
    accepted = accepted_precisions()
    if precision is not None and precision not in accepted:
        shown = ", ".join(str(a) for a in accepted if isinstance(a, str) and "-" in a)
        raise ConfigError(
            f"trainer.precision={precision}: not a Lightning precision (one of {shown}; "
            "e.g. trainer.precision=32-true)."
        )
    devices = OmegaConf.select(cfg, "trainer.devices", default=None)
    if devices is not None and str(devices).strip() in ("0", "[]", ""):
        raise ConfigError(
            f"trainer.devices={devices}: at least one device is needed "
            "(e.g. trainer.devices=1, or trainer.devices=auto for all)."
        )


def check_data(cfg: DictConfig) -> None:
    """Loader settings: no negative worker count, training batches BatchNorm can normalise."""
    workers = OmegaConf.select(cfg, "dataset.num_workers", default=None)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise ConfigError(
            f"dataset.num_workers={workers}: must be a whole number >= 0 (0 loads in the main "
            "process; e.g. dataset.num_workers=4)."
        )
    size = OmegaConf.select(cfg, "dataset.image_size", default=None)
    depth = OmegaConf.select(cfg, "model.net.encoder_depth", default=None) or 5  # smp's default
    # BatchNorm needs 2 values per channel: one sample is enough unless the encoder's deepest map
    # is 1x1 (image_size / 2**encoder_depth < 2)
    one_by_one = isinstance(size, int) and isinstance(depth, int) and size // 2**depth < 2
    for key in ("batch_size", "dataset.batch_size"):  # batch_size first: the one users type
        _positive_int(cfg, key, "8")
        if OmegaConf.select(cfg, key, default=None) == 1 and one_by_one:
            raise ConfigError(
                f"{key}=1 at dataset.image_size={size}: the encoder's deepest map is 1x1, where its "
                f"BatchNorm layers need at least 2 samples per training batch (e.g. {key}=2); "
                "dataset.eval_batch_size may be 1."
            )


def _largest(size: int, min_side: int, divisible: bool) -> int:
    """The most stride-2 halvings that keep ``size`` at least ``min_side`` (and exact if asked)."""
    n = 0
    while size // 2 ** (n + 1) >= min_side and not (divisible and size % 2 ** (n + 1)):
        n += 1
    return n


def check_gan(cfg: DictConfig, node: str) -> None:
    """The GAN recipe at ``node`` (``aug.gan`` in train.py, ``gan`` in train_gan.py) can train on
    ``dataset.image_size`` images: keys are named with the prefix the user types."""
    for name in ("steps", "gpu_steps", "cpu_steps", "batch_size"):
        _positive_int(cfg, f"{node}.{name}", "8" if name == "batch_size" else "800")
    size = OmegaConf.select(cfg, "dataset.image_size", default=None)
    depth = OmegaConf.select(cfg, f"{node}.module.depth", default=None)
    layers = OmegaConf.select(cfg, f"{node}.module.disc_layers", default=None)
    if size is None:
        return
    size = int(size)
    if depth is not None:
        _positive_int(cfg, f"{node}.module.depth", "4")
        side, fit = size // 2 ** int(depth), _largest(size, GAN_MIN_GENERATOR_SIDE, divisible=True)
        if int(depth) < 2 or size % 2 ** int(depth) or side < GAN_MIN_GENERATOR_SIDE:
            raise ConfigError(
                f"{node}.module.depth={depth}: the GAN's U-Net needs 2 levels or more, and "
                f"dataset.image_size={size} divisible by 2**depth with an innermost map of at least "
                f"{GAN_MIN_GENERATOR_SIDE}x{GAN_MIN_GENERATOR_SIDE} (e.g. {node}.module.depth={max(fit, 2)}, "
                "or change dataset.image_size)."
            )
    if layers is not None:
        _positive_int(cfg, f"{node}.module.disc_layers", "3")
        if size // 2 ** int(layers) < GAN_MIN_DISCRIMINATOR_SIDE:
            fit = max(_largest(size, GAN_MIN_DISCRIMINATOR_SIDE, divisible=False), 1)
            raise ConfigError(
                f"{node}.module.disc_layers={layers}: the PatchGAN discriminator halves "
                f"dataset.image_size={size} that often and needs at least a "
                f"{GAN_MIN_DISCRIMINATOR_SIDE}x{GAN_MIN_DISCRIMINATOR_SIDE} map left "
                f"(e.g. {node}.module.disc_layers={fit})."
            )


def check_gan_config(cfg: DictConfig) -> None:
    """The checks of ``src/train_gan.py``'s config (the recipe is at ``gan``)."""
    check_missing(cfg)
    _positive_int(cfg, "dataset.image_size", "128")
    check_gan(cfg, "gan")


def check_eval_datasets(cfg: DictConfig) -> None:
    """Each ``eval_datasets`` entry can score the trained model: the same classes, the training
    image size (the model's input size), and a folder that is there (or a generator that makes it),
    so that a mismatch stops the run before training, not after it."""
    from advaug.evaluation.external import external_sets

    train_name = OmegaConf.select(cfg, "dataset.name", default="?")
    classes, size = cfg.dataset.get("num_classes"), cfg.dataset.get("image_size")
    for ext in external_sets(cfg):
        other = ext.node.get("name") or ext.dataset
        if ext.node.get("num_classes") != classes:
            raise ConfigError(
                f"{ext.key}: dataset {other} has num_classes={ext.node.get('num_classes')} but the model trains on "
                f"dataset {train_name} with dataset.num_classes={classes}; a model scores only datasets of its "
                f"own classes: drop {other} from eval_datasets or give it num_classes={classes} masks."
            )
        if ext.image_size_given is not None and ext.image_size_given != size:
            raise ConfigError(
                f"{ext.key}: dataset {other} asks for image_size={ext.image_size_given} but the model trains on "
                f"dataset {train_name} at dataset.image_size={size}; external sets are read at the training "
                "size: drop image_size from the entry."
            )
        root = Path(str(ext.node.get("root")))
        if ext.node.get("generator") is None and not root.is_dir():
            hint = ext.node.get("prepare_hint") or "set its root (e.g. {dataset: folder, root: /path/to/data})"
            raise ConfigError(f"{ext.key}: dataset {other}: folder {root} does not exist. {hint}")


def check_config(cfg: DictConfig) -> None:
    """Refuse out-of-range values of a training config with one clear :class:`ConfigError`."""
    check_missing(cfg)
    _positive_int(cfg, "trainer.max_epochs", "10")
    min_epochs = OmegaConf.select(cfg, "trainer.min_epochs", default=None)
    max_epochs = OmegaConf.select(cfg, "trainer.max_epochs", default=None)
    if min_epochs is not None and max_epochs is not None and int(min_epochs) > int(max_epochs):
        raise ConfigError(
            f"trainer.min_epochs={min_epochs} is larger than trainer.max_epochs={max_epochs}: "
            f"lower trainer.min_epochs (e.g. trainer.min_epochs=1)."
        )
    _positive_int(cfg, "dataset.eval_batch_size", "8")
    check_data(cfg)
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed={seed}: must be a non-negative whole number (e.g. seed=1234).")
    check_image_size(cfg)
    check_eps_range(cfg)
    check_eps_used(cfg)
    check_model(cfg)
    check_optim(cfg)
    check_trainer(cfg)
    if OmegaConf.select(cfg, "aug.gan", default=None) is not None:
        check_gan(cfg, "aug.gan")
    check_folds(OmegaConf.select(cfg, "dataset.folds", default=None), OmegaConf.select(cfg, "dataset.fold", default=None))
    check_eval_datasets(cfg)
