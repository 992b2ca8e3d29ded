"""Checks on an advkit model file's metadata before anything is built from it.

A model file's metadata is input: it may be malformed (bounds ``[0]``, a mean that is not numbers, an
``input_shape`` that is null or too short, architecture options the architecture does not take) or ask
for an absurd network (WRN-1000-40, a 10⁶-pixel input).  Each is a one-line
:class:`~advkit.errors.ModelError` naming the file and the key (exit code 2), and the network is sized on
PyTorch's ``meta`` device (no memory) and refused above :data:`MAX_PARAMETERS` before it is allocated.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..errors import AdvkitError, ModelError

#: the largest network a model file may ask for (≈ 2 GB of float32 weights; WRN-28-10 has 36.5M)
MAX_PARAMETERS = 500_000_000
#: the largest class count, channel count and image side a model file may declare
MAX_CLASSES, MAX_CHANNELS, MAX_SIDE = 100_000, 64, 4096
#: the largest integer architecture option (a WRN depth, a widen factor, a padding)
MAX_OPTION = 1000


def _numbers(value, key: str, path) -> list[float]:
    if not isinstance(value, list) or not value or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        raise ModelError(f"{path}: metadata {key!r} must be a non-empty list of finite numbers, got {value!r}")
    return [float(v) for v in value]


def _int_in(value, key: str, lo: int, hi: int, path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ModelError(f"{path}: metadata {key!r} must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def validate(meta: dict[str, Any], path) -> None:
    """Raise :class:`ModelError` for metadata that cannot describe a classifier (module docstring)."""
    shape = meta.get("input_shape")
    if not isinstance(shape, list) or len(shape) != 3:
        raise ModelError(f"{path}: metadata 'input_shape' must be [C, H, W], got {shape!r}")
    c = _int_in(shape[0], "input_shape[0] (channels)", 1, MAX_CHANNELS, path)
    for i in (1, 2):
        _int_in(shape[i], f"input_shape[{i}]", 1, MAX_SIDE, path)
    _int_in(meta.get("num_classes"), "num_classes", 2, MAX_CLASSES, path)
    bounds = _numbers(meta.get("bounds"), "bounds", path)
    if len(bounds) != 2 or not bounds[0] < bounds[1]:
        raise ModelError(f"{path}: metadata 'bounds' must be [low, high] with low < high, got {meta.get('bounds')!r}")
    for key in ("mean", "std"):
        if meta.get(key) is None:
            continue
        values = _numbers(meta[key], key, path)
        if len(values) not in (1, c):
            raise ModelError(f"{path}: metadata {key!r} must have 1 or {c} values (one per channel), got {len(values)}")
        if key == "std" and min(values) <= 0:
            raise ModelError(f"{path}: metadata 'std' must be positive, got {values}")
    if not isinstance(meta.get("arch"), str):
        raise ModelError(f"{path}: metadata 'arch' must be an architecture name, got {meta.get('arch')!r}")
    kwargs = meta.get("arch_kwargs")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ModelError(f"{path}: metadata 'arch_kwargs' must be a JSON object, got {type(kwargs).__name__}")
    for k, v in (kwargs or {}).items():
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_OPTION:
            raise ModelError(f"{path}: metadata arch_kwargs {k}={v} is beyond the limit of {MAX_OPTION}")


def checked_build(meta: dict[str, Any], build, path) -> nn.Module:
    """``build(meta)`` once on the ``meta`` device to count its parameters, then for real; a network over
    :data:`MAX_PARAMETERS` or options the architecture rejects are a :class:`ModelError`."""
    try:
        with torch.device("meta"):
            size = sum(p.numel() for p in build(meta).parameters())
        if size > MAX_PARAMETERS:
            raise ModelError(f"{path}: the metadata asks for a {meta['arch']!r} network of {size:,} parameters; "
                             f"expected at most {MAX_PARAMETERS:,}")
        return build(meta)
    except AdvkitError as e:
        if isinstance(e, ModelError):
            raise
        raise ModelError(f"{path}: {' '.join(str(e).split())}") from None
    except (TypeError, ValueError, RuntimeError, OverflowError, ZeroDivisionError) as e:
        raise ModelError(f"{path}: metadata arch {meta['arch']!r} with arch_kwargs {meta.get('arch_kwargs')!r} "
                         f"cannot be built ({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None


__all__ = ["validate", "checked_build", "MAX_PARAMETERS"]
