"""A restricted unpickler for data pickles (CIFAR-10's python batches).

CIFAR-10's ``cifar-10-batches-py`` files are pickled dicts of bytes, lists, ints and numpy arrays.  A
plain ``pickle.load`` would run whatever callable the file names, so a tampered file could execute code.
:func:`safe_load` allows only the globals needed to rebuild numpy arrays and dtypes; anything else
raises :class:`~advkit.errors.DataError` before any code runs.
"""
from __future__ import annotations

import io
import pickle
from typing import Any, BinaryIO

from ..errors import DataError

#: (module, name) pairs that may be referenced by a data pickle: numpy array/dtype reconstruction only.
ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # protocol-2 pickles of bytes written by Python 3 use codecs.encode
})


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name}: data pickles may only contain numpy arrays, "
            "bytes, strings, numbers, lists and dicts")


def safe_load(f: BinaryIO, *, source: str = "<pickle>", encoding: str = "latin1") -> Any:
    """Unpickle ``f`` allowing only numpy array reconstruction; raise DataError otherwise."""
    try:
        return _RestrictedUnpickler(f, encoding=encoding).load()
    except pickle.UnpicklingError as e:
        raise DataError(f"{source}: unsafe or malformed pickle ({e}); advkit never runs code from data files") from e
    except (EOFError, ValueError, TypeError, AttributeError, ImportError) as e:
        raise DataError(f"{source}: malformed pickle: {e}") from e


def safe_loads(data: bytes, *, source: str = "<pickle>", encoding: str = "latin1") -> Any:
    """:func:`safe_load` on a bytes object."""
    return safe_load(io.BytesIO(data), source=source, encoding=encoding)
