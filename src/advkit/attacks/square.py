"""Square Attack: score-based black-box random search with square-shaped updates.

Andriushchenko, Croce, Flammarion & Hein (2020), "Square Attack: a query-efficient black-box
adversarial attack via random search", Algorithms 1–3, run by default as the official AutoAttack code
runs it.  Only ``oracle.logits`` is used.  Symbols:

* N → ``n_queries``: iterations after the initial point (N + 1 forward passes per sample at most, as
  the official code; the official preset uses 5,000);
* p → ``schedules.square_p`` (p_init = ``p_init``, halved at iterations 10, 50, …, 8000 of the
  10,000-iteration schedule, rescaled to ``n_queries`` when ``rescale_schedule``; AutoAttack's
  official preset does not rescale), side h = max(round(√(p·n_features/c)), 1) (odd and ≥ 3 for L2/L1);
* L → untargeted margin z_y − max_{i≠y} z_i; targeted: cross-entropy of the target, as in the paper;
  a sample stops once its margin reaches 0 (official: ``margin <= 0``);
* L∞ init: vertical stripes x ± ε (one random sign per column and channel); update: one h×h window
  for the batch set to x ± ε with one random sign per channel, as the official code (a proposal equal to
  the current point still costs its query);
* L2 init: a grid of "mountain" bumps η (Alg. 3), each transposed by a coin and with random signs,
  rescaled to ‖δ‖₂ = ε; update: window W₁ receives η (transposed by a coin) with random signs plus its
  old normalised content, rescaled to carry the mass of W₁ ∪ W₂ and the unused budget (ε² − ‖δ‖²)/c per
  channel, W₂ is zeroed, δ is rescaled to ε; W₁, W₂ and the coin are one per batch, the signs per sample.
* L1 (Croce & Hein 2021, "Mind the box: l1-APGD for sparse adversarial attacks on image
  classifiers", §5 and its appendix: the L1 adaptation of Square that completes l1-AutoAttack): as L2
  with L1 masses — the bumps are built from 1/(k+1)⁴ mountains and have unit L1 norm, W₁ receives η plus
  its old L1-normalised content, scaled per channel to c·((ε − ‖δ‖₁)₊/c + ‖δ_{W₁∪W₂}‖₁) as the official
  code does, W₂ is zeroed, and every point (the initial grid too, which is not rescaled first) is
  projected onto the L1 ball of radius ε(1 − 10⁻⁶) ∩ box (the exact projection of l1-APGD).

How the shared draws are made (with a ``torch.Generator`` exactly the official code's numbers; with
per-sample streams from a sequence that depends on the seed, stage, run and iteration, never on the
batch) is described in :mod:`.square_draws`.  ``per_sample_flip`` selects advkit's earlier variant
(stronger on 8×8 images, not on 28×28 MNIST), named ``square-per-sample-flip`` wherever it is used:
windows and signs drawn per sample, windows anywhere in the image, and an L∞ proposal that would not
change the point gets its signs flipped instead of spending a query on it (docs/protocols.md has the
measured difference).  A candidate replaces the current point when it lowers L (or is adversarial);
successful samples leave the working batch (at once on CPU; on accelerators, frozen, at the next
compaction point: :mod:`advkit.sync`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import geometry, losses, rng, sync
from ..errors import ConfigError
from .apgd import l1_correction
from .base import BudgetedAttack, require_int
from .schedules import square_p
from .square_draws import Shared, bump, index, mask, mountain, per_sample_corner, per_sample_oriented, signs

__all__ = ["Square", "bump", "mountain"]


@dataclass(frozen=True)
class Square(BudgetedAttack):
    uses_gradients = False
    n_queries: int = 5000
    p_init: float = 0.8
    rescale_schedule: bool = True
    per_sample_flip: bool = False

    def __post_init__(self):
        super().__post_init__()
        require_int(self, "n_queries")
        if not 0 < self.p_init <= 1:
            raise ConfigError(f"p_init must lie in (0, 1], got {self.p_init!r}")
        if self.norm not in ("linf", "l2", "l1"):
            raise ConfigError(f"square supports the linf, l2 and l1 threat models, got {self.norm!r}")
        if not isinstance(self.per_sample_flip, bool):
            raise ConfigError(f"per_sample_flip must be true or false, got {self.per_sample_flip!r}")

    @property
    def name(self) -> str:  # type: ignore[override]
        return "square-per-sample-flip" if self.per_sample_flip else "square"

    def _scores(self, oracle, x, y, t):
        """(margin: ≥ 0 ends the search, as the official ``margin <= 0``; loss to minimise).  A success
        that a faster copy's logits show is re-run on the module first (``z`` updated in place)."""
        z = oracle.logits(x)
        self._confirmed(z, losses.margin(z, y, t) >= 0, y, t)
        m = losses.margin(z, y, t)
        loss = -m if t is None else F.cross_entropy(z, t, reduction="none")
        return m, loss

    def _run(self, oracle, x, y, targets, generator):
        bounds = getattr(oracle.model, "bounds", (0.0, 1.0))
        shared = None if self.per_sample_flip else Shared(generator, x.device, x.dtype)
        init = {"linf": self._init_linf, "l2": self._init_l2, "l1": self._init_l1}[self.norm]
        x_best = init(x, generator, shared, bounds)
        m, l = self._scores(oracle, x_best, y, targets)
        active = (m < 0).nonzero().flatten()
        step = {"linf": self._step_linf, "l2": self._step_l2, "l1": self._step_l1}[self.norm]
        # working copies of the active rows (x, y, targets, best point, loss); they are compacted
        # only when a sample succeeds, and x_best is written back then and at the end
        xa, ya, xb, la = x[active], y[active], x_best[active], l[active]
        ta = None if targets is None else targets[active]
        ga = rng.take(generator, active)  # per-sample streams of the active rows
        # ``won``: working rows already successful; on accelerators they wait, frozen, for the next
        # compaction (advkit/sync.py)
        won = torch.zeros(len(active), dtype=torch.bool, device=x.device)
        words = self._words_per_step(x.shape[1])
        for i in range(self.n_queries):
            if not len(active):
                break
            if rng.is_stream(ga) and words:  # this step's per-sample draws in one go
                ga.prefetch(words)
            cand = step(xa, xb, self._side(i, x), ga, shared, bounds)
            m_new, l_new = self._scores(oracle, cand, ya, ta)
            take = ((l_new < la) | (m_new >= 0)) & ~won  # successes are always taken
            xb = geometry.where_rows(take, cand, xb)
            la = torch.where(take, l_new, la)
            won = won | (take & (m_new >= 0))
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
        """Random words per sample that one step draws from its own stream: the c signs of L2/L1 (the
        windows, the coin and the L∞ signs are shared); advkit's variant also draws its window corners
        (2 numbers; two windows for L2/L1) and the bump's coin per sample."""
        if not self.per_sample_flip:
            return 0 if self.norm == "linf" else c
        return 2 + c if self.norm == "linf" else 4 + 1 + c

    def _side(self, i: int, x) -> int:
        c, h, w = x.shape[1:]
        p = square_p(i, self.p_init, self.n_queries, self.rescale_schedule)
        s = max(int(round(math.sqrt(p * h * w))), 1)
        if self.norm in ("l2", "l1"):
            s = max(s, 3)
            s += 1 - s % 2
        return min(s, h, w)

    def _corner(self, n, s, h, w, gen, shared, device):
        return shared.corner(s, h, w) if shared is not None else per_sample_corner(n, s, h, w, gen, device)

    @staticmethod
    def _oriented(eta, gen, shared, device):
        return shared.oriented(eta) if shared is not None else per_sample_oriented(eta, gen, device)

    # ------------------------------------------------------------------ L∞
    def _init_linf(self, x, gen, shared, bounds):
        n, c, _, w = x.shape
        return (x + self.eps * signs(gen, (n, c, 1, w), x.device, x.dtype)).clamp(*bounds)

    def _step_linf(self, x, x_best, s, gen, shared, bounds):
        n, c, h, w = x.shape
        if shared is None:
            return self._step_linf_flip(x, x_best, s, gen, bounds)
        win = mask(shared.corner(s, h, w), s, h, w)
        delta = win * (2 * self.eps * shared.signs((c, 1, 1)))  # (1, c, h, w): the window, 0 elsewhere
        return torch.min(torch.max(x_best + delta, x - self.eps), x + self.eps).clamp(*bounds)

    def _step_linf_flip(self, x, x_best, s, gen, bounds):
        """advkit's variant: a window and signs per sample; a proposal equal to x_best has its signs flipped."""
        n, c, h, w = x.shape
        win = mask(per_sample_corner(n, s, h, w, gen, x.device), s, h, w)
        sign = signs(gen, (n, c, 1, 1), x.device, x.dtype)
        cand = torch.where(win, (x + self.eps * sign).clamp(*bounds), x_best)
        same = (cand == x_best).flatten(1).all(1).view(-1, 1, 1, 1)
        flipped = torch.where(win, (x - self.eps * sign).clamp(*bounds), x_best)
        return torch.where(same, flipped, cand)

    # ------------------------------------------------------------------ L2 and L1
    def _grid(self, x, gen, shared):
        """The initial δ of L2/L1 as the official code lays it out: ⌊h/s⌋ × ⌊w/s⌋ bumps of side s = ⌊h/5⌋
        from ((h − 5s)/2, (h − 5s)/2), each transposed by a coin, with a random sign per sample and channel
        (a bump that would cross the border is cut there)."""
        n, c, h, w = x.shape
        s = max(h // 5, 1)
        start = (h - s * 5) // 2 if h >= 5 else 0
        delta = torch.zeros_like(x)
        eta = bump(s, x.device, x.dtype, self.norm)
        for i in range(h // s):
            for j in range(w // s):
                r, q = start + i * s, start + j * s
                part = self._oriented(eta, gen, shared, x.device) * signs(gen, (n, c, 1, 1), x.device, x.dtype)
                win = delta[:, :, r:r + s, q:q + s]
                win += part[..., :win.shape[2], :win.shape[3]]
        return delta

    def _rescaled(self, x, delta, bounds):
        norm = delta.pow(2).flatten(1).sum(1).sqrt().view(-1, 1, 1, 1)
        return (x + delta / (norm + 1e-12) * self.eps).clamp(*bounds)

    def _init_l2(self, x, gen, shared, bounds):
        return self._rescaled(x, self._grid(x, gen, shared), bounds)

    def _windows(self, x, delta, s, gen, shared):
        """(W₁ ∪ W₂ mask, W₁ index, W₁ content) of one step."""
        n, c, h, w = x.shape
        c1 = self._corner(n, s, h, w, gen, shared, x.device)
        c2 = self._corner(n, s, h, w, gen, shared, x.device)
        at1, w2 = index(c1, n, c, s), mask(c2, s, h, w)
        return mask(c1, s, h, w) | w2, w2, at1, delta[at1]

    def _step_l2(self, x, x_best, s, gen, shared, bounds):
        n, c = x.shape[:2]
        delta = x_best - x
        union, w2, at1, win1 = self._windows(x, delta, s, gen, shared)
        norm_w1 = win1.pow(2).sum((-2, -1), keepdim=True).sqrt()
        norm_img = delta.pow(2).flatten(1).sum(1).sqrt().view(-1, 1, 1, 1)
        norm_union = (delta * union).pow(2).sum((-2, -1), keepdim=True).sqrt()
        eta = self._oriented(bump(s, x.device, x.dtype), gen, shared, x.device)
        new = eta * signs(gen, (n, c, 1, 1), x.device, x.dtype) + win1 / (1e-12 + norm_w1)
        unused = (torch.full_like(norm_img, self.eps) ** 2 - norm_img ** 2).clamp_min(0)
        new = new / (1e-12 + new.pow(2).sum((-2, -1), keepdim=True).sqrt()) * (unused / c + norm_union ** 2).sqrt()
        delta = delta.masked_fill(w2, 0.0).index_put(at1, new)
        return self._rescaled(x, delta, bounds)

    def _project_l1(self, x, delta, bounds):
        """x + δ moved onto the L1 ball of radius ε(1 − 10⁻⁶) ∩ box, as the official code forms it."""
        return x + delta + l1_correction(delta, x, self.eps * (1 - 1e-6), bounds)

    def _init_l1(self, x, gen, shared, bounds):
        return self._project_l1(x, self._grid(x, gen, shared), bounds)

    def _step_l1(self, x, x_best, s, gen, shared, bounds):
        n, c = x.shape[:2]
        delta = x_best - x
        union, w2, at1, win1 = self._windows(x, delta, s, gen, shared)
        mass_w1 = win1.abs().sum((-2, -1), keepdim=True)
        mass_img = delta.abs().flatten(1).sum(1).view(-1, 1, 1, 1)
        mass_union = (delta * union).abs().sum((-2, -1), keepdim=True)
        eta = self._oriented(bump(s, x.device, x.dtype, "l1"), gen, shared, x.device)
        new = eta * signs(gen, (n, c, 1, 1), x.device, x.dtype) + win1 / (1e-12 + mass_w1)
        unused = (torch.full_like(mass_img, self.eps) - mass_img).clamp_min(0)
        new = new / (1e-12 + new.abs().sum((-2, -1), keepdim=True)) * (unused / c + mass_union) * c
        delta = delta.masked_fill(w2, 0.0).index_put(at1, new)
        return self._project_l1(x, delta, bounds)
