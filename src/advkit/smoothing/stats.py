"""Exact binomial statistics for randomized smoothing.

* One-sided Clopper–Pearson bounds (Clopper & Pearson 1934, "The use of confidence or fiducial limits
  illustrated in the case of the binomial"): for k successes in n trials the lower bound at level
  1 − α is the α-quantile of Beta(k, n − k + 1) (0 when k = 0); the upper bound is the
  (1 − α)-quantile of Beta(k + 1, n − k) (1 when k = n).  Cohen, Rosenfeld & Kolter (2019) call the
  lower bound ``LowerConfBound(n_A, n, 1 − α)``; their code computes it as the lower end of a
  two-sided interval at 2α, which is the same number.
* The two-sided exact binomial test of H₀: p = ½ (``BinomPValue`` in PREDICT).
* Φ⁻¹, the standard normal quantile.

All functions are vectorised over numpy arrays (or scalars) and return float64.
"""
from __future__ import annotations

import numpy as np
from scipy import stats as _st

from ..errors import ConfigError


def _check(k, n, alpha) -> tuple[np.ndarray, np.ndarray]:
    k = np.asarray(k, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n):
        raise ConfigError(f"need 0 <= k <= n and n >= 1, got k={k.tolist()} n={n.tolist()}")
    if not np.all((0 < np.asarray(alpha)) & (np.asarray(alpha) < 1)):
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha}")
    return k, n


def clopper_pearson_lower(k, n, alpha) -> np.ndarray:
    """One-sided lower confidence bound on p at level 1 − ``alpha`` for ``k`` successes in ``n`` trials."""
    k, n = _check(k, n, alpha)
    with np.errstate(invalid="ignore"):
        lo = _st.beta.ppf(alpha, np.maximum(k, 1), n - k + 1)
    return np.where(k == 0, 0.0, lo).astype(np.float64)


def clopper_pearson_upper(k, n, alpha) -> np.ndarray:
    """One-sided upper confidence bound on p at level 1 − ``alpha``."""
    k, n = _check(k, n, alpha)
    with np.errstate(invalid="ignore"):
        hi = _st.beta.ppf(1 - np.asarray(alpha, dtype=np.float64), k + 1, np.maximum(n - k, 1))
    return np.where(k == n, 1.0, hi).astype(np.float64)


def binom_test_pvalue(k, n, p: float = 0.5) -> np.ndarray:
    """Two-sided exact binomial test p-value of H₀: success probability = ``p`` (scipy's ``binomtest``)."""
    k = np.atleast_1d(np.asarray(k, dtype=np.int64))
    n = np.broadcast_to(np.asarray(n, dtype=np.int64), k.shape)
    out = np.ones(k.shape, dtype=np.float64)
    for i, (ki, ni) in enumerate(zip(k.ravel(), n.ravel())):
        if ni > 0:
            out.ravel()[i] = _st.binomtest(int(ki), int(ni), p).pvalue
    return out


def norm_ppf(p) -> np.ndarray:
    """Φ⁻¹(p), the standard normal quantile."""
    return np.asarray(_st.norm.ppf(p), dtype=np.float64)


def norm_cdf(x) -> np.ndarray:
    """Φ(x), the standard normal distribution function."""
    return np.asarray(_st.norm.cdf(x), dtype=np.float64)


def max_radius(sigma: float, n: int, alpha: float) -> float:
    """The largest radius CERTIFY can return with ``n`` samples: σ·Φ⁻¹(α^(1/n)) (all n samples agree)."""
    return float(sigma * norm_ppf(float(clopper_pearson_lower(n, n, alpha))))
