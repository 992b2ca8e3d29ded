"""Grade gates: ``grade[linf:8/255] >= strong`` passes when the threat's grade on the result's profile
is at least ``strong``.

The grade is recomputed from the result's records (never read back from a stored grade), so an upper
bound, an untrusted headline or a clean accuracy below the profile's floor fails the gate.  A grade name
no profile knows, a result without a profile, or a threat the profile does not grade is a
:class:`~advkit.errors.ConfigError` (exit code 2).
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from ..errors import ConfigError
from ..profiles.grading import display, grade_threat
from ..profiles.profile import NONE, Profile, list_profiles, load_profile
from ..report import canonical_threat, clean_accuracy, threats
from .verdict import GateItem

_EXPR = re.compile(r"^\s*grade\s*(?:\[(?P<key>[^\]]+)\])?\s*(?P<op>>=|<=|==|>|<)\s*(?P<name>[A-Za-z][\w\- ]*?)\s*$")
_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}
_ALIASES = {"sota": "state-of-the-art"}


@dataclass(frozen=True)
class GradeGate:
    """``grade[key] op name``: ``key`` a threat (optional when the result has one), ``name`` a grade."""

    op: str
    grade: str
    key: str | None = None
    metric = "grade"

    @property
    def name(self) -> str:
        return "grade" + (f"[{self.key}]" if self.key else "")

    def __str__(self) -> str:
        return f"{self.name} {self.op} {self.grade}"


def is_grade_expr(text) -> bool:
    return isinstance(text, str) and re.match(r"^\s*grade\s*[\[<>=]", text) is not None


def known_grades() -> list[str]:
    names = []
    for p in list_profiles():
        for tp in p.threats:
            names += [n for n in tp.ladder() if n not in names]
    return names


def _normalise(name: str) -> str:
    n = re.sub(r"[\s_]+", "-", name.strip().lower())
    return _ALIASES.get(n, n)


def parse_grade_gate(text: str) -> GradeGate:
    """Parse ``"grade[linf:8/255] >= strong"``; an unknown grade name is a ConfigError."""
    m = _EXPR.match(text)
    if not m:
        raise ConfigError(f"expected a grade gate like 'grade[linf:8/255] >= strong', got {text!r}")
    name = _normalise(m.group("name"))
    if name not in known_grades():
        raise ConfigError(f"unknown grade {m.group('name')!r} in {text!r}; expected one of: "
                          f"{', '.join(known_grades())}")
    key = m.group("key")
    return GradeGate(m.group("op"), name, canonical_threat(key.strip()) if key else None)


def _section(result: dict, gate: GradeGate) -> tuple[str, dict]:
    ts = threats(result)
    if gate.key is None and len(ts) == 1:
        return next(iter(ts.items()))
    if gate.key is None or gate.key not in ts:
        what = "needs a threat, e.g. grade[linf:8/255]" if gate.key is None else f"[{gate.key}]: no such threat"
        raise ConfigError(f"grade gate {what}; the result has {sorted(ts) or 'none'}")
    return gate.key, ts[gate.key]


def result_profile(result: dict) -> Profile:
    spec = result.get("spec") if isinstance(result.get("spec"), dict) else {}
    name = result.get("profile") or spec.get("profile")
    if not name or name == NONE:
        raise ConfigError("grade gates need a profile, and the result has none; evaluate with --profile NAME "
                          "(see advkit list profiles)")
    return load_profile(name)


def ladder_for(profile: Profile, key: str, gate: GradeGate) -> list[str]:
    """The profile's grade names at ``key``; a grade it does not have is a ConfigError."""
    tp = profile.for_threat(key)
    if tp is None or not tp.grades:
        graded = [str(t.threat) for t in profile.threats if t.grades]
        raise ConfigError(f"{gate}: the {profile.name} profile has no grades for {key}; it grades "
                          f"{', '.join(graded) or 'nothing'}")
    if gate.grade not in tp.ladder():
        raise ConfigError(f"{gate}: {gate.grade!r} is not a grade of the {profile.name} profile at {key}; "
                          f"expected one of: {', '.join(tp.ladder())}")
    return tp.ladder()


def _deciding(tp, ladder: list[str], gate: GradeGate) -> float | None:
    """The robust-accuracy threshold at which the gate's verdict flips (None when it cannot flip)."""
    i = ladder.index(gate.grade) + (1 if gate.op in (">", "<=") else 0)
    return tp.grades[i - 1].min if 0 < i <= len(tp.grades) else None


def check_grade_gate(result: dict, gate: GradeGate) -> GateItem:
    """The :class:`~advkit.gates.GateItem` of a grade gate on ``result``."""
    profile = result_profile(result)
    key, section = _section(result, gate)
    ladder = ladder_for(profile, key, gate)
    name, expected = f"grade[{key}]", f"{gate.op} {gate.grade}"
    g = grade_threat(profile, key, section, clean=clean_accuracy(result), n=result.get("n"))
    if g["grade"] is None:  # an upper bound or an untrusted number (never graded, whatever allow_upper_bound says)
        return GateItem(name, expected, None, None, False, f"expected {name} {expected}, but {g['text']}",
                        kind="grade", upper_bound=True)
    acc, thr = float(g["robust_accuracy"]), _deciding(profile.for_threat(key), ladder, gate)
    passed = bool(_OPS[gate.op](ladder.index(g["grade"]), ladder.index(gate.grade)))
    margin = None if thr is None else (acc - thr if gate.op in (">=", ">") else thr - acc)
    msg = f"expected {name} {gate.op} {display(gate.grade)}, got {g['text']}"
    if g["clean_ok"] is False and gate.op in (">=", ">", "=="):
        passed = False
        msg += " (a grade needs the clean-accuracy floor)"
    noisy = thr is not None and bool(g["ci"]) and g["ci"][0] < thr <= g["ci"][1]
    return GateItem(name, expected, acc, margin, passed, msg, noisy, "grade")


def validate_for_spec(gate: GradeGate, profile_name: str | None, threats: list[str]) -> None:
    """Before any attack runs: the spec's profile grades the gate's threat and knows the gate's grade."""
    if not profile_name:
        raise ConfigError(f"{gate}: grade gates need a profile; set one with --profile NAME or profile = \"NAME\"")
    key = gate.key or (threats[0] if len(threats) == 1 else None)
    if key is None or key not in threats:
        raise ConfigError(f"{gate}: name one of the evaluated threats ({', '.join(threats)}), "
                          f"e.g. grade[{threats[0]}]")
    ladder_for(load_profile(profile_name), key, gate)
