"""Where models and data come from: the ``--model`` and ``--data`` REF syntax.

Nothing is downloaded implicitly; pickled checkpoints are loaded only with ``weights_only=True``
unless trust is granted explicitly.
"""
from __future__ import annotations

from .data import Dataset, list_data, load_data
from .models import load_model, model_hash

__all__ = ["Dataset", "list_data", "load_data", "load_model", "model_hash"]
