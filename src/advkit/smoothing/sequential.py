"""Sequential CERTIFY: answer "is the radius ≥ r?" for a list of radii, stopping as soon as it is decided.

Fixed-n CERTIFY (Cohen, Rosenfeld & Kolter 2019) always draws n (=100,000) samples, but certified
accuracy at a list of radii only asks, per radius r, whether p_A ≥ t_r = Φ(r/σ).  Most images are far
from every threshold, so far fewer samples decide every question.

Method — a group-sequential test with a Bonferroni α-spending schedule (Jennison & Turnbull 2000,
"Group Sequential Methods with Applications to Clinical Trials", ch. 1–2; the same union-bound
argument as Wald's sequential analysis with a fixed number of looks):

* after selecting ĉ_A with n₀ samples as in CERTIFY, estimation samples are examined only at the fixed
  cumulative sample sizes m₁ < m₂ < … < m_J = n of :class:`LookSchedule` (geometric, ``first``·growth^j);
* look j uses the one-sided Clopper–Pearson bound at level α_j with Σ_j α_j = α (the final look gets
  ``final_share``·α, the earlier looks share the rest equally).  By the union bound,
  P(∃ j: p̲_j > p_A) ≤ Σ α_j = α, so the running maximum L = max_{j ≤ stop} p̲_j is a lower
  confidence bound on p_A at level 1 − α however the stopping time is chosen;
* radius r is *certified* when L ≥ t_r; it is *ruled out* when the running minimum of the upper
  Clopper–Pearson bounds (same α_j; this only affects efficiency, never soundness) is < t_r, or when
  even n − m_j further successes could not lift the final look's bound to t_r (exact curtailment);
* an image stops when every radius in ``radii`` and r = 0 (the abstain decision, t₀ = ½) is certified
  or ruled out, and at m_J = n at the latest.

Output: prediction ĉ_A (ABSTAIN when L < ½), radius σ·Φ⁻¹(L) (a valid certified radius, raised to
the largest certified r where rounding would put it below), and the decision matrix ``certified``.
The guarantee is CERTIFY's: with probability ≥ 1 − α no reported radius exceeds the true one.
The radius is a lower bound from fewer samples, so the *average* radius is smaller than fixed-n's;
certified accuracy at the listed radii is what this mode is for.

Relation to fixed-n CERTIFY (same n, α): both are valid at level 1 − α, but they are different tests
on different samples, so a decision can differ where p_A is within sampling noise of a threshold t_r;
there the sequential test is slightly more conservative (its last look spends ``final_share``·α, not α).
Far from every threshold both decide the same (tested on constant, linear and trained models).
Savings: an image with p_A ≈ 1 is decided after ~ln(α_j)/ln(t_r) samples for the largest certifiable
r (≈ 7,200 for r = 3σ at α = 0.001), and radii beyond σ·Φ⁻¹((final_share·α)^(1/n)) are ruled out at once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from . import stats
from .smoothed import Certificate, SmoothedClassifier, _as_generators


@dataclass(frozen=True)
class LookSchedule:
    """Cumulative sample sizes of the looks, and how α is spent across them."""

    first: int = 1000
    growth: float = 2.0
    final_share: float = 0.5

    def __post_init__(self):
        if self.first < 1 or not self.growth > 1 or not 0 < self.final_share <= 1:
            raise ConfigError(f"LookSchedule needs first >= 1, growth > 1, 0 < final_share <= 1; got {self}")

    def looks(self, n: int) -> list[int]:
        out, m = [], float(self.first)
        while m < n:
            out.append(int(m))
            m *= self.growth
        return out + [n]

    def alphas(self, alpha: float, n_looks: int) -> np.ndarray:
        if n_looks == 1:
            return np.array([alpha])
        early = alpha * (1 - self.final_share) / (n_looks - 1)
        return np.array([early] * (n_looks - 1) + [alpha * self.final_share])


@dataclass
class SequentialCertificate(Certificate):
    """A :class:`Certificate` plus the decisions: ``certified[i, j]`` ⇔ radius ≥ ``radii[j]`` is certified."""

    radii: tuple = ()
    certified: torch.Tensor | None = None


def certify_sequential(smoothed: SmoothedClassifier, x: torch.Tensor, n0: int, n: int, alpha: float,
                       radii, generator=None, batch_size: int = 1000,
                       schedule: LookSchedule = LookSchedule()) -> SequentialCertificate:
    """Decide, per image and radius r in ``radii``, whether CERTIFY's radius is ≥ r, with early stopping."""
    smoothed._check(x, n, alpha)
    radii = tuple(sorted({float(r) for r in radii}))
    if any(r < 0 for r in radii):
        raise ConfigError(f"radii must be >= 0, got {radii}")
    gens = _as_generators(generator, len(x), smoothed.base.device)
    c_hat = smoothed.sample_counts(x, n0, gens, batch_size).argmax(1)
    thresholds = stats.norm_cdf(np.array((0.0,) + radii) / smoothed.sigma)
    looks = schedule.looks(n)
    alphas = schedule.alphas(alpha, len(looks))
    state = _State(len(x))
    active, m_prev = np.arange(len(x)), 0
    for j, m in enumerate(looks):
        counts = smoothed.sample_counts(x[torch.from_numpy(active)], m - m_prev, [gens[i] for i in active], batch_size)
        state.k[active] += counts.gather(1, c_hat[torch.from_numpy(active)][:, None])[:, 0].numpy()
        state.used[active] = m
        state.update(active, m, alphas[j])
        m_prev = m
        if j == len(looks) - 1:
            break
        open_ = ~state.decided(active, looks[j + 1:], alphas[j + 1:], thresholds)
        active = active[open_]
        if len(active) == 0:
            break
    cert = smoothed.certificate(c_hat, state.lower, torch.from_numpy(n0 + state.used))
    certified = torch.from_numpy(state.lower[:, None] >= thresholds[None, 1:])
    best = torch.tensor(radii, dtype=torch.float64).expand(len(x), -1).masked_fill(~certified, 0.0)
    radius = torch.maximum(cert.radius, best.max(1).values if radii else cert.radius)
    return SequentialCertificate(cert.prediction, radius, cert.p_lower, cert.samples, radii, certified)


class _State:
    """Per-image running counts and bounds."""

    def __init__(self, size: int):
        self.k = np.zeros(size, dtype=np.int64)
        self.used = np.zeros(size, dtype=np.int64)
        self.lower = np.zeros(size)
        self.upper = np.ones(size)

    def update(self, idx: np.ndarray, m: int, alpha_j: float) -> None:
        k = self.k[idx]
        self.lower[idx] = np.maximum(self.lower[idx], stats.clopper_pearson_lower(k, m, alpha_j))
        self.upper[idx] = np.minimum(self.upper[idx], stats.clopper_pearson_upper(k, m, alpha_j))

    def decided(self, idx: np.ndarray, looks, alphas, thresholds: np.ndarray) -> np.ndarray:
        """True where every threshold is certified (L ≥ t) or ruled out (U < t, or unreachable even if
        every remaining sample were a success, at any remaining look)."""
        k, m = self.k[idx], self.used[idx]
        best_case = np.max([stats.clopper_pearson_lower(k + (ml - m), ml, al) for ml, al in zip(looks, alphas)], 0)
        t = thresholds[None, :]
        yes = self.lower[idx, None] >= t
        no = (self.upper[idx, None] < t) | (best_case[:, None] < t)
        return (yes | no).all(1)
