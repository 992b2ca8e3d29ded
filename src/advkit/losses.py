"""Per-sample attack objectives on logits ``z`` (shape N×K).  Every function returns shape (N,),
larger = more adversarial for the attacker.

- ``ce``: cross-entropy of the true class (untargeted) or minus CE of the target (targeted).
- ``margin``: Carlini & Wagner (2017) f₆ objective, max_{i≠y} z_i − z_y (untargeted) or
  z_t − max_{i≠t} z_i (targeted), optionally clamped at the confidence κ.
- ``dlr``: Croce & Hein (2020), −(z_y − max_{i≠y} z_i)/(z_π1 − z_π3 + 1e-12), π sorts z descending.
- ``dlr_targeted``: −(z_y − z_t)/(z_π1 − ½(z_π3 + z_π4) + 1e-12).
- ``kl``: KL(p(x) ‖ p(x')) with p = softmax, as in TRADES (Zhang et al. 2019).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_EPS = 1e-12


def _other_max(z: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    """max_{i≠cls} z_i, excluding the class with −∞ (never by multiplying)."""
    masked = z.scatter(1, cls.view(-1, 1), float("-inf"))
    return masked.amax(1)


def ce(z: torch.Tensor, y: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
    if targets is None:
        return F.cross_entropy(z, y, reduction="none")
    return -F.cross_entropy(z, targets, reduction="none")


def margin(z: torch.Tensor, y: torch.Tensor, targets: torch.Tensor | None = None, kappa: float | None = None) -> torch.Tensor:
    if targets is None:
        m = _other_max(z, y) - z.gather(1, y.view(-1, 1)).squeeze(1)
    else:
        m = z.gather(1, targets.view(-1, 1)).squeeze(1) - _other_max(z, targets)
    return m if kappa is None else m.clamp(max=kappa)


def dlr(z: torch.Tensor, y: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
    if z.shape[1] < 3:
        raise ValueError("the DLR loss needs at least 3 classes")
    if targets is not None:
        return dlr_targeted(z, y, targets)
    zs = z.sort(1, descending=True).values
    zy = z.gather(1, y.view(-1, 1)).squeeze(1)
    return -(zy - _other_max(z, y)) / (zs[:, 0] - zs[:, 2] + _EPS)


def dlr_targeted(z: torch.Tensor, y: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if z.shape[1] < 4:
        raise ValueError("the targeted DLR loss needs at least 4 classes")
    zs = z.sort(1, descending=True).values
    zy = z.gather(1, y.view(-1, 1)).squeeze(1)
    zt = z.gather(1, targets.view(-1, 1)).squeeze(1)
    return -(zy - zt) / (zs[:, 0] - 0.5 * (zs[:, 2] + zs[:, 3]) + _EPS)


def kl(z_adv: torch.Tensor, z_clean: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(softmax(z_clean) ‖ softmax(z_adv))."""
    logp_adv = F.log_softmax(z_adv, 1)
    logp_clean = F.log_softmax(z_clean, 1)
    return (logp_clean.exp() * (logp_clean - logp_adv)).sum(1)


LOSSES = {"ce": ce, "margin": margin, "dlr": dlr, "dlr-targeted": dlr_targeted}


def get(name: str):
    try:
        return LOSSES[name]
    except KeyError:
        from .errors import ConfigError
        raise ConfigError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}") from None
