"""Domain profiles as data: the standard ε, curve grid, grade thresholds and clean-accuracy floor of a
data domain (MNIST, CIFAR-10, ...), read from the ``*.toml`` files shipped next to this module.

A profile file holds ``name``, ``description``, ``data`` (the data REFs it is the default profile of),
``clean_floor`` (+ its source) and one ``[[threats]]`` table per norm: ``threat`` (the standard budget),
``curve`` (the ε grid of the robustness curve), ``grades`` (ascending ``{name, min}``: robust accuracy under
the reference AutoAttack at which a grade begins), where the thresholds come from, and the published
reference points it cites.  ``docs/profiles.md`` documents every profile.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..threat import ThreatModel, parse_eps

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

PROFILE_DIR = Path(__file__).resolve().parent
NONE = "none"  # the profile name that turns profiles off


@dataclass(frozen=True)
class GradeLevel:
    """A grade that begins at robust accuracy ``min`` (inclusive)."""

    name: str
    min: float


@dataclass(frozen=True)
class Reference:
    """A published reference point: a model's clean and robust accuracy, with year and source."""

    model: str
    year: int
    source: str
    clean: float | None = None
    autoattack: float | None = None
    robust: float | None = None  # a non-AutoAttack robust accuracy (named in ``model``)


@dataclass(frozen=True)
class ThreatProfile:
    """The standard threat of one norm in a domain, its curve grid and its grades (ascending)."""

    threat: ThreatModel
    curve: tuple[float, ...]
    grades: tuple[GradeLevel, ...]
    convention: str  # "protocol" (the evaluation protocol's published grades), "advkit" or "none"
    source: str
    references: tuple[Reference, ...] = ()

    @property
    def bottom(self) -> str:
        """The grade below the lowest threshold, e.g. ``below-competitive``."""
        return f"below-{self.grades[0].name}" if self.grades else ""

    def ladder(self) -> list[str]:
        """Grade names from the lowest (``below-…``) to the highest."""
        return [self.bottom] + [g.name for g in self.grades] if self.grades else []


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    data: tuple[str, ...]
    clean_floor: float | None
    clean_floor_source: str
    clean_floor_convention: str
    threats: tuple[ThreatProfile, ...]

    def for_norm(self, norm: str) -> ThreatProfile | None:
        return next((t for t in self.threats if t.threat.norm == norm), None)

    def for_threat(self, threat: ThreatModel | str) -> ThreatProfile | None:
        """The profile's entry for exactly this threat (same norm and ε), else None."""
        t = ThreatModel.parse(threat)
        tp = self.for_norm(t.norm)
        return tp if tp is not None and math.isclose(tp.threat.eps, t.eps, rel_tol=1e-9, abs_tol=1e-12) else None

    def default_threats(self) -> tuple[ThreatModel, ...]:
        """The threats an evaluation runs when none are given: the first (primary) threat."""
        return (self.threats[0].threat,)

    def resolve_threat(self, text: str) -> ThreatModel:
        """``"linf"`` → the profile's L∞ threat; anything else parses as a threat model."""
        t = str(text).strip()
        if ":" in t:
            return ThreatModel.parse(t)
        norm = ThreatModel(t, 0.0).norm
        tp = self.for_norm(norm)
        if tp is None:
            have = ", ".join(str(x.threat) for x in self.threats)
            raise ConfigError(f"profile {self.name!r} has no standard {norm} budget (it has {have}); "
                              f"give one, e.g. {norm}:0.5")
        return tp.threat


# ------------------------------------------------------------------------ reading the files
def _fail(path: Path, key: str, expected: str, got) -> ConfigError:
    return ConfigError(f"profile file {path.name}: {key}: expected {expected}, got {got!r}")


def _fraction(path: Path, key: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
        raise _fail(path, key, "a fraction in [0, 1]", v)
    return float(v)


def _grades(path: Path, key: str, raw) -> tuple[GradeLevel, ...]:
    if not isinstance(raw, list):
        raise _fail(path, key, "a list of {name, min} tables", raw)
    out = []
    for i, g in enumerate(raw):
        if not isinstance(g, dict) or not isinstance(g.get("name"), str) or not g["name"]:
            raise _fail(path, f"{key}[{i}]", "a table with a name and a min", g)
        out.append(GradeLevel(g["name"], _fraction(path, f"{key}[{i}].min", g.get("min"))))
    if any(b.min <= a.min for a, b in zip(out, out[1:])):
        raise _fail(path, key, "thresholds in strictly ascending order", [g.min for g in out])
    return tuple(out)


def _references(path: Path, key: str, raw) -> tuple[Reference, ...]:
    out = []
    for i, r in enumerate(raw or []):
        try:
            out.append(Reference(model=str(r["model"]), year=int(r["year"]), source=str(r["source"]),
                                 clean=r.get("clean"), autoattack=r.get("autoattack"), robust=r.get("robust")))
        except (KeyError, TypeError, ValueError):
            raise _fail(path, f"{key}[{i}]", "a table with model, year, source", r) from None
    return tuple(out)


def _threat(path: Path, i: int, raw: dict) -> ThreatProfile:
    key = f"threats[{i}]"
    try:
        threat = ThreatModel.parse(raw["threat"])
        curve = tuple(sorted(parse_eps(str(e)) for e in raw["curve"]))
    except (KeyError, TypeError, ConfigError) as e:
        raise _fail(path, key, "threat = 'norm:eps' and curve = [eps, ...]", str(e)) from None
    return ThreatProfile(threat, curve, _grades(path, f"{key}.grades", raw.get("grades", [])),
                         str(raw.get("thresholds_convention", "none")), str(raw.get("thresholds_source", "")),
                         _references(path, f"{key}.references", raw.get("references")))


def read_profile(path: Path) -> Profile:
    """Parse and validate one profile file."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"profile file {path}: cannot read it ({e})") from None
    threats = tuple(_threat(path, i, t) for i, t in enumerate(raw.get("threats") or []))
    if not threats:
        raise _fail(path, "threats", "at least one [[threats]] table", None)
    floor = raw.get("clean_floor")
    return Profile(name=str(raw.get("name") or path.stem), description=str(raw.get("description", "")),
                   data=tuple(map(str, raw.get("data") or ())),
                   clean_floor=None if floor is None else _fraction(path, "clean_floor", floor),
                   clean_floor_source=str(raw.get("clean_floor_source", "")),
                   clean_floor_convention=str(raw.get("clean_floor_convention", "advkit")), threats=threats)


@functools.lru_cache(maxsize=None)
def _all() -> dict[str, Profile]:
    return {p.name: p for p in (read_profile(f) for f in sorted(PROFILE_DIR.glob("*.toml")))}


def profile_names() -> list[str]:
    return sorted(_all())


def list_profiles() -> list[Profile]:
    return [_all()[n] for n in profile_names()]


def load_profile(name: str) -> Profile:
    """The profile called ``name``; an unknown name is a :class:`ConfigError` that lists the known ones."""
    profiles = _all()
    key = str(name).strip().lower()
    if key not in profiles:
        raise ConfigError(f"unknown profile {name!r}; expected one of: {', '.join(profile_names())} "
                          f"(or {NONE!r} for no profile)")
    return profiles[key]


# ------------------------------------------------------------------------ default profiles of REFs
def profile_for_data(ref: str | None) -> str | None:
    """The profile whose ``data`` list names this data REF (``fashion-mnist:/root`` matches ``fashion-mnist``)."""
    r = str(ref or "").strip().lower()
    for p in list_profiles():
        if any(r == d.lower() or r.startswith(d.lower() + ":") for d in p.data):
            return p.name
    return None


def _zoo_meta(name: str) -> dict:
    from ..zoo.registry import CATALOGUE, checkpoint_path

    path = checkpoint_path(name)
    meta: dict = {}
    if path.is_file():
        try:
            from ..zoo.checkpoint import read_metadata
            meta = dict(read_metadata(path))
        except Exception:  # noqa: BLE001 - an unreadable file gets its error when the model loads
            meta = {}
    planned = CATALOGUE.get(name)
    if planned is not None and not meta.get("data"):
        meta["data"] = planned.data
    return meta


def profile_for_model(ref: str | None) -> str | None:
    """A zoo model's profile: the ``profile`` its file records, else the profile of the data it was trained on."""
    r = str(ref or "")
    if not r.startswith("zoo:"):
        return None
    meta = _zoo_meta(r[4:])
    if meta.get("profile") in _all():
        return str(meta["profile"])
    return profile_for_data(meta.get("data") or (meta.get("recipe") or {}).get("data"))


def default_profile(model_ref: str | None, data_ref: str | None) -> str | None:
    """The profile an evaluation uses when none is named: the zoo model's, else the data REF's, else none."""
    return profile_for_model(model_ref) or profile_for_data(data_ref)
