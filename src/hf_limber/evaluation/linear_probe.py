"""The CLIP paper's linear probe (Radford et al. 2021, appendix A.3): L-BFGS logistic regression on
frozen image features, its L2 strength chosen on a validation split.

The paper sweeps C = 1/lambda from 1e-6 to 1e6 by a parametric binary search: start at every second
decade, then repeatedly halve the interval around the best value. Few-shot probes (k examples per
class) are the paper's comparison with zero-shot transfer (its figure 6).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class LinearProbeResult:
    accuracy: float
    validation_accuracy: float
    C: float
    train_examples: int


def _fit(train_x: np.ndarray, train_y: np.ndarray, C: float, max_iter: int):
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        # Few-shot sets have more classes than half their examples, which sklearn flags as "maybe regression".
        warnings.filterwarnings("ignore", message="The number of unique classes", category=UserWarning)
        return LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter).fit(train_x, train_y)


def _score(model, x: np.ndarray, y: np.ndarray) -> float:
    return float((model.predict(x) == y).mean())


def choose_C(
    train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
    refinements: int = 3, max_iter: int = 1000,
) -> tuple[float, float]:
    """(C, validation accuracy): best of 1e-6, 1e-4, ..., 1e6, then `refinements` halvings of the
    log-interval around the best (3 reach about 4 steps per decade)."""
    scores: dict[float, float] = {}

    def score(log_c: float) -> float:
        if log_c not in scores:
            scores[log_c] = _score(_fit(train_x, train_y, 10.0**log_c, max_iter), val_x, val_y)
        return scores[log_c]

    best, step = max(range(-6, 7, 2), key=lambda log_c: (score(log_c), -abs(log_c))), 2.0
    for _ in range(refinements):
        step /= 2
        # Ties go to the stronger regularisation (smaller C): it is the safer model.
        best = max((best - step, best, best + step), key=lambda log_c: (score(log_c), -log_c))
    return 10.0**best, scores[best]


def _numpy(x: torch.Tensor | np.ndarray | Sequence) -> np.ndarray:
    return x.numpy() if torch.is_tensor(x) else np.asarray(x)


def linear_probe(
    train_x: torch.Tensor | np.ndarray, train_y: Sequence[int], val_x: torch.Tensor | np.ndarray,
    val_y: Sequence[int], test_x: torch.Tensor | np.ndarray, test_y: Sequence[int], max_iter: int = 1000,
) -> LinearProbeResult:
    """Fit on train with C chosen on validation; report test accuracy."""
    train_x, val_x, test_x = map(_numpy, (train_x, val_x, test_x))
    train_y, val_y, test_y = map(_numpy, (train_y, val_y, test_y))
    if len(np.unique(train_y)) < 2:
        raise ValueError("A linear probe needs training examples of at least two classes.")
    C, val_accuracy = choose_C(train_x, train_y, val_x, val_y, max_iter=max_iter)
    model = _fit(train_x, train_y, C, max_iter)
    return LinearProbeResult(_score(model, test_x, test_y), val_accuracy, C, len(train_y))


def few_shot_indices(labels: Sequence[int], shots: int, seed: int = 0) -> list[int]:
    """`shots` random examples of every class that has that many (all of a class that has fewer)."""
    if shots < 1:
        raise ValueError(f"shots must be at least 1, got {shots}.")
    generator = np.random.default_rng(seed)
    labels = np.asarray(labels)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen += generator.choice(members, size=min(shots, len(members)), replace=False).tolist()
    return sorted(chosen)

