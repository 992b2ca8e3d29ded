"""FMN: the fast minimum-norm attack through an adaptive norm constraint, for L∞, L2 and L1.

Pintor, Roli, Brendel & Biggio (2021), "Fast Minimum-norm Adversarial Attacks through Adaptive
Norm Constraints" (NeurIPS), Algorithm 1.  The loss is the logit difference
L(x') = z_y(x') − max_{j≠y} z_j(x') (targeted: max_{j≠t} z_j − z_t), negative iff x' is adversarial;
advkit ascends its negation, the C&W margin (``losses.margin``).  From δ₀ = 0 and ε₀ = ∞, step k
(k = 0 … K−1, K = ``steps``) at x + δ_k:

* cosine annealing: c_k = (1 + cos(πk/K))/2, α_k = α_K + (α_0 − α_K)·c_k (``alpha_init``,
  ``alpha_final`` = α_0/100 by default), γ_k = γ_K + (γ_0 − γ_K)·c_k (``gamma_init`` 0.05,
  ``gamma_final`` 0.001);
* best-adversarial tracking: when x + δ_k is adversarial and ‖δ_k‖ is below the best norm so
  far, it becomes the best point δ*;
* the norm constraint: if x + δ_k is adversarial, ε_{k+1} = min(ε_k·(1 − γ_k), ‖δ*‖); else, once an
  adversarial point has been found, ε_{k+1} = ε_k·(1 + γ_k); before that,
  ε_{k+1} = ‖δ_k‖ + |L|/‖∇L‖_q (q the dual norm: the linearised distance to the boundary, so the first
  step sets the initial ε).  ε is capped by the largest norm the box allows, ‖max(x − lo, hi − x)‖_p;
* the step: δ_{k+1} = clip(P_ε(δ_k + α_k·∇/‖∇‖₂)), the gradient of the margin normalised in L2 for
  every norm (as the reference code), P_ε the projection onto the Lp ball of radius ε (L∞ clipping,
  L2 rescaling, L1 the exact Euclidean projection of Duchi et al. 2008), then the box [lo, hi].

Two guards against floating point, both documented deviations from the reference code: on a
(locally) linear model the linearised ε lands the iterate exactly on the boundary, where rounding
keeps it on the clean side step after step (the reference code and foolbox 3 then report failure
on such samples), so before the first adversarial point ε is the linear estimate times
(1 + ``NUDGE``); and a point counts as adversarial inside the loop only when its margin exceeds
``SAFE``·max(1, max|z|), so that the contract's fresh forward pass (another batch, other rounding)
confirms every recorded best point.

Every sample runs all ``steps`` (a minimum-norm search never stops at its first success); the
returned point is δ*, or x where no adversarial point was found (or, with ``max_eps``, none within
it).  Deterministic: no random start (the paper's FMN starts from x).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .. import geometry, losses
from ..errors import ConfigError
from .base import MinNormAttack, require_int

#: relative overshoot of the linearised distance to the boundary before the first adversarial point
NUDGE = 1e-3
#: in-loop adversarial points need a margin above SAFE·max(1, max |z|)
SAFE = 1e-5


def cosine(k: int, steps: int, start: float, end: float) -> float:
    """Cosine annealing from ``start`` (k = 0) towards ``end`` (k = steps)."""
    return end + (start - end) * (1 + math.cos(math.pi * k / steps)) / 2


@dataclass(frozen=True)
class FMN(MinNormAttack):
    name: ClassVar[str] = "fmn"
    randomized: ClassVar[bool] = False
    steps: int = 100
    alpha_init: float = 1.0
    alpha_final: float | None = None
    gamma_init: float = 0.05
    gamma_final: float = 0.001

    def __post_init__(self):
        super().__post_init__()
        require_int(self, "steps")
        final = self.alpha_init / 100 if self.alpha_final is None else self.alpha_final
        if not (self.alpha_init > 0 and final > 0):
            raise ConfigError(f"FMN needs step sizes > 0, got alpha_init={self.alpha_init!r}, "
                              f"alpha_final={self.alpha_final!r}")
        if not (0 < self.gamma_final <= self.gamma_init < 1):
            raise ConfigError(f"FMN needs 0 < gamma_final <= gamma_init < 1, got gamma_init={self.gamma_init!r}, "
                              f"gamma_final={self.gamma_final!r}")

    def _run(self, oracle, x, y, targets, generator):
        lo, hi = getattr(oracle.model, "bounds", (0.0, 1.0))
        n, p = len(x), self.norm
        worst = geometry.norm(torch.maximum(x - lo, hi - x), p)
        delta = torch.zeros_like(x)
        eps = torch.full((n,), math.inf, device=x.device, dtype=x.dtype)
        best_x, best_d = x.clone(), torch.full_like(eps, math.inf)
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        a_end = self.alpha_init / 100 if self.alpha_final is None else self.alpha_final
        for k in range(self.steps):
            alpha = cosine(k, self.steps, self.alpha_init, a_end)
            gamma = cosine(k, self.steps, self.gamma_init, self.gamma_final)
            xa = x + delta
            m, g, z = oracle.value_and_grad(xa, lambda zz: losses.margin(zz, y, targets))
            d = geometry.norm(delta, p)
            adv = m > SAFE * z.abs().amax(1).clamp_min(1.0)
            better = adv & (d < best_d)  # masked writes, no host sync (advkit/sync.py)
            best_x = geometry.where_rows(better, xa, best_x)
            best_d = torch.where(better, d, best_d)
            found = found | adv
            to_boundary = m.abs() / geometry.dual_norm(g, p).clamp_min(1e-12)
            grown = torch.where(found, eps * (1 + gamma), (d + to_boundary) * (1 + NUDGE))
            eps = torch.minimum(torch.where(adv, torch.minimum(eps * (1 - gamma), best_d), grown), worst)
            step = g / geometry.norm(g, "l2").clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
            delta = geometry.project(delta + alpha * step, p, eps)
            delta = (x + delta).clamp(lo, hi) - x
        if self.max_eps is not None:  # outside the budget counts as a failure: return x
            best_x = geometry.where_rows(best_d > self.max_eps, x, best_x)
        return best_x
