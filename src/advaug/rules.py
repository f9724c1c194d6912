"""The value rules that several parts of advaug enforce: one function and one message each.

Callers pass the key the user wrote (``aug.eps``, ``robustness.methods``, ``dataset.num_classes``),
so the same rule reads the same wherever it fires: the config check before a run, the constructor
of the callback or model that uses the value, or a direct call of the pure functions.
"""

from __future__ import annotations

from numbers import Real

import torch
from torch import Tensor

from advaug.errors import ConfigError

# the one spelling of each attack, in configs (aug=invfgsm, robustness.methods=[invfgsm]) and code
ATTACKS = ("fgsm", "invfgsm", "pgd", "invpgd")
SINGLE_STEP = ("fgsm", "invfgsm")
# an attack's forward/backward: fp16 flushes small input gradients to 0
ATTACK_PRECISIONS = ("fp32", "bf16")
LABELS = ("true", "pred")
EPS_SAMPLING = ("fixed", "uniform")
# AdvProp's auxiliary BatchNorm (models/twin_norm.py): none, twin statistics, twin statistics + affine
AUX_NORMS = ("none", "stats", "affine")


def one_of(value: object, choices: tuple, key: str, hint: str) -> object:
    """``value`` if it is one of ``choices``; else one error: ``key=value: hint``."""
    if value not in choices:
        raise ConfigError(f"{key}={value!r}: {hint}")
    return value


def check_attack(method: str, key: str = "method") -> str:
    """``method`` is one of :data:`ATTACKS`; returned as it is spelled there."""
    if method not in ATTACKS:
        raise ConfigError(f"{key}={method!r} is not an attack: choose one of {', '.join(ATTACKS)}.")
    return method


def check_eps(eps: float | Tensor, key: str = "eps") -> None:
    """A perturbation size (a number or a per-sample tensor) lies in [0, 1], the image scale."""
    if isinstance(eps, Tensor):
        values, shown = eps.detach().float().cpu(), eps.tolist()
    elif isinstance(eps, Real) and not isinstance(eps, bool):
        values, shown = torch.tensor(float(eps)), eps
    else:
        values, shown = torch.tensor(float("nan")), eps
    if not torch.isfinite(values).all() or (values < 0).any() or (values > 1).any():
        raise ConfigError(
            f"{key}={shown}: eps is a perturbation size on the [0, 1] image scale and must lie in [0, 1] "
            "(the paper uses 0.0012, 0.0118, 0.1176 = 0.3, 3, 30 over 255)."
        )


def check_num_classes(num_classes: int, key: str = "num_classes", error: type[Exception] = ConfigError) -> None:
    """Background plus at least one class: with one output channel the cross-entropy (and so the
    attack's input gradient) is identically zero."""
    if int(num_classes) < 2:
        raise error(
            f"{key}={num_classes}: need background plus at least one class (2 for binary masks); "
            "a single output channel makes the cross-entropy and its input gradient identically zero."
        )


def check_steps(steps: int, key: str = "steps") -> int:
    """A multi-step attack takes at least one step."""
    if isinstance(steps, bool) or int(steps) < 1:
        raise ConfigError(f"{key}={steps}: a multi-step attack needs at least 1 step (e.g. {key}=10).")
    return int(steps)


def check_precision(precision: str, key: str = "precision") -> str:
    """The precision of an attack's forward/backward: one of :data:`ATTACK_PRECISIONS`."""
    return one_of(precision, ATTACK_PRECISIONS, key, "choose 'fp32' or 'bf16' (fp16 flushes small input gradients to 0).")


def check_labels(labels: str | bool, key: str = "labels") -> str:
    """``true`` (the ground-truth mask) or ``pred`` (the model's prediction); YAML's boolean
    ``true`` counts as ``"true"``. Returns the normalised spelling."""
    value = "true" if labels is True else str(labels).lower()
    if value not in LABELS:
        raise ConfigError(f"{key}={labels!r}: choose 'true' (ground truth) or 'pred' (the model's prediction).")
    return value


def check_eps_sampling(sampling: str, key: str = "eps_sampling") -> str:
    """``fixed`` (eps for every sample) or ``uniform`` (sigma ~ U(0, eps])."""
    return one_of(sampling, EPS_SAMPLING, key, "choose 'fixed' or 'uniform'.")


def check_batch_fraction(fraction: float | None, batch_size: int, key: str = "aug.batch_fraction") -> None:
    """``None`` (the pool joins the epoch), or a share in (0, 1) that puts at least one pool row
    and at least one clean row into a batch of ``batch_size`` (``round(fraction x batch_size)``)."""
    if fraction is None:
        return
    rows = round(float(fraction) * int(batch_size)) if isinstance(fraction, Real) else -1
    if not (isinstance(fraction, Real) and 0 < fraction < 1 and 1 <= rows < batch_size):
        raise ConfigError(
            f"{key}={fraction!r} with batch_size={batch_size} puts {max(rows, 0)} pool row(s) into a "
            f"batch: choose a share in (0, 1) giving 1 to {batch_size - 1} of {batch_size} rows "
            f"(e.g. {key}=0.25), or null to let the pool join the epoch."
        )


def check_fraction(fraction: float, key: str = "aug.fraction") -> float:
    """The share of the clean train set a producer copies into its pool, in (0, 1]."""
    ok = isinstance(fraction, Real) and not isinstance(fraction, bool) and 0.0 < float(fraction) <= 1.0
    if not ok:
        raise ConfigError(f"{key}={fraction!r}: must lie in (0, 1] (1.0 copies the whole train set).")
    return float(fraction)


def check_aux_norm(value: str, key: str = "model.aux_norm") -> str:
    """One of :data:`AUX_NORMS`: what the adversarial samples' twin BatchNorm layers own."""
    return one_of(
        value,
        AUX_NORMS,
        key,
        f"choose one of {', '.join(AUX_NORMS)} (none: one BatchNorm for all samples; stats: adversarial "
        "samples get their own BatchNorm statistics; affine: their own statistics and affine weight and bias).",
    )


# AdvChain (advaug/advchain/): the transforms of the chain in their fixed order, the divergences
# between the clean and the transformed prediction, and the norms of the additive noise's budget
CHAIN_TRANSFORMS = ("noise", "bias", "elastic", "affine")
DIVERGENCES = ("kl", "mse")
NOISE_NORMS = ("l2", "linf")


def check_budget(value: float, key: str, what: str = "the transform") -> float:
    """A transform's budget (a size, an angle, a scale change) or a loss weight is a finite
    number >= 0; 0 switches ``what`` off."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and value == value and 0 <= value < float("inf")
    if not ok:
        raise ConfigError(f"{key}={value!r}: must be a finite number >= 0 (0 switches {what} off).")
    return float(value)


def check_divergence(value: str, key: str = "aug.divergence") -> str:
    """One of :data:`DIVERGENCES`, the distance between the clean and the transformed prediction."""
    return one_of(value, DIVERGENCES, key, "choose 'kl' (KL divergence of the probabilities) or 'mse' (squared difference).")


def check_noise_norm(value: str, key: str = "aug.noise.norm") -> str:
    """The norm the additive noise's budget is measured in: one of :data:`NOISE_NORMS`."""
    return one_of(value, NOISE_NORMS, key, "choose 'l2' (per image) or 'linf' (per pixel).")


def check_chain_transforms(names, key: str = "aug.transforms") -> tuple[str, ...]:
    """A non-empty selection of :data:`CHAIN_TRANSFORMS`, each once; returned in the chain's order."""
    names = [names] if isinstance(names, str) else list(names or [])
    unknown = [n for n in names if n not in CHAIN_TRANSFORMS]
    if not names or unknown or len(set(names)) != len(names):
        raise ConfigError(
            f"{key}={names}: choose one or more of {', '.join(CHAIN_TRANSFORMS)}, each once "
            f"(e.g. {key}=[noise,bias])."
        )
    return tuple(n for n in CHAIN_TRANSFORMS if n in names)


def check_count(value: int, key: str, minimum: int) -> int:
    """A whole number of at least ``minimum`` (iterations, control points, batch sizes)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}={value!r}: must be a whole number >= {minimum}.")
    return value


def check_positive(value: float, key: str) -> float:
    """A finite number > 0 (a step size, a smoothing width)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 < value < float("inf"):
        raise ConfigError(f"{key}={value!r}: must be a finite number > 0.")
    return float(value)


def check_scale_budget(value: float, key: str = "aug.affine.scale") -> float:
    """A scale change below 1: the smallest scale, 1 - value, must stay positive."""
    if check_budget(value, key) >= 1:
        raise ConfigError(f"{key}={value!r}: must lie in [0, 1) (the scale 1 - {key} must stay positive; e.g. 0.2).")
    return float(value)


def check_folds(folds: int | None, fold: int | None, key: str = "dataset") -> None:
    """k-fold cross-validation: ``folds`` >= 2 and ``fold`` one of 0..folds-1, both set or neither."""
    if folds is None and fold is None:
        return
    whole = all(isinstance(v, int) and not isinstance(v, bool) for v in (folds, fold))
    if not whole or folds < 2 or not 0 <= fold < folds:
        raise ConfigError(
            f"{key}.folds={folds} {key}.fold={fold}: k-fold cross-validation needs {key}.folds >= 2 and "
            f"{key}.fold one of 0..folds-1 (e.g. {key}.folds=5 {key}.fold=0; a sweep: -m {key}.fold=0,1,2,3,4), "
            f"or both null for one split."
        )
