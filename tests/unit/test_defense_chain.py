"""Defense chains from text, random resize-and-pad, and each defense against a reference implementation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from advkit.defenses import (BitDepth, MedianFilter, RandomResizePad, adaptive, build_chain, defend, parse_defense)
from advkit.errors import ConfigError


@pytest.mark.parametrize("text, canonical", [
    ("jpeg:75", "jpeg:75"), ("bits:3,median:3", "bits:3,median:3"), ("noise:0.1", "noise:0.1"),
    ("resize-pad:0.9", "resize-pad:0.9"), (" JPEG:50 , bit-depth:2 ", "jpeg:50,bits:2"), ("median", "median:3"),
    (["jpeg:75", "noise:0.25"], "jpeg:75,noise:0.25"),
])
def test_parse_valid_chains(text, canonical):
    spec = parse_defense(text)
    assert spec.text == canonical
    assert parse_defense(spec.text) == spec  # the canonical text round-trips


@pytest.mark.parametrize("text, words", [
    ("", "empty step"), ("jpeg:75,", "empty step"), ("jpeg:0", "[1, 100]"), ("jpeg:101", "[1, 100]"),
    ("jpeg:7.5", "integer"), ("jpeg:abc", "'abc'"), ("bits:0", "[1, 8]"), ("bits:9", "[1, 8]"),
    ("median:4", "odd"), ("median:1", ">= 3"), ("noise:0", "(0, 1]"), ("noise:-0.1", "(0, 1]"),
    ("noise:nan", "'nan'"), ("noise:inf", "'inf'"), ("resize-pad:1", "(0, 1)"), ("resize-pad:0", "(0, 1)"),
    ("blur:3", "unknown defense 'blur'"), (3, "as text"),
])
def test_parse_rejects_with_a_clear_message(text, words):
    with pytest.raises(ConfigError) as e:
        parse_defense(text)
    assert words in str(e.value)


def test_randomized_and_differentiable_flags():
    assert not parse_defense("jpeg:75,bits:3").randomized
    assert parse_defense("jpeg:75,noise:0.1").randomized and parse_defense("resize-pad:0.8").randomized
    assert parse_defense("noise:0.1,resize-pad:0.8").differentiable
    assert not parse_defense("noise:0.1,median:3").differentiable


def test_chain_applies_steps_in_order_and_seeds_its_randomness():
    x = torch.rand(4, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    chain = build_chain("bits:2,median:3")
    assert torch.equal(chain(x), MedianFilter(3)(BitDepth(2)(x)))
    a, b = build_chain("noise:0.2", seed=5), build_chain("noise:0.2", seed=5)
    assert torch.equal(a(x), b(x))
    assert not torch.equal(build_chain("noise:0.2", seed=6)(x), build_chain("noise:0.2", seed=5)(x))


def test_adaptive_model_bpda_only_through_non_differentiable_steps(digits_model):
    clf, x, y = digits_model
    xs, ys = x[:16], y[:16]
    for text in ("jpeg:75", "bits:2,median:3", "resize-pad:0.8"):
        naive = defend(clf, build_chain(text, seed=1))
        adapt = adaptive(naive)
        if "resize" not in text:  # deterministic chains: identical forward values
            assert torch.allclose(naive.predict(xs, logits=True), adapt.predict(xs, logits=True), atol=1e-5)
        g_naive, g_adapt = _grad(naive, xs, ys), _grad(adapt, xs, ys)
        assert g_adapt.abs().sum() > 0
        if "resize" in text:  # differentiable: autograd is kept, no surrogate
            assert g_naive.abs().sum() > 0
            assert not any(type(m).__name__ == "BPDA" for m in adapt.modules())
        else:
            assert g_naive.abs().max() == 0  # rounding: the naive gradient is exactly zero


def _grad(model, x, y):
    xg = x.clone().requires_grad_(True)
    with model.inference():
        torch.nn.functional.cross_entropy(model(xg), y).backward()
    return xg.grad


# ----------------------------------------------------------------------- random resize-and-pad (Xie et al.)
def test_resize_pad_shape_border_and_content():
    x = torch.rand(64, 3, 20, 20, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.1  # no zero pixels
    out = RandomResizePad(0.7, seed=0)(x)
    assert out.shape == x.shape
    sizes = set()
    for i in range(len(x)):
        nz = torch.nonzero(out[i, 0])
        top, left = nz.min(0).values.tolist()
        bottom, right = (nz.max(0).values + 1).tolist()
        s = bottom - top
        sizes.add(s)
        assert 14 <= s <= 20 and right - left == s  # ⌈0.7·20⌉ = 14 … 20, square for square input
        ref = torch.nn.functional.interpolate(x[i:i + 1], size=(s, s), mode="nearest")[0]
        assert torch.equal(out[i, :, top:bottom, left:right], ref)  # nearest-neighbour resize, pasted
        assert (out[i].abs().sum() - ref.abs().sum()).abs() < 1e-3  # zeros everywhere else
    assert len(sizes) >= 4  # the size really is random


def test_resize_pad_is_seeded_randomized_and_differentiable():
    x = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    assert torch.equal(RandomResizePad(0.8, seed=3)(x), RandomResizePad(0.8, seed=3)(x))
    d = RandomResizePad(0.8, seed=3)
    assert not torch.equal(d(x), d(x))
    xg = x.clone().requires_grad_(True)
    RandomResizePad(0.8, seed=3)(xg).sum().backward()
    assert xg.grad.abs().sum() > 0
    with pytest.raises(ConfigError):
        RandomResizePad(1.5)


# ----------------------------------------------------------------------- reference implementations
def test_median_filter_matches_scipy():
    from scipy import ndimage
    x = torch.rand(3, 2, 11, 13, generator=torch.Generator().manual_seed(2))
    for k in (3, 5):
        ref = ndimage.median_filter(x.numpy(), size=(1, 1, k, k), mode="mirror")  # torch "reflect" = scipy "mirror"
        np.testing.assert_allclose(MedianFilter(k)(x).numpy(), ref, atol=0)


def test_bit_depth_matches_numpy():
    x = torch.rand(4, 3, 9, 9, generator=torch.Generator().manual_seed(3))
    for bits in (1, 2, 3, 5, 8):
        levels = 2 ** bits - 1
        ref = np.round(x.numpy().astype(np.float64) * levels) / levels
        np.testing.assert_allclose(BitDepth(bits)(x).numpy(), ref, atol=1e-6)


@pytest.mark.parametrize("quality", [25, 50, 75, 90])
def test_jpeg_agrees_with_libjpeg_on_mnist_predictions(quality):
    """advkit's torch JPEG vs Pillow (libjpeg) on 200 MNIST test images: pixel error and predictions."""
    import io

    from PIL import Image

    from advkit.defenses import JPEG
    from advkit.sources import load_data, load_model
    ds = load_data("mnist5k", "test")
    x = ds.x[:200]
    ref = []
    for im in x:
        buf = io.BytesIO()
        Image.fromarray((im[0].numpy() * 255).round().astype(np.uint8)).save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        ref.append(torch.from_numpy(np.asarray(Image.open(buf)).astype(np.float32) / 255)[None])
    ref = torch.stack(ref)
    ours = JPEG(quality)(x)
    assert (ours - ref).abs().mean() * 255 <= 0.25  # measured 0.09-0.15 (benchmarks/bench_defenses.py)
    clf = load_model("zoo:mnist5k-standard")
    assert (clf.predict(ours) == clf.predict(ref)).float().mean() >= 0.99  # measured 100% on 1000 images


def _resize_pad_by_size_groups(x, sizes, u, h, w):
    """The straightforward form of resize-pad (one F.interpolate per drawn size): the reference for the
    batched gather, which must give the same image for the same draws."""
    import torch.nn.functional as F
    out = torch.zeros_like(x)
    for s in torch.unique(sizes).tolist():
        idx = torch.nonzero(sizes == s).flatten()
        sw = max(1, min(w, round(s * w / h)))
        small = F.interpolate(x[idx], size=(s, sw), mode="nearest")
        top = (u[idx, 0] * (h - s + 1)).long().clamp(max=h - s)
        left = (u[idx, 1] * (w - sw + 1)).long().clamp(max=w - sw)
        for k, i in enumerate(idx.tolist()):
            out[i, :, top[k]:top[k] + s, left[k]:left[k] + sw] = small[k]
    return out


@pytest.mark.parametrize("shape,ratio", [((1, 28, 28), 0.9), ((3, 32, 32), 0.5), ((3, 24, 40), 0.75),
                                         ((1, 7, 5), 0.3), ((2, 9, 9), 1.0)])
def test_resize_pad_gather_equals_interpolate_per_size_and_needs_no_host_sync(shape, ratio):
    import math

    from advkit.defenses.randomization import RandomResizePad
    from advkit.sync import HostSyncCounter
    c, h, w = shape
    x = torch.rand(64, c, h, w, generator=torch.Generator().manual_seed(1))
    d = RandomResizePad(ratio, seed=3)
    with HostSyncCounter() as counter:
        got = d(x)
    assert counter.total == 0, counter.counts
    g = torch.Generator().manual_seed(3)  # the defense's draws, replayed
    lo = min(h, max(1, math.ceil(ratio * h - 1e-9)))
    sizes = torch.randint(lo, h + 1, (64,), generator=g)
    u = torch.rand(64, 2, generator=g)
    assert torch.equal(got, _resize_pad_by_size_groups(x, sizes, u, h, w))
    # the gradient is the gather's: pixel j receives x_j once per output pixel copied from it, so
    # Σ_j x_j·∂/∂x_j Σ out·out.detach() = Σ out²
    xg = x.clone().requires_grad_(True)
    out = RandomResizePad(ratio, seed=3)(xg)
    gx, = torch.autograd.grad((out * out.detach()).sum(), xg)
    assert torch.isclose((gx * x).sum(), (out.detach() ** 2).sum(), rtol=1e-5)
