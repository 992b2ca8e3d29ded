"""Ensembles: run attacks one after another, each only on the points still robust, from the clean input.

This is the evaluation protocol of AutoAttack (Croce & Hein 2020, "Reliable evaluation of adversarial
robustness with an ensemble of diverse parameter-free attacks", §5): a point counts as robust only
if every attack fails on it, so the final robust accuracy is the per-sample worst case.  Each attack
starts from the clean x (never from another attack's output) and ``broken_by`` records, per sample,
the first attack that broke it (``"clean"`` when the model already misclassifies the clean input,
``None`` when the point is robust).  ``per_attack[name]`` holds the robust accuracy after that
attack, its seconds, model/gradient calls, the number of points it attacked and broke, and its config.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from .. import rng
from ..errors import ConfigError
from ..model import as_classifier
from ..progress import NULL, ProgressFn, rescaled
from ..threat import ThreatModel
from .base import Attack
from .result import AttackResult


@dataclass
class EnsembleResult(AttackResult):
    broken_by: list = field(default_factory=list)
    per_attack: dict = field(default_factory=dict)


def _unique_names(attacks) -> tuple[str, ...]:
    names, seen = [], {}
    for a in attacks:
        seen[a.name] = seen.get(a.name, 0) + 1
        names.append(a.name if seen[a.name] == 1 else f"{a.name}#{seen[a.name]}")
    return tuple(names)


@dataclass(frozen=True)
class Ensemble(Attack):
    """A cascade of attacks sharing one threat model; ``label`` names the whole (e.g. "autoattack")."""

    attacks: tuple = ()
    label: str = "ensemble"

    def __post_init__(self):
        object.__setattr__(self, "attacks", tuple(self.attacks))
        if not self.attacks or not all(isinstance(a, Attack) for a in self.attacks):
            raise ConfigError(f"Ensemble needs a non-empty sequence of attacks, got {self.attacks!r}")
        threats = {(a.norm, a.eps) for a in self.attacks}
        if len(threats) != 1:
            raise ConfigError(f"all attacks of an ensemble must share one threat model, got {sorted(map(str, threats))}")

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.label

    @property
    def names(self) -> tuple[str, ...]:
        return _unique_names(self.attacks)

    @property
    def norm(self) -> str:
        return self.attacks[0].norm

    @property
    def eps(self):
        return self.attacks[0].eps

    @property
    def threat(self):
        return getattr(self.attacks[0], "threat", None)

    @property
    def uses_gradients(self) -> bool:  # type: ignore[override]
        return any(a.uses_gradients for a in self.attacks)

    @property
    def randomized(self) -> bool:  # type: ignore[override]
        return any(a.randomized for a in self.attacks)

    def describe(self) -> dict:
        return {"name": self.label, "attacks": [a.describe() for a in self.attacks]}

    def __call__(self, model, x, y, *, targets=None, generator=None, batch_size=None,
                 progress: ProgressFn = NULL) -> EnsembleResult:
        clf = as_classifier(model)
        clf.check_inputs(x, y, targets=targets)
        rng.check_length(generator, len(x))
        start = time.perf_counter()
        clean = clf.predict(x, batch_size=batch_size or 256)
        ok = clean != y if targets is None else clean == targets.to(clean.device)
        x_adv, preds = x.clone(), clean.clone()
        broken_by: list = ["clean" if b else None for b in ok.tolist()]
        calls, grads, per_attack = len(x), 0, {}
        for k, (name, attack) in enumerate(zip(self.names, self.attacks)):
            progress(f"{self.label}: {name}", k, len(self.attacks))
            idx = (~ok).nonzero().flatten()
            stats = {"attacked": len(idx), "broken": 0, "seconds": 0.0, "model_calls": 0, "gradient_calls": 0}
            if len(idx):
                tb = None if targets is None else targets[idx]
                res = attack(clf, x[idx], y[idx], targets=tb, generator=rng.take(generator, idx), batch_size=batch_size,
                             progress=rescaled(progress, f"{self.label}: {name}", k, 1, len(self.attacks)))
                hit = idx[res.success.to(idx.device)]
                x_adv[hit], preds[hit] = res.x_adv[res.success], res.predictions[res.success]
                ok[hit] = True
                for i in hit.tolist():
                    broken_by[i] = name
                calls, grads = calls + res.model_calls, grads + res.gradient_calls
                stats.update(broken=len(hit), seconds=res.seconds, model_calls=res.model_calls,
                             gradient_calls=res.gradient_calls)
            stats["robust_accuracy"] = float((~ok).float().mean()) if len(x) else float("nan")
            stats["config"] = attack.describe()
            per_attack[name] = stats
        progress(f"{self.label}: done", len(self.attacks), len(self.attacks))
        dist = ThreatModel(self.norm, 0).distance(x_adv, x) if len(x) else torch.zeros(0)
        return EnsembleResult(x_adv=x_adv, success=ok, distance=dist, predictions=preds, model_calls=calls,
                              gradient_calls=grads, seconds=time.perf_counter() - start, config=self.describe(),
                              broken_by=broken_by, per_attack=per_attack)
