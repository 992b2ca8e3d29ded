"""Progress reporting without printing: the library calls a callback, the CLI renders it.

A callback has the signature ``callback(task: str, done: float, total: float)``: ``done`` of ``total``
units of ``task`` are finished (samples for attacks and stages, images for certification, batches
for a training epoch).  ``done`` may be fractional: an attack reports the iterations of the batch it
is working on as a fraction of that batch's samples, so a bar moves (and its ETA means something)
while a single large batch runs.  ``NULL`` ignores everything.  Library functions take
``progress: ProgressFn = NULL``; the CLI passes :func:`advkit.cli.render.progress_bar`'s callback.
"""
from __future__ import annotations

from typing import Callable

ProgressFn = Callable[[str, float, float], None]


def NULL(task: str, done: float, total: float) -> None:  # noqa: N802 - a constant-like function
    return None


def rescaled(progress: ProgressFn, task: str, offset: float, span: float, total: float) -> ProgressFn:
    """A callback that maps a sub-task's ``done/total`` into ``[offset, offset + span]`` of ``task``.

    Used to nest progress: a stage's batch b of B reports its attack's progress as part of the stage.
    """
    if progress is NULL:
        return NULL

    def inner(_task: str, done: float, sub_total: float) -> None:
        frac = min(max(done / sub_total, 0.0), 1.0) if sub_total else 1.0
        progress(task, offset + frac * span, total)
    return inner


__all__ = ["ProgressFn", "NULL", "rescaled"]
