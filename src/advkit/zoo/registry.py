"""The zoo catalogue: names → model files shipped in ``advkit/zoo/checkpoints/``.

Every model in the zoo was trained by advkit itself (``advkit train``); its file carries the recipe and
the metrics measured at training time.  The catalogue lists the planned names too, so that ``advkit list
zoo`` can say which ones are not trained yet; any other ``*.safetensors`` file placed in the folder
appears with the metadata it carries.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelError

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"


@dataclass(frozen=True)
class Planned:
    arch: str
    data: str
    description: str


#: The names the project plans to ship, with what they are.
CATALOGUE: dict[str, Planned] = {
    "mnist5k-standard": Planned("smallcnn", "mnist5k", "small CNN, standard training on mnist5k (the default model)"),
    "mnist5k-pgdat": Planned("smallcnn", "mnist5k", "small CNN, Madry PGD adversarial training, L∞ ε=0.3"),
    "mnist5k-trades": Planned("smallcnn", "mnist5k", "small CNN, TRADES (β=6), L∞ ε=0.3"),
    "mnist5k-noise0.25": Planned("smallcnn", "mnist5k", "small CNN, Gaussian noise augmentation σ=0.25 (for smoothing)"),
    "mnist5k-noise0.5": Planned("smallcnn", "mnist5k", "small CNN, Gaussian noise augmentation σ=0.5 (for smoothing)"),
    "fmnist-standard": Planned("smallcnn", "fashion-mnist", "small CNN, standard training on Fashion-MNIST"),
    "fmnist-pgdat": Planned("smallcnn", "fashion-mnist", "small CNN, PGD adversarial training on Fashion-MNIST, L∞ ε=0.1"),
}


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model: ``available`` is False for catalogue names whose file is not shipped yet."""

    name: str
    arch: str
    data: str
    description: str
    metrics: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    available: bool = False


def checkpoint_path(name: str, directory: Path | None = None) -> Path:
    return (directory or CHECKPOINT_DIR) / f"{name}.safetensors"


def _entry_from_file(name: str, path: Path) -> ZooEntry:
    from .checkpoint import read_metadata

    meta = read_metadata(path)
    planned = CATALOGUE.get(name)
    description = meta.get("description") or (planned.description if planned else "")
    data = meta.get("data") or (meta.get("recipe") or {}).get("data") or (planned.data if planned else "")
    recipe = dict(meta.get("recipe") or {})
    return ZooEntry(name, meta["arch"], data, description, dict(meta.get("metrics") or {}), recipe, path, True)


def entry(name: str, directory: Path | None = None) -> ZooEntry | None:
    """The zoo entry called ``name`` (trained or only planned), or None."""
    return next((e for e in list_zoo(directory) if e.name == name), None)


def list_zoo(directory: Path | None = None) -> list[ZooEntry]:
    """Catalogue names (trained or not) followed by any other model files in the checkpoint folder."""
    folder = directory or CHECKPOINT_DIR
    files = {p.stem: p for p in sorted(folder.glob("*.safetensors"))} if folder.is_dir() else {}
    entries = []
    for name, planned in CATALOGUE.items():
        if name in files:
            entries.append(_entry_from_file(name, files[name]))
        else:
            entries.append(ZooEntry(name, planned.arch, planned.data, planned.description + " (not yet trained)"))
    entries += [_entry_from_file(n, p) for n, p in files.items() if n not in CATALOGUE]
    return entries


def load(name: str, *, device: str | None = None, directory: Path | None = None):
    """Load zoo model ``name`` as a :class:`~advkit.model.Classifier`."""
    from .checkpoint import load_model_file

    path = checkpoint_path(name, directory)
    if path.is_file():
        return load_model_file(path, device=device)
    if name in CATALOGUE:
        raise ModelError(f"zoo model {name!r} is in the catalogue but not trained yet (expected {path}); "
                         f"train it with `advkit train` and save it there")
    known = [e.name for e in list_zoo(directory)]
    raise ConfigError(f"unknown zoo model {name!r}; expected one of: {', '.join(known)}")
