"""Evaluation results: per-sample records, run directories (result.json + samples.npz), history DB."""
from __future__ import annotations

from .io import SCHEMA_VERSION, load_run_dir, write_run_dir
from .store import Store

__all__ = ["SCHEMA_VERSION", "Store", "load_run_dir", "write_run_dir"]
