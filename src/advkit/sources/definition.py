"""The digest of a model's definition: what, besides its weights, decides the function it computes.

Part of a run's identity (``model_hash`` folds it in, :func:`advkit.evaluation.run_info.model_digest`), so
that ``--resume`` never mixes the batches of two models that share a weights file but not their code:

* ``path/to/file.py:factory`` and ``pkg.module:factory``: the source of the factory's file and of every
  ``.py`` file it imports from its own folder (followed transitively; a package folder counts whole);
* ``torchscript:FILE`` and ``onnx:FILE``: the archive's bytes;
* ``FILE.safetensors`` (an advkit model file): the file's bytes, its metadata included;
* ``zoo:NAME``: nothing (the zoo's code is advkit's code, covered by the code version).
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
from pathlib import Path

#: at most this many local source files are followed from one factory file
MAX_FILES = 200


def definition_digest(ref: str) -> str | None:
    """sha256 (hex) of the definition behind model REF ``ref`` (module docstring), or None (zoo models)."""
    kind, _, rest = ref.partition(":")
    if kind == "zoo":
        return None
    if kind in ("torchscript", "onnx"):
        return _files_digest([Path(rest)])
    if ref.endswith(".safetensors"):
        return _files_digest([Path(ref)])
    source = ref.rpartition(":")[0]
    path = Path(source) if source.endswith(".py") else _module_file(source)
    return None if path is None else _files_digest(local_sources(path))


def _module_file(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    return Path(origin) if origin and origin.endswith(".py") else None


def local_sources(path: Path) -> list[Path]:
    """``path`` and the ``.py`` files of its folder that it imports, transitively, in a stable order."""
    folder = path.resolve().parent
    todo, seen = [path.resolve()], set()
    while todo and len(seen) < MAX_FILES:
        p = todo.pop()
        if p in seen or not p.is_file():
            continue
        seen.add(p)
        for name in _imported_names(p):
            local = folder / f"{name}.py"
            package = folder / name
            if local.is_file():
                todo.append(local)
            elif package.is_dir():
                todo.extend(sorted(package.rglob("*.py")))
    return sorted(seen)


def _imported_names(path: Path) -> set[str]:
    """First components of the modules ``path`` imports (absolute and relative imports)."""
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, OSError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.module:
                names.add(node.module.split(".")[0])
            if node.level:
                names.update(a.name for a in node.names)
    return names


def _files_digest(paths: list[Path]) -> str | None:
    h = hashlib.sha256()
    found = False
    for p in paths:
        try:
            data = p.read_bytes()
        except OSError:
            continue
        found = True
        h.update(f"{p.name}|{len(data)}|".encode())
        h.update(data)
    return h.hexdigest() if found else None


__all__ = ["definition_digest", "local_sources"]
