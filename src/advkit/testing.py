"""A public conformance kit for attacks: ``check_attack(attack)`` raises ``AssertionError`` on a violation.

It runs the attack on small random models (a tiny CNN with BatchNorm/Dropout and a linear model,
CPU, seeded through a ``torch.Generator``) and checks the attack contract of DESIGN.md:

* ``x_adv`` lies in the ε-ball and the box (tolerance ``tol`` = 1e-6);
* the inputs (``x``, ``y``, ``targets``) are not mutated;
* the model's train/eval modes and ``requires_grad`` flags are restored (the model is put in train mode);
* ``success`` and ``predictions`` match a fresh forward pass, ``distance`` matches the threat's norm;
  failed min-norm samples are returned unchanged;
* ε = 0 returns ``x`` exactly;
* the same generator seed gives the same result; the global torch RNG state is untouched;
* batch consistency (``batch_size=2`` equals one batch) when the attack is deterministic;
* targeted runs succeed only by reaching the target (attacks that reject explicit targets are skipped).

Use it on your own attack: ``check_attack(MyAttack(threat=ThreatModel.parse("linf:0.1")))`` or pass a
factory ``threat -> attack``.  Example in ``tests/properties/test_conformance.py``.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Union

import torch
from torch import nn

from .attacks.base import Attack
from .errors import ConfigError
from .model import Classifier
from .threat import ThreatModel

AttackOrFactory = Union[Attack, Callable[[ThreatModel], Attack]]


def tiny_models(seed: int = 0, num_classes: int = 5) -> dict[str, Classifier]:
    """A tiny CNN (with BatchNorm and Dropout) and a linear model on 1×8×8 inputs, weights from ``seed``."""
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, device="meta"), nn.BatchNorm2d(4, device="meta"), nn.ReLU(),
                        nn.Dropout(0.2), nn.Flatten(), nn.Linear(4 * 64, num_classes, device="meta"))
    lin = nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes, device="meta"))
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, net in (("cnn", cnn), ("linear", lin)):
        net = net.to_empty(device="cpu")  # no global RNG: every value is drawn from g below
        for mod in net.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.reset_running_stats()
                mod.running_mean.copy_(0.1 * torch.randn(mod.running_mean.shape, generator=g))
        for p in net.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else p.numel()
            p.data.copy_(torch.randn(p.shape, generator=g) * (2.0 / fan_in) ** 0.5)
        out[name] = Classifier(net, num_classes=num_classes, input_shape=(1, 8, 8), name=f"tiny-{name}")
    return out


def _inputs(clf: Classifier, n: int, seed: int):
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.rand(n, 1, 8, 8, generator=g)
    y = clf.predict(x)
    y[0] = (y[0] + 1) % clf.num_classes  # one sample misclassified from the start
    k = clf.num_classes
    targets = (y + torch.randint(1, k, (n,), generator=g)) % k
    return x, y, targets


def with_eps(attack: Attack, eps: float) -> Attack:
    """A copy of ``attack`` whose threat budget (``threat.eps`` or ``max_eps``, recursively) is ``eps``."""
    changes = {}
    for f in dataclasses.fields(attack):
        value = getattr(attack, f.name)
        if isinstance(value, ThreatModel):
            changes[f.name] = value.with_eps(eps)
        elif f.name == "max_eps":
            changes[f.name] = eps
        elif isinstance(value, Attack):
            changes[f.name] = with_eps(value, eps)
        elif isinstance(value, (list, tuple)) and any(isinstance(a, Attack) for a in value):
            changes[f.name] = type(value)(with_eps(a, eps) if isinstance(a, Attack) else a for a in value)
    return dataclasses.replace(attack, **changes)


def _build(attack: AttackOrFactory, threat: ThreatModel | None) -> Attack:
    if isinstance(attack, Attack):
        return attack if threat is None else with_eps(attack, threat.eps)
    built = attack(threat)
    if not isinstance(built, Attack):
        raise TypeError(f"the factory must return an advkit Attack, got {type(built).__name__}")
    return built


def _modes(clf: Classifier):
    return [m.training for m in clf.modules()], [p.requires_grad for p in clf.parameters()]


def _run(attack: Attack, clf: Classifier, x, y, targets=None, seed=0, batch_size=None):
    return attack(clf, x, y, targets=targets, generator=torch.Generator().manual_seed(seed), batch_size=batch_size)


def _check_result(attack: Attack, clf: Classifier, x, y, targets, res, tol: float, tag: str) -> None:
    n = len(x)
    for key in ("x_adv", "success", "distance", "predictions"):
        got = getattr(res, key)
        assert isinstance(got, torch.Tensor) and len(got) == n, f"{tag}: result.{key} must have {n} rows, got {got!r:.80}"
    assert res.x_adv.shape == x.shape, f"{tag}: x_adv shape {tuple(res.x_adv.shape)} != x shape {tuple(x.shape)}"
    assert torch.isfinite(res.x_adv).all(), f"{tag}: x_adv contains NaN/inf"
    lo, hi = clf.bounds
    assert res.x_adv.min() >= lo - tol and res.x_adv.max() <= hi + tol, \
        f"{tag}: x_adv leaves the box [{lo}, {hi}]: range [{res.x_adv.min():.6g}, {res.x_adv.max():.6g}]"
    dist = ThreatModel(attack.norm, 0).distance(res.x_adv, x)
    if attack.eps is not None:
        worst = dist.max().item()
        assert worst <= attack.eps * (1 + tol) + tol, f"{tag}: x_adv leaves the {attack.norm} ball of radius {attack.eps}: distance {worst:.8g}"
    assert torch.allclose(res.distance, dist, atol=1e-5), f"{tag}: result.distance disagrees with the {attack.norm} norm of x_adv - x"
    with torch.no_grad(), clf.inference():
        z = clf(res.x_adv)
    assert torch.equal(res.predictions, z.argmax(1)), f"{tag}: predictions differ from a fresh forward pass on x_adv"
    assert torch.equal(res.success, attack._is_success(z, y, targets)), \
        f"{tag}: success is not reproduced by a fresh forward pass on x_adv (margin {attack.success_margin})"
    if attack.clean_on_failure:
        fail = ~res.success
        assert torch.equal(res.x_adv[fail], x[fail]), f"{tag}: a min-norm attack must return x where it fails"


def _check_call(attack: Attack, clf: Classifier, x, y, targets, tol: float, tag: str):
    x0, y0 = x.clone(), y.clone()
    t0 = None if targets is None else targets.clone()
    modes, grads = _modes(clf)
    rng = torch.get_rng_state()
    res = _run(attack, clf, x, y, targets)
    assert torch.equal(torch.get_rng_state(), rng), f"{tag}: the attack changed the global torch RNG state"
    assert torch.equal(x, x0) and torch.equal(y, y0), f"{tag}: the attack mutated its inputs x or y"
    assert targets is None or torch.equal(targets, t0), f"{tag}: the attack mutated targets"
    assert _modes(clf) == (modes, grads), f"{tag}: the model's train/eval modes or requires_grad flags were not restored"
    _check_result(attack, clf, x, y, targets, res, tol, tag)
    return res


def _same(a, b) -> bool:
    return torch.equal(a.success, b.success) and torch.allclose(a.x_adv, b.x_adv, atol=1e-5, rtol=0)


def check_attack(attack: AttackOrFactory, *, threat: "ThreatModel | str | None" = None, n: int = 8, seed: int = 0,
                 targeted: bool = True, tol: float = 1e-6) -> dict:
    """Run the conformance checks; raise ``AssertionError`` on the first violation.

    ``attack`` is an :class:`Attack` (its budget is replaced by ``threat.eps`` when ``threat`` is given)
    or a factory ``threat -> Attack`` (then ``threat`` defaults to ``linf:0.1``).  Returns a summary
    ``{model: {"success_rate": ..., "targeted": bool, "batch_checked": bool}}``.
    """
    threat = ThreatModel.parse(threat) if threat is not None else None
    if not isinstance(attack, Attack) and threat is None:
        threat = ThreatModel("linf", 0.1)
    atk = _build(attack, threat)
    summary = {}
    for name, clf in tiny_models(seed).items():
        tag = f"{atk.name} on tiny-{name}"
        clf.train()
        x, y, targets = _inputs(clf, n, seed)
        res = _check_call(atk, clf, x, y, None, tol, tag)
        again = _run(atk, clf, x, y)
        assert _same(res, again), f"{tag}: the same generator seed gave a different result"
        zero = _build(attack, ThreatModel(atk.norm, 0.0)) if not isinstance(attack, Attack) else with_eps(atk, 0.0)
        r0 = _check_call(zero, clf, x, y, None, tol, f"{tag} (eps=0)")
        assert torch.equal(r0.x_adv, x), f"{tag}: eps=0 must return x exactly"
        batch_checked = not atk.randomized
        if batch_checked:
            rb = _run(atk, clf, x, y, batch_size=2)
            assert _same(res, rb), f"{tag}: a deterministic attack gave different results with batch_size=2"
        done_t = targeted and _check_targeted(atk, clf, x, y, targets, tol, tag)
        summary[name] = {"success_rate": float(res.success.float().mean()), "targeted": done_t,
                         "batch_checked": batch_checked}
    return summary


def _check_targeted(atk: Attack, clf: Classifier, x, y, targets, tol: float, tag: str) -> bool:
    try:
        res = _check_call(atk, clf, x, y, targets, tol, f"{tag} (targeted)")
    except ConfigError:
        return False  # the attack picks its own targets
    with torch.no_grad(), clf.inference():
        pred = clf(res.x_adv).argmax(1)
    assert torch.equal(res.success & (pred != targets), torch.zeros_like(res.success)), \
        f"{tag}: a targeted success must be classified as the target"
    return True


__all__ = ["check_attack", "tiny_models", "with_eps"]
