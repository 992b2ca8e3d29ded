"""``advkit gate RUN [--require EXPR ...] [--max-drop 2pp] [--baseline latest|RUN|none] [--junit F]``.

Exit code 0 when every gate passes, 1 when one fails, 2 for a malformed expression.  Without
``--require``/``--max-drop``/``--clean-floor`` the gates of the run's spec apply, else the defaults
(clean accuracy floor, robust accuracy may drop at most 2pp against the latest run of the same spec).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import click

from ..atomic import atomic_write
from ..errors import GateNoiseWarning
from .report import Loaded, db_option, load_target, open_store


def _spec_gates(result: dict) -> tuple[list[str], object, float | None] | None:
    spec = result.get("spec") if isinstance(result.get("spec"), dict) else {}
    g = spec.get("gates") if isinstance(spec.get("gates"), dict) else None
    if not g:
        return None
    return list(g.get("require") or []), g.get("max_drop"), g.get("clean_floor")


def build_gates(result: dict, require: tuple[str, ...], max_drop: str | None, clean_floor: float | None):
    """(gates, max_drop) from the options, else the run's spec, else :func:`advkit.gates.default_gates`."""
    from ..gates import Gate, RegressionGate, default_gates, parse_drop, parse_gate

    if require or max_drop is not None or clean_floor is not None:
        gates = [parse_gate(r) for r in require]
        if clean_floor is not None:
            gates.append(Gate("clean_accuracy", ">=", clean_floor))
        return gates, max_drop
    spec = _spec_gates(result)
    if spec is None:
        return default_gates(), None
    req, drop, floor = spec  # as the pipeline checks them: the regression covers robust accuracy
    gates = [parse_gate(r) for r in req]
    if floor is not None:
        gates.append(Gate("clean_accuracy", ">=", float(floor)))
    if drop is not None:
        gates.append(RegressionGate(max_drop=parse_drop(drop), metrics=("robust_accuracy",)))
    return gates, None


def find_baseline(loaded: Loaded, baseline: str, db: str) -> dict | None:
    """The baseline result: ``none``; a run id, directory or file; or ``latest`` = the newest other
    complete run of the same model name and spec hash in ``db`` (None when there is none yet)."""
    if baseline == "none":
        return None
    if baseline != "latest":
        return load_target(baseline, db).result
    if not Path(db).exists():
        return None
    r = loaded.result
    name = r.get("model_name") or r.get("model")
    with open_store(db) as store:
        return store.latest(str(name), r.get("spec_hash"), exclude=loaded.run_id)


def render_gates(report) -> None:
    from rich.markup import escape

    from .render import console, err_console

    for it in report.items:
        mark = "[green]PASS[/green]" if it.passed else "[red]FAIL[/red]"
        console.print(f"{mark} {escape(it.message)}", soft_wrap=True)
        if it.noisy:
            err_console.print(f"[yellow]warning:[/yellow] {escape(it.name)}: the margin {it.margin:+.3f} is inside the "
                              "95% sampling confidence interval; evaluate more samples for a firm verdict", soft_wrap=True)
    if not report.items:
        console.print("no gates to check")
    verdict = "[green]all gates passed[/green]" if report.passed else \
        f"[red]{len(report.failures)} of {len(report.items)} gates failed[/red]"
    console.print(verdict)


@click.command("gate")
@click.argument("target")
@click.option("--require", "require", multiple=True, metavar="EXPR",
              help="A gate like 'robust_accuracy[linf:0.3] >= 0.85' (repeatable).")
@click.option("--max-drop", default=None, help="Regression gate: maximum drop against the baseline, e.g. 2pp.")
@click.option("--clean-floor", type=click.FloatRange(0, 1), default=None, help="Minimum clean accuracy.")
@click.option("--baseline", default="latest", show_default=True,
              help="'latest' (same model and spec in --db), a run id, a RESULT.json/RUN_DIR, or 'none'.")
@click.option("--junit", type=click.Path(dir_okay=False), default=None, help="Also write the gates as JUnit XML.")
@click.option("--json", "as_json", is_flag=True, help="Print the gate report as JSON.")
@db_option
def gate(target, require, max_drop, clean_floor, baseline, junit, as_json, db) -> None:
    """Check TARGET (a run id/'latest' in --db, a RESULT.json or a RUN_DIR) against gates; exit 1 on failure."""
    from ..gates import RegressionGate, check_gates, gates_to_junit
    from .render import print_json

    loaded = load_target(target, db)
    gates, drop = build_gates(loaded.result, require, max_drop, clean_floor)
    base = find_baseline(loaded, baseline, db)
    if base is None and (drop is not None or any(isinstance(g, RegressionGate) for g in gates)):
        from .render import err_console
        err_console.print("[yellow]note:[/yellow] no baseline run to compare with; regression gates skipped")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GateNoiseWarning)  # rendered below, once
        report = check_gates(loaded.result, gates, base, max_drop=drop)
    if junit:
        atomic_write(junit, gates_to_junit(report))
    if as_json:
        print_json(report.to_dict())
    else:
        render_gates(report)
    if not report.passed:
        raise click.exceptions.Exit(1)
