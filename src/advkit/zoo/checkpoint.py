"""advkit model files: a safetensors state dict plus JSON metadata that rebuilds the Classifier.

Format ``advkit-model/1``: the tensors are the underlying network's ``state_dict()``; the metadata
(all strings, as safetensors requires) holds ``format``, ``arch``, ``arch_kwargs`` (JSON), ``recipe``
(JSON: how it was trained), ``metrics`` (JSON), ``mean``/``std`` (JSON list or null), ``bounds``,
``input_shape`` (C, H, W), ``num_classes``, ``name``, ``data``, ``description`` and ``advkit_version``.
Loading never unpickles anything: safetensors files hold raw tensors only.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..atomic import atomic_path
from ..errors import ModelError
from ..model import Classifier
from .architectures import build
from .metadata import checked_build, validate as validate_metadata

FORMAT = "advkit-model/1"
_JSON_KEYS = ("arch_kwargs", "recipe", "metrics", "mean", "std", "bounds", "input_shape")


def _norm_list(value: Sequence[float] | torch.Tensor | None) -> list[float] | None:
    if value is None:
        return None
    return [float(v) for v in torch.as_tensor(value).flatten().tolist()]


def save_model(path: str | Path, net: nn.Module, *, arch: str, arch_kwargs: dict | None = None,
               recipe: dict | None = None, metrics: dict | None = None,
               mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
               bounds: tuple[float, float] = (0.0, 1.0), input_shape: Sequence[int], num_classes: int,
               name: str | None = None, data: str | None = None, description: str = "") -> Path:
    """Write ``net`` (an ``nn.Module`` or a :class:`Classifier`, whose mean/std are used unless given)."""
    from safetensors.torch import save_file

    from ..version import __version__

    if isinstance(net, Classifier):
        mean = mean if mean is not None else net.mean
        std = std if std is not None else net.std
        net = net.net
    if input_shape is None or len(tuple(input_shape)) != 3:
        raise ModelError(f"input_shape must be (C, H, W), got {input_shape!r}")
    path = Path(path)
    meta: dict[str, Any] = {
        "format": FORMAT, "arch": arch, "arch_kwargs": dict(arch_kwargs or {}), "recipe": dict(recipe or {}),
        "metrics": dict(metrics or {}), "mean": _norm_list(mean), "std": _norm_list(std),
        "bounds": [float(bounds[0]), float(bounds[1])], "input_shape": [int(s) for s in input_shape],
    }
    encoded = {k: json.dumps(v, sort_keys=True) for k, v in meta.items() if k in _JSON_KEYS}
    encoded.update(format=FORMAT, arch=arch, num_classes=str(int(num_classes)), name=name or path.stem,
                   data=data or str(meta["recipe"].get("data", "")), description=description,
                   advkit_version=__version__)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=encoded)
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The decoded metadata of an advkit model file (reads only the header)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types
        raise ModelError(f"{path} is not a readable safetensors file: {e}") from e
    if raw.get("format") != FORMAT:
        raise ModelError(f"{path}: expected metadata format {FORMAT!r}, got {raw.get('format')!r}; "
                         "for a plain state dict use a factory REF with --weights")
    meta: dict[str, Any] = dict(raw)
    try:
        for k in _JSON_KEYS:
            meta[k] = json.loads(raw[k]) if k in raw else None
        meta["num_classes"] = int(raw["num_classes"])
    except (KeyError, ValueError) as e:
        raise ModelError(f"{path}: malformed advkit metadata ({e})") from e
    validate_metadata(meta, path)
    return meta


def build_from_metadata(meta: dict[str, Any]) -> nn.Module:
    """Rebuild the (untrained) network described by ``meta``."""
    c, h, _ = meta["input_shape"]
    kwargs = {"num_classes": meta["num_classes"], "in_channels": c, "input_size": h, **(meta["arch_kwargs"] or {})}
    return build(meta["arch"], **kwargs)


def load_model_file(path: str | Path, *, device: str | torch.device | None = None) -> Classifier:
    """Load an advkit model file into a :class:`Classifier` (strict state-dict load, eval mode)."""
    meta = read_metadata(path)
    net = checked_build(meta, build_from_metadata, path)  # sized on the meta device first (zoo/metadata.py)
    try:
        net.load_state_dict(read_safetensors(path), strict=True)
    except RuntimeError as e:
        raise ModelError(f"{path}: weights do not match architecture {meta['arch']!r}: {e}") from e
    net.eval()
    clf = Classifier(net, mean=meta["mean"], std=meta["std"], bounds=tuple(meta["bounds"]),
                     num_classes=meta["num_classes"], input_shape=meta["input_shape"], name=meta["name"])
    clf.metadata = meta
    if device is not None:
        clf.to(device)
    return clf


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file; a :class:`ModelError` that says what the file is otherwise
    (empty, a torch pickle with the wrong name, truncated or corrupt)."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
        if not head:
            raise ModelError(f"{path}: the file is empty (0 bytes); expected a safetensors file")
        if head[:2] == b"PK" or head[:1] == b"\x80":
            raise ModelError(f"{path}: not a safetensors file: it is a torch.save pickle named .safetensors; "
                             "rename it to .pt (it is then loaded with torch.load(weights_only=True))")
        return load_file(str(path))
    except ModelError:
        raise
    except OSError as e:
        raise ModelError(f"cannot read {path}: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise ModelError(f"{path}: not a readable safetensors file (truncated or corrupt): "
                         f"{' '.join(str(e).split())}") from None
