"""The range of a seed: everything advkit seeds is a ``torch.Generator`` (64-bit) and the history DB
stores seeds as SQLite INTEGER (signed 64-bit), so a seed is an integer in [0, 2^63 − 1]."""
from __future__ import annotations

MAX_SEED = 2**63 - 1
