"""Randomized smoothing: PREDICT and CERTIFY of Cohen, Rosenfeld & Kolter (2019).

"Certified adversarial robustness via randomized smoothing" (ICML 2019).  The smoothed classifier is
g(x) = argmax_c P(f(x + ε) = c), ε ~ N(0, σ²I).  Symbols → code: f → ``base`` (a
:class:`~advkit.model.Classifier`), σ → ``sigma`` (pixel units; no clipping after adding noise),
n₀ → ``n0``, n → ``n``, α → ``alpha``, ĉ_A → ``prediction``, p̲_A → ``p_lower``, R = σ·Φ⁻¹(p̲_A) →
``radius``.

* PREDICT draws n samples, takes the top two counts n_A, n_B and abstains unless the two-sided
  binomial test of n_A against n_A + n_B at ½ has p-value ≤ α.
* CERTIFY draws n₀ samples to select ĉ_A, then n fresh samples, bounds p_A from below with the
  one-sided Clopper–Pearson bound at level 1 − α, abstains if p̲_A < ½ and otherwise certifies
  the L2 radius σ·Φ⁻¹(p̲_A).

Each image draws its noise from its own generator (:func:`image_generators`), so an image's result
does not depend on which other images share a forward pass.  Forward passes mix images: work is the
flat list of (image, sample) pairs, cut into chunks of ``batch_size`` inputs; counts are one
``bincount`` over ``image·classes + label``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
import torch

from ..errors import ConfigError
from ..faults import check_finite
from ..model import Classifier, as_classifier
from . import stats

ABSTAIN = -1
Generators = Union[torch.Generator, Sequence[torch.Generator], None]


@dataclass
class Certificate:
    """Per-image CERTIFY outcome: ``prediction`` (ABSTAIN = −1), ``radius`` (0 when abstaining),
    ``p_lower`` (p̲_A), ``samples`` (noise samples drawn: n₀ + n)."""

    prediction: torch.Tensor
    radius: torch.Tensor
    p_lower: torch.Tensor
    samples: torch.Tensor


def seed_for(seed: int, index: int) -> int:
    """A 63-bit seed derived from (``seed``, ``index``) with numpy's SeedSequence (stable across runs)."""
    state = np.random.SeedSequence([int(seed) & (2**63 - 1), int(index)]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def image_generators(seed: int, indices: Sequence[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per image, seeded from (``seed``, dataset index)."""
    return [torch.Generator(device=device).manual_seed(seed_for(seed, int(i))) for i in indices]


def _as_generators(generator, count: int, device: torch.device) -> list[torch.Generator]:
    if generator is None or isinstance(generator, torch.Generator):
        base = generator
        if base is None:  # fresh entropy, never the global RNG
            base = torch.Generator()
            base.seed()
        seed = int(torch.randint(0, 2**62, (1,), generator=base, device=base.device).item())
        return image_generators(seed, range(count), device)
    gens = list(generator)
    if len(gens) != count:
        raise ConfigError(f"expected one generator per image ({count}), got {len(gens)}")
    return gens


def _plan(images: int, num: int, batch_size: int):
    """Forward passes as lists of (image, count) segments: whole images packed together when
    ``num ≤ batch_size``, else each image's samples in chunks of ``batch_size``.  An image's noise stream
    therefore depends only on its generator, ``num`` and ``batch_size``, not on the other images."""
    if num <= batch_size:
        per = batch_size // num
        for i in range(0, images, per):
            yield [(j, num) for j in range(i, min(i + per, images))]
        return
    for i in range(images):
        for s in range(0, num, batch_size):
            yield [(i, min(batch_size, num - s))]


class SmoothedClassifier:
    """g(x) = argmax_c P(base(x + N(0, σ²I)) = c), with PREDICT and CERTIFY."""

    def __init__(self, base, sigma: float, num_classes: int):
        if not sigma > 0:
            raise ConfigError(f"sigma must be > 0 (pixel units), got {sigma}")
        if num_classes < 2:
            raise ConfigError(f"num_classes must be >= 2, got {num_classes}")
        self.base: Classifier = as_classifier(base)
        self.sigma = float(sigma)
        self.num_classes = int(num_classes)

    # ---------------------------------------------------------------- sampling
    def sample_counts(self, x: torch.Tensor, num: int, generators: list[torch.Generator],
                      batch_size: int = 1000) -> torch.Tensor:
        """(B, classes) int64 counts of base predictions on ``num`` noisy copies of each image."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        device = self.base.device
        x = x.to(device, self.base.dtype)
        k = self.num_classes
        counts = torch.zeros(len(x) * k, dtype=torch.long, device=device)
        with self.base.inference(), torch.inference_mode():
            for segments in _plan(len(x), num, batch_size):
                ids, sizes = zip(*segments)
                img = torch.repeat_interleave(torch.tensor(ids, device=device), torch.tensor(sizes, device=device))
                z = self.base(self._noisy(x, segments, generators))
                check_finite(z, self.base.name, "a counting pass of randomized smoothing")
                pred = z.argmax(1)
                counts += torch.bincount(img * k + pred, minlength=len(x) * k)
        return counts.view(len(x), k).cpu()

    def _noisy(self, x: torch.Tensor, segments, generators) -> torch.Tensor:
        """x_i + ε for each segment (image i, count c), ε ~ N(0, σ²I) drawn from image i's generator."""
        parts = []
        for i, c in segments:
            eps = torch.randn((c, *x.shape[1:]), generator=generators[i], device=x.device, dtype=x.dtype)
            parts.append(eps.mul_(self.sigma).add_(x[i]))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    # ---------------------------------------------------------------- PREDICT / CERTIFY
    def predict(self, x: torch.Tensor, n: int, alpha: float, generator: Generators = None,
                batch_size: int = 1000) -> torch.Tensor:
        """PREDICT: the top class per image, or ABSTAIN when the binomial test's p-value exceeds α."""
        self._check(x, n, alpha)
        gens = _as_generators(generator, len(x), self.base.device)
        counts = self.sample_counts(x, n, gens, batch_size)
        top2 = counts.topk(2, dim=1)
        n_a, n_b = top2.values[:, 0].numpy(), top2.values[:, 1].numpy()
        pval = stats.binom_test_pvalue(n_a, n_a + n_b, 0.5)
        pred = top2.indices[:, 0].clone()
        pred[torch.from_numpy(pval > alpha)] = ABSTAIN
        return pred

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, generator: Generators = None,
                batch_size: int = 1000) -> Certificate:
        """CERTIFY: select ĉ_A with n₀ samples, bound p_A with n fresh samples, radius σ·Φ⁻¹(p̲_A)."""
        self._check(x, n, alpha)
        if n0 < 1:
            raise ConfigError(f"n0 must be >= 1, got {n0}")
        gens = _as_generators(generator, len(x), self.base.device)
        c_hat = self.sample_counts(x, n0, gens, batch_size).argmax(1)
        counts = self.sample_counts(x, n, gens, batch_size)
        n_a = counts.gather(1, c_hat[:, None])[:, 0].numpy()
        p_lower = stats.clopper_pearson_lower(n_a, n, alpha)
        return self.certificate(c_hat, p_lower, n0 + n)

    def certificate(self, c_hat: torch.Tensor, p_lower: np.ndarray, samples) -> Certificate:
        """Abstain where p̲_A < ½, else radius σ·Φ⁻¹(p̲_A)."""
        abstain = p_lower < 0.5
        radius = np.where(abstain, 0.0, self.sigma * stats.norm_ppf(np.maximum(p_lower, 0.5)))
        pred = c_hat.clone().long()
        pred[torch.from_numpy(abstain)] = ABSTAIN
        samples = torch.as_tensor(samples, dtype=torch.long).expand(len(pred)).clone()
        return Certificate(pred, torch.from_numpy(radius), torch.from_numpy(np.asarray(p_lower, np.float64)), samples)

    def _check(self, x: torch.Tensor, n: int, alpha: float) -> None:
        self.base.check_inputs(x)
        if n < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        if not 0 < alpha < 1:
            raise ConfigError(f"alpha must lie in (0, 1), got {alpha}")
