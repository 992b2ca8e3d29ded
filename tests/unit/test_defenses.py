"""Preprocessing defenses: their forward passes do what they claim, and they are weak under BPDA / EOT."""
import dataclasses
import io

import numpy as np
import pytest
import torch

from advkit.attacks.pgd import PGD
from advkit.defenses import JPEG, BitDepth, GaussianNoise, MedianFilter, bpda, defend
from advkit.errors import ConfigError, ModelError
from advkit.threat import ThreatModel


def _smooth_rgb(n=6, size=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.interpolate(torch.rand(n, 3, 5, 5, generator=g), size=(size, size), mode="bilinear")


def _gray(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand(n, 1, 7, 7, generator=g), size=(28, 28), mode="bicubic")
    return base.clamp(0, 1)


def _pil_jpeg(x, quality):
    from PIL import Image
    out = []
    for im in x:
        a = (im.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(a[..., 0] if a.shape[2] == 1 else a).save(buf, format="JPEG", quality=quality, subsampling=0)
        buf.seek(0)
        b = np.asarray(Image.open(buf)).astype(np.float32) / 255
        out.append(torch.from_numpy(b if b.ndim == 3 else b[..., None]).permute(2, 0, 1))
    return torch.stack(out)


def test_bit_depth_levels_and_error():
    x = torch.rand(4, 3, 9, 9, generator=torch.Generator().manual_seed(0))
    for bits in (1, 3, 5):
        y = BitDepth(bits)(x)
        levels = torch.unique(y)
        assert len(levels) <= 2 ** bits
        assert torch.allclose(levels * (2 ** bits - 1), torch.round(levels * (2 ** bits - 1)), atol=1e-5)
        assert (y - x).abs().max() <= 0.5 / (2 ** bits - 1) + 1e-6


def test_median_filter_known_patch():
    x = torch.arange(1.0, 10.0).view(1, 1, 3, 3) / 10
    assert MedianFilter(3)(x)[0, 0, 1, 1].item() == pytest.approx(0.5)  # median of 0.1 … 0.9
    img = torch.full((1, 1, 6, 6), 0.2)
    img[0, 0, 2, 3] = 1.0  # salt
    assert torch.allclose(MedianFilter(3)(img), torch.full_like(img, 0.2))
    with pytest.raises(ConfigError):
        MedianFilter(4)


@pytest.mark.parametrize("quality", [30, 75, 95])
def test_jpeg_matches_libjpeg_closely(quality):
    for x in (_gray(), _smooth_rgb()):
        ours, ref = JPEG(quality)(x), _pil_jpeg(x, quality)
        # a float DCT vs libjpeg's integer DCT: occasional coefficients round differently, on average
        # the two outputs differ by a small fraction of what compression itself changes
        assert (ours - ref).abs().mean() <= 0.25 * (ref - x).abs().mean()
        assert (ours - ref).abs().mean() <= 0.5 / 255
        assert torch.equal(ours, torch.round(ours * 255) / 255)  # 8-bit output


def test_jpeg_error_bounds_and_near_idempotence():
    x = _gray()
    errors = [(JPEG(q)(x) - x).abs().mean().item() for q in (20, 50, 90, 100)]
    assert errors == sorted(errors, reverse=True)  # higher quality, smaller error
    assert errors[-1] <= 1.0 / 255  # quality 100: quantisation steps of 1
    once = JPEG(50)(x)
    assert (JPEG(50)(once) - once).abs().mean() <= 0.5 * (once - x).abs().mean()


def test_noise_is_reproducible_from_its_seed_and_randomized():
    x = torch.full((2, 1, 5, 5), 0.5)
    a, b = GaussianNoise(0.1, seed=1)(x), GaussianNoise(0.1, seed=1)(x)
    assert torch.equal(a, b)
    d = GaussianNoise(0.1, seed=1)
    assert not torch.equal(d(x), d(x))
    assert a.min() >= 0 and a.max() <= 1


def test_bpda_forward_is_unchanged_and_gradient_flows(digits_model):
    clf, x, y = digits_model
    xs = x[:8]
    for d in (JPEG(60), BitDepth(3)):
        dm, bm = defend(clf, d), bpda(defend(clf, d))
        assert torch.allclose(dm.predict(xs, logits=True), bm.predict(xs, logits=True), atol=1e-5)
        g_plain = _grad(dm, xs, y[:8])
        g_bpda = _grad(bm, xs, y[:8])
        assert g_plain.abs().max() == 0  # rounding: zero gradient, the masking BPDA removes
        # identity surrogate: ∇ₓ f(g(x)) is replaced by ∇f evaluated at g(x)
        assert torch.allclose(g_bpda, _grad(clf, d(xs), y[:8]), atol=1e-6)
        assert g_bpda.abs().max() > 0
    with pytest.raises(ModelError):
        bpda(clf)


def _grad(model, x, y):
    xg = x.clone().requires_grad_(True)
    with model.inference():
        torch.nn.functional.cross_entropy(model(xg), y).backward()
    return xg.grad


def test_preprocessing_defenses_fall_to_bpda_and_eot(digits_model):
    """The product's demonstration (Athalye et al. 2018): JPEG and bit depth look robust to plain PGD
    because their gradient is zero; through BPDA they are about as weak as the undefended model."""
    clf, x, y = digits_model
    x, y = x[:100], y[:100]
    pgd = PGD(ThreatModel("linf", 0.2), steps=20)

    def robust(model, attack=pgd):
        return attack(model, x, y, generator=torch.Generator().manual_seed(0)).robust_accuracy

    undefended = robust(clf)
    assert undefended <= 0.1
    for d in (JPEG(75), BitDepth(4)):
        plain, through = robust(defend(clf, d)), robust(bpda(defend(clf, d)))
        assert plain >= 0.85, (d.name, plain)  # looks robust ...
        assert through <= undefended + 0.1, (d.name, through)  # ... and is not
    noisy = defend(clf, GaussianNoise(0.1, seed=0))
    plain, eot = robust(noisy), robust(noisy, dataclasses.replace(pgd, eot=10))
    assert eot <= plain - 0.15, (plain, eot)
