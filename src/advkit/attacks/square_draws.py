"""Square Attack's patterns and random draws (Andriushchenko, Croce, Flammarion & Hein 2020, "Square
Attack: a query-efficient black-box adversarial attack via random search", Alg. 3 for the bumps).

Two ways to draw an iteration's window(s) and signs:

* **shared** (the default, as the official AutoAttack code): one window position (and for L∞ one sign
  per channel, for L2/L1 the bump's transposition coin) for the whole batch per iteration.  With a
  ``torch.Generator`` the numbers come in the official code's order and arithmetic (a corner is
  ⌊u·(h − s)⌋, so a window never touches the last row or column unless it spans the image; a sign is
  sign(2u − 1)): the same seed gives the official draws.  With per-sample streams they come from the
  stream family's shared sequence (:func:`advkit.rng.shared_uniform`, keyed per run by
  :meth:`advkit.rng.SampleStreams.shared_key`, position = the count of shared numbers drawn in the run),
  so they depend on the seed, the evaluation stage, the run and the iteration, never on the batch.
* **per sample** (advkit's earlier variant, ``Square(per_sample_flip=True)``): a window anywhere in the image
  and signs for each sample from its own stream.
"""
from __future__ import annotations

import torch

from .. import rng


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


def mask(corner, s: int, h: int, w: int) -> torch.Tensor:
    """(n,1,h,w) boolean masks of the s×s windows at ``corner`` (rows, columns; each (n,1,1,1))."""
    vh, vw = corner
    rows = torch.arange(h, device=vh.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=vh.device).view(1, 1, 1, w)
    return (rows >= vh) & (rows < vh + s) & (cols >= vw) & (cols < vw + s)


def index(corner, n: int, c: int, s: int) -> tuple:
    """Index tensors that address the (n, c, s, s) contents of the windows at ``corner`` (one corner per
    sample, or one (1,1,1,1) corner for all; gather and scatter by index: no host sync)."""
    vh, vw = (t.expand(n, 1, 1, 1) for t in corner)
    ar = torch.arange(s, device=vh.device)
    return (torch.arange(n, device=vh.device).view(n, 1, 1, 1), torch.arange(c, device=vh.device).view(1, c, 1, 1),
            vh + ar.view(1, 1, s, 1), vw + ar.view(1, 1, 1, s))


def signs(gen, shape, device, dtype) -> torch.Tensor:
    """±1 per entry of ``shape`` (first dimension the samples) as the official code draws them: sign(2u − 1)."""
    return torch.sign(2 * rng.rand(gen, shape, device=device, dtype=dtype) - 1)


class Shared:
    """The draws one Square run shares across its batch (module docstring)."""

    def __init__(self, gen, device, dtype):
        self.gen, self.device, self.dtype = gen, device, dtype
        self.key = gen.shared_key("square") if rng.is_stream(gen) else None
        self.used = 0

    def uniform(self, shape) -> torch.Tensor:
        if self.key is None:
            return torch.rand(shape, generator=self.gen, device=self.device, dtype=self.dtype)
        out = rng.shared_uniform(self.key, self.used, shape, device=self.device, dtype=self.dtype)
        self.used += out.numel()
        return out

    def corner(self, s: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One window's top-left corner for the batch, each (1,1,1,1): ⌊u·(h − s)⌋, ⌊u·(w − s)⌋."""
        vh = (self.uniform((1,)) * (h - s)).long().view(1, 1, 1, 1)
        vw = (self.uniform((1,)) * (w - s)).long().view(1, 1, 1, 1)
        return vh, vw

    def signs(self, shape) -> torch.Tensor:
        return torch.sign(2 * self.uniform(shape) - 1)

    def oriented(self, eta: torch.Tensor) -> torch.Tensor:
        """η or its transpose by one coin for the batch (u > 0.5 transposes, as the official code)."""
        return torch.where(self.uniform((1,)) > 0.5, eta.T, eta)


def per_sample_corner(n: int, s: int, h: int, w: int, gen, device) -> tuple[torch.Tensor, torch.Tensor]:
    """advkit's variant: one corner per sample, anywhere in the image (each (n,1,1,1))."""
    vh = rng.randint(gen, 0, h - s + 1, (n, 1, 1, 1), device=device)
    vw = rng.randint(gen, 0, w - s + 1, (n, 1, 1, 1), device=device)
    return vh, vw


def per_sample_oriented(eta: torch.Tensor, gen, device) -> torch.Tensor:
    """advkit's variant: η or its transpose by a coin per sample with per-sample streams ((n,1,s,s)), one
    coin for the batch with a ``torch.Generator``."""
    if rng.is_stream(gen):
        return torch.where(gen.coin().to(device).view(-1, 1, 1, 1), eta.T, eta)
    return torch.where(torch.rand(1, generator=gen, device=device) > 0.5, eta.T, eta)  # no host sync
