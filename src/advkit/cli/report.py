"""``advkit report RUN|RESULT.json|RUN_DIR [--format md|html|json|robustbench] [--out F]``.

Also holds the loader that ``history``, ``gate`` and ``compare`` share: a target is a run
directory, a ``result.json`` file, or a run id / ``latest`` in the history database (``--db``).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from ..atomic import atomic_write
from ..errors import StoreError

DEFAULT_DB = "advkit.db"

db_option = click.option("--db", default=DEFAULT_DB, show_default=True, envvar="ADVKIT_DB", metavar="PATH|URL",
                         help="History database: a SQLite file or postgresql://user@host/dbname (env ADVKIT_DB).")


@dataclass
class Loaded:
    """A result dict, its per-sample arrays (may be empty) and where it came from."""

    result: dict
    samples: dict = field(default_factory=dict)
    run_id: int | None = None
    source: str = ""


def db_exists(db: str) -> bool:
    """Whether the history database ``db`` exists (a server URL always may: opening it tells)."""
    from ..results.backends import is_url

    return db == ":memory:" or is_url(db) or Path(db).exists()


def open_store(db: str):
    """The history database at ``db``, opened read-only (report, gate and history never write to it); an
    error (not a new empty file) when it does not exist or is not advkit's."""
    from ..results.store import Store

    if not db_exists(db):
        raise StoreError(f"expected a history database at {db!r} (pass --db), got no such file")
    return Store(db, readonly=True)


def _load_path(path: Path) -> Loaded:
    from ..results.io import check_result, load_run_dir

    if path.is_file() and path.name != "result.json":
        try:
            result = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise StoreError(f"{path}: not valid JSON ({e}); expected a result.json file") from None
        check_result(result, str(path))
        return Loaded(result, _samples_near(path.parent), result.get("run_id"), str(path))
    result, samples = load_run_dir(path)
    return Loaded(result, samples, result.get("run_id"), str(path))


def _samples_near(directory: Path | None) -> dict:
    from ..results.io import load_samples

    f = directory / "samples.npz" if directory else None
    if f is None or not f.is_file():
        return {}
    return load_samples(f)


def load_target(ref: str, db: str, *, store=None) -> Loaded:
    """Load ``ref``: a run directory or result file if such a path exists, else a run id in ``db``."""
    p = Path(ref)
    if p.exists():
        return _load_path(p)
    if store is None:
        with open_store(db) as own:
            return load_target(ref, db, store=own)
    from ..results.io import check_result

    run_id = store.resolve(ref)
    result = check_result(store.load_result(run_id), f"run {run_id} in {db}")
    result.setdefault("run_id", run_id)
    spec = result.get("spec") if isinstance(result.get("spec"), dict) else {}
    out = result.get("output") or spec.get("output")
    return Loaded(result, _samples_near(Path(out)) if out else {}, run_id, f"run {run_id} in {store.path}")


def esc_rows(rows) -> list[list]:
    """Rows for :func:`advkit.cli.render.table` with rich markup escaped (``[linf:0.3]`` is text)."""
    from rich.markup import escape

    return [[escape(v) if isinstance(v, str) else v for v in r] for r in rows]


def write_text(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    atomic_write(out, text)


@click.command("report")
@click.argument("target")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json", "robustbench"]), default=None,
              help="Output format (default: from --out's extension, else md); robustbench: the RobustBench "
                   "model-card JSON of one threat.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None, help="Write here instead of stdout.")
@click.option("--threat", default=None, help="robustbench: the threat of the card (default: the run's first "
                                             "linf/l2 threat).")
@click.option("--card", "card", multiple=True, metavar="KEY=VALUE",
              help="robustbench: fill a field advkit cannot know: link, name, authors, venue, architecture, "
                   "additional_data, number_forward_passes, reported, footnote (repeatable).")
@db_option
def report(target: str, fmt: str | None, out: str | None, threat: str | None, card: tuple, db: str) -> None:
    """Render the report of TARGET: a run id or 'latest' in --db, a RESULT.json or a RUN_DIR."""
    from ..report.html import render_html
    from ..report.markdown import render_markdown
    from ..results.io import dumps
    from .render import err_console

    loaded = load_target(target, db)
    if fmt is None:
        fmt = {".html": "html", ".htm": "html", ".json": "json"}.get(Path(out).suffix.lower(), "md") if out else "md"
    if fmt == "html":
        text = render_html(loaded.result, loaded.samples)
    elif fmt == "json":
        text = dumps(loaded.result) + "\n"
    elif fmt == "robustbench":
        text = _robustbench(loaded.result, threat, card)
    else:
        text = render_markdown(loaded.result)
    write_text(text, out)
    if out:
        err_console.print(f"wrote {fmt} report of {loaded.source} to {out}")


def _robustbench(result: dict, threat: str | None, card: tuple) -> str:
    from ..report.robustbench import model_card
    from .options import parse_key_values
    return json.dumps(model_card(result, threat, parse_key_values(card, "--card")), indent=2) + "\n"
