"""Model sources: the model REF syntax resolved to a :class:`~advkit.model.Classifier`.

REFs:

``zoo:NAME``
    a model shipped in :mod:`advkit.zoo`.
``FILE.safetensors``
    an advkit model file (:mod:`advkit.zoo.checkpoint`: weights + metadata that rebuild it).
``path/to/file.py:factory`` or ``pkg.module:factory``
    ``factory(**args)`` (``args``: the CLI's ``--model-arg KEY=VALUE``, a spec's ``[model.args]``) returns an ``nn.Module`` (logits) or a ``Classifier``; ``weights`` then loads a state
    dict from ``.safetensors`` (never code) or ``.pt``/``.pth`` via ``torch.load(weights_only=True)``.
    A pickle that needs arbitrary code raises :class:`~advkit.errors.UnsafeCheckpointError` unless
    ``trust_pickle=True`` (the CLI's ``--trust-pickle``) — only grant it for files you trust.
``torchscript:FILE``
    a TorchScript archive (``torch.jit.load``).
``onnx:FILE``
    an ONNX model converted to PyTorch with the optional ``onnx2torch`` package.

The returned Classifier's ``name`` is the REF; ``device`` moves it explicitly (it stays on the CPU
otherwise).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import pickle
import sys
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import ConfigError, ModelError, UnsafeCheckpointError
from ..faults import one_line, register_user_code
from ..model import Classifier

log = logging.getLogger(__name__)

REF_FORMS = ("zoo:NAME, FILE.safetensors, path/to/file.py:factory, pkg.module:factory, torchscript:FILE, "
             "onnx:FILE")
_STATE_KEYS = ("state_dict", "model_state_dict", "model", "net")


def load_model(ref: str, *, weights: str | None = None, trust_pickle: bool = False,
               device: str | torch.device | None = None, args: dict | None = None) -> Classifier:
    """Resolve a model REF (see the module docstring) to a Classifier named :func:`model_label` of
    ``ref`` and ``args`` (the keyword arguments of a factory REF)."""
    if not isinstance(ref, str) or not ref.strip():
        raise ConfigError(f"model REF must be a non-empty string ({REF_FORMS}), got {ref!r}")
    if args and not is_factory_ref(ref):
        raise ConfigError(f"model arguments ({', '.join(args)}) can only be given with a factory REF "
                          f"(path/to/file.py:factory or pkg.module:factory), got {ref!r}")
    clf = _resolve(ref, weights, trust_pickle, dict(args or {}))
    clf.name = model_label(ref, args)
    from .definition import definition_digest
    clf.definition = definition_digest(ref)  # part of the run identity (evaluation/run_info.py)
    if device is not None:
        clf.to(device)
    return clf


def is_factory_ref(ref: str) -> bool:
    """Whether ``ref`` names a factory (``file.py:factory`` or ``pkg.module:factory``) that takes arguments."""
    kind = ref.partition(":")[0]
    return ":" in ref and kind not in ("zoo", "torchscript", "onnx") and not ref.endswith(".safetensors")


def model_label(ref: str, args: dict | None = None) -> str:
    """The model's name in results and the history: ``ref``, followed by its factory arguments in key
    order when there are any (``m.py:build(depth=28, name="x")``), so that runs of one factory built
    with other arguments are told apart (and never resumed or compared as one model)."""
    if not args:
        return ref
    import json
    return f"{ref}({', '.join(f'{k}={json.dumps(args[k], sort_keys=True)}' for k in sorted(args))})"


def _resolve(ref: str, weights: str | None, trust_pickle: bool, args: dict) -> Classifier:
    kind, _, rest = ref.partition(":")
    if kind in ("zoo", "torchscript", "onnx") or ref.endswith(".safetensors"):
        if weights is not None:
            raise ConfigError(f"weights can only be given with a factory REF ({REF_FORMS}), got {ref!r}")
        if kind == "zoo":
            from .. import zoo

            return zoo.load(rest)
        if kind == "torchscript":
            return _load_torchscript(rest)
        if kind == "onnx":
            return _load_onnx(rest)
        from ..zoo.checkpoint import load_model_file

        return load_model_file(ref)
    if ":" not in ref:
        raise ConfigError(f"cannot interpret model REF {ref!r}; expected one of: {REF_FORMS}")
    clf = _from_factory(ref, args)
    if weights is not None:
        apply_weights(clf, load_state_dict_file(weights, trust_pickle=trust_pickle))
    return clf


def _load_torchscript(path: str) -> Classifier:
    if not Path(path).is_file():
        raise ModelError(f"TorchScript file {path!r} does not exist")
    try:
        net = torch.jit.load(path, map_location="cpu")
    except RuntimeError as e:
        raise ModelError(f"{path} is not a loadable TorchScript archive: {e}") from e
    return Classifier(net)


def _load_onnx(path: str) -> Classifier:
    if not Path(path).is_file():
        raise ModelError(f"ONNX file {path!r} does not exist")
    try:
        from onnx2torch import convert
    except ImportError as e:
        raise ModelError("onnx: model REFs are converted to PyTorch with onnx2torch; install it with "
                         "`pip install onnx2torch`") from e
    try:  # pragma: no cover - optional dependency
        return Classifier(convert(path))
    except Exception as e:  # pragma: no cover
        raise ModelError(f"converting {path} from ONNX failed: {type(e).__name__}: {e}") from e


# ------------------------------------------------------------------ factories
def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"advkit_user_model_{digest}", path)
    if spec is None or spec.loader is None:
        raise ModelError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    parent = str(path.resolve().parent)
    sys.path.insert(0, parent)  # let the file import its sibling modules
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:  # a model that cannot be loaded is an input error (exit 2)
        raise ModelError(f"importing {path} failed: {one_line(e)}") from e
    finally:
        sys.path.remove(parent)
    return module


def _factory(ref: str) -> Callable[[], Any]:
    source, _, name = ref.rpartition(":")
    if not source or not name:
        raise ConfigError(f"factory REF must be path/to/file.py:factory or pkg.module:factory, got {ref!r}")
    if source.endswith(".py"):
        module = _import_file(Path(source))
        register_user_code(source, ref)  # its exceptions later are the model's faults (faults.py)
    else:
        if not all(part.isidentifier() for part in source.split(".")):
            raise ConfigError(f"cannot interpret model REF {ref!r}: {source!r} is neither a .py file nor a "
                              f"dotted module name; expected one of: {REF_FORMS}")
        try:
            module = importlib.import_module(source)
        except (Exception, SystemExit) as e:  # noqa: BLE001 - importing user code can raise anything
            raise ModelError(f"cannot import module {source!r} for model REF {ref!r}: {type(e).__name__}: {e}") from e
        if getattr(module, "__file__", None):  # an installed package: its file only, never its whole folder
            register_user_code(module.__file__, ref, folder=False)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ModelError(f"{source} has no callable {name!r} (model REF {ref!r})")
    return fn


def _from_factory(ref: str, args: dict) -> Classifier:
    import inspect
    fn = _factory(ref)
    try:
        inspect.signature(fn).bind(**args)
    except TypeError as e:
        raise ConfigError(f"model factory {ref!r} does not take the arguments {args}: {e}") from None
    except ValueError:  # no signature (a builtin): let the call tell
        pass
    try:
        obj = fn(**args)
    except (Exception, SystemExit) as e:
        raise ModelError(f"model factory {ref!r} raised {one_line(e)}") from e
    if isinstance(obj, nn.Module) and not isinstance(obj, Classifier):
        obj = Classifier(obj)
    if isinstance(obj, Classifier):
        return _eval_mode(obj, ref)
    raise ModelError(f"model factory {ref!r} must return a torch.nn.Module or an advkit Classifier, "
                     f"got {type(obj).__name__}")


def _eval_mode(clf: Classifier, ref: str) -> Classifier:
    """A factory builds a fresh module, which PyTorch creates in train mode; nobody left it there on
    purpose, so the loader puts it in eval mode (and says so at info level) instead of the pre-flight
    check warning about a "model left in train mode"."""
    if clf.net.training or clf.training:
        log.info("model factory %s returned a module in train mode (as new modules are); evaluating it in "
                 "eval mode", ref)
        clf.eval()
        clf.was_training = False
    return clf


# ------------------------------------------------------------------ weights
def load_state_dict_file(path: str | Path, *, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch pickle (``weights_only`` unless trusted)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from ..zoo.checkpoint import read_safetensors

        return read_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not trust_pickle:
            raise UnsafeCheckpointError(
                f"{path} cannot be loaded with torch.load(weights_only=True): it needs to run arbitrary Python "
                f"code while unpickling ({str(e).splitlines()[0]}). Loading it could execute anything the file "
                "contains. Convert it to safetensors, or pass --trust-pickle (trust_pickle=True) only if you "
                "trust its source.") from e
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, OSError, EOFError) as e:
        raise ModelError(f"cannot read weights file {path}: {e}") from e
    return _extract_state_dict(obj, path)


def _extract_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj)
    if isinstance(obj, dict):
        for key in _STATE_KEYS:
            if isinstance(obj.get(key), (dict, nn.Module)):
                return _extract_state_dict(obj[key], path)
    raise ModelError(f"{path}: expected a state dict (name → tensor) or a dict holding one under "
                     f"{'/'.join(_STATE_KEYS)}, got {type(obj).__name__}")


def _strip_prefix(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def apply_weights(clf: Classifier, sd: dict[str, torch.Tensor]) -> None:
    """Load ``sd`` strictly into ``clf.net`` (or into ``clf`` when saved from a Classifier)."""
    sd = _strip_prefix(sd, "module.")  # DataParallel / DDP checkpoints
    target: nn.Module = clf if any(k.startswith("net.") for k in sd) else clf.net
    try:
        target.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise ModelError(f"weights do not match the model built by the factory: {e}") from e


def model_hash(clf: nn.Module) -> str:
    """sha256 (hex) over the state dict: names, dtypes, shapes and bytes, in sorted name order."""
    h = hashlib.sha256()
    for name, t in sorted(clf.state_dict().items()):
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        flat = t.detach().to("cpu").contiguous().reshape(-1)
        h.update(flat.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
