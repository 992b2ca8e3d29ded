"""``advkit report|history|gate|compare`` end to end on a real history database and run directories.

Exit codes: 0 ok, 1 gate/comparison failed, 2 usage error (bad expression, missing run or DB).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from advkit.cli.main import main

_spec = importlib.util.spec_from_file_location("_report_fixtures", Path(__file__).parents[1] / "unit" / "test_report.py")
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)

pytestmark = pytest.mark.filterwarnings("ignore::advkit.errors.GateNoiseWarning")


def _add_run(store, result: dict) -> int:
    run_id = store.begin_run(model=result["model_name"], model_ref=result["model"], model_hash=result["model_hash"],
                             spec_hash=result["spec_hash"], seed=result["seed"], spec=result.get("spec", {}),
                             versions=result["environment"], git_commit=None)
    result = dict(result, run_id=run_id)
    store.finish_run(run_id, result)
    return run_id


@pytest.fixture
def db(history_db):
    """Runs 1, 2 (same model and spec, robust 85% then 86%), 3 (robust 80%: a regression), 4 (another model);
    in a SQLite file and in a PostgreSQL database (every test of this file runs on both back ends)."""
    from advkit.results.store import Store

    path = history_db
    with Store(path) as s:
        for i, (name, robust, clean) in enumerate([("mnist5k-pgdat", 0.85, 0.985), ("mnist5k-pgdat", 0.86, 0.985),
                                                   ("mnist5k-pgdat", 0.80, 0.985), ("mnist5k-trades", 0.90, 0.99)]):
            _add_run(s, fx.make_result(model_name=name, robust=robust, clean=clean, n=1000,
                                       created=f"2026-11-2{i}T10:00:00+00:00"))
    return str(path)


@pytest.fixture(autouse=True)
def wide_console():
    """Tables are not wrapped at 80 columns in captured output."""
    from advkit.cli import render

    saved = render.console._width
    render.console.width = 200
    yield
    render.console._width = saved


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- report


def test_report_formats_from_db_dir_and_file(db, tmp_path, capsys):
    code, out, _ = run(capsys, "report", "latest", "--db", db)
    assert code == 0 and "## advkit robustness: `mnist5k-trades`" in out and "| `linf:0.3` |" in out
    code, out, _ = run(capsys, "report", "2", "--db", db, "--format", "json")
    assert code == 0 and json.loads(out)["threats"]["linf:0.3"]["robust_accuracy"] == pytest.approx(0.86)
    rd = fx.write_run(tmp_path / "run", fx.make_result())
    code, _, err = run(capsys, "report", rd, "--out", tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert code == 0 and "wrote html" in err and 'id="gallery"' in page and page.startswith("<!DOCTYPE html>")
    (tmp_path / "copy.json").write_text((rd / "result.json").read_text())
    code, out, _ = run(capsys, "report", tmp_path / "copy.json", "--format", "md")
    assert code == 0 and "mnist5k-pgdat" in out


def test_report_errors_exit_2(db, tmp_path, capsys):
    assert run(capsys, "report", "99", "--db", db)[0] == 2
    code, _, err = run(capsys, "report", "latest", "--db", tmp_path / "none.db")
    assert code == 2 and "history database" in err and not (tmp_path / "none.db").exists()
    assert run(capsys, "report", "latest", "--db", db, "--format", "pdf")[0] == 2


# ---------------------------------------------------------------- history


def test_history_list_show(db, capsys):
    code, out, _ = run(capsys, "history", "list", "--db", db, "--json")
    runs = json.loads(out)
    assert code == 0 and [r["run_id"] for r in runs] == [4, 3, 2, 1]
    assert runs[1]["robust_accuracy"]["linf:0.3"] == pytest.approx(0.80)
    code, out, _ = run(capsys, "history", "list", "--db", db, "--model", "mnist5k-trades", "--json")
    assert [r["run_id"] for r in json.loads(out)] == [4]
    code, out, _ = run(capsys, "history", "list", "--db", db, "--limit", "2")
    assert code == 0 and "runs in" in out and "mnist5k-trades" in out
    code, out, _ = run(capsys, "history", "show", "1", "--db", db)
    assert code == 0 and "mnist5k-pgdat" in out and "Findings" in out


def test_history_compare_exit_codes(db, capsys):
    code, out, _ = run(capsys, "history", "compare", "1", "2", "--db", db)
    assert code == 0 and "all gates passed" in out and "+1.0pp" in out
    code, out, _ = run(capsys, "history", "compare", "2", "3", "--db", db, "--max-drop", "2pp")
    assert code == 1 and "FAIL expected robust_accuracy[linf:0.3] >= 0.840" in out and "margin \u22120.040" in out
    assert run(capsys, "history", "compare", "2", "3", "--db", db, "--max-drop", "7pp")[0] == 0


def test_history_dashboard(db, tmp_path, capsys):
    code, _, _ = run(capsys, "history", "dashboard", "--db", db, "--out", tmp_path / "d.html")
    page = (tmp_path / "d.html").read_text()
    assert code == 0 and page.count("data:image/png;base64,") == 1 and "mnist5k-trades" in page
    assert page.count("<tr>") == 5  # header + 4 runs


# ---------------------------------------------------------------- gate


def test_gate_pass_fail_and_bad_expression(db, tmp_path, capsys):
    code, out, _ = run(capsys, "gate", "2", "--db", db, "--require", "robust_accuracy[linf:0.3] >= 0.85",
                       "--baseline", "none")
    assert code == 0 and "PASS expected robust_accuracy[linf:0.3] >= 0.850, got 0.860 (margin +0.010)" in out
    junit = tmp_path / "g.xml"
    code, out, err = run(capsys, "gate", "3", "--db", db, "--require", "robust_accuracy[linf:0.3] >= 85%",
                         "--require", "clean_accuracy >= 0.9", "--baseline", "none", "--junit", junit)
    assert code == 1 and "FAIL expected robust_accuracy[linf:0.3] >= 0.850, got 0.800 (margin \u22120.050)" in out
    assert "1 of 2 gates failed" in out
    assert ET.parse(junit).getroot().find("testsuite").get("failures") == "1"
    code, _, err = run(capsys, "gate", "2", "--db", db, "--require", "robust_accuracy[linf:0.3] => 0.85")
    assert code == 2 and "expected a gate like" in err
    assert run(capsys, "gate", "2", "--db", db, "--require", "robust_accuracy[linf:0.1] >= 0.5")[0] == 2


def test_gate_noise_warning(db, capsys):
    code, out, err = run(capsys, "gate", "2", "--db", db, "--require", "robust_accuracy[linf:0.3] >= 0.87",
                         "--baseline", "none")
    # rendered as a finding, not as a Python warning with a source path
    assert code == 1 and "warning gate-noise:" in err and "confidence interval" in err and ".py:" not in err


def test_gate_regression_against_latest_of_same_spec(db, capsys):
    # run 3 (80%) against the latest other run of the same model and spec (run 2, 86%): a 6pp drop
    code, out, _ = run(capsys, "gate", "3", "--db", db, "--max-drop", "2pp")
    assert code == 1 and "baseline run 2: 0.860" in out and "margin \u22120.040" in out
    # defaults (no options, spec has no gates): clean floor and a 2pp drop of robust accuracy
    code, out, _ = run(capsys, "gate", "3", "--db", db, "--json")
    items = {i["name"]: i for i in json.loads(out)["items"]}
    assert code == 1 and items["clean_accuracy"]["passed"] and not items["robust_accuracy[linf:0.3]"]["passed"]
    assert run(capsys, "gate", "2", "--db", db)[0] == 0  # 86% vs run 1 (85%): no drop


def test_gate_uses_the_spec_gates_of_a_run_dir(tmp_path, capsys):
    r = fx.make_result(robust=0.81)
    r["spec"]["gates"] = {"require": ["robust_accuracy[linf:0.3] >= 0.9"], "max_drop": 0.02, "clean_floor": 0.5}
    rd = fx.write_run(tmp_path / "run", r)
    code, out, _ = run(capsys, "gate", rd, "--db", tmp_path / "none.db")
    assert code == 1 and "expected robust_accuracy[linf:0.3] >= 0.900, got 0.810" in out
    assert "clean_accuracy >= 0.500" in out


# ---------------------------------------------------------------- compare


def test_compare_table_and_plot(db, tmp_path, capsys):
    rd = fx.write_run(tmp_path / "run", fx.make_result(model_name="local", robust=0.5, clean=0.99))
    png = tmp_path / "s.png"
    code, out, _ = run(capsys, "compare", "1", "mnist5k-trades", "zoo:mnist5k-pgdat", rd, "--db", db, "--json",
                       "--plot", png)
    rows = json.loads(out)["rows"]
    assert code == 0 and [r["label"] for r in rows] == ["mnist5k-pgdat #1", "mnist5k-trades #4",
                                                         "mnist5k-pgdat #3", "local"]
    assert [r["robust"] for r in rows] == pytest.approx([0.85, 0.90, 0.80, 0.5])
    assert png.read_bytes()[:8] == fx.PNG_MAGIC
    code, out, _ = run(capsys, "compare", "1", "4", "--db", db)
    assert code == 0 and "clean vs robust (linf:0.3)" in out
    assert run(capsys, "compare", "1", "4", "--db", db, "--threat", "linf:0.1")[0] == 2
    assert run(capsys, "compare", "no-such-model", "--db", db)[0] == 2
