"""Training objectives: standard cross-entropy, Gaussian noise augmentation, and the registry.

- :class:`Standard` — empirical risk minimisation, min_θ E[CE(f_θ(x), y)].
- :class:`GaussianNoise` — Cohen, Rosenfeld & Kolter (2019), "Certified adversarial robustness via
  randomized smoothing": train the *base classifier* f on x + δ, δ ~ N(0, σ²I), so that the
  smoothed classifier g(x) = argmax_c P(f(x+δ) = c) is accurate.  σ → ``sigma`` in pixel units of the
  model's input bounds; the noisy input is **not** clipped to the box (the smoothing certificate
  assumes the same unclipped noise at test time).

The adversarial objectives live one per file: :mod:`.pgd_at` (Madry et al. 2018), :mod:`.trades`
(Zhang et al. 2019), :mod:`.fast_at` (Wong et al. 2020), :mod:`.mart` (Wang et al. 2020).
:func:`build` makes any of them from a method name and keyword arguments.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import Objective, StepOutput
from .fast_at import FastAT
from .mart import MART
from .pgd_at import PGDAT
from .trades import TRADES


@dataclass(frozen=True)
class Standard(Objective):
    """min_θ CE(f_θ(x), y) on clean inputs."""

    name: ClassVar[str] = "standard"
    clean_in_loss: ClassVar[bool] = True

    def loss(self, model, x, y, x_pert):
        z = model(x)
        return StepOutput(F.cross_entropy(z, y), clean_logits=z.detach())


@dataclass(frozen=True)
class GaussianNoise(Objective):
    """min_θ CE(f_θ(x + δ), y), δ ~ N(0, σ²I) drawn from ``generator``; no clipping."""

    name: ClassVar[str] = "gaussian"
    sigma: float = 0.25

    def __post_init__(self):
        super().__post_init__()
        if not self.sigma > 0:
            raise ConfigError(f"sigma must be > 0 for Gaussian noise training, got {self.sigma}")

    def perturb(self, model, x, y, *, generator, eps_scale):
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + self.sigma * noise

    def loss(self, model, x, y, x_pert):
        z = model(x_pert)
        return StepOutput(F.cross_entropy(z, y), perturbed_logits=z.detach())


OBJECTIVES: dict[str, type[Objective]] = {
    "standard": Standard, "pgd-at": PGDAT, "trades": TRADES, "fast-at": FastAT, "mart": MART,
    "gaussian": GaussianNoise,
}


def build(method: str, **kwargs) -> Objective:
    """The objective called ``method`` with the fields in ``kwargs`` that it has (others are ignored)."""
    try:
        cls = OBJECTIVES[method]
    except KeyError:
        raise ConfigError(f"unknown training method {method!r}; choose one of {', '.join(OBJECTIVES)}") from None
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in kwargs.items() if k in names and v is not None})
