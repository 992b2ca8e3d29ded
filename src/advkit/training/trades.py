"""TRADES: TRadeoff-inspired Adversarial DEfense via Surrogate-loss minimization.

Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan (2019), "Theoretically principled trade-off between
robustness and accuracy":

    min_θ E [ CE(f_θ(x), y) + β · max_{x' ∈ B(x, ε)} KL(f_θ(x) ‖ f_θ(x')) ]

with f_θ(·) the softmax output.  The inner maximisation starts from x + 0.001·N(0, I) (not clipped,
as in the reference code) and takes K projected sign-gradient steps of size η on the KL with f_θ(x)
held fixed; the outer loss back-propagates through both f_θ(x) and f_θ(x').

Symbols → code: β → ``beta`` (6 in the paper), ε → ``eps``, K → ``steps``, η → ``step_size``
(default 2.5·ε/K), the 0.001 start scale → ``init_std``.  The KL term is averaged over the batch
(the paper's (1/n)·Σ).  f_θ(x) and f_θ(x') come from two forward passes (clean first, then
adversarial), as in the reference code, so that BatchNorm normalises each kind of input with its own
batch statistics (one pass on the concatenated batch would mix them).  The reference code runs the
clean batch through the network a second time for the KL target; in train mode that pass returns
the same logits, so the loss is the same and only BatchNorm's running averages see one update fewer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from .. import losses
from .base import KLRegularisedObjective, StepOutput, pgd_maximize


@dataclass(frozen=True)
class TRADES(KLRegularisedObjective):
    name: ClassVar[str] = "trades"

    def perturb(self, model, x, y, *, generator, eps_scale):
        eps, alpha = self.eps * eps_scale, self.alpha * eps_scale
        if eps == 0:
            return x
        with torch.no_grad():
            z_clean = model(x)
        start = self.noisy_start(x, generator)
        return pgd_maximize(model, x, start, lambda z: losses.kl(z, z_clean), norm=self.norm, eps=eps,
                            steps=self.steps, step_size=alpha)

    def loss(self, model, x, y, x_pert):
        z_clean, z_adv = model(x), model(x_pert)
        total = F.cross_entropy(z_clean, y) + self.beta * losses.kl(z_adv, z_clean).mean()
        return StepOutput(total, clean_logits=z_clean.detach(), perturbed_logits=z_adv.detach())
