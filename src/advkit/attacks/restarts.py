"""BestOf: run an attack several times and keep the per-sample worst case.

Random restarts (Madry et al. 2018, "Towards deep learning models resistant to adversarial attacks",
§5 and the MNIST challenge's "×50 restarts") re-run a randomized attack from fresh random starts;
a sample counts as broken if *any* run breaks it.  Each restart only re-runs the samples that are
not broken yet.  Among unbroken candidates the one closest to the decision boundary (largest
C&W margin, ``losses.margin``) is kept; for min-norm attacks the smallest successful perturbation is kept.
Symbols: R restarts → ``restarts``; the inner attack → ``attack``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .. import losses, rng
from ..errors import ConfigError
from ..threat import ThreatModel
from .base import Attack, require_int


@dataclass(frozen=True)
class BestOf(Attack):
    name: ClassVar[str] = "best-of"
    attack: Attack = None  # type: ignore[assignment]
    restarts: int = 5

    def __post_init__(self):
        if not isinstance(self.attack, Attack):
            raise ConfigError(f"BestOf needs an Attack to repeat, got {self.attack!r}")
        require_int(self, "restarts")

    @property
    def norm(self) -> str:
        return self.attack.norm

    @property
    def eps(self):
        return self.attack.eps

    @property
    def eot(self) -> int:  # type: ignore[override]
        return self.attack.eot

    @property
    def randomized(self) -> bool:  # type: ignore[override]
        return self.attack.randomized

    @property
    def uses_gradients(self) -> bool:  # type: ignore[override]
        return self.attack.uses_gradients

    @property
    def clean_on_failure(self) -> bool:  # type: ignore[override]
        return self.attack.clean_on_failure

    @property
    def success_margin(self) -> float:
        return self.attack.success_margin

    def expected_passes(self) -> int:
        return self.restarts * self.attack.expected_passes()

    def _validate(self, num_classes, targets) -> None:
        self.attack._validate(num_classes, targets)

    def _run(self, oracle, x, y, targets, generator):
        bounds = getattr(oracle.model, "bounds", (0.0, 1.0))
        best = x.clone()
        score = torch.full((len(x),), -math.inf, device=x.device, dtype=x.dtype)
        won = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        min_norm = self.attack.clean_on_failure
        for _ in range(self.restarts):
            todo = torch.arange(len(x), device=x.device) if min_norm else (~won).nonzero().flatten()
            if not len(todo):
                break
            tt = None if targets is None else targets[todo]
            cand = self.attack._finalize(self.attack._run(oracle, x[todo], y[todo], tt, rng.take(generator, todo)).detach(),
                                         x[todo], bounds)
            z = oracle.logits(cand)
            ok = self._checked_success(oracle, cand, z, y[todo], tt)
            if min_norm:  # smaller successful perturbation wins
                s = torch.where(ok, -ThreatModel(self.norm, 0).distance(cand, x[todo]), torch.full_like(score[todo], -math.inf))
            else:
                s = losses.margin(z, y[todo], tt)
            better = (ok & ~won[todo]) | ((ok == won[todo]) & (s > score[todo]))
            sel = todo[better]
            best[sel], score[sel], won[sel] = cand[better], s[better], ok[better]
        return best
