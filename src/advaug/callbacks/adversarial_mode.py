"""``aug.mode`` selects the adversarial producer's class: ``regenerate`` (attack the train set
with the current weights, :class:`RegenerateAdversarial`) or ``free`` (reuse the training
gradient, :class:`FreeAdversarial`)."""

from __future__ import annotations

from typing import Any

from advaug.callbacks.adversarial import RegenerateAdversarial
from advaug.callbacks.free_adversarial import FreeAdversarial
from advaug.errors import ConfigError

MODES = {"regenerate": RegenerateAdversarial, "free": FreeAdversarial}
# settings of the attack itself, which free mode does not run (it takes the training gradient);
# random_start is not among them: FreeAdversarial refuses it rather than ignore it
REGENERATE_ONLY = ("attack_batch_size", "steps", "step_size", "precision")


def adversarial_augmentation(
    method: str = "fgsm", mode: str = "regenerate", **settings: Any
) -> RegenerateAdversarial | FreeAdversarial:
    """The producer of ``mode`` for ``method``, built from ``settings`` (the ``aug`` config's keys)."""
    if mode not in MODES:
        raise ConfigError(f"aug.mode={mode!r}: choose 'regenerate' or 'free'.")
    if mode == "free":
        settings = {k: v for k, v in settings.items() if k not in REGENERATE_ONLY}
    return MODES[mode](method, **settings)
