"""The stall check: a run that never leaves chance level (or whose loss diverges) stops, and says why.

A classifier whose held-out accuracy is not significantly above the best constant classifier has learnt
nothing; writing it as a finished model (and evaluating it as "10% clean / 10% robust") helps no one.
After every epoch from ``chance_patience`` on, and once more for the model the run would keep, the
monitor tests the validation accuracy (the training accuracy when there is no validation split) with
:func:`advkit.evaluation.metrics.at_chance` — a one-sided test at α = 0.01 against max(1/C, the
largest class share).  A non-finite loss stops the run at once.  The stop raises
:class:`~advkit.errors.TrainingStalled` (exit code 5 on the command line) whose message names the
likely cause, worked out from the loss curve and the settings:

- loss NaN/inf → the learning rate is too large;
- loss moved less than 1% since the first epoch → the learning rate is too small (or already decayed);
- loss moves but accuracy does not → an over-large learning rate, or an adversarial objective that
  is too hard from scratch (ε warm-up, smaller ε, more epochs), or labels that do not match the images.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import TrainingStalled

#: relative change of the epoch loss under which the loss "does not move"
LOSS_STILL = 0.01


@dataclass(frozen=True)
class ChanceMonitor:
    """Chance levels and sizes of the training and validation sets of one run."""

    train_chance: float
    train_n: int
    val_chance: float
    val_n: int

    @classmethod
    def for_data(cls, y_train, y_val, num_classes: int) -> "ChanceMonitor":
        from ..evaluation.metrics import chance_accuracy
        y_val = y_val if y_val is not None else []
        return cls(chance_accuracy(_np(y_train), num_classes), len(y_train),
                   chance_accuracy(_np(y_val), num_classes), len(y_val))

    def at_chance(self, record: dict) -> tuple[bool, str]:
        """(at chance?, what was measured) for one epoch record."""
        from ..evaluation.metrics import at_chance
        for key, n, chance, label in (("val_clean_accuracy", self.val_n, self.val_chance, "validation"),
                                      ("train_clean_accuracy", self.train_n, self.train_chance, "training")):
            acc = record.get(key)
            if acc is not None and n > 0:
                seen = f"{label} accuracy {100 * acc:.1f}% on {n} images (chance {100 * chance:.1f}%)"
                return at_chance(round(acc * n), n, chance), seen
        return False, "no accuracy measured"

    def after_epoch(self, history: list[dict], config) -> None:
        """Raise :class:`TrainingStalled` when the run should stop after its latest epoch."""
        if config.chance_patience <= 0 or not history:
            return
        last = history[-1]
        loss = last.get("loss")
        if loss is not None and not math.isfinite(loss):
            raise self._stalled(history, config, f"the training loss became {loss} in epoch {last['epoch']}")
        if len(history) < config.chance_patience:
            return
        checks = [self.at_chance(r) for r in history]
        if all(stuck for stuck, _ in checks):
            raise self._stalled(history, config, f"after epoch {last['epoch']} of {config.epochs} the "
                                f"{checks[-1][1]} has not left chance level in any epoch")

    def kept(self, history: list[dict], config, epoch: int) -> None:
        """Raise :class:`TrainingStalled` when the model the run keeps (epoch ``epoch``) is at chance."""
        if config.chance_patience <= 0 or not 1 <= epoch <= len(history):
            return
        stuck, seen = self.at_chance(history[epoch - 1])
        if stuck:
            raise self._stalled(history, config, f"the model of epoch {epoch} (the one the run would keep) has "
                                f"{seen}")

    def _stalled(self, history: list[dict], config, seen: str) -> TrainingStalled:
        steps = len(history) * max(1, math.ceil(self.train_n / config.batch_size))
        cause = likely_cause(history, config, steps)
        return TrainingStalled(f"training stalled at chance level: {seen}. Likely cause: {cause}. No model was "
                               "written; fix the setting (or pass --chance-patience 0 to keep such a model).",
                               history, cause)


#: fewer optimisation steps than this are "too few" to judge a setting
FEW_STEPS = 50


def likely_cause(history: list[dict], config, steps: int | None = None) -> str:
    """The most likely reason a run did not learn, in words, from its loss curve and settings.

    ``steps``: optimisation steps taken so far (None: unknown).
    """
    from .defaults import default_lr as _default_lr, lr_is_far_from_default
    default_lr = _default_lr(config.optimizer) or config.lr
    losses = [r.get("loss") for r in history if r.get("loss") is not None]
    lr_now = history[-1].get("lr", config.lr) if history else config.lr
    far = lr_is_far_from_default(config.lr, config.optimizer)
    if losses and not math.isfinite(losses[-1]):
        return (f"the loss diverged: the learning rate {config.lr:g} is too large for {config.optimizer} "
                f"(default {default_lr:g}); lower --lr")
    moved = abs(losses[-1] - losses[0]) / max(abs(losses[0]), 1e-12) if len(losses) >= 2 else None
    still = moved is not None and moved < LOSS_STILL
    if far == "small" and (still or moved is None):
        return (f"the learning rate {config.lr:g} is too small for {config.optimizer} (default {default_lr:g})"
                + (f": the loss barely moved ({losses[0]:.4f} → {losses[-1]:.4f})" if still else "") + "; raise --lr")
    if far == "large":
        return (f"the learning rate {config.lr:g} is too large for {config.optimizer} (default {default_lr:g}): "
                "the model cannot settle; lower --lr")
    if steps is not None and steps < FEW_STEPS:
        return (f"only {steps} optimisation steps so far ({config.batch_size} images a step): train for more "
                "epochs, on more images or with smaller batches (--batch-size)")
    if still:
        if config.lr < default_lr:
            return (f"the loss barely moved ({losses[0]:.4f} → {losses[-1]:.4f}): the learning rate {config.lr:g} "
                    f"is too small for {config.optimizer} (default {default_lr:g}); raise --lr")
        if lr_now < 0.1 * config.lr:
            return (f"the loss barely moved ({losses[0]:.4f} → {losses[-1]:.4f}) and the {config.schedule} schedule "
                    f"has already cut the rate to {lr_now:g}; use --schedule cosine or more epochs")
        return (f"the loss barely moved ({losses[0]:.4f} → {losses[-1]:.4f}): the gradients vanish (check that the "
                "inputs are scaled to [0, 1] and the weight decay is not too large)")
    if config.is_adversarial:
        return (f"the adversarial objective at ε={config.eps:g} is too hard to learn from scratch in this run: "
                "ramp ε up (--warmup-epochs), lower --eps or train for more epochs")
    if len(history) < 2:
        return "the run is too short for this setting: train for more epochs (or raise --lr)"
    return ("the model does not fit the labels: check that the labels match the images and that the "
            "learning rate suits the optimizer")


def _np(y):
    import numpy as np
    if hasattr(y, "cpu"):
        return y.cpu().numpy()
    return np.asarray(y)
