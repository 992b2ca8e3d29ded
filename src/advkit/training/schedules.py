"""Learning-rate schedules as a multiplier of the base rate, evaluated per optimisation step.

- ``constant``: 1.
- ``piecewise``: 0.1^m where m counts the ``milestones`` (fractions of training) already passed —
  the step decay of Madry et al. (2018) and Rice et al. (2020).
- ``cyclic``: the one-cycle triangle of Wong, Rice & Kolter (2020): linear from 0 up to 1 at
  ``cycle_peak`` of training, then linear down to 0 at the end (evaluated after the step, so the
  first step does not have rate 0).
- ``cosine``: ½(1 + cos(π·t/T)) (Loshchilov & Hutter 2017, without restarts).

Every schedule except ``cyclic`` (which has its own ramp) is multiplied by a linear **learning-rate
warm-up** over the first ``lr_warmup_epochs`` epochs, from 1/W up to 1 over the W warm-up steps
(Goyal et al. 2017, "Accurate, large minibatch SGD"; for Adam, Liu et al. 2020, "On the variance of
the adaptive learning rate and beyond"): early steps taken with the full rate from a random
initialisation are what leaves a small CNN on its initial plateau.
"""
from __future__ import annotations

import math

from .config import TrainConfig


def lr_factor(config: TrainConfig, step: int, total: int) -> float:
    """The multiplier of ``config.lr`` for optimisation step ``step`` of ``total``."""
    total = max(1, total)
    frac = step / total
    if config.schedule == "cyclic":
        t, peak = min(1.0, (step + 1) / total), config.cycle_peak
        return t / peak if t <= peak else max(0.0, (1 - t) / (1 - peak))
    warm = warmup_steps(config, total)
    ramp = min(1.0, (step + 1) / warm) if warm else 1.0
    if config.schedule == "piecewise":
        return ramp * 0.1 ** sum(frac >= m for m in config.milestones)
    if config.schedule == "cosine":
        return ramp * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
    return ramp


def warmup_steps(config: TrainConfig, total: int) -> int:
    """Optimisation steps of the learning-rate warm-up (0: none)."""
    if config.lr_warmup_epochs <= 0:
        return 0
    return max(1, round(total * min(1.0, config.lr_warmup_epochs / config.epochs)))
