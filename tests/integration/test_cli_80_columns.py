"""The CLI in an 80-column terminal (issue 14): tables wrap instead of cutting cells with '…', prose is
left-aligned, every table fits the width, code spans show no backslashes, accuracies are percentages."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from advkit.cli.main import main

_spec = importlib.util.spec_from_file_location("_report_fixtures", Path(__file__).parents[1] / "unit" / "test_report.py")
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)

pytestmark = pytest.mark.filterwarnings("ignore::advkit.errors.GateNoiseWarning")
WIDTH = 80


@pytest.fixture(autouse=True)
def narrow_console():
    from advkit.cli import render

    saved = render.console._width
    render.console.width = WIDTH
    yield
    render.console._width = saved


def run(capsys, *args) -> str:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def assert_fits(out: str) -> None:
    assert "\u2026" not in out, out  # rich's truncation mark
    too_wide = [line for line in out.splitlines() if len(line) > WIDTH]
    assert not too_wide, too_wide


def words(text: str) -> list[str]:
    return re.findall(r"[\w.\-()]+", text)


def cell_text(out: str) -> str:
    """The table's cell text joined across wrapped lines (box characters removed)."""
    return " ".join(re.sub(r"[\u2500-\u257f]", " ", out).split())


@pytest.fixture
def db(tmp_path):
    from advkit.results.store import Store

    path = tmp_path / "h.db"
    with Store(path) as s:
        for i, model in enumerate(["mnist5k-pgdat", "a-rather-long-model-name-v2"]):
            r = fx.make_result(model_name=model, created=f"2026-11-2{i}T10:00:00+00:00", certify=True)
            r["model"] = "zoo:" + model if i == 0 else "cifar_model.py:build"
            r["model_name"] = r["model"]
            rid = s.begin_run(model=r["model"], model_ref=r["model"], model_hash=r["model_hash"],
                              spec_hash=r["spec_hash"], seed=0, spec={}, versions={}, git_commit=None)
            s.finish_run(rid, dict(r, run_id=rid))
    return str(path)


def test_list_checks_keeps_the_whole_remedy(capsys):
    from advkit.findings import CATALOGUE
    import advkit.evaluation.checks  # noqa: F401

    out = run(capsys, "list", "checks")
    assert_fits(out)
    text = cell_text(out)
    for info in CATALOGUE.values():
        for w in words(info.remedy):
            assert w in text, (info.code, w)


@pytest.mark.parametrize("subject", ["attacks", "presets", "zoo", "data"])
def test_list_tables_fit_and_left_align_prose(capsys, subject):
    out = run(capsys, "list", subject)
    assert_fits(out)
    body = [line for line in out.splitlines() if line.startswith("\u2502")]
    for line in body:
        cells = line.split("\u2502")[1:-1]
        for cell in cells:
            if cell.strip():
                assert cell.startswith(" ") and not cell.startswith("  "), line  # left-aligned


def test_history_list_wraps_instead_of_truncating(db, capsys):
    out = run(capsys, "history", "list", "--db", db)
    assert_fits(out)
    text = cell_text(out)
    assert re.search(r"\b20\d\d-\d\d-\d\d \d\d:\d\d\b", text), text  # date and time, whole
    for token in ("linf:0.3 81.0%", "l2:2.0 61.0%", "certified r=0.5 71.0%", "98.5%"):
        assert token in text, token
    assert "zoo:mnist5k-pgdat" in text.replace(" ", "") and "cifar_model.py:build" in text.replace(" ", "")


def test_history_show_has_no_backslash_in_code(db, capsys):
    out = run(capsys, "history", "show", "2", "--db", db)
    assert "cifar_model.py:build" in out and "cifar\\_model" not in out
    assert "not certifiable at this n" not in out or "largest certifiable" in out.lower()


def test_inspect_prints_percentages(capsys):
    out = run(capsys, "inspect", "--n", "50")
    assert_fits(out)
    line = next(line for line in out.splitlines() if "clean_accuracy" in line)
    assert re.search(r"\d+\.\d%", line), line


def test_real_terminal_with_columns_80(tmp_path):
    """The installed entry point with COLUMNS=80 (how a user's terminal sets it)."""
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "advkit", "list", "checks"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert_fits(proc.stdout)
    assert max(len(line) for line in proc.stdout.splitlines()) == WIDTH  # it used the width it was given
