"""What every attack returns: :class:`AttackResult`, per sample and in input order (see
:mod:`advkit.attacks.base` for the contract that fills it)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class AttackResult:
    """Per-sample outcome of an attack, in input order.

    ``success`` comes from an independent forward pass on ``x_adv`` (misclassified, or classified
    as the target when targeted).  ``distance`` is the Lp distance of ``x_adv`` to ``x`` in the
    attack's norm.  ``model_calls``/``gradient_calls`` count per-sample forward/backward passes.
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    distance: torch.Tensor
    predictions: torch.Tensor
    model_calls: int
    gradient_calls: int
    seconds: float
    config: dict = field(default_factory=dict)

    @property
    def robust_accuracy(self) -> float:
        return float((~self.success).float().mean()) if len(self.success) else float("nan")
