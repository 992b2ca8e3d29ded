"""File-based data sources: Fashion-MNIST IDX files, image folders and ``.npz`` arrays."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

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
    from .dataset import make_dataset

    folder = Path(root) if root else FASHION_ROOT
    if not folder.is_dir():
        hint = ("install it with `apt-get install dataset-fashion-mnist`, or pass a folder: fashion-mnist:ROOT"
                if root is None else "pass a folder holding the four Fashion-MNIST IDX files")
        raise DataError(f"Fashion-MNIST folder {folder} does not exist; {hint}")
    x, y = read_idx_pair(str(folder), split)
    return make_dataset(x, y, name="fashion-mnist", split=split, classes=FASHION_CLASSES, scale=255.0)


# ------------------------------------------------------------------ image folders
def imagefolder_order(files_per_class: list[list[Path]]) -> list[tuple[Path, int]]:
    """Round-robin over classes (file names sorted within each class): the documented sample order
    of ``imagefolder:``, so that every prefix (``--n``) is as class-balanced as the folder allows."""
    out, depth = [], max((len(f) for f in files_per_class), default=0)
    for j in range(depth):
        out.extend((files[j], c) for c, files in enumerate(files_per_class) if j < len(files))
    return out


def _folder_geometry(files: list[Path], transform) -> tuple[str, tuple[int, int, int]]:
    """(PIL mode, (C, H, W)): without a crop every header is read (sizes must agree; RGB when any image
    is colour); with a crop the first image decides the mode and the crop the size."""
    from .streaming import open_image, read_file
    if transform.crop is not None:
        with open_image(files[0]) as im:
            mode = "L" if im.mode in _GRAY_MODES else "RGB"
        return mode, read_file(files[0], mode, transform).shape
    modes, sizes = set(), set()
    for f in files:
        try:
            with open_image(f) as im:
                modes.add("L" if im.mode in _GRAY_MODES else "RGB")
                sizes.add(im.size)
        except OSError as e:
            raise DataError(f"cannot read image {f}: {e}") from e
    if len(sizes) > 1 and transform.resize is None:
        raise DataError(f"all images must share one size, got sizes {sorted(sizes)[:5]}; resize them first or "
                        "declare resize/crop (imagefolder:DIR?resize=256&crop=224)")
    mode = "RGB" if "RGB" in modes else "L"
    return mode, read_file(files[0], mode, transform).shape


_GRAY_MODES = ("1", "L", "I", "I;16", "F")


def load_imagefolder(directory: str | None, split: str, *, stream: bool = False, transform=None):
    """``DIR/<class>/*.png|jpg`` (``DIR/<split>/...`` when train/test sub-folders exist), in
    :func:`imagefolder_order`; ``stream`` keeps the images on disk until indexed."""
    from .dataset import Dataset
    from .streaming import FileImages, Transform

    transform = transform or Transform()
    if not directory:
        raise DataError("imagefolder needs a directory: imagefolder:DIR")
    root = Path(directory)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    if (root / "train").is_dir() and (root / "test").is_dir():
        root = root / split
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    per_class = [[f for f in sorted((root / c).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES] for c in classes]
    files = imagefolder_order(per_class)
    if not files:
        raise DataError(f"{root}: expected one sub-folder per class holding {'/'.join(IMAGE_SUFFIXES)} images, "
                        f"found {len(classes)} sub-folders and no images")
    mode, chw = _folder_geometry([f for f, _ in files], transform)
    x = FileImages([f for f, _ in files], mode, chw, transform)
    y = torch.tensor([i for _, i in files], dtype=torch.long)
    return Dataset(x if stream else x.materialize(), y, len(classes), f"imagefolder:{directory}", tuple(classes), split)


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


#: labels at or above this are refused before anything is sized by them (a label of 10⁹ would ask for 10⁹
#: class names)
MAX_CLASSES = 100_000


def load_npz(file: str | None, split: str):
    from .dataset import make_dataset

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
    if len(y) and int(y.max()) >= MAX_CLASSES:
        i = int(np.argmax(y))
        raise DataError(f"{path}: label {int(y[i])} (sample {i}) is beyond any classifier's classes; expected labels "
                        f"below {MAX_CLASSES:,} (class indices 0..K-1)")
    n_cls = int(y.max()) + 1 if len(y) else 0
    names = tuple(str(c) for c in classes) if classes is not None else tuple(str(i) for i in range(n_cls))
    if len(names) < n_cls:
        raise DataError(f"{path}: 'classes' names {len(names)} classes but labels go up to {n_cls - 1}")
    return make_dataset(x, y, name=f"npz:{file}", split=split, classes=names, scale=scale)
