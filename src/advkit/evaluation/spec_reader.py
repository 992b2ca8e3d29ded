"""Typed reading of TOML tables for specs: every error names its key path; unknown keys are errors."""
from __future__ import annotations

import json

from ..errors import ConfigError

class _Table:
    """Reads typed values out of one TOML table, naming the key path in every error."""

    def __init__(self, data, path: str):
        if not isinstance(data, dict):
            raise ConfigError(f"{path or 'spec'}: expected a table, got {_show(data)}")
        self.data, self.path, self.used = data, path, set()

    def key(self, k: str) -> str:
        return f"{self.path}.{k}" if self.path else k

    def get(self, k, default, check, expected: str):
        self.used.add(k)
        if k not in self.data:
            return default
        v = self.data[k]
        ok, value = check(v)
        if not ok:
            raise ConfigError(f"{self.key(k)}: expected {expected}, got {_show(v)}")
        return value

    def int(self, k, default, lo=0, hi=None):
        exp = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {'2^63 - 1' if hi == 2**63 - 1 else hi}]"
        return self.get(k, default, lambda v: (_is_int(v) and v >= lo and (hi is None or v <= hi), v), exp)

    def opt_int(self, k, default, lo=0):
        return self.get(k, default, lambda v: (_is_int(v) and v >= lo, v), f"an integer >= {lo}")

    def float(self, k, default, lo=0.0, hi=None):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        return self.get(k, default, lambda v: (_is_num(v) and v >= lo and (hi is None or v <= hi), float(v)
                                               if _is_num(v) else v), f"a number {rng}")

    def bool(self, k, default):
        return self.get(k, default, lambda v: (isinstance(v, bool), v), "true or false")

    def str(self, k, default, choices=None):
        exp = f"one of {', '.join(repr(c) for c in choices)}" if choices else "a string"
        return self.get(k, default, lambda v: (isinstance(v, str) and (not choices or v in choices), v), exp)

    def floats(self, k, default, lo=0.0):
        def check(v):
            ok = isinstance(v, list) and len(v) > 0 and all(_is_num(e) and e >= lo for e in v)
            return ok, tuple(float(e) for e in v) if ok else v
        return self.get(k, default, check, f"a non-empty list of numbers >= {lo}")

    def strs(self, k, default, allow_empty=True):
        def check(v):
            if isinstance(v, str):
                v = [v]
            ok = isinstance(v, list) and all(isinstance(e, str) for e in v) and (allow_empty or v)
            return ok, tuple(v) if ok else v
        return self.get(k, default, check, "a list of strings" if allow_empty else "a non-empty list of strings")

    def sub(self, k) -> "_Table":
        self.used.add(k)
        return _Table(self.data.get(k, {}), self.key(k))

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(f"{self.key(unknown[0])}: unknown key (expected one of {', '.join(sorted(self.used))})")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _show(v) -> str:
    return json.dumps(v) if isinstance(v, (str, int, float, bool, list)) else type(v).__name__


def parse_max_drop(value, path: str = "gates.max_drop") -> float | None:
    """``0.02``, ``"2pp"``, ``"2%"`` → 0.02; ``"off"``/``false`` → None."""
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() in ("off", "none")):
        return None
    if _is_num(value) and 0 <= value <= 1:
        return float(value)
    if isinstance(value, str):
        t = value.strip().lower()
        for suffix in ("pp", "%"):
            if t.endswith(suffix):
                try:
                    v = float(t[: -len(suffix)]) / 100
                except ValueError:
                    break
                if 0 <= v <= 1:
                    return v
    raise ConfigError(f"{path}: expected a fraction in [0, 1] or text like '2pp', got {_show(value)}")


def toml_value(text: str):
    """The TOML literal ``text`` as Python (``10``, ``0.5``, ``true``, ``"x"``, ``[1, 2]``, ``{a = 1}``); a
    ConfigError that says strings need quotes when it is not one."""
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        return tomllib.loads(f"v = {text.strip()}\n")["v"]
    except tomllib.TOMLDecodeError:
        raise ConfigError(f"expected a TOML value (10, 0.5, true, \"text\" in quotes, [1, 2]), got "
                          f"{text.strip()!r}") from None


def model_table(t: "_Table") -> tuple[str | None, dict]:
    """``model = "REF"`` or a ``[model]`` table (``ref = "REF"``, ``[model.args]``): (REF or None, args)."""
    raw = t.data.get("model")
    if not isinstance(raw, dict):
        return t.str("model", None), {}
    m = t.sub("model")
    ref, args = m.str("ref", None), m.data.get("args", {})
    m.used.add("args")
    if ref is None:
        raise ConfigError(f"{m.key('ref')}: expected the model REF (a string), got nothing")
    if not isinstance(args, dict) or not all(isinstance(k, str) and k.isidentifier() for k in args):
        raise ConfigError(f"{m.key('args')}: expected a table of keyword arguments, got {_show(args)}")
    m.finish()
    return ref, dict(args)


def _drop_none(d):
    if isinstance(d, dict):
        return {k: _drop_none(v) for k, v in d.items() if v is not None}
    return d
