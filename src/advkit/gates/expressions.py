"""Gate expressions: ``METRIC[KEY] OP VALUE`` thresholds, the regression rule (``max_drop``), the
default gates, and checking before any attack runs that every gate names something the evaluation will have.

The syntax is described in :mod:`advkit.gates`; grade gates (``grade[...] >= NAME``) are parsed by
:mod:`advkit.gates.grade`.
"""
from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Iterable, Union

from ..errors import ConfigError
from ..report import canonical_threat
from .grade import is_grade_expr, parse_grade_gate

DEFAULT_CLEAN_FLOOR = 0.5
DEFAULT_MAX_DROP = 0.02
_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
_GATE = re.compile(r"^\s*(?P<metric>[A-Za-z_][\w.\-]*?)\s*(?:\[(?P<key>[^\]]+)\])?\s*"
                   r"(?P<op>>=|<=|>|<)\s*(?P<value>[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?P<pct>%)?\s*$")
_ATTACK_METRIC = re.compile(r"^attacks\.(?P<attack>[\w\-]+)\.robust_accuracy$")
_METRICS = ("clean_accuracy", "robust_accuracy", "attacks.<name>.robust_accuracy", "per_class_min",
            "certified_accuracy")


@dataclass(frozen=True)
class Gate:
    """``metric[key] op value``: ``key`` is a threat (or a radius for ``certified_accuracy``)."""

    metric: str
    op: str
    value: float
    key: str | None = None

    @property
    def name(self) -> str:
        return self.metric + (f"[{self.key}]" if self.key else "")

    def __str__(self) -> str:
        return f"{self.name} {self.op} {self.value:.3f}"


@dataclass(frozen=True)
class RegressionGate:
    """Clean and robust accuracy (each threat, or ``threat`` alone) may drop by at most ``max_drop``.

    This is the one regression rule: ``evaluate``, ``gate`` and ``history compare`` all build it with the
    default ``metrics``."""

    max_drop: float = DEFAULT_MAX_DROP
    metrics: tuple[str, ...] = ("clean_accuracy", "robust_accuracy")
    threat: str | None = None

    def __str__(self) -> str:
        return f"regression: drop <= {100 * self.max_drop:.1f}pp"


GateLike = Union[str, Gate, RegressionGate]


def parse_value(text: str, *, percent: bool = False) -> float:
    """``"0.85"`` → 0.85; ``"85%"`` → 0.85.  Accuracies must lie in [0, 1]."""
    v = float(text) / (100.0 if percent else 1.0)
    if not 0.0 <= v <= 1.0:
        hint = f" (did you mean {text}%?)" if not percent and 1 < v <= 100 else ""
        raise ConfigError(f"expected a fraction in [0, 1] or a percentage like 85%, got {text}"
                          f"{'%' if percent else ''}{hint}")
    return v


def parse_gate(text: str) -> Gate:
    """Parse ``"robust_accuracy[linf:0.3] >= 0.85"`` into a :class:`Gate` (a grade gate into a ``GradeGate``)."""
    if is_grade_expr(text):
        return parse_grade_gate(text)
    m = _GATE.match(str(text))
    if not m:
        raise ConfigError(f"expected a gate like 'robust_accuracy[linf:0.3] >= 0.85' "
                          f"(METRIC[KEY] >=|>|<=|< VALUE), got {text!r}")
    metric, key = m.group("metric"), m.group("key")
    if metric not in ("clean_accuracy", "robust_accuracy", "per_class_min", "certified_accuracy") \
            and not _ATTACK_METRIC.match(metric):
        raise ConfigError(f"gate metric must be one of {', '.join(_METRICS)}; got {metric!r} in {text!r}")
    if metric == "clean_accuracy" and key:
        raise ConfigError(f"clean_accuracy takes no [key]; got {text!r}")
    if metric == "certified_accuracy":
        if key is None:
            raise ConfigError(f"certified_accuracy needs a radius, e.g. certified_accuracy[0.5]; got {text!r}")
        try:
            key = repr(float(key))
        except ValueError:
            raise ConfigError(f"certified_accuracy[RADIUS] needs a number, got {key!r} in {text!r}") from None
    elif key is not None and key.strip().lower() != "clean":
        key = canonical_threat(key.strip())
    value = parse_value(m.group("value"), percent=bool(m.group("pct")))
    return Gate(metric=metric, op=m.group("op"), value=value, key=key)


def parse_drop(text: str | float) -> float:
    """``"2pp"``, ``"2%"`` or ``"2 points"`` → 0.02; a bare number < 1 is a fraction, ≥ 1 points."""
    if isinstance(text, (int, float)):
        v = float(text)
        return v if v < 1 else v / 100.0
    m = re.match(r"^\s*([0-9]*\.?[0-9]+)\s*(pp|%|points?|pts?)?\s*$", str(text))
    if not m:
        raise ConfigError(f"expected a maximum drop like 2pp, 2% or 0.02, got {text!r}")
    v = float(m.group(1))
    v = v / 100.0 if m.group(2) or v >= 1 else v
    if v > 1:
        raise ConfigError(f"a maximum drop must be at most 100pp, got {text!r}")
    return v


def default_gates(*, clean_floor: float | None = DEFAULT_CLEAN_FLOOR,
                  max_drop: float | str | None = DEFAULT_MAX_DROP) -> list[Gate | RegressionGate]:
    """The defaults: clean accuracy ≥ ``clean_floor``; robust accuracy (the per-sample worst case over
    every attack, AutoAttack included) drops by at most ``max_drop`` against the baseline."""
    gates: list[Gate | RegressionGate] = []
    if clean_floor is not None:
        gates.append(Gate("clean_accuracy", ">=", float(clean_floor)))
    if max_drop is not None:
        gates.append(RegressionGate(max_drop=parse_drop(max_drop)))
    return gates


def per_class_gates(minimum: float, threat_keys: Iterable[str]) -> list[Gate]:
    """``per_class_min[clean] >= minimum`` and ``per_class_min[T] >= minimum`` for every threat T."""
    return [Gate("per_class_min", ">=", float(minimum), "clean")] + \
        [Gate("per_class_min", ">=", float(minimum), canonical_threat(str(t))) for t in threat_keys]


def gate_threat(gate: Gate) -> str | None:
    """The threat a gate reads (None for clean accuracy, certified accuracy and clean per-class)."""
    if gate.metric in ("clean_accuracy", "certified_accuracy") or gate.key == "clean":
        return None
    return gate.key


def validate_gates(gates: Iterable[GateLike], threat_keys: Iterable[str], *, radii: Iterable[float] | None = None,
                   where: str = "gates") -> None:
    """Raise :class:`ConfigError` for a gate that names a threat (or radius) the evaluation will not have.

    Run before any attack so that a typo costs nothing; ``radii`` are the certified radii (None: no certify).
    """
    keys = [canonical_threat(str(t)) for t in threat_keys]
    for g in gates:
        g = parse_gate(g) if isinstance(g, str) else g
        if isinstance(g, RegressionGate):
            if g.threat is not None and canonical_threat(g.threat) not in keys:
                raise ConfigError(f"{where}: expected a regression threat among {keys}, got {g.threat!r}")
            continue
        if g.metric == "certified_accuracy":
            rs = list(radii) if radii is not None else []
            if not any(math.isclose(float(g.key), float(r), abs_tol=1e-9) for r in rs):
                raise ConfigError(f"{where}: {g.name} needs certified radius {g.key} in the spec's certify.radii, "
                                  f"got {rs if radii is not None else 'no [certify] section'}")
            continue
        threat = gate_threat(g)
        if g.key is None and g.metric != "clean_accuracy" and len(keys) != 1:
            raise ConfigError(f"{where}: {g.name} needs a threat, e.g. {g.metric}[{keys[0] if keys else 'linf:0.3'}]; "
                              f"the spec has {keys}")
        if threat is not None and threat not in keys:
            raise ConfigError(f"{where}: {g.name} names threat {threat!r}, which the spec does not evaluate; "
                              f"expected one of {keys}")
