"""Fast adversarial training ("FGSM-RS").

Wong, Rice & Kolter (2020), "Fast is better than free: revisiting adversarial training":

    δ ~ U(−ε, ε);   δ ← clip_[−ε, ε](δ + α·sign(∇_δ ℓ(f_θ(x + δ), y)));   θ ← θ − ∇_θ ℓ(f_θ(x + δ), y)

with x + δ kept in the input box after the random start and after the step (as in the paper's code).
Symbols → code: ε → ``eps``, α → ``step_size`` (default 1.25·ε, the paper's choice), ℓ = cross-entropy.
The paper pairs it with a cyclic learning rate (``schedule = "cyclic"`` in the loop).  L∞ only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import Objective, StepOutput, bounds_of, check_budget


@dataclass(frozen=True)
class FastAT(Objective):
    name: ClassVar[str] = "fast-at"
    adversarial: ClassVar[bool] = True
    eps: float = 0.3
    norm: str = "linf"
    step_size: float | None = None

    def __post_init__(self):
        super().__post_init__()
        check_budget(self.norm, self.eps, None, self.step_size)
        if self.norm != "linf":
            raise ConfigError(f"fast-at is defined for norm 'linf', got {self.norm!r}")

    @property
    def alpha(self) -> float:
        return self.step_size if self.step_size is not None else 1.25 * self.eps

    def perturb(self, model, x, y, *, generator, eps_scale):
        eps, alpha = self.eps * eps_scale, self.alpha * eps_scale
        if eps == 0:
            return x
        lo, hi = bounds_of(model)
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x0 = (x + (2 * u - 1) * eps).clamp(lo, hi).requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(x0), y, reduction="sum")
        grad, = torch.autograd.grad(loss, x0)
        delta = (x0.detach() + alpha * grad.sign() - x).clamp(-eps, eps)
        return (x + delta).clamp(lo, hi).detach()

    def loss(self, model, x, y, x_pert):
        z = model(x_pert)
        return StepOutput(F.cross_entropy(z, y), perturbed_logits=z.detach())
