"""The declared-defense part of a report: naive vs adaptive numbers and curves, and untrusted headlines.

Reads only the result dict: per threat ``defense``, ``naive`` (the autograd-only pass) and ``adaptive``
(BPDA/EOT + black-box) sections written by :mod:`advkit.evaluation.defended`, and ``trusted`` /
``untrusted_reasons`` written by :mod:`advkit.evaluation.trust`.
"""
from __future__ import annotations

import html

from matplotlib.figure import Figure

from ..threat import ThreatModel
from . import threats
from .plots import BAD, PALETTE, _png, _style

__all__ = ["defended_threats", "defense_curves", "markdown_lines", "html_section", "untrusted_lines"]


def defended_threats(result: dict) -> dict[str, dict]:
    return {t: s for t, s in threats(result).items() if isinstance(s.get("naive"), dict)}


def _pct(v) -> str:
    return "\u2014" if v is None else f"{100 * float(v):.1f}%"


def _curve(sec: dict | None) -> tuple[list[float], list[float]]:
    c = (sec or {}).get("curve") or {}
    return list(c.get("eps") or []), list(c.get("robust_accuracy") or [])


def defense_curves(result: dict) -> bytes | None:
    """Per defended threat: the naive and the adaptive robustness curve on one axis, headline points at ε."""
    ts = defended_threats(result)
    if not ts:
        return None
    fig = Figure(figsize=(5.2 * len(ts), 3.6))
    for i, (t, sec) in enumerate(ts.items()):
        ax = fig.add_subplot(1, len(ts), i + 1)
        eps = ThreatModel.parse(t).eps
        for label, part, color, style in (("naive (autograd)", sec["naive"], PALETTE[1], "--s"),
                                          ("adaptive (BPDA/EOT)", sec, PALETTE[0], "-o")):
            xs, ys = _curve(part)
            if xs:
                ax.plot(xs, ys, style, color=color, ms=3.5, lw=1.8, label=f"{label} curve")
        ax.plot([eps], [sec["naive"].get("robust_accuracy")], "D", ms=7, color=PALETTE[1],
                label=f"naive worst case: {_pct(sec['naive'].get('robust_accuracy'))}")
        ax.plot([eps], [sec.get("robust_accuracy")], "*", ms=14, color=BAD, zorder=5,
                label=f"headline (adaptive): {_pct(sec.get('robust_accuracy'))}")
        ax.axvline(eps, color="#9ca3af", lw=0.8, ls="--")
        ax.set_xlabel(f"\u03b5 ({t.split(':')[0]})")
        ax.set_title(f"{t} behind {sec.get('defense', {}).get('chain', '?')}", fontsize=11)
        _style(ax, ylabel="robust accuracy")
        ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2, numpoints=1)
    return _png(fig)


def _rows(result: dict):
    for t, sec in defended_threats(result).items():
        naive, adaptive = sec["naive"], sec.get("adaptive") or {}
        yield t, sec, naive, adaptive


def markdown_lines(result: dict, md) -> list[str]:
    """The Markdown section (``md`` escapes text) — empty when no defense was declared."""
    ts = list(_rows(result))
    if not ts:
        return []
    chain = (result.get("defense") or {}).get("chain") or ts[0][1].get("defense", {}).get("chain")
    lines = ["", f"### Declared defense `{md(chain)}`: naive vs adaptive", "",
             "| threat | naive (autograd) | adaptive (BPDA/EOT + black-box) | headline (worst case of both) |",
             "|---|---:|---:|---:|"]
    for t, sec, naive, adaptive in ts:
        lines.append(f"| `{md(t)}` | {_pct(naive.get('robust_accuracy'))} | {_pct(adaptive.get('robust_accuracy'))} "
                     f"| **{_pct(sec.get('robust_accuracy'))}** |")
    method = ts[0][3].get("method", "")
    lines += ["", f"Naive: every attack through autograd of the defended model, no EOT, no black-box attack. "
                  f"Adaptive: {md(method)}, plus Square. The headline is the adaptive worst case "
                  "(Athalye, Carlini & Wagner 2018)."]
    return lines


def untrusted_lines(result: dict, md) -> list[str]:
    out = []
    for t, sec in threats(result).items():
        if sec.get("trusted", True) is False:
            out += ["", f"**The robust accuracy at `{md(t)}` is not trustworthy**: the model looks masked, so it is "
                        "at best an upper bound (gates treat it as one):"]
            out += [f"- {md(r)}" for r in sec.get("untrusted_reasons") or []]
    return out


def html_section(result: dict, img) -> str:
    """The HTML section (``img(png, alt)`` embeds a figure) — empty when no defense was declared."""
    ts = list(_rows(result))
    if not ts:
        return ""
    e = html.escape
    rows = "".join(f"<tr><td><code>{e(t)}</code></td><td>{_pct(n.get('robust_accuracy'))}</td>"
                   f"<td>{_pct(a.get('robust_accuracy'))}</td><td class=\"worst\">{_pct(s.get('robust_accuracy'))}</td>"
                   f"<td>{e(str(a.get('method', '')))}</td></tr>" for t, s, n, a in ts)
    chain = ts[0][1].get("defense", {}).get("chain", "")
    return (f"<section id=\"defense\"><h2>Declared defense <code>{e(chain)}</code>: naive vs adaptive</h2>"
            "<table><tr><th>threat</th><th>naive (autograd)</th><th>adaptive</th><th>headline</th>"
            f"<th>adaptive attack</th></tr>{rows}</table>{img(defense_curves(result), 'naive vs adaptive curves')}"
            "<p class=\"note\">Naive: the attacks through autograd of the defended model (no BPDA, no EOT, no "
            "black-box attack). Adaptive: BPDA through the non-differentiable steps, EOT through the random ones, "
            "plus Square. The headline robust accuracy is the per-sample worst case over both "
            "(Athalye, Carlini &amp; Wagner 2018).</p></section>")
