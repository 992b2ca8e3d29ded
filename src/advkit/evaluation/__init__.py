"""The evaluation pipeline: spec → stages → per-sample records → result, history and gates."""
from __future__ import annotations

from .pipeline import EvaluationResult, evaluate
from ..results.protocol import protocol_status
from .spec import EvaluationSpec
from .spec_load import load_spec, spec_from_dict, with_options

__all__ = ["EvaluationResult", "EvaluationSpec", "evaluate", "load_spec", "protocol_status", "spec_from_dict",
           "with_options"]
