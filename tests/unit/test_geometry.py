import itertools
import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from advkit import geometry

NORMS = ["linf", "l2", "l1"]


@pytest.mark.parametrize("p", NORMS)
def test_projection_is_idempotent_and_inside(p, gen):
    d = torch.randn(16, 3, 4, 4, generator=gen) * 3
    eps = 0.7
    once = geometry.project(d, p, eps)
    assert (geometry.norm(once, p) <= eps * (1 + 1e-6)).all()
    torch.testing.assert_close(geometry.project(once, p, eps), once, atol=1e-6, rtol=0)


@pytest.mark.parametrize("p", NORMS)
def test_projection_is_identity_inside_the_ball(p, gen):
    d = torch.randn(8, 10, generator=gen)
    d = d / geometry.norm(d, p).view(-1, 1) * 0.5  # norm 0.5 < eps
    torch.testing.assert_close(geometry.project(d, p, 1.0), d)


@pytest.mark.parametrize("p", NORMS)
def test_per_sample_eps(p, gen):
    d = torch.randn(4, 6, generator=gen) * 5
    eps = torch.tensor([0.1, 0.5, 1.0, 2.0])
    out = geometry.project(d, p, eps)
    assert (geometry.norm(out, p) <= eps * (1 + 1e-6)).all()


def test_l1_projection_is_the_euclidean_projection_against_brute_force():
    rng = np.random.default_rng(0)
    for trial in range(20):
        d = rng.normal(size=4) * 2
        eps = float(rng.uniform(0.1, 2.0))
        ours = geometry.project_l1(torch.tensor(d[None], dtype=torch.float64), eps)[0].numpy()
        cons = {"type": "ineq", "fun": lambda v: eps - np.abs(v).sum()}
        best = None
        for signs in itertools.product([-1, 1], repeat=4):  # split the L1 ball into orthants: each is a convex QP
            s = np.array(signs)
            res = minimize(lambda v: ((v - d) ** 2).sum(), np.zeros(4), method="SLSQP",
                           constraints=[{"type": "ineq", "fun": lambda v, s=s: eps - (s * v).sum()}],
                           bounds=[(0, None) if si > 0 else (None, 0) for si in s])
            if best is None or res.fun < best.fun:
                best = res
        assert np.abs(ours).sum() <= eps + 1e-9
        assert ((ours - d) ** 2).sum() <= best.fun + 1e-6
        np.testing.assert_allclose(ours, best.x, atol=2e-3)  # SLSQP is only approximately optimal


@pytest.mark.parametrize("p", NORMS)
def test_steepest_ascent_is_unit_and_maximises_inner_product(p, gen):
    g = torch.randn(32, 20, generator=gen)
    d = geometry.steepest_ascent(g, p)
    torch.testing.assert_close(geometry.norm(d, p), torch.ones(32))
    best = (g * d).sum(1)
    torch.testing.assert_close(best, geometry.dual_norm(g, p))  # Hölder: max <g,d> over the unit ball
    for _ in range(20):  # random unit vectors never do better
        r = torch.randn(32, 20, generator=gen)
        r = r / geometry.norm(r, p).view(-1, 1)
        assert ((g * r).sum(1) <= best + 1e-5).all()


def test_zero_gradient_gives_zero_direction():
    for p in NORMS:
        assert (geometry.steepest_ascent(torch.zeros(2, 5), p) == 0).all()


@pytest.mark.parametrize("p", NORMS)
def test_sample_ball_inside_and_spread(p, gen):
    s = geometry.sample_ball((2000, 3), p, 0.5, generator=gen)
    n = geometry.norm(s, p)
    assert (n <= 0.5 + 1e-6).all()
    # uniform in a 3-d ball: P(norm <= r·eps) = r^3, so the median radius is 0.5^(1/3)·eps
    assert abs(n.median().item() / 0.5 - 0.5 ** (1 / 3)) < 0.05


def test_sample_ball_uses_only_the_generator():
    state = torch.get_rng_state()
    a = geometry.sample_ball((3, 4), "l2", 1.0, generator=torch.Generator().manual_seed(3))
    b = geometry.sample_ball((3, 4), "l2", 1.0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(state, torch.get_rng_state())


def test_norms_match_torch():
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(geometry.norm(x, "l2"), x.flatten(1).norm(dim=1))
    torch.testing.assert_close(geometry.norm(x, "l1"), x.flatten(1).abs().sum(1))
    torch.testing.assert_close(geometry.norm(x, "linf"), x.flatten(1).abs().max(1).values)
    with pytest.raises(ValueError):
        geometry.norm(x, "l3")
