"""Terminal rendering for the CLI: rich console, tables, progress bars, JSON output."""
from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from typing import Iterator, Sequence

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)


_NUMBER = re.compile(r"^[-+\u2212]?\d[\d.,]*(e[-+]?\d+)?\s?(%|pp|s|x|\u00d7)?$|^\u2014$")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]], *, width: int | None = None) -> Table:
    """A table that fits the terminal (``width``, default the console's) by wrapping cells, never cutting
    them with '…'; columns whose cells are all numbers (percentages, durations) are right-aligned, prose
    left-aligned.  Widths are laid out here: the widest column gives way first, down to its longest word
    (so dates, names and threats wrap at spaces), and only then is a word folded."""
    cells = [[fmt(v) for v in r] for r in rows]
    cols = [[_plain(r[i]) for r in cells if i < len(r) and r[i]] for i in range(len(columns))]
    numeric = [bool(col) and all(_NUMBER.match(v) for v in col) for col in cols]
    widths = [max([len(c)] + [len(line) for v in col for line in v.splitlines()]) for c, col in zip(columns, cols)]
    words = [max([len(c) if num else min(len(c), 8)] + [len(w) for v in col for w in v.split()])
             for c, col, num in zip(columns, cols, numeric)]
    room = (width or console.width) - 3 * len(columns) - 1  # one space of padding each side, one border
    for floor in (words, [4] * len(widths)):
        while sum(widths) > room:
            over = [w - f for w, f in zip(widths, floor)]
            if max(over, default=0) <= 0:
                break
            widths[over.index(max(over))] -= 1
    t = Table(title=title, title_justify="left")
    for c, num, w in zip(columns, numeric, widths):
        t.add_column(c, justify="right" if num else "left", overflow="fold", width=max(w, 1))
    for r in cells:
        t.add_row(*r)
    return t


def _plain(v: str) -> str:
    return re.sub(r"\[/?[a-z ]*\]", "", v).strip()


def fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def metric_rows(metrics: dict) -> list[tuple[str, str]]:
    """``(name, value)`` rows for a property/metric table: accuracies and rates print as percentages,
    like every other table advkit prints."""
    return [(k, pct(v) if _is_fraction(k, v) else fmt(v)) for k, v in metrics.items()]


def _is_fraction(key: str, v: object) -> bool:
    return (isinstance(v, float) and not isinstance(v, bool) and 0.0 <= v <= 1.0
            and any(w in key for w in ("accuracy", "rate", "fraction")))


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


@contextlib.contextmanager
def progress_bar(enabled: bool = True, *, min_interval: float = 0.1) -> Iterator:
    """Yield a ``callback(task, done, total)`` that drives one live bar per task (stage), with the
    samples (or images, batches) done, elapsed time and an ETA.  ``done`` may be fractional (an attack
    reports its iterations inside a batch); updates closer than ``min_interval`` seconds are merged."""
    if not enabled:
        yield lambda task, done, total: None
        return
    prog = Progress(TextColumn("{task.description}"), BarColumn(bar_width=20), TaskProgressColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    console=err_console, transient=False, speed_estimate_period=60)
    tasks: dict[str, int] = {}
    last: dict[str, float] = {}

    def callback(task: str, done: float, total: float) -> None:
        now = time.monotonic()
        if task not in tasks:
            tasks[task] = prog.add_task(task, total=total)
        elif done < total and now - last.get(task, 0.0) < min_interval:
            return
        last[task] = now
        prog.update(tasks[task], completed=done, total=total)

    with prog:
        yield callback
