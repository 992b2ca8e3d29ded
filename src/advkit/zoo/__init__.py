"""The model zoo: small architectures and checkpoints trained by advkit itself.

``DEFAULT_MODEL`` on ``DEFAULT_DATA`` under ``DEFAULT_THREAT`` is what ``advkit evaluate`` runs with no
arguments.  See :mod:`advkit.zoo.registry` for the catalogue and :mod:`advkit.zoo.checkpoint` for the
file format.
"""
from __future__ import annotations

from .registry import CATALOGUE, CHECKPOINT_DIR, ZooEntry, entry, list_zoo, load

DEFAULT_MODEL = "mnist5k-standard"
DEFAULT_DATA = "mnist5k"
DEFAULT_THREAT = "linf:0.3"

__all__ = ["CATALOGUE", "CHECKPOINT_DIR", "DEFAULT_DATA", "DEFAULT_MODEL", "DEFAULT_THREAT", "ZooEntry", "entry",
           "list_zoo", "load"]
