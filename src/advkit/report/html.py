"""One self-contained HTML report page per result (the history dashboard is :mod:`advkit.report.dashboard`).

The page embeds its figures as base64 PNG data URIs and its CSS inline: no scripts, fonts or any
other external resource, so it can be attached to a CI run or mailed as one file.  Every string
that comes from a result is escaped with :func:`html.escape`.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..atomic import atomic_write
from ..profiles.grading import grade_label, grade_lines
from . import (NOT_CERTIFIABLE, accuracy_ci, attack_table, certified, certify_ceiling, class_names,
               clean_accuracy, data_name, findings, model_name, per_class, threats)
from . import defense, plots
from .html_page import esc as _e, img as _img, page as _page, pct as _pct

__all__ = ["render_html"]


def _header(result: dict) -> str:
    m = result.get("model") if isinstance(result.get("model"), dict) else {"ref": result.get("model")}
    versions = _versions(result)
    meta = [("data", data_name(result)), ("n", result.get("n")), ("seed", result.get("seed")),
            ("date", result.get("created") or result.get("date")), ("run", result.get("run_id")),
            ("model hash", str(m.get("hash") or result.get("model_hash") or "")[:12]),
            ("git", str(result.get("git_commit") or versions.get("git_commit") or "")[:10]),
            ("advkit", versions.get("advkit") or result.get("advkit_version")), ("torch", versions.get("torch"))]
    dl = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in meta if v not in (None, ""))
    ref = m.get("ref") if m.get("ref") and m.get("ref") != model_name(result) else None
    return (f"<header><div class=\"inner\"><h1>Robustness report: <code>{_e(model_name(result))}</code></h1>"
            + (f"<div class=\"muted\">{_e(ref)}</div>" if ref else "") + f"<dl>{dl}</dl></div></header>")


def _cards(result: dict) -> str:
    g = result.get("gates") if isinstance(result.get("gates"), dict) else None
    cards = [("clean accuracy", _pct(clean_accuracy(result)))]
    cards += [(f"robust {t}", _pct(s.get("robust_accuracy"))) for t, s in threats(result).items()]
    fs = findings(result)
    worst = next((f["severity"] for f in fs), None)
    cards.append(("findings", f'<span class="badge {_sev_class(worst)}">{len(fs)}</span>'))
    if g and g.get("items"):
        ok = g.get("passed")
        cards.append(("gates", f'<span class="badge {"ok" if ok else "bad"}">{"passed" if ok else "failed"}</span>'))
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="k">{_e(k)}</div><div class="v">{v}</div></div>' for k, v in cards) + "</div>"


def _sev_class(sev) -> str:
    return {"error": "bad", "warning": "warn", "info": "info"}.get(str(sev), "ok")


def _summary(result: dict) -> str:
    n, ts = result.get("n"), threats(result)
    names = list(dict.fromkeys(a for s in ts.values() for a, _ in attack_table(s, components=False)))
    head = "<tr><th>threat</th><th>clean</th>" + "".join(f"<th>{_e(a)}</th>" for a in names) + \
        "<th>robust (worst case)</th></tr>"
    clean = _pct(clean_accuracy(result), accuracy_ci(result.get("clean") or clean_accuracy(result), n))
    rows = []
    for t, s in ts.items():
        att = dict(attack_table(s))
        cells = "".join(f"<td>{_pct(att[a].get('robust_accuracy'), accuracy_ci(att[a], n))}</td>" if a in att
                        else "<td>\u2014</td>" for a in names)
        bound = ' <span class="badge warn">upper bound</span>' if s.get("upper_bound") else ""
        proto = s.get("protocol") or {}
        if proto.get("name") and not proto.get("reference"):
            bound += f' <span class="badge warn">{_e(proto["name"])}</span>'
        if s.get("trusted", True) is False:
            why = "; ".join(s.get("untrusted_reasons") or [])
            bound += f' <span class="badge bad" title="{_e(why)}">untrusted: looks masked</span>'
        if isinstance(s.get("naive"), dict):
            bound += f' <span class="badge info">adaptive; naive {_pct(s["naive"].get("robust_accuracy"))}</span>'
        bound += _grade_badge(s.get("grade"))
        rows.append(f"<tr><td><code>{_e(t)}</code></td><td>{clean}</td>{cells}"
                    f"<td class=\"worst\">{_pct(s.get('robust_accuracy'), accuracy_ci(s, n))}{bound}</td></tr>")
    if not ts:
        rows.append(f"<tr><td>\u2014</td><td>{clean}</td><td>\u2014</td></tr>")
    return (f"<section id=\"summary\"><h2>Summary</h2>{_cards(result)}<table>{head}{''.join(rows)}</table>"
            "<p class=\"note\">Accuracy with its 95% binomial confidence interval. <b>Robust</b> is the per-sample "
            f"worst case over every attack run; the columns are each attack on its own.</p>{_grades(result)}</section>")


def _grade_badge(g) -> str:
    if not isinstance(g, dict):
        return ""
    kind = "info" if not g.get("grade") else ("warn" if g.get("uncertain") or g.get("clean_ok") is False else "ok")
    return f' <span class="badge {kind}">{_e(grade_label(g))}</span>'


def _grades(result: dict) -> str:
    rows = grade_lines(result)
    if not rows:
        return ""
    items = "".join(f"<li><code>{_e(t)}</code> {_e(text)}</li>" for t, text in rows)
    return (f"<p class=\"note\">Grades on the <b>{_e(result.get('profile'))}</b> profile "
            f"(docs/profiles.md):</p><ul class=\"grades\">{items}</ul>")


def _floor(result: dict, sec: dict) -> float | None:
    spec = result.get("spec") if isinstance(result.get("spec"), dict) else {}
    pc = ((spec.get("stages") or {}).get("per_class") or {}) if isinstance(spec.get("stages"), dict) else {}
    for src in (sec, result, pc, spec):
        for key in ("per_class_floor", "per_class_min", "min_accuracy", "min_class_accuracy"):
            if isinstance(src, dict) and isinstance(src.get(key), (int, float)):
                return float(src[key])
    return None


def _per_class(result: dict) -> str:
    parts, names = [], class_names(result)
    for t, sec in threats(result).items():
        floor = _floor(result, sec)
        png = plots.per_class_bars(result, t, floor)
        if not png:
            continue
        flagged = [f"{lab} ({100 * a:.1f}%)" for lab, a in per_class(sec, names) if floor is not None and a < floor]
        note = (f"<p class=\"note\">Classes under the {100 * floor:.0f}% minimum: "
                f"<b>{_e(', '.join(flagged) or 'none')}</b></p>") if floor is not None else ""
        parts.append(f"<h3><code>{_e(t)}</code></h3>{_img(png, f'per-class robust accuracy {t}')}{note}")
    return f"<section id=\"per-class\"><h2>Per-class robust accuracy</h2>{''.join(parts)}</section>" if parts else ""


def _figures(result: dict, samples: dict | None) -> list[str]:
    out = []
    curve = plots.robustness_curve(result)
    if curve:
        out.append(f"<section id=\"curve\"><h2>Robustness curve</h2>{_img(curve, 'robustness curve')}"
                   "<p class=\"note\">Robust accuracy against the budget \u03b5; the markers at the threat's \u03b5 are "
                   "the headline attacks and the star is the per-sample worst case.</p></section>")
    out.append(_per_class(result))
    contrib = plots.attack_contribution(result)
    if contrib:
        out.append(f"<section id=\"contribution\"><h2>Per-attack contribution</h2>{_img(contrib, 'contribution')}"
                   f"<p class=\"note\">{_e(_contribution_note(result))}</p></section>")
    gal = plots.gallery(samples, class_names(result)) if samples else None
    if gal:
        threat = samples.get("gallery_threat")
        threat = str(threat.item() if hasattr(threat, "item") else threat) if threat is not None else ""
        out.append(f"<section id=\"gallery\"><h2>Adversarial examples {_e(threat)}</h2>{_img(gal, 'gallery')}"
                   "<p class=\"note\">Top: clean input with its prediction and confidence; middle: the perturbation, "
                   "amplified by the factor shown (grey = 0); bottom: the adversarial input.</p></section>")
    cert = plots.certified_curve(result)
    if cert:
        out.append(f"<section id=\"certify\"><h2>Certified accuracy</h2>{_img(cert, 'certified accuracy')}"
                   f"{_certify_facts(result)}</section>")
    return out


def _certify_facts(result: dict) -> str:
    sec = result.get("certify") or {}
    facts = [("\u03c3", sec.get("sigma")), ("n\u2080", sec.get("n0")), ("n", sec.get("n")), ("\u03b1", sec.get("alpha")),
             ("samples", sec.get("count")), ("average certified radius", _num(sec.get("average_radius"))
                                              if sec.get("average_radius") is not None else None),
             ("abstained", _pct(sec.get("abstain_rate")) if sec.get("abstain_rate") is not None else None)]
    top = certify_ceiling(sec)
    if top is not None:
        facts.append(("largest certifiable radius", f"{top:.3f}"))
    text = " \u00b7 ".join(f"{_e(k)} = {v if k == 'abstained' else _e(v)}" for k, v in facts if v is not None)
    radii, accs, _ = certified(result)
    cells = "".join(f"<tr><td>{r:g}</td><td>{_e(NOT_CERTIFIABLE) if top is not None and r > top else _pct(a)}</td></tr>"
                    for r, a in zip(radii, accs))
    return (f"<table class=\"certify\"><thead><tr><th>radius</th><th>certified accuracy</th></tr></thead>"
            f"<tbody>{cells}</tbody></table>"
            f"<p class=\"note\">Randomized smoothing (Cohen et al. 2019), L2 radii: {text}. A sample counts at "
            "radius r when the smoothed classifier is correct and certified at least r; no radius above the "
            "largest certifiable one (\u03c3\u00b7\u03a6\u207b\u00b9(\u03b1^(1/n))) can be certified at this n.</p>")


def _contribution_note(result: dict) -> str:
    exact = all(plots.contribution_counts(result, t)[1] for t in threats(result))
    how = ("from the per-sample record of the first attack that broke each sample" if exact else
           "estimated from the per-attack robust accuracies, taken as a cascade in the order the attacks ran")
    return f"Samples misclassified clean, broken by each attack, and still robust; {how}."


def _findings(result: dict) -> str:
    fs = findings(result)
    if not fs:
        body = "<p>No findings: none of the checks for a flawed evaluation fired.</p>"
    else:
        body = "".join(
            f"<div class=\"finding {_e(f.get('severity'))}\"><div class=\"t\"><span class=\"badge "
            f"{_sev_class(f.get('severity'))}\">{_e(f.get('severity'))}</span> <code>{_e(f.get('code'))}</code> "
            f"{_e(f.get('title', ''))}</div><div class=\"m\">{_e(f.get('message'))}</div>"
            + (f"<div class=\"cr\"><b>Cause:</b> {_e(f['cause'])}</div>" if f.get("cause") else "")
            + (f"<div class=\"cr\"><b>Remedy:</b> {_e(f['remedy'])}</div>" if f.get("remedy") else "")
            + "</div>" for f in fs)
    return f"<section id=\"findings\"><h2>Findings</h2>{body}</section>"


def _gates(result: dict) -> str:
    g = result.get("gates")
    note = f"<p class=\"note\">{_e(g['message'])}</p>" if isinstance(g, dict) and g.get("message") else ""
    if not isinstance(g, dict) or not g.get("items"):
        return f"<section id=\"gates\"><h2>Gates</h2><p class=\"muted\">No gates were checked.</p>{note}</section>"
    rows = "".join(
        f"<tr class=\"{'' if it.get('passed') else 'fail'}\"><td><code>{_e(it.get('name'))}</code></td>"
        f"<td class=\"l\">{_e(it.get('expected'))}</td><td>{_e(_num(it.get('actual')))}</td>"
        f"<td>{_e(_num(it.get('margin'), signed=True))}</td><td><span class=\"badge "
        f"{'ok' if it.get('passed') else 'bad'}\">{'pass' if it.get('passed') else 'FAIL'}</span>"
        + (' <span class="badge warn">within noise</span>' if it.get("noisy") else "") + "</td></tr>"
        for it in g["items"])
    head = "<tr><th>gate</th><th class=\"l\">expected</th><th>actual</th><th>margin</th><th>verdict</th></tr>"
    return f"<section id=\"gates\"><h2>Gates</h2><table>{head}{rows}</table>{note}</section>"


def _num(v, signed: bool = False) -> str:
    if v is None:
        return "\u2014"
    return f"{float(v):+.3f}" if signed else f"{float(v):.3f}"


def _config(result: dict) -> str:
    rows = []
    for t, sec in threats(result).items():
        for name, att in attack_table(sec):
            cfg = att.get("config") or {}
            cfg_txt = ", ".join(f"{k}={v}" for k, v in _flat(cfg)) if isinstance(cfg, dict) else str(cfg)
            secs = att.get("seconds")
            rows.append(f"<tr><td><code>{_e(t)}</code></td><td class=\"l\">{_e(name)}</td>"
                        f"<td class=\"l cfg\"><code>{_e(cfg_txt)}</code></td>"
                        f"<td>{'' if secs is None else f'{float(secs):.2f}'}</td>"
                        f"<td>{_e(att.get('model_calls', ''))}</td></tr>")
    versions = {k: v for k, v in _versions(result).items() if k not in ("git_commit", "platform")}
    vtxt = ", ".join(f"{k} {v}" for k, v in versions.items()) if isinstance(versions, dict) else str(versions)
    head = ("<tr><th>threat</th><th class=\"l\">attack</th><th class=\"l\">configuration</th><th>seconds</th>"
            "<th>model calls</th></tr>")
    return (f"<section id=\"config\"><h2>Attack configuration</h2><table>{head}{''.join(rows)}</table>"
            f"<p class=\"note\">seed {_e(result.get('seed'))}; library versions: {_e(vtxt or 'not recorded')}</p>"
            f"<details><summary>full result.json</summary><pre><code>{_e(_json(result))}</code></pre></details>"
            "</section>")


def _versions(result: dict) -> dict:
    v = result.get("environment") or result.get("versions") or result.get("library_versions") or {}
    return v if isinstance(v, dict) else {}


def _flat(cfg: dict, prefix: str = "") -> list[tuple[str, str]]:
    """``{"attack": {"steps": 20}, "restarts": 5}`` → ``[("attack.steps", "20"), ("restarts", "5")]``."""
    out = []
    for k, v in cfg.items():
        if isinstance(v, dict):
            out += _flat(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", json.dumps(v, default=str) if isinstance(v, list) else str(v)))
    return out


def _json(result: dict) -> str:
    return json.dumps(result, indent=1, default=str)[:200_000]


def render_html(result: dict, samples: dict | None = None, path: str | Path | None = None) -> str:
    """The report page of ``result`` (and the gallery from ``samples``); written to ``path`` if given."""
    body = [_summary(result), defense.html_section(result, _img), *_figures(result, samples), _findings(result),
            _gates(result), _config(result)]
    page = _page(f"advkit report: {model_name(result)}", _header(result), body)
    if path is not None:
        atomic_write(path, page)
    return page
