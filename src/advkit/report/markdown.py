"""A compact Markdown summary of a result, for CI step summaries and pull-request comments.

One table (clean, FGSM, PGD, AutoAttack and the worst case per threat, each with its 95% interval),
the findings, and the gates.  GitHub-flavoured Markdown; text from the result is escaped so that
a model or attack name cannot break the table.
"""
from __future__ import annotations

import re

from . import defense
from ..profiles.grading import grade_label, grade_lines
from . import (NOT_CERTIFIABLE, accuracy_ci, attack_table, certified, certify_ceiling,
               clean_accuracy, data_name, findings, model_name, threats)

__all__ = ["render_markdown", "pct_ci"]

_ICON = {"error": "\u274c", "warning": "\u26a0\ufe0f", "info": "\u2139\ufe0f"}
# Headline columns: (column title, attack names that fill it, first match wins).
_COLUMNS = [("FGSM", ("fgsm",)), ("PGD", ("pgd", "pgd-20", "pgd20")),
            ("AutoAttack", ("autoattack", "autoattack-rand", "aa"))]


def _md(text: object) -> str:
    """Escape Markdown table/formatting characters and HTML angle brackets."""
    s = str(text).replace("\n", " ")
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_|\[\]])", r"\\\1", s)


def _code(text: object, *, cell: bool = False) -> str:
    """An inline code span of ``text``: literal (no backslash escapes, which code spans would show);
    a backtick inside gets a longer fence.  In a table ``cell`` a ``|`` is escaped as GFM asks (the
    one escape GFM removes inside code spans)."""
    s = str(text).replace("\n", " ")
    s = s.replace("|", "\\|") if cell else s
    fence = "`" * (max((len(m) for m in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def pct_ci(acc: float | None, ci: tuple[float, float] | None) -> str:
    if acc is None:
        return "\u2014"
    s = f"{100 * acc:.1f}%"
    return s + (f" ({100 * ci[0]:.1f}\u2013{100 * ci[1]:.1f})" if ci else "")


def _attack_cell(sec: dict, names: tuple[str, ...], n: int | None) -> str:
    attacks = dict(attack_table(sec))
    for name in names:
        if name in attacks and attacks[name].get("robust_accuracy") is not None:
            return pct_ci(float(attacks[name]["robust_accuracy"]), accuracy_ci(attacks[name], n))
    return "\u2014"


def _summary_table(result: dict) -> list[str]:
    n = result.get("n")
    clean = clean_accuracy(result)
    clean_cell = pct_ci(clean, accuracy_ci(result.get("clean") or clean, n))
    lines = ["| threat | clean | " + " | ".join(c for c, _ in _COLUMNS) + " | robust (worst case) |",
             "|---|" + "---:|" * (len(_COLUMNS) + 2)]
    for t, sec in threats(result).items():
        cells = [_attack_cell(sec, names, n) for _, names in _COLUMNS]
        ra = sec.get("robust_accuracy")
        worst = pct_ci(None if ra is None else float(ra), accuracy_ci(sec, n))
        note = " (upper bound)" if sec.get("upper_bound") else ""
        note += protocol_note(sec)
        note += " ❌ untrusted (looks masked)" if sec.get("trusted", True) is False else ""
        note += f" \u00b7 {_md(grade_label(sec['grade']))}" if isinstance(sec.get("grade"), dict) else ""
        lines.append(f"| {_code(t, cell=True)} | {clean_cell} | " + " | ".join(cells) + f" | **{worst}**{note} |")
    if not threats(result):
        lines.append(f"| \u2014 | {clean_cell} |" + " \u2014 |" * (len(_COLUMNS) + 1))
    return lines


def protocol_note(sec: dict) -> str:
    """" (reduced AutoAttack: …)" when the threat's AutoAttack is not the reference protocol."""
    proto = sec.get("protocol") or {}
    if not proto.get("name") or proto.get("reference"):
        return ""
    return f" ({_md(', '.join(proto.get('reasons') or []))}: not reference AutoAttack)"


def _other_attacks(result: dict) -> list[str]:
    known = {a for _, names in _COLUMNS for a in names}
    rows = []
    for t, sec in threats(result).items():
        for name, att in attack_table(sec, components=False):
            if name not in known and att.get("robust_accuracy") is not None:
                rows.append(f"- {_code(t)} {_md(name)}: {pct_ci(float(att['robust_accuracy']), None)}")
    return rows


def _grades(result: dict) -> list[str]:
    rows = grade_lines(result)
    if not rows:
        return []
    head = f"Grades on the `{_md(result.get('profile'))}` profile (see docs/profiles.md):"
    return ["", head] + [f"- `{_md(t)}` {_md(text)}" for t, text in rows]


def _findings(result: dict) -> list[str]:
    fs = findings(result)
    if not fs:
        return ["No findings: none of the checks for a flawed evaluation fired."]
    out = []
    for f in fs:
        sev = str(f.get("severity"))
        line = f"- {_ICON.get(sev, '')} **{_md(sev)}** {_code(f.get('code'))}: {_md(f.get('message', ''))}"
        if f.get("remedy") and sev != "info":
            line += f" \u2014 *fix:* {_md(f['remedy'])}"
        out.append(line)
    return out


def _gates(result: dict) -> list[str]:
    g = result.get("gates")
    if not isinstance(g, dict) or not (g.get("items") or g.get("message")):
        return []
    if not g.get("items"):
        return ["", "### Gates", "", _md(g["message"])]
    head = "passed \u2705" if g.get("passed") else "FAILED \u274c"
    out = ["", f"### Gates: {head}", ""] + ([_md(g["message"]), ""] if g.get("message") else [])
    for it in g["items"]:
        mark = "\u2705" if it.get("passed") else "\u274c"
        noisy = " \u26a0\ufe0f within noise" if it.get("noisy") else ""
        out.append(f"- {mark} {_md(it.get('message', it.get('name')))}{noisy}")
    return out


def _certify(result: dict) -> list[str]:
    radii, accs, sec = certified(result)
    if not radii:
        return []
    top = certify_ceiling(sec)
    head = "| radius | " + " | ".join(f"{r:g}" for r in radii) + " |"
    cells = [NOT_CERTIFIABLE if top is not None and r > top else f"{100 * a:.1f}%" for r, a in zip(radii, accs)]
    out = ["", f"### Certified accuracy (randomized smoothing, \u03c3 = {_md(sec.get('sigma', '?'))})", "", head,
           "|---|" + "---:|" * len(radii), "| certified | " + " | ".join(cells) + " |"]
    if top is not None:
        out += ["", f"Largest certifiable radius with n = {_md(sec.get('n'))}, \u03b1 = {_md(sec.get('alpha'))}: "
                f"**{top:.3f}** (\u03c3\u00b7\u03a6\u207b\u00b9(\u03b1^(1/n))); no image can be certified beyond it "
                "at this n, whatever the model."]
    return out


def render_markdown(result: dict) -> str:
    """The Markdown summary of ``result`` (a result.json dict)."""
    title = f"## advkit robustness: {_code(model_name(result))} on {_code(data_name(result))}"
    meta = (f"n = {result.get('n', '?')} \u00b7 seed = {result.get('seed', '?')}"
            + (f" \u00b7 run {_md(result['run_id'])}" if result.get("run_id") is not None else "")
            + (f" \u00b7 {_md(result['created'])}" if result.get("created") else ""))
    lines = [title, "", meta, ""] + _summary_table(result)
    lines += ["", "Accuracies with 95% binomial confidence intervals; *robust* is the per-sample worst case "
              "over every attack run."]
    lines += defense.untrusted_lines(result, _md)
    lines += defense.markdown_lines(result, _md)
    lines += _grades(result)
    other = _other_attacks(result)
    if other:
        lines += ["", "Other attacks:"] + other
    lines += _certify(result)
    lines += ["", "### Findings", ""] + _findings(result)
    lines += _gates(result)
    return "\n".join(lines) + "\n"
