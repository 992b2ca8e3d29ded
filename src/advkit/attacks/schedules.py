"""Paper schedules as data: APGD's step-size checkpoints and Square's p-schedule.

APGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", §3.2): the paper's checkpoints w_j = ⌈p_j·N_iter⌉ with p₀ = 0, p₁ = 0.22 and
p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06); the attack uses the official code's integer form of
this rule (``apgd_checkpoints``), which agrees with the paper's at 100 and 200 iterations only.  The fractions are exact (``Fraction``) so that
⌈0.22·100⌉ is 22, not 23.  Symbols: N_iter → ``n_iter``, p_j → ``APGD_FRACTIONS[j]``.

Square (Andriushchenko, Croce, Flammarion & Hein 2020, "Square Attack: a query-efficient black-box
adversarial attack via random search"): p (the fraction of pixels a square covers) starts at
p_init and halves after iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of a
10,000-query schedule; the official code rescales the iteration to the query budget
(i ← ⌊i/N·10000⌋).  ``SQUARE_HALVINGS`` lists (last iteration, divisor of p_init).
"""
from __future__ import annotations

import math
from fractions import Fraction

APGD_P1 = Fraction(22, 100)
APGD_DECAY = Fraction(3, 100)
APGD_MIN_STEP = Fraction(6, 100)


def _apgd_fractions() -> tuple[Fraction, ...]:
    ps = [Fraction(0), APGD_P1]
    while True:
        nxt = ps[-1] + max(ps[-1] - ps[-2] - APGD_DECAY, APGD_MIN_STEP)
        if nxt > 1:
            return tuple(ps)
        ps.append(nxt)


#: p_j of the APGD paper: 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99.
APGD_FRACTIONS: tuple[Fraction, ...] = _apgd_fractions()


def apgd_checkpoints(n_iter: int) -> tuple[int, ...]:
    """Iterations (1..n_iter, increasing, unique) at which APGD checks its step size, as the official
    AutoAttack code computes them for any ``n_iter``: the first check after k₀ = max(⌊0.22·N⌋, 1)
    iterations, then every k_j = max(k_{j−1} − max(⌊0.03·N⌋, 1), max(⌊0.06·N⌋, 1)) iterations (the
    products in binary floating point, as the official code takes them).  For N = 100 and 200 these
    are the paper's ⌈p_j·N⌉; for other N they differ from them (25: 5, 9, 12, 14, 15, …, 25)."""
    k = max(int(0.22 * n_iter), 1)
    k_min, decrease = max(int(0.06 * n_iter), 1), max(int(0.03 * n_iter), 1)
    pts, w = [], k
    while w <= n_iter:
        pts.append(w)
        k = max(k - decrease, k_min)
        w += k
    return tuple(pts)


#: L1-APGD (Croce & Hein 2021, "Mind the box") checks every 4% of the iterations.
APGD_L1_PERIOD = Fraction(4, 100)


def apgd_l1_checkpoints(n_iter: int) -> tuple[int, ...]:
    k = max(int(APGD_L1_PERIOD * n_iter), 1)
    return tuple(range(k, n_iter + 1, k))


#: l1-AutoAttack's "large ε" schedule for APGD (official ``use_largereps``, Croce & Hein 2021):
#: (multiple of ε, fraction of the iterations) per stage; each stage starts from the previous one's
#: best point projected onto the smaller ball, and only the last stage (at ε) decides success.
APGD_LARGE_EPS: tuple[tuple[int, Fraction], ...] = ((3, Fraction(3, 10)), (2, Fraction(3, 10)), (1, Fraction(4, 10)))


def apgd_large_eps(n_iter: int) -> tuple[tuple[int, int], ...]:
    """(multiple of ε, iterations) per stage: ⌈0.3·N⌉, ⌈0.3·N⌉, and the rest (N = ``n_iter``)."""
    iters = [math.ceil(f * n_iter) for _, f in APGD_LARGE_EPS[:-1]]
    iters.append(n_iter - sum(iters))
    return tuple((m, k) for (m, _), k in zip(APGD_LARGE_EPS, iters) if k > 0)


#: (last iteration at this p, divisor of p_init) on the 10,000-iteration reference scale.
SQUARE_HALVINGS: tuple[tuple[int, int], ...] = (
    (10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128), (8000, 256),
)
SQUARE_FINAL_DIVISOR = 512
SQUARE_REFERENCE_QUERIES = 10_000


def square_p(iteration: int, p_init: float, n_queries: int, rescale: bool = True) -> float:
    """p at ``iteration`` (0-based) of a run with ``n_queries`` queries."""
    it = int(iteration / n_queries * SQUARE_REFERENCE_QUERIES) if rescale else iteration
    for last, divisor in SQUARE_HALVINGS:
        if it <= last:
            return p_init / divisor
    return p_init / SQUARE_FINAL_DIVISOR
