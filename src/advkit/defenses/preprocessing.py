"""Input-preprocessing defenses, and how to attack them honestly (BPDA, EOT).

Each defense is an ``nn.Module`` on pixels in [0, 1] with a ``surrogate()`` for BPDA:

* :class:`JPEG` — JPEG compression (Guo, Rana, Cissé & van der Maaten 2018, "Countering adversarial
  images using input transformations"; Dziugaite et al. 2016).  Implemented in torch (device-resident,
  batched): 8-bit rounding, RGB→YCbCr (JFIF) for 3 channels, level shift −128, 8×8 orthonormal DCT-II,
  quantisation with the IJG tables scaled by ``quality`` (libjpeg's formula: 5000/q for q < 50,
  200 − 2q otherwise), dequantisation, inverse DCT, back to 8-bit pixels.  No chroma subsampling (4:4:4),
  no entropy coding (lossless, so irrelevant to the output).
* :class:`BitDepth` — colour-depth reduction to 2^bits levels (Xu, Evans & Qi 2018, "Feature squeezing").
* :class:`MedianFilter` — k×k median smoothing with reflect padding (Xu et al. 2018).
* :class:`GaussianNoise` — additive N(0, σ²) noise, clipped to [0, 1] (a randomized defense).

The rounding in JPEG and bit depth has zero gradient almost everywhere, so plain gradient attacks see
no signal and the defended model *looks* robust; the median filter's gradient is sparse.  Athalye,
Carlini & Wagner (2018), "Obfuscated gradients give a false sense of security": attack the forward
pass through the defense g and the backward pass through a surrogate s ≈ g (BPDA; s(x) = x for all
four defenses here), and average gradients over the randomness of noise (EOT, the attacks' ``eot``).
:func:`defend` prepends a defense to a Classifier; :func:`bpda` returns the same model with the
defense's backward pass replaced by its surrogate (via :class:`advkit.attacks.adaptive.BPDA`).
"""
from __future__ import annotations

import math
from typing import Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.adaptive import BPDA
from ..errors import ConfigError, ModelError
from ..model import Classifier

_LUMA = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
         14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
         49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
_CHROMA = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
           47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32
_RGB2YCC = [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


class Preprocessing(nn.Module):
    """Base: a pixel-space transform with a BPDA surrogate (identity unless overridden)."""

    name: ClassVar[str] = "preprocessing"
    randomized: ClassVar[bool] = False
    #: False when the transform's gradient is zero or uninformative almost everywhere (rounding,
    #: order statistics): adaptive attacks then go through :meth:`surrogate` (BPDA).
    differentiable: ClassVar[bool] = False

    def surrogate(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return identity


def quant_table(quality: int, chroma: bool = False) -> torch.Tensor:
    """The IJG quantisation table scaled to ``quality`` (1–100), as libjpeg computes it."""
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    base = torch.tensor(_CHROMA if chroma else _LUMA, dtype=torch.float64).view(8, 8)
    return torch.floor((base * scale + 50) / 100).clamp(1, 255).float()


def dct_matrix(n: int = 8) -> torch.Tensor:
    """Orthonormal DCT-II matrix D (coefficients = D · block · Dᵀ)."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d.float()


class JPEG(Preprocessing):
    """JPEG round trip at ``quality`` (1–100), computed in torch."""

    name = "jpeg"

    def __init__(self, quality: int = 75):
        super().__init__()
        if not isinstance(quality, int) or not 1 <= quality <= 100:
            raise ConfigError(f"JPEG quality must be an integer in [1, 100], got {quality!r}")
        self.quality = quality
        self.register_buffer("dct", dct_matrix())
        self.register_buffer("q_luma", quant_table(quality))
        self.register_buffer("q_chroma", quant_table(quality, chroma=True))
        self.register_buffer("rgb2ycc", torch.tensor(_RGB2YCC))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if c not in (1, 3):
            raise ModelError(f"JPEG needs 1 (gray) or 3 (RGB) channels, got {c}")
        p = torch.round(x.clamp(0, 1) * 255)
        if c == 3:
            offset = torch.tensor([0.0, 128, 128], device=x.device).view(1, 3, 1, 1)
            p = torch.round(torch.einsum("ij,njhw->nihw", self.rgb2ycc, p) + offset).clamp(0, 255)
        ph, pw = -h % 8, -w % 8
        p = F.pad(p, (0, pw, 0, ph), mode="replicate") if ph or pw else p
        q = self.q_luma.expand(c, 8, 8).clone()
        if c == 3:
            q[1:] = self.q_chroma
        p = (self._quantise(p - 128, q) + 128)[..., :h, :w]
        if c == 3:
            p = torch.round(p.clamp(0, 255))  # decoders round YCbCr to 8 bits before colour conversion
            p = torch.einsum("ij,njhw->nihw", torch.linalg.inv(self.rgb2ycc), p - offset)
        return torch.round(p.clamp(0, 255)) / 255

    def _quantise(self, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        n, c, h, w = p.shape
        blocks = p.view(n, c, h // 8, 8, w // 8, 8).permute(0, 1, 2, 4, 3, 5)
        coef = self.dct @ blocks @ self.dct.T
        qv = q.view(1, c, 1, 1, 8, 8)
        coef = torch.round(coef / qv) * qv
        out = self.dct.T @ coef @ self.dct
        return out.permute(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)


class BitDepth(Preprocessing):
    """Reduce each pixel to 2^``bits`` levels: round(x·(2^b − 1)) / (2^b − 1)."""

    name = "bit-depth"

    def __init__(self, bits: int = 4):
        super().__init__()
        if not isinstance(bits, int) or not 1 <= bits <= 16:
            raise ConfigError(f"bits must be an integer in [1, 16], got {bits!r}")
        self.bits = bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = 2 ** self.bits - 1
        return torch.round(x.clamp(0, 1) * levels) / levels


class MedianFilter(Preprocessing):
    """k×k median filter (reflect padding), per channel."""

    name = "median"

    def __init__(self, size: int = 3):
        super().__init__()
        if not isinstance(size, int) or size < 1 or size % 2 == 0:
            raise ConfigError(f"median filter size must be an odd integer >= 1, got {size!r}")
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.size // 2
        n, c, h, w = x.shape
        if r >= min(h, w):
            raise ModelError(f"median filter size {self.size} too large for {h}x{w} images")
        padded = F.pad(x, (r, r, r, r), mode="reflect")
        patches = F.unfold(padded, self.size).view(n, c, self.size * self.size, h * w)
        return patches.median(dim=2).values.view(n, c, h, w)


class SeededRandom:
    """Mixin of the randomized defenses: one ``torch.Generator`` per device, seeded from ``self.seed``
    (fresh entropy when None); the global RNG is never used. Subclasses set ``seed`` and ``_generators``."""

    seed: int | None
    _generators: dict

    def _generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            g = torch.Generator(device=device)
            g.manual_seed(self.seed) if self.seed is not None else g.seed()
            self._generators[key] = g
        return self._generators[key]


class GaussianNoise(SeededRandom, Preprocessing):
    """x + N(0, σ²I), clipped to [0, 1]; randomized (attack with EOT).  ``seed`` seeds a private
    generator per device (fresh entropy when None); the global RNG is never used."""

    name = "noise"
    randomized = True
    differentiable = True

    def __init__(self, sigma: float = 0.1, seed: int | None = None):
        super().__init__()
        if not sigma > 0:
            raise ConfigError(f"noise sigma must be > 0, got {sigma}")
        self.sigma, self.seed = float(sigma), seed
        self._generators: dict[str, torch.Generator] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps = torch.randn(x.shape, generator=self._generator(x.device), device=x.device, dtype=x.dtype)
        return (x + self.sigma * eps).clamp(0, 1)


class Defended(nn.Module):
    """``classifier(defense(x))``: the defense sees pixels, the classifier normalises afterwards."""

    def __init__(self, defense: nn.Module, classifier: Classifier):
        super().__init__()
        self.defense = defense
        self.classifier = classifier
        self.training = classifier.training  # the wrapper's own flag follows the model's (children untouched)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.defense(x))


def defend(classifier: Classifier, defense: Preprocessing) -> Classifier:
    """A Classifier that applies ``defense`` to its input before ``classifier``."""
    if not isinstance(classifier, Classifier):
        raise ModelError(f"defend needs an advkit Classifier, got {type(classifier).__name__}")
    if classifier.bounds != (0.0, 1.0):
        raise ModelError(f"preprocessing defenses work on pixels in [0, 1], the model's bounds are {classifier.bounds}")
    return Classifier(_same_mode(Defended(defense, classifier), classifier), bounds=classifier.bounds,
                      num_classes=classifier.num_classes, input_shape=classifier.input_shape,
                      name=f"{classifier.name}+{defense.name}")


def _same_mode(wrapper: nn.Module, inner: nn.Module) -> nn.Module:
    """A new wrapper module takes the mode of the model it wraps (a new module starts in train mode,
    which the pre-flight check would otherwise report as a model left in train mode)."""
    wrapper.training = inner.training
    return wrapper


def bpda(defended: Classifier) -> Classifier:
    """The same model, with the defense's backward pass replaced by its surrogate (Athalye et al. 2018)."""
    net = getattr(defended, "net", None)
    if not isinstance(net, Defended):
        raise ModelError("bpda needs a model built by advkit.defenses.defend(classifier, defense)")
    defense = net.defense
    wrapped = BPDA(defense, defense.surrogate() if isinstance(defense, Preprocessing) else None)
    return Classifier(_same_mode(Defended(wrapped, net.classifier), defended), bounds=defended.bounds, num_classes=defended.num_classes,
                      input_shape=defended.input_shape, name=f"{defended.name}+bpda")
