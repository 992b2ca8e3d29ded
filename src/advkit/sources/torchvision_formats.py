"""torchvision's on-disk dataset layouts, read without importing torchvision.

``torchvision:MNIST:ROOT`` and ``torchvision:FashionMNIST:ROOT`` read the IDX files in
``ROOT/<Name>/raw/`` (plain or ``.gz``); ``torchvision:CIFAR10:ROOT`` reads the python batches in
``ROOT/cifar-10-batches-py/`` (``data_batch_1..5`` train, ``test_batch`` test, ``batches.meta`` class
names) through a restricted unpickler that can only rebuild numpy arrays — never run code.

Nothing is downloaded unless ``download=True``; downloading needs torchvision installed (advkit then
asks torchvision to fetch the files into ROOT and reads them as above).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .files import FASHION_CLASSES, read_idx_pair
from .safe_pickle import safe_load

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DATASETS = ("MNIST", "FashionMNIST", "CIFAR10")


def _download(name: str, root: Path, split: str) -> None:
    try:
        import torchvision.datasets as tvd
    except ImportError as e:
        raise DataError(f"downloading torchvision:{name} requires torchvision (`pip install torchvision`) and "
                        f"network access; otherwise place the files under {root} yourself") from e
    getattr(tvd, name)(str(root), train=split == "train", download=True)  # pragma: no cover - needs network


def _mnist_like(name: str, root: Path, split: str, stream: bool = False):
    from .dataset import DIGIT_CLASSES, make_dataset

    raw = root / name / "raw"
    if not raw.is_dir():
        raise DataError(f"torchvision:{name}: expected the folder {raw} (torchvision's layout ROOT/{name}/raw/), "
                        "not found; pass download=True (needs torchvision) or copy the IDX files there")
    x, y = read_idx_pair(str(raw), split)
    classes = DIGIT_CLASSES if name == "MNIST" else FASHION_CLASSES
    return make_dataset(x, y, name=f"torchvision:{name}", split=split, classes=classes, scale=255.0, stream=stream)


def _cifar_folder(root: Path) -> Path:
    for folder in (root / "cifar-10-batches-py", root):
        if (folder / "test_batch").is_file():
            return folder
    raise DataError(f"torchvision:CIFAR10: expected {root / 'cifar-10-batches-py'} holding data_batch_1..5 and "
                    "test_batch, not found; pass download=True (needs torchvision) or extract cifar-10-python.tar.gz there")


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"CIFAR-10 batch {path} is missing")
    with open(path, "rb") as f:
        batch = safe_load(f, source=str(path))
    if not isinstance(batch, dict):
        raise DataError(f"{path}: expected a dict with 'data' and 'labels', got {type(batch).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels", batch.get("fine_labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: expected 'data' as a uint8 array of shape (N, 3072), got {got}")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(data),):
        raise DataError(f"{path}: expected {len(data)} labels, got shape {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


def _cifar_classes(folder: Path) -> tuple[str, ...]:
    meta = folder / "batches.meta"
    if not meta.is_file():
        return CIFAR10_CLASSES
    with open(meta, "rb") as f:
        d = safe_load(f, source=str(meta))
    names = d.get("label_names", d.get(b"label_names")) if isinstance(d, dict) else None
    if not names:
        return CIFAR10_CLASSES
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


@functools.lru_cache(maxsize=4)
def _cifar_arrays(folder: str, split: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    root = Path(folder)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    parts = [_read_batch(root / n) for n in names]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return x, y, _cifar_classes(root)


def _cifar10(root: Path, split: str, stream: bool = False):
    from .dataset import make_dataset

    x, y, classes = _cifar_arrays(str(_cifar_folder(root)), split)
    if len(y) and (y.min() < 0 or y.max() >= len(classes)):
        raise DataError(f"CIFAR-10 labels must lie in [0, {len(classes)}), got [{y.min()}, {y.max()}]")
    return make_dataset(x, y, name="torchvision:CIFAR10", split=split, classes=classes, scale=255.0, stream=stream)


def _present(name: str, root: Path) -> bool:
    if name == "CIFAR10":
        return any((f / "test_batch").is_file() for f in (root / "cifar-10-batches-py", root))
    return (root / name / "raw").is_dir()


def load_torchvision(arg: str | None, split: str, *, download: bool = False, stream: bool = False):
    """Dispatch ``NAME:ROOT`` (the part after ``torchvision:``)."""
    name, _, root = (arg or "").partition(":")
    if name not in DATASETS:
        raise ConfigError(f"torchvision data REF must be torchvision:NAME:ROOT with NAME one of {DATASETS}, "
                          f"got torchvision:{arg}")
    if not root:
        raise ConfigError(f"torchvision:{name} needs a root folder: torchvision:{name}:ROOT")
    path = Path(root)
    if download and not _present(name, path):
        _download(name, path, split)
    return _cifar10(path, split, stream) if name == "CIFAR10" else _mnist_like(name, path, split, stream)
