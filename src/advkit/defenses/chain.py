"""Defense chains from text (``--defense jpeg:75``, ``bits:3,median:3``) and their adaptive counterparts.

A chain is a comma-separated list of ``NAME[:PARAM]`` steps, applied left to right in front of the
classifier:

=============  ==========================  =====================================================
name           parameter (default)         defense
=============  ==========================  =====================================================
``jpeg``       quality, integer 1–100 (75)  :class:`~advkit.defenses.preprocessing.JPEG`
``bits``       bits, integer 1–8 (4)        :class:`~advkit.defenses.preprocessing.BitDepth`
``median``     odd window size ≥ 3 (3)      :class:`~advkit.defenses.preprocessing.MedianFilter`
``noise``      σ in (0, 1] (0.1)            :class:`~advkit.defenses.preprocessing.GaussianNoise` (random)
``resize-pad`` ratio in (0, 1) (0.9)        :class:`~advkit.defenses.randomization.RandomResizePad` (random)
=============  ==========================  =====================================================

:func:`adaptive` builds what an adaptive attacker (Athalye, Carlini & Wagner 2018) attacks: the same
forward pass, with every non-differentiable step's backward pass replaced by its BPDA surrogate;
randomized steps stay as they are and are attacked with EOT (the evaluation sets ``eot``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..attacks.adaptive import BPDA
from ..errors import ConfigError, ModelError
from ..model import Classifier
from .preprocessing import JPEG, BitDepth, Defended, GaussianNoise, MedianFilter, Preprocessing, bpda, defend
from .randomization import RandomResizePad


@dataclass(frozen=True)
class _Kind:
    build: Callable
    parse: Callable[[str], object]
    valid: Callable[[object], bool]
    expected: str
    default: object


def _int(text: str):
    return int(text) if re.fullmatch(r"[+-]?\d+", text.strip()) else None


def _float(text: str):
    try:
        v = float(text)
    except ValueError:
        return None
    return v if v == v and abs(v) != float("inf") else None


KINDS: dict[str, _Kind] = {
    "jpeg": _Kind(JPEG, _int, lambda q: 1 <= q <= 100, "a JPEG quality, an integer in [1, 100]", 75),
    "bits": _Kind(BitDepth, _int, lambda b: 1 <= b <= 8, "a bit depth, an integer in [1, 8]", 4),
    "median": _Kind(MedianFilter, _int, lambda k: k >= 3 and k % 2 == 1, "a window size, an odd integer >= 3", 3),
    "noise": _Kind(GaussianNoise, _float, lambda s: 0 < s <= 1, "a noise sigma, a number in (0, 1]", 0.1),
    "resize-pad": _Kind(RandomResizePad, _float, lambda r: 0 < r < 1, "a resize ratio, a number in (0, 1)", 0.9),
}
ALIASES = {"bit-depth": "bits", "jpg": "jpeg", "gaussian": "noise", "resize": "resize-pad"}
SYNTAX = "jpeg:QUALITY, bits:BITS, median:SIZE, noise:SIGMA, resize-pad:RATIO (comma-separated, e.g. 'bits:3,median:3')"


@dataclass(frozen=True)
class DefenseSpec:
    """A validated chain: ``steps`` = ((name, parameter), ...) in the order they are applied."""

    steps: tuple[tuple[str, object], ...]

    @property
    def text(self) -> str:
        return ",".join(f"{n}:{p:g}" if isinstance(p, float) else f"{n}:{p}" for n, p in self.steps)

    @property
    def randomized(self) -> bool:
        return any(getattr(KINDS[n].build, "randomized", False) for n, _ in self.steps)

    @property
    def differentiable(self) -> bool:
        return all(getattr(KINDS[n].build, "differentiable", False) for n, _ in self.steps)

    def __str__(self) -> str:
        return self.text


def parse_defense(text) -> DefenseSpec:
    """``"jpeg:75"``, ``"bits:3,median:3"`` or a list of such strings → :class:`DefenseSpec`."""
    if isinstance(text, DefenseSpec):
        return text
    items = text if isinstance(text, (list, tuple)) else [text]
    if not all(isinstance(i, str) for i in items):
        raise ConfigError(f"expected a defense chain as text ({SYNTAX}), got {text!r}")
    parts = [p.strip() for item in items for p in item.split(",")]
    if not parts or any(not p for p in parts):
        raise ConfigError(f"expected a defense chain ({SYNTAX}), got {', '.join(items)!r} (an empty step)")
    return DefenseSpec(tuple(_step(p) for p in parts))


def _step(item: str) -> tuple[str, object]:
    name, sep, raw = item.partition(":")
    name = ALIASES.get(name.strip().lower(), name.strip().lower())
    kind = KINDS.get(name)
    if kind is None:
        raise ConfigError(f"defense {item!r}: unknown defense {name!r} (expected one of {SYNTAX})")
    if not sep:
        return name, kind.default
    value = kind.parse(raw)
    if value is None or not kind.valid(value):
        raise ConfigError(f"defense {item!r}: {name} expects {kind.expected}, got {raw.strip()!r}")
    return name, value


class Chain(Preprocessing):
    """The steps of a :class:`DefenseSpec`, applied in order (an ``nn.Module`` on pixels in [0, 1])."""

    def __init__(self, steps: list[Preprocessing], text: str):
        super().__init__()
        if not steps:
            raise ConfigError("a defense chain needs at least one step")
        self.steps = nn.ModuleList(steps)
        self.name = text
        self.randomized = any(s.randomized for s in steps)
        self.differentiable = all(s.differentiable for s in steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            x = step(x)
        return x

    def adaptive(self) -> nn.Module:
        """Same forward values; non-differentiable steps backpropagate through their surrogates (BPDA)."""
        return nn.Sequential(*[s if s.differentiable else BPDA(s, s.surrogate()) for s in self.steps])

    def describe_adaptive(self, eot: int) -> str:
        bpda_steps = [s.name for s in self.steps if not s.differentiable]
        random_steps = [s.name for s in self.steps if s.randomized]
        parts = [f"BPDA (identity surrogate) through {', '.join(bpda_steps)}"] if bpda_steps else []
        parts += [f"EOT over {eot} draws through {', '.join(random_steps)}"] if random_steps else []
        return "; ".join(parts) or "autograd (every step is differentiable)"


def build_chain(spec, seed: int | None = None) -> Chain:
    """The modules of ``spec`` (text or :class:`DefenseSpec`); randomized steps get seeds derived from ``seed``."""
    spec = parse_defense(spec)
    steps = []
    for i, (name, param) in enumerate(spec.steps):
        kind = KINDS[name]
        if kind.build.randomized:
            steps.append(kind.build(param, seed=None if seed is None else (seed * 1_000_003 + i) % 2 ** 63))
        else:
            steps.append(kind.build(param))
    return Chain(steps, spec.text)


def defended_models(classifier: Classifier, spec, seed: int | None = None) -> tuple[Classifier, Classifier, Chain]:
    """(naive, adaptive, chain): ``classifier`` behind the chain, attacked by autograd / through BPDA."""
    chain = build_chain(spec, seed)
    naive = defend(classifier, chain)
    return naive, adaptive(naive), chain


def adaptive(defended: Classifier) -> Classifier:
    """The adaptive attacker's view of a model built by :func:`defend` (BPDA only where needed)."""
    net = getattr(defended, "net", None)
    if not isinstance(net, Defended):
        raise ModelError("adaptive needs a model built by advkit.defenses.defend(classifier, defense)")
    if not isinstance(net.defense, Chain):
        return bpda(defended)
    return Classifier(Defended(net.defense.adaptive(), net.classifier), bounds=defended.bounds,
                      num_classes=defended.num_classes, input_shape=defended.input_shape,
                      name=f"{defended.name} (adaptive)")
