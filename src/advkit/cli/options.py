"""Option parsing shared by CLI commands."""
from __future__ import annotations

import json

from ..errors import ConfigError


def parse_key_values(items, option: str) -> dict:
    """``("steps=10", "loss=ce")`` → ``{"steps": 10, "loss": "ce"}``; values are JSON when they parse as JSON."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out
