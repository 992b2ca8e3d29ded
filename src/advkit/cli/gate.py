"""``advkit gate RUN [--require EXPR ...] [--max-drop 2pp] [--baseline latest|RUN|none] [--junit F]``.

Exit code 0 when every gate passes, 1 when one fails, 2 for a malformed expression or a baseline of
another spec, 3 when the run gated is ``latest`` and that run failed, was aborted or never finished.
Without ``--require``/``--max-drop``/``--clean-floor``/``--per-class-min`` the gates of the run's spec
apply, else the defaults (clean accuracy floor; the regression rule: clean and robust accuracy may drop at
most 2pp against the latest complete run of the same spec and model).  It always says which run it gated.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..atomic import atomic_write
from ..errors import ConfigError, EvaluationAborted, StoreError
from .report import Loaded, db_exists, db_option, load_target, open_store


def _spec_gates(result: dict) -> dict | None:
    spec = result.get("spec") if isinstance(result.get("spec"), dict) else {}
    g = spec.get("gates") if isinstance(spec.get("gates"), dict) else None
    return g or None


def build_gates(result: dict, require: tuple[str, ...], max_drop: str | None, clean_floor: float | None,
                per_class_min: float | None = None) -> tuple[list, bool]:
    """(gates, the spec's allow_upper_bound) from the options, else the run's spec, else the defaults."""
    from ..gates import Gate, RegressionGate, default_gates, parse_drop, parse_gate, per_class_gates
    from ..report import threats

    keys = list(threats(result))
    if require or max_drop is not None or clean_floor is not None or per_class_min is not None:
        spec = {"require": list(require), "max_drop": max_drop, "clean_floor": clean_floor,
                "per_class_min": per_class_min}
    else:
        spec = _spec_gates(result)
        if spec is None:
            return default_gates(), False
    gates: list = [parse_gate(r) for r in spec.get("require") or []]
    if spec.get("clean_floor") is not None:
        gates.append(Gate("clean_accuracy", ">=", float(spec["clean_floor"])))
    if spec.get("per_class_min") is not None:
        gates.extend(per_class_gates(float(spec["per_class_min"]), keys))
    if spec.get("max_drop") is not None:  # the one regression rule: clean and every threat's robust accuracy
        gates.append(RegressionGate(max_drop=parse_drop(spec["max_drop"])))
    return gates, bool(spec.get("allow_upper_bound", False))


def resolve_target(target: str, db: str, model: str | None, spec_file: str | None) -> Loaded:
    """``latest`` = the newest run (any status) of this model/spec in ``db``: a run that did not complete
    is an error with exit 3 (EvaluationAborted); anything else is loaded as ``advkit report`` loads it."""
    if target != "latest" or Path(target).exists():
        if model or spec_file:
            raise ConfigError(f"--model/--spec select the run only with TARGET 'latest', got {target!r}")
        return load_target(target, db)
    spec_hash = None
    if spec_file:
        from ..evaluation import load_spec
        spec = load_spec(spec_file)
        spec_hash, model = spec.spec_hash(), model or spec.model
    with open_store(db) as store:
        rows = store.list_runs(model=model, limit=1, spec_hash=spec_hash)
        if not rows:
            what = " of " + " and ".join(x for x in (model and f"model {model!r}", spec_file and f"spec {spec_file}") if x) \
                if model or spec_file else ""
            raise StoreError(f"expected a run{what} in {db}, got none")
        row = rows[0]
        if row["status"] != "complete":
            raise EvaluationAborted(f"the latest run{' of ' + model if model else ''} is {describe_run(row)}, "
                                    f"status {row['status']!r}: it did not complete, so the gate fails "
                                    "(fix or rerun the evaluation)")
        return load_target(str(row["run_id"]), db, store=store)


def describe_run(row: dict) -> str:
    """``run 7 (model X, spec 1a2b3c4d, 2026-11-30 10:00)``."""
    created = str(row.get("created") or "")[:16].replace("T", " ")
    return (f"run {row.get('run_id')} (model {row.get('model_name') or row.get('model')}, "
            f"spec {str(row.get('spec_hash') or '?')[:8]}, {created or 'created ?'})")


_NOT_PROTOCOL = ("model", "model_args", "weights", "output", "db", "gates", "trust_pickle", "mlflow")


def _protocol(result: dict) -> dict | None:
    """The evaluation protocol a result ran (its spec without model, weights, paths and gates), if recorded."""
    spec = result.get("spec")
    if not isinstance(spec, dict) or "threats" not in spec:
        return None
    return {k: v for k, v in spec.items() if k not in _NOT_PROTOCOL}


def different_specs(a: dict, b: dict) -> list[str]:
    """What makes two results incomparable: another evaluation protocol (data REF, n, seed, threats,
    stages, … — the model may differ, that is what a comparison is for) or other data contents."""
    pa, pb = _protocol(a), _protocol(b)
    if pa is not None and pb is not None:
        out = [f"{k} {json.dumps(pa.get(k))[:40]} vs {json.dumps(pb.get(k))[:40]}"
               for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k)]
    else:
        sa, sb = a.get("spec_hash"), b.get("spec_hash")
        out = [f"spec {str(sa)[:8]} vs {str(sb)[:8]}"] if sa and sb and sa != sb else []
    da, db = a.get("data_hash"), b.get("data_hash")
    if da and db and da != db:
        out.append(f"data contents {da[:8]} vs {db[:8]}")
    return out


def check_comparable(a: dict, b: dict, label_a: str, label_b: str, allow: bool) -> list[str]:
    """The differences (see :func:`different_specs`); a ConfigError unless ``allow``."""
    diff = different_specs(a, b)
    if diff and not allow:
        raise ConfigError(f"expected {label_a} and {label_b} to be evaluations of the same spec and data, got "
                          f"{', '.join(diff)}: their numbers are not comparable (pass --allow-different-specs "
                          "to compare anyway)")
    return diff


def find_baseline(loaded: Loaded, baseline: str, db: str) -> dict | None:
    """The baseline result: ``none``; a run id, directory or file; or ``latest`` = the newest other
    complete run of the same model name and spec hash in ``db`` (None when there is none yet)."""
    if baseline == "none":
        return None
    if baseline != "latest":
        return load_target(baseline, db).result
    if not db_exists(db):
        return None
    r = loaded.result
    name = r.get("model_name") or r.get("model")
    with open_store(db) as store:
        return store.latest(str(name), r.get("spec_hash"), exclude=loaded.run_id)


def render_gates(report, *, flagged: list[str] | None = None) -> None:
    """PASS/FAIL per gate, noisy margins as ``gate-noise`` findings, and the verdict (flagged when the runs
    compared are of different specs)."""
    from rich.markup import escape

    from ..gates import noise_findings
    from .render import console, err_console

    for it in report.items:
        mark = "[green]PASS[/green]" if it.passed else "[red]FAIL[/red]"
        console.print(f"{mark} {escape(it.message)}", soft_wrap=True)
    for f in noise_findings(report):
        err_console.print(f"[yellow]{f['severity']}[/yellow] {f['code']}: {escape(f['message'])}", soft_wrap=True)
    if not report.items:
        console.print("no gates to check")
    verdict = "[green]all gates passed[/green]" if report.passed else \
        f"[red]{len(report.failures)} of {len(report.items)} gates failed[/red]"
    if flagged:
        verdict += f" [yellow](but the runs are NOT comparable: {escape('; '.join(flagged))})[/yellow]"
    console.print(verdict)


@click.command("gate")
@click.argument("target")
@click.option("--require", "require", multiple=True, metavar="EXPR",
              help="A gate like 'robust_accuracy[linf:0.3] >= 0.85' (repeatable).")
@click.option("--max-drop", default=None,
              help="Regression gate: clean and robust accuracy may drop at most this much vs the baseline, e.g. 2pp.")
@click.option("--clean-floor", type=click.FloatRange(0, 1), default=None, help="Minimum clean accuracy.")
@click.option("--per-class-min", type=click.FloatRange(0, 1), default=None,
              help="Minimum accuracy of every class, clean and under each threat.")
@click.option("--allow-upper-bound", is_flag=True,
              help="Let robust gates pass on upper bounds (AutoAttack skipped or reduced, or an untrusted threat).")
@click.option("--baseline", default="latest", show_default=True,
              help="'latest' (same model and spec in --db), a run id, a RESULT.json/RUN_DIR, or 'none'.")
@click.option("--allow-different-specs", is_flag=True, help="Accept a --baseline of another spec or data (flagged).")
@click.option("--model", default=None, help="With TARGET 'latest': the latest run of this model (name or REF).")
@click.option("--spec", "spec_file", default=None, type=click.Path(dir_okay=False),
              help="With TARGET 'latest': the latest run of this spec file (and its model).")
@click.option("--junit", type=click.Path(dir_okay=False), default=None, help="Also write the gates as JUnit XML.")
@click.option("--json", "as_json", is_flag=True, help="Print the gate report as JSON.")
@db_option
def gate(target, require, max_drop, clean_floor, per_class_min, allow_upper_bound, baseline, allow_different_specs,
         model, spec_file, junit, as_json, db) -> None:
    """Check TARGET (a run id/'latest' in --db, a RESULT.json or a RUN_DIR) against gates; exit 1 on failure.

    'latest' is the newest run in --db (of --model / --spec when given); when it failed, was aborted or
    never finished, the gate fails with exit 3.
    """
    from ..gates import RegressionGate, check_gates, gates_to_junit
    from .render import err_console, print_json

    loaded = resolve_target(target, db, model, spec_file)
    err_console.print(f"gating {_describe_loaded(loaded)}", soft_wrap=True)
    gates, spec_allow = build_gates(loaded.result, require, max_drop, clean_floor, per_class_min)
    base = find_baseline(loaded, baseline, db)
    flagged = []
    if base is not None:
        flagged = check_comparable(base, loaded.result, f"baseline {_label(base)}", _label(loaded.result),
                                   allow_different_specs)
        err_console.print(f"baseline {_label(base)}", soft_wrap=True)
    elif any(isinstance(g, RegressionGate) for g in gates):
        err_console.print("[yellow]note:[/yellow] no baseline run to compare with; regression gates skipped")
    report = check_gates(loaded.result, gates, base, allow_upper_bound=allow_upper_bound or spec_allow, warn=False)
    if junit:
        atomic_write(junit, gates_to_junit(report, run=_label(loaded.result)))
    if as_json:
        print_json({**report.to_dict(), "run": loaded.run_id, "source": loaded.source,
                    "baseline_run": (base or {}).get("run_id"), "not_comparable": flagged})
    else:
        render_gates(report, flagged=flagged)
    if not report.passed:
        raise click.exceptions.Exit(1)


def _label(result: dict) -> str:
    rid = result.get("run_id")
    name = result.get("model_name") or result.get("model")
    return f"run {rid} (model {name})" if rid is not None else f"result of model {name}"


def _describe_loaded(loaded: Loaded) -> str:
    r = loaded.result
    created = str(r.get("created") or "")[:16].replace("T", " ")
    return (f"{loaded.source}: model {r.get('model_name') or r.get('model')}, "
            f"spec {str(r.get('spec_hash') or '?')[:8]}, {created or 'created ?'}")
