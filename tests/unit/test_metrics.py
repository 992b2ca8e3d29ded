"""Binomial confidence intervals against statsmodels/scipy, per-class accuracy, confusion matrix."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from advkit.errors import ConfigError
from advkit.evaluation import metrics

statsmodels = pytest.importorskip("statsmodels.stats.proportion")

CASES = [(0, 10), (1, 10), (5, 10), (10, 10), (0, 1), (1, 1), (37, 50), (980, 1000), (3, 1000), (500, 1000)]


@pytest.mark.parametrize("k,n", CASES)
@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.2])
def test_wilson_matches_statsmodels(k, n, alpha):
    lo, hi = statsmodels.proportion_confint(k, n, alpha=alpha, method="wilson")
    assert metrics.wilson(k, n, alpha) == pytest.approx((lo, hi), abs=1e-12)


@pytest.mark.parametrize("k,n", CASES)
@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_clopper_pearson_matches_scipy_binomtest(k, n, alpha):
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=1 - alpha, method="exact")
    assert metrics.clopper_pearson(k, n, alpha) == pytest.approx((ci.low, ci.high), abs=1e-10)
    lo, hi = statsmodels.proportion_confint(k, n, alpha=alpha, method="beta")
    assert metrics.clopper_pearson(k, n, alpha) == pytest.approx((lo, hi), abs=1e-10)


def test_interval_properties():
    for k, n in CASES:
        for method in metrics.CI_METHODS:
            lo, hi = metrics.interval(k, n, 0.05, method)
            assert 0 <= lo <= k / n <= hi <= 1
    # exact intervals are wider (conservative) than Wilson's in the middle
    w, cp = metrics.wilson(50, 100), metrics.clopper_pearson(50, 100)
    assert cp[1] - cp[0] > w[1] - w[0]
    assert metrics.wilson(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("k,n,alpha,method", [(3, 2, 0.05, "wilson"), (-1, 2, 0.05, "wilson"),
                                              (1, 2, 0.0, "wilson"), (1, 2, 0.05, "bayes")])
def test_bad_arguments(k, n, alpha, method):
    with pytest.raises(ConfigError):
        metrics.interval(k, n, alpha, method)


def test_accuracy_summary_and_per_class():
    mask = np.array([1, 1, 0, 1, 0, 0, 1, 1], bool)
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    s = metrics.accuracy(mask)
    assert (s["accuracy"], s["correct"], s["n"]) == (5 / 8, 5, 8)
    assert s["ci"] == list(metrics.wilson(5, 8))
    pc = metrics.per_class(mask, labels, 4)
    assert [c["accuracy"] for c in pc[:3]] == pytest.approx([2 / 3, 1 / 2, 2 / 3])
    assert pc[3]["n"] == 0 and np.isnan(pc[3]["accuracy"])


def test_confusion_matrix_matches_sklearn():
    from sklearn.metrics import confusion_matrix
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    assert (metrics.confusion_matrix(y, p, 5) == confusion_matrix(y, p, labels=range(5))).all()


def test_top_k():
    z = np.array([[0.1, 0.5, 0.3, 0.2], [0.9, 0.0, 0.05, 0.04]])
    assert metrics.top_k_correct(z, [2, 3], 2).tolist() == [True, False]
    assert metrics.top_k_correct(z, [2, 3], 4).tolist() == [True, True]
    assert metrics.top_k_correct(z, [1, 0], 1).tolist() == [True, True]
