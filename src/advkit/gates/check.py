"""Checking a list of gates against a result (and a baseline): one :class:`GateReport`; its noisy verdicts
as ``gate-noise`` findings; the report as JUnit XML."""
from __future__ import annotations

import warnings
from typing import Iterable

from ..errors import ConfigError, GateNoiseWarning
from ..results.junit import gates_junit
from .expressions import Gate, GateLike, RegressionGate, parse_drop, parse_gate
from .grade import GradeGate, check_grade_gate
from .regression import check_regression
from .threshold import check_threshold
from .verdict import GateReport, GateItem

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
    gates = report if isinstance(report, dict) else report.to_dict()
    return gates_junit(gates, suite=suite, run=run)
