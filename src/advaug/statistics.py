"""Paired comparison of two methods scored on the same images (pure maths; scipy does the statistics).

- the mean paired difference ``method - reference`` over the images;
- its 95 % confidence interval by a bootstrap over images (``scipy.stats.bootstrap``, percentile
  method, the images resampled with replacement, ``n_resamples`` times, seeded);
- the two-sided Wilcoxon signed-rank p-value (``scipy.stats.wilcoxon``, zero differences dropped,
  scipy's default); all differences zero gives p = 1;
- :func:`holm`: Holm's step-down adjustment of a family of p-values;
- :func:`verdict`: better / worse only when the Holm-adjusted p is below alpha *and* the interval
  lies on that side of 0; otherwise no detectable difference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05
CONFIDENCE = 0.95
RESAMPLES = 10_000
BETTER, WORSE, NO_DIFFERENCE, NOT_TESTED = "better", "worse", "no detectable difference", "not tested"


@dataclass(frozen=True)
class Paired:
    """One paired comparison: ``n`` images, mean difference, its CI, the Wilcoxon p-value."""

    n: int
    mean: float
    ci_low: float
    ci_high: float
    p: float


def paired_difference(
    method: Sequence[float],
    reference: Sequence[float],
    n_resamples: int = RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Paired:
    """Compare per-image scores ``method[i]`` and ``reference[i]`` (the same image ``i``).

    Pairs where either value is NaN are left out. Fewer than 2 pairs: no interval and no p (NaN).
    """
    a, b = np.asarray(method, dtype=float), np.asarray(reference, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_difference: need two 1-D arrays of one length, got {a.shape} and {b.shape}")
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]
    mean = float(d.mean()) if len(d) else math.nan
    if len(d) < 2:
        return Paired(len(d), mean, math.nan, math.nan, math.nan)
    if np.all(d == d[0]):  # every resample has the same mean: the interval is that point
        low = high = float(d[0])
    else:
        ci = stats.bootstrap(
            (d,),
            np.mean,
            n_resamples=int(n_resamples),
            confidence_level=confidence,
            method="percentile",
            vectorized=True,
            rng=np.random.default_rng(seed),
        ).confidence_interval
        low, high = float(ci.low), float(ci.high)
    p = 1.0 if not np.any(d) else float(stats.wilcoxon(d).pvalue)  # scipy refuses all-zero differences
    return Paired(len(d), mean, low, high, p)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order: the k-th smallest of m p-values is
    multiplied by (m - k + 1), made non-decreasing in that order and capped at 1. NaN entries stay
    NaN and are not counted in m."""
    p = np.asarray(pvalues, dtype=float)
    finite = np.flatnonzero(np.isfinite(p))
    adjusted = np.full(len(p), math.nan)
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def verdict(
    p_adjusted: float, ci_low: float, ci_high: float, lower_is_better: bool = False, alpha: float = ALPHA
) -> str:
    """``better`` / ``worse`` (the method against the reference) or ``no detectable difference``;
    ``not tested`` without a p-value. A difference counts only when ``p_adjusted < alpha`` and the
    interval excludes 0 on the same side (the signed-rank test and the bootstrap of the mean agree)."""
    if not math.isfinite(p_adjusted):
        return NOT_TESTED
    if p_adjusted >= alpha or not (ci_low > 0 or ci_high < 0):
        return NO_DIFFERENCE
    higher = ci_low > 0
    return BETTER if higher != lower_is_better else WORSE
