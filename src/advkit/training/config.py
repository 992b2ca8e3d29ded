"""Training configuration: one frozen, validated :class:`TrainConfig`, read from TOML and CLI overrides.

A recipe file (``recipes/*.toml``) holds the fields below at top level or under a ``[train]`` table;
``TrainConfig.from_toml(path, **overrides)`` applies command-line values (``None`` = not given) on top.
The dict form (:meth:`TrainConfig.to_dict`) is what a trained model file records as its recipe.

Defaults come in two layers: the class defaults below (a recipe measured to learn on every built-in
architecture and data set, see :mod:`.defaults`), then the per-task defaults of
:func:`advkit.training.defaults.task_defaults` (the data set's ε, the input padding an architecture
needs, ramps scaled to the run's length), which ``from_toml`` and :meth:`TrainConfig.for_task` apply
under the recipe file and the command-line values.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..seeds import MAX_SEED

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

METHODS = ("standard", "pgd-at", "trades", "fast-at", "mart", "gaussian")
SCHEDULES = ("constant", "piecewise", "cyclic", "cosine")
OPTIMIZERS = ("sgd", "adam")
KEEP = ("best", "last")
RECIPE_META = ("name", "description")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run's result (the recipe).

    Model: ``arch`` (``advkit.zoo.architectures`` name) and ``arch_kwargs``.  Data: ``data`` REF (its
    train split), ``train_subset`` (use a fixed random subset of that many images, 0 = all),
    ``val_size`` images held out of the train split for per-epoch validation, ``augment_shift``
    (random translations by up to that many pixels).  Objective: ``method`` and its fields (``eps``,
    ``norm``, ``steps``, ``step_size``, ``beta``, ``sigma``, ``attack_mode``), ``warmup_epochs`` (ε ramps
    linearly from 0 over that many epochs; must be shorter than the run).  Optimisation: ``optimizer``
    (sgd with ``momentum``, ``nesterov``; or adam), ``lr``, ``weight_decay``, ``schedule`` (constant |
    piecewise, decaying ×0.1 at each fraction in ``milestones`` | cyclic: linear 0 → lr at
    ``cycle_peak`` → 0 (Wong et al. 2020) | cosine), ``lr_warmup_epochs`` (linear learning-rate
    warm-up), ``epochs``, ``batch_size`` (global; DDP ranks split it).  Validation: ``val_steps`` PGD
    steps at the training ε (noisy accuracy at σ for ``gaussian``); ``keep`` = best (by robust
    validation accuracy, Rice et al. 2020) or last.  Stall check: ``chance_patience`` epochs (0 = off)
    after which a run whose accuracy never left chance level stops with
    :class:`~advkit.errors.TrainingStalled` (see :mod:`.stall`).  Input normalisation: ``mean``/``std``
    (per channel, or one value) are part of the model (its Classifier subtracts and divides before the
    network, and the model file records them), so ε stays in pixel units.
    """

    arch: str = "smallcnn"
    arch_kwargs: dict = field(default_factory=dict)
    data: str = "mnist5k"
    method: str = "standard"
    eps: float = 0.3
    norm: str = "linf"
    steps: int = 3
    step_size: float | None = None
    beta: float = 6.0
    sigma: float = 0.25
    attack_mode: str = "eval"
    warmup_epochs: float = 0.0
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "cosine"
    milestones: tuple = (0.5, 0.75)
    cycle_peak: float = 0.4
    lr_warmup_epochs: float = 0.0
    seed: int = 0
    train_subset: int = 0
    val_size: int = 500
    val_steps: int = 5
    augment_shift: int = 0
    keep: str = "best"
    chance_patience: int = 2
    mean: tuple | None = None
    std: tuple | None = None

    def __post_init__(self):
        object.__setattr__(self, "milestones", tuple(float(m) for m in self.milestones))
        object.__setattr__(self, "arch_kwargs", dict(self.arch_kwargs))
        from ..devices import parse_mean_std
        mean, std = parse_mean_std(self.mean, self.std)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        self._check_choice("method", METHODS)
        self._check_choice("schedule", SCHEDULES)
        self._check_choice("optimizer", OPTIMIZERS)
        self._check_choice("keep", KEEP)
        for name in ("epochs", "batch_size", "steps", "val_steps"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("train_subset", "val_size", "augment_shift", "seed", "chance_patience"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if int(self.seed) > MAX_SEED:
            raise ConfigError(f"seed must be an integer in [0, 2^63 - 1], got {self.seed}")
        for name in ("lr", "eps", "weight_decay", "momentum", "warmup_epochs", "lr_warmup_epochs", "beta"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, got {v!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if not 0 < self.cycle_peak < 1:
            raise ConfigError(f"cycle_peak must lie in (0, 1), got {self.cycle_peak}")
        if any(not 0 < m < 1 for m in self.milestones):
            raise ConfigError(f"milestones are fractions of training in (0, 1), got {list(self.milestones)}")
        self.objective()  # validates the method's own fields

    def _check_choice(self, name: str, choices) -> None:
        if getattr(self, name) not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {getattr(self, name)!r}")

    def objective(self):
        """The training objective this recipe names, built from its fields."""
        from .objectives import build
        fields = dict(eps=self.eps, norm=self.norm, steps=self.steps, step_size=self.step_size, beta=self.beta,
                      sigma=self.sigma, attack_mode=self.attack_mode)
        return build(self.method, **fields)

    @property
    def is_adversarial(self) -> bool:
        return self.method not in ("standard", "gaussian")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        for name in ("mean", "std"):
            d[name] = None if d[name] is None else list(d[name])
        return d

    def replace(self, **overrides) -> "TrainConfig":
        """A copy with the given fields changed; ``None`` values mean "not given" and are skipped."""
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(given) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown training option(s) {sorted(unknown)}; known: {sorted(self.to_dict())}")
        return dataclasses.replace(self, **given)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return cls().replace(**data)

    @classmethod
    def for_task(cls, **fields) -> "TrainConfig":
        """The defaults for ``fields``' arch, data, method and epochs, then ``fields`` on top.

        ``TrainConfig.for_task(arch="smallcnn", data="digits", method="pgd-at", epochs=3)`` is what
        ``advkit train --arch smallcnn --data digits --method pgd-at --epochs 3`` trains with.
        """
        return cls.from_toml(None, **fields)

    @classmethod
    def from_toml(cls, path: str | Path | None = None, **overrides) -> "TrainConfig":
        """Read a recipe (top level or a ``[train]`` table), then apply ``overrides``.

        Under both lie the task defaults (:func:`advkit.training.defaults.task_defaults`) of the
        resulting arch, data, method and epochs.
        """
        from .defaults import task_defaults
        data: dict = {}
        if path is not None:
            try:
                with open(path, "rb") as fh:
                    data = tomllib.load(fh)
            except FileNotFoundError:
                raise ConfigError(f"training config {str(path)!r} does not exist") from None
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(f"training config {str(path)!r} is not valid TOML: {e}") from None
            except UnicodeDecodeError as e:
                raise ConfigError(f"training config {str(path)!r} is not UTF-8 text ({e.reason} at byte "
                                  f"{e.start}); expected a TOML file") from None
            except OSError as e:
                raise ConfigError(f"cannot read training config {str(path)!r}: {e.strerror or e}") from None
            if not isinstance(data.get("train", data), dict):
                raise ConfigError(f"training config {str(path)!r}: expected [train] to be a table")
            data = data.get("train", data)
            data = {k: v for k, v in data.items() if k not in RECIPE_META}
        given = {**data, **{k: v for k, v in overrides.items() if v is not None}}
        plain = cls()
        task = {k: given.get(k, getattr(plain, k)) for k in ("arch", "data", "method", "epochs", "optimizer")}
        return plain.replace(**task_defaults(**task)).replace(**data).replace(**overrides)


def recipe_meta(path: str | Path | None) -> dict:
    """The descriptive keys of a recipe file (``name``, ``description``), not part of the config."""
    if path is None:
        return {}
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    return {k: data[k] for k in RECIPE_META if k in data}
