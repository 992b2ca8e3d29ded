"""PGD adversarial training.

Madry, Makelov, Schmidt, Tsipras & Vladu (2018), "Towards deep learning models resistant to
adversarial attacks": min_θ E_{(x,y)} [ max_{δ ∈ S} L(θ, x + δ, y) ], the inner maximum approximated by
k steps of projected gradient ascent from a uniform random start in S.

Symbols → code: S = {δ : ‖δ‖_p ≤ ε} ∩ box → ``norm``, ``eps`` (and the model's bounds); k → ``steps``;
α (step size) → ``step_size`` (default 2.5·ε/k, the PGD convention of DESIGN.md); L = cross-entropy;
the random start δ₀ ~ U(S) → ``random_start``, drawn from the loop's ``generator``.  During the
ε warm-up both ε and α are multiplied by ``eps_scale``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F

from .. import geometry
from .base import InnerMaxObjective, StepOutput, bounds_of, ce_to, pgd_maximize


@dataclass(frozen=True)
class PGDAT(InnerMaxObjective):
    name: ClassVar[str] = "pgd-at"
    random_start: bool = True

    def perturb(self, model, x, y, *, generator, eps_scale):
        eps, alpha = self.eps * eps_scale, self.alpha * eps_scale
        if eps == 0:
            return x
        start = x
        if self.random_start:
            delta = geometry.sample_ball(x.shape, self.norm, eps, generator=generator, device=x.device, dtype=x.dtype)
            start = (x + delta).clamp(*bounds_of(model))
        return pgd_maximize(model, x, start, ce_to(y), norm=self.norm, eps=eps, steps=self.steps, step_size=alpha)

    def loss(self, model, x, y, x_pert):
        z = model(x_pert)
        return StepOutput(F.cross_entropy(z, y), perturbed_logits=z.detach())
