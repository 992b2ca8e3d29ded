"""FAB: the fast adaptive boundary attack (untargeted, and FAB-T over the top classes).

Croce & Hein (2020), "Minimally distorted adversarial examples with a fast adaptive boundary
attack", Algorithm 1.  At x⁽ⁱ⁾ the classifier is linearised; the closest decision hyperplane
π_s = {u : f_s − f_y + ⟨∇f_s − ∇f_y, u − x⁽ⁱ⁾⟩ = 0} (s minimises |f_s − f_y| / ‖∇f_s − ∇f_y‖_q, q the
dual norm) is used to project both x⁽ⁱ⁾ and the original x_orig onto π_s ∩ [lo, hi]^d
(``project_hyperplane_box``, exact for L∞/L2/L1), and the two are mixed:

    x⁽ⁱ⁺¹⁾ = clip((1 − α)(x⁽ⁱ⁾ + η·δ⁽ⁱ⁾) + α(x_orig + η·δ_orig)),  α = min(‖δ⁽ⁱ⁾‖/(‖δ⁽ⁱ⁾‖ + ‖δ_orig‖), α_max).

When x⁽ⁱ⁺¹⁾ is adversarial it is recorded (if closer than the best so far) and pulled back:
x⁽ⁱ⁺¹⁾ ← (1 − β)x_orig + β·x⁽ⁱ⁺¹⁾.  Symbols: α_max → ``alpha_max`` (0.1), η → ``eta`` (1.05),
β → ``beta`` (0.9), N_iter → ``steps``, restarts from a random point at distance min(best, ε)/2.
FAB-T (``n_targets`` > 0) uses only the hyperplane of f_t − f_y for each of the top non-true classes
t of the clean logits in turn (one gradient per step instead of one per class).

advkit's FAB is a :class:`BudgetedAttack` (the way AutoAttack uses it): a point counts only when
its distance is ≤ ε; the returned point is the closest adversarial found (so ``distance`` is the
minimal norm FAB found) or x when none lies within ε.  With ``early_stop`` (default) a sample
leaves the working batch once it has an adversarial point within ε (on accelerators: frozen until the
next compaction point of :mod:`advkit.sync`); set ``early_stop=False`` to
keep minimising the norm for every iteration (min-norm use).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .. import geometry, rng, sync
from ..errors import ConfigError
from .base import BudgetedAttack, check_n_targets, require_int


def project_hyperplane_box(t, w, c, lo, hi, norm: str) -> torch.Tensor:
    """argmin ‖d‖_p s.t. ⟨w, d⟩ = c and lo ≤ d ≤ hi (rows of flat tensors; lo ≤ 0 ≤ hi).

    When the hyperplane is out of reach inside the box, the box point furthest along w is returned.
    """
    sgn = torch.where(c >= 0, 1.0, -1.0).to(w.dtype)
    wp, target = w * sgn[:, None], c.abs()
    cap = torch.where(wp > 0, hi, -lo)  # room in the direction sign(w'_i)
    a = wp.abs()
    if norm == "l1":
        return _fill_greedy(wp, a, cap, target)
    if norm == "l2":
        r = torch.where(a > 1e-12, cap / a.clamp_min(1e-12), torch.zeros_like(a))
        weight = a * a
    else:
        r, weight = cap, a
    lam = _solve_piecewise(weight, r, target)
    mag = torch.minimum(lam[:, None], r) * (a if norm == "l2" else 1.0)
    return torch.where(a > 1e-12, wp.sign() * mag, torch.zeros_like(mag))


def _solve_piecewise(a: torch.Tensor, r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """λ ≥ 0 with G(λ) = Σ a_i·min(λ, r_i) = c (G is non-decreasing); +inf when c > G(∞)."""
    rs, order = r.sort(1)
    as_ = a.gather(1, order)
    before = (as_ * rs).cumsum(1) - as_ * rs  # Σ_{j<k} a_j r_j
    after = as_.flip(1).cumsum(1).flip(1)  # Σ_{j≥k} a_j
    g_at = before + rs * after
    reach = g_at >= c[:, None]
    k = torch.where(reach.any(1), reach.int().argmax(1), torch.full_like(c, r.shape[1] - 1, dtype=torch.long))
    b_k, a_k = before.gather(1, k[:, None]).squeeze(1), after.gather(1, k[:, None]).squeeze(1)
    lam = (c - b_k) / a_k.clamp_min(1e-30)
    return torch.where(reach.any(1), lam.clamp_min(0), torch.full_like(lam, math.inf))


def _fill_greedy(wp, a, cap, c) -> torch.Tensor:
    """L1: fill the coordinates of largest |w| to their box limits until ⟨w, d⟩ = c."""
    order = a.argsort(1, descending=True)
    a_s, cap_s = a.gather(1, order), cap.gather(1, order)
    gain = a_s * cap_s
    before = gain.cumsum(1) - gain
    need = ((c[:, None] - before) / a_s.clamp_min(1e-30)).clamp_min(0)
    amount = torch.minimum(need, cap_s) * (a_s > 1e-12)
    mag = torch.zeros_like(a).scatter(1, order, amount)
    return wp.sign() * mag


@dataclass(frozen=True)
class FAB(BudgetedAttack):
    name: ClassVar[str] = "fab"
    n_targets: int = 0
    steps: int = 100
    restarts: int = 1
    alpha_max: float = 0.1
    eta: float = 1.05
    beta: float = 0.9
    early_stop: bool = True

    def __post_init__(self):
        super().__post_init__()
        require_int(self, "steps", "restarts")
        require_int(self, "n_targets", minimum=0)
        if not (0 <= self.alpha_max <= 1 and self.eta >= 1 and 0 < self.beta < 1):
            raise ConfigError("FAB needs 0 <= alpha_max <= 1, eta >= 1 and 0 < beta < 1, got "
                              f"alpha_max={self.alpha_max}, eta={self.eta}, beta={self.beta}")

    @property
    def name(self) -> str:  # type: ignore[override]
        return "fab-t" if self.n_targets else "fab"

    @property
    def randomized(self) -> bool:  # type: ignore[override]
        return self.restarts > 1  # only restarts draw random starting points

    def _validate(self, num_classes, targets) -> None:
        check_n_targets(self, num_classes, targets)

    # ------------------------------------------------------------------ outer loops
    def _run(self, oracle, x, y, targets, generator):
        bounds = getattr(oracle.model, "bounds", (0.0, 1.0))
        best = x.clone()
        dist = torch.full((len(x),), math.inf, device=x.device, dtype=x.dtype)
        if not self.n_targets:
            self._restarts(oracle, x, y, targets, targets, generator, bounds, best, dist)
        else:
            z0 = oracle.logits(x).scatter(1, y.view(-1, 1), float("-inf"))
            ranked = z0.argsort(1, descending=True)[:, : self.n_targets]
            for k in range(self.n_targets):
                self._restarts(oracle, x, y, ranked[:, k], None, generator, bounds, best, dist)
        ok = dist <= self.eps
        return torch.where(ok.view(-1, 1, 1, 1), best, x)

    def _restarts(self, oracle, x, y, t, goal, gen, bounds, best, dist) -> None:
        for r in range(self.restarts):
            todo = (dist > self.eps).nonzero().flatten() if self.early_stop else torch.arange(len(x), device=x.device)
            if not len(todo):
                return
            sel = lambda v: None if v is None else v[todo]  # noqa: E731
            start = x[todo] if r == 0 else self._random_start(x[todo], dist[todo], rng.take(gen, todo), bounds)
            self._single_run(oracle, x[todo], y[todo], sel(t), sel(goal), start, bounds, best, dist, todo)

    def _random_start(self, x, dist, gen, bounds):
        radius = torch.minimum(dist, torch.full_like(dist, self.eps)) / 2
        u = geometry.sample_ball(x.shape, self.norm, 1.0, generator=gen, device=x.device, dtype=x.dtype)
        u = u / geometry.norm(u, self.norm).clamp_min(1e-12).view(-1, 1, 1, 1)
        return (x + u * radius.view(-1, 1, 1, 1)).clamp(*bounds)

    # ------------------------------------------------------------------ one run
    def _single_run(self, oracle, x0, y, t, goal, x1, bounds, best, dist, idx) -> None:
        lo_b, hi_b = bounds
        x0f = x0.flatten(1)
        for it in range(self.steps):
            f, w = self._closest_hyperplane(oracle, x1, y, t)
            x1f = x1.flatten(1)
            b = (w * x1f).sum(1) - f  # π: ⟨w, u⟩ = b
            d1 = project_hyperplane_box(x1f, w, b - (w * x1f).sum(1), lo_b - x1f, hi_b - x1f, self.norm)
            d0 = project_hyperplane_box(x0f, w, b - (w * x0f).sum(1), lo_b - x0f, hi_b - x0f, self.norm)
            n1 = geometry.norm(d1, self.norm).clamp_min(1e-8)
            n0 = geometry.norm(d0, self.norm).clamp_min(1e-8)
            alpha = (n1 / (n1 + n0)).clamp(0, self.alpha_max)[:, None]
            new = ((1 - alpha) * (x1f + self.eta * d1) + alpha * (x0f + self.eta * d0)).clamp(lo_b, hi_b)
            x1 = new.view_as(x0)
            z = oracle.logits(x1)
            adv = self._decide(z, y, goal)  # steers the pull-back; a new best point is confirmed on the module
            x1 = self._record(x0, x1, adv, best, dist, idx, lambda m, z=z, y=y, g=goal: self._confirmed(z, m, y, g))
            if self.early_stop and sync.compacts_at(it + 1, x0.device):  # advkit/sync.py
                keep = (dist[idx] > self.eps).nonzero().flatten()  # the compaction's one host sync
                if len(keep) < len(idx):
                    x0, x0f, x1, y, idx = x0[keep], x0f[keep], x1[keep], y[keep], idx[keep]
                    t = None if t is None else t[keep]
                    goal = None if goal is None else goal[keep]
            if not len(idx):
                return

    def _record(self, x0, x1, adv, best, dist, idx, confirm=lambda m: m):
        """Keep the adversarial rows of ``x1`` that are closer than the best so far (masked writes, no
        host sync; ``confirm`` re-decides them on the module when a faster copy decided ``adv``); with
        ``early_stop`` a row already within ε is final (it waits, frozen, for the next compaction).
        Returns x1 with its adversarial rows pulled back towards x0 by β."""
        d = geometry.norm(x1 - x0, self.norm)
        dist_i = dist[idx]
        closer = adv & (d < dist_i)
        if self.early_stop:
            closer = closer & (dist_i > self.eps)
        closer = confirm(closer)
        best[idx] = geometry.where_rows(closer, x1, best[idx])
        dist[idx] = torch.where(closer, d, dist_i)
        back = x0 + self.beta * (x1 - x0)
        return torch.where(adv.view(-1, 1, 1, 1), back, x1)

    def _closest_hyperplane(self, oracle, x1, y, t):
        """(f_s − f_y, ∇(f_s − f_y)) flattened, for the closest class s (or the target t)."""
        if t is not None:
            _, g, z = oracle.value_and_grad(x1, lambda zz: zz.gather(1, t.view(-1, 1)).squeeze(1)
                                            - zz.gather(1, y.view(-1, 1)).squeeze(1))
            f = z.gather(1, t.view(-1, 1)).squeeze(1) - z.gather(1, y.view(-1, 1)).squeeze(1)
            return f, g.flatten(1)
        z, jac = _jacobian(oracle, x1)
        df = z - z.gather(1, y.view(-1, 1))
        dg = jac - jac[torch.arange(len(y), device=y.device), y].unsqueeze(1)
        dual = {"linf": "l1", "l2": "l2", "l1": "linf"}[self.norm]
        score = df.abs() / (geometry.norm(dg.flatten(0, 1), dual).view(df.shape) + 1e-12)
        score = score.scatter(1, y.view(-1, 1), math.inf)
        s = score.argmin(1)
        rows = torch.arange(len(y), device=y.device)
        return df[rows, s], dg[rows, s]


def _jacobian(oracle, x):
    """Logits (n, K) and their input Jacobian (n, K, d); counted as K gradient passes per sample."""
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad():
        z = oracle.model(xg)
        k = z.shape[1]
        eye = torch.eye(k, device=x.device, dtype=z.dtype).unsqueeze(1).expand(k, *z.shape)
        try:
            jac, = torch.autograd.grad(z, xg, grad_outputs=eye, is_grads_batched=True)
        except RuntimeError:  # modules without batched-gradient support
            jac = torch.stack([torch.autograd.grad(z, xg, grad_outputs=eye[i], retain_graph=True)[0]
                               for i in range(k)])
    oracle.calls += len(x)
    oracle.grads += len(x) * k
    return z.detach(), jac.transpose(0, 1).flatten(2)
