"""MART: Misclassification-Aware adveRsarial Training.

Wang, Zou, Yi, Bailey, Ma & Gu (2020), "Improving adversarial robustness requires revisiting
misclassified examples":

    L = (1/n) Σᵢ [ BCE(p(x̂ᵢ), yᵢ) + λ · KL(p(xᵢ) ‖ p(x̂ᵢ)) · (1 − p_{yᵢ}(xᵢ)) ]
    BCE(p(x̂), y) = −log p_y(x̂) − log(1 − max_{k≠y} p_k(x̂))

where p = softmax(f_θ(·)) and x̂ maximises CE within B(x, ε) (K PGD steps of size η from
x + 0.001·N(0, I), as in the reference code).  Symbols → code: λ → ``beta`` (6 in the paper),
ε → ``eps``, K → ``steps``, η → ``step_size`` (default 2.5·ε/K).  The loss is computed as the
authors' reference code computes it, smoothing included (on confident logits it decides the value:
175.9 with exact logarithms vs 166.7 in the reference's form on the unit test's saturated batch):
−log p_y(x̂) is the exact cross-entropy, the second BCE term is −log(1.0001 − p_k(x̂) + 10⁻¹²) with k the
most likely class other than y, the KL term is Σ p(x)·(log p(x) − log(p(x̂) + 10⁻¹²)), and the weight
is (1.0000001 − p_y(x)), part of the graph as in the paper's equation.  Two forward passes, clean then
adversarial, as in the reference code (BatchNorm statistics per input kind, see :mod:`.trades`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from .base import KLRegularisedObjective, StepOutput, ce_to, pgd_maximize

_TINY = 1e-12  #: the reference code's guard inside its logarithms
_ONE_PLUS = 1.0001  #: the reference code's 1 in −log(1 − p_k) of the BCE term
_WEIGHT_ONE = 1.0000001  #: the reference code's 1 in the weight 1 − p_y(x)


def boosted_ce(z_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample −log p_y − log(1.0001 − max_{k≠y} p_k + 10⁻¹²) on logits ``z_adv`` (the reference form)."""
    p = F.softmax(z_adv, 1)
    p_other = p.scatter(1, y.view(-1, 1), float("-inf")).amax(1)
    return F.cross_entropy(z_adv, y, reduction="none") - torch.log(_ONE_PLUS - p_other + _TINY)


def reference_kl(z_adv: torch.Tensor, z_clean: torch.Tensor) -> torch.Tensor:
    """Per-sample Σ p·(log p − log(q + 10⁻¹²)), p = softmax(z_clean), q = softmax(z_adv) (0·log 0 = 0)."""
    p, q = F.softmax(z_clean, 1), F.softmax(z_adv, 1)
    return (torch.xlogy(p, p) - p * torch.log(q + _TINY)).sum(1)


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
        kl = reference_kl(z_adv, z_clean)
        total = (boosted_ce(z_adv, y) + self.beta * kl * (_WEIGHT_ONE - p_true)).mean()
        return StepOutput(total, clean_logits=z_clean.detach(), perturbed_logits=z_adv.detach())
