"""Adaptive attacks against obfuscated gradients: BPDA and EOT.

Athalye, Carlini & Wagner (2018), "Obfuscated gradients give a false sense of security":

* **BPDA** (Backward Pass Differentiable Approximation, §4.1): a defense f(g(x)) whose
  preprocessing g is not differentiable (JPEG, bit-depth reduction, median filter, ...) is attacked
  by computing the forward pass with g but the backward pass with a differentiable surrogate s ≈ g
  (s(x) = x, "straight-through", when g(x) ≈ x).  :class:`BPDA` implements
  ``s(x) + (g(x) − s(x)).detach()``: its value is exactly g(x), its gradient is ∂s/∂x.
  Symbols: g → ``transform``, s → ``surrogate``.
* **EOT** (Expectation over Transformation, §4.2): against a randomized model f(t(x)), t ~ T,
  follow ∇ₓ E_t[L(f(t(x)))] = E_t[∇ₓ L(f(t(x)))], estimated by averaging the gradient over k
  forward/backward passes.  Every gradient attack in advkit has an ``eot: int = 1`` field that the
  :class:`~advkit.attacks.oracle.Oracle` applies (it also averages the logits used to pick the best
  iterate); :func:`with_eot` sets it on an attack, a :class:`BestOf` or an ensemble, recursively.
  :class:`Expectation` instead wraps a randomized model into one whose logits are the mean of k draws,
  for tools outside advkit.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError
from .base import Attack

Transform = Callable[[torch.Tensor], torch.Tensor]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


class BPDA(nn.Module):
    """Forward through ``transform`` (g), backward through ``surrogate`` (s, identity by default)."""

    def __init__(self, transform: Transform, surrogate: Transform | None = None):
        super().__init__()
        if not callable(transform):
            raise ConfigError(f"BPDA needs a callable transform, got {transform!r}")
        if surrogate is not None and not callable(surrogate):
            raise ConfigError(f"BPDA surrogate must be callable or None (identity), got {surrogate!r}")
        self.transform = transform
        self.surrogate = surrogate or _identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.surrogate(x)
        with torch.no_grad():
            gx = self.transform(x)
        if gx.shape != s.shape:
            raise ConfigError(f"BPDA: transform and surrogate must return the same shape, got "
                              f"{tuple(gx.shape)} and {tuple(s.shape)}")
        return s + (gx - s).detach()


class Expectation(nn.Module):
    """A randomized ``model`` made (nearly) deterministic: the mean logits of ``samples`` draws (EOT)."""

    def __init__(self, model: nn.Module, samples: int):
        super().__init__()
        if not isinstance(samples, int) or samples < 1:
            raise ConfigError(f"samples must be an integer >= 1, got {samples!r}")
        self.model = model
        self.samples = samples

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.model(x) for _ in range(self.samples)]).mean(0)


def supports_eot(attack: Attack) -> bool:
    """True when ``attack`` (or every gradient attack inside it) has an ``eot`` field."""
    names = {f.name for f in dataclasses.fields(attack)}
    if "eot" in names:
        return True
    inner = _inner_attacks(attack)
    return bool(inner) and any(supports_eot(a) for a in inner)


def with_eot(attack: Attack, samples: int) -> Attack:
    """A copy of ``attack`` with ``eot=samples`` on it and on every gradient attack it contains.

    Attacks without an ``eot`` field (black-box attacks inside an ensemble) are kept as they are;
    an attack that neither has the field nor contains one raises :class:`ConfigError`.
    """
    if not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"EOT samples must be an integer >= 1, got {samples!r}")
    if not supports_eot(attack):
        raise ConfigError(f"{type(attack).__name__} has no eot field (it is not a gradient attack)")
    return _replace_eot(attack, samples)


def _replace_eot(attack: Attack, samples: int) -> Attack:
    changes = {}
    for f in dataclasses.fields(attack):
        value = getattr(attack, f.name)
        if f.name == "eot":
            changes["eot"] = samples
        elif isinstance(value, Attack) and supports_eot(value):
            changes[f.name] = _replace_eot(value, samples)
        elif isinstance(value, (list, tuple)) and any(isinstance(a, Attack) for a in value):
            changes[f.name] = type(value)(_replace_eot(a, samples) if isinstance(a, Attack) and supports_eot(a)
                                          else a for a in value)
    return dataclasses.replace(attack, **changes)


def _inner_attacks(attack: Attack) -> list[Attack]:
    out = []
    for f in dataclasses.fields(attack):
        value = getattr(attack, f.name)
        if isinstance(value, Attack):
            out.append(value)
        elif isinstance(value, (list, tuple)):
            out.extend(a for a in value if isinstance(a, Attack))
    return out
