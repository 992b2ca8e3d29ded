"""``advkit compare RUN_OR_RESULT... [--threat T] [--plot F.png]``: the clean-vs-robust trade-off.

Each argument is a run id / ``latest`` in ``--db``, a RESULT.json, a RUN_DIR, or a model name
(``zoo:NAME`` works too) whose latest complete run in ``--db`` is used.
"""
from __future__ import annotations

from pathlib import Path

import click

from ..atomic import atomic_write
from ..errors import ConfigError, StoreError
from ..results.backends import display
from .report import Loaded, db_exists, db_option, esc_rows, load_target, open_store


def _load(ref: str, db: str) -> Loaded:
    try:
        return load_target(ref, db)
    except StoreError as first:
        if not db_exists(db):
            raise
        with open_store(db) as store:
            for name in dict.fromkeys([ref, ref.split(":", 1)[-1]]):
                result = store.latest(name)
                if result is not None:
                    return Loaded(result, {}, result.get("run_id"), f"latest run of {name}")
        raise StoreError(f"{first}; and no complete run of a model named {ref!r} in {display(db)}") from None


def tradeoff_rows(loaded: list[Loaded], threat: str | None) -> tuple[str, list[dict]]:
    """The threat compared (given, else the first one every result has) and one row per result."""
    from ..report import accuracy_ci, canonical_threat, clean_accuracy, model_name, threats

    common = [t for t in threats(loaded[0].result) if all(t in threats(x.result) for x in loaded)]
    if threat is not None:
        threat = canonical_threat(threat)
        if threat not in common:
            raise ConfigError(f"--threat: expected a threat that every result has ({common or 'none'}), "
                              f"got {threat!r}")
    elif not common:
        raise ConfigError("expected results that share a threat model, got none in common")
    threat = threat or common[0]
    rows = []
    for x in loaded:
        r, sec = x.result, threats(x.result)[threat]
        aa = (sec.get("attacks") or {}).get("autoattack") or {}
        rows.append({"label": model_name(r) + (f" #{x.run_id}" if x.run_id is not None else ""), "source": x.source,
                     "n": r.get("n"), "clean": clean_accuracy(r), "robust": sec.get("robust_accuracy"),
                     "autoattack": aa.get("robust_accuracy"), "robust_ci": accuracy_ci(sec, r.get("n"))})
    return threat, rows


@click.command("compare")
@click.argument("targets", nargs=-1, required=True)
@click.option("--threat", default=None, help="Threat to compare (default: the first one all results share).")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write a clean-vs-robust scatter PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@db_option
def compare(targets: tuple[str, ...], threat: str | None, plot: str | None, as_json: bool, db: str) -> None:
    """Compare the clean-vs-robust trade-off of several evaluated models."""
    from ..report.history_plots import tradeoff_scatter
    from .render import console, err_console, pct, print_json, table

    from rich.markup import escape

    from .gate import different_specs

    loaded = [_load(t, db) for t in targets]
    threat, rows = tradeoff_rows(loaded, threat)
    flagged = {x.source: diff for x in loaded[1:] if (diff := different_specs(loaded[0].result, x.result))}
    for source, diff in flagged.items():
        err_console.print(f"[yellow]warning:[/yellow] {escape(source)} is NOT comparable with "
                          f"{escape(loaded[0].source)}: {escape('; '.join(diff))}", soft_wrap=True)
    if as_json:
        print_json({"threat": threat, "rows": rows, "not_comparable": flagged})
    else:
        body = [[r["label"], r["n"], pct(r["clean"]), pct(r["robust"]), pct(r["autoattack"]),
                 "\u2014" if not r["robust_ci"] else f"{pct(r['robust_ci'][0])} \u2013 {pct(r['robust_ci'][1])}",
                 "\u2014" if r["clean"] is None or r["robust"] is None else f"{100 * (r['clean'] - r['robust']):.1f}pp"]
                for r in rows]
        console.print(table(f"clean vs robust ({threat})", ["model", "n", "clean", "robust", "AutoAttack",
                                                             "robust 95% CI", "gap"], esc_rows(body)))
    if plot:
        png = tradeoff_scatter([(r["label"], r["clean"], r["robust"], r["n"]) for r in rows], threat=threat)
        atomic_write(plot, png or b"")
        err_console.print(f"wrote {plot}")
