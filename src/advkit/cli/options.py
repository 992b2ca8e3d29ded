"""Option parsing shared by CLI commands."""
from __future__ import annotations

import json

import click

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


MODEL_ARG_HELP = ("Keyword argument of a factory model REF, KEY=VALUE with VALUE a TOML literal: 10, 0.5, true, "
                  "[1, 2], '\"text\"' (repeatable; part of the run's identity).")


def parse_model_args(items) -> dict:
    """``("num_classes=10", 'name="x"', "ws=[1,2]")`` → ``{"num_classes": 10, "name": "x", "ws": [1, 2]}``:
    each VALUE is read as a TOML value; a ConfigError (exit 2) names the bad item."""
    from ..evaluation.spec_reader import toml_value
    out: dict = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"--model-arg: expected KEY=VALUE with KEY a Python identifier, got {item!r}")
        if key in out:
            raise ConfigError(f"--model-arg: expected each KEY once, got {key!r} twice")
        try:
            out[key] = toml_value(value)
        except ConfigError as e:
            raise ConfigError(f"--model-arg {key}: {e}") from None
    return out


def model_arg_option(fn):
    """``--model-arg KEY=VALUE`` (repeatable), shared by every command that loads a ``--model``."""
    return click.option("--model-arg", "model_args", multiple=True, metavar="KEY=VALUE", help=MODEL_ARG_HELP)(fn)


class SeedType(click.ParamType):
    """``--seed``: an integer in [0, 2^63 − 1] (:data:`advkit.seeds.MAX_SEED`), with a one-line error."""

    name = "integer"

    def convert(self, value, param, ctx):
        from ..seeds import MAX_SEED
        if isinstance(value, int) and not isinstance(value, bool):
            seed = value
        else:
            try:
                seed = int(str(value).strip())
            except ValueError:
                seed = None
        if seed is None or not 0 <= seed <= MAX_SEED:
            self.fail(f"expected an integer in [0, 2^63 - 1], got {value!r}", param, ctx)
        return seed


SEED = SeedType()


def check_device(text: str | None, option: str = "--device"):
    """``text`` as a ``torch.device`` that exists on this machine (None stays None), else a ConfigError."""
    if text is None or text == "auto":
        return None
    import torch
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{option}: expected cpu, cuda or cuda:N, got {text!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{option} {text}: CUDA is not available on this machine; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"{option} {text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu" and dev.type != "mps":
        raise ConfigError(f"{option}: expected cpu, cuda or cuda:N, got {text!r}")
    return dev


DEVICE_HELP = ("cpu, cuda, cuda:1, mps or auto (default auto: the rank's GPU under torchrun, else CUDA when "
               "available, else CPU).")


def model_placement(fn):
    """``--device``, ``--mean`` and ``--std`` (the model's input normalisation, one value per channel)."""
    import click
    fn = click.option("--std", default=None, help="Per-channel std the model expects, e.g. 0.2471,0.2435,0.2616.")(fn)
    fn = click.option("--mean", default=None, help="Per-channel mean the model expects, e.g. 0.4914,0.4822,0.4465.")(fn)
    return click.option("--device", default=None, help=DEVICE_HELP)(fn)


def place_model(clf, device, mean, std, data=None):
    """Apply ``--mean/--std`` and move ``clf`` to ``--device`` (validated; exit 2 when unavailable)."""
    from ..devices import place
    channels = int(data.x.shape[1]) if data is not None else None
    return place(clf, device=device, mean=mean, std=std, channels=channels)


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
