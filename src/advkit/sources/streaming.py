"""Image sources read per batch: memory bounded by the batch, not by the data set.

:class:`StreamedImages` stands in for the ``(N, C, H, W)`` float tensor of a :class:`~advkit.sources.data.Dataset`:
``len``, ``shape``, ``dtype`` and indexing (an int, a slice, or an index tensor/array) work as on a
tensor, and every index operation decodes only the images it returns.  Two kinds:

- :class:`FileImages` — an image folder: one file per image, decoded with Pillow when indexed.  The
  optional transform is the usual evaluation protocol: resize the shorter side to ``resize`` pixels
  (bilinear), then take the centre ``crop`` × ``crop`` square (ImageNet: resize 256, crop 224).
- :class:`ArrayImages` — uint8 arrays already in memory (the torchvision on-disk formats hold their
  images as one uint8 array): converted to float32 per batch, so the float copy (4× the bytes) is
  never made for the whole set.

Sample order (the selection ``--n`` takes a prefix of it) is fixed and documented per source; for
image folders it is round-robin over classes (``files.imagefolder_order``), so a prefix is as
class-balanced as the folder allows, and identical for every number of processes.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..progress import NULL, ProgressFn

#: the progress task of reading an image folder for its content hash
DIGEST_TASK = "data hash"


@dataclass(frozen=True)
class Transform:
    """Resize the shorter side to ``resize`` (bilinear), then centre-crop ``crop``×``crop``."""

    resize: int | None = None
    crop: int | None = None

    def __post_init__(self):
        for name in ("resize", "crop"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ConfigError(f"{name}: expected an integer >= 1, got {v!r}")
        if self.resize is not None and self.crop is not None and self.crop > self.resize:
            raise ConfigError(f"crop ({self.crop}) must not exceed resize ({self.resize})")

    @property
    def identity(self) -> bool:
        return self.resize is None and self.crop is None

    def __call__(self, im):
        """Apply to a PIL image; returns a PIL image."""
        from PIL import Image
        if self.resize is not None:
            w, h = im.size
            s = self.resize / min(w, h)
            size = (max(1, round(w * s)), max(1, round(h * s)))
            if size != (w, h):
                im = im.resize(size, Image.BILINEAR)
        if self.crop is not None:
            w, h = im.size
            if min(w, h) < self.crop:
                raise DataError(f"image of size {w}×{h} is smaller than the centre crop {self.crop}; "
                                "declare resize >= crop")
            left, top = (w - self.crop) // 2, (h - self.crop) // 2
            im = im.crop((left, top, left + self.crop, top + self.crop))
        return im


def parse_ref_options(ref: str) -> tuple[str, Transform]:
    """``"imagefolder:DIR?resize=256&crop=224"`` → (``"imagefolder:DIR"``, Transform(256, 224))."""
    base, sep, query = ref.rpartition("?")
    if not sep or "=" not in query:
        return ref, Transform()
    opts = {}
    for item in query.split("&"):
        key, eq, value = item.partition("=")
        if key not in ("resize", "crop") or not eq:
            raise ConfigError(f"data REF options: expected resize=N and/or crop=N after '?', got {item!r} in {ref!r}")
        try:
            opts[key] = int(value)
        except ValueError:
            raise ConfigError(f"data REF option {key}: expected an integer, got {value!r}") from None
    return base, Transform(**opts)


class StreamedImages:
    """A read-on-index stand-in for an ``(N, C, H, W)`` float32 image tensor in [0, 1]."""

    dtype = torch.float32
    device = torch.device("cpu")

    def __init__(self, n: int, chw: tuple[int, int, int]):
        self._n, self._chw = int(n), tuple(chw)

    def __len__(self) -> int:
        return self._n

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self._n, *self._chw))

    def dim(self) -> int:
        return 4

    def _load(self, idx: np.ndarray) -> np.ndarray:  # (k, C, H, W) uint8
        raise NotImplementedError

    def take(self, n: int | None) -> "StreamedImages":
        """The first ``n`` images, still streamed."""
        raise NotImplementedError

    def content_digest(self, progress: ProgressFn = NULL) -> str:
        """sha256 (hex) of what the images are made from (file bytes or array bytes) and the transform;
        reads the sources once, in chunks (run identity, DESIGN principle 12); ``progress("data hash",
        files read, files)`` hears about a folder being read (50,000 ImageNet files take a while)."""
        raise NotImplementedError

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, (int, np.integer)):
            return self[np.array([int(key)])][0]
        if isinstance(key, slice):
            idx = np.arange(self._n)[key]
        else:
            idx = np.asarray(key.cpu() if isinstance(key, torch.Tensor) else key)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
            idx = idx.astype(np.int64).reshape(-1)
            if len(idx) and (idx.min() < -self._n or idx.max() >= self._n):
                raise IndexError(f"index out of range for {self._n} images")
            idx = np.where(idx < 0, idx + self._n, idx)
        if not len(idx):
            return torch.zeros((0, *self._chw), dtype=torch.float32)
        return torch.from_numpy(self._load(idx)).to(torch.float32).div_(255.0)

    def materialize(self) -> torch.Tensor:
        return self[:]


class ArrayImages(StreamedImages):
    """uint8 ``(N, C, H, W)`` images held as bytes; float32 only for what is indexed."""

    def __init__(self, x: np.ndarray, transform: Transform = Transform()):
        if x.dtype != np.uint8 or x.ndim != 4:
            raise DataError(f"expected uint8 images of shape (N, C, H, W), got {x.dtype} {x.shape}")
        self.x, self.transform = x, transform
        chw = x.shape[1:] if transform.identity else _transformed_chw(x[0], transform)
        super().__init__(len(x), chw)

    def _load(self, idx):
        if self.transform.identity:
            return self.x[idx]
        return np.stack([_apply(self.x[i], self.transform) for i in idx])

    def take(self, n):
        return self if n is None or n >= len(self) else ArrayImages(self.x[:n], self.transform)

    def content_digest(self, progress: ProgressFn = NULL) -> str:
        h = hashlib.sha256(f"array|{self.x.shape}|{self.transform}|".encode())
        h.update(np.ascontiguousarray(self.x).data)
        return h.hexdigest()


class FileImages(StreamedImages):
    """One image file per sample, decoded (and transformed) when indexed."""

    def __init__(self, files: Sequence[Path], mode: str, chw: tuple[int, int, int], transform: Transform = Transform()):
        self.files, self.mode, self.transform = list(files), mode, transform
        super().__init__(len(self.files), chw)

    def _load(self, idx):
        out = np.empty((len(idx), *self._chw), np.uint8)
        for j, i in enumerate(idx):
            a = read_file(self.files[i], self.mode, self.transform)
            if a.shape != self._chw:
                raise DataError(f"{self.files[i]}: expected an image of {self._chw[2]}×{self._chw[1]} after the "
                                f"transform (like the first image), got {a.shape[2]}×{a.shape[1]}; declare "
                                "resize/crop (REF ?resize=N&crop=N or spec keys) so every image has one size")
            out[j] = a
        return out

    def take(self, n):
        if n is None or n >= len(self):
            return self
        return FileImages(self.files[:n], self.mode, self._chw, self.transform)

    def content_digest(self, progress: ProgressFn = NULL) -> str:
        h = hashlib.sha256(f"files|{len(self.files)}|{self.mode}|{self._chw}|{self.transform}|".encode())
        n = len(self.files)
        for i, f in enumerate(self.files):
            if i % 256 == 0:
                progress(DIGEST_TASK, i, n)
            h.update(f"{f.name}|".encode())
            try:
                with open(f, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
            except OSError as e:
                raise DataError(f"cannot read image {f}: {e}") from e
        progress(DIGEST_TASK, n, n)
        return h.hexdigest()


def open_image(path: Path):
    """``PIL.Image.open(path)``, with a damaged file and a decompression bomb (a header claiming more than
    twice Pillow's ``MAX_IMAGE_PIXELS``: decoding it would exhaust memory) as one-line DataErrors."""
    from PIL import Image
    try:
        return Image.open(path)
    except Image.DecompressionBombError:
        raise DataError(f"cannot read image {path}: expected at most {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels, "
                        "got a header claiming more (a decompression bomb?); it was not decoded") from None
    except OSError as e:
        raise DataError(f"cannot read image {path}: {e}") from e


def read_file(path: Path, mode: str, transform: Transform) -> np.ndarray:
    """(C, H, W) uint8 of one image file in ``mode`` ("L" or "RGB") after ``transform``."""
    try:
        with open_image(path) as im:
            im = transform(im.convert(mode))
            a = np.asarray(im, dtype=np.uint8)
    except OSError as e:
        raise DataError(f"cannot read image {path}: {e}") from e
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _apply(chw: np.ndarray, transform: Transform) -> np.ndarray:
    from PIL import Image
    im = Image.fromarray(chw[0] if chw.shape[0] == 1 else chw.transpose(1, 2, 0))
    a = np.asarray(transform(im), dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _transformed_chw(chw: np.ndarray, transform: Transform) -> tuple[int, int, int]:
    return tuple(_apply(chw, transform).shape)  # type: ignore[return-value]


__all__ = ["Transform", "parse_ref_options", "StreamedImages", "ArrayImages", "FileImages", "read_file"]
