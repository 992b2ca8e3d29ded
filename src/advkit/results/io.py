"""Run directories: ``result.json`` (schema_version 1) and ``samples.npz`` side by side.

``result.json`` (DESIGN.md, "Results contract")::

    schema_version: 1, advkit_version, run_id, created, status
    model (REF text), model_name, model_hash, weights, data, split, n, seed, spec (the full spec), spec_hash
    environment: {python, torch, numpy, advkit, platform, git_commit}
    preflight: [finding…]
    clean: {accuracy, ci, correct, n, top5: {...} | null, per_class: [{class, accuracy, ci, n}], confusion_matrix,
            classes}
    threats: {"linf:0.3": {robust_accuracy, ci, correct, n, upper_bound, attacks: {name: {robust_accuracy, ci,
              seconds, model_calls, gradient_calls, config, broke}}, broken_by: {attack: count},
              per_class: [...], classes_below_minimum: [...], curve: {eps, robust_accuracy, raw_accuracy, ci,
              attacks, monotone}}}
    robust_accuracy: {threat: value}   curve: {threat: {eps text: value}}
    certify: {...} | null   findings: [{code, severity, message, cause, remedy}]
    gates: {passed, items, baseline_run, message}   timings: {stage: seconds}

``samples.npz`` holds every per-sample record (:mod:`advkit.results.records`) and a gallery:
``gallery_clean``, ``gallery_adv`` (N, C, H, W), ``gallery_label``, ``gallery_clean_pred``,
``gallery_adv_pred``, ``gallery_clean_conf``, ``gallery_adv_conf``, ``gallery_threat``.
"""
from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import numpy as np

from ..atomic import DISK_ERRORS, atomic_path, atomic_write
from ..errors import ConfigError, StoreError, StoreWriteError

SCHEMA_VERSION = 1


def jsonable(obj):
    """Plain JSON types: numpy scalars/arrays → Python, NaN/inf → None, tuples → lists."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps(result: dict) -> str:
    return json.dumps(jsonable(result), indent=2, sort_keys=False, allow_nan=False)


#: the files of one run in its folder; a folder holding them belongs to that run
RUN_FILES = ("result.json", "samples.npz", "report.md", "report.html")


def write_run_dir(directory: str | Path, result: dict, samples: dict) -> Path:
    """Write ``samples.npz`` then ``result.json`` (the run's commit mark) into ``directory`` (created if
    needed); when either cannot be written, neither is left behind."""
    d = Path(directory)
    written: list[Path] = []
    try:
        d.mkdir(parents=True, exist_ok=True)
        with atomic_path(d / "samples.npz") as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{k: _array(v) for k, v in samples.items()})
        written.append(d / "samples.npz")
        atomic_write(d / "result.json", dumps(result))
    except OSError as e:
        remove_run_files(d, written)
        cls = StoreWriteError if e.errno in DISK_ERRORS else StoreError
        raise cls(f"cannot write results to {str(d)!r}: {e.strerror}") from None
    except BaseException:
        remove_run_files(d, written)
        raise
    return d


def remove_run_files(directory: Path, names=RUN_FILES) -> None:
    """Remove a failed run's files (``names``: paths or names in ``directory``) so none is mistaken for a result."""
    for name in names:
        with contextlib.suppress(OSError):
            (Path(directory) / name).unlink()


def check_out_free(directory: str | Path, run_id: int | None = None) -> None:
    """A ConfigError when ``directory`` holds the files of a run other than ``run_id``: two runs never share
    one folder (the second would mix its gallery or result into the first's report)."""
    d = Path(directory)
    present = [n for n in RUN_FILES if (d / n).exists()]
    if not present:
        return
    other = _run_id_in(d / "result.json")
    if run_id is not None and other == run_id:
        return
    who = f"run {other}" if other is not None else "another run"
    raise ConfigError(f"--out {str(d)!r} already holds the files of {who} ({', '.join(present)}); expected a new "
                      "or empty folder: choose another --out or remove those files")


def _run_id_in(path: Path):
    try:
        result = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return result.get("run_id") if isinstance(result, dict) else None


def _array(v) -> np.ndarray:
    a = np.asarray(v)
    return a.astype(str) if a.dtype == object else a


def check_result(result, source: str) -> dict:
    """``result`` if it looks like an advkit result (a JSON object with ``clean`` and ``threats``), else a
    StoreError naming ``source`` and what it holds instead."""
    if not isinstance(result, dict):
        kind = {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(result), "null")
        raise StoreError(f"{source}: expected a result.json JSON object, got a JSON {kind}")
    missing = [k for k in ("clean", "threats") if not isinstance(result.get(k), dict)]
    if missing:
        raise StoreError(f"{source}: not an advkit evaluation result: {' and '.join(repr(k) for k in missing)} "
                         f"missing or not an object")
    problem = _bad_numbers(result)
    if problem:
        raise StoreError(f"{source}: expected {problem[0]} to be {problem[1]}, got {json.dumps(problem[2])[:40]}; "
                         "it is not a result advkit wrote (edited or damaged)")
    return result


_FRACTION, _COUNT = "a fraction in [0, 1] or null", "a count (an integer >= 0) or null"


def _bad_numbers(result: dict) -> tuple[str, str, object] | None:
    """``(where, expected, value)`` of the first metric that a gate or report would misread: accuracies
    outside [0, 1] (5 would pass any floor) or not numbers, counts that are not integers."""
    checks: list[tuple[str, object, str]] = [("n", result.get("n"), _COUNT), ("run_id", result.get("run_id"), _COUNT)]
    checks += _group("clean", result["clean"], "accuracy")
    for t, block in result["threats"].items():
        if not isinstance(block, dict):
            return f"threats.{t}", "an object", block
        checks += _group(f"threats.{t}", block, "robust_accuracy")
        for a, att in (block.get("attacks") or {}).items():
            checks += _group(f"threats.{t}.attacks.{a}", att, "robust_accuracy") if isinstance(att, dict) else \
                [(f"threats.{t}.attacks.{a}", att, "an object")]
    for name in ("robust_accuracy", "certified_accuracy"):
        table = result.get(name)
        checks += [(f"{name}.{k}", v, _FRACTION) for k, v in table.items()] if isinstance(table, dict) else \
            ([(name, table, "an object")] if table is not None else [])
    cert = result.get("certify")
    if isinstance(cert, dict):
        checks += [(f"certify.certified_accuracy.{k}", v, _FRACTION)
                   for k, v in (cert.get("certified_accuracy") or {}).items()]
    for where, value, expected in checks:
        if not _valid(value, expected):
            return where, expected, value
    return None


def _group(where: str, block: dict, key: str) -> list[tuple[str, object, str]]:
    """The accuracy, counts and interval of a clean/threat/attack block and of its per-class rows."""
    out = [(f"{where}.{key}", block.get(key), _FRACTION), (f"{where}.n", block.get("n"), _COUNT),
           (f"{where}.correct", block.get("correct"), _COUNT)]
    ci = block.get("ci")
    if ci is not None:
        ok = isinstance(ci, list) and len(ci) == 2
        out += [(f"{where}.ci[{i}]", v, _FRACTION) for i, v in enumerate(ci)] if ok else \
            [(f"{where}.ci", ci, "a [low, high] pair")]
    rows = block.get("per_class")
    for i, row in enumerate(rows if isinstance(rows, list) else []):
        out += _group(f"{where}.per_class[{i}]", row, "accuracy") if isinstance(row, dict) else \
            [(f"{where}.per_class[{i}]", row, "an object")]
    return out


def _valid(value, expected: str) -> bool:
    if value is None:
        return True
    if expected == _FRACTION:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0
    if expected == _COUNT:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return False


def load_run_dir(directory: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(result, samples) from a run directory (or a path to its ``result.json``)."""
    d = Path(directory)
    if d.is_file():
        d = d.parent
    rj = d / "result.json"
    if not rj.exists():
        raise StoreError(f"expected a run directory with result.json, got {str(d)!r} (no result.json there)")
    try:
        result = json.loads(rj.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StoreError(f"{rj}: not valid JSON ({e})") from None
    if isinstance(result, dict) and result.get("schema_version") != SCHEMA_VERSION:
        raise StoreError(f"{rj}: expected schema_version {SCHEMA_VERSION}, got {result.get('schema_version')!r}")
    check_result(result, str(rj))
    samples: dict[str, np.ndarray] = {}
    if (d / "samples.npz").exists():
        samples = load_samples(d / "samples.npz")
    return result, samples


def load_samples(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a ``samples.npz``; a StoreError for a damaged file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - zipfile/zlib/numpy errors of a damaged file
        raise StoreError(f"{path}: cannot read the per-sample arrays ({type(e).__name__}: {e})") from None
