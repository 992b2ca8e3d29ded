"""Threat models: an Lp norm and a budget ε, in pixel units of the model's input bounds."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

import torch

from .errors import ConfigError
from . import geometry

NORMS = ("linf", "l2", "l1")
_ALIASES = {"inf": "linf", "linf": "linf", "l_inf": "linf", "li": "linf", "l2": "l2", "2": "l2", "l1": "l1", "1": "l1"}
_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?:/\s*([0-9]*\.?[0-9]+))?\s*$")


def _format_eps(eps: float) -> str:
    """Shortest text that parses back to exactly ``eps``; k/255 when that is what it is."""
    if eps > 0:
        k = round(eps * 255)
        if k % 255 and k / 255 == eps:
            return f"{k}/255"
    return repr(float(eps))


def parse_eps(text: str) -> float:
    """Parse ``"0.3"``, ``"8/255"`` or ``"1e-2"`` into a float."""
    m = _NUMBER.match(str(text))
    if not m:
        raise ConfigError(f"expected a budget like 0.3 or 8/255, got {text!r}")
    num = float(m.group(1))
    if m.group(2) is not None:
        den = float(m.group(2))
        if den == 0:
            raise ConfigError(f"budget {text!r} divides by zero")
        return num / den
    return num


@dataclass(frozen=True)
class ThreatModel:
    """An Lp ball of radius ``eps`` around each input, intersected with the input box.

    ``norm`` is one of ``"linf"``, ``"l2"``, ``"l1"``; ``eps`` ≥ 0 is in pixel units.
    """

    norm: str
    eps: float

    def __post_init__(self):
        norm = _ALIASES.get(str(self.norm).lower())
        if norm is None:
            raise ConfigError(f"norm must be one of {', '.join(NORMS)}; got {self.norm!r}")
        object.__setattr__(self, "norm", norm)
        try:
            eps = float(self.eps)
        except (TypeError, ValueError):
            raise ConfigError(f"eps must be a number, got {self.eps!r}") from None
        if not math.isfinite(eps) or eps < 0:
            raise ConfigError(f"eps must be a finite number >= 0, got {self.eps!r}")
        object.__setattr__(self, "eps", eps)

    @classmethod
    def parse(cls, text: "str | ThreatModel") -> "ThreatModel":
        """``"linf:8/255"``, ``"l2:0.5"``, ``"l1:10"`` → ThreatModel."""
        if isinstance(text, ThreatModel):
            return text
        if not isinstance(text, str) or ":" not in text:
            raise ConfigError(f"expected a threat model like 'linf:8/255' or 'l2:0.5', got {text!r}")
        norm, _, eps = text.partition(":")
        return cls(norm.strip(), parse_eps(eps))

    def __str__(self) -> str:
        return f"{self.norm}:{_format_eps(self.eps)}"

    @property
    def p(self) -> float:
        return {"linf": math.inf, "l2": 2.0, "l1": 1.0}[self.norm]

    def with_eps(self, eps: float) -> "ThreatModel":
        return ThreatModel(self.norm, eps)

    def distance(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-sample Lp distance."""
        return geometry.norm(x_adv - x, self.norm)

    def project(self, x_adv: torch.Tensor, x: torch.Tensor, bounds=(0.0, 1.0)) -> torch.Tensor:
        """Project ``x_adv`` onto the ε-ball around ``x`` intersected with the box ``bounds``."""
        delta = geometry.project(x_adv - x, self.norm, self.eps)
        return (x + delta).clamp(*bounds)

    def contains(self, x_adv: torch.Tensor, x: torch.Tensor, bounds=(0.0, 1.0), tol: float = 1e-6) -> torch.Tensor:
        """Per-sample bool: inside the ball (up to ``tol``) and inside the box."""
        in_ball = self.distance(x_adv, x) <= self.eps * (1 + tol) + tol
        flat = x_adv.flatten(1)
        in_box = (flat >= bounds[0] - tol).all(1) & (flat <= bounds[1] + tol).all(1)
        return in_ball & in_box

    def sample(self, x: torch.Tensor, generator=None, bounds=(0.0, 1.0)) -> torch.Tensor:
        """A point drawn uniformly from the ε-ball around ``x``, clipped to the box (``generator``: a
        ``torch.Generator`` or per-sample streams, :mod:`advkit.rng`)."""
        delta = geometry.sample_ball(x.shape, self.norm, self.eps, generator=generator, device=x.device, dtype=x.dtype)
        return (x + delta).clamp(*bounds)


def eps_fraction(eps: float) -> Fraction:
    return Fraction(eps).limit_denominator(10_000)


def check_budget(threat: ThreatModel, bounds=(0.0, 1.0), *, force: bool = False) -> None:
    """Refuse an L∞ budget that covers the whole input range (ε ≥ hi − lo): every input can then be
    turned into any image, so the evaluation means nothing; it is nearly always ``8`` typed for ``8/255``.
    ``force=True`` (the CLI's ``--force-eps``) accepts it."""
    lo, hi = float(bounds[0]), float(bounds[1])
    if force or threat.norm != "linf" or threat.eps < hi - lo:
        return
    hint = ""
    if float(threat.eps).is_integer() and hi - lo == 1.0 and threat.eps < 255:
        hint = f"; did you mean linf:{int(threat.eps)}/255?"
    raise ConfigError(f"{threat}: an L∞ budget must be smaller than the input range [{lo:g}, {hi:g}] "
                      f"(ε ≥ {hi - lo:g} lets an attack replace the whole image), got ε = {threat.eps:g}{hint} "
                      "(pass --force-eps to run it anyway)")
