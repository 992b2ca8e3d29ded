"""A run as a RobustBench model card: the ``model_info/<dataset>/<Linf|L2>/<model>.json`` entry of the
RobustBench leaderboards (Croce et al. 2021, "RobustBench: a standardized adversarial robustness
benchmark", NeurIPS Datasets and Benchmarks).

The format (``robustbench.schema.json`` beside this file): accuracies are strings in percent, ε is a
string (``"8/255"``, ``"0.5"``), unknown values are null.  Only a number measured with the reference
AutoAttack protocol (:func:`advkit.results.protocol.protocol_status`) fills ``autoattack_acc``;
the run's worst case over every attack goes to ``external`` when it is lower (other attacks broke more)
or when AutoAttack did not run at the reference budgets.  ``unreliable`` is true when the headline is
an upper bound (AutoAttack skipped or reduced) or untrusted (:mod:`advkit.evaluation.trust`); the
footnote says why.
"""
from __future__ import annotations

import json
import re
from importlib import resources

from ..errors import ConfigError
from ..threat import ThreatModel
from . import threats as threat_sections

#: RobustBench's threat-model folder names (``robustbench.model_zoo.enums.ThreatModel``)
FOLDERS = {"linf": "Linf", "l2": "L2"}
#: RobustBench's data sets (``BenchmarkDataset``); a profile of one of these names the data set
DATASETS = ("cifar10", "cifar100", "imagenet")
#: card fields a user may fill (``advkit report RUN --format robustbench --card KEY=VALUE``)
USER_FIELDS = ("link", "name", "authors", "additional_data", "number_forward_passes", "venue", "architecture",
               "reported", "footnote")


def schema() -> dict:
    """The JSON Schema of a RobustBench model card."""
    return json.loads(resources.files("advkit.report").joinpath("robustbench.schema.json").read_text())


def pct(value: float | None) -> str | None:
    """An accuracy in [0, 1] as RobustBench writes it: percent with two decimals (``0.5953`` → ``"59.53"``)."""
    return None if value is None else f"{100 * float(value):.2f}"


def pick_threat(result: dict, threat: str | None) -> tuple[str, dict]:
    """(threat key, section): ``threat`` (canonical text) or the run's first L∞/L2 threat."""
    sections = threat_sections(result)
    if threat is not None:
        key = str(ThreatModel.parse(threat))
        if key not in sections:
            raise ConfigError(f"--threat: expected one of the run's threats ({', '.join(sections)}), got {threat!r}")
    else:
        key = next((k for k in sections if ThreatModel.parse(k).norm in FOLDERS), None)
        if key is None:
            raise ConfigError(f"RobustBench has L∞ and L2 leaderboards; expected a run with such a threat, got "
                              f"{', '.join(sections) or 'no threats'}")
    if ThreatModel.parse(key).norm not in FOLDERS:
        raise ConfigError(f"RobustBench has L∞ and L2 leaderboards; expected an linf or l2 threat, got {key!r}")
    return key, sections[key]


def _dataset(result: dict) -> str:
    profile = str(result.get("profile") or "")
    if profile in DATASETS:
        return profile
    ref = str(result.get("data") or "data").split(":")[-1].split("/")[-1]
    ref = re.sub(r"\.(npz|npy|csv)$", "", ref.lower())
    return re.sub(r"[^a-z0-9_-]+", "-", ref).strip("-") or "data"


def _numbers(section: dict) -> tuple[str | None, str | None, bool, list[str]]:
    """(autoattack_acc, external, unreliable, why) of one threat section."""
    from ..results.protocol import protocol_status
    reference, reasons = protocol_status(section)
    worst = section.get("robust_accuracy")
    aa = (section.get("attacks") or {}).get("autoattack") or {}
    why = [] if reference else [f"not the reference AutoAttack protocol ({'; '.join(reasons)}): an upper bound"]
    if section.get("trusted", True) is False:  # the contract of evaluation/trust.py: missing means trusted
        why.append("untrusted (the model looks masked): " + "; ".join(section.get("untrusted_reasons") or []))
    if section.get("upper_bound") and reference:
        why.append("an upper bound")
    if not reference:
        return None, pct(worst), True, why
    aa_acc = aa.get("robust_accuracy", worst)
    external = pct(worst) if worst is not None and aa_acc is not None and worst < aa_acc else None
    return pct(aa_acc), external, bool(why), why


def model_card(result: dict, threat: str | None = None, fields: dict | None = None) -> dict:
    """The RobustBench model card of ``result`` at ``threat`` (default: its first L∞/L2 threat); ``fields``
    fill what advkit cannot know (link, authors, venue, ...).  Validated against :func:`schema`."""
    key, section = pick_threat(result, threat)
    autoattack, external, unreliable, why = _numbers(section)
    n, seed = result.get("n"), result.get("seed")
    notes = [f"advkit {result.get('advkit_version') or '?'} evaluation of {n} test images (seed {seed})"]
    defense = (result.get("defense") or {}).get("chain")
    if defense:
        notes.append(f"behind the preprocessing defense {defense} (adaptive attacks)")
    card = {"link": None, "name": result.get("model"), "authors": None, "additional_data": None,
            "number_forward_passes": None if result.get("randomized_model") else 1,
            "dataset": _dataset(result), "venue": None, "architecture": None,
            "eps": key.partition(":")[2], "clean_acc": pct((result.get("clean") or {}).get("accuracy")),
            "reported": None, "autoattack_acc": autoattack}
    if external is not None:
        card["external"] = external
    card["footnote"] = "; ".join(notes + why)
    card["unreliable"] = unreliable
    card["threat_model"] = FOLDERS[ThreatModel.parse(key).norm]
    card.update(_user_fields(fields or {}))
    validate(card)
    return card


def _user_fields(fields: dict) -> dict:
    unknown = sorted(set(fields) - set(USER_FIELDS))
    if unknown:
        raise ConfigError(f"--card: expected keys among {', '.join(USER_FIELDS)}, got {unknown[0]!r}")
    out = dict(fields)
    if isinstance(out.get("reported"), (int, float)) and not isinstance(out.get("reported"), bool):
        out["reported"] = f"{float(out['reported']):g}"  # RobustBench writes the paper's number as text
    return out


# ------------------------------------------------------------------ a small JSON Schema check
_TYPES = {"string": str, "boolean": bool, "object": dict, "null": type(None)}


def _is(value, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def errors(card, spec: dict | None = None) -> list[str]:
    """Every way ``card`` breaks the schema (the keywords the card schema uses: type, required,
    additionalProperties, properties, pattern, enum, minimum); empty when it conforms."""
    spec = schema() if spec is None else spec
    if not isinstance(card, dict):
        return [f"expected an object, got {type(card).__name__}"]
    out = [f"{k}: required, missing" for k in spec.get("required", []) if k not in card]
    props = spec.get("properties", {})
    if spec.get("additionalProperties") is False:
        out += [f"{k}: not a field of the format" for k in card if k not in props]
    for k, rule in props.items():
        if k in card:
            out += [f"{k}: {e}" for e in _value_errors(card[k], rule)]
    return out


def _value_errors(value, rule: dict) -> list[str]:
    types = rule.get("type", [])
    types = [types] if isinstance(types, str) else types
    if types and not any(_is(value, t) for t in types):
        return [f"expected {' or '.join(types)}, got {json.dumps(value)}"]
    if value is None:
        return []
    out = []
    if "pattern" in rule and isinstance(value, str) and not re.search(rule["pattern"], value):
        out.append(f"expected text matching {rule['pattern']}, got {json.dumps(value)}")
    if "enum" in rule and value not in rule["enum"]:
        out.append(f"expected one of {rule['enum']}, got {json.dumps(value)}")
    if "minimum" in rule and _is(value, "number") and value < rule["minimum"]:
        out.append(f"expected >= {rule['minimum']}, got {value}")
    return out


def validate(card: dict) -> None:
    """A ConfigError naming the first field that breaks the schema (e.g. a wrong ``--card`` value)."""
    problems = errors(card)
    if problems:
        raise ConfigError(f"RobustBench model card: {problems[0]}")


__all__ = ["model_card", "schema", "validate", "errors", "pct", "FOLDERS", "USER_FIELDS"]
