"""The attack registry: names → attack classes or preset factories, with their default settings.

Entries are lazy import strings (``"advkit.attacks.apgd:APGD"``), so listing names never imports
an attack module.  ``build(name, threat, **overrides)`` passes the threat as ``threat=`` to budgeted
attacks and as ``norm=``/``max_eps=`` to min-norm attacks; preset factories are called as
``factory(threat, num_classes, **overrides)`` when their signature takes ``num_classes``.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..threat import ThreatModel


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "module:attribute"
    description: str
    defaults: dict = field(default_factory=dict)

    def resolve(self):
        module, _, attr = self.target.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"attack {self.name!r} is not available ({self.target}: {e})") from e


_ENTRIES = [
    Entry("fgsm", "advkit.attacks.fgsm:FGSM", "FGSM/FGM, one steepest-ascent step (Goodfellow et al. 2015)"),
    Entry("pgd", "advkit.attacks.pgd:PGD", "PGD, 40 steps, random start, CE (Madry et al. 2018)"),
    Entry("cw-l2", "advkit.attacks.cw:CarliniWagnerL2", "Carlini-Wagner L2, min-norm, 9x1000 Adam steps"),
    Entry("square", "advkit.attacks.square:Square", "Square Attack, score-based black box (Andriushchenko et al. 2020)"),
    Entry("apgd-ce", "advkit.attacks.apgd:APGD", "APGD with cross-entropy (Croce & Hein 2020)", {"loss": "ce"}),
    Entry("apgd-dlr", "advkit.attacks.apgd:APGD", "APGD with the DLR loss (Croce & Hein 2020)", {"loss": "dlr"}),
    Entry("apgd-t", "advkit.attacks.apgd:APGD", "targeted APGD-DLR over the top 9 classes",
          {"loss": "dlr", "n_targets": 9}),
    Entry("fmn", "advkit.attacks.fmn:FMN",
          "FMN, fast minimum-norm with an adaptive norm constraint, 100 steps (Pintor et al. 2021)"),
    Entry("fab", "advkit.attacks.fab:FAB", "FAB, fast adaptive boundary (Croce & Hein 2020)"),
    Entry("fab-t", "advkit.attacks.fab:FAB", "targeted FAB over the top 9 classes", {"n_targets": 9}),
    Entry("autoattack", "advkit.attacks.presets:autoattack_standard",
          "AutoAttack standard: APGD-CE, APGD-T, FAB-T, Square"),
    Entry("autoattack-rand", "advkit.attacks.presets:autoattack_rand",
          "AutoAttack for randomized models: APGD-CE and APGD-DLR with EOT 20"),
    Entry("apgd-t-malt", "advkit.attacks.malt:MaltAPGD",
          "targeted APGD-DLR over the 5 classes ranked by MALT (Melamed et al. 2024)"),
    Entry("screening", "advkit.attacks.presets:screening_malt",
          "screening protocol, not AutoAttack: APGD-CE, then APGD-T on 5 MALT-ranked targets"),
]
REGISTRY: dict[str, Entry] = {e.name: e for e in _ENTRIES}


def list_attacks() -> list[tuple[str, str]]:
    """(name, description) of every registered attack, in registry order."""
    return [(e.name, e.description) for e in _ENTRIES]


def get(name: str) -> Entry:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown attack {name!r}; choose one of {', '.join(REGISTRY)}") from None


def build(name: str, threat: "ThreatModel | str", *, num_classes: int | None = None, **overrides):
    """Instantiate the attack ``name`` for ``threat`` with the registry defaults and ``overrides``."""
    entry = get(name)
    threat = ThreatModel.parse(threat)
    target = entry.resolve()
    if inspect.isclass(target) and dataclasses.is_dataclass(target):
        return _build_class(entry, target, threat, num_classes, overrides)
    return _build_factory(entry, target, threat, num_classes, {**entry.defaults, **overrides})


def _build_class(entry: Entry, cls, threat: ThreatModel, num_classes, overrides: dict):
    kwargs = {**entry.defaults, **overrides}
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    if "threat" in names:
        kwargs.setdefault("threat", threat)
    elif "max_eps" in names:
        kwargs.setdefault("norm", threat.norm)
        kwargs.setdefault("max_eps", threat.eps)
    if "num_classes" in names and num_classes is not None:
        kwargs.setdefault("num_classes", num_classes)
    if "n_targets" in names and num_classes is not None and "n_targets" not in overrides:
        # AutoAttack: with fewer than 10 classes, the targets are the classes - 1 others
        kwargs["n_targets"] = min(kwargs.get("n_targets", 0), num_classes - 1)
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ConfigError(f"attack {entry.name!r} has no parameter(s) {unknown}; it takes {sorted(names)}")
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"attack {entry.name!r}: {e}") from e


def _build_factory(entry: Entry, factory, threat: ThreatModel, num_classes, kwargs):
    params = inspect.signature(factory).parameters
    if "num_classes" in params:
        if num_classes is None:
            raise ConfigError(f"attack {entry.name!r} needs num_classes (the number of classes of the model)")
        kwargs["num_classes"] = num_classes
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = sorted(set(kwargs) - set(params))
    if unknown and not accepts_any:
        raise ConfigError(f"attack {entry.name!r} has no parameter(s) {unknown}; it takes {sorted(p for p in params if p != 'threat')}")
    try:
        return factory(threat, **kwargs)
    except TypeError as e:
        raise ConfigError(f"attack {entry.name!r}: {e}") from e
