"""CI gates: thresholds on a result's metrics and regressions against a baseline run.

A threshold gate is ``METRIC OP VALUE``::

    clean_accuracy >= 0.95
    robust_accuracy[linf:0.3] >= 85%
    attacks.pgd.robust_accuracy[linf:0.3] > 0.9
    per_class_min[linf:0.3] >= 0.5          (weakest class; per_class_min alone = clean)
    certified_accuracy[0.5] >= 0.6          (randomized smoothing, radius 0.5)
    grade[linf:8/255] >= strong             (the grade on the result's domain profile; advkit.profiles.gate)

``OP`` is one of ``>= > <= <``; ``VALUE`` a fraction (0.85) or a percentage (85%).  A regression
gate (``max_drop``: ``--max-drop 2pp`` or the spec's ``gates.max_drop``) has one meaning wherever it is
used (``evaluate``, ``gate``, ``history compare``): the clean accuracy and each threat's robust
accuracy may fall by at most the allowed drop against a baseline run; a threat the baseline lacks
fails the gate instead of being skipped.

A gate on a threat's numbers reads the headline robust accuracy, which is the protocol's number only
when AutoAttack ran with its reference composition and budgets and the evaluation is trusted
(:func:`advkit.evaluation.protocol_status`, ``trusted``).  Otherwise it is an upper bound, and the gate
fails unless the caller opts in (``allow_upper_bound=True``, ``--allow-upper-bound``).

Every accuracy is an estimate from ``n`` samples.  When a gate's margin lies inside the 95%
interval (for a threshold: the interval the result recorded, else Clopper & Pearson 1934; for a
regression: the normal interval of a difference of two independent proportions) the gate is flagged
``noisy`` (:func:`noise_findings` turns such items into ``gate-noise`` findings; library callers get a
:class:`GateNoiseWarning`): more samples are needed before the verdict means much.
"""
from __future__ import annotations

import math
import operator
import re
import warnings
from dataclasses import asdict, dataclass, field
from typing import Iterable, Union

from .errors import ConfigError, GateNoiseWarning
from .profiles.gate import GradeGate, check_grade_gate, is_grade_expr, parse_grade_gate
from .report import canonical_threat, certified, clean_accuracy, clopper_pearson, per_class, threats

__all__ = ["Gate", "RegressionGate", "GateItem", "GateReport", "parse_gate", "parse_drop", "check_gates",
           "default_gates", "metric_value", "gates_to_junit", "validate_gates", "noise_findings",
           "per_class_gates", "DEFAULT_CLEAN_FLOOR", "DEFAULT_MAX_DROP"]

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


@dataclass(frozen=True)
class GateItem:
    """One gate's verdict: ``margin`` > 0 means room to spare (≥/>) in the gate's direction."""

    name: str
    expected: str
    actual: float | None
    margin: float | None
    passed: bool
    message: str
    noisy: bool = False
    kind: str = "threshold"
    upper_bound: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GateReport:
    items: tuple[GateItem, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(i.passed for i in self.items)

    @property
    def failures(self) -> list[GateItem]:
        return [i for i in self.items if not i.passed]

    @property
    def noisy(self) -> list[GateItem]:
        return [i for i in self.items if i.noisy]

    def to_dict(self) -> dict:
        return {"passed": self.passed, "items": [i.to_dict() for i in self.items]}


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


def _gate_threat(gate: Gate) -> str | None:
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
        threat = _gate_threat(g)
        if g.key is None and g.metric != "clean_accuracy" and len(keys) != 1:
            raise ConfigError(f"{where}: {g.name} needs a threat, e.g. {g.metric}[{keys[0] if keys else 'linf:0.3'}]; "
                              f"the spec has {keys}")
        if threat is not None and threat not in keys:
            raise ConfigError(f"{where}: {g.name} names threat {threat!r}, which the spec does not evaluate; "
                              f"expected one of {keys}")


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


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _signed(v: float) -> str:
    sign = "+" if v >= 0 else "\u2212"
    return f"{sign}{abs(v):.3f}"


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
    threat = _gate_threat(gate)
    if gate.metric in ("clean_accuracy", "certified_accuracy"):
        return []
    key, sec = _threat_section(result, threat, gate.metric)
    from .evaluation.protocol_status import protocol_status
    reference, reasons = protocol_status(sec)
    out = [] if reference else list(reasons)
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
    msg = f"expected {gate.name} {expected}, got {actual:.3f} (margin {_signed(margin)})"
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


def _pairs(result: dict, baseline: dict, gate: RegressionGate) -> list[tuple[str, float | None, float | None]]:
    out = []
    if "clean_accuracy" in gate.metrics:
        out.append(("clean_accuracy", clean_accuracy(result), clean_accuracy(baseline)))
    if "robust_accuracy" in gate.metrics:
        now, base = threats(result), threats(baseline)
        keys = [canonical_threat(gate.threat)] if gate.threat else list(now)
        for k in keys:
            out.append((f"robust_accuracy[{k}]", _f(now.get(k, {}).get("robust_accuracy")),
                        _f(base.get(k, {}).get("robust_accuracy"))))
    return out


def _diff_halfwidth(p1: float, n1: int | None, p2: float, n2: int | None) -> float:
    if not n1 or not n2:
        return 0.0
    var = p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2
    return 1.959963984540054 * math.sqrt(max(var, 0.25 / (n1 * n2)))


def check_regression(result: dict, baseline: dict, gate: RegressionGate) -> list[GateItem]:
    items, bid = [], baseline.get("run_id")
    label = "baseline" if bid is None else f"baseline run {bid}"
    for name, now, base in _pairs(result, baseline, gate):
        if base is None and now is not None:
            items.append(GateItem(name, f"compared with {label}", now, None, False,
                                  f"expected {name} in {label} to check the regression against, but the baseline "
                                  "has no such number; choose a baseline that evaluated it", kind="regression"))
            continue
        if base is None:
            continue
        floor = max(base - gate.max_drop, 0.0)
        expected = f">= {floor:.3f} ({label}: {base:.3f} \u2212 {100 * gate.max_drop:.1f}pp)"
        if now is None:
            items.append(GateItem(name, expected, None, None, False, f"expected {name} {expected}, but the "
                                  "result has no value for it", kind="regression"))
            continue
        margin = now - floor
        noisy = abs(margin) <= _diff_halfwidth(now, result.get("n"), base, baseline.get("n"))
        msg = f"expected {name} {expected}, got {now:.3f} (margin {_signed(margin)})"
        if noisy:
            msg += "; the margin is inside the 95% confidence interval of the difference"
        items.append(GateItem(name, expected, now, margin, margin >= -1e-12, msg, noisy, "regression"))
    return items


def check_gates(result: dict, gates: Iterable[GateLike], baseline: dict | None = None, *,
                max_drop: float | str | None = None, allow_upper_bound: bool = False,
                warn: bool = True) -> GateReport:
    """Evaluate ``gates`` (strings, :class:`Gate` or :class:`RegressionGate`) on ``result``.

    ``max_drop`` adds the regression gate on clean and robust accuracy.  Regression gates need a
    ``baseline`` result; without one they are skipped (the first run of a spec has nothing to
    regress from).  A threshold on an upper bound fails unless ``allow_upper_bound``.  Noisy verdicts
    issue a :class:`GateNoiseWarning` when ``warn`` (callers that render :func:`noise_findings` pass False).
    """
    parsed = [parse_gate(g) if isinstance(g, str) else g for g in gates]
    if max_drop is not None:
        parsed.append(RegressionGate(max_drop=parse_drop(max_drop)))
    items: list[GateItem] = []
    for g in parsed:
        if isinstance(g, RegressionGate):
            items.extend(check_regression(result, baseline, g) if baseline else [])
        elif isinstance(g, GradeGate):
            items.append(check_grade_gate(result, g))
        elif isinstance(g, Gate):
            items.append(check_threshold(result, g, allow_upper_bound=allow_upper_bound))
        else:
            raise ConfigError(f"expected a gate string, Gate or RegressionGate, got {type(g).__name__}")
    report = GateReport(tuple(items))
    for it in report.noisy if warn else ():
        warnings.warn(GateNoiseWarning(it.message), stacklevel=2)
    return report


def noise_findings(report: GateReport | dict) -> list[dict]:
    """A ``gate-noise`` finding (severity warning) per gate whose margin lies inside the sampling interval."""
    items = report.get("items", []) if isinstance(report, dict) else [i.to_dict() for i in report.items]
    return [{"code": "gate-noise", "severity": "warning",
             "message": f"gate {i['name']}: the margin is inside the 95% sampling confidence interval, so the "
                        f"verdict ({'pass' if i['passed'] else 'fail'}) may flip with other samples; "
                        "evaluate more samples for a firm verdict"} for i in items if i.get("noisy")]


def gates_to_junit(report: GateReport | dict, *, suite: str = "advkit.gates", run: str | None = None) -> str:
    """The gates as a JUnit XML test suite: one uniquely named test case per gate, a ``<failure>`` when it
    failed (see :func:`advkit.results.junit.gates_junit`)."""
    from .results.junit import gates_junit
    gates = report if isinstance(report, dict) else report.to_dict()
    return gates_junit(gates, suite=suite, run=run)
