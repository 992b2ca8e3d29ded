"""The history dashboard: one self-contained HTML page with every model version's clean and robust accuracy
over time (:func:`advkit.report.history_plots.trend`) and a table of the runs in the history database."""
from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_write
from . import history_plots
from .html_page import esc as _e, img as _img, page as _page, pct as _pct

__all__ = ["render_dashboard"]


def _dashboard_table(runs: list[dict]) -> str:
    ts = sorted({t for r in runs for t in (r.get("robust_accuracy") or {})})
    head = ("<tr><th>run</th><th class=\"l\">created</th><th class=\"l\">model</th><th class=\"l\">model hash</th>"
            "<th class=\"l\">git</th><th class=\"l\">status</th><th>clean</th>"
            + "".join(f"<th>{_e(t)}</th>" for t in ts) + "</tr>")
    rows = "".join(
        f"<tr><td>{_e(r.get('run_id'))}</td><td class=\"l\">{_e(str(r.get('created') or '')[:16].replace('T', ' '))}</td>"
        f"<td class=\"l\"><code>{_e(r.get('model'))}</code></td><td class=\"l\"><code>"
        f"{_e(str(r.get('model_hash') or '')[:10])}</code></td><td class=\"l\">{_e(str(r.get('git_commit') or '')[:8])}"
        f"</td><td class=\"l\">{_e(r.get('status'))}</td><td>{_pct(r.get('clean_accuracy'))}</td>"
        + "".join(f"<td>{_pct((r.get('robust_accuracy') or {}).get(t))}</td>" for t in ts) + "</tr>"
        for r in runs)
    return f"<table>{head}{rows}</table>"


def render_dashboard(store, path: str | Path | None = None, *, model: str | None = None) -> str:
    """Every model version's clean and robust accuracy over time, from the history ``store``."""
    runs = list(store.list_runs(model=model))
    trend = history_plots.trend([r for r in runs if r.get("clean_accuracy") is not None])
    models = sorted({str(r.get("model")) for r in runs})
    header = ("<header><div class=\"inner\"><h1>advkit dashboard</h1><dl>"
              f"<div><dt>runs</dt><dd>{len(runs)}</dd></div><div><dt>models</dt><dd>{_e(', '.join(models))}</dd>"
              "</div></dl></div></header>")
    body = ["<section id=\"trend\"><h2>Clean and robust accuracy over time</h2>"
            + (_img(trend, "trend") or "<p class=\"muted\">No finished runs yet.</p>")
            + "<p class=\"note\">Dashed: clean accuracy; solid, dotted, dash-dotted: robust accuracy per threat "
            "(the per-sample worst case over every attack of the run).</p></section>",
            f"<section id=\"runs\"><h2>Runs</h2>{_dashboard_table(runs)}</section>"]
    page = _page("advkit dashboard", header, body)
    if path is not None:
        atomic_write(path, page)
    return page
