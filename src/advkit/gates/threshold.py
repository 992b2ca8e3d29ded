"""Threshold gates against one result: the value a gate reads, whether its margin is inside the sampling
interval (``noisy``), and whether the number is only an upper bound (not the reference AutoAttack
protocol, or untrusted), which fails the gate unless allowed."""
from __future__ import annotations

import math

from ..errors import ConfigError
from ..report import certified, clean_accuracy, clopper_pearson, per_class, threats
from ..results.protocol import protocol_status
from .expressions import _ATTACK_METRIC, _OPS, Gate, gate_threat
from .verdict import GateItem, signed

def _threat_section(result: dict, key: str | None, name: str) -> tuple[str, dict]:
    ts = threats(result)
    if key is None:
        if len(ts) == 1:
            return next(iter(ts.items()))
        raise ConfigError(f"{name} needs a threat, e.g. {name}[linf:0.3]; the result has {sorted(ts) or 'none'}")
    if key not in ts:
        raise ConfigError(f"{name}[{key}]: the result has no threat {key!r}; it has {sorted(ts) or 'none'}")
    return key, ts[key]


def metric_value(result: dict, gate: Gate) -> float | None:
    """The value ``gate`` reads from ``result`` (None when the result lacks it)."""
    if gate.metric == "clean_accuracy":
        return clean_accuracy(result)
    if gate.metric == "certified_accuracy":
        radii, accs, _ = certified(result)
        if not radii:
            raise ConfigError(f"{gate.name}: the result has no certify section")
        for r, a in zip(radii, accs):
            if math.isclose(r, float(gate.key), abs_tol=1e-9):
                return a
        raise ConfigError(f"{gate.name}: no certified accuracy at radius {gate.key}; radii are {radii}")
    if gate.metric == "per_class_min":
        if gate.key in (None, "clean") and (gate.key == "clean" or not threats(result)):
            pc = per_class(result.get("clean") or {})
        else:
            pc = per_class(_threat_section(result, gate.key, gate.metric)[1])
        return min((a for _, a in pc), default=None)
    _, sec = _threat_section(result, gate.key, gate.metric)
    m = _ATTACK_METRIC.match(gate.metric)
    if m:
        att = (sec.get("attacks") or {}).get(m.group("attack"))
        if not isinstance(att, dict):
            raise ConfigError(f"{gate.name}: attack {m.group('attack')!r} did not run; ran "
                              f"{sorted(sec.get('attacks') or {}) or 'none'}")
        return _f(att.get("robust_accuracy"))
    return _f(sec.get("robust_accuracy"))


def _f(v) -> float | None:
    return None if v is None else float(v)


def _recorded_ci(result: dict, gate: Gate):
    """The 95% interval the result recorded for the gate's metric (None for derived metrics)."""
    if gate.metric == "clean_accuracy":
        return (result.get("clean") or {}).get("ci")
    if gate.metric == "robust_accuracy" or _ATTACK_METRIC.match(gate.metric):
        _, sec = _threat_section(result, gate.key, gate.metric)
        m = _ATTACK_METRIC.match(gate.metric)
        return ((sec.get("attacks") or {}).get(m.group("attack")) or {}).get("ci") if m else sec.get("ci")
    return None


def _threshold_noisy(result: dict, gate: Gate, actual: float) -> bool:
    """Whether the threshold lies inside the 95% interval of ``actual`` (recorded, else Clopper–Pearson)."""
    ci, n = _recorded_ci(result, gate), result.get("n")
    if not (isinstance(ci, (list, tuple)) and len(ci) == 2):
        if not n:
            return False
        ci = clopper_pearson(int(round(actual * n)), int(n))
    return float(ci[0]) <= gate.value <= float(ci[1])


def upper_bound_reasons(result: dict, gate: Gate) -> list[str]:
    """Why the number ``gate`` reads is only an upper bound (empty: it is the protocol's number)."""
    if gate.metric == "per_class_min" and (gate.key == "clean" or (gate.key is None and not threats(result))):
        return []
    if gate.metric in ("clean_accuracy", "certified_accuracy"):
        return []
    _, sec = _threat_section(result, gate_threat(gate), gate.metric)
    reference, reasons = protocol_status(sec)
    out = [] if reference else (list(reasons) or ["not the reference AutoAttack protocol"])
    if sec.get("trusted", True) is False:
        out += [f"untrusted: {r}" for r in (sec.get("untrusted_reasons") or ["marked trusted=false"])]
    return out


def check_threshold(result: dict, gate: Gate, *, allow_upper_bound: bool = False) -> GateItem:
    actual = metric_value(result, gate)
    expected = f"{gate.op} {gate.value:.3f}"
    if actual is None or math.isnan(actual):
        return GateItem(gate.name, expected, None, None, False,
                        f"expected {gate.name} {expected}, but the result has no value for it")
    margin = actual - gate.value if gate.op in (">=", ">") else gate.value - actual
    passed = bool(_OPS[gate.op](actual, gate.value))
    noisy = _threshold_noisy(result, gate, actual)
    msg = f"expected {gate.name} {expected}, got {actual:.3f} (margin {signed(margin)})"
    if noisy:
        msg += f"; the margin is inside the 95% confidence interval at n={result.get('n')}"
    bound = upper_bound_reasons(result, gate)
    if bound and allow_upper_bound:
        msg += f"; an upper bound ({'; '.join(bound)}), gated as allowed"
    elif bound:
        passed = False
        msg += (f"; but it is only an upper bound ({'; '.join(bound)}): the gate fails unless you allow "
                "upper bounds (--allow-upper-bound, or gates.allow_upper_bound = true in the spec)")
    return GateItem(gate.name, expected, actual, margin, passed, msg, noisy, upper_bound=bool(bound))
