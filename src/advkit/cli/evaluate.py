"""``advkit evaluate [SPEC.toml] [options]``: the full robustness evaluation of one model.

Parse the spec (file and/or options) → :func:`advkit.evaluation.evaluate` → write the run directory
(result.json, samples.npz, report.md, report.html) and the history DB → print the summary → with
``--mlflow``, log it to MLflow (:mod:`advkit.cli.tracking`) → exit 0 (ok), 1 (a gate failed), 2
(usage/config error), 3 (evaluation aborted by a pre-flight check) or 6 (MLflow unreachable).
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import click

from ..atomic import atomic_write, check_writable
from ..errors import StoreWriteError
from . import render
from .options import defense_option, model_arg_option, parse_model_args
from .tracking import log_to_tracker, mlflow_options, open_tracking


@click.command("evaluate")
@click.argument("spec_file", required=False, type=click.Path(dir_okay=False))
@click.option("--model", default=None, help="Model REF (zoo:NAME, FILE.safetensors, file.py:factory, ...).")
@click.option("--weights", default=None, help="Weights for a factory REF (safetensors or torch.load-able).")
@model_arg_option
@click.option("--trust-pickle", is_flag=True, default=None, help="Allow pickles that need arbitrary code (unsafe).")
@click.option("--data", default=None, help="Data REF (mnist5k, digits, fashion-mnist, npz:F, ...).")
@click.option("--split", default=None, help="Data split (default: test).")
@click.option("--profile", default=None, help="Domain profile: standard ε, curve grid, grades (advkit list profiles; "
                                              "default: the zoo model's or data's; 'none' = no profile).")
@click.option("--threat", "threats", multiple=True,
              help="Threat model, e.g. linf:0.3, l2:1.5, or just linf / l2 for the profile's budget (repeatable).")
@click.option("--n", type=int, default=None, help="Number of test samples (default 1000).")
@click.option("--seed", type=int, default=None, help="Seed of every random choice (default 0).")
@click.option("--batch-size", type=int, default=None, help="Samples per batch (default 250).")
@click.option("--out", "output", default=None, help="Run directory (default runs/<timestamp>-<model>).")
@click.option("--db", default=None, envvar="ADVKIT_DB", metavar="PATH|URL",
              help="History database: a SQLite file (default ./advkit.db) or postgresql://user@host/dbname "
                   "(env ADVKIT_DB).")
@click.option("--resume", is_flag=True, help="Continue the unfinished run of this spec (refused when the weights, "
              "data or code differ, or another process is still writing it).")
@click.option("--junit", "junit_file", default=None, type=click.Path(dir_okay=False), help="Write gates as JUnit XML.")
@defense_option
@click.option("--force-eps", is_flag=True, default=None, help="Accept an L∞ ε as large as the input range.")
@click.option("--no-autoattack", is_flag=True, help="Skip AutoAttack (robust accuracy becomes an upper bound).")
@click.option("--allow-upper-bound", is_flag=True, default=None,
              help="Let gates pass on robust accuracy that is only an upper bound (AutoAttack skipped/reduced).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the rank's GPU under torchrun, "
                                             "else CUDA when available, else CPU).")
@click.option("--mean", default=None, help="Per-channel mean the model expects, e.g. 0.4914,0.4822,0.4465.")
@click.option("--std", default=None, help="Per-channel std the model expects, e.g. 0.2471,0.2435,0.2616.")
@click.option("--json", "as_json", is_flag=True, help="Print result.json to stdout instead of the summary.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@mlflow_options
@click.pass_context
def evaluate(ctx, spec_file, model, weights, model_args, trust_pickle, data, split, profile, threats, n, seed,
             batch_size, output, db, resume, junit_file, defense, force_eps, no_autoattack, allow_upper_bound, device,
             mean, std, as_json, quiet, **mlflow_opts):
    """Evaluate a model's robustness: clean, FGSM, PGD, AutoAttack, curve, per class, checks, gates.

    With no arguments it evaluates the built-in default model (zoo:mnist5k-standard) on mnist5k.
    Under `torchrun --nproc_per_node N -m advkit evaluate ...` each process evaluates its share of the
    batches and rank 0 writes the results (docs/scale.md).
    """
    from .. import distributed
    from ..devices import parse_floats
    from ..results import Store

    spec, note = _spec(spec_file, model=model, model_args=parse_model_args(model_args), weights=weights,
                       trust_pickle=trust_pickle, data=data, split=split, profile=profile, threats=threats, n=n, seed=seed, batch_size=batch_size, output=output,
                       db=db, defense=defense, no_autoattack=no_autoattack, allow_upper_bound=allow_upper_bound,
                       force_eps=force_eps, device=device, mean=parse_floats(mean, "--mean"),
                       std=parse_floats(std, "--std"))
    distributed.init_from_env()
    main_rank = distributed.is_main()
    if note and not as_json and main_rank:
        render.err_console.print(f"[dim]{note}[/dim]")
    out_dir = _writable_outputs(spec, junit_file, resume)
    tracking = open_tracking(spec, mlflow_opts) if main_rank else None
    store = Store(spec.db) if spec.db else None
    publish = _publisher(out_dir, junit_file, time.perf_counter())
    res = _run(spec, store, resume, publish, out_dir, bars=not (quiet or as_json) and main_rank)
    if not main_rank:
        return
    if as_json:
        render.print_json(res.result)
    else:
        print_summary(res.result, out_dir)
    log_to_tracker(tracking, res.result, out_dir, res.samples, quiet or as_json)
    if not res.passed:
        ctx.exit(1)


def _spec(spec_file, **options):
    """The spec file (or the defaults) with the command's options, and a zoo model's data set unless the user
    named one: ``(spec, note)``, the note saying what was filled in (None when nothing was)."""
    from ..evaluation import EvaluationSpec, load_spec, with_options
    from ..evaluation.spec_load import spec_file_keys, with_model_defaults

    spec = with_options(load_spec(spec_file) if spec_file else EvaluationSpec(), **options)
    given = (spec_file_keys(spec_file) if spec_file else set()) | ({"data"} if options.get("data") else set())
    return with_model_defaults(spec, given)


def _writable_outputs(spec, junit_file, resume: bool) -> Path:
    """The run directory; it and the JUnit file must be writable before the evaluation, not after it, and
    the directory must not hold another run's files (a resumed run checks its own id when it writes)."""
    from ..results.io import check_out_free

    out_dir = Path(spec.output or distributed_output(spec.model))
    check_writable(out_dir / "result.json")
    if not resume:
        check_out_free(out_dir)
    if junit_file:
        check_writable(junit_file)
    return out_dir


def _run(spec, store, resume: bool, publish, out_dir: Path, *, bars: bool):
    """The evaluation, with progress bars when ``bars``; ``publish`` writes the run folder before the run is
    recorded complete; the history ``store`` is closed afterwards."""
    from ..evaluation import evaluate as run_evaluation
    from ..results.io import remove_run_files

    try:
        with render.progress_bar(enabled=bars) as progress:
            return run_evaluation(spec, progress=progress, store=store, resume=resume, publish=publish)
    except StoreWriteError:  # e.g. the history could not record the run: its files must not outlive it
        remove_run_files(out_dir)
        raise
    finally:
        if store is not None:
            store.close()


def _publisher(out_dir: Path, junit_file: str | None, started: float):
    """The writer of the run folder that the pipeline calls before it records the run as complete: a run
    whose files cannot all be written (full disk: exit 7) is failed in the history and leaves no files."""
    from ..results import write_run_dir
    from ..results.io import check_out_free, remove_run_files
    from ..results.junit import write_junit

    def publish(result: dict, samples: dict) -> None:
        check_out_free(out_dir, result.get("run_id"))
        result["output"] = str(out_dir)
        result["wall_seconds"] = time.perf_counter() - started
        write_run_dir(out_dir, result, samples)
        try:
            _write_reports(out_dir, result, samples)
            if junit_file:
                write_junit(junit_file, result["gates"], run=str(result.get("run_id")))
        except BaseException:
            remove_run_files(out_dir)
            raise
    return publish


def distributed_output(model_ref: str) -> str:
    """:func:`default_output`, chosen once on rank 0 under torchrun (the ranks' clocks may differ)."""
    from ..evaluation.sharding import share
    return share(default_output(model_ref))


def default_output(model_ref: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", model_ref.split(":")[-1].split("/")[-1]).strip("-") or "model"
    return f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{name}"


def _write_reports(out_dir: Path, result: dict, samples: dict) -> None:
    """report.md and report.html; a failing renderer costs its report, never the evaluation's results."""
    try:
        from ..report.markdown import render_markdown
    except ImportError:
        render_markdown = _fallback_markdown
    for name, write in (("report.md", lambda: atomic_write(out_dir / "report.md", render_markdown(result))),
                        ("report.html", lambda: _write_html(out_dir, result, samples))):
        try:
            write()
        except StoreWriteError:  # the disk failed: the run is not complete (exit 7)
            raise
        except Exception as e:  # noqa: BLE001 - a renderer's bug costs its report, never the results
            render.err_console.print(f"[yellow]warning:[/yellow] {name} not written ({type(e).__name__}: {e}); "
                                     f"run `advkit report {out_dir}` later")


def _write_html(out_dir: Path, result: dict, samples: dict) -> None:
    try:
        from ..report.html import render_html
    except ImportError:
        return
    render_html(result, samples, out_dir / "report.html")


def _fallback_markdown(result: dict) -> str:
    lines = [f"# advkit evaluation: {result['model']} on {result['data']} (n={result['n']})", "",
             f"- clean accuracy: {render.pct(result['clean']['accuracy'])}"]
    lines += [f"- robust accuracy {t}: {render.pct(v)}" for t, v in result["robust_accuracy"].items()]
    lines += [f"- **{f['severity']}** `{f['code']}`: {f['message']}" for f in result["findings"]]
    return "\n".join(lines) + "\n"


def _acc_cell(entry: dict | None) -> tuple[str, str]:
    if not entry:
        return "—", ""
    acc = entry.get("robust_accuracy", entry.get("accuracy"))
    lo, hi = entry.get("ci") or (None, None)
    return render.pct(acc), (f"{render.pct(lo)} – {render.pct(hi)}" if lo is not None else "")


def _headline_cell(t: dict) -> tuple[str, str]:
    acc, ci = _acc_cell(t)
    return (f"[red]{acc} untrusted[/red]", ci) if t.get("trusted", True) is False else (f"[bold]{acc}[/bold]", ci)


def _worst_label(t: dict) -> str:
    not_reference = bool((t.get("protocol") or {}).get("name")) and not t["protocol"].get("reference")
    screening = "screening" in t.get("attacks", {})
    notes = [n for n, on in (("adaptive", t.get("naive")), ("upper bound", t.get("upper_bound")),
                             ("screening protocol", screening), ("not reference AutoAttack", not_reference and not screening),
                             ("UNTRUSTED: looks masked", t.get("trusted", True) is False)) if on]
    return "[bold]worst case[/bold]" + (f" ({', '.join(notes)})" if notes else "")


def summary_rows(result: dict) -> list[tuple]:
    """Rows of the summary table; with a declared defense each row has a naive and an adaptive column."""
    side = any(t.get("naive") for t in result["threats"].values())
    blank = ("",) if side else ()
    rows = [("clean", "", *blank, *_acc_cell(result["clean"]), "")]
    for threat, t in result["threats"].items():
        naive = (t.get("naive") or {}).get("attacks", {})
        for name in ("fgsm", "pgd", "autoattack", "screening"):
            a = t["attacks"].get(name)
            if a:
                label = (a.get("protocol") or name) if name in ("autoattack", "screening") else name
                left = (_acc_cell(naive.get(name))[0],) if side else ()
                rows.append((label, threat, *left, *_acc_cell(a), f"{a.get('seconds', 0):.1f}s"))
        left = (_acc_cell(t.get("naive"))[0],) if side else ()
        rows.append((_worst_label(t), threat, *left, *_headline_cell(t), ""))
    return rows


def summary_columns(result: dict) -> list[str]:
    if any(t.get("naive") for t in result["threats"].values()):
        return ["attack", "threat", "naive", "adaptive", "95% CI", "time"]
    return ["attack", "threat", "accuracy", "95% CI", "time"]


def certify_table(cert: dict):
    """Certified accuracy per radius (randomized smoothing), radii above the ceiling marked as such."""
    from ..report import NOT_CERTIFIABLE, certify_ceiling
    top = certify_ceiling(cert)
    rows = [(f"{float(r):g}", NOT_CERTIFIABLE if top is not None and float(r) > top else render.pct(a))
            for r, a in (cert.get("certified_accuracy") or {}).items()]
    title = (f"certified (randomized smoothing, \u03c3={cert.get('sigma'):g}, n={cert.get('n')}, "
             f"\u03b1={cert.get('alpha'):g}; largest certifiable radius {top:.3f})")
    return render.table(title, ["L2 radius", "certified accuracy"], rows)


def print_summary(result: dict, out_dir: Path) -> None:
    from rich.markup import escape

    from ..profiles import grade_lines
    from .report import esc_rows

    con = render.console
    defense = (result.get("defense") or {}).get("chain")
    title = f"{result['model']} on {result['data']} (n={result['n']}, seed={result['seed']})"
    con.print(render.table(title + (f" behind defense {defense}" if defense else ""), summary_columns(result),
                           summary_rows(result)))
    for threat, t in result["threats"].items():
        if t.get("naive"):
            con.print(f"[dim]{threat}: naive = autograd through {defense}, no EOT, no black-box attack; "
                      f"adaptive = {t['adaptive']['method']} + Square (black-box)[/dim]")
        if t.get("trusted", True) is False:
            con.print(f"[red]{threat}: the headline is not trustworthy[/red] (the model looks masked; gates treat "
                      "it as an upper bound):")
            for reason in t.get("untrusted_reasons", []):
                con.print(f"  - {escape(reason)}")
    for threat, text in grade_lines(result):
        con.print(f"grade {escape(threat)} ({escape(str(result.get('profile')))} profile): {escape(text)}", soft_wrap=True)
    cert = result.get("certify")
    if cert:
        con.print(certify_table(cert))
    if result["findings"]:
        con.print(render.table("Findings", ["severity", "code", "message"],
                               esc_rows([(f["severity"], f["code"], f["message"]) for f in result["findings"]])))
    gates = result.get("gates") or {}
    for item in gates.get("items", []):
        mark = "[green]PASS[/green]" if item["passed"] else "[red]FAIL[/red]"
        con.print(f"gate {mark} {item['message']}")
    if gates.get("message"):
        con.print(f"[dim]{gates['message']}[/dim]")
    con.print(f"run {result.get('run_id')} · results in {out_dir}/ (result.json, samples.npz, report.md, report.html)")
