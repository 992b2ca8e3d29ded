"""The regression gate against a baseline run: clean and each threat's robust accuracy may fall by at most
``max_drop``; a number the baseline lacks fails; a margin inside the 95% interval of the difference of two
independent proportions is ``noisy``."""
from __future__ import annotations

import math

from ..report import canonical_threat, clean_accuracy, threats
from .expressions import RegressionGate
from .threshold import _f
from .verdict import GateItem, signed

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
        msg = f"expected {name} {expected}, got {now:.3f} (margin {signed(margin)})"
        if noisy:
            msg += "; the margin is inside the 95% confidence interval of the difference"
        items.append(GateItem(name, expected, now, margin, margin >= -1e-12, msg, noisy, "regression"))
    return items
