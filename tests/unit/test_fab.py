"""FAB: the hyperplane ∩ box projections against LP/QP solvers, budget semantics, FAB-T."""
import numpy as np
import pytest
import torch
from scipy.optimize import linprog, minimize

from advkit.attacks.fab import FAB, project_hyperplane_box
from advkit.errors import ConfigError


def _instance(seed, d=6):
    g = np.random.default_rng(seed)
    t = g.uniform(0, 1, d)
    w = g.normal(size=d)
    c = g.normal() * 0.5
    return t, w, c, -t, 1 - t


def _lp(w, c, lo, hi, norm):
    d = len(w)
    if norm == "linf":  # variables (δ, s): min s, -s <= δ_i <= s
        cost = np.r_[np.zeros(d), 1.0]
        a_ub = np.block([[np.eye(d), -np.ones((d, 1))], [-np.eye(d), -np.ones((d, 1))]])
        res = linprog(cost, A_ub=a_ub, b_ub=np.zeros(2 * d), A_eq=np.r_[w, 0.0][None], b_eq=[c],
                      bounds=list(zip(lo, hi)) + [(0, None)])
        return res.status == 0, (res.fun if res.status == 0 else None)
    # l1: δ = p - m, p, m >= 0
    cost = np.ones(2 * d)
    bounds = [(0, max(h, 0)) for h in hi] + [(0, max(-l, 0)) for l in lo]
    res = linprog(cost, A_eq=np.r_[w, -w][None], b_eq=[c], bounds=bounds)
    return res.status == 0, (res.fun if res.status == 0 else None)


@pytest.mark.parametrize("norm", ["linf", "l1"])
@pytest.mark.parametrize("seed", range(8))
def test_projection_matches_linear_program(norm, seed):
    t, w, c, lo, hi = _instance(seed)
    feasible, best = _lp(w, c, lo, hi, norm)
    T = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64)[None]  # noqa: E731
    d = project_hyperplane_box(T(t), T(w), T([c])[0], T(lo), T(hi), norm)[0].numpy()
    assert (d >= lo - 1e-9).all() and (d <= hi + 1e-9).all()
    if feasible:
        assert w @ d == pytest.approx(c, abs=1e-7)
        val = np.abs(d).max() if norm == "linf" else np.abs(d).sum()
        assert val == pytest.approx(best, rel=1e-6, abs=1e-9)
    else:  # out of reach: the box point furthest along sign(c)·w
        assert np.sign(c) * (w @ d) == pytest.approx(np.sign(c) * w @ np.where(np.sign(c) * w > 0, hi, lo))


@pytest.mark.parametrize("seed", range(8))
def test_l2_projection_matches_qp(seed):
    t, w, c, lo, hi = _instance(seed)
    T = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64)[None]  # noqa: E731
    d = project_hyperplane_box(T(t), T(w), T([c])[0], T(lo), T(hi), "l2")[0].numpy()
    res = minimize(lambda v: v @ v, np.zeros_like(w), jac=lambda v: 2 * v, method="SLSQP",
                   bounds=list(zip(lo, hi)), constraints=[{"type": "eq", "fun": lambda v: w @ v - c}],
                   options={"ftol": 1e-12, "maxiter": 500})
    if res.success and abs(w @ res.x - c) < 1e-6:
        assert w @ d == pytest.approx(c, abs=1e-7)
        assert d @ d == pytest.approx(res.x @ res.x, rel=1e-4, abs=1e-9)
    assert (d >= lo - 1e-9).all() and (d <= hi + 1e-9).all()


@pytest.mark.parametrize("threat", ["linf:0.12", "l2:0.8", "l1:3.0"])
def test_fab_budget_semantics(digits_model, threat, gen):
    clf, x, y = digits_model
    x, y = x[:30], y[:30]
    atk = FAB(threat, steps=20)
    res = atk(clf, x, y, generator=gen)
    assert atk.threat.contains(res.x_adv, x).all()
    assert res.success.any()
    # failures return the clean point; successes are misclassified
    assert torch.equal(res.x_adv[~res.success], x[~res.success])
    assert (res.predictions[res.success] != y[res.success]).all()


def test_fab_targeted_and_names(digits_model, gen):
    clf, x, y = digits_model
    x, y = x[:30], y[:30]
    ft = FAB("linf:0.15", n_targets=2, steps=20)
    assert ft.name == "fab-t" and FAB("linf:0.1").name == "fab"
    r = ft(clf, x, y, generator=gen)
    assert r.success.float().mean() > 0.3 and r.gradient_calls > 0
    t = (y + 1) % 10
    r2 = FAB("linf:0.3", steps=30)(clf, x, y, targets=t, generator=gen)
    assert torch.equal(r2.predictions[r2.success], t[r2.success]) and r2.success.any()


def test_fab_config_errors(digits_model):
    clf, x, y = digits_model
    with pytest.raises(ConfigError):
        FAB("linf:0.1", eta=0.5)
    with pytest.raises(ConfigError):
        FAB("linf:0.1", n_targets=2)(clf, x[:3], y[:3], targets=y[:3])
