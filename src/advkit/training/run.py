"""One whole training run, as ``advkit train`` does it: data → model → :func:`fit` → test metrics → file.

``train_from_config(config, out=..., checkpoint_dir=..., resume=...)`` loads the ``config.data`` train
split, holds out ``val_size`` images for model selection, builds ``config.arch`` with weights initialised
from ``config.seed`` (inside a forked RNG: the caller's global RNG is untouched), trains, measures the
test split (clean accuracy; PGD-``test_steps`` accuracy at the training ε for adversarial methods;
accuracy under N(0, σ²) noise for ``gaussian``) and, with ``out``, writes an advkit model file whose
metadata carries the arch, the recipe and the metrics — so the file is itself a model REF.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .. import distributed
from ..errors import StoreError
from ..model import Classifier
from ..progress import NULL, ProgressFn
from ..threat import ThreatModel
from .config import TrainConfig
from .data import split_train_val
from .loop import CHECKPOINT, FitResult, derive_seed, fit

log = logging.getLogger(__name__)


@dataclass
class TrainRun:
    fit: FitResult
    metrics: dict
    out: Path | None
    seconds: float


def build_model(config: TrainConfig, input_shape: tuple[int, int, int], num_classes: int,
                device: str | torch.device | None = None) -> Classifier:
    """``config.arch`` initialised deterministically from ``config.seed``, wrapped as a Classifier."""
    from ..zoo.architectures import build
    c, h, _ = input_shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "init"))
        net = build(config.arch, num_classes=num_classes, in_channels=c, input_size=h, **config.arch_kwargs)
    clf = Classifier(net, num_classes=num_classes, input_shape=input_shape, name=config.arch)
    if config.mean is not None or config.std is not None:
        from ..devices import set_normalization
        set_normalization(clf, config.mean, config.std, channels=c)
    return clf.to(device) if device is not None else clf


def run_identity(config: TrainConfig, x: torch.Tensor, y: torch.Tensor, model: Classifier) -> dict:
    """What a checkpoint of this run is tied to (:mod:`advkit.identity`): the train split's contents, the
    initial weights, the architecture with its options, no defense, and the advkit code."""
    import json

    from ..identity import code_version, data_digest
    from ..sources.models import model_hash
    return {"data_hash": data_digest(x, y), "model_hash": model_hash(model),
            "model_definition": f"{config.arch} {json.dumps(config.arch_kwargs, sort_keys=True)}",
            "defense": None, "code_version": code_version()}


def held_out_metrics(model: Classifier, x: torch.Tensor, y: torch.Tensor, config: TrainConfig, *,
                 steps: int = 20, batch_size: int = 500) -> dict:
    """Clean test accuracy plus PGD-``steps`` (adversarial methods) or noisy (gaussian) accuracy."""
    gen = torch.Generator().manual_seed(derive_seed(config.seed, "test"))
    clean = float((model.predict(x, batch_size) == y).float().mean())
    metrics: dict = {"test_clean_accuracy": clean, "test_n": len(x)}
    if config.method == "gaussian":
        noisy = x + config.sigma * torch.randn(x.shape, generator=gen)  # unclipped, as in smoothing
        with model.inference(), torch.no_grad():
            pred = torch.cat([model(noisy[i:i + batch_size].to(model.device)).argmax(1).cpu()
                              for i in range(0, len(x), batch_size)])
        metrics["test_noisy_accuracy"] = float((pred == y).float().mean())
        metrics["sigma"] = config.sigma
    elif config.is_adversarial:
        from ..attacks.pgd import PGD
        threat = ThreatModel(config.norm, config.eps)
        res = PGD(threat=threat, steps=steps)(model, x, y, generator=gen, batch_size=batch_size)
        metrics[f"test_pgd{steps}_accuracy"] = res.robust_accuracy
        metrics["threat"] = str(threat)
    return metrics


def train_from_config(config: TrainConfig, *, out: str | Path | None = None, checkpoint_dir: str | Path | None = None,
                      resume: bool | str = False, progress: ProgressFn = NULL, on_epoch: Callable[[dict], None] | None = None,
                      name: str | None = None, description: str = "", device: str | None = None) -> TrainRun:
    """Run ``config`` end to end (see the module docstring); under torchrun only rank 0 writes ``out``."""
    from ..sources.data import load_data
    start = time.perf_counter()
    distributed.init_from_env()
    if device is None and distributed.is_distributed():
        device = str(distributed.local_device())
    train = load_data(config.data, "train")
    gen = torch.Generator().manual_seed(derive_seed(config.seed, "split"))
    xtr, ytr, xva, yva = split_train_val(train.x, train.y, val_size=config.val_size, subset=config.train_subset,
                                         generator=gen)
    model = build_model(config, tuple(train.x.shape[1:]), train.num_classes, device)
    identity = run_identity(config, train.x, train.y, model) if checkpoint_dir is not None else None
    result = fit(model, xtr, ytr, config, val=(xva, yva) if len(xva) else None, checkpoint_dir=checkpoint_dir,
                 resume=resume, progress=progress, on_epoch=on_epoch, identity=identity)
    metrics = {**result.metrics, "kept_epoch": result.best_epoch, "train_n": len(xtr), "val_n": len(xva)}
    if distributed.is_main():
        test = load_data(config.data, "test")
        metrics.update(held_out_metrics(result.model, test.x, test.y, config))
    path = None
    if out is not None and distributed.is_main():
        path = save_or_rescue(result.model, config, metrics, out, checkpoint_dir, name=name, description=description,
                              data_name=train.name)
    distributed.barrier()
    return TrainRun(result, metrics, path, time.perf_counter() - start)


def save_or_rescue(model: Classifier, config: TrainConfig, metrics: dict, out: str | Path,
                   checkpoint_dir: str | Path | None, **kw) -> Path:
    """:func:`save` to ``out``; when that fails the trained model is never lost: it is written to the
    temp folder instead (and the checkpoint, if any, is kept), and the StoreError says where it is."""
    try:
        return save(model, config, metrics, out, **kw)
    except StoreError as e:
        rescue = Path(tempfile.gettempdir()) / f"advkit-rescued-{os.getpid()}-{Path(out).name}"
        kept = f"; the checkpoint {Path(checkpoint_dir) / CHECKPOINT} is kept" if checkpoint_dir is not None else ""
        try:
            save(model, config, metrics, rescue, **kw)
        except StoreError:
            hint = (f"{kept}: rerun with --resume --checkpoint-dir {checkpoint_dir} and another --out to write the "
                    "model without training again") if kept else "; the trained model could not be saved anywhere"
            raise StoreError(f"{e}{hint}") from None
        raise StoreError(f"{e}; the trained model was saved to {rescue} instead (use it as --model {rescue})"
                         f"{kept}") from None


def save(model: Classifier, config: TrainConfig, metrics: dict, out: str | Path, *, name: str | None = None,
         description: str = "", data_name: str | None = None) -> Path:
    """Write the advkit model file (arch, recipe and metrics in the metadata)."""
    from ..zoo.checkpoint import save_model
    recipe = {**config.to_dict(), "trainer": "advkit train"}
    return save_model(out, model, arch=config.arch, arch_kwargs=config.arch_kwargs, recipe=recipe,
                      metrics=metrics, bounds=model.bounds, input_shape=model.input_shape,
                      num_classes=model.num_classes, name=name, data=config.data,
                      description=description or f"{config.arch}, {config.method} training on {data_name or config.data}")
