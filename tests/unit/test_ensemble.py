"""Ensemble cascade semantics and the AutoAttack presets as data."""
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

from advkit.attacks.apgd import APGD
from advkit.attacks.base import BudgetedAttack
from advkit.attacks.ensemble import Ensemble, EnsembleResult
from advkit.attacks.fab import FAB
from advkit.attacks.fgsm import FGSM
from advkit.attacks.presets import autoattack_rand, autoattack_standard
from advkit.attacks.square import Square
from advkit.errors import ConfigError

SEEN: dict = {}


@dataclass(frozen=True)
class Spy(BudgetedAttack):
    """Records the inputs it was given; 'breaks' the samples whose clean index is in ``hits``."""

    name: ClassVar[str] = "spy"
    tag: str = "a"
    scale: float = 1.0
    randomized: ClassVar[bool] = False

    def _run(self, oracle, x, y, targets, generator):
        SEEN.setdefault(self.tag, []).append(x.clone())
        return FGSM(self.threat)._run(oracle, x, y, targets, generator) * self.scale + x * (1 - self.scale)


def test_cascade_attribution_and_clean_inputs(digits_model):
    clf, x, y = digits_model
    x, y = x[:60], y[:60]
    SEEN.clear()
    weak, strong = Spy("linf:0.1", tag="weak", scale=0.4), Spy("linf:0.1", tag="strong")
    ens = Ensemble((weak, strong), label="pair")
    res = ens(clf, x, y)
    assert isinstance(res, EnsembleResult) and ens.names == ("spy", "spy#2")
    clean_wrong = clf.predict(x) != y
    r_weak = weak(clf, x, y)
    # the second attack sees only points the first left robust, and always the *clean* inputs
    robust_after_weak = ~(r_weak.success | clean_wrong)
    assert torch.equal(SEEN["strong"][0], x[robust_after_weak])
    for i, b in enumerate(res.broken_by):
        if clean_wrong[i]:
            assert b == "clean"
        elif r_weak.success[i]:
            assert b == "spy"
        elif res.success[i]:
            assert b == "spy#2"
        else:
            assert b is None
    # per-sample worst case equals the OR of the individual attacks (deterministic attacks)
    r_strong = strong(clf, x, y)
    assert torch.equal(res.success, r_weak.success | r_strong.success | clean_wrong)
    accs = [res.per_attack[n]["robust_accuracy"] for n in ens.names]
    assert accs == sorted(accs, reverse=True) and accs[-1] == pytest.approx(res.robust_accuracy)
    assert res.per_attack["spy#2"]["attacked"] == int(robust_after_weak.sum())
    assert (res.predictions[res.success & ~clean_wrong] != y[res.success & ~clean_wrong]).all()
    assert res.model_calls >= sum(v["model_calls"] for v in res.per_attack.values())
    assert (res.distance <= 0.1 + 1e-6).all()


def test_ensemble_rejects_mixed_threats_and_empty():
    with pytest.raises(ConfigError):
        Ensemble((FGSM("linf:0.1"), FGSM("l2:0.5")))
    with pytest.raises(ConfigError):
        Ensemble(())


def test_autoattack_standard_is_the_papers_recipe():
    aa = autoattack_standard("linf:0.3", 10)
    assert aa.names == ("apgd-ce", "apgd-t", "fab-t", "square") and aa.label == "autoattack"
    ce, t, fab, sq = aa.attacks
    assert (ce.loss, ce.steps, ce.restarts, ce.n_targets) == ("ce", 100, 1, 0)
    assert (t.loss, t.steps, t.n_targets) == ("dlr", 100, 9)
    assert isinstance(fab, FAB) and fab.n_targets == 9 and fab.steps == 100
    assert isinstance(sq, Square) and (sq.n_queries, sq.p_init) == (5000, 0.8)
    assert all(str(a.threat) == "linf:0.3" for a in aa.attacks)
    assert autoattack_standard("l2:0.5", 5).attacks[1].n_targets == 4
    # 3 classes: the targeted DLR loss is undefined -> untargeted APGD-DLR; 2 classes: no DLR at all
    assert autoattack_standard("linf:0.3", 3).names == ("apgd-ce", "apgd-dlr", "fab-t", "square")
    assert autoattack_standard("linf:0.3", 2).names == ("apgd-ce", "fab", "square")
    assert autoattack_standard("l1:5", 10).names == ("apgd-ce", "apgd-t", "fab-t", "square")  # l1-AutoAttack
    with pytest.raises(ConfigError):
        autoattack_standard("linf:0.3", 1)


def test_autoattack_rand_uses_eot():
    aa = autoattack_rand("linf:0.3", 10)
    assert aa.names == ("apgd-ce", "apgd-dlr") and all(a.eot == 20 for a in aa.attacks)
    assert autoattack_rand("linf:0.3", 10, eot=5).attacks[0].eot == 5


def test_registry_builds_presets():
    from advkit.attacks import registry
    aa = registry.build("autoattack", "linf:0.2", num_classes=10)
    assert isinstance(aa, Ensemble) and aa.eps == 0.2
    assert registry.build("apgd-t", "linf:0.2").n_targets == 9
    assert registry.build("fab-t", "l2:1.0").name == "fab-t"


def test_small_autoattack_runs_and_is_reproducible(digits_model):
    clf, x, y = digits_model
    x, y = x[:30], y[:30]
    aa = Ensemble((APGD("linf:0.1", steps=10), APGD("linf:0.1", loss="dlr", n_targets=2, steps=10),
                   FAB("linf:0.1", n_targets=2, steps=10), Square("linf:0.1", n_queries=100)), label="aa-mini")
    r1 = aa(clf, x, y, generator=torch.Generator().manual_seed(0))
    r2 = aa(clf, x, y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(r1.x_adv, r2.x_adv) and r1.broken_by == r2.broken_by
    assert APGD("linf:0.1").threat.contains(r1.x_adv, x).all()
    assert r1.config["name"] == "aa-mini" and set(r1.per_attack) == set(aa.names)


CONFORMANCE = [
    APGD("linf:0.1", steps=8), APGD("l2:0.5", loss="dlr", steps=8), APGD("l1:2.0", steps=8),
    APGD("linf:0.1", loss="dlr", n_targets=2, steps=8),
    Square("linf:0.1", n_queries=40), Square("l2:0.5", n_queries=40),
    FAB("linf:0.1", steps=8), FAB("l2:0.5", n_targets=2, steps=8), FAB("l1:2.0", steps=8, restarts=2),
    Ensemble((APGD("linf:0.1", steps=4), FAB("linf:0.1", n_targets=2, steps=4), Square("linf:0.1", n_queries=20)),
             label="mini-aa"),
]


@pytest.mark.parametrize("attack", CONFORMANCE, ids=lambda a: f"{a.name}-{a.norm}")
def test_conformance_kit(attack):
    from advkit.testing import check_attack
    summary = check_attack(attack)
    assert summary and all(0 <= v["success_rate"] <= 1 for v in summary.values())
