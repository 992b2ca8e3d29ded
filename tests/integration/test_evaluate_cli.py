"""``advkit evaluate`` end to end through the CLI: outputs, history, gates and every exit code."""
from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from advkit.cli.main import main
from advkit.results import Store, load_run_dir

from _evalhelpers import write_inputs, write_spec


@pytest.fixture(scope="module")
def refs(tmp_path_factory, digits_model):
    return write_inputs(tmp_path_factory.mktemp("inputs"), digits_model)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, refs):
    d = tmp_path_factory.mktemp("run")
    spec = write_spec(d / "spec.toml", refs)
    code = main(["evaluate", str(spec), "--out", str(d / "out"), "--db", str(d / "h.db"), "--quiet"])
    return code, d


def test_exit_0_writes_the_run_directory_and_history(first_run, digits_model):
    code, d = first_run
    assert code == 0
    result, samples = load_run_dir(d / "out")
    assert result["schema_version"] == 1 and result["n"] == 40 and result["seed"] == 0
    t = result["threats"]["linf:0.1"]
    # the worst case is never above any single attack's number, and equals the per-sample records
    assert t["robust_accuracy"] <= min(a["robust_accuracy"] for a in t["attacks"].values()) + 1e-12
    assert t["robust_accuracy"] == pytest.approx(samples["linf:0.1/robust"].mean())
    assert set(t["attacks"]) >= {"fgsm", "pgd", "apgd-ce", "autoattack"}
    lo, hi = t["ci"]
    assert lo <= t["robust_accuracy"] <= hi
    # clean accuracy matches an independent prediction of the same 40 samples
    clf, x, y = digits_model
    assert result["clean"]["accuracy"] == pytest.approx(float((clf.predict(x[:40]) == y[:40]).float().mean()))
    assert np.asarray(result["clean"]["confusion_matrix"]).sum() == 40
    # broken_by names an attack for every non-robust sample and nothing for robust ones
    by, robust = samples["linf:0.1/broken_by"], samples["linf:0.1/robust"]
    assert ((by == "") == robust).all()
    assert sum(t["broken_by"].values()) == int((~robust).sum())
    # the curve never exceeds the headline number at or beyond the threat's eps
    c = t["curve"]
    assert all(a <= t["robust_accuracy"] + 1e-12 for e, a in zip(c["eps"], c["robust_accuracy"]) if e >= 0.1)
    assert c["eps"] == pytest.approx([0.0, 0.1, 0.2])
    assert samples["gallery_adv"].shape[1:] == (1, 8, 8) and len(samples["gallery_adv"]) > 0
    for f in ("report.md", "report.html"):
        assert (d / "out" / f).stat().st_size > 100
    with Store(d / "h.db") as st:
        runs = st.list_runs()
        assert len(runs) == 1 and runs[0]["status"] == "complete"
        assert runs[0]["robust_accuracy"]["linf:0.1"] == pytest.approx(t["robust_accuracy"])
        assert st.load_result(runs[0]["run_id"])["model_hash"] == result["model_hash"]
        assert st.count_batches(runs[0]["run_id"]) > 0


def test_exit_1_when_a_gate_fails_and_junit_is_written(first_run, refs, tmp_path):
    _, d = first_run
    spec = write_spec(tmp_path / "spec.toml", refs, extra='[gates]\nrequire = ["robust_accuracy[linf:0.1] >= 0.99"]\n'
                                                          '[certify]\nsigma = 0.25\nn0 = 10\nn = 100\n')
    junit = tmp_path / "gates.xml"
    code = main(["evaluate", str(spec), "--out", str(tmp_path / "out"), "--db", str(d / "h.db"), "--quiet",
                 "--junit", str(junit)])
    assert code == 1
    result, samples = load_run_dir(tmp_path / "out")
    assert result["gates"]["passed"] is False
    assert set(result["certify"]["certified_accuracy"]) >= {"0", "0.5"} and len(samples["certify/radius"]) == 40
    root = ET.parse(junit).getroot()
    assert root.find("testsuite").get("failures") != "0"
    assert root.find(".//failure") is not None
    assert result["gates"]["baseline_run"] is None  # a different spec (certify added): no baseline


def test_regression_gate_uses_the_latest_run_of_the_same_spec(first_run, refs, tmp_path):
    _, d = first_run
    spec = write_spec(tmp_path / "spec.toml", refs)
    code = main(["evaluate", str(spec), "--out", str(tmp_path / "o"), "--db", str(d / "h.db"), "--quiet", "--json"])
    assert code == 0
    result, _ = load_run_dir(tmp_path / "o")
    # the regression gate used the first run of the same spec and model as baseline
    assert result["gates"]["baseline_run"] == 1
    names = [i["name"] for i in result["gates"]["items"]]
    assert any("robust_accuracy" in n for n in names)


def test_exit_1_when_robust_accuracy_drops_against_the_baseline(refs, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file
    worse = {k: v + 0.3 * torch.randn(v.shape, generator=torch.Generator().manual_seed(0))
             for k, v in load_file(refs["weights"]).items()}
    save_file(worse, str(tmp_path / "worse.safetensors"))
    spec = write_spec(tmp_path / "spec.toml", {**refs, "model": refs["arch"]})
    common = [str(spec), "--db", str(tmp_path / "h.db"), "--quiet", "--json"]
    assert main(["evaluate", *common, "--weights", refs["weights"], "--out", str(tmp_path / "v1")]) == 0
    assert main(["evaluate", *common, "--weights", str(tmp_path / "worse.safetensors"), "--out",
                 str(tmp_path / "v2")]) == 1
    v1, _ = load_run_dir(tmp_path / "v1")
    v2, _ = load_run_dir(tmp_path / "v2")
    assert v2["robust_accuracy"]["linf:0.1"] < v1["robust_accuracy"]["linf:0.1"] - 0.02
    failed = [i for i in v2["gates"]["items"] if not i["passed"]]
    assert v2["gates"]["baseline_run"] == v1["run_id"] and failed
    # the one regression rule: clean and robust accuracy, each against the baseline
    assert all(i["kind"] == "regression" and i["margin"] < 0 for i in failed)
    assert any(i["name"] == "robust_accuracy[linf:0.1]" for i in failed)


@pytest.mark.parametrize("extra, message", [
    ("[stages.pgd]\nstepz = 3\n", "stages.pgd.stepz"),
    ('[gates]\nrequire = ["robust_accuracy[linf:0.1] >> 2"]\n', "gates.require"),
])
def test_exit_2_on_config_errors(refs, tmp_path, capsys, extra, message):
    spec = write_spec(tmp_path / "spec.toml", refs)
    text = spec.read_text()
    if "stages.pgd" in extra:
        text = text.replace("[stages.pgd]\n", extra)
    else:
        text += extra
    spec.write_text(text)
    code = main(["evaluate", str(spec), "--db", str(tmp_path / "h.db"), "--quiet"])
    assert code == 2
    assert message in capsys.readouterr().err.replace("\n", "")


def test_exit_2_on_bad_options(tmp_path):
    assert main(["evaluate", "--threat", "linf:x", "--db", str(tmp_path / "h.db"), "--quiet"]) == 2
    assert main(["evaluate", str(tmp_path / "missing.toml"), "--quiet"]) == 2
    assert main(["evaluate", "--n", "0", "--quiet"]) == 2


def test_exit_3_when_preflight_finds_probabilities(refs, tmp_path, capsys):
    code = main(["evaluate", "--model", refs["probs"], "--data", refs["data"], "--n", "20", "--db",
                 str(tmp_path / "h.db"), "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 3
    err = capsys.readouterr().err.replace("\n", " ")
    assert "probabilit" in err and "softmax" in err  # says what is wrong and how to fix it
    with sqlite3.connect(tmp_path / "h.db") as c:
        assert c.execute("SELECT status FROM runs").fetchall() == [("aborted",)]


def test_options_override_the_spec(refs, tmp_path):
    spec = write_spec(tmp_path / "spec.toml", {"model": "zoo:does-not-matter", "data": "digits"})
    code = main(["evaluate", str(spec), "--model", refs["arch"], "--weights", refs["weights"], "--data", refs["data"],
                 "--n", "20", "--threat", "l2:0.5", "--no-autoattack", "--db", str(tmp_path / "h.db"),
                 "--out", str(tmp_path / "o"), "--quiet", "--json"])
    assert code == 0
    result = json.loads((tmp_path / "o" / "result.json").read_text())
    assert result["n"] == 20 and result["model"] == refs["arch"] and list(result["threats"]) == ["l2:0.5"]
    t = result["threats"]["l2:0.5"]
    assert t["upper_bound"] is True and "autoattack" not in t["attacks"]
    assert any(f["code"] == "autoattack-skipped" for f in result["findings"])
