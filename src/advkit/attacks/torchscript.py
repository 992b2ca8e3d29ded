"""Frozen, inference-optimised TorchScript copies of a model's forward pass (for ``fastpath.py``).

A module is scripted when TorchScript can compile it; otherwise it is traced on an example batch,
and the trace is refused when the tracer warns that it may not generalise (Python control flow on
tensor values, numbers taken from tensors): such a copy could compute another function elsewhere.
"""
from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

log = logging.getLogger(__name__)


class Normalised(nn.Module):
    """``net((x − mean) / std)`` in a form TorchScript can compile."""

    def __init__(self, net: nn.Module, mean, std):
        super().__init__()
        self.net = net
        self.register_buffer("mean", mean if mean is not None else torch.zeros(1))
        self.register_buffer("std", std if std is not None else torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def frozen_script(src: nn.Module, example: torch.Tensor | None):
    """A frozen, inference-optimised TorchScript of ``src`` (scripted, else traced on ``example``), or None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(src)))
        except Exception as exc:  # many user modules are not scriptable; that is fine
            log.debug("not scriptable (%s: %s); tracing instead", type(exc).__name__, exc)
    if example is None:
        return None
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            with torch.no_grad():
                traced = torch.jit.trace(src, example, check_trace=False)
            module = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
        except Exception as exc:
            log.debug("no TorchScript copy (%s: %s)", type(exc).__name__, exc)
            return None
    if any(issubclass(w.category, torch.jit.TracerWarning) for w in seen):
        log.debug("no traced copy: the tracer warns that the trace may not generalise")
        return None
    return module
