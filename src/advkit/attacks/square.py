"""Square Attack: score-based black-box random search with square-shaped updates.

Andriushchenko, Croce, Flammarion & Hein (2020), "Square Attack: a query-efficient black-box
adversarial attack via random search", Algorithms 1–3.  Only ``oracle.logits`` is used.  Symbols:

* N → ``n_queries`` (total forward passes per sample, the initial point included);
* p → ``schedules.square_p`` (p_init = ``p_init``, halved at iterations 10, 50, …, 8000 of the
  10,000-iteration schedule, rescaled to ``n_queries`` when ``rescale_schedule``; AutoAttack's
  official preset does not rescale), side h = max(round(√(p·n_features/c)), 1) (odd and ≥ 3 for L2);
* L → untargeted margin z_y − max_{i≠y} z_i; targeted: cross-entropy of the target, as in the paper
  (a sample stops once its target logit is the largest);
* L∞ init: vertical stripes x ± ε (one random sign per column and channel); update: a random
  h×h window set to x ± ε with a random sign per channel (flipped if it would not change the point);
* L2 init: a grid of "mountain" bumps η (Alg. 3) with random signs, rescaled to ‖δ‖₂ = ε; update:
  window W₁ receives η plus its old normalised content, rescaled to carry the mass of W₁ ∪ W₂ and
  the unused budget (ε² − ‖δ‖²)/c per channel, W₂ is zeroed, δ is rescaled to ε.
* L1 (Croce & Hein 2021, "Mind the box: l1-APGD for sparse adversarial attacks on image
  classifiers", §5 and its appendix: the L1 adaptation of Square that completes l1-AutoAttack): as L2
  with L1 masses — the bumps are built from 1/(k+1)⁴ mountains and have unit L1 norm, W₁ receives η plus
  its old L1-normalised content, scaled per channel to c·((ε − ‖δ‖₁)₊/c + ‖δ_{W₁∪W₂}‖₁) as the official
  code does, W₂ is zeroed, and every point (the initial grid too, which is not rescaled first) is
  projected onto the L1 ball of radius ε(1 − 10⁻⁶) ∩ box (the exact projection of l1-APGD).

Windows are drawn per sample (the official code shares one window across the batch).  The coin that
transposes the L2/L1 bump is one per batch with a ``torch.Generator`` (as the official code) and one per
sample with per-sample streams (:mod:`advkit.rng`), so that a sample's run never depends on its batch.
A candidate replaces the current point when it lowers L (or is already adversarial); successful samples
leave the working batch (at once on CPU; on accelerators, frozen, at the next compaction point:
:mod:`advkit.sync`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from .. import geometry, losses, rng, sync
from ..errors import ConfigError
from .apgd import project_l1_box
from .base import BudgetedAttack, require_int
from .schedules import square_p


def mountain(h1: int, h2: int, device=None, dtype=torch.float32, power: int = 2) -> torch.Tensor:
    """η^{(h1,h2)}: Σ_{k ≥ d} 1/(k+1)^power at Chebyshev distance d from the centre (⌊h1/2⌋, ⌊h2/2⌋);
    power 2 for L2 (the paper's Alg. 3), 4 for the L1 version."""
    r = (torch.arange(h1, device=device) - h1 // 2).abs().view(-1, 1)
    c = (torch.arange(h2, device=device) - h2 // 2).abs().view(1, -1)
    dist = torch.maximum(r, c)
    k = max(h1 // 2 + 1, h2 // 2 + 1)
    w = 1.0 / (torch.arange(k, device=device, dtype=dtype) + 1) ** power
    tail = w.flip(0).cumsum(0).flip(0)  # tail[d] = Σ_{k≥d} w_k
    return tail[dist]


def bump(s: int, device=None, dtype=torch.float32, norm: str = "l2") -> torch.Tensor:
    """The update pattern [η^{(⌊s/2⌋,s)}; −η^{(s−⌊s/2⌋,s)}], each half normalised and then the whole,
    as in the official code: unit L2 norm (L2), or built from 1/(k+1)⁴ mountains with unit L1 norm (L1)."""
    power = 4 if norm == "l1" else 2

    def unit(t):
        scale = t.abs().sum() if norm == "l1" else t.norm()
        return t / scale.clamp_min(1e-12)
    top, bot = mountain(s // 2, s, device, dtype, power), mountain(s - s // 2, s, device, dtype, power)
    return unit(torch.cat([unit(top), -unit(bot)], 0))


def _corners(n: int, s: int, h: int, w: int, gen, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-left corners (rows, columns; each (n,1,1,1)) of one random s×s window per sample."""
    vh = rng.randint(gen, 0, h - s + 1, (n, 1, 1, 1), device=device)
    vw = rng.randint(gen, 0, w - s + 1, (n, 1, 1, 1), device=device)
    return vh, vw


def _mask(corner, s: int, h: int, w: int) -> torch.Tensor:
    """(n,1,h,w) boolean masks of the s×s windows at ``corner``."""
    vh, vw = corner
    rows = torch.arange(h, device=vh.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=vh.device).view(1, 1, 1, w)
    return (rows >= vh) & (rows < vh + s) & (cols >= vw) & (cols < vw + s)


def _windows(n: int, s: int, h: int, w: int, gen, device) -> torch.Tensor:
    """(n,1,h,w) boolean masks of one random s×s window per sample."""
    return _mask(_corners(n, s, h, w, gen, device), s, h, w)


def _index(corner, c: int, s: int) -> tuple:
    """Index tensors that address the (n, c, s, s) contents of the windows at ``corner`` (gather and
    scatter by index: no host sync, unlike a boolean mask)."""
    vh, vw = corner
    ar = torch.arange(s, device=vh.device)
    n = len(vh)
    return (torch.arange(n, device=vh.device).view(n, 1, 1, 1), torch.arange(c, device=vh.device).view(1, c, 1, 1),
            vh + ar.view(1, 1, s, 1), vw + ar.view(1, 1, 1, s))


def _signs(shape, gen, device, dtype) -> torch.Tensor:
    return rng.randint(gen, 0, 2, shape, device=device).to(dtype) * 2 - 1


def _oriented(eta: torch.Tensor, gen, device) -> torch.Tensor:
    """η or its transpose by a coin: one coin for the batch from a ``torch.Generator`` (as the official
    code; η stays (s, s)), one per sample from per-sample streams (:mod:`advkit.rng`; η becomes (n,1,s,s))."""
    if rng.is_stream(gen):
        return torch.where(gen.coin().to(device).view(-1, 1, 1, 1), eta.T, eta)
    return torch.where(torch.rand(1, generator=gen, device=device) > 0.5, eta.T, eta)  # no host sync


@dataclass(frozen=True)
class Square(BudgetedAttack):
    name: ClassVar[str] = "square"
    uses_gradients: ClassVar[bool] = False
    n_queries: int = 5000
    p_init: float = 0.8
    rescale_schedule: bool = True

    def __post_init__(self):
        super().__post_init__()
        require_int(self, "n_queries")
        if not 0 < self.p_init <= 1:
            raise ConfigError(f"p_init must lie in (0, 1], got {self.p_init!r}")
        if self.norm not in ("linf", "l2", "l1"):
            raise ConfigError(f"square supports the linf, l2 and l1 threat models, got {self.norm!r}")

    def _scores(self, oracle, x, y, t):
        """(margin: > 0 means success, loss to minimise)."""
        z = oracle.logits(x)
        m = losses.margin(z, y, t)
        loss = -m if t is None else F.cross_entropy(z, t, reduction="none")
        return m, loss

    def _run(self, oracle, x, y, targets, generator):
        bounds = getattr(oracle.model, "bounds", (0.0, 1.0))
        init = {"linf": self._init_linf, "l2": self._init_l2, "l1": self._init_l1}[self.norm]
        x_best = init(x, generator, bounds)
        m, l = self._scores(oracle, x_best, y, targets)
        active = (m <= 0).nonzero().flatten()
        step = {"linf": self._step_linf, "l2": self._step_l2, "l1": self._step_l1}[self.norm]
        # working copies of the active rows (x, y, targets, best point, loss); they are compacted
        # only when a sample succeeds, and x_best is written back then and at the end
        xa, ya, xb, la = x[active], y[active], x_best[active], l[active]
        ta = None if targets is None else targets[active]
        ga = rng.take(generator, active)  # per-sample streams of the active rows
        # ``won``: working rows already successful; on accelerators they wait, frozen, for the next
        # compaction (advkit/sync.py)
        won = torch.zeros(len(active), dtype=torch.bool, device=x.device)
        for i in range(self.n_queries - 1):
            if not len(active):
                break
            if rng.is_stream(ga):  # this step's draws in one go (see _words_per_step)
                ga.prefetch(self._words_per_step(x.shape[1]))
            cand = step(xa, xb, self._side(i, x), ga, bounds)
            m_new, l_new = self._scores(oracle, cand, ya, ta)
            take = ((l_new < la) | (m_new > 0)) & ~won  # successes are always taken
            xb = geometry.where_rows(take, cand, xb)
            la = torch.where(take, l_new, la)
            won = won | (take & (m_new > 0))
            if sync.compacts_at(i + 1, x.device):
                keep = (~won).nonzero().flatten()  # the compaction's one host sync
                if len(keep) == len(won):
                    continue
                x_best[active] = xb  # the rows that stay are written again later
                active, xa, ya, xb, la, won = active[keep], xa[keep], ya[keep], xb[keep], la[keep], won[keep]
                ta = None if ta is None else ta[keep]
                ga = rng.take(generator, active)
        x_best[active] = xb
        return x_best

    def _words_per_step(self, c: int) -> int:
        """Random words per sample that one step draws: a window corner (2 numbers; two windows for
        L2/L1), the bump's coin (L2/L1) and c signs."""
        return 2 + c if self.norm == "linf" else 4 + 1 + c

    def _side(self, i: int, x) -> int:
        c, h, w = x.shape[1:]
        p = square_p(i, self.p_init, self.n_queries, self.rescale_schedule)
        s = max(int(round(math.sqrt(p * h * w))), 1)
        if self.norm in ("l2", "l1"):
            s = max(s, 3)
            s += 1 - s % 2
        return min(s, h, w)

    # ------------------------------------------------------------------ L∞
    def _init_linf(self, x, gen, bounds):
        n, c, _, w = x.shape
        return (x + self.eps * _signs((n, c, 1, w), gen, x.device, x.dtype)).clamp(*bounds)

    def _step_linf(self, x, x_best, s, gen, bounds):
        n, c, h, w = x.shape
        win = _windows(n, s, h, w, gen, x.device)
        sign = _signs((n, c, 1, 1), gen, x.device, x.dtype)
        cand = torch.where(win, (x + self.eps * sign).clamp(*bounds), x_best)
        same = (cand == x_best).flatten(1).all(1).view(-1, 1, 1, 1)
        flipped = torch.where(win, (x - self.eps * sign).clamp(*bounds), x_best)
        return torch.where(same, flipped, cand)

    # ------------------------------------------------------------------ L2
    def _init_l2(self, x, gen, bounds):
        return self._rescaled(x, self._grid(x, gen), bounds)

    def _grid(self, x, gen):
        """The initial δ of L2/L1: a grid of bumps (side ⌊h/5⌋) with a random sign per sample and channel."""
        n, c, h, w = x.shape
        s = max(h // 5, 1)
        start = (h - s * 5) // 2 if h >= 5 else 0
        delta = torch.zeros_like(x)
        eta = bump(s, x.device, x.dtype, self.norm)
        for i in range(start, h - s + 1, s):
            for j in range(start, w - s + 1, s):
                sign = _signs((n, c, 1, 1), gen, x.device, x.dtype)
                delta[:, :, i:i + s, j:j + s] += eta * sign
        return delta

    def _rescaled(self, x, delta, bounds):
        norm = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        return (x + delta / norm * self.eps).clamp(*bounds)

    def _step_l2(self, x, x_best, s, gen, bounds):
        n, c, h, w = x.shape
        delta = x_best - x
        c1, c2 = _corners(n, s, h, w, gen, x.device), _corners(n, s, h, w, gen, x.device)
        w1, w2, at1 = _mask(c1, s, h, w), _mask(c2, s, h, w), _index(c1, c, s)
        win1 = delta[at1]
        norm_w1 = win1.pow(2).sum((-2, -1), keepdim=True).sqrt()
        norm_union = (delta * (w1 | w2)).pow(2).sum((-2, -1), keepdim=True).sqrt()
        unused = (self.eps ** 2 - delta.flatten(1).pow(2).sum(1)).clamp_min(0).view(-1, 1, 1, 1)
        eta = _oriented(bump(s, x.device, x.dtype), gen, x.device)
        new = eta * _signs((n, c, 1, 1), gen, x.device, x.dtype) + win1 / (norm_w1 + 1e-12)
        new = new / new.pow(2).sum((-2, -1), keepdim=True).sqrt().clamp_min(1e-12)
        new = new * (unused / c + norm_union ** 2).sqrt()
        delta = delta.masked_fill(w2, 0.0).index_put(at1, new)
        return self._rescaled(x, delta, bounds)

    # ------------------------------------------------------------------ L1
    def _project_l1(self, x, delta, bounds):
        """x + δ projected onto the L1 ball of radius ε(1 − 10⁻⁶) ∩ box, as the official code."""
        return x + project_l1_box(delta, x, self.eps * (1 - 1e-6), bounds)

    def _init_l1(self, x, gen, bounds):
        return self._project_l1(x, self._grid(x, gen), bounds)

    def _step_l1(self, x, x_best, s, gen, bounds):
        n, c, h, w = x.shape
        delta = x_best - x
        c1, c2 = _corners(n, s, h, w, gen, x.device), _corners(n, s, h, w, gen, x.device)
        w1, w2, at1 = _mask(c1, s, h, w), _mask(c2, s, h, w), _index(c1, c, s)
        win1 = delta[at1]
        mass_w1 = win1.abs().sum((-2, -1), keepdim=True)
        mass_union = (delta * (w1 | w2)).abs().sum((-2, -1), keepdim=True)
        unused = (self.eps - delta.flatten(1).abs().sum(1)).clamp_min(0).view(-1, 1, 1, 1)
        eta = _oriented(bump(s, x.device, x.dtype, "l1"), gen, x.device)
        new = eta * _signs((n, c, 1, 1), gen, x.device, x.dtype) + win1 / (mass_w1 + 1e-12)
        new = new / new.abs().sum((-2, -1), keepdim=True).clamp_min(1e-12) * (unused / c + mass_union) * c
        delta = delta.masked_fill(w2, 0.0).index_put(at1, new)
        return self._project_l1(x, delta, bounds)
