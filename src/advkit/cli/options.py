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


DEFENSE_HELP = ("Put a preprocessing defense in front of the model: jpeg:75, bits:3, median:3, noise:0.1, "
                "resize-pad:0.9, or a comma-separated chain such as bits:3,median:3.")


def defense_option(f):
    """``--defense CHAIN`` (shared by evaluate, attack, inspect and certify)."""
    import click
    return click.option("--defense", "defense", default=None, metavar="CHAIN", help=DEFENSE_HELP)(f)


def with_defense(clf, chain_text: str | None, seed: int, *, adaptive: bool = False):
    """(model, chain or None): ``clf`` behind the defense (the adaptive attacker's view when ``adaptive``);
    randomized steps are seeded from ``seed`` exactly as ``advkit evaluate`` seeds them."""
    if chain_text is None:
        return clf, None
    from ..defenses.chain import defended_models
    from ..evaluation.context import derive_seed
    try:
        naive, adapt, chain = defended_models(clf, chain_text, seed=derive_seed(seed, "defense"))
    except ConfigError as e:
        raise ConfigError(f"--defense: {e}") from None
    return (adapt if adaptive else naive), chain


def parse_defense_text(chain_text: str) -> str:
    """The canonical text of a ``--defense`` chain (a ConfigError naming the option when invalid)."""
    from ..defenses.chain import parse_defense
    try:
        return parse_defense(chain_text).text
    except ConfigError as e:
        raise ConfigError(f"--defense: {e}") from None
