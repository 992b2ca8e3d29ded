"""FGSM / FGM: one step along the steepest-ascent direction of the loss.

Goodfellow, Shlens & Szegedy (2015), "Explaining and harnessing adversarial examples":
x' = x + ε·sign(∇ₓ J(θ, x, y)) for L∞; the L2/L1 variants (FGM) step ε along the unit-norm
steepest-ascent direction of that norm (``geometry.steepest_ascent``).  Symbols: J → ``loss``,
ε → ``threat.eps``.  Targeted: descend the loss of the target class.
With ``random_start`` (Wong, Rice & Kolter 2020) the step starts from a uniform point in the ball.
``eot`` > 1 averages the gradient over that many forward passes of a randomized model
(expectation over transformation, Athalye, Carlini & Wagner 2018).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import geometry, losses
from ..errors import ConfigError
from .base import BudgetedAttack
from .pgd import check_gradient_config, validate_eot


@dataclass(frozen=True)
class FGSM(BudgetedAttack):
    name: ClassVar[str] = "fgsm"
    loss: str = "ce"
    random_start: bool = False
    step_scale: float = 1.0
    eot: int = 1

    def __post_init__(self):
        super().__post_init__()
        if not self.step_scale > 0:
            raise ConfigError(f"step_scale must be > 0, got {self.step_scale!r}")
        losses.get(self.loss)
        validate_eot(self.eot)

    def _validate(self, num_classes, targets) -> None:
        check_gradient_config(self, self.loss, num_classes, targets)

    @property
    def randomized(self) -> bool:  # type: ignore[override]
        return self.random_start

    def _first_pass(self, oracle, x, y, targets, generator):
        """Without a random start the gradient pass is at x: its logits are the clean pass."""
        if self.random_start:
            return None
        return self._step(oracle, x, x, y, targets)

    def _run(self, oracle, x, y, targets, generator):
        bounds = getattr(oracle.model, "bounds", (0.0, 1.0))
        x0 = self.threat.sample(x, generator, bounds) if self.random_start else x
        return self._step(oracle, x, x0, y, targets)[1]

    def _step(self, oracle, x, x0, y, targets):
        loss_fn = losses.get(self.loss)
        bounds = getattr(oracle.model, "bounds", (0.0, 1.0))
        _, g, z = oracle.value_and_grad(x0, lambda zz: loss_fn(zz, y, targets))
        step = geometry.steepest_ascent(g, self.norm) * (self.step_scale * self.eps)
        return z, self.threat.project(x0 + step, x, bounds)
