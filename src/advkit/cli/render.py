"""Terminal rendering for the CLI: rich console, tables, progress bars, JSON output."""
from __future__ import annotations

import contextlib
import json
import sys
from typing import Iterator, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*[fmt(v) for v in r])
    return t


def fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator:
    """Yield a ``callback(task, done, total)`` that drives one rich progress bar per task."""
    if not enabled:
        yield lambda task, done, total: None
        return
    prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=err_console, transient=False)
    tasks: dict[str, int] = {}

    def callback(task: str, done: int, total: int) -> None:
        if task not in tasks:
            tasks[task] = prog.add_task(task, total=total)
        prog.update(tasks[task], completed=done, total=total)

    with prog:
        yield callback
