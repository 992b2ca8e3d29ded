"""What an evaluation run needs besides its stages: inputs, hashes, environment, gates.

Kept apart from :mod:`advkit.evaluation.pipeline` so that the pipeline reads as the list of stages.
"""
from __future__ import annotations

import logging
import platform
import subprocess
from datetime import datetime, timezone

import numpy as np
import torch

from ..errors import ConfigError
from ..results.io import SCHEMA_VERSION
from .spec import EvaluationSpec

log = logging.getLogger(__name__)


def load_inputs(spec: EvaluationSpec, model=None, data=None):
    """(Classifier, Dataset) from the spec's REFs unless given directly."""
    from ..model import as_classifier
    from ..sources import load_data, load_model
    from ..devices import place
    clf = as_classifier(model) if model is not None else load_model(spec.model, weights=spec.weights,
                                                                   trust_pickle=spec.trust_pickle)
    ds = data if data is not None else load_data(spec.data, spec.split, stream=True, resize=spec.resize,
                                                 crop=spec.crop)
    if isinstance(ds, tuple):
        ds = _TensorData(*ds)
    if clf.num_classes is None:
        clf.num_classes = ds.num_classes
    # a model handed in by a library caller moves only when the spec names a device (never silently)
    device = spec.device if model is None or spec.device is not None else clf.device
    place(clf, device=device, mean=spec.mean, std=spec.std, channels=int(ds.x.shape[1]))
    return clf, ds


class _TensorData:
    """A minimal dataset from ``(x, y)`` tensors (tests and library callers)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, num_classes: int | None = None):
        self.x, self.y = x, y
        self.num_classes = int(num_classes or int(y.max()) + 1)
        self.classes = tuple(str(i) for i in range(self.num_classes))

    def subset(self, n: int | None) -> "_TensorData":
        return self if n is None else _TensorData(self.x[:n], self.y[:n], self.num_classes)


def model_digest(clf) -> str:
    from ..sources import model_hash
    return model_hash(clf)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment() -> dict:
    from .. import __version__
    return {"schema_version": SCHEMA_VERSION, "advkit_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "environment": {"python": platform.python_version(), "torch": torch.__version__,
                            "numpy": np.__version__, "advkit": __version__, "platform": platform.platform(),
                            "threads": torch.get_num_threads(), "processes": _processes(),
                            "git_commit": git_commit()}}


def _processes() -> int:
    from .. import distributed
    return distributed.world_size()


def gate_list(spec: EvaluationSpec) -> list:
    """The spec's gates: its ``require`` expressions, the clean floor and the robust-accuracy regression."""
    from .. import gates as G
    out: list = [G.parse_gate(g) for g in spec.gates.require]
    if spec.gates.clean_floor is not None:
        out.append(G.Gate("clean_accuracy", ">=", spec.gates.clean_floor))
    if spec.gates.max_drop is not None:
        out.append(G.RegressionGate(max_drop=spec.gates.max_drop, metrics=("robust_accuracy",)))
    return out


def gates_section(spec: EvaluationSpec, result: dict, store, meta: dict, run_id) -> dict:
    """``{passed, items, baseline_run, message}``: the spec's gates against the latest run of this spec."""
    try:
        from .. import gates as G
    except ImportError as e:
        msg = f"gates not checked: advkit.gates is not available ({e})"
        log.warning(msg)
        return {"passed": True, "items": [], "baseline_run": None, "message": msg}
    baseline = store.latest(meta["model"], meta["spec_hash"], exclude=run_id) if store is not None else None
    report = G.check_gates(result, gate_list(spec), baseline)
    out = report.to_dict()
    out["baseline_run"] = baseline.get("run_id") if baseline else None
    out["message"] = "no baseline run of this spec yet; regression gates skipped" if baseline is None else ""
    return out


def validate_gates(spec: EvaluationSpec) -> None:
    """Parse the spec's gate expressions early so a typo is a config error before any attack runs."""
    try:
        gate_list(spec)
    except ImportError:
        return
    except ConfigError as e:
        raise ConfigError(f"gates.require: {e}") from None
