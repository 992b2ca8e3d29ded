"""Reports derived from a ``result.json`` dict: Markdown (CI summaries), one HTML page, plots.

Every number a report prints comes from the result dict (DESIGN.md "Results contract").  This module
holds the small, tolerant accessors that the renderers and gates share, so that each renderer reads
the contract in one way:

- :func:`threats` — ``{canonical threat text: threat dict}`` (a ``"threats"`` section or top-level keys);
- :func:`accuracy_ci` — the 95% interval of an accuracy (the recorded one, else Clopper–Pearson at ``n``);
- :func:`per_class` — ``[(class label, accuracy), ...]`` from a list or a mapping;
- :func:`curve` — ``(eps, robust_accuracy, method)`` of a threat's robustness curve;
- :func:`findings` — findings with the catalogue's cause and remedy filled in.
"""
from __future__ import annotations

import math
from typing import Any

from ..threat import ThreatModel

__all__ = ["threats", "canonical_threat", "accuracy_ci", "clopper_pearson", "per_class", "curve",
           "findings", "model_name", "data_name", "clean_accuracy", "attack_table", "certified", "certify_ceiling",
           "NOT_CERTIFIABLE"]

#: how every report marks a radius above the largest one CERTIFY can reach with the run's n
NOT_CERTIFIABLE = "not certifiable at this n"

CONFIDENCE = 0.95


def canonical_threat(text: str) -> str:
    """``"Linf:8/255"`` → ``"linf:8/255"``; text that is not a threat model is returned unchanged."""
    try:
        return str(ThreatModel.parse(str(text)))
    except Exception:  # noqa: BLE001 - any unparsable key is simply not a threat
        return str(text)


def _is_threat(key: str) -> bool:
    try:
        ThreatModel.parse(str(key))
    except Exception:  # noqa: BLE001
        return False
    return True


def threats(result: dict) -> dict[str, dict]:
    """The per-threat sections keyed by canonical threat text, in the order the result lists them."""
    section = result.get("threats")
    if not isinstance(section, dict):
        section = {k: v for k, v in result.items() if isinstance(v, dict) and _is_threat(k)}
    return {canonical_threat(k): v for k, v in section.items() if isinstance(v, dict)}


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact two-sided binomial interval for ``k`` successes in ``n`` trials (Clopper & Pearson 1934)."""
    from scipy.stats import beta

    if n <= 0:
        return 0.0, 1.0
    a = 1.0 - confidence
    lo = 0.0 if k <= 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k >= n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def accuracy_ci(section: Any, n: int | None) -> tuple[float, float] | None:
    """The 95% interval of ``section``'s accuracy: its recorded ``ci``, else Clopper–Pearson at ``n``."""
    if isinstance(section, dict):
        ci = section.get("ci") or section.get("confidence_interval")
        if isinstance(ci, (list, tuple)) and len(ci) == 2:
            return float(ci[0]), float(ci[1])
        if isinstance(ci, dict) and {"low", "high"} <= ci.keys():
            return float(ci["low"]), float(ci["high"])
        acc = section.get("robust_accuracy", section.get("accuracy"))
    else:
        acc = section
    if acc is None or not n or (isinstance(acc, float) and math.isnan(acc)):
        return None
    return clopper_pearson(int(round(float(acc) * n)), int(n))


def model_name(result: dict) -> str:
    if result.get("model_name"):
        return str(result["model_name"])
    m = result.get("model")
    if isinstance(m, dict):
        return str(m.get("name") or m.get("ref") or "model")
    return str(m or "model")


def data_name(result: dict) -> str:
    d = result.get("data")
    if isinstance(d, dict):
        return str(d.get("ref") or d.get("name") or "data")
    return str(d or "data")


def class_names(result: dict) -> list[str] | None:
    d, clean = result.get("data"), result.get("clean")
    names = d.get("classes") if isinstance(d, dict) else None
    names = names or (clean.get("classes") if isinstance(clean, dict) else None)
    return [str(c) for c in names] if names else None


def clean_accuracy(result: dict) -> float | None:
    clean = result.get("clean")
    if isinstance(clean, dict):
        return _num(clean.get("accuracy"))
    return _num(result.get("clean_accuracy"))


def _num(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def per_class(section: Any, names: list[str] | None = None, *, keep_empty: bool = False) -> list[tuple[str, float]]:
    """``[(label, accuracy)]`` from a list, a ``{label: acc}`` mapping or ``{"accuracy": [...]}``.

    A class with no samples (``n`` = 0, or no accuracy) is left out, or with ``keep_empty`` listed with
    accuracy ``None`` (so that a figure can say "no samples" instead of showing an empty 0% bar)."""
    if isinstance(section, dict) and "per_class" in section:
        section = section["per_class"]
    if isinstance(section, dict) and isinstance(section.get("accuracy"), list):
        section = section["accuracy"]
    if isinstance(section, (list, tuple)):
        labels = names if names and len(names) == len(section) else [str(i) for i in range(len(section))]
        out = []
        for lab, a in zip(labels, section):
            empty = False
            if isinstance(a, dict):  # {class, accuracy, ci, n}
                lab = str(a["name"]) if "name" in a else _class_label(a.get("class"), names, lab)
                empty = a.get("n") == 0
                a = a.get("accuracy", a.get("robust_accuracy"))
            a = None if empty else _num(a)
            if a is not None and math.isnan(a):
                a = None
            if a is not None or keep_empty:
                out.append((str(lab), a))
        return out
    if isinstance(section, dict):
        out = []
        for k, v in section.items():
            v = v.get("accuracy", v.get("robust_accuracy")) if isinstance(v, dict) else v
            if _num(v) is not None:
                out.append((str(k), float(v)))
        return out
    return []


def _class_label(c: Any, names: list[str] | None, default: str) -> str:
    if isinstance(c, int) and names and 0 <= c < len(names):
        return names[c]
    return default if c is None else str(c)


def curve(result: dict, threat: str) -> tuple[list[float], list[float], str | None]:
    """The robustness curve of ``threat``: ε values, robust accuracies and the attack that drew it."""
    sec = threats(result).get(threat, {})
    c = sec.get("curve")
    if c is None and isinstance(result.get("curve"), dict):
        top = {canonical_threat(k): v for k, v in result["curve"].items()}
        c = top.get(threat, result["curve"] if len(threats(result)) == 1 and threat not in top else None)
    return _curve_points(c)


def _curve_points(c: Any) -> tuple[list[float], list[float], str | None]:
    if not isinstance(c, dict):
        return [], [], None
    method = c.get("attack") or c.get("method") or c.get("attacks")
    if isinstance(method, (list, tuple)):
        method = " + ".join(map(str, method))
    if isinstance(c.get("eps"), list):
        accs = c.get("robust_accuracy", c.get("accuracy", []))
        pts = sorted(zip(map(float, c["eps"]), map(float, accs)))
    else:
        pts = sorted((float(k), float(v)) for k, v in c.get("points", c).items() if _num(k) is not None
                     and _num(v) is not None)
    return [p[0] for p in pts], [p[1] for p in pts], (str(method) if method else None)


def findings(result: dict) -> list[dict]:
    """Findings with ``cause``/``remedy``/``title`` from :data:`advkit.findings.CATALOGUE` where missing."""
    from ..findings import CATALOGUE

    out = []
    for f in result.get("findings") or []:
        f = dict(f) if isinstance(f, dict) else {"code": "note", "severity": "info", "message": str(f)}
        info = CATALOGUE.get(str(f.get("code")))
        if info:
            f.setdefault("title", info.title)
            f.setdefault("cause", info.cause)
            f.setdefault("remedy", info.remedy)
        f.setdefault("severity", "info")
        out.append(f)
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(out, key=lambda f: order.get(str(f.get("severity")), 3))


def attack_table(section: dict, *, components: bool = True) -> list[tuple[str, dict]]:
    """``[(attack name, attack dict)]`` of one threat, in the order they ran.

    With ``components=False`` the parts of an ensemble (the attacks an entry lists under
    ``components``, e.g. AutoAttack's APGD-CE … Square) are left out: the headline attacks only.
    """
    attacks = section.get("attacks") or {}
    if isinstance(attacks, list):
        rows = [(str(a.get("name", i)), a) for i, a in enumerate(attacks) if isinstance(a, dict)]
    else:
        rows = [(str(k), v) for k, v in attacks.items() if isinstance(v, dict)]
    if components:
        return rows
    parts = {str(c) for _, a in rows for c in (a.get("components") or []) if isinstance(c, str)}
    return [(k, a) for k, a in rows if k not in parts]


def certified(result: dict) -> tuple[list[float], list[float], dict]:
    """``(radii, certified accuracies, certify section)``; empty lists without a certify section."""
    sec = result.get("certify") or result.get("certification")
    if not isinstance(sec, dict):
        return [], [], {}
    ca = sec.get("certified_accuracy", {})
    if isinstance(ca, dict):
        pts = sorted((float(k), float(v)) for k, v in ca.items() if _num(k) is not None and _num(v) is not None)
    elif isinstance(ca, list) and isinstance(sec.get("radii"), list):
        pts = sorted(zip(map(float, sec["radii"]), map(float, ca)))
    else:
        pts = []
    return [p[0] for p in pts], [p[1] for p in pts], sec


def certify_ceiling(sec: dict) -> float | None:
    """The largest radius CERTIFY can return with the section's n and α: σ·Φ⁻¹(α^(1/n)) (Cohen et al.
    2019); recorded as ``max_certifiable_radius``, recomputed for results written before it was."""
    v = _num(sec.get("max_certifiable_radius"))
    if v is None and all(_num(sec.get(k)) is not None for k in ("sigma", "n", "alpha")):
        from ..smoothing.stats import max_radius
        v = max_radius(float(sec["sigma"]), int(sec["n"]), float(sec["alpha"]))
    return v
