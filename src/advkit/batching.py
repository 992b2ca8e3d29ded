"""Batches that fit the device: on out-of-memory, halve the batch and continue (and say so).

An attack (or any batched model work) on an accelerator starts with the whole input as one batch
(:func:`advkit.attacks.base.default_batch_size`); plain forward passes over data (the evaluation's
clean-accuracy stage and confidences, ``Classifier.predict``, the pre-flight check) go through
:func:`forward_in_batches`, which starts with the batch it is given.  When a batch does not fit, the device's
out-of-memory error is caught, the cache is emptied, the batch size is halved and the same samples
are tried again, down to one sample per batch.  Every halving is reported once, as a
:class:`~advkit.errors.BatchSizeReducedWarning` and a log line.  With per-sample streams
(:mod:`advkit.rng`) the retried samples replay their draws (``Attack.__call__`` gives each attempt a copy
of their streams); with a ``torch.Generator`` the failed attempt's draws are not replayed, so a halved
run's random draws differ from an unhalved one (its numbers are as valid).
"""
from __future__ import annotations

import logging
import warnings
from typing import Callable

import torch

from .errors import BatchSizeReducedWarning

log = logging.getLogger(__name__)

_OOM_TEXT = ("out of memory", "can't allocate memory")


def is_out_of_memory(e: BaseException) -> bool:
    """CUDA's ``OutOfMemoryError`` or an allocator's out-of-memory RuntimeError (MPS, CPU)."""
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(e, oom):
        return True
    return isinstance(e, RuntimeError) and any(t in str(e).lower() for t in _OOM_TEXT)


def _free(device: torch.device) -> None:
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_in_batches(fn: Callable[[slice], object], n: int, batch_size: int, device: torch.device,
                   what: str = "attack") -> list:
    """``[fn(slice) for each batch]`` over ``range(n)``; a batch that runs out of memory is retried
    with half the batch size (and so are all later batches)."""
    outs, i, bs = [], 0, max(1, int(batch_size))
    while i < n:
        sl = slice(i, min(i + bs, n))
        try:
            outs.append(fn(sl))
        except Exception as e:  # noqa: BLE001 - only out-of-memory errors are handled
            if not is_out_of_memory(e) or bs == 1:
                raise
            _free(device)
            new = max(1, bs // 2)
            msg = f"{what}: out of memory on {device} with a batch of {bs}; continuing with batches of {new}"
            log.warning(msg)
            warnings.warn(msg, BatchSizeReducedWarning, stacklevel=3)
            bs = new
            continue
        i = sl.stop
    return outs


def forward_in_batches(model, x: torch.Tensor, *, batch_size: int | None = None,
                       what: str = "forward pass") -> torch.Tensor:
    """``model(x)`` without gradients, on the model's device and dtype, in batches of ``batch_size`` (all of
    ``x`` by default), halved on out-of-memory like the attacks' batches (``what`` names it in the warning)."""
    device = getattr(model, "device", x.device)
    dtype = getattr(model, "dtype", x.dtype)

    def one(sl: slice) -> torch.Tensor:
        with torch.no_grad():
            return model(x[sl].to(device, dtype))
    if len(x) == 0:
        return one(slice(0, 0))
    outs = run_in_batches(one, len(x), batch_size or len(x), device, what=what)
    return outs[0] if len(outs) == 1 else torch.cat(outs)


__all__ = ["run_in_batches", "is_out_of_memory", "forward_in_batches"]
