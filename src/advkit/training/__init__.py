"""Robust training: objectives (standard, PGD-AT, TRADES, Fast-AT, MART, Gaussian noise) and the loop.

``fit(model, x, y, TrainConfig(...))`` trains a :class:`~advkit.model.Classifier` in place with per-epoch
validation, atomic checkpoints, exact resume and DistributedDataParallel under ``torchrun``;
``train_from_config`` is the whole ``advkit train`` run (data, model, fit, test metrics, model file).
"""
from __future__ import annotations

from .base import Objective, StepOutput
from .config import TrainConfig
from .fast_at import FastAT
from .loop import FitResult, fit
from .mart import MART
from .objectives import OBJECTIVES, GaussianNoise, Standard, build
from .pgd_at import PGDAT
from .trades import TRADES

__all__ = ["Objective", "StepOutput", "TrainConfig", "FitResult", "fit", "build", "OBJECTIVES", "Standard",
           "GaussianNoise", "PGDAT", "TRADES", "FastAT", "MART"]
