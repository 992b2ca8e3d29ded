"""advkit.smoothing.stats against scipy / statsmodels on a grid of (k, n, α), to 1e-12."""
import itertools

import numpy as np
import pytest
from scipy import stats as st
from statsmodels.stats.proportion import binom_test, proportion_confint

from advkit.errors import ConfigError
from advkit.smoothing import stats

NS = [1, 2, 7, 50, 100, 1000, 100_000]
ALPHAS = [0.5, 0.05, 0.001, 1e-6]


def _grid():
    for n, a in itertools.product(NS, ALPHAS):
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            if 0 <= k <= n:
                yield k, n, a


@pytest.mark.parametrize("k,n,alpha", list(_grid()))
def test_clopper_pearson_matches_statsmodels(k, n, alpha):
    # Cohen et al.'s code: proportion_confint(nA, n, alpha=2*alpha, method="beta")[0]
    lo_ref, hi_ref = proportion_confint(k, n, alpha=2 * alpha, method="beta")
    lo_ref = 0.0 if k == 0 else lo_ref
    hi_ref = 1.0 if k == n else hi_ref
    assert abs(float(stats.clopper_pearson_lower(k, n, alpha)) - lo_ref) <= 1e-12
    assert abs(float(stats.clopper_pearson_upper(k, n, alpha)) - hi_ref) <= 1e-12


def test_vectorised_equals_scalar():
    ks = np.array([0, 5, 99, 100])
    out = stats.clopper_pearson_lower(ks, 100, 0.001)
    assert out.shape == (4,)
    for k, v in zip(ks, out):
        assert v == float(stats.clopper_pearson_lower(int(k), 100, 0.001))


def test_all_successes_gives_alpha_root():
    # Beta(n, 1) has CDF p^n, so the lower bound with k = n is exactly alpha^(1/n)
    for n, a in itertools.product([10, 1000, 100_000], [0.05, 0.001]):
        assert abs(float(stats.clopper_pearson_lower(n, n, a)) - a ** (1 / n)) <= 1e-12


@pytest.mark.parametrize("k,n", [(0, 1), (3, 10), (5, 10), (60, 100), (512, 1000), (900, 1000), (40, 40)])
def test_binomial_pvalue_matches_scipy_and_statsmodels(k, n):
    ours = float(stats.binom_test_pvalue(k, n, 0.5)[0])
    assert abs(ours - st.binomtest(k, n, 0.5).pvalue) <= 1e-12
    assert abs(ours - binom_test(k, n, 0.5, alternative="two-sided")) <= 1e-12


def test_norm_quantile_and_cdf():
    p = np.array([1e-9, 0.001, 0.5, 0.8413447460685429, 0.999])
    assert np.max(np.abs(stats.norm_ppf(p) - st.norm.ppf(p))) <= 1e-12
    assert abs(float(stats.norm_ppf(stats.norm_cdf(2.0))) - 2.0) <= 1e-9


def test_max_radius_reference_value():
    # DESIGN: σ·Φ⁻¹(α^(1/n)) = 3.81σ at n = 100k, α = 0.001 → 0.953 at σ = 0.25
    assert round(stats.max_radius(0.25, 100_000, 0.001), 3) == 0.953


def test_lower_bound_coverage_monte_carlo():
    rng = np.random.default_rng(0)
    p, n, alpha = 0.9, 60, 0.05
    k = rng.binomial(n, p, size=20_000)
    miss = np.mean(stats.clopper_pearson_lower(k, n, alpha) > p)
    assert miss <= alpha  # Clopper–Pearson is conservative
    assert miss > alpha / 5  # and not vacuous


def test_invalid_inputs_raise():
    with pytest.raises(ConfigError):
        stats.clopper_pearson_lower(5, 3, 0.01)
    with pytest.raises(ConfigError):
        stats.clopper_pearson_lower(1, 3, 0.0)
