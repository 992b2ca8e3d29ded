"""Random resizing and padding: Xie, Wang, Zhang, Ren & Yuille (2018), "Mitigating adversarial effects
through randomization" (ICLR 2018).

The paper resizes a W×W input to a random rnd×rnd (rnd uniform in [W, W′)) with nearest-neighbour
interpolation, then pads it with zeros, at a random offset, to W′×W′ before the classifier.  advkit's
classifiers take a fixed input size, so :class:`RandomResizePad` keeps the output at the input's size
H×W: it shrinks to a random s_h×s_w (s_h uniform over the integers in [⌈ratio·H⌉, H], s_w = round(s_h·W/H))
and zero-pads back to H×W at a random offset (top uniform in [0, H − s_h], left in [0, W − s_w]),
per image.  Symbols: W → H (the input size), rnd → ``s_h``, W′ → H, the resize lower bound W/W′ → ``ratio``.

Nearest-neighbour resizing and padding are differentiable (a gather), so an adaptive attacker needs no
BPDA here, only EOT over the randomness (Athalye, Carlini & Wagner 2018, §5.3, which broke this defense).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .preprocessing import Preprocessing, SeededRandom


class RandomResizePad(SeededRandom, Preprocessing):
    """Shrink to a random size in [⌈ratio·H⌉, H] (nearest neighbour), zero-pad back at a random offset.

    ``seed`` seeds a private generator per device (fresh entropy when None); the global RNG is never used.
    """

    name = "resize-pad"
    randomized = True
    differentiable = True

    def __init__(self, ratio: float = 0.9, seed: int | None = None):
        super().__init__()
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
            raise ConfigError(f"resize-pad ratio must be a number in (0, 1], got {ratio!r}")
        self.ratio, self.seed = float(ratio), seed
        self._generators: dict[str, torch.Generator] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = self._generator(x.device)
        lo = min(h, max(1, math.ceil(self.ratio * h - 1e-9)))
        sizes = torch.randint(lo, h + 1, (n,), generator=g, device=x.device)
        u = torch.rand(n, 2, generator=g, device=x.device)
        widths = (sizes.double() * w / h).round().long().clamp(1, w)  # round(s·W/H), as Python's round: ties to even
        top = (u[:, 0] * (h - sizes + 1)).long().clamp(max=h - sizes)
        left = (u[:, 1] * (w - widths + 1)).long().clamp(max=w - widths)
        return _resize_place(x, sizes, widths, top, left)


def _source_index(dst: torch.Tensor, in_size: int, out_size: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour source index of output position ``dst`` (n, k) when ``in_size`` pixels shrink to
    ``out_size`` (n,): min(⌊dst·(in/out)⌋, in − 1) with the scale in float32, as ``F.interpolate(mode="nearest")``."""
    scale = torch.full_like(out_size, in_size, dtype=torch.float32) / out_size.float()
    return (dst.float() * scale[:, None]).floor().long().clamp(max=in_size - 1)


def _resize_place(x: torch.Tensor, sizes: torch.Tensor, widths: torch.Tensor, top: torch.Tensor,
                  left: torch.Tensor) -> torch.Tensor:
    """Each image of ``x`` shrunk (nearest neighbour) to sizes[i]×widths[i] and pasted on a zero canvas of
    x's size at (top[i], left[i]): one gather per axis for the whole batch, with per-image index maps, so
    no host synchronisation (no grouping by size) and a gradient that is the gather's."""
    n, c, h, w = x.shape
    rows = torch.arange(h, device=x.device)[None, :] - top[:, None]  # (n, h): row in the shrunk image
    cols = torch.arange(w, device=x.device)[None, :] - left[:, None]
    rvalid = (rows >= 0) & (rows < sizes[:, None])
    cvalid = (cols >= 0) & (cols < widths[:, None])
    src_r = _source_index(rows.clamp(min=0), h, sizes)
    src_c = _source_index(cols.clamp(min=0), w, widths)
    tall = x.gather(2, src_r[:, None, :, None].expand(n, c, h, w))  # rows picked per image
    wide = tall.gather(3, src_c[:, None, None, :].expand(n, c, h, w))
    mask = (rvalid[:, None, :, None] & cvalid[:, None, None, :]).to(x.dtype)
    return wide * mask
