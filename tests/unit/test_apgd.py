"""APGD: DLR against its definition, the checkpoint schedule against the paper, step-size rule, contract."""
import math

import pytest
import torch

from advkit import losses
from advkit.attacks.apgd import APGD, _State, project_l1_box
from advkit.attacks.schedules import APGD_FRACTIONS, apgd_checkpoints
from advkit.errors import ConfigError
from advkit.geometry import project_l1


def _dlr_by_definition(z, y):
    out = []
    for zi, yi in zip(z.tolist(), y.tolist()):
        srt = sorted(zi, reverse=True)
        other = max(v for j, v in enumerate(zi) if j != yi)
        out.append(-(zi[yi] - other) / (srt[0] - srt[2] + 1e-12))
    return torch.tensor(out)


def _dlr_targeted_by_definition(z, y, t):
    out = []
    for zi, yi, ti in zip(z.tolist(), y.tolist(), t.tolist()):
        srt = sorted(zi, reverse=True)
        out.append(-(zi[yi] - zi[ti]) / (srt[0] - 0.5 * (srt[2] + srt[3]) + 1e-12))
    return torch.tensor(out)


def test_dlr_matches_definition(gen):
    z = torch.randn(50, 7, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 7, (50,), generator=gen)
    t = (y + 1 + torch.randint(0, 6, (50,), generator=gen)) % 7
    assert torch.allclose(losses.dlr(z, y).float(), _dlr_by_definition(z, y).float(), atol=1e-6)
    assert torch.allclose(losses.dlr(z, y, t).float(), _dlr_targeted_by_definition(z, y, t).float(), atol=1e-6)
    # scale invariance, a defining property of DLR
    assert torch.allclose(losses.dlr(3 * z + 1, y), losses.dlr(z, y), atol=1e-9)


def _paper_checkpoints(n_iter):
    p = [0.0, 0.22]
    while True:
        nxt = p[-1] + max(p[-1] - p[-2] - 0.03, 0.06)
        if nxt > 1 + 1e-12:
            break
        p.append(nxt)
    return p, sorted({math.ceil(round(q * n_iter, 9)) for q in p[1:]})


@pytest.mark.parametrize("n_iter", [100, 200])
def test_checkpoints_follow_paper_formula_at_100_and_200(n_iter):
    p, expected = _paper_checkpoints(n_iter)
    assert [float(q) for q in APGD_FRACTIONS] == pytest.approx(p)
    assert list(apgd_checkpoints(n_iter)) == expected


@pytest.mark.parametrize("n_iter,expected", [(25, [5, 9, 12, 14] + list(range(15, 26))),
                                             (50, [11, 21, 30, 38, 45]), (10, list(range(2, 11)))])
def test_checkpoints_at_other_step_counts_follow_the_official_code_not_the_paper(n_iter, expected):
    """The official code's intervals max(⌊0.22N⌋,1), then −max(⌊0.03N⌋,1) down to max(⌊0.06N⌋,1) (checked
    against pyautoattack in tests/reference/test_official_apgd_trajectories.py)."""
    assert list(apgd_checkpoints(n_iter)) == expected
    assert expected != _paper_checkpoints(n_iter)[1]


def test_checkpoints_for_100_iterations_are_the_papers():
    assert apgd_checkpoints(100) == (22, 41, 57, 70, 80, 87, 93, 99)


def _state(n_inc, l_best, l_best_cp, reduced):
    n = len(n_inc)
    x = torch.zeros(n, 1, 2, 2)
    return _State(idx=torch.arange(n), x=x, x_adv=x + 1, x_best=x + 2, g=x + 3, g_best=x + 4,
                  step=torch.ones(n), n_inc=torch.tensor(n_inc, dtype=torch.float32),
                  l_best=torch.tensor(l_best), l_best_cp=torch.tensor(l_best_cp),
                  reduced=torch.tensor(reduced), l_prev=torch.zeros(n))


def test_step_halving_conditions():
    atk = APGD("linf:0.1", rho=0.75)
    # since = 20 steps: (a) 14 increases < 15 -> halve; (b) 16 increases, improved -> keep;
    # (c) 16 increases, no improvement, not reduced last time -> halve; (d) like (c) but reduced last time -> keep
    s = _state([14, 16, 16, 16], [1.0, 2.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [True, True, False, True])
    atk._checkpoint(s, 20)
    assert s.step.tolist() == [0.5, 1.0, 0.5, 1.0]
    halved = torch.tensor([True, False, True, False])
    assert torch.equal(s.x_adv[halved], s.x_best[halved])  # restart from the best point
    assert (s.x_adv[~halved] == 1).all() and (s.g[halved] == 4).all()
    assert s.reduced.tolist() == halved.tolist() and (s.n_inc == 0).all()


def test_step_halves_when_increases_equal_rho_times_the_interval_and_keeps_l_prev():
    """The official condition is ≤ ρ·interval (16 steps, ρ = 0.75: 12 increases halve), and the loss the
    next step is compared with stays the last iterate's, not the best one's."""
    atk = APGD("linf:0.1", rho=0.75)
    s = _state([12, 13], [2.0, 2.0], [1.0, 1.0], [True, True])
    s.l_prev = torch.tensor([0.5, 0.5])
    atk._checkpoint(s, 16)
    assert s.step.tolist() == [0.5, 1.0]
    assert s.l_prev.tolist() == [0.5, 0.5]


@pytest.mark.parametrize("threat", ["linf:0.1", "l2:0.5", "l1:2.0"])
def test_apgd_stays_in_ball_and_box_and_beats_fgsm(digits_model, threat, gen):
    from advkit.attacks.fgsm import FGSM
    clf, x, y = digits_model
    x, y = x[:60], y[:60]
    res = APGD(threat, steps=20)(clf, x, y, generator=gen)
    tm = APGD(threat).threat
    assert tm.contains(res.x_adv, x).all()
    assert res.robust_accuracy <= FGSM(threat)(clf, x, y).robust_accuracy
    assert res.gradient_calls > 0


def test_apgd_dlr_and_targeted_variants(digits_model, gen):
    clf, x, y = digits_model
    x, y = x[:30], y[:30]
    base = APGD("linf:0.08", steps=20)(clf, x, y, generator=gen).robust_accuracy
    t = APGD("linf:0.08", loss="dlr", n_targets=2, steps=10)
    assert t.name == "apgd-t"
    assert t(clf, x, y, generator=gen).robust_accuracy <= base + 0.05
    targets = (y + 1) % 10
    res = APGD("linf:0.3", steps=20)(clf, x, y, targets=targets, generator=gen)
    hit = res.predictions == targets
    assert torch.equal(hit | (clf.predict(x) == targets), res.success | (clf.predict(x) == targets))
    assert res.success.float().mean() > 0.8


def test_apgd_seed_reproducible_and_early_stop_counts(digits_model):
    clf, x, y = digits_model
    x, y = x[:40], y[:40]
    a = APGD("linf:0.1", steps=15)
    r1 = a(clf, x, y, generator=torch.Generator().manual_seed(3))
    r2 = a(clf, x, y, generator=torch.Generator().manual_seed(3))
    assert torch.equal(r1.x_adv, r2.x_adv)
    # without early stop every sample would take steps+1 gradient passes
    assert r1.gradient_calls < len(x) * 16


def test_apgd_eot_multiplies_gradient_passes(digits_model, gen):
    clf, x, y = digits_model
    x, y = x[:20], y[:20]
    r1 = APGD("linf:0.0", steps=5)(clf, x, y, generator=gen)
    r2 = APGD("linf:0.0", steps=5, eot=3)(clf, x, y, generator=gen)
    assert r2.gradient_calls == 3 * r1.gradient_calls > 0
    assert torch.equal(r1.x_adv, x)  # eps = 0 gives x


def test_apgd_config_errors(digits_model):
    clf, x, y = digits_model
    with pytest.raises(ConfigError):
        APGD("linf:0.1", steps=0)
    with pytest.raises(ConfigError):
        APGD("linf:0.1", loss="nope")
    with pytest.raises(ConfigError):
        APGD("linf:0.1", n_targets=3)(clf, x[:4], y[:4], targets=y[:4])
    with pytest.raises(ConfigError):
        APGD("linf:0.1", n_targets=10)(clf, x[:4], y[:4])


def test_l1_box_projection(gen):
    x = torch.rand(30, 1, 4, 4, generator=gen)
    v = torch.randn(30, 1, 4, 4, generator=gen)
    p = project_l1_box(v, x, 1.5, (0.0, 1.0))
    assert (p.flatten(1).abs().sum(1) <= 1.5 + 1e-5).all()
    assert ((x + p) >= -1e-7).all() and ((x + p) <= 1 + 1e-7).all()
    # away from the box it is the plain L1-ball projection
    xm = torch.full_like(x, 0.5)
    small = v * 0.1
    assert torch.allclose(project_l1_box(small, xm, 0.5, (0.0, 1.0)), project_l1(small, 0.5), atol=1e-5)
    # optimality: no feasible random point is closer to v than p
    for _ in range(200):
        q = project_l1_box(p + 0.05 * torch.randn(p.shape, generator=gen), x, 1.5, (0.0, 1.0))
        assert ((q - v).flatten(1).norm(dim=1) >= (p - v).flatten(1).norm(dim=1) - 1e-5).all()
