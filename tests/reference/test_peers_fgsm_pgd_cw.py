"""Cross-library reference checks on the digits CNN: deterministic FGSM and PGD give the same x_adv as
foolbox 3 and torchattacks; C&W L2 finds distances like foolbox's L2CarliniWagnerAttack.

Both peers use cross-entropy, return the *last* PGD iterate and attack every sample; advkit keeps the
best iterate and leaves already-misclassified samples unchanged.  So the PGD comparison uses
``keep_best=False`` and samples the model classifies correctly (the only differences in setup).
"""
from __future__ import annotations

import pytest
import torch

from advkit.attacks import FGSM, PGD, CarliniWagnerL2
from advkit.threat import ThreatModel

pytestmark = pytest.mark.peer

EPS, STEPS, ALPHA = 0.15, 10, 0.02


@pytest.fixture(scope="module")
def digits(digits_model):
    clf, x, y = digits_model
    keep = clf.predict(x) == y
    return clf.eval(), x[keep][:64], y[keep][:64]


def _foolbox(clf, attack, x, y, eps):
    fb = pytest.importorskip("foolbox")
    fmodel = fb.PyTorchModel(clf, bounds=(0, 1))
    _, clipped, _ = attack(fmodel, x, fb.criteria.Misclassification(y), epsilons=eps)
    return clipped


def test_fgsm_matches_foolbox_and_torchattacks(digits):
    clf, x, y = digits
    ours = FGSM(threat=ThreatModel("linf", EPS))(clf, x, y).x_adv
    fb = pytest.importorskip("foolbox")
    theirs = _foolbox(clf, fb.attacks.FGSM(), x, y, EPS)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    ta = pytest.importorskip("torchattacks")
    torch.testing.assert_close(ours, ta.FGSM(clf, eps=EPS)(x, y), atol=1e-5, rtol=0)


def test_pgd_matches_foolbox_and_torchattacks(digits):
    clf, x, y = digits
    ours = PGD(threat=ThreatModel("linf", EPS), steps=STEPS, step_size=ALPHA, random_start=False,
               keep_best=False)(clf, x, y).x_adv
    fb = pytest.importorskip("foolbox")
    theirs = _foolbox(clf, fb.attacks.LinfPGD(steps=STEPS, abs_stepsize=ALPHA, random_start=False), x, y, EPS)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    ta = pytest.importorskip("torchattacks")
    theirs = ta.PGD(clf, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=False)(x, y)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_best_iterate_pgd_is_at_least_as_strong_as_peers(digits):
    clf, x, y = digits
    ours = PGD(threat=ThreatModel("linf", 0.1), steps=STEPS, step_size=ALPHA, random_start=False)(clf, x, y)
    ta = pytest.importorskip("torchattacks")
    theirs = ta.PGD(clf, eps=0.1, alpha=ALPHA, steps=STEPS, random_start=False)(x, y)
    peer_success = clf.predict(theirs) != y
    assert (ours.success | ~peer_success).all()


def test_cw_median_distance_matches_foolbox(digits):
    clf, x, y = digits
    x, y = x[:6], y[:6]
    settings = dict(binary_search_steps=5, steps=100, stepsize=0.01, confidence=0, initial_const=0.3)
    ours = CarliniWagnerL2(binary_search_steps=5, max_iterations=100, learning_rate=0.01, initial_const=0.3)(clf, x, y)
    fb = pytest.importorskip("foolbox")
    fmodel = fb.PyTorchModel(clf, bounds=(0, 1))
    _, adv, ok = fb.attacks.L2CarliniWagnerAttack(**settings)(fmodel, x, fb.criteria.Misclassification(y), epsilons=None)
    theirs = (adv - x).flatten(1).norm(dim=1)
    assert ours.success.all() and ok.all()
    assert ours.distance.median() <= 1.05 * theirs.median()
    assert ours.distance.median() >= 0.95 * theirs.median()
