"""Paired statistics with known answers: a constant gain, identical runs, CI coverage, Holm."""

import math

import numpy as np
import pytest

from advaug.statistics import (
    BETTER,
    NO_DIFFERENCE,
    NOT_TESTED,
    WORSE,
    holm,
    paired_difference,
    verdict,
)


def test_a_constant_gain_of_005_on_every_image_is_better():
    a = np.random.default_rng(0).uniform(0.5, 0.9, 30)
    r = paired_difference(a + 0.05, a)
    assert r.n == 30 and r.mean == pytest.approx(0.05)
    assert 0 < r.ci_low <= 0.05 + 1e-12 and r.ci_high == pytest.approx(0.05)
    assert r.p < 1e-6
    assert verdict(holm([r.p])[0], r.ci_low, r.ci_high) == BETTER
    assert verdict(r.p, r.ci_low, r.ci_high, lower_is_better=True) == WORSE  # e.g. HD95 going up


def test_identical_runs_show_no_difference():
    a = np.random.default_rng(1).uniform(0.5, 0.9, 25)
    r = paired_difference(a, a.copy())
    assert r.mean == 0 and r.ci_low <= 0 <= r.ci_high and r.p == 1.0  # all-zero: p = 1, no error
    assert verdict(r.p, r.ci_low, r.ci_high) == NO_DIFFERENCE


def test_noise_without_a_shift_contains_zero():
    rng = np.random.default_rng(2)
    a = rng.uniform(0.5, 0.9, 40)
    r = paired_difference(a + rng.normal(0, 0.01, 40), a)
    assert r.ci_low < 0 < r.ci_high and r.p > 0.05


def test_the_95_percent_interval_covers_the_true_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(3)
    truth, covered, trials = 0.02, 0, 400
    for i in range(trials):
        ref = rng.uniform(0.5, 0.9, 40)
        method = ref + truth + rng.normal(0, 0.05, 40)
        r = paired_difference(method, ref, n_resamples=2000, seed=i)
        covered += r.ci_low <= truth <= r.ci_high
    assert 0.90 <= covered / trials <= 0.99


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 with m = 3: 3*0.01 = 0.03; 2*0.03 = 0.06; max(0.06, 1*0.04) = 0.06
    assert holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    adjusted = holm([0.02, math.nan])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1])  # NaN is no comparison


def test_holm_changes_the_verdict_where_it_should():
    raw = [0.01, 0.03, 0.04]  # each below 0.05 alone; with its CI above 0 each is "better" uncorrected
    assert [verdict(p, 0.01, 0.03) for p in raw] == [BETTER] * 3
    assert [verdict(p, 0.01, 0.03) for p in holm(raw)] == [BETTER, NO_DIFFERENCE, NO_DIFFERENCE]


def test_verdict_needs_the_interval_on_the_same_side_and_a_p_value():
    assert verdict(0.001, -0.01, 0.02) == NO_DIFFERENCE  # significant p but the CI holds 0
    assert verdict(0.001, -0.03, -0.01) == WORSE
    assert verdict(math.nan, 0.1, 0.2) == NOT_TESTED


def test_pairs_with_a_missing_value_are_dropped_and_one_pair_is_not_tested():
    r = paired_difference([0.5, math.nan, 0.7, 0.9], [0.4, 0.5, 0.6, 0.8])
    assert r.n == 3 and r.mean == pytest.approx(0.1)
    one = paired_difference([0.5], [0.4])
    assert one.n == 1 and math.isnan(one.p) and math.isnan(one.ci_low)
    with pytest.raises(ValueError, match="one length"):
        paired_difference([1, 2], [1])
