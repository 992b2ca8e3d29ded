"""Accuracies with binomial confidence intervals, per-class accuracy and confusion matrices.

Every accuracy advkit reports is k successes out of n Bernoulli trials, so it carries an interval:

* Wilson (1927), "Probable inference, the law of succession, and statistical inference": the score
  interval  (p̂ + z²/2n ± z·sqrt(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n),  z = Φ⁻¹(1 − α/2).
  Symbols: p̂ → ``k / n``, z → ``z``.  The default: good coverage at small n and near 0 or 1.
* Clopper & Pearson (1934): the exact interval from Beta quantiles,
  [B(α/2; k, n−k+1), B(1−α/2; k+1, n−k)], conservative.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from ..errors import ConfigError

CI_METHODS = ("wilson", "clopper-pearson")


def _check(k: int, n: int, alpha: float) -> None:
    if n < 0 or k < 0 or k > n:
        raise ConfigError(f"expected 0 <= k <= n, got k={k}, n={n}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha}")


def wilson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Two-sided Wilson score interval for k successes in n trials; (0, 1) when n = 0."""
    _check(k, n, alpha)
    if n == 0:
        return 0.0, 1.0
    z = float(stats.norm.ppf(1 - alpha / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, min(p, centre - half))  # exactly 0 / 1 at the ends, as in exact arithmetic
    hi = 1.0 if k == n else min(1.0, max(p, centre + half))
    return lo, hi


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Two-sided exact (Clopper–Pearson) interval; (0, 1) when n = 0."""
    _check(k, n, alpha)
    if n == 0:
        return 0.0, 1.0
    lo = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def interval(k: int, n: int, alpha: float = 0.05, method: str = "wilson") -> tuple[float, float]:
    if method == "wilson":
        return wilson(k, n, alpha)
    if method == "clopper-pearson":
        return clopper_pearson(k, n, alpha)
    raise ConfigError(f"CI method must be one of {', '.join(CI_METHODS)}, got {method!r}")


def accuracy(mask, alpha: float = 0.05, method: str = "wilson") -> dict:
    """``{"accuracy", "correct", "n", "ci": [lo, hi], "ci_method", "alpha"}`` for a boolean mask."""
    m = np.asarray(mask, dtype=bool)
    k, n = int(m.sum()), int(m.size)
    lo, hi = interval(k, n, alpha, method)
    return {"accuracy": (k / n) if n else float("nan"), "correct": k, "n": n, "ci": [lo, hi],
            "ci_method": method, "alpha": alpha}


def per_class(mask, labels, num_classes: int, alpha: float = 0.05, method: str = "wilson") -> list[dict]:
    """One :func:`accuracy` summary per class (``class`` key added), in class order."""
    m, lab = np.asarray(mask, dtype=bool), np.asarray(labels)
    out = []
    for c in range(num_classes):
        row = accuracy(m[lab == c], alpha, method)
        row["class"] = c
        out.append(row)
    return out


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """``M[i, j]`` = number of samples of true class i predicted as j."""
    lab, pred = np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (lab, pred), 1)
    return m


def top_k_correct(logits: np.ndarray, labels, k: int) -> np.ndarray:
    """Per-sample bool: the label is among the ``k`` largest logits."""
    z = np.asarray(logits)
    k = min(k, z.shape[1])
    top = np.argpartition(-z, k - 1, axis=1)[:, :k]
    return (top == np.asarray(labels)[:, None]).any(1)


# ------------------------------------------------------------------ chance level
#: Significance of the "better than chance" test (one-sided, Wilson lower bound at 1 − 2α coverage).
CHANCE_ALPHA = 0.01


def chance_accuracy(labels, num_classes: int) -> float:
    """Accuracy of the best constant classifier: max(1/C, the largest class frequency in ``labels``)."""
    labels = np.asarray(labels).reshape(-1)
    base = 1.0 / max(1, int(num_classes))
    if labels.size == 0:
        return base
    return max(base, float(np.bincount(labels.astype(np.int64)).max()) / labels.size)


def at_chance(correct: int, n: int, chance: float, alpha: float = CHANCE_ALPHA) -> bool:
    """True when ``correct``/``n`` is not significantly above ``chance``.

    The one source of truth for "chance level" (training's stall check and evaluation's
    ``chance-level`` finding): the lower end of the two-sided Wilson interval at level 2·``alpha``
    (a one-sided test at ``alpha``) does not exceed ``chance``.  With n = 0 nothing is known: False.
    """
    if n <= 0:
        return False
    return wilson(int(correct), int(n), 2 * alpha)[0] <= chance
