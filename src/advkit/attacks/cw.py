"""Carlini–Wagner L2: the smallest L2 perturbation found by Adam in tanh space.

Carlini & Wagner (2017), "Towards evaluating the robustness of neural networks":
    minimise ‖x' − x‖₂² + c·f(x'),   x' = lo + (hi − lo)·(tanh(w) + 1)/2,
    f(x') = max(Z(x')_y − max_{i≠y} Z(x')_i, −κ)            (untargeted)
    f(x') = max(max_{i≠t} Z(x')_i − Z(x')_t, −κ)            (targeted, t = ``targets``)
The true (resp. target) class is excluded from the max with −∞ (``losses.margin``), never by
multiplying.  w starts at atanh((2·(x − lo)/(hi − lo) − 1)·0.999999); c starts at ``initial_const``
(1e-3) and a per-sample binary search (``binary_search_steps`` = 9) halves the bracket after a success
and multiplies c by 10 while no upper bound is known.  Each c runs Adam (lr ``learning_rate`` = 0.01)
for up to ``max_iterations`` steps; a sample aborts early when its objective has not decreased by
0.01% over the last ``max_iterations``/10 steps (paper: ``abort_early``).
Symbols: c → ``const``, κ → ``confidence``, Z → logits, w → ``w``.

``max_iterations`` defaults to 1000 (the common library default; the paper's MNIST/CIFAR runs use
10000, set it for a paper-strength run).  Success is verified with the margin κ
(``success_margin``).  All samples run batched with their own c; finished samples are skipped.
Distances are measured to the true ``x`` (not to its tanh-squashed copy).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .. import geometry, losses
from ..errors import ConfigError
from .base import MinNormAttack, require_int
from .pgd import validate_eot

_SQUASH = 0.999999
_NO_UPPER = 1e10


@dataclass(frozen=True)
class CarliniWagnerL2(MinNormAttack):
    name: ClassVar[str] = "cw-l2"
    randomized: ClassVar[bool] = False
    confidence: float = 0.0
    binary_search_steps: int = 9
    initial_const: float = 1e-3
    max_iterations: int = 1000
    learning_rate: float = 0.01
    abort_early: bool = True
    eot: int = 1

    def __post_init__(self):
        super().__post_init__()
        if self.norm != "l2":
            raise ConfigError(f"CarliniWagnerL2 minimises the l2 norm, got norm={self.norm!r}")
        require_int(self, "binary_search_steps", "max_iterations")
        for key in ("initial_const", "learning_rate"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)!r}")
        if not self.confidence >= 0:
            raise ConfigError(f"confidence must be >= 0, got {self.confidence!r}")
        validate_eot(self.eot)

    @property
    def success_margin(self) -> float:
        return float(self.confidence)

    # ------------------------------------------------------------------ the math
    def _run(self, oracle, x, y, targets, generator):
        lo, hi = getattr(oracle.model, "bounds", (0.0, 1.0))
        w0 = torch.atanh((2 * (x - lo) / (hi - lo) - 1) * _SQUASH)
        n = len(x)
        const = torch.full((n,), self.initial_const, device=x.device, dtype=x.dtype)
        lower = torch.zeros_like(const)
        upper = torch.full_like(const, _NO_UPPER)
        best_x, best_d2 = x.clone(), torch.full_like(const, math.inf)
        for _ in range(self.binary_search_steps):
            found = self._minimise(oracle, x, y, targets, w0, const, best_x, best_d2, (lo, hi))
            upper = torch.where(found, torch.minimum(upper, const), upper)
            lower = torch.where(found, lower, torch.maximum(lower, const))
            bracketed = upper < _NO_UPPER
            const = torch.where(bracketed, (lower + upper) / 2, const * 10)
        if self.max_eps is not None:  # outside the budget counts as a failure: return x
            far = best_d2.sqrt() > self.max_eps
            best_x = geometry.where_rows(far, x, best_x)
        return best_x

    def _minimise(self, oracle, x, y, targets, w0, const, best_x, best_d2, bounds) -> torch.Tensor:
        """Adam on w for one value of c per sample; updates best_x/best_d2 in place; returns 'found'."""
        lo, hi = bounds
        w = w0.clone()
        m, v = torch.zeros_like(w), torch.zeros_like(w)
        found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        prev = torch.full_like(const, math.inf)
        alive = torch.ones_like(found)
        check_every = max(1, math.ceil(self.max_iterations / 10))
        kappa = float(self.confidence)
        idx = alive.nonzero().flatten()
        for it in range(self.max_iterations):
            if it and it % check_every == 0:  # ``alive`` changes only at the checks: one host sync per check
                idx = alive.nonzero().flatten()
            if not len(idx):
                break
            ya, ta, ca = y[idx], None if targets is None else targets[idx], const[idx]
            th = torch.tanh(w[idx])
            xa = lo + (hi - lo) * (th + 1) / 2
            fl, g, z = oracle.value_and_grad(xa, lambda zz: -ca * losses.margin(zz, ya, ta, kappa=kappa))
            delta = xa - x[idx]
            d2 = delta.flatten(1).pow(2).sum(1)
            self._record(idx, xa, d2, self._is_success(z, ya, ta), best_x, best_d2, found)
            g_w = (2 * delta + g) * ((hi - lo) / 2) * (1 - th * th)
            self._adam(w, m, v, idx, g_w, it + 1)
            if self.abort_early and (it + 1) % check_every == 0:
                obj = d2 + fl
                stalled = obj > 0.9999 * prev[idx]
                prev[idx] = obj
                alive[idx] = alive[idx] & ~stalled
        return found

    @staticmethod
    def _record(idx, xa, d2, ok, best_x, best_d2, found) -> None:
        """Masked writes by index (no host sync)."""
        found[idx] = found[idx] | ok
        better = ok & (d2 < best_d2[idx])
        best_x[idx] = geometry.where_rows(better, xa.detach(), best_x[idx])
        best_d2[idx] = torch.where(better, d2, best_d2[idx])

    def _adam(self, w, m, v, idx, g, t, beta1=0.9, beta2=0.999, eps=1e-8) -> None:
        """One Adam step (Kingma & Ba 2015) on the rows ``idx`` of w, in place."""
        m[idx] = beta1 * m[idx] + (1 - beta1) * g
        v[idx] = beta2 * v[idx] + (1 - beta2) * g * g
        m_hat = m[idx] / (1 - beta1 ** t)
        v_hat = v[idx] / (1 - beta2 ** t)
        w[idx] = w[idx] - self.learning_rate * m_hat / (v_hat.sqrt() + eps)
