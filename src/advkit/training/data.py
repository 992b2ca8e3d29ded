"""Training data helpers: the held-out validation slice, training subsets, random-shift augmentation."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError


def split_train_val(x: torch.Tensor, y: torch.Tensor, *, val_size: int, subset: int = 0,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shuffle once with ``generator``; the last ``val_size`` images are validation, the rest training.

    With ``subset`` > 0 the training part keeps only its first ``subset`` images (a fixed random subset).
    """
    if val_size >= len(x):
        raise ConfigError(f"val_size must be smaller than the training split ({len(x)} images), got {val_size}")
    perm = torch.randperm(len(x), generator=generator)
    tr, va = perm[:len(x) - val_size], perm[len(x) - val_size:]
    if subset:
        tr = tr[:subset]
    return x[tr], y[tr], x[va], y[va]


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by (dy, dx) ∈ [−s, s]² pixels drawn from ``generator``, filling with zeros."""
    s = int(max_shift)
    if s <= 0 or len(x) == 0:
        return x
    n, c, h, w = x.shape
    shifts = torch.randint(0, 2 * s + 1, (n, 2), generator=generator).to(x.device)
    padded = F.pad(x, (s, s, s, s))
    rows = (torch.arange(h, device=x.device).view(1, h) + shifts[:, :1]).view(n, 1, h, 1).expand(n, c, h, w + 2 * s)
    out = padded.gather(2, rows)
    cols = (torch.arange(w, device=x.device).view(1, w) + shifts[:, 1:]).view(n, 1, 1, w).expand(n, c, h, w)
    return out.gather(3, cols)
