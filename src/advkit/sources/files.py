"""File-based data sources: Fashion-MNIST IDX files, image folders and ``.npz`` arrays."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..errors import DataError
from .idx import find_idx, read_idx

FASHION_ROOT = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_IDX_STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


# ------------------------------------------------------------------ IDX pairs (MNIST layout)
@functools.lru_cache(maxsize=8)
def read_idx_pair(folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 1, 28, 28) uint8, labels (N,) int64) from MNIST-layout IDX files in ``folder``."""
    root = Path(folder)
    paths = [find_idx(root, stem) for stem in _IDX_STEMS[split]]
    if None in paths:
        missing = [s for s, p in zip(_IDX_STEMS[split], paths) if p is None]
        raise DataError(f"{root}: expected IDX files {', '.join(missing)} (or .gz), not found")
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{paths[0]}: expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{paths[1]}: expected {len(images)} labels, got shape {labels.shape}")
    return images[:, None], labels.astype(np.int64)


def load_fashion_mnist(root: str | None, split: str):
    from .data import make_dataset

    folder = Path(root) if root else FASHION_ROOT
    if not folder.is_dir():
        hint = ("install it with `apt-get install dataset-fashion-mnist`, or pass a folder: fashion-mnist:ROOT"
                if root is None else "pass a folder holding the four Fashion-MNIST IDX files")
        raise DataError(f"Fashion-MNIST folder {folder} does not exist; {hint}")
    x, y = read_idx_pair(str(folder), split)
    return make_dataset(x, y, name="fashion-mnist", split=split, classes=FASHION_CLASSES, scale=255.0)


# ------------------------------------------------------------------ image folders
def _read_image(path: Path) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow comes with matplotlib
        raise DataError("imagefolder sources need Pillow (installed with matplotlib)") from e
    try:
        with Image.open(path) as im:
            mode = "L" if im.mode in ("1", "L", "I", "I;16", "F") else "RGB"
            return np.asarray(im.convert(mode), dtype=np.uint8)
    except OSError as e:
        raise DataError(f"cannot read image {path}: {e}") from e


def _to_common_channels(images: list[np.ndarray]) -> list[np.ndarray]:
    """HWC uint8 arrays; grayscale promoted to RGB when the folder mixes both."""
    rgb = any(im.ndim == 3 for im in images)
    out = []
    for im in images:
        if im.ndim == 2:
            im = np.repeat(im[:, :, None], 3, axis=2) if rgb else im[:, :, None]
        out.append(im)
    return out


def load_imagefolder(directory: str | None, split: str):
    from .data import make_dataset

    if not directory:
        raise DataError("imagefolder needs a directory: imagefolder:DIR")
    root = Path(directory)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    if (root / "train").is_dir() and (root / "test").is_dir():
        root = root / split
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files = [(f, i) for i, c in enumerate(classes) for f in sorted((root / c).iterdir())
             if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataError(f"{root}: expected one sub-folder per class holding {'/'.join(IMAGE_SUFFIXES)} images, "
                        f"found {len(classes)} sub-folders and no images")
    images = _to_common_channels([_read_image(f) for f, _ in files])
    shapes = {im.shape[:2] for im in images}
    if len(shapes) > 1:
        raise DataError(f"{root}: all images must share one size, got sizes {sorted(shapes)[:5]}; resize them first")
    x = np.stack(images).transpose(0, 3, 1, 2)
    y = np.array([i for _, i in files], dtype=np.int64)
    return make_dataset(x, y, name=f"imagefolder:{directory}", split=split, classes=tuple(classes), scale=255.0)


# ------------------------------------------------------------------ npz arrays
_ZIP_MAGIC, _NPY_MAGIC = b"PK", b"\x93NUMPY"


def _npz_arrays(path: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    head = _head(path)
    if not head:
        raise DataError(f"{path}: the file is empty (0 bytes); expected an .npz archive with arrays x and y")
    if head.startswith(_NPY_MAGIC):
        raise DataError(f"{path}: this is a single .npy array, not an .npz archive; save the images and labels "
                        "with np.savez(FILE, x=..., y=...)")
    if not head.startswith(_ZIP_MAGIC):
        raise DataError(f"{path}: not an .npz archive (it does not start with the zip signature); "
                        "save it with np.savez(FILE, x=..., y=...)")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            xk, yk = (f"x_{split}", f"y_{split}") if {f"x_{split}", f"y_{split}"} <= keys else ("x", "y")
            if not {xk, yk} <= keys:
                raise DataError(f"{path}: expected arrays 'x' and 'y' (or 'x_{split}'/'y_{split}'), got {sorted(keys)}")
            classes = z["classes"] if "classes" in keys else None
            return z[xk], z[yk], classes
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - zipfile, zlib and numpy raise many types for a damaged file
        raise DataError(f"{path}: cannot read it as an .npz archive without pickles; the file is truncated "
                        f"or corrupt ({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(8)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from None


def _to_nchw(x: np.ndarray, path: Path) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[1] in (1, 3):
        return x
    if x.ndim == 4 and x.shape[3] in (1, 3):
        return x.transpose(0, 3, 1, 2)
    raise DataError(f"{path}: x must have shape (N, C, H, W) or (N, H, W, C) with C in (1, 3), or (N, H, W); "
                    f"got {x.shape}")


def _scale(x: np.ndarray, path: Path) -> tuple[np.ndarray, float | None]:
    if x.dtype == np.uint8:
        return x, 255.0
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{path}: x must be uint8 (0..255) or float in [0, 1], got dtype {x.dtype}")
    if x.size and not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(1))
        raise DataError(f"{path}: x holds NaN or infinite pixels in {len(bad)} image(s) (first: {bad[:5].tolist()}); "
                        "expected finite values in [0, 1]")
    if x.size and (x.min() < 0 or x.max() > 1):
        raise DataError(f"{path}: float x must lie in [0, 1], got values in [{np.nanmin(x):.4g}, {np.nanmax(x):.4g}]; "
                        "scale the images or store them as uint8")
    return x, None


def load_npz(file: str | None, split: str):
    from .data import make_dataset

    if not file:
        raise DataError("npz needs a file: npz:FILE")
    path = Path(file)
    if not path.is_file():
        raise DataError(f"npz file {path} does not exist")
    x, y, classes = _npz_arrays(path, split)
    x, scale = _scale(_to_nchw(x, path), path)
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: y must be a 1-D integer array with one label per image ({len(x)}), "
                        f"got dtype {y.dtype} shape {y.shape}")
    if len(y) and y.min() < 0:
        raise DataError(f"{path}: labels must be non-negative, got minimum {y.min()}")
    n_cls = int(y.max()) + 1 if len(y) else 0
    names = tuple(str(c) for c in classes) if classes is not None else tuple(str(i) for i in range(n_cls))
    if len(names) < n_cls:
        raise DataError(f"{path}: 'classes' names {len(names)} classes but labels go up to {n_cls - 1}")
    return make_dataset(x, y, name=f"npz:{file}", split=split, classes=names, scale=scale)
