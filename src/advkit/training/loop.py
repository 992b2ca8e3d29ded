"""The training loop: :func:`fit` runs an objective over epochs with validation, checkpoints and DDP.

- **Determinism.** The data order (and augmentation) of epoch e comes from a generator seeded by
  (seed, e); the objective's noise from one seeded by (seed, e, rank); each step forks the global RNG
  under a step seed (so dropout, if any, is reproducible) and restores it afterwards — the library
  never changes the caller's global RNG.  A run resumed from the epoch-e checkpoint therefore
  reaches exactly the weights of an uninterrupted run.
- **Checkpoints** (``checkpoint_dir/checkpoint.pt``, written after every epoch as tmp + rename):
  model, optimizer and scheduler states, the epoch counter, the history, the best weights so far,
  the recipe and the run's identity (:mod:`.checkpoint`: a resumed run must use the same recipe, data
  contents, initial weights and code, and every field is checked before it is loaded).
- **Model selection** (Rice, Wong & Kolter 2020, "Overfitting in adversarially robust deep
  learning"): with ``keep="best"`` the returned weights are those of the epoch with the highest
  robust validation accuracy (clean accuracy when the method has no robust metric).
- **Stall check** (:mod:`.stall`): after ``chance_patience`` epochs still at chance level, or with a
  non-finite loss, the run stops with :class:`~advkit.errors.TrainingStalled`; so does a run whose
  kept model is at chance.
- **DDP.** Under ``torchrun`` (``advkit.distributed.init_from_env()`` called first) the model is
  wrapped in DistributedDataParallel; every rank walks the same global batches and takes the strided
  share ``batch[rank::world]``, its loss weighted by its share so that the averaged gradient equals
  the single-process gradient of the whole batch.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist

from .. import distributed
from ..errors import ConfigError
from ..model import Classifier
from ..progress import NULL, ProgressFn
from . import checkpoint as ckpt_io
from .base import Objective, StepOutput
from .config import TrainConfig
from .data import random_shift
from .schedules import lr_factor
from .stall import ChanceMonitor
from .validation import validate

log = logging.getLogger(__name__)
CHECKPOINT = ckpt_io.CHECKPOINT


@dataclass
class FitResult:
    """The trained classifier (kept weights loaded), per-epoch history and the kept epoch's metrics."""

    model: Classifier
    history: list[dict]
    best_epoch: int
    metrics: dict = field(default_factory=dict)


def derive_seed(*parts) -> int:
    """A stable 63-bit seed from ``parts`` (no Python ``hash`` randomisation)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _generator(device: torch.device, *parts) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(derive_seed(*parts))


def _optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                           weight_decay=config.weight_decay)


def num_batches(n: int, batch_size: int) -> int:
    """Global batches per epoch; a final batch smaller than the world size is dropped."""
    full, rest = divmod(n, batch_size)
    return full + (1 if rest >= distributed.world_size() else 0)


@dataclass
class _Run:
    """Mutable state of one fit: what a checkpoint saves."""

    model: Classifier
    wrapped: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    epoch: int = 0
    history: list = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"epoch": -1, "score": -math.inf, "model": None, "metrics": {}})


def fit(model: Classifier, x: torch.Tensor, y: torch.Tensor, config: TrainConfig, *,
        val: tuple[torch.Tensor, torch.Tensor] | None = None, checkpoint_dir: str | Path | None = None,
        resume: bool | str = False, progress: ProgressFn = NULL,
        on_epoch: Callable[[dict], None] | None = None, identity: dict | None = None) -> FitResult:
    """Train ``model`` in place on ``(x, y)`` (pixels in the model's bounds) following ``config``.

    ``val`` = (x_val, y_val) is evaluated after each epoch (clean and PGD, or noisy for ``gaussian``);
    ``on_epoch`` receives each epoch's record (loss, train clean/perturbed accuracy, validation
    accuracies, ε, lr, seconds).  With ``checkpoint_dir`` a checkpoint is written every epoch and
    ``resume=True`` continues from it (none is an error; ``"or-start"`` starts afresh), refusing one of
    another recipe or ``identity`` (:mod:`advkit.identity` fields, stored in the checkpoint).
    """
    if len(x) != len(y) or len(x) == 0:
        raise ConfigError(f"need a non-empty training set with as many labels as images, got {len(x)} and {len(y)}")
    if config.is_adversarial and config.warmup_epochs >= config.epochs:
        raise ConfigError(f"warmup_epochs must be shorter than the run: a {config.warmup_epochs:g}-epoch ε warm-up in "
                          f"a {config.epochs}-epoch run never trains at ε={config.eps:g} (got warmup_epochs="
                          f"{config.warmup_epochs:g}, epochs={config.epochs}); advkit.training.defaults.fit_warmup "
                          "shortens it")
    classes = getattr(model, "num_classes", None) or int(y.max()) + 1
    monitor = ChanceMonitor.for_data(y, val[1] if val is not None else None, classes)
    run = _setup(model, len(x), config)
    ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
    if ckpt is not None:
        ckpt_io.prepare(run, ckpt, config, resume, identity)
    objective = config.objective()
    for epoch in range(run.epoch, config.epochs):
        record = _train_epoch(run, objective, x, y, config, epoch, progress)
        record.update(validate(run.model, val, config, _generator(torch.device("cpu"), config.seed, "val", epoch)))
        _update_best(run, record, epoch)
        run.history.append(record)
        run.epoch = epoch + 1
        if ckpt is not None:
            ckpt_io.save(run, ckpt, config, identity)
        if on_epoch is not None and distributed.is_main():
            on_epoch(record)
        monitor.after_epoch(run.history, config)
    result = _finish(run, config)
    monitor.kept(run.history, config, result.best_epoch)
    return result


def _setup(model: Classifier, n: int, config: TrainConfig) -> _Run:
    wrapped: torch.nn.Module = model
    if distributed.is_distributed():
        from torch.nn.parallel import DistributedDataParallel
        dev = model.device
        wrapped = DistributedDataParallel(model, device_ids=[dev] if dev.type == "cuda" else None)
    opt = _optimizer(model.parameters(), config)
    total = config.epochs * num_batches(n, config.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: lr_factor(config, t, total))
    return _Run(model, wrapped, opt, sched)


def _train_epoch(run: _Run, objective: Objective, x, y, config: TrainConfig, epoch: int, progress) -> dict:
    start = time.perf_counter()
    dev = run.model.device
    data_gen = _generator(torch.device("cpu"), config.seed, "data", epoch)
    noise_gen = _generator(dev, config.seed, "noise", epoch, distributed.rank())
    order = torch.randperm(len(x), generator=data_gen)
    nb = num_batches(len(x), config.batch_size)
    sums = torch.zeros(6, dtype=torch.float64)  # loss·n, n, clean correct, clean n, pert correct, pert n
    run.model.train()
    for b in range(nb):
        idx = order[b * config.batch_size:(b + 1) * config.batch_size]
        xb, yb = x[idx], y[idx]
        if config.augment_shift:
            xb = random_shift(xb, config.augment_shift, data_gen)
        share = slice(distributed.rank(), None, distributed.world_size())
        scale = _eps_scale(config, epoch, (b + 1) / nb)
        out = _step(run, objective, xb[share].to(dev), yb[share].to(dev), len(idx), scale, noise_gen)
        _accumulate(sums, out, yb[share].to(dev))
        if distributed.is_main():
            progress(f"epoch {epoch + 1}/{config.epochs}", b + 1, nb)
    run.model.eval()
    return _summarise(sums, epoch, config, run, time.perf_counter() - start)


def _eps_scale(config: TrainConfig, epoch: int, frac: float) -> float:
    """The ε warm-up: linear from 0 to 1 over the first ``warmup_epochs`` epochs (per step)."""
    if config.warmup_epochs <= 0:
        return 1.0
    return min(1.0, (epoch + frac) / config.warmup_epochs)


def _step(run: _Run, objective: Objective, xb, yb, n_global: int, eps_scale: float, noise_gen) -> StepOutput:
    seed = int(torch.randint(0, 2**62, (1,), generator=noise_gen, device=noise_gen.device).item())
    devices = [xb.device] if xb.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)  # inside fork_rng: dropout is reproducible, the caller's RNG untouched
        out = objective(run.wrapped, xb, yb, generator=noise_gen, eps_scale=eps_scale, attack_model=run.model)
        run.optimizer.zero_grad(set_to_none=True)
        (out.loss * (len(xb) * distributed.world_size() / n_global)).backward()
        run.optimizer.step()
    run.scheduler.step()
    return out


def _accumulate(sums: torch.Tensor, out: StepOutput, y: torch.Tensor) -> None:
    n = len(y)
    sums[0] += float(out.loss.detach()) * n
    sums[1] += n
    for k, z in ((2, out.clean_logits), (4, out.perturbed_logits)):
        if z is not None:
            sums[k] += float((z.argmax(1) == y).sum())
            sums[k + 1] += n


def _summarise(sums: torch.Tensor, epoch: int, config: TrainConfig, run: _Run, seconds: float) -> dict:
    if distributed.is_distributed():
        dist.all_reduce(sums, op=dist.ReduceOp.SUM)
    ratio = lambda a, b: float(sums[a] / sums[b]) if sums[b] > 0 else None  # noqa: E731
    return {"epoch": epoch + 1, "loss": ratio(0, 1), "train_clean_accuracy": ratio(2, 3),
            "train_perturbed_accuracy": ratio(4, 5), "eps": config.eps * _eps_scale(config, epoch, 1.0)
            if config.is_adversarial else 0.0, "lr": run.optimizer.param_groups[0]["lr"], "seconds": seconds}


def _update_best(run: _Run, record: dict, epoch: int) -> None:
    score = record.get("val_robust_accuracy")
    if score is None:
        score = record.get("val_clean_accuracy")
    if score is None:
        score = float(epoch)  # no validation data: the latest epoch is the best
    record["selection_score"] = score
    if score > run.best["score"] or run.best["model"] is None:
        metrics = {k: v for k, v in record.items() if k.startswith("val_")}
        run.best = {"epoch": epoch + 1, "score": score, "metrics": metrics,
                    "model": {k: v.detach().clone() for k, v in run.model.state_dict().items()}}


def _finish(run: _Run, config: TrainConfig) -> FitResult:
    if config.keep == "best" and run.best["model"] is not None:
        run.model.load_state_dict(run.best["model"])
        return FitResult(run.model, run.history, run.best["epoch"], dict(run.best["metrics"]))
    last = run.history[-1] if run.history else {}
    metrics = {k: v for k, v in last.items() if k.startswith("val_")}
    return FitResult(run.model, run.history, run.epoch, metrics)
