"""Reading an evaluation spec: a TOML file, a parsed dict or CLI options validated into an
:class:`~advkit.evaluation.spec.EvaluationSpec` (the layout of a spec file is in :mod:`advkit.evaluation.spec`).

Every validation error names the key path that is wrong and says what was expected and what was got
(``stages.pgd.steps: expected an integer >= 1, got "x"``); unknown keys are errors.  Typed reading of one
table is :mod:`advkit.evaluation.spec_reader`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import ConfigError
from ..profiles.profile import NONE as NO_PROFILE
from ..profiles.profile import Profile, default_profile, load_profile
from ..seeds import MAX_SEED
from ..threat import ThreatModel
from .spec import (AA_VERSIONS, CURVE_METHODS, DEFAULT_DATA, DEFAULT_MODEL, DEFAULT_THREAT, AutoAttackStage, CertifySpec,
                   ChecksStage, CurveStage, DefenseSection, EvaluationSpec, FGSMStage, GatesSpec, MlflowSection,
                   PerClassStage, PGDStage, StagesSpec, _spec_data)
from .spec_reader import _drop_none, _Table, model_table, parse_max_drop

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


def _threats(t: _Table, profile: Profile | None) -> tuple[ThreatModel, ...]:
    default = tuple(map(str, profile.default_threats())) if profile else (DEFAULT_THREAT,)
    raw = t.strs("threats", default, allow_empty=False)
    out = []
    for i, text in enumerate(raw):
        try:
            out.append(profile.resolve_threat(text) if profile else ThreatModel.parse(text))
        except ConfigError as e:
            raise ConfigError(f"threats[{i}]: {e} (in {text!r})") from None
    return tuple(out)


def _stages(t: _Table) -> StagesSpec:
    f, p, a = t.sub("fgsm"), t.sub("pgd"), t.sub("autoattack")
    c, pc, ch = t.sub("curve"), t.sub("per_class"), t.sub("checks")
    d = ChecksStage()
    stages = StagesSpec(
        fgsm=FGSMStage(enabled=f.bool("enabled", True)),
        pgd=PGDStage(enabled=p.bool("enabled", True), steps=p.int("steps", 20, 1), restarts=p.int("restarts", 5, 1),
                     step_size=p.float("step_size", None), eot=p.int("eot", 1, 1)),
        autoattack=AutoAttackStage(version=a.str("version", "auto", AA_VERSIONS), eot=a.int("eot", 20, 1),
                                   steps=a.int("steps", 100, 1), square_queries=a.int("square_queries", 5000, 0),
                                   n_targets=a.opt_int("n_targets", None, 1),
                                   skip_if_fgsm_breaks_all=a.bool("skip_if_fgsm_breaks_all", False),
                                   survivors_only=a.bool("survivors_only", False)),
        curve=CurveStage(enabled=c.bool("enabled", True), eps=c.floats("eps", None),
                         points=c.opt_int("points", None, 1),
                         attacks=c.strs("attacks", ("apgd-ce",), allow_empty=False), steps=c.int("steps", 20, 1),
                         method=c.str("method", "fmn", CURVE_METHODS), fmn_steps=c.int("fmn_steps", 10, 1),
                         probe_restarts=c.int("probe_restarts", 2, 1)),
        per_class=PerClassStage(min_accuracy=pc.float("min_accuracy", None, 0.0, 1.0)),
        checks=ChecksStage(**{fl.name: _check_value(ch, fl.name, getattr(d, fl.name))
                              for fl in dataclasses.fields(ChecksStage)}),
    )
    for sub in (f, p, a, c, pc, ch):
        sub.finish()
    t.finish()
    _check_curve_attacks(c, stages.curve.attacks)
    return stages


def _check_curve_attacks(t: _Table, names: tuple[str, ...]) -> None:
    """A misspelt curve attack is a config error here, never silently another attack later."""
    from ..attacks.registry import REGISTRY
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ConfigError(f"{t.key('attacks')}: unknown attack(s) {unknown}; expected names from "
                          f"`advkit list attacks` ({', '.join(REGISTRY)})")


def _check_value(t: _Table, name: str, default):
    if isinstance(default, bool):
        return t.bool(name, default)
    if name == "unbounded_eps":
        return t.float(name, None)
    if isinstance(default, int):
        return t.int(name, default, 0 if name == "blackbox_queries" else 1)
    return t.float(name, default, 0.0, 1.0)


def _gates(t: _Table) -> GatesSpec:
    t.used.add("max_drop")
    max_drop = parse_max_drop(t.data.get("max_drop", 0.02), t.key("max_drop"))
    g = GatesSpec(require=t.strs("require", ()), max_drop=max_drop,
                  clean_floor=t.float("clean_floor", None, 0.0, 1.0),
                  per_class_min=t.float("per_class_min", None, 0.0, 1.0),
                  allow_upper_bound=t.bool("allow_upper_bound", False))
    t.finish()
    return g


def _certify(t: _Table) -> CertifySpec:
    c = CertifySpec(sigma=t.float("sigma", 0.25), n0=t.int("n0", 100, 1), n=t.int("n", 10000, 1),
                    alpha=t.float("alpha", 0.001, 0.0, 1.0), radii=t.floats("radii", CertifySpec.radii),
                    batch_size=t.int("batch_size", 1000, 1))
    if c.sigma <= 0:
        raise ConfigError(f"{t.key('sigma')}: expected a number > 0, got {c.sigma}")
    if not 0 < c.alpha < 1:
        raise ConfigError(f"{t.key('alpha')}: expected a number in (0, 1), got {c.alpha}")
    t.finish()
    return c


def _device(t: _Table) -> str | None:
    text = t.str("device", None)
    if text is not None:
        from ..devices import resolve_device
        try:
            resolve_device(text)
        except ConfigError as e:
            raise ConfigError(f"{t.key('device')}: {e}") from None
    return text


def _defense(t: _Table) -> DefenseSection:
    from ..defenses.chain import SYNTAX, parse_defense
    t.used.add("chain")
    raw = t.data.get("chain")
    if raw is None:
        raise ConfigError(f"{t.key('chain')}: expected a defense chain ({SYNTAX}), got nothing")
    try:
        chain = parse_defense(raw)
    except ConfigError as e:
        raise ConfigError(f"{t.key('chain')}: {e}") from None
    t.finish()
    return DefenseSection(chain=chain.text)


def _mlflow(t: _Table) -> MlflowSection:
    m = MlflowSection(**{k: t.str(k, None) for k in ("tracking_uri", "experiment", "run_id", "run_name")},
                      optional=t.bool("optional", False))
    t.finish()
    return m


def spec_from_dict(data: dict) -> EvaluationSpec:
    """Validate a parsed TOML document (None values mean "default") into an :class:`EvaluationSpec`."""
    data = _drop_none(data)
    t = _Table(data, "")
    model, args = _model(t)
    data_ref = t.str("data", DEFAULT_DATA)
    profile = _profile(t, model, data_ref)
    derived = tuple(k for k in ("profile", "threats") if k not in data)
    spec = EvaluationSpec(
        model=model, model_args=args, weights=t.str("weights", None),
        trust_pickle=t.bool("trust_pickle", False), force_eps=t.bool("force_eps", False), data=data_ref,
        split=t.str("split", "test"),
        n=t.int("n", 1000, 1), seed=t.int("seed", 0, 0, MAX_SEED), batch_size=t.int("batch_size", 250, 1),
        threats=_threats(t, profile), stages=_stages(t.sub("stages")), gates=_gates(t.sub("gates")),
        certify=_certify(t.sub("certify")) if "certify" in data else None,
        defense=_defense(t.sub("defense")) if "defense" in data else None,
        mlflow=_mlflow(t.sub("mlflow")) if "mlflow" in data else None,
        output=t.str("output", None), db=t.str("db", "advkit.db"), device=_device(t),
        mean=t.floats("mean", None), std=t.floats("std", None),
        resize=t.opt_int("resize", None, 1), crop=t.opt_int("crop", None, 1),
        profile=profile.name if profile else None, derived=derived,
    )
    t.used.update(("certify", "defense", "mlflow"))
    t.finish()
    return spec


def _model(t: _Table) -> tuple[str, dict]:
    """The model REF and its factory arguments: ``[model.args]`` or ``model_args`` (not both)."""
    ref, args = model_table(t)
    if "model_args" in t.data:
        if args:
            raise ConfigError("model_args: expected the factory arguments once, got both [model.args] and model_args")
        ref, args = model_table(_Table({"model": {"ref": ref or DEFAULT_MODEL, "args": t.data["model_args"]}}, ""))
        t.used.add("model_args")
    return ref or DEFAULT_MODEL, args


def _profile(t: _Table, model: str, data_ref: str) -> Profile | None:
    """The named profile, ``"none"`` → None, or (not named) the zoo model's or the data REF's default."""
    name = t.str("profile", None)
    if name is None:
        name = default_profile(model, data_ref)
        return load_profile(name) if name else None
    if name.strip().lower() == NO_PROFILE:
        return None
    try:
        return load_profile(name)
    except ConfigError as e:
        raise ConfigError(f"{t.key('profile')}: {e}") from None


def load_spec(path: str | Path) -> EvaluationSpec:
    """Read and validate a TOML spec file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start}); expected a TOML spec file") from None
    except OSError as e:
        raise ConfigError(f"cannot read spec file {str(p)!r}: {e.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    try:
        return spec_from_dict(data)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None


def with_options(spec: EvaluationSpec, **options) -> EvaluationSpec:
    """Apply CLI options (None = keep the spec's value) through the same validation as the file."""
    data = _spec_data(spec)  # not to_dict(): that masks a database URL's password
    for k in ("certify", "defense", "mlflow"):
        if data.get(k) is None:
            data.pop(k, None)
    if any(options.get(k) not in (None, ()) for k in ("model", "data", "profile")):
        _forget_derived(spec, data, options)
    if options.get("model") not in (None, spec.model):
        data.pop("model_args", None)  # another model: the spec's arguments were for its factory
    for k, v in options.items():
        if v is None or v == () or v == {}:
            continue
        if k == "defense":
            data["defense"] = {"chain": v}
        elif k == "no_autoattack" and v:
            data["stages"]["autoattack"]["version"] = "off"
        elif k == "allow_upper_bound" and v:
            data["gates"]["allow_upper_bound"] = True
        elif k == "model_args":
            data["model_args"] = {**data.get("model_args", {}), **v}
        elif k not in ("no_autoattack", "allow_upper_bound"):
            data[k] = list(v) if isinstance(v, tuple) else v
    return spec_from_dict(data)


def _forget_derived(spec: EvaluationSpec, data: dict, options: dict) -> None:
    """Drop the values the profile supplied so that a new model, data set or profile supplies them again."""
    if "profile" in spec.derived and options.get("profile") is None:
        data.pop("profile", None)
    old = spec.profile_obj()
    default = old.default_threats() if old else (ThreatModel.parse(DEFAULT_THREAT),)
    if "threats" in spec.derived and spec.threats == default:
        data.pop("threats", None)


def with_model_defaults(spec: EvaluationSpec, given: set[str] | frozenset[str]) -> tuple[EvaluationSpec, str | None]:
    """A zoo model carries its data set: use the data the zoo entry was trained on unless ``data`` is in
    ``given`` (the keys the user set in the spec file or on the command line).  Its threat model follows
    from its profile (:func:`advkit.profiles.profile.profile_for_model`), which :func:`with_options`
    derives again for the new data.

    Returns the spec and a one-line note saying what was filled in (None when nothing was)."""
    kind, _, name = spec.model.partition(":")
    if kind != "zoo" or "data" in given:
        return spec, None
    from .. import zoo
    e = zoo.entry(name)
    if e is None or not e.data or e.data == spec.data:
        return spec, None
    new = with_options(spec, data=e.data)
    threats = ", ".join(map(str, new.threats))
    return new, f"{spec.model} was trained on {e.data}: evaluating on it at {threats} (--data/--threat override)"


def spec_file_keys(path: str | Path) -> set[str]:
    """The top-level keys a spec file sets (e.g. whether it names its data)."""
    try:
        return set(tomllib.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return set()
