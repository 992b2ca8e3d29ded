"""The advkit version (one place: the package, model files, run records and reports read it here)."""
from __future__ import annotations

__version__ = "0.1.0"
