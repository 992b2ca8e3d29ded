"""A reader for the IDX file format of MNIST and Fashion-MNIST (optionally gzip-compressed).

Format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a 4-byte magic number ``0x00 0x00 T D`` where
``T`` is the element type code and ``D`` the number of dimensions, then ``D`` big-endian uint32 sizes,
then the data in row-major order, big-endian.  The reader validates the magic number and the length.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..errors import DataError

#: IDX type code -> numpy dtype (big-endian where it matters)
IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            if head == b"\x1f\x8b":
                return gzip.GzipFile(fileobj=f).read()
            return f.read()
    except OSError as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from e


def parse_idx(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into a numpy array (native byte order)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{source} is not an IDX file: expected magic bytes 0x00 0x00, got {raw[:4]!r}")
    code, ndim = raw[2], raw[3]
    if code not in IDX_TYPES:
        raise DataError(f"{source}: unknown IDX type code 0x{code:02x}; expected one of "
                        f"{', '.join(f'0x{c:02x}' for c in IDX_TYPES)}")
    if ndim == 0:
        raise DataError(f"{source}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{source}: truncated IDX header ({len(raw)} bytes, expected at least {header})")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[code]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{source}: IDX shape {shape} needs {expected} data bytes, got {len(raw) - header}")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (plain or ``.gz``) and return its array."""
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def write_idx(path: str | Path, arr: np.ndarray, *, compress: bool | None = None) -> None:
    """Write ``arr`` as an IDX file (gzip when the name ends in ``.gz`` unless ``compress`` says otherwise).

    Used by tests and to export data; the inverse of :func:`read_idx`.
    """
    path = Path(path)
    arr = np.asarray(arr)
    codes = {dt.newbyteorder("="): c for c, dt in IDX_TYPES.items()}
    native = arr.dtype.newbyteorder("=")
    if native not in codes:
        raise DataError(f"cannot write dtype {arr.dtype} as IDX; expected one of {sorted(map(str, codes))}")
    code = codes[native]
    head = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    body = arr.astype(IDX_TYPES[code], copy=False).tobytes()
    compress = path.suffix == ".gz" if compress is None else compress
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(head + body)


def find_idx(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz``, whichever exists (plain first)."""
    for name in (stem, stem + ".gz"):
        p = folder / name
        if p.is_file():
            return p
    return None
