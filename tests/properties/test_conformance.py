"""The public conformance kit (advkit.testing.check_attack) on every registered attack, and proof
that the kit catches broken attacks."""
from __future__ import annotations

import dataclasses
import importlib

import pytest
import torch

from advkit.attacks import registry
from advkit.attacks.base import Attack
from advkit.attacks.fgsm import FGSM
from advkit.attacks.pgd import PGD
from advkit.testing import check_attack, tiny_models, with_eps
from advkit.threat import ThreatModel

# Tiny budgets so that every attack runs in well under a second on the 8x8 models.
TINY = {"steps": 4, "max_iterations": 15, "binary_search_steps": 3, "n_queries": 30, "queries": 30,
        "restarts": 1, "n_restarts": 1, "eot": 2, "n_iter": 4}
THREATS = {"cw-l2": "l2:1.0", "fab": "linf:0.2", "fab-t": "linf:0.2"}


def shrink(attack: Attack) -> Attack:
    """Replace budget fields (recursively, through BestOf/Ensemble members) by tiny values."""
    changes = {}
    for f in dataclasses.fields(attack):
        value = getattr(attack, f.name)
        if f.name in TINY and isinstance(value, int) and not isinstance(value, bool) and value > TINY[f.name]:
            changes[f.name] = TINY[f.name]
        elif isinstance(value, Attack):
            changes[f.name] = shrink(value)
        elif isinstance(value, (list, tuple)) and any(isinstance(a, Attack) for a in value):
            changes[f.name] = type(value)(shrink(a) if isinstance(a, Attack) else a for a in value)
    return dataclasses.replace(attack, **changes)


def _available(name: str) -> bool:
    module = registry.get(name).target.partition(":")[0]
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("name", [n for n, _ in registry.list_attacks()])
def test_registered_attack_conforms(name):
    if not _available(name):
        pytest.skip(f"{name}: module not written yet")
    threat = ThreatModel.parse(THREATS.get(name, "linf:0.2"))
    attack = shrink(registry.build(name, threat, num_classes=5))
    summary = check_attack(attack, n=8)
    assert set(summary) == {"cnn", "linear"}
    # one sample starts misclassified, so at least it counts as a success
    assert all(s["success_rate"] >= 1 / 8 for s in summary.values())


@pytest.mark.parametrize("threat", ["linf:0.2", "l2:1.0", "l1:4"])
def test_pgd_conforms_in_every_norm(threat):
    check_attack(lambda t: PGD(threat=t, steps=4), threat=threat)
    check_attack(PGD(threat=ThreatModel.parse(threat), steps=4, random_start=False, loss="margin"))


def test_factory_default_threat_and_deterministic_batch_check():
    summary = check_attack(lambda t: FGSM(threat=t))
    assert all(s["batch_checked"] and s["targeted"] for s in summary.values())


def test_tiny_models_do_not_touch_global_rng():
    state = torch.get_rng_state()
    a, b = tiny_models(3), tiny_models(3)
    assert torch.equal(torch.get_rng_state(), state)
    for k in a:
        for p, q in zip(a[k].parameters(), b[k].parameters()):
            assert torch.equal(p, q)


def test_with_eps_recurses_into_wrappers():
    from advkit.attacks.restarts import BestOf
    from advkit.attacks.cw import CarliniWagnerL2
    inner = with_eps(BestOf(PGD(threat=ThreatModel("l2", 1.0)), restarts=2), 0.25).attack
    assert inner.threat == ThreatModel("l2", 0.25)
    assert with_eps(CarliniWagnerL2(), 0.5).max_eps == 0.5


# ----------------------------------------------------------------- the kit must catch broken attacks
@dataclasses.dataclass(frozen=True)
class _RunPathFGSM(FGSM):
    """FGSM without its fused first pass, so that overriding ``_run`` changes the attack."""

    def _first_pass(self, oracle, x, y, targets, generator):
        return None


@dataclasses.dataclass(frozen=True)
class _GlobalRNG(_RunPathFGSM):
    def _run(self, oracle, x, y, targets, generator):
        torch.rand(1)  # touches the global RNG
        return super()._run(oracle, x, y, targets, generator)


@dataclasses.dataclass(frozen=True)
class _LiesAboutSuccess(FGSM):
    def __call__(self, model, x, y, **kw):
        res = super().__call__(model, x, y, **kw)
        res.success = torch.ones_like(res.success)
        return res


@dataclasses.dataclass(frozen=True)
class _LeavesEvalMode(FGSM):
    def __call__(self, model, x, y, **kw):
        res = super().__call__(model, x, y, **kw)
        model.eval()
        return res


@dataclasses.dataclass(frozen=True)
class _MutatesInput(FGSM):
    def __call__(self, model, x, y, **kw):
        res = super().__call__(model, x, y, **kw)
        x.mul_(0.999)
        return res


@dataclasses.dataclass(frozen=True)
class _SecretlyRandom(_RunPathFGSM):
    def _run(self, oracle, x, y, targets, generator):
        noise = torch.empty_like(x).uniform_(-1e-3, 1e-3, generator=torch.Generator().manual_seed(id(x) % 1000))
        return self.threat.project(super()._run(oracle, x, y, targets, generator) + noise, x)


@dataclasses.dataclass(frozen=True)
class _IgnoresEpsZero(FGSM):
    def __call__(self, model, x, y, **kw):
        res = super().__call__(model, x, y, **kw)
        res.x_adv = (res.x_adv + 1e-3).clamp(0, 1)
        return res


@pytest.mark.parametrize("broken, message", [
    (_GlobalRNG, "global torch RNG"), (_LiesAboutSuccess, "fresh forward pass"),
    (_LeavesEvalMode, "modes"), (_MutatesInput, "mutated"), (_SecretlyRandom, "different"),
    (_IgnoresEpsZero, "ball|predictions|success|distance"),
])
def test_kit_catches_broken_attacks(broken, message):
    with pytest.raises(AssertionError, match=message):
        check_attack(broken(threat=ThreatModel("linf", 0.2)))
