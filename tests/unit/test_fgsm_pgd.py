"""FGSM, PGD and BestOf: behaviour on the digits CNN and configuration checks."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from advkit.attacks import FGSM, PGD, BestOf
from advkit.attacks.pgd import sparse_l1_direction
from advkit.errors import ConfigError
from advkit.losses import margin
from advkit.threat import ThreatModel

LINF = ThreatModel("linf", 0.2)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def digits(digits_model):
    clf, x, y = digits_model
    return clf, x[:120], y[:120]


def test_default_step_size_is_madry_2_5_eps_over_steps():
    assert PGD(threat=LINF, steps=10).alpha == pytest.approx(2.5 * 0.2 / 10)
    assert PGD(threat=LINF, steps=10, step_size=0.01).alpha == 0.01


@pytest.mark.parametrize("kwargs", [{"steps": 0}, {"step_size": -1.0}, {"loss": "hinge"}, {"eot": 0},
                                    {"l1_sparsity": 0.0}, {"threat": "linf"}])
def test_pgd_rejects_bad_configuration(kwargs):
    with pytest.raises(ConfigError):
        PGD(**{"threat": LINF, **kwargs})


def test_dlr_needs_three_classes(digits):
    clf, x, y = digits
    two = torch.nn.Sequential(clf.net, torch.nn.Linear(10, 2))
    from advkit.model import Classifier
    with pytest.raises(ConfigError, match="at least 3 classes"):
        PGD(threat=LINF, loss="dlr", steps=2)(Classifier(two, num_classes=2), x[:4], torch.zeros(4, dtype=torch.long))


def test_pgd_is_stronger_than_fgsm_and_stays_in_the_ball(digits):
    clf, x, y = digits
    fgsm = FGSM(threat=LINF)(clf, x, y)
    pgd = PGD(threat=LINF, steps=20)(clf, x, y, generator=_gen())
    assert pgd.robust_accuracy < fgsm.robust_accuracy
    assert (pgd.distance <= 0.2 + 1e-6).all() and pgd.x_adv.min() >= 0 and pgd.x_adv.max() <= 1


@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 0.6), ("l1", 2.0)])
def test_best_iterate_never_loses_to_the_last_iterate(digits, norm, eps):
    clf, x, y = digits
    threat = ThreatModel(norm, eps)
    best = PGD(threat=threat, steps=15, random_start=False)(clf, x, y)
    last = PGD(threat=threat, steps=15, random_start=False, keep_best=False)(clf, x, y)
    assert (best.success | ~last.success).all()
    assert best.gradient_calls <= last.gradient_calls  # broken samples stop early


def test_best_iterate_keeps_the_largest_loss_when_nothing_succeeds(digits):
    clf, x, y = digits
    threat = ThreatModel("linf", 0.02)  # too small to break most samples
    best = PGD(threat=threat, steps=10, random_start=False, loss="margin")(clf, x, y)
    last = PGD(threat=threat, steps=10, random_start=False, loss="margin", keep_best=False)(clf, x, y)
    both_fail = ~best.success & ~last.success
    assert both_fail.sum() > 10
    m_best = margin(clf.predict(best.x_adv[both_fail], logits=True), y[both_fail])
    m_last = margin(clf.predict(last.x_adv[both_fail], logits=True), y[both_fail])
    assert (m_best >= m_last - 1e-5).all()


def test_targeted_pgd_reaches_the_target(digits):
    clf, x, y = digits
    targets = (y + 1) % 10
    res = PGD(threat=ThreatModel("linf", 0.3), steps=30, loss="margin")(clf, x, y, targets=targets, generator=_gen())
    assert res.success.float().mean() > 0.8
    assert (res.predictions[res.success] == targets[res.success]).all()


def test_losses_and_norms_all_break_the_standard_model(digits):
    clf, x, y = digits
    for loss in ("ce", "margin", "dlr"):
        for threat in (ThreatModel("linf", 0.3), ThreatModel("l2", 2.0), ThreatModel("l1", 6.0)):
            res = PGD(threat=threat, steps=20, loss=loss)(clf, x[:40], y[:40], generator=_gen())
            assert res.robust_accuracy < 0.2, (loss, str(threat), res.robust_accuracy)


def test_random_start_is_seeded_by_the_generator(digits):
    clf, x, y = digits
    a = PGD(threat=LINF, steps=3)(clf, x, y, generator=_gen(1))
    b = PGD(threat=LINF, steps=3)(clf, x, y, generator=_gen(1))
    c = PGD(threat=LINF, steps=3)(clf, x, y, generator=_gen(2))
    assert torch.equal(a.x_adv, b.x_adv) and not torch.equal(a.x_adv, c.x_adv)


def test_eot_multiplies_gradient_calls(digits):
    clf, x, y = digits
    one = PGD(threat=LINF, steps=3, random_start=False, keep_best=False)(clf, x[:10], y[:10])
    four = PGD(threat=LINF, steps=3, random_start=False, keep_best=False, eot=4)(clf, x[:10], y[:10])
    assert four.gradient_calls == 4 * one.gradient_calls
    torch.testing.assert_close(four.x_adv, one.x_adv)  # a deterministic model: the average is the same gradient
    f = FGSM(threat=LINF, eot=3)(clf, x[:10], y[:10])
    assert f.gradient_calls == 3 * FGSM(threat=LINF)(clf, x[:10], y[:10]).gradient_calls


def test_fgsm_random_start_with_large_step_stays_in_the_ball(digits):
    clf, x, y = digits
    res = FGSM(threat=LINF, random_start=True, step_scale=1.25)(clf, x, y, generator=_gen())
    assert (res.distance <= 0.2 + 1e-6).all()


def test_sparse_l1_direction_is_unit_l1_and_box_aware():
    g = torch.tensor([[3.0, -2.0, 1.0, 0.5]]).view(1, 1, 2, 2)
    x = torch.tensor([[1.0, 0.5, 0.5, 0.5]]).view(1, 1, 2, 2)  # coordinate 0 is at the upper bound
    d = sparse_l1_direction(g, x, (0.0, 1.0), 2).flatten()
    assert d.abs().sum() == pytest.approx(1.0)
    assert d.tolist() == [0.0, -0.5, 0.5, 0.0]


def test_bestof_restart_one_equals_the_inner_attack(digits):
    clf, x, y = digits
    inner = PGD(threat=LINF, steps=5)
    a = BestOf(inner, restarts=1)(clf, x, y, generator=_gen(3))
    b = inner(clf, x, y, generator=_gen(3))
    assert torch.equal(a.success, b.success) and torch.allclose(a.x_adv, b.x_adv, atol=1e-6)


def test_bestof_keeps_every_break_and_reruns_only_unbroken(digits):
    clf, x, y = digits
    inner = PGD(threat=ThreatModel("linf", 0.08), steps=5)
    single = inner(clf, x, y, generator=_gen(4))
    best = BestOf(inner, restarts=4)(clf, x, y, generator=_gen(4))
    assert (best.success | ~single.success).all()
    assert best.success.sum() >= single.success.sum()
    assert best.gradient_calls < 4 * single.gradient_calls
    cfg = best.config
    assert cfg["name"] == "best-of" and cfg["restarts"] == 4 and cfg["attack"]["name"] == "pgd"
    assert cfg["attack"]["threat"] == "linf:0.08"


def test_bestof_validates_and_delegates():
    with pytest.raises(ConfigError):
        BestOf(PGD(threat=LINF), restarts=0)
    with pytest.raises(ConfigError):
        BestOf("pgd", restarts=2)
    b = BestOf(PGD(threat=LINF, eot=3), restarts=2)
    assert (b.norm, b.eps, b.eot, b.randomized) == ("linf", 0.2, 3, True)
    assert not BestOf(dataclasses.replace(PGD(threat=LINF), random_start=False), restarts=2).randomized
