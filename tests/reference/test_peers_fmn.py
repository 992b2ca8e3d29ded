"""FMN against foolbox 3's FMN attacks (the peer implementation of Pintor et al. 2021) on the digits CNN.

Same settings on both sides (100 steps, step size 1 → 0.01, γ 0.05 → 0.001, start at x).  advkit must
find at least as many adversarial points and a median distance (failures count as +∞) no larger than
the peer's, up to 2%.  foolbox 3.3's ``L2FMNAttack.project`` never projects (its factor is
min(1, ‖x‖/‖x‖) = 1), which turns its L2 run into unconstrained normalised gradient ascent; the L2 peer
here is that class with the L2-ball projection of the paper put back (``_ProjectedL2``).
"""
from __future__ import annotations

import pytest
import torch

from advkit.attacks import FMN

pytestmark = pytest.mark.peer

P = {"linf": float("inf"), "l2": 2.0, "l1": 1.0}


@pytest.fixture(scope="module")
def digits(digits_model):
    clf, x, y = digits_model
    keep = clf.predict(x) == y
    return clf.eval(), x[keep][:48], y[keep][:48]


def _peer(norm: str):
    fb = pytest.importorskip("foolbox")
    if norm == "linf":
        return fb.attacks.LInfFMNAttack(steps=100)
    if norm == "l1":
        return fb.attacks.L1FMNAttack(steps=100)
    import eagerpy as ep
    from foolbox.devutils import atleast_kd, flatten

    class _ProjectedL2(fb.attacks.L2FMNAttack):
        def project(self, x, x0, epsilon):
            n = ep.maximum(flatten(x - x0).norms.l2(axis=-1), 1e-12)
            return x0 + (x - x0) * atleast_kd(ep.minimum(1, epsilon / n), x.ndim)

    return _ProjectedL2(steps=100)


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_fmn_is_at_least_as_strong_as_foolbox(digits, norm):
    clf, x, y = digits
    ours = FMN(norm=norm, steps=100)(clf, x, y)
    fb = pytest.importorskip("foolbox")
    _, adv, ok = _peer(norm)(fb.PyTorchModel(clf, bounds=(0, 1)), x, fb.criteria.Misclassification(y), epsilons=None)
    theirs = torch.where(ok, (adv - x).flatten(1).norm(p=P[norm], dim=1), torch.tensor(float("inf")))
    mine = torch.where(ours.success, ours.distance, torch.tensor(float("inf")))
    assert ours.success.sum() >= ok.sum()
    assert mine.median() <= 1.02 * theirs.median()
