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
        out = torch.zeros_like(x)
        for s in torch.unique(sizes).tolist():
            idx = torch.nonzero(sizes == s).flatten()
            sw = max(1, min(w, round(s * w / h)))
            small = F.interpolate(x[idx], size=(s, sw), mode="nearest")
            top = (u[idx, 0] * (h - s + 1)).long().clamp(max=h - s)
            left = (u[idx, 1] * (w - sw + 1)).long().clamp(max=w - sw)
            out[idx] = _place(small, top, left, h, w)
        return out


def _place(small: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Zero canvas of size h×w with each image of ``small`` pasted at its own (top, left) offset."""
    n, c, s, sw = small.shape
    rows = torch.arange(h, device=small.device)[None, :] - top[:, None]  # (n, h): source row or out of range
    cols = torch.arange(w, device=small.device)[None, :] - left[:, None]
    rvalid = (rows >= 0) & (rows < s)
    cvalid = (cols >= 0) & (cols < sw)
    r_idx = rows.clamp(0, s - 1)[:, None, :, None].expand(n, c, h, sw)
    tall = small.gather(2, r_idx)  # (n, c, h, sw)
    c_idx = cols.clamp(0, sw - 1)[:, None, None, :].expand(n, c, h, w)
    wide = tall.gather(3, c_idx)  # (n, c, h, w)
    mask = (rvalid[:, None, :, None] & cvalid[:, None, None, :]).to(small.dtype)
    return wide * mask
