"""Grades: where a robust accuracy stands on a domain profile's thresholds (e.g. CIFAR-10, L∞ 8/255:
≥ 50% competitive, ≥ 55% strong, ≥ 60% state of the art under AutoAttack; RobustBench, 2025).

A grade is given only to a number that can carry it: the AutoAttack row of a threat (``attacks.autoattack``:
AutoAttack's members from the clean inputs, as the official evaluation counts; older results without it:
the per-sample worst case) whose AutoAttack ran with the official composition at the reference budgets
(:func:`advkit.results.protocol.protocol_status`) and whose headline is trusted (not masked).  An upper bound
or a masked model gets ``grade: null`` and the reasons.  The grade comes from the point estimate; when
the 95% interval contains a threshold the grade says so and lists every grade the interval allows.
"""
from __future__ import annotations

from ..findings import Finding, register_check
from ..threat import ThreatModel
from .profile import Profile, ThreatProfile, load_profile

register_check(
    "clean-below-floor", "Clean accuracy below the domain's floor",
    "The clean accuracy is below the profile's clean-accuracy floor (CIFAR-10: 80%): the robustness cost too "
    "much clean accuracy, or training went wrong.",
    "Check the training run (schedule, ε, data normalisation) before trusting the robust numbers.",
)


def display(name: str) -> str:
    """``state-of-the-art`` → ``state of the art``."""
    return name.replace("-", " ")


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _thr(v: float) -> str:
    return f"{100 * v:.4g}%"


def _at(threat: ThreatModel) -> str:
    eps = str(threat).split(":", 1)[1]
    return eps if threat.norm == "linf" else f"{threat.norm.upper()} {eps}"


def level(tp: ThreatProfile, acc: float) -> int:
    """0 for the bottom grade, i for ``tp.grades[i - 1]``: the highest grade whose threshold ``acc`` reaches."""
    return sum(acc >= g.min - 1e-12 for g in tp.grades)


def _ci(section: dict, n: int | None) -> tuple[float, float] | None:
    from ..report import accuracy_ci
    return accuracy_ci(section, n)


def _why_not(section: dict) -> list[str]:
    """Why this threat's number may not be graded: an upper bound or an untrusted headline."""
    from ..results.protocol import protocol_status

    reasons = []
    reference, why = protocol_status(section)
    if section.get("upper_bound") or not reference:
        reasons.append("AutoAttack did not run at the reference budgets (" + "; ".join(why or ["upper bound"])
                       + "), so the robust accuracy is an upper bound")
    if section.get("trusted", True) is False:
        extra = "; ".join(map(str, section.get("untrusted_reasons") or [])) or "masked gradients"
        reasons.append(f"the headline is untrusted ({extra})")
    return reasons


def grade_threat(profile: Profile, key: str, section: dict, *, clean: float | None = None,
                 n: int | None = None) -> dict:
    """The grade of one threat section of a result (``result["threats"][key]``) on ``profile``."""
    threat = ThreatModel.parse(key)
    tp = profile.for_threat(threat)
    # AutoAttack's own row when the evaluation has one (thresholds are published AutoAttack numbers)
    graded = (section.get("attacks") or {}).get("autoattack") or section
    acc = graded.get("robust_accuracy")
    ci = _ci(graded, n)
    out = {"profile": profile.name, "threat": str(threat), "grade": None, "robust_accuracy": acc,
           "ci": list(ci) if ci else None, "threshold": None, "possible": [], "straddles": [], "uncertain": False,
           "clean_accuracy": clean, "clean_floor": profile.clean_floor,
           "clean_ok": None if clean is None or profile.clean_floor is None else clean >= profile.clean_floor - 1e-12,
           "convention": tp.convention if tp else "none", "source": tp.source if tp else "", "reasons": []}
    if tp is None or not tp.grades:
        budgets = ", ".join(str(t.threat) for t in profile.threats)
        out["reasons"] = [f"the {profile.name} profile has no published thresholds for {threat}" if tp else
                          f"the {profile.name} profile has no thresholds for {threat} (its standard budgets: {budgets})"]
    elif acc is None:
        out["reasons"] = ["the result has no robust accuracy for this threat"]
    else:
        out["reasons"] = _why_not(section)
    if out["reasons"]:
        out["text"] = "no grade: " + "; ".join(out["reasons"])
        return out
    _place(out, tp, float(acc), ci)
    out["text"] = grade_text(out, tp)
    return out


def _place(out: dict, tp: ThreatProfile, acc: float, ci) -> None:
    ladder, i = tp.ladder(), level(tp, acc)
    out["grade"] = ladder[i]
    out["threshold"] = tp.grades[i - 1].min if i else tp.grades[0].min
    if ci:
        lo, hi = ci
        out["straddles"] = [g.min for g in tp.grades if lo < g.min <= hi]  # level(lo) != level(hi)
        out["possible"] = ladder[level(tp, lo): level(tp, hi) + 1]
        out["uncertain"] = bool(out["straddles"])
    else:
        out["possible"] = [ladder[i]]


def _span(names: list[str]) -> str:
    shown = [display(n) for n in names]
    return " or ".join(shown) if len(shown) <= 2 else f"anything from {shown[0]} to {shown[-1]}"


def grade_text(g: dict, tp: ThreatProfile) -> str:
    """``strong: 56.1% ≥ 55% under AutoAttack at 8/255`` plus what qualifies it."""
    acc, name = float(g["robust_accuracy"]), g["grade"]
    sign = "<" if name == tp.bottom else "\u2265"
    text = f"{display(name)}: {_pct(acc)} {sign} {_thr(g['threshold'])} under AutoAttack at {_at(tp.threat)}"
    if g["convention"] == "advkit":
        text += " (advkit's thresholds)"
    if g["uncertain"]:
        lo, hi = g["ci"]
        text += (f"; uncertain: the 95% interval {_pct(lo)}\u2013{_pct(hi)} straddles "
                 f"{' and '.join(_thr(t) for t in g['straddles'])}, so the grade could be {_span(g['possible'])}")
    if g["clean_ok"] is False:
        text += f"; clean accuracy {_pct(g['clean_accuracy'])} is below the {_thr(g['clean_floor'])} floor"
    return text


def annotate(result: dict, profile_name: str | None) -> None:
    """Record ``result["profile"]`` and each threat's ``grade``; add a finding when clean accuracy is below
    the profile's floor.  Nothing is graded without a profile."""
    from ..report import clean_accuracy, threats

    result["profile"] = profile_name
    if not profile_name:
        return
    profile = load_profile(profile_name)
    clean = clean_accuracy(result)
    for key, section in threats(result).items():
        section["grade"] = grade_threat(profile, key, section, clean=clean, n=result.get("n"))
    if clean is not None and profile.clean_floor is not None and clean < profile.clean_floor - 1e-12:
        result.setdefault("findings", []).append(Finding(
            "clean-below-floor", "warning",
            f"clean accuracy {_pct(clean)} is below the {profile.name} profile's floor of "
            f"{_thr(profile.clean_floor)}").to_dict())


def grade_lines(result: dict) -> list[tuple[str, str]]:
    """``[(threat, grade text)]`` of the grades a result records (for the terminal and the reports)."""
    from ..report import threats

    return [(key, str(sec["grade"].get("text", ""))) for key, sec in threats(result).items()
            if isinstance(sec.get("grade"), dict)]


def grade_label(g: dict | None) -> str:
    """A short label for a table cell: ``strong``, ``strong (interval: competitive–strong)``, ``no grade``."""
    if not isinstance(g, dict):
        return ""
    if not g.get("grade"):
        return "no grade"
    label = display(g["grade"])
    if g.get("uncertain") and len(g.get("possible") or []) > 1:
        label += f" (interval: {display(g['possible'][0])}\u2013{display(g['possible'][-1])})"
    return label
