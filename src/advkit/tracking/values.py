"""What an evaluation logs to an experiment tracker: parameters, metrics, tags and artifact files, read
from the ``result.json`` dict (the results contract, DESIGN.md) with the accessors of :mod:`advkit.report`.

Every key starts with ``advkit/`` (MLflow groups such keys), so an evaluation logged into a training run
never mixes with that run's own ``accuracy`` or ``seed``.  A threat in a key is its text with every
character MLflow does not allow in a key written as ``_`` (``linf:8/255`` → ``linf_8_255``); the
``advkit/threats`` parameter lists the threats as written.
"""
from __future__ import annotations

import re

from .. import report as R

PREFIX = "advkit/"


def key(*parts: str) -> str:
    """``advkit/<part>/<part>``, each part reduced to the characters MLflow keys allow (no ``/`` inside a part)."""
    return PREFIX + "/".join(re.sub(r"[^A-Za-z0-9_.\- ]", "_", str(p)) for p in parts)


def _threats(result: dict) -> dict[str, dict]:
    return R.threats(result)


def _protocol(section: dict) -> str:
    p = section.get("protocol") or {}
    return str(p.get("name") or "none") + ("" if p.get("reference") else " (not reference)")


def params(result: dict) -> dict[str, str]:
    """Model REF (with factory arguments) and hashes, data REF and hash, threats, the protocol per threat,
    seed, device, advkit version; values as text, missing ones left out."""
    env = result.get("environment") or {}
    spec = result.get("spec") or {}
    raw = {"model": result.get("model"), "model_hash": result.get("model_hash"), "weights": result.get("weights"),
           "data": result.get("data"), "data_hash": result.get("data_hash"), "split": result.get("split"),
           "n": result.get("n"), "seed": result.get("seed"), "threats": ", ".join(_threats(result)),
           "profile": result.get("profile"), "device": env.get("device"),
           "defense": (result.get("defense") or {}).get("chain"),
           "advkit_version": result.get("advkit_version"), "code_version": env.get("code_version"),
           "spec_hash": result.get("spec_hash"),
           "model_args": ", ".join(f"{k}={v}" for k, v in sorted((spec.get("model_args") or {}).items())) or None}
    out = {key(k): str(v) for k, v in raw.items() if v is not None}
    for t, sec in _threats(result).items():
        out[key("protocol", t)] = _protocol(sec)
    return out


def _min_per_class(section) -> float | None:
    accs = [a for _, a in R.per_class(section) if a is not None]
    return min(accs) if accs else None


def metrics(result: dict) -> list[tuple[str, float, int]]:
    """``(key, value, step)``: clean and top-5 accuracy, robust accuracy per threat (the worst case over
    its attacks) and per attack, the worst case over threats, the per-class minimum (clean and per
    threat), the ε curve as a stepped metric (step i: ``curve/<t>`` the accuracy at ``curve_eps/<t>``),
    and certified accuracy per radius."""
    out: list[tuple[str, float, int]] = []
    clean = result.get("clean") or {}
    out += [(key("clean_accuracy"), clean.get("accuracy"), 0),
            (key("clean_top5_accuracy"), (clean.get("top5") or {}).get("accuracy"), 0),
            (key("per_class_min", "clean"), _min_per_class(clean), 0)]
    worst = []
    for t, sec in _threats(result).items():
        worst.append(sec.get("robust_accuracy"))
        out.append((key("robust_accuracy", t), sec.get("robust_accuracy"), 0))
        out += [(key("robust_accuracy", t, name), a.get("robust_accuracy"), 0)
                for name, a in (sec.get("attacks") or {}).items() if isinstance(a, dict)]
        out.append((key("per_class_min", t), _min_per_class(sec), 0))
        eps, acc, _ = R.curve(result, t)
        out += [(key("curve", t), a, i) for i, a in enumerate(acc)]
        out += [(key("curve_eps", t), e, i) for i, e in enumerate(eps)]
    worst = [w for w in worst if w is not None]
    if worst:
        out.append((key("worst_case_robust_accuracy"), min(worst), 0))
    radii, accs, _ = R.certified(result)
    out += [(key("certified_accuracy", f"r{r:g}"), a, 0) for r, a in zip(radii, accs)]
    return [(k, float(v), s) for k, v, s in out if v is not None]


def tags(result: dict) -> dict[str, str]:
    """Grade, trusted and upper-bound per threat, the finding codes, the gate verdict, the local run id."""
    from ..results.protocol import protocol_status
    out = {}
    for t, sec in _threats(result).items():
        grade = sec.get("grade") or {}
        reference, _ = protocol_status(sec)
        trusted = sec.get("trusted", True) is not False
        out[key("grade", t)] = str(grade.get("grade") or "none")
        out[key("trusted", t)] = str(trusted).lower()
        out[key("upper_bound", t)] = str(bool(sec.get("upper_bound")) or not reference or not trusted).lower()
    findings = [f"{f.get('severity')}:{f.get('code')}" for f in result.get("findings") or []]
    out[key("findings")] = (", ".join(findings) or "none")[:5000]
    gates = result.get("gates") or {}
    out[key("gates")] = "passed" if gates.get("passed", True) else "failed"
    if result.get("run_id") is not None:
        out[key("history_run")] = str(result["run_id"])
    if result.get("output"):
        out[key("output")] = str(result["output"])
    return out


def plots(result: dict, samples: dict | None = None) -> dict[str, bytes]:
    """``{file name: PNG bytes}`` of the report's plots (a plot without data is left out)."""
    from ..report import plots as P
    out = {"robustness_curve.png": P.robustness_curve(result), "attack_contribution.png": P.attack_contribution(result),
           "certified_curve.png": P.certified_curve(result)}
    for t in _threats(result):
        out[f"per_class_{key(t)[len(PREFIX):]}.png"] = P.per_class_bars(result, t)
    if samples:
        out["gallery.png"] = P.gallery(samples, (result.get("clean") or {}).get("classes"))
    return {k: v for k, v in out.items() if v}


__all__ = ["params", "metrics", "tags", "plots", "key", "PREFIX"]
