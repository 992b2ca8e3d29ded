"""Atomic file writes: every file advkit writes goes through a temporary file + ``os.replace``.

A reader (or a killed writer) therefore sees either the previous file or the complete new one, never a
torn or half-written file.  The temporary file lives in the target's folder (``os.replace`` is atomic
only within one file system), is fsync'ed before the rename and removed when writing fails.  An
``OSError`` becomes a :class:`~advkit.errors.StoreError` naming the path and the reason (a
:class:`~advkit.errors.StoreWriteError`, exit code 7, when the disk itself failed: full, quota, I/O error).
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator

import errno

from .errors import StoreError, StoreWriteError

#: the disk failed under a write (full, over quota, I/O error): exit 7, the run is not complete; any other
#: OSError (a path that is not a folder, no permission) is a bad destination given by the user: exit 2
DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS})


def _fail(path: Path, e: OSError) -> StoreError:
    cls = StoreWriteError if e.errno in DISK_ERRORS else StoreError
    return cls(f"cannot write {str(path)!r}: {e.strerror or e}")


def _temp_beside(path: Path, suffix: str) -> Path:
    """A new empty file beside ``path``, created like any other file (mode 0o666 less the umask, unlike
    ``tempfile.mkstemp``'s 0o600, so the renamed result is as readable as a plainly written one)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")
            try:
                os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
                return tmp
            except FileExistsError:
                continue
        raise FileExistsError(17, "no free temporary name")
    except OSError as e:
        raise _fail(path, e) from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a writer that needs a file name; on success it
    replaces ``path`` atomically, on failure it is removed and ``path`` is left as it was.

    The temporary name keeps ``path``'s suffix (``np.savez`` and friends append their own otherwise).
    """
    path = Path(path)
    tmp = _temp_beside(path, f".tmp{path.suffix}")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except OSError as e:
        _discard(tmp)
        raise _fail(path, e) from None
    except BaseException:
        _discard(tmp)
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str, *, encoding: str = "utf-8") -> Path:
    """Write ``data`` (bytes, or text in ``encoding``) to ``path`` atomically; returns ``Path(path)``."""
    payload = data.encode(encoding) if isinstance(data, str) else bytes(data)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


def check_writable(path: str | os.PathLike) -> None:
    """Fail early (before hours of work) when ``path`` cannot be written: a temporary file is created
    beside it and removed again.  Nothing is created when its folder does not exist yet: then the
    nearest existing ancestor must be a writable folder."""
    path = Path(path)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if folder == path.parent:
        _discard(_temp_beside(path, ".probe"))
    elif not folder.is_dir():
        raise _fail(path, NotADirectoryError(20, f"{folder} is not a folder"))
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise _fail(path, PermissionError(13, f"{folder} is not writable"))


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


__all__ = ["atomic_path", "atomic_write", "check_writable"]
