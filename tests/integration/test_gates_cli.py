"""CI-safe gates end to end: ``gate latest``, upper bounds, per-class minimums, the one regression rule,
incomparable specs, a baseline without the threat, unique JUnit names, early validation, noise findings.

Exit codes: 0 all gates passed · 1 a gate failed · 2 usage/config (incl. runs of different specs) ·
3 the run gated as ``latest`` failed, was aborted or never finished.
"""
from __future__ import annotations

import importlib.util
import json
import sqlite3
import warnings
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from advkit.cli.main import main
from advkit.errors import GateNoiseWarning
from advkit.results.store import Store

from _evalhelpers import write_inputs, write_spec

_spec = importlib.util.spec_from_file_location("_report_fixtures", Path(__file__).parents[1] / "unit" / "test_report.py")
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)


def _add(store, result: dict, status: str = "complete") -> int:
    run_id = store.begin_run(model=result["model_name"], model_ref=result["model"], model_hash=result["model_hash"],
                             spec_hash=result["spec_hash"], seed=result["seed"], spec=result.get("spec", {}),
                             versions=result["environment"], git_commit=None)
    if status == "complete":
        store.finish_run(run_id, dict(result, run_id=run_id))
    else:
        store.set_status(run_id, status)
    return run_id


def _db(tmp_path, *runs) -> str:
    path = tmp_path / "h.db"
    with Store(path) as s:
        for result, status in runs:
            _add(s, result, status)
    return str(path)


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def wide_console():
    from advkit.cli import render
    saved = render.console._width
    render.console.width = 300
    yield
    render.console._width = saved


GATE = ("--require", "robust_accuracy[linf:0.3] >= 0.5", "--baseline", "none")


# ---------------------------------------------------------------- gate latest


@pytest.mark.parametrize("status", ["aborted", "failed", "running"])
def test_gate_latest_fails_when_the_latest_run_did_not_complete(tmp_path, capsys, status):
    db = _db(tmp_path, (fx.make_result(model_name="model-a", robust=0.85), "complete"),
             (fx.make_result(model_name="model-b", robust=0.85), status))
    code, out, err = run(capsys, "gate", "latest", "--db", db, *GATE)
    assert code == 3 and "run 2 (model model-b" in err and f"status {status!r}" in err
    assert "all gates passed" not in out and "Traceback" not in err
    # naming the model selects that model's latest run, and the output says which run was gated
    code, out, err = run(capsys, "gate", "latest", "--model", "model-a", "--db", db, *GATE)
    assert code == 0 and "gating run 1 in" in err and "model model-a" in err


def test_gate_always_names_the_run_it_checked(tmp_path, capsys):
    db = _db(tmp_path, (fx.make_result(robust=0.85), "complete"), (fx.make_result(robust=0.86), "complete"))
    code, _, err = run(capsys, "gate", "latest", "--db", db, *GATE)
    assert code == 0 and "gating run 2 in" in err and "model mnist5k-pgdat" in err
    code, _, err = run(capsys, "gate", "1", "--db", db, *GATE)
    assert code == 0 and "gating run 1 in" in err


# ---------------------------------------------------------------- upper bounds and per-class minimums


def _rundir(tmp_path, name="run", **threat_fields):
    r = fx.make_result(robust=0.85)
    r["threats"]["linf:0.3"].update(threat_fields)
    return fx.write_run(tmp_path / name, r)


def test_a_gate_on_an_upper_bound_fails_unless_allowed(tmp_path, capsys):
    skipped = _rundir(tmp_path, "skipped", protocol={"name": None, "reference": False,
                                                     "reasons": ["autoattack skipped"]}, upper_bound=True)
    code, out, _ = run(capsys, "gate", skipped, "--db", tmp_path / "x.db", *GATE)
    assert code == 1 and "FAIL" in out and "upper bound (autoattack skipped)" in out and "--allow-upper-bound" in out
    code, out, _ = run(capsys, "gate", skipped, "--db", tmp_path / "x.db", *GATE, "--allow-upper-bound")
    assert code == 0 and "gated as allowed" in out
    # a clean-accuracy gate does not depend on the attacks
    assert run(capsys, "gate", skipped, "--db", tmp_path / "x.db", "--require", "clean_accuracy >= 0.9",
               "--baseline", "none")[0] == 0
    untrusted = _rundir(tmp_path, "masked", trusted=False, untrusted_reasons=["gradients are masked"])
    code, out, _ = run(capsys, "gate", untrusted, "--db", tmp_path / "x.db", *GATE)
    assert code == 1 and "untrusted: gradients are masked" in out
    assert run(capsys, "gate", untrusted, "--db", tmp_path / "x.db", *GATE, "--allow-upper-bound")[0] == 0


def test_per_class_minimum_gates(tmp_path, capsys):
    rd = _rundir(tmp_path)  # linf:0.3 per class: 0.95 × 8, 0.45, 0.75; clean 0.985 each
    code, out, _ = run(capsys, "gate", rd, "--db", tmp_path / "x.db", "--per-class-min", "0.6", "--baseline", "none")
    assert code == 1 and "FAIL expected per_class_min[linf:0.3] >= 0.600, got 0.450" in out
    assert "PASS expected per_class_min[clean] >= 0.600, got 0.985" in out
    assert run(capsys, "gate", rd, "--db", tmp_path / "x.db", "--per-class-min", "0.4", "--baseline", "none")[0] == 0
    r = fx.make_result(robust=0.85)  # the same minimum from the run's spec
    r["spec"]["gates"] = {"per_class_min": 0.6, "max_drop": None}
    code, out, _ = run(capsys, "gate", fx.write_run(tmp_path / "spec", r), "--db", tmp_path / "x.db")
    assert code == 1 and "per_class_min[linf:0.3]" in out


def test_spec_per_class_min_and_allow_upper_bound_parse():
    from advkit.evaluation import spec_from_dict
    from advkit.evaluation.run_info import gate_list
    spec = spec_from_dict({"threats": ["linf:0.1", "l2:1"], "gates": {"per_class_min": 0.5, "allow_upper_bound": True,
                                                                     "max_drop": "off"}})
    assert spec.gates.allow_upper_bound is True
    assert sorted(g.name for g in gate_list(spec)) == ["per_class_min[clean]", "per_class_min[l2:1.0]",
                                                       "per_class_min[linf:0.1]"]


# ---------------------------------------------------------------- one regression rule


def test_max_drop_has_one_meaning_in_evaluate_gate_and_history_compare(tmp_path, capsys):
    """A 36.7-point clean drop with unchanged robust accuracy fails everywhere (it passed in evaluate)."""
    from advkit.evaluation import EvaluationSpec
    from advkit.evaluation.run_info import gates_section
    before = fx.make_result(clean=0.985, robust=0.5)
    after = fx.make_result(clean=0.618, robust=0.5)
    db = _db(tmp_path, (before, "complete"), (after, "complete"))
    spec = EvaluationSpec()  # gates.max_drop = 0.02
    with Store(db) as store:
        section = gates_section(spec, json.loads(json.dumps(after)), store,
                                {"model": "mnist5k-pgdat", "spec_hash": after["spec_hash"]}, 2)
    assert section["baseline_run"] == 1 and section["passed"] is False
    assert [i["name"] for i in section["items"] if not i["passed"]] == ["clean_accuracy"]
    code, out, _ = run(capsys, "gate", "2", "--db", db, "--max-drop", "2pp")
    assert code == 1 and "FAIL expected clean_accuracy >= 0.965 (baseline run 1: 0.985" in out
    assert run(capsys, "gate", "2", "--db", db)[0] == 1  # the defaults: the same rule
    code, out, _ = run(capsys, "history", "compare", "1", "2", "--db", db, "--max-drop", "2pp")
    assert code == 1 and "1 of 3 gates failed" in out


def test_a_baseline_of_other_data_contents_is_flagged_in_evaluate(tmp_path):
    from advkit.evaluation import EvaluationSpec
    from advkit.evaluation.run_info import gates_section
    db = _db(tmp_path, (dict(fx.make_result(), data_hash="a" * 64), "complete"))
    now = dict(fx.make_result(), data_hash="b" * 64, findings=[])
    with Store(db) as store:
        gates_section(EvaluationSpec(), now, store, {"model": "mnist5k-pgdat", "spec_hash": now["spec_hash"],
                                                     "data_hash": "b" * 64}, 2)
    (f,) = [f for f in now["findings"] if f["code"] == "baseline-data-changed"]
    assert f["severity"] == "warning" and "baseline run 1" in f["message"] and "aaaaaaaaaaaa then" in f["message"]


# ---------------------------------------------------------------- what is compared with what


def test_comparing_runs_of_different_specs_is_refused_or_flagged(tmp_path, capsys):
    db = _db(tmp_path, (fx.make_result(robust=0.85, spec_hash="spec-a"), "complete"),
             (fx.make_result(robust=0.85, spec_hash="spec-b"), "complete"))
    code, out, err = run(capsys, "history", "compare", "1", "2", "--db", db)
    assert code == 2 and "not comparable" in err and "spec spec-a vs spec-b" in err
    assert "all gates passed" not in out
    code, out, _ = run(capsys, "history", "compare", "1", "2", "--db", db, "--allow-different-specs")
    assert code == 0 and "NOT comparable: spec spec-a vs spec-b" in out
    code, _, err = run(capsys, "gate", "2", "--baseline", "1", "--db", db, "--max-drop", "2pp")
    assert code == 2 and "not comparable" in err


def test_different_specs_means_another_protocol_or_data_not_another_model(tmp_path, capsys):
    from advkit.cli.gate import different_specs
    spec = {"model": "zoo:a", "weights": None, "data": "mnist5k", "n": 200, "seed": 0, "threats": ["linf:0.3"],
            "gates": {"max_drop": 0.02}, "output": "runs/a"}
    a = dict(fx.make_result(), spec=spec, spec_hash="h-a", data_hash="d" * 64)
    b = dict(fx.make_result(), spec={**spec, "model": "zoo:b", "gates": {}, "output": "runs/b"}, spec_hash="h-b",
             data_hash="d" * 64)
    assert different_specs(a, b) == []  # another model (and its spec hash) is what a comparison is for
    assert different_specs(a, dict(b, spec={**spec, "n": 1000})) == ["n 200 vs 1000"]
    assert different_specs(a, dict(b, data_hash="e" * 64)) == ["data contents dddddddd vs eeeeeeee"]
    c = dict(b, spec={**spec, "seed": 1})
    code, _, err = run(capsys, "compare", fx.write_run(tmp_path / "a", a), fx.write_run(tmp_path / "c", c),
                       "--db", tmp_path / "x.db")
    assert code == 0 and "is NOT comparable with" in err and "seed 0 vs 1" in err


def test_an_explicit_baseline_without_the_threat_fails_the_regression_gate(tmp_path, capsys):
    base = fx.make_result(robust=0.95)
    del base["threats"]["linf:0.3"], base["robust_accuracy"]["linf:0.3"]
    bdir = fx.write_run(tmp_path / "base", base)
    now = fx.write_run(tmp_path / "now", fx.make_result(robust=0.5))
    code, out, _ = run(capsys, "gate", now, "--baseline", bdir, "--max-drop", "2pp", "--db", tmp_path / "x.db")
    assert code == 1 and "FAIL expected robust_accuracy[linf:0.3] in baseline" in out and "no such number" in out


def test_junit_test_case_names_are_unique(tmp_path, capsys):
    db = _db(tmp_path, (fx.make_result(robust=0.86), "complete"), (fx.make_result(robust=0.80), "complete"))
    junit = tmp_path / "g.xml"
    code, _, _ = run(capsys, "gate", "2", "--db", db, "--require", "robust_accuracy[linf:0.3] >= 0.5",
                     "--require", "robust_accuracy[linf:0.3] <= 0.99", "--max-drop", "2pp", "--junit", junit)
    names = [c.get("name") for c in ET.parse(junit).getroot().iter("testcase")]
    assert code == 1 and len(names) == 5 and len(set(names)) == len(names)
    assert "regression robust_accuracy[linf:0.3]" in names and "robust_accuracy[linf:0.3] >= 0.500" in names


# ---------------------------------------------------------------- inside evaluate


@pytest.fixture(scope="module")
def refs(tmp_path_factory, digits_model):
    return write_inputs(tmp_path_factory.mktemp("inputs"), digits_model)


def test_a_gate_on_a_threat_not_in_the_spec_fails_before_any_attack(refs, tmp_path, capsys):
    spec = write_spec(tmp_path / "spec.toml", refs, extra='[gates]\nrequire = ["robust_accuracy[linf:0.3] >= 0.5"]\n')
    db = tmp_path / "h.db"
    code = main(["evaluate", str(spec), "--db", str(db), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "'linf:0.3'" in err and "linf:0.1" in err
    if db.exists():
        with sqlite3.connect(db) as c:
            assert c.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0  # no "running" row left behind
    assert not (tmp_path / "out").exists()


def test_evaluate_fails_an_upper_bound_gate_and_reports_noise_as_a_finding(refs, tmp_path, digits_model, capsys):
    clf, x, y = digits_model
    clean = float((clf.predict(x[:40]) == y[:40]).float().mean())
    gates = f'[gates]\nrequire = ["robust_accuracy[linf:0.1] >= 0.0", "clean_accuracy >= {clean - 0.01:.4f}"]\n'
    spec = write_spec(tmp_path / "spec.toml", refs, extra=gates)
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["evaluate", str(spec), "--db", str(tmp_path / "h.db"), "--out", str(out), "--quiet",
                     "--no-autoattack"])
    assert not [w for w in caught if issubclass(w.category, GateNoiseWarning)]  # no raw Python warning
    result = json.loads((out / "result.json").read_text())
    items = {i["name"]: i for i in result["gates"]["items"]}
    assert code == 1 and not items["robust_accuracy[linf:0.1]"]["passed"]  # 0.0 is met, but only as an upper bound
    assert items["robust_accuracy[linf:0.1]"]["upper_bound"] and items["clean_accuracy"]["passed"]
    noise = [f for f in result["findings"] if f["code"] == "gate-noise"]
    assert noise and noise[0]["severity"] == "warning" and "clean_accuracy" in noise[0]["message"]
    assert "gate-noise" in capsys.readouterr().out  # rendered with the other findings
    # the same run passes when the user opts in explicitly
    assert main(["gate", str(out), "--allow-upper-bound", "--baseline", "none", "--db", str(tmp_path / "h.db")]) == 0
