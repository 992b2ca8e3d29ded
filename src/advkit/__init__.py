"""advkit: adversarial robustness evaluation, attacks, training and certification for image classifiers.

The public API is this module's ``__all__`` (guarded by ``tests/api/test_public_api.py``).  Core types
import eagerly; the rest loads on first use so that ``import advkit`` and the CLI start fast.
"""
from __future__ import annotations

import importlib

from .version import __version__

from .errors import (AdvkitError, AdvkitWarning, AttackBug, ConfigError, DataError, EvaluationAborted, InputError,
                     ModelError, StoreError, UnsafeCheckpointError)
from .findings import Finding
from .model import Classifier
from .threat import ThreatModel

_LAZY = {
    # attacks
    "Attack": "advkit.attacks", "AttackResult": "advkit.attacks", "FGSM": "advkit.attacks", "PGD": "advkit.attacks",
    "BestOf": "advkit.attacks", "CarliniWagnerL2": "advkit.attacks", "Square": "advkit.attacks",
    "APGD": "advkit.attacks", "FAB": "advkit.attacks", "Ensemble": "advkit.attacks",
    "autoattack_standard": "advkit.attacks", "autoattack_rand": "advkit.attacks", "BPDA": "advkit.attacks",
    "with_eot": "advkit.attacks", "build_attack": ("advkit.attacks.registry", "build"),
    "check_attack": "advkit.testing",
    # data and models
    "load_data": "advkit.sources", "load_model": "advkit.sources", "Dataset": "advkit.sources",
    # defenses, smoothing, training
    "defend": "advkit.defenses", "bpda": "advkit.defenses",
    "SmoothedClassifier": "advkit.smoothing", "Certificate": "advkit.smoothing", "ABSTAIN": "advkit.smoothing",
    "fit": "advkit.training", "TrainConfig": "advkit.training",
    # evaluation, results, gates
    "evaluate": "advkit.evaluation", "EvaluationSpec": "advkit.evaluation", "load_spec": "advkit.evaluation",
    "Store": "advkit.results", "load_run_dir": "advkit.results",
    "check_gates": "advkit.gates", "parse_gate": "advkit.gates",
}

__all__ = [
    "__version__", "AdvkitError", "AdvkitWarning", "AttackBug", "ConfigError", "DataError", "EvaluationAborted",
    "InputError", "ModelError", "StoreError", "UnsafeCheckpointError", "Finding", "Classifier", "ThreatModel",
    *_LAZY,
]


def __getattr__(name: str):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'advkit' has no attribute {name!r}")
    module, attr = target if isinstance(target, tuple) else (target, name)
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
