"""advkit's APGD-CE, APGD-T, Square and AutoAttack are at least as strong as the peers' at equal budgets.

Peers: the official AutoAttack code (``pyautoattack``) and torchattacks, on the small trained CNN of
the ``digits_model`` fixture.  Budgets are reduced (20 iterations, 3 targets, 300 queries) and equal
for both libraries; advkit's robust accuracy must be ≤ the peer's + 2 samples per 500 (at least 1).
"""
import pytest
import torch

from advkit.attacks.apgd import APGD
from advkit.attacks.ensemble import Ensemble
from advkit.attacks.fab import FAB
from advkit.attacks.oracle import Oracle
from advkit.attacks.square import Square

pytestmark = pytest.mark.peer
N = 150
SLACK = max(1, round(2 * N / 500))
THREATS = [("linf", 0.1, "Linf"), ("l2", 0.6, "L2")]


@pytest.fixture(scope="module")
def data(digits_model):
    clf, x, y = digits_model
    return clf, x[:N], y[:N]


def _robust(clf, x_adv, y):
    with torch.no_grad():
        return int((clf(x_adv).argmax(1) == y).sum())


def _ours(attack, clf, x, y):
    return int((~attack(clf, x, y, generator=torch.Generator().manual_seed(0)).success).sum())


def _ours_from_seed(attack, clf, x, y, seed=0):
    """Robust count of our Square fed the numbers the official code draws after ``torch.manual_seed(seed)``:
    Square's shared draws make one seed's result swing by several samples (official L∞, seeds 0–4: 89, 90,
    100, 94, 93 of 150), so strength is compared from the same draws (the same algorithm then gives the
    same points: tests/reference/test_official_square_trajectories.py)."""
    with torch.no_grad():
        idx = (clf(x).argmax(1) == y).nonzero().flatten()
    adv = attack._run(Oracle(clf), x[idx], y[idx], None, torch.Generator().manual_seed(seed))
    return _robust(clf, adv, y[idx])


def _assert_as_strong(norm, eps, clf, x, y, theirs: dict) -> None:
    """advkit's APGD-CE, APGD-T and Square leave at most SLACK more robust points than the peer's."""
    t = f"{norm}:{eps}"
    ours = {
        "apgd-ce": _ours(APGD(t, steps=20), clf, x, y),
        "apgd-t": _ours(APGD(t, loss="dlr", n_targets=3, steps=20), clf, x, y),
        "square": _ours_from_seed(Square(t, n_queries=300), clf, x, y),
    }
    for k in ours:
        assert ours[k] <= theirs[k] + SLACK, (k, ours, theirs)


def _official_components(norm, eps, clf):
    aa = pytest.importorskip("pyautoattack")
    from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
    from pyautoattack.fab_pt import FABAttack_PT
    from pyautoattack.square import SquareAttack
    kw = dict(norm=norm, eps=eps, seed=0, device="cpu")
    return aa, {
        "apgd": APGDAttack(clf, n_iter=20, n_restarts=1, loss="ce", **kw),
        "apgd_targeted": APGDAttack_targeted(clf, n_iter=20, n_restarts=1, n_target_classes=3, **kw),
        "fab": FABAttack_PT(clf, n_iter=20, n_restarts=1, n_target_classes=3, **kw),
        "square": SquareAttack(clf, n_queries=300, p_init=0.8, n_restarts=1, resc_schedule=True, **kw),
    }


@pytest.mark.parametrize("norm,eps,pnorm", THREATS)
def test_apgd_and_square_vs_official(data, norm, eps, pnorm):
    clf, x, y = data
    _, comp = _official_components(pnorm, eps, clf)
    theirs = {
        "apgd-ce": _robust(clf, comp["apgd"].perturb(x, y), y),
        "apgd-t": _robust(clf, comp["apgd_targeted"].perturb(x, y), y),
        "square": _robust(clf, comp["square"].perturb(x, y), y),
    }
    _assert_as_strong(norm, eps, clf, x, y, theirs)


@pytest.mark.parametrize("norm,eps,pnorm", THREATS[:1])
def test_autoattack_vs_official(data, norm, eps, pnorm):
    clf, x, y = data
    aa_mod, comp = _official_components(pnorm, eps, clf)
    aa = aa_mod.AutoAttack(clf, norm=pnorm, eps=eps, seed=0, version="custom",
                           attacks=["apgd-ce", "apgd-t", "fab-t", "square"])
    aa.apgd, aa.apgd_targeted, aa.fab, aa.square = comp["apgd"], comp["apgd_targeted"], comp["fab"], comp["square"]
    aa.verbose = False
    _, y_adv = aa.run_standard_evaluation(x, y, batch_size=N)
    theirs = int((y_adv == y).sum())
    t = f"{norm}:{eps}"
    ours = Ensemble((APGD(t, steps=20), APGD(t, loss="dlr", n_targets=3, steps=20), FAB(t, n_targets=3, steps=20),
                     Square(t, n_queries=300)), label="autoattack-reduced")
    res = ours(clf, x, y, generator=torch.Generator().manual_seed(0))
    assert int((~res.success).sum()) <= theirs + SLACK, (int((~res.success).sum()), theirs)


@pytest.mark.parametrize("norm,eps,pnorm", THREATS)
def test_vs_torchattacks(data, norm, eps, pnorm):
    ta = pytest.importorskip("torchattacks")
    clf, x, y = data
    theirs = {
        "apgd-ce": ta.APGD(clf, norm=pnorm, eps=eps, steps=20, n_restarts=1, seed=0, loss="ce"),
        # torchattacks' APGDT attacks n_classes - 1 targets: n_classes=4 gives the 3 of our budget
        "apgd-t": ta.APGDT(clf, norm=pnorm, eps=eps, steps=20, n_restarts=1, seed=0, n_classes=4),
        "square": ta.Square(clf, norm=pnorm, eps=eps, n_queries=300, n_restarts=1, p_init=0.8, seed=0),
    }
    theirs = {k: _robust(clf, a(x, y), y) for k, a in theirs.items()}
    _assert_as_strong(norm, eps, clf, x, y, theirs)


@pytest.mark.slow
def test_l1_autoattack_vs_official(data):
    """l1-AutoAttack (APGD-CE with restarts and APGD-T, both 3ε→2ε→ε; Square-L1) at equal reduced budgets,
    summed over two seeds (one seed's spread is several samples)."""
    aa_mod = pytest.importorskip("pyautoattack")
    from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
    from pyautoattack.square import SquareAttack
    clf, x, y = data
    eps, ours, theirs = 1.0, 0, 0
    for seed in (0, 1):
        kw = dict(norm="L1", eps=eps, seed=seed, device="cpu")
        aa = aa_mod.AutoAttack(clf, norm="L1", eps=eps, seed=seed, version="custom",
                               attacks=["apgd-ce", "apgd-t", "square"])
        aa.apgd = APGDAttack(clf, n_iter=20, n_restarts=2, loss="ce", use_largereps=True, **kw)
        aa.apgd_targeted = APGDAttack_targeted(clf, n_iter=20, n_restarts=1, n_target_classes=3,
                                               use_largereps=True, **kw)
        aa.square = SquareAttack(clf, n_queries=300, p_init=0.8, n_restarts=1, resc_schedule=False, **kw)
        aa.verbose = False
        _, y_adv = aa.run_standard_evaluation(x, y, batch_size=N)
        theirs += int((y_adv == y).sum())
        t = f"l1:{eps}"
        mine = Ensemble((APGD(t, steps=20, restarts=2, large_eps=True),
                         APGD(t, loss="dlr", n_targets=3, steps=20, large_eps=True),
                         Square(t, n_queries=300, rescale_schedule=False)), label="l1-autoattack-reduced")
        ours += int((~mine(clf, x, y, generator=torch.Generator().manual_seed(seed)).success).sum())
    assert ours <= theirs + 2 * SLACK, (ours, theirs)
