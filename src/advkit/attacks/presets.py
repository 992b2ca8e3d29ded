"""Attack presets as plain data: AutoAttack "standard" and "rand" (Croce & Hein 2020).

``autoattack_standard``: APGD-CE (100 iterations, 1 restart) → APGD-T (targeted DLR, top
min(9, K−1) classes, 100 iterations) → FAB-T (top min(9, K−1) classes, 100 iterations) →
Square (5000 queries, p_init 0.8), each on the still-robust points (:class:`Ensemble`).  As in the
official code, Square's p-schedule is not rescaled to the query budget here.  The targeted DLR loss
needs 4 classes: with 3 classes APGD-T is replaced by untargeted APGD-DLR, with 2 it is left out
(DLR is undefined), as is FAB-T's targeted search when K = 2 (FAB untargeted runs instead).

``autoattack_rand`` (for randomized defenses): APGD-CE and APGD-DLR, each with EOT over ``eot``
(20) draws; APGD-DLR is left out with fewer than 3 classes.
"""
from __future__ import annotations

from ..errors import ConfigError
from ..threat import ThreatModel
from .apgd import APGD
from .ensemble import Ensemble
from .fab import FAB
from .square import Square

#: (attack, settings) of AutoAttack standard; "n_targets" = None means min(9, K − 1).
STANDARD = (
    ("apgd-ce", {"loss": "ce", "steps": 100, "restarts": 1}),
    ("apgd-t", {"loss": "dlr", "n_targets": None, "steps": 100, "restarts": 1}),
    ("fab-t", {"n_targets": None, "steps": 100, "restarts": 1}),
    ("square", {"n_queries": 5000, "p_init": 0.8, "rescale_schedule": False}),
)
RAND = (
    ("apgd-ce", {"loss": "ce", "steps": 100, "restarts": 1}),
    ("apgd-dlr", {"loss": "dlr", "steps": 100, "restarts": 1}),
)


def _check(num_classes) -> int:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return num_classes


def _build(name: str, settings: dict, threat: ThreatModel, k: int):
    kw = dict(settings)
    if kw.get("n_targets", 0) is None:
        kw["n_targets"] = min(9, k - 1)
    if name == "apgd-t":
        if k < 3:
            return None
        if k == 3:
            kw["n_targets"] = 0
        return APGD(threat, **kw)
    if name.startswith("apgd"):
        return APGD(threat, **kw) if (kw["loss"] != "dlr" or k >= 3) else None
    if name == "fab-t":
        return FAB(threat, **(kw if k > 2 else {**kw, "n_targets": 0}))
    if name == "square":
        return Square(threat, **kw) if threat.norm in ("linf", "l2") else None
    raise ConfigError(f"unknown preset member {name!r}")


def autoattack_standard(threat, num_classes: int) -> Ensemble:
    """AutoAttack standard for ``threat`` (ThreatModel or text) and a ``num_classes``-way model."""
    threat, k = ThreatModel.parse(threat), _check(num_classes)
    attacks = [a for a in (_build(n, s, threat, k) for n, s in STANDARD) if a is not None]
    return Ensemble(tuple(attacks), label="autoattack")


def autoattack_rand(threat, num_classes: int, eot: int = 20) -> Ensemble:
    """AutoAttack for randomized models: APGD-CE and APGD-DLR with EOT over ``eot`` draws."""
    threat, k = ThreatModel.parse(threat), _check(num_classes)
    attacks = [a for a in (_build(n, {**s, "eot": eot}, threat, k) for n, s in RAND) if a is not None]
    return Ensemble(tuple(attacks), label="autoattack-rand")


def _describe(members) -> str:
    return " → ".join(f"{n} ({', '.join(f'{k}={v}' for k, v in s.items() if v is not None)})" for n, s in members)


PRESETS = {
    "autoattack_standard": (autoattack_standard, "AutoAttack standard (Croce & Hein 2020): " + _describe(STANDARD)),
    "autoattack_rand": (autoattack_rand, "AutoAttack for randomized models, EOT=20: " + _describe(RAND)),
}


def list_presets() -> list[tuple[str, str]]:
    """(name, description) of every preset, for ``advkit list presets``."""
    return [(name, desc) for name, (_, desc) in PRESETS.items()]
