"""FGSM / FGM: one step along the steepest-ascent direction of the loss.

Goodfellow, Shlens & Szegedy (2015), "Explaining and harnessing adversarial examples":
x' = x + ε·sign(∇ₓ J(θ, x, y)) for L∞; the L2/L1 variants (FGM) step ε along the unit-norm
steepest-ascent direction of that norm (``geometry.steepest_ascent``).  Symbols: J → ``loss``,
ε → ``threat.eps``.  Targeted: descend the loss of the target class.
With ``random_start`` (Wong, Rice & Kolter 2020) the step starts from a uniform point in the ball.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import geometry, losses
from .base import BudgetedAttack


@dataclass(frozen=True)
class FGSM(BudgetedAttack):
    name: ClassVar[str] = "fgsm"
    loss: str = "ce"
    random_start: bool = False
    step_scale: float = 1.0

    @property
    def randomized(self) -> bool:  # type: ignore[override]
        return self.random_start

    def _run(self, oracle, x, y, targets, generator):
        loss_fn = losses.get(self.loss)
        x0 = self.threat.sample(x, generator) if self.random_start else x
        _, g, _ = oracle.value_and_grad(x0, lambda z: loss_fn(z, y, targets))
        step = geometry.steepest_ascent(g, self.norm) * (self.step_scale * self.eps)
        return x0 + step
