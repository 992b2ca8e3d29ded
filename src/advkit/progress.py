"""Progress reporting without printing: the library calls a callback, the CLI renders it.

A callback has the signature ``callback(task: str, done: int, total: int)``; ``NULL`` ignores
everything.  Library functions take ``progress: ProgressFn = NULL``.
"""
from __future__ import annotations

from typing import Callable

ProgressFn = Callable[[str, int, int], None]


def NULL(task: str, done: int, total: int) -> None:  # noqa: N802 - a constant-like function
    return None
