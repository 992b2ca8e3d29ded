"""MART: Misclassification-Aware adveRsarial Training.

Wang, Zou, Yi, Bailey, Ma & Gu (2020), "Improving adversarial robustness requires revisiting
misclassified examples":

    L = (1/n) Σᵢ [ BCE(p(x̂ᵢ), yᵢ) + λ · KL(p(xᵢ) ‖ p(x̂ᵢ)) · (1 − p_{yᵢ}(xᵢ)) ]
    BCE(p(x̂), y) = −log p_y(x̂) − log(1 − max_{k≠y} p_k(x̂))

where p = softmax(f_θ(·)) and x̂ maximises CE within B(x, ε) (K PGD steps of size η from
x + 0.001·N(0, I), as in the reference code).  Symbols → code: λ → ``beta`` (6 in the paper),
ε → ``eps``, K → ``steps``, η → ``step_size`` (default 2.5·ε/K).  The weight (1 − p_y(x)) is part of
the graph, as in the paper's equation.  Two forward passes, clean then adversarial, as in the
reference code (BatchNorm statistics per input kind, see :mod:`.trades`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from .. import losses
from .base import KLRegularisedObjective, StepOutput, ce_to, pgd_maximize

_TINY = 1e-12


def boosted_ce(z_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample −log p_y − log(1 − max_{k≠y} p_k) on logits ``z_adv``."""
    logp = F.log_softmax(z_adv, 1)
    p_other = logp.exp().scatter(1, y.view(-1, 1), 0.0).amax(1)
    return -logp.gather(1, y.view(-1, 1)).squeeze(1) - torch.log((1 - p_other).clamp_min(_TINY))


@dataclass(frozen=True)
class MART(KLRegularisedObjective):
    name: ClassVar[str] = "mart"

    def perturb(self, model, x, y, *, generator, eps_scale):
        eps, alpha = self.eps * eps_scale, self.alpha * eps_scale
        if eps == 0:
            return x
        start = self.noisy_start(x, generator)
        return pgd_maximize(model, x, start, ce_to(y), norm=self.norm, eps=eps, steps=self.steps, step_size=alpha)

    def loss(self, model, x, y, x_pert):
        z_clean, z_adv = model(x), model(x_pert)
        p_true = F.softmax(z_clean, 1).gather(1, y.view(-1, 1)).squeeze(1)
        kl = losses.kl(z_adv, z_clean)
        total = (boosted_ce(z_adv, y) + self.beta * kl * (1 - p_true)).mean()
        return StepOutput(total, clean_logits=z_clean.detach(), perturbed_logits=z_adv.detach())
