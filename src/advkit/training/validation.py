"""Per-epoch validation during training: clean accuracy and the accuracy the method aims at.

Adversarial methods: accuracy under a ``val_steps``-step L∞/L2 PGD at the training ε (uniform random
start, step 2.5·ε/steps) — a fast proxy for model selection, not an evaluation (use ``advkit evaluate``).
Gaussian noise training: accuracy on x + N(0, σ²I) (one draw per image).  Standard training: clean only.
"""
from __future__ import annotations

import torch

from .. import geometry
from ..model import Classifier
from .base import ce_to, pgd_maximize
from .config import TrainConfig

BATCH = 500


def validate(model: Classifier, val, config: TrainConfig, generator: torch.Generator) -> dict:
    """``{"val_clean_accuracy", "val_robust_accuracy"}`` (the latter None without a robust metric)."""
    if val is None or len(val[0]) == 0:
        return {}
    x, y = val
    clean = robust = 0
    with model.inference():
        for i in range(0, len(x), BATCH):
            xb, yb = x[i:i + BATCH].to(model.device), y[i:i + BATCH].to(model.device)
            with torch.no_grad():
                clean += int((model(xb).argmax(1) == yb).sum())
            xp = _perturbed(model, xb, yb, config, generator)
            if xp is not None:
                with torch.no_grad():
                    robust += int((model(xp).argmax(1) == yb).sum())
    has_robust = config.is_adversarial or config.method == "gaussian"
    return {"val_clean_accuracy": clean / len(x), "val_robust_accuracy": robust / len(x) if has_robust else None}


def _perturbed(model, x, y, config: TrainConfig, generator) -> torch.Tensor | None:
    if config.method == "gaussian":
        return x + config.sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    if not config.is_adversarial or config.eps == 0:
        return None
    delta = geometry.sample_ball(x.shape, config.norm, config.eps, generator=generator, dtype=x.dtype).to(x.device)
    start = (x + delta).clamp(*model.bounds)
    return pgd_maximize(model, x, start, ce_to(y), norm=config.norm, eps=config.eps, steps=config.val_steps,
                        step_size=2.5 * config.eps / config.val_steps)
