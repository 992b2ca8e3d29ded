"""Gate verdicts as JUnit XML, for CI systems that show test reports (``advkit evaluate --junit F``)."""
from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from ..errors import StoreError


def case_names(items: list[dict]) -> list[str]:
    """A unique test-case name per gate item: ``METRIC OP VALUE`` for thresholds, ``regression METRIC`` for
    regressions, and ``#2``, ``#3`` … on any name that still repeats."""
    names, seen = [], {}
    for item in items:
        name = str(item.get("name"))
        if item.get("kind") == "regression":
            name = f"regression {name}"
        elif item.get("expected"):
            name = f"{name} {item.get('expected')}"
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return names


def gates_junit(gates: dict, *, suite: str = "advkit.gates", run: str | None = None) -> str:
    """One uniquely named ``<testcase>`` per gate item of ``result["gates"]``; a failed gate gets a
    ``<failure>``, a noisy one a ``<system-out>`` warning."""
    items = list(gates.get("items") or [])
    root = ET.Element("testsuites")
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(items)),
                       failures=str(sum(1 for i in items if not i.get("passed"))), errors="0", skipped="0")
    if run:
        props = ET.SubElement(ts, "properties")
        ET.SubElement(props, "property", name="run", value=str(run))
    for item, name in zip(items, case_names(items)):
        case = ET.SubElement(ts, "testcase", classname=suite, name=name)
        msg = str(item.get("message") or f"expected {item.get('expected')}, got {item.get('actual')}")
        if not item.get("passed"):
            ET.SubElement(case, "failure", message=msg, type="GateFailed").text = msg
        elif item.get("noisy"):
            ET.SubElement(case, "system-out").text = "warning: margin inside the sampling interval: " + msg
    if not items:
        ET.SubElement(ET.SubElement(ts, "testcase", classname=suite, name="no gates"), "system-out").text = \
            str(gates.get("message") or "no gates configured")
        ts.set("tests", "1")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(path: str | Path, gates: dict, **kw) -> None:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(gates_junit(gates, **kw))
    except OSError as e:
        raise StoreError(f"cannot write JUnit XML to {str(path)!r}: {e.strerror}") from None
