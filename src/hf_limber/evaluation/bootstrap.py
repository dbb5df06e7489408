"""Bootstrap confidence intervals over evaluated items (scenes), with scipy's `stats.bootstrap`.

Every headline number of a LiMBeR evaluation is a mean over scenes (recall, CIDEr-D, VQA accuracy,
loops) or a ratio of sums over scenes (CHAIR-i: hallucinated / all mentions); resampling scenes
gives its interval. Comparisons of two models on the same scenes (and seeds) resample the paired
differences, so the scene-to-scene variation both share cancels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike

CONFIDENCE = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile-bootstrap interval."""

    estimate: float
    low: float
    high: float
    confidence: float = CONFIDENCE

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _bootstrap(data: tuple[np.ndarray, ...], statistic, estimate: float, paired: bool, seed: int) -> Interval:
    from scipy.stats import bootstrap

    if len(data[0]) < 2 or all(np.all(column == column.flat[0]) for column in data):
        return Interval(estimate, estimate, estimate)  # nothing to resample: the interval is the point
    result = bootstrap(data, statistic, paired=paired, vectorized=True, axis=0, confidence_level=CONFIDENCE,
                       n_resamples=RESAMPLES, method="percentile", rng=np.random.default_rng(seed))
    return Interval(estimate, float(result.confidence_interval.low), float(result.confidence_interval.high))


def mean_interval(values: ArrayLike, seed: int = 0) -> Interval:
    """The mean over items and its interval. ``values``: one number per item, or items x seeds (an
    item's seeds stay together when items are resampled: their mean is the item's score)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("No values to average: evaluate at least one item.")
    if array.ndim == 2:
        array = array.mean(axis=1)
    return _bootstrap((array,), lambda sample, axis: sample.mean(axis=axis), float(array.mean()), False, seed)


def ratio_interval(numerators: ArrayLike, denominators: ArrayLike, seed: int = 0) -> Interval:
    """sum(numerators) / sum(denominators) over items (e.g. CHAIR-i) and its interval."""
    top, bottom = np.asarray(numerators, dtype=np.float64), np.asarray(denominators, dtype=np.float64)
    estimate = float(top.sum() / bottom.sum()) if bottom.sum() else 0.0

    def statistic(top_sample: np.ndarray, bottom_sample: np.ndarray, axis: int) -> np.ndarray:
        totals = bottom_sample.sum(axis=axis)
        return np.where(totals > 0, top_sample.sum(axis=axis) / np.maximum(totals, 1e-12), 0.0)

    return _bootstrap((top, bottom), statistic, estimate, True, seed)


def paired_difference(a: ArrayLike, b: ArrayLike, seed: int = 0) -> Interval:
    """mean(a) - mean(b) over the same items (and seeds), with the interval of the paired bootstrap."""
    first, second = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if first.shape != second.shape:
        raise ValueError(f"Paired scores need the same items: shapes {first.shape} and {second.shape}.")
    return mean_interval(first - second, seed)


def verdict(difference: Interval, higher_is_better: bool = True) -> str:
    """What a paired difference says about "the first is better": holds, fails, or cannot be told apart."""
    low, high = (difference.low, difference.high) if higher_is_better else (-difference.high, -difference.low)
    if low > 0:
        return "holds"
    if high < 0:
        return "fails"
    return "cannot be told apart"
