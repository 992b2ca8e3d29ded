"""Where a model runs and what input it expects: device resolution and normalisation options.

One helper for every command (``--device``, ``--mean``, ``--std``) and for the evaluation spec's
``device``/``mean``/``std`` keys, so the defaults and the error messages are the same everywhere.

Device default: the rank's GPU under ``torchrun`` (``LOCAL_RANK``), else ``cuda`` when CUDA is
available, else the CPU.  Asking for a device this machine does not have is a :class:`ConfigError`
(exit code 2) that says which devices exist.
"""
from __future__ import annotations

import math
import os
from typing import Sequence

import torch

from .errors import ConfigError

#: CIFAR-10 per-channel statistics that most published CIFAR-10 checkpoints were trained with
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)
#: ImageNet statistics (torchvision's models)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _available() -> str:
    kinds = ["cpu"]
    if torch.cuda.is_available():
        kinds.append(f"cuda:0..{torch.cuda.device_count() - 1}")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        kinds.append("mps")
    return ", ".join(kinds)


def default_device() -> torch.device:
    """The rank's GPU under torchrun, else ``cuda`` when available, else the CPU."""
    if torch.cuda.is_available():
        if "LOCAL_RANK" in os.environ:
            return torch.device("cuda", int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def resolve_device(text: str | torch.device | None) -> torch.device:
    """``None``/``"auto"`` → :func:`default_device`; otherwise the named device, checked to exist."""
    if text is None or (isinstance(text, str) and text.strip().lower() in ("", "auto")):
        return default_device()
    try:
        dev = torch.device(text.strip() if isinstance(text, str) else text)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device: expected cpu, cuda, cuda:N, mps or auto, got {text!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {str(dev)!r} is not available: this machine has no usable CUDA "
                              f"(available: {_available()})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {str(dev)!r} is not available: expected one of {_available()}")
    elif dev.type == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise ConfigError(f"device 'mps' is not available (available: {_available()})")
    elif dev.type != "cpu":
        raise ConfigError(f"device: expected cpu, cuda, cuda:N, mps or auto, got {text!r}")
    return dev


def describe(device: torch.device | str) -> str:
    """The device a run computed on, with what changes its float rounding: ``cpu``, or e.g.
    ``cuda:0 (NVIDIA H200, CUDA 13.0; TF32 convolutions on, float32 matmuls 'highest')`` — on GPUs
    PyTorch runs convolutions in TF32 by default, so logits can differ from a CPU run's around the
    3rd–4th digit."""
    device = torch.device(device)
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    name = torch.cuda.get_device_name(index)
    tf32 = "on" if torch.backends.cudnn.allow_tf32 else "off"
    return (f"cuda:{index} ({name}, CUDA {torch.version.cuda}; TF32 convolutions {tf32}, "
            f"float32 matmuls '{torch.get_float32_matmul_precision()}')")


def parse_floats(text: str | Sequence[float] | None, name: str) -> tuple[float, ...] | None:
    """``"0.49,0.48,0.45"`` or a list → a tuple of floats (``None`` stays ``None``)."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected comma-separated numbers (one per channel), got {text!r}") from None
    if not out or not all(math.isfinite(v) for v in out):
        raise ConfigError(f"{name}: expected one or more finite numbers, got {text!r}")
    return out


def parse_mean_std(mean, std) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """``(mean, std)`` parsed by :func:`parse_floats`; a std that is not positive is refused."""
    mean, std = parse_floats(mean, "mean"), parse_floats(std, "std")
    if std is not None and any(s <= 0 for s in std):
        raise ConfigError(f"std: expected positive numbers, got {list(std)}")
    return mean, std


def set_normalization(clf, mean: Sequence[float] | None, std: Sequence[float] | None,
                      channels: int | None = None) -> None:
    """Give ``clf`` (an :class:`~advkit.model.Classifier`) per-channel ``mean``/``std`` buffers.

    A model that already normalises (its Classifier carries mean/std) is refused: normalising twice
    would silently evaluate a different model.  ``channels`` (the data's) checks the lengths.
    """
    if mean is None and std is None:
        return
    mean, std = parse_mean_std(mean, std)
    if clf.mean is not None or clf.std is not None:
        raise ConfigError("mean/std given, but the model already normalises its input (its Classifier has "
                          "mean/std buffers); drop --mean/--std or return the bare network from the factory")
    for name, vals in (("mean", mean), ("std", std)):
        if vals is not None and channels is not None and len(vals) not in (1, channels):
            want = "1 value" if channels == 1 else f"1 or {channels} values (one per input channel)"
            raise ConfigError(f"{name}: expected {want}, got {len(vals)}")
    device = clf.device
    for name, vals in (("mean", mean), ("std", std)):
        if vals is not None:
            setattr(clf, name, torch.tensor(vals, dtype=torch.float32, device=device).view(1, -1, 1, 1))


def place(clf, *, device=None, mean=None, std=None, channels: int | None = None):
    """Set normalisation, then move ``clf`` to the resolved device (returns the device)."""
    set_normalization(clf, mean, std, channels)
    dev = resolve_device(device)
    clf.to(dev)
    return dev


__all__ = ["resolve_device", "default_device", "parse_floats", "set_normalization", "place",
           "CIFAR10_MEAN", "CIFAR10_STD", "IMAGENET_MEAN", "IMAGENET_STD"]
