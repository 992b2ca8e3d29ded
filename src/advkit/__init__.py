"""advkit: adversarial robustness evaluation, attacks, training and certification for image classifiers."""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import AdvkitError, ConfigError, DataError, EvaluationAborted, InputError, ModelError, StoreError
from .model import Classifier
from .threat import ThreatModel
