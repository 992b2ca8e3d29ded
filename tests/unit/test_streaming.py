"""Streamed data sources: the same images as the in-memory load, read per index, with transforms."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from advkit.errors import ConfigError, DataError
from advkit.sources.data import load_data, make_dataset
from advkit.sources.streaming import FileImages, Transform, parse_ref_options


def _folder(root, sizes=((40, 30),), per_class=3, classes=("a", "b", "c")):
    from PIL import Image
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            w, h = sizes[i % len(sizes)]
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_streamed_folder_equals_in_memory_and_reads_only_what_is_indexed(tmp_path, monkeypatch):
    root = _folder(tmp_path / "f")
    full = load_data(f"imagefolder:{root}")
    lazy = load_data(f"imagefolder:{root}", stream=True)
    assert isinstance(lazy.x, FileImages) and lazy.streamed and not full.streamed
    assert lazy.x.shape == full.x.shape == (9, 3, 30, 40)
    assert torch.equal(lazy.y, full.y) and lazy.y.tolist()[:3] == [0, 1, 2]
    from advkit.sources import streaming
    reads = []
    real = streaming.read_file
    monkeypatch.setattr(streaming, "read_file", lambda *a: reads.append(a[0]) or real(*a))
    assert torch.equal(lazy.x[2:5], full.x[2:5])
    assert torch.equal(lazy.x[torch.tensor([7, 1])], full.x[[7, 1]])
    assert torch.equal(lazy.x[4], full.x[4])
    assert len(reads) == 6  # 3 + 2 + 1: nothing but the indexed images was decoded
    d = lazy.x.content_digest()
    assert d == load_data(f"imagefolder:{root}", stream=True).x.content_digest() != lazy.x.take(8).content_digest()
    sub = lazy.subset(4)
    assert isinstance(sub.x, FileImages) and len(sub.x) == 4 and torch.equal(sub.x[:], full.x[:4])


def test_resize_and_centre_crop_from_the_ref_or_the_arguments(tmp_path):
    root = _folder(tmp_path / "f", sizes=((40, 30), (64, 48)))
    with pytest.raises(DataError, match="share one size"):
        load_data(f"imagefolder:{root}")
    ds = load_data(f"imagefolder:{root}?resize=32&crop=24", stream=True)
    assert ds.x.shape == (9, 3, 24, 24) and ds.x[:].shape == (9, 3, 24, 24)
    assert load_data(f"imagefolder:{root}", resize=32, crop=24).x.shape == (9, 3, 24, 24)
    # the crop is the centre of the resized image: compare with Pillow directly
    from PIL import Image
    first = sorted((root / "a").iterdir())[0]
    with Image.open(first) as im:
        im = im.convert("RGB").resize((43, 32), Image.BILINEAR).crop((9, 4, 33, 28))
        want = torch.from_numpy(np.asarray(im).transpose(2, 0, 1).copy()).float() / 255
    assert torch.equal(ds.x[0], want)
    assert parse_ref_options("imagefolder:/d?resize=256&crop=224") == ("imagefolder:/d", Transform(256, 224))
    with pytest.raises(ConfigError, match="resize=N"):
        parse_ref_options("imagefolder:/d?size=3")
    with pytest.raises(ConfigError, match="must not exceed"):
        Transform(resize=10, crop=20)
    with pytest.raises(ConfigError, match="imagefolder data only"):
        load_data("digits?resize=10")


def test_array_images_convert_per_batch():
    x = np.arange(4 * 1 * 2 * 2, dtype=np.uint8).reshape(4, 1, 2, 2)
    ds = make_dataset(x, np.arange(4), name="t", split="test", classes=tuple("abcd"), scale=255.0, stream=True)
    ref = make_dataset(x, np.arange(4), name="t", split="test", classes=tuple("abcd"), scale=255.0)
    assert ds.streamed and torch.equal(ds.x[1:3], ref.x[1:3]) and torch.equal(ds.subset(2).x[:], ref.x[:2])


def test_reading_a_folder_for_its_content_hash_reports_progress(tmp_path):
    root = _folder(tmp_path / "f", per_class=100)  # 300 files: two reports on the way, one at the end
    lazy = load_data(f"imagefolder:{root}", stream=True)
    seen = []
    digest = lazy.x.content_digest(lambda task, done, total: seen.append((task, done, total)))
    assert digest == lazy.x.content_digest()  # reporting changes nothing
    assert {t for t, _, _ in seen} == {"data hash"} and {tot for _, _, tot in seen} == {300}
    done = [d for _, d, _ in seen]
    assert done == sorted(done) and done[0] == 0 and done[-1] == 300 and len(done) == 3
