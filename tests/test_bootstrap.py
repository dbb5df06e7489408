"""Bootstrap intervals: scipy's resampling behind them, checked on cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from hf_limber.evaluation.bootstrap import mean_interval, paired_difference, ratio_interval, verdict


def test_the_mean_interval_matches_the_normal_theory_width_for_many_items():
    values = np.random.default_rng(0).normal(0.5, 0.2, size=400)
    interval = mean_interval(values)
    assert interval.low < values.mean() < interval.high and interval.estimate == pytest.approx(values.mean())
    expected_half_width = 1.96 * values.std(ddof=1) / np.sqrt(len(values))  # 0.0196
    assert (interval.high - interval.low) / 2 == pytest.approx(expected_half_width, rel=0.15)


def test_seeds_of_an_item_are_averaged_and_constant_values_give_a_point():
    per_seed = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    assert mean_interval(per_seed).estimate == pytest.approx(0.5)
    point = mean_interval([0.7, 0.7, 0.7])
    assert point.low == point.estimate == point.high == pytest.approx(0.7)
    with pytest.raises(ValueError, match="at least one item"):
        mean_interval([])


def test_ratio_interval_is_a_ratio_of_sums():
    hallucinated, mentioned = [0, 1, 0, 2] * 50, [1, 2, 1, 2] * 50
    interval = ratio_interval(hallucinated, mentioned)
    assert interval.estimate == pytest.approx(3 / 6)
    assert interval.low < 0.5 < interval.high < 0.6


def test_paired_differences_tell_a_real_gap_from_noise():
    rng = np.random.default_rng(1)
    shared = rng.normal(0, 1, size=300)  # scene difficulty both models share
    better, worse = shared + 0.2 + rng.normal(0, 0.1, 300), shared + rng.normal(0, 0.1, 300)
    assert verdict(paired_difference(better, worse)) == "holds"
    assert verdict(paired_difference(worse, better)) == "fails"
    assert verdict(paired_difference(worse, worse + rng.normal(0, 0.1, 300))) == "cannot be told apart"
    assert verdict(paired_difference(worse, better), higher_is_better=False) == "holds"  # e.g. CHAIR-i
    with pytest.raises(ValueError, match="same items"):
        paired_difference([1, 2], [1, 2, 3])
