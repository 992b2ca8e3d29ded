"""``advkit history list|show|compare|dashboard``: the runs kept in the history database."""
from __future__ import annotations

import click

from .report import db_option, esc_rows, load_target, open_store, write_text


@click.group("history")
def history() -> None:
    """Runs kept in the history database (--db): list, show, compare, dashboard."""


@history.command("list")
@click.option("--model", default=None, help="Only runs of this model name.")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@db_option
def list_runs(model: str | None, limit: int, as_json: bool, db: str) -> None:
    """List the newest runs: id, date, model, status, clean and robust accuracy."""
    from .render import console, pct, print_json, table

    with open_store(db) as store:
        runs = store.list_runs(model=model, limit=limit)
        for r in runs:  # threats whose number came from the screening protocol, not from AutoAttack
            r["screening"] = _screening_threats(store.metrics(r["run_id"]))
    if as_json:
        print_json(runs)
        return
    # one line per threat (and per certified radius) inside a cell: the table fits 80 columns however
    # many threats the runs have; the model hash is in `history show` and --json
    rows = [[_run_cell(r), str(r.get("created") or "")[:16].replace("T", " "), r.get("model"),
             pct(r.get("clean_accuracy")), _results_cell(r)] for r in runs]
    console.print(table(f"runs in {store.path}", ["run", "created", "model", "clean", "robust · certified"],
                        esc_rows(rows)))
    if any(r["screening"] for r in runs):
        console.print("† the screening protocol (screening-malt: APGD-CE → MALT-targeted APGD-T), not AutoAttack")
    if any(v is False for r in runs for v in (r.get("reference_protocol") or {}).values()):
        console.print("* not the reference AutoAttack protocol (reduced budget, custom, screening or skipped): "
                      "not comparable with published numbers")


def _screening_threats(metrics: dict) -> list[str]:
    head, tail = "attack_accuracy[", "][screening]"
    return sorted(n[len(head):-len(tail)] for n in metrics if n.startswith(head) and n.endswith(tail))


def _run_cell(r: dict) -> str:
    return str(r["run_id"]) + ("" if r.get("status") == "complete" else f" ({r.get('status')})")


def _results_cell(r: dict) -> str:
    from .render import pct
    ref = r.get("reference_protocol") or {}
    mark = lambda t: "†" if t in r.get("screening", ()) else ("*" if ref.get(t) is False else "")  # noqa: E731
    lines = [f"{t} {pct(v)}{mark(t)}" for t, v in (r.get("robust_accuracy") or {}).items()]
    cert = r.get("certified_accuracy") or {}
    lines += [f"certified r={float(k):g} {pct(v)}" for k, v in sorted(cert.items(), key=lambda kv: float(kv[0]))]
    return "\n".join(lines)


@history.command("show")
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result.json.")
@db_option
def show(run: str, as_json: bool, db: str) -> None:
    """Show one run (an id or 'latest'; a RESULT.json or RUN_DIR works too)."""
    from rich.markdown import Markdown

    from ..report.markdown import render_markdown
    from .render import console, print_json

    loaded = load_target(run, db)
    if as_json:
        print_json(loaded.result)
    else:
        console.print(Markdown(render_markdown(loaded.result)))


def comparison_rows(a: dict, b: dict) -> list[tuple[str, float | None, float | None]]:
    """``(metric, value in a, value in b)`` for clean accuracy, each shared threat and its attacks."""
    from ..report import attack_table, certified, certify_ceiling, clean_accuracy, threats

    rows = [("clean_accuracy", clean_accuracy(a), clean_accuracy(b))]
    (ra, acc_a, sa), (rb, acc_b, sb) = certified(a), certified(b)
    top = min((c for c in (certify_ceiling(sa), certify_ceiling(sb)) if c is not None), default=None)
    for r, va in zip(ra, acc_a):
        if r in rb and (top is None or r <= top):
            rows.append((f"certified_accuracy[{r:g}]", va, acc_b[rb.index(r)]))
    ta, tb = threats(a), threats(b)
    for t in [t for t in ta if t in tb]:
        rows.append((f"robust_accuracy[{t}]", ta[t].get("robust_accuracy"), tb[t].get("robust_accuracy")))
        atts_b = dict(attack_table(tb[t], components=False))
        for name, att in attack_table(ta[t], components=False):
            if name in atts_b:
                rows.append((f"  {name}[{t}]", att.get("robust_accuracy"), atts_b[name].get("robust_accuracy")))
        for part in ("naive", "adaptive"):  # declared defenses: both passes
            if isinstance(ta[t].get(part), dict) or isinstance(tb[t].get(part), dict):
                rows.append((f"  {part}[{t}]", (ta[t].get(part) or {}).get("robust_accuracy"),
                             (tb[t].get(part) or {}).get("robust_accuracy")))
    return rows


def _delta(va, vb) -> str:
    return "\u2014" if va is None or vb is None else f"{100 * (vb - va):+.1f}pp"


@history.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--max-drop", default="2pp", show_default=True,
              help="Largest allowed drop from A to B of clean and of each threat's robust accuracy.")
@click.option("--allow-different-specs", is_flag=True,
              help="Compare runs of different specs or data anyway (the verdict is flagged as not comparable).")
@db_option
def compare_runs(run_a: str, run_b: str, max_drop: str, allow_different_specs: bool, db: str) -> None:
    """Compare RUN_A (baseline) with RUN_B; exit 1 when B regressed by more than --max-drop.

    Runs of different specs (or data) are refused with exit 2 unless --allow-different-specs.
    """
    from ..gates import check_gates
    from .gate import check_comparable, render_gates
    from .render import console, pct, table

    a, b = load_target(run_a, db), load_target(run_b, db)
    flagged = check_comparable(a.result, b.result, f"A ({a.source})", f"B ({b.source})", allow_different_specs)
    rows = [[m, pct(va), pct(vb), _delta(va, vb)] for m, va, vb in comparison_rows(a.result, b.result)]
    console.print(table(f"A = {a.source}  vs  B = {b.source}", ["metric", "A", "B", "B \u2212 A"], esc_rows(rows)))
    report = check_gates(b.result, [], a.result, max_drop=max_drop, warn=False)
    render_gates(report, flagged=flagged)
    if not report.passed:
        raise click.exceptions.Exit(1)


@history.command("dashboard")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The HTML page to write.")
@click.option("--model", default=None, help="Only runs of this model name.")
@db_option
def dashboard(out: str, model: str | None, db: str) -> None:
    """Write an HTML dashboard: every model version's clean and robust accuracy over time."""
    from ..report.dashboard import render_dashboard
    from .render import err_console

    with open_store(db) as store:
        page = render_dashboard(store, model=model)
    write_text(page, out)
    err_console.print(f"wrote dashboard to {out}")
