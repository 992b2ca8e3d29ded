"""The import structure of ``src/advkit`` follows docs/architecture.md: imports point down the layers only,
and no modules import each other in a circle.

Every ``import``/``from ... import`` in every module counts, including those inside functions (a lazy import
still couples the modules).  Importing ``a.b.c`` also runs ``a/b/__init__.py``, so a module depends on the
``__init__`` of every package it imports from (except the packages it lives in).  The project's size limits
(modules ≤ 300 lines, functions ≤ 40) are checked here too.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "advkit"

# Top-level name under advkit → layer.  A module may import from its own layer or a lower one.  Keep in step
# with the table in docs/architecture.md.
LAYERS = {
    # 0: ground floor — no advkit imports above this layer
    "errors": 0, "seeds": 0, "version": 0, "identity": 0, "progress": 0, "findings": 0, "atomic": 0, "sync": 0,
    "rng": 0, "geometry": 0, "threat": 0, "losses": 0, "batching": 0, "faults": 0, "model": 0, "devices": 0,
    "distributed": 0,
    # 1: the model zoo (architectures, advkit model files, catalogue)
    "zoo": 1,
    # 2: building blocks
    "sources": 2, "attacks": 2, "defenses": 2, "smoothing": 2, "results": 2, "testing": 2,
    # 3: what combines them
    "profiles": 3, "evaluation": 3, "gates": 3, "report": 3, "training": 3, "tracking": 3,
    # 4: entry points and the public API
    "cli": 4, "__main__": 4, "": 4,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in SRC.rglob("*.py")}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The advkit modules that ``name`` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.update(f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names)
    targets = set()
    for target in found:
        if not target.startswith("advkit"):
            continue
        parts = target.split(".")
        for i in range(2, len(parts) + 1):  # the packages on the way run their __init__ too
            parent = ".".join(parts[:i])
            if parent in known and parent != name and not name.startswith(parent + "."):
                targets.add(parent)
        if target == "advkit":  # `from advkit import __version__`: the package's own __init__
            targets.add(target)
    return targets - {name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imported(name, path, set(mods)) for name, path in mods.items()}


def layer(name: str) -> int:
    top = name.split(".")[1] if "." in name else ""
    if top not in LAYERS:
        raise AssertionError(f"advkit.{top} has no layer: add it to LAYERS here and to docs/architecture.md")
    return LAYERS[top]


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
                  for a, targets in edges.items() for b in targets if layer(b) > layer(a))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer():
    for name in modules():
        layer(name)


def test_no_import_points_up_a_layer():
    assert upward_imports(graph()) == []


def test_no_import_circles():
    assert cycles(graph()) == []


@pytest.mark.parametrize("source, expected", [
    ("from ..evaluation.protocol_status import x\n", "advkit.evaluation"),
    ("def f():\n    from advkit.cli import main\n", "advkit.cli"),
])
def test_the_checker_sees_an_upward_import(tmp_path, source, expected):
    path = tmp_path / "fake.py"
    path.write_text(source)
    targets = imported("advkit.results.fake", path, set(modules()))
    assert expected in targets
    assert upward_imports({"advkit.results.fake": targets})


def test_the_checker_sees_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]



MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 40


def oversized() -> tuple[list[str], list[str]]:
    """Modules over MAX_MODULE_LINES lines and functions whose span (``def`` line to last line, docstring
    included) is over MAX_FUNCTION_LINES."""
    modules_over, functions_over = [], []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(SRC.parent).as_posix()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            modules_over.append(f"{rel}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                span = node.end_lineno - node.lineno + 1
                if span > MAX_FUNCTION_LINES:
                    functions_over.append(f"{rel}:{node.lineno} {node.name}: {span} lines")
    return modules_over, functions_over


def test_no_module_over_300_lines():
    assert oversized()[0] == []


def test_no_function_over_40_lines():
    assert oversized()[1] == []
