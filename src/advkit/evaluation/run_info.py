"""What an evaluation run needs besides its stages: inputs, hashes, environment, gates.

Kept apart from :mod:`advkit.evaluation.pipeline` so that the pipeline reads as the list of stages.
"""
from __future__ import annotations

import hashlib
import logging
import platform
from datetime import datetime, timezone

import numpy as np
import torch

from ..errors import ConfigError
from ..identity import code_version, data_digest, git_commit, short  # noqa: F401 - re-exported
from ..results.io import SCHEMA_VERSION
from .spec import EvaluationSpec

log = logging.getLogger(__name__)


def load_inputs(spec: EvaluationSpec, model=None, data=None):
    """(Classifier, Dataset) from the spec's REFs unless given directly.

    The number of classes is not taken from the data: the pipeline reads it from the model's output
    width (:func:`advkit.model.resolve_classes`) and checks the labels against it.
    """
    from ..model import as_classifier
    from ..sources import load_data, load_model
    from ..devices import place
    clf = as_classifier(model) if model is not None else load_model(spec.model, weights=spec.weights,
                                                                   trust_pickle=spec.trust_pickle,
                                                                   args=spec.model_args)
    ds = data if data is not None else load_data(spec.data, spec.split, stream=True, resize=spec.resize,
                                                 crop=spec.crop)
    if isinstance(ds, tuple):
        ds = _TensorData(*ds)
    # a model handed in by a library caller moves only when the spec names a device (never silently)
    device = spec.device if model is None or spec.device is not None else clf.device
    place(clf, device=device, mean=spec.mean, std=spec.std, channels=int(ds.x.shape[1]))
    return clf, ds


class _TensorData:
    """A minimal dataset from ``(x, y)`` tensors (tests and library callers)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, num_classes: int | None = None):
        self.x, self.y = x, y
        self.num_classes = int(num_classes or (int(y.max()) + 1 if len(y) else 0))
        self.classes = tuple(str(i) for i in range(self.num_classes))

    def subset(self, n: int | None) -> "_TensorData":
        return self if n is None else _TensorData(self.x[:n], self.y[:n], self.num_classes)


def model_digest(clf) -> str:
    """The model's identity: its weights (``sources.model_hash``) and, when known, its definition (the source
    of a ``.py`` factory and of the files it imports from its folder, a TorchScript/ONNX archive, a model
    file's metadata: ``sources/definition.py``)."""
    from ..sources import model_hash
    weights = model_hash(clf)
    definition = getattr(clf, "definition", None)
    if not definition:
        return weights
    return hashlib.sha256(f"{weights}|definition|{definition}".encode()).hexdigest()


IDENTITY = (("model", "the model REF and factory arguments"), ("model_hash", "the model weights or definition"),
            ("data_hash", "the data"), ("code_version", "the advkit code"))


def check_resumable(row: dict, meta: dict) -> None:
    """Refuse (ConfigError) to resume run ``row`` when its model (REF, factory arguments, weights), data or
    code differ from ``meta``."""
    for key, what in IDENTITY:
        then, now = row.get(key), meta.get(key)
        if key == "model" and then is None:
            continue  # a row without the column (never written so) cannot tell
        if then != now:
            raise ConfigError(f"--resume: expected {what} of unfinished run {row['run_id']} "
                              f"({key} {short(then)}), got {short(now)}; {what} changed since that run "
                              "started, so its stored batches do not apply: run without --resume")


def environment(device: torch.device | str | None = None) -> dict:
    """Versions and the machine a run computed on; ``device`` (the model's) is described with what changes
    its float rounding (:func:`advkit.devices.describe`)."""
    from ..version import __version__
    from ..devices import describe
    env = {"python": platform.python_version(), "torch": torch.__version__,
           "numpy": np.__version__, "advkit": __version__, "platform": platform.platform(),
           "threads": torch.get_num_threads(), "processes": _processes(),
           "git_commit": git_commit(), "code_version": code_version()}
    if device is not None:
        env["device"] = describe(device)
    return {"schema_version": SCHEMA_VERSION, "advkit_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "environment": env}


def _processes() -> int:
    from .. import distributed
    return distributed.world_size()


def gate_list(spec: EvaluationSpec) -> list:
    """The spec's gates: its ``require`` expressions, the clean floor, the per-class minimum and the
    regression rule (``max_drop``: clean and every threat's robust accuracy, as ``gate`` and
    ``history compare`` check it)."""
    from .. import gates as G
    out: list = [G.parse_gate(g) for g in spec.gates.require]
    if spec.gates.clean_floor is not None:
        out.append(G.Gate("clean_accuracy", ">=", spec.gates.clean_floor))
    if spec.gates.per_class_min is not None:
        out.extend(G.per_class_gates(spec.gates.per_class_min, [str(t) for t in spec.threats]))
    if spec.gates.max_drop is not None:
        out.append(G.RegressionGate(max_drop=spec.gates.max_drop))
    return out


def gates_section(spec: EvaluationSpec, result: dict, store, meta: dict, run_id) -> dict:
    """``{passed, items, baseline_run, message}``: the spec's gates against the latest complete run of this
    spec and model; noisy verdicts become ``gate-noise`` findings (not Python warnings)."""
    from .. import gates as G
    baseline = store.latest(meta["model"], meta["spec_hash"], exclude=run_id) if store is not None else None
    report = G.check_gates(result, gate_list(spec), baseline, allow_upper_bound=spec.gates.allow_upper_bound,
                           warn=False)
    out = report.to_dict()
    out["baseline_run"] = baseline.get("run_id") if baseline else None
    out["message"] = "no baseline run of this spec yet; regression gates skipped" if baseline is None else ""
    findings = result.setdefault("findings", [])
    findings.extend(G.noise_findings(report))
    then = (baseline or {}).get("data_hash")
    if then and then != meta.get("data_hash"):
        findings.append({"code": "baseline-data-changed", "severity": "warning",
                         "message": f"baseline run {baseline.get('run_id')} evaluated other data contents under the "
                                    f"same data REF (data hash {then[:12]} then, {str(meta.get('data_hash'))[:12]} "
                                    "now): the regression gates compare different images"})
    return out


def validate_gates(spec: EvaluationSpec) -> None:
    """Check the spec's gates before any attack runs: expressions parse, and every threat (and certified
    radius) a gate names is one the spec evaluates; a typo is a config error that costs nothing."""
    from .. import gates as G
    try:
        gates = gate_list(spec)
        G.validate_gates(gates, [str(t) for t in spec.threats],
                         radii=spec.certify.radii if spec.certify is not None else None, where="gates")
        from ..gates.grade import GradeGate, validate_for_spec
        for g in gates:
            if isinstance(g, GradeGate):
                validate_for_spec(g, spec.profile, [str(t) for t in spec.threats])
    except ConfigError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith("gates") else f"gates.require: {msg}") from None
