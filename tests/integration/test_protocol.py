"""One AutoAttack protocol per version and norm, labelled honestly everywhere (issue 10).

* evaluate / ``advkit attack autoattack`` / ``advkit list presets`` take the same preset object;
* L1 evaluates end to end (official l1-AutoAttack composition, curve and black-box check);
* a budget below the reference is labelled in result.json, the table, the report and the history,
  with a ``reduced-budget`` finding; ``protocol_status`` reads it.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from advkit.attacks import presets, registry
from advkit.cli.main import main
from advkit.evaluation import evaluate, protocol_status, spec_from_dict
from advkit.evaluation.autoattack_stage import autoattack_components
from advkit.results import Store, load_run_dir
from advkit.threat import ThreatModel

from _evalhelpers import write_inputs, write_spec


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 1.0), ("l1", 5.0)])
@pytest.mark.parametrize("version", ["standard", "rand"])
def test_evaluate_attack_and_list_use_one_preset(norm, eps, version):
    threat = f"{norm}:{eps}"
    ctx = SimpleNamespace(spec=spec_from_dict({"threats": [threat]}), num_classes=10)
    stage = [a.describe() for _, a in autoattack_components(ctx, ThreatModel.parse(threat), version)]
    name = "autoattack" if version == "standard" else "autoattack-rand"
    built = registry.build(name, threat, num_classes=10)          # what `advkit attack autoattack` runs
    assert stage == [a.describe() for a in built.attacks]
    assert built.label == ("autoattack" if version == "standard" else "autoattack-rand")  # no "reduced"
    listed = dict(presets.list_presets())[f"autoattack_{version}"]  # what `advkit list presets` prints
    for member, settings in presets.protocol(version, norm).members:
        assert f"{member} (" + ", ".join(f"{k}={v}" for k, v in settings.items()) + ")" in listed
    # the evaluate stage's Square is the official one: p-schedule not rescaled
    for cfg in stage:
        if cfg["name"] == "square":
            assert cfg["rescale_schedule"] is False and cfg["n_queries"] == 5000


def test_l1_preset_is_the_official_composition():
    aa = presets.autoattack_standard("l1:12", 10)
    assert aa.names == ("apgd-ce", "apgd-t", "fab-t", "square")
    ce, t, fab, sq = aa.attacks
    assert (ce.restarts, ce.large_eps, ce.steps) == (5, True, 100)
    assert (t.n_targets, t.large_eps, t.restarts) == (5, True, 1)
    assert fab.n_targets == 9 and (sq.n_queries, sq.p_init, sq.rescale_schedule) == (5000, 0.8, False)


@pytest.fixture(scope="module")
def refs(tmp_path_factory, digits_model):
    return write_inputs(tmp_path_factory.mktemp("inputs"), digits_model)


def test_l1_evaluate_end_to_end_with_curve_and_blackbox_check(refs, tmp_path):
    spec = write_spec(tmp_path / "spec.toml", refs, n=30, extra="")
    text = spec.read_text().replace('threats = ["linf:0.1"]', 'threats = ["l1:2.0"]')
    spec.write_text(text)
    code = main(["evaluate", str(spec), "--out", str(tmp_path / "out"), "--db", str(tmp_path / "h.db"), "--quiet"])
    assert code == 0
    result, _ = load_run_dir(tmp_path / "out")
    t = result["threats"]["l1:2"] if "l1:2" in result["threats"] else result["threats"]["l1:2.0"]
    assert {"apgd-ce", "apgd-t", "fab-t", "square"} <= set(t["attacks"])
    assert t["attacks"]["apgd-ce"]["config"]["large_eps"] is True
    assert t["curve"] and len(t["curve"]["eps"]) == 3
    assert not any(f["code"] == "attack-unavailable" for f in result["findings"])


def test_reduced_budget_is_labelled_everywhere(refs, tmp_path, capsys):
    spec = write_spec(tmp_path / "spec.toml", refs, n=30)   # steps 10, square 40 queries, 2 targets
    code = main(["evaluate", str(spec), "--out", str(tmp_path / "out"), "--db", str(tmp_path / "h.db")])
    assert code == 0
    out = capsys.readouterr().out
    result, _ = load_run_dir(tmp_path / "out")
    t = result["threats"]["linf:0.1"]
    proto = t["protocol"]
    assert proto["reference"] is False and proto["name"].startswith("autoattack-standard (reduced: ")
    assert "steps 10 < 100" in proto["reasons"] and "square queries 40 < 5000" in proto["reasons"]
    assert protocol_status(t) == (False, proto["reasons"])
    assert t["attacks"]["autoattack"]["protocol"] == proto["name"]
    assert any(f["code"] == "reduced-budget" for f in result["findings"])
    assert "reduced" in out                                            # terminal table
    assert "not reference AutoAttack" in (tmp_path / "out" / "report.md").read_text()
    assert "reduced" in (tmp_path / "out" / "report.html").read_text()
    with Store(tmp_path / "h.db") as st:
        assert st.list_runs()[0]["reference_protocol"] == {"linf:0.1": False}
    assert main(["history", "list", "--db", str(tmp_path / "h.db")]) == 0
    assert "not the reference AutoAttack protocol" in capsys.readouterr().out


def test_reference_budget_and_skipped_autoattack(digits_model):
    clf, x, y = digits_model
    base = {"n": 10, "threats": ["linf:0.5"], "stages": {"curve": {"enabled": False}, "pgd": {"steps": 2, "restarts": 1},
                                                          "checks": {"enabled": False}}}
    res = evaluate(spec_from_dict(base), model=clf, data=(x, y)).result
    t = res["threats"]["linf:0.5"]
    assert t["protocol"] == {"name": "autoattack-standard", "reference": True, "reasons": []}
    assert protocol_status(t) == (True, [])
    assert not any(f["code"] == "reduced-budget" for f in res["findings"])
    off = json.loads(json.dumps(base))
    off["stages"]["autoattack"] = {"version": "off"}
    t = evaluate(spec_from_dict(off), model=clf, data=(x, y)).result["threats"]["linf:0.5"]
    assert t["protocol"] == {"name": None, "reference": False, "reasons": ["autoattack skipped"]}
    assert protocol_status({}) == (False, ["protocol not recorded"])


def test_screening_protocol_is_labelled_everywhere_and_never_as_autoattack(refs, tmp_path, capsys):
    """Issue 22: ``[stages.autoattack] version = "screening"`` runs the screening protocol; result.json,
    the table, the reports, the history and the gates all say so, and nothing files it as AutoAttack."""
    gates = '[gates]\nrequire = ["robust_accuracy[linf:0.1] >= 0.0"]\n'
    spec = write_spec(tmp_path / "spec.toml", refs, n=30, extra=gates)
    spec.write_text(spec.read_text().replace("[stages.autoattack]\n", '[stages.autoattack]\nversion = "screening"\n'))
    out_dir, db = tmp_path / "out", str(tmp_path / "h.db")
    code = main(["evaluate", str(spec), "--out", str(out_dir), "--db", db])
    out = capsys.readouterr().out
    result, _ = load_run_dir(out_dir)
    t = result["threats"]["linf:0.1"]
    proto = t["protocol"]
    assert proto["name"] == "screening-malt (reduced: steps 10 < 100, targets 2 < 5)"
    assert proto["reference"] is False and presets.SCREENING_NOTE in proto["reasons"]
    assert "autoattack" not in t["attacks"] and t["attacks"]["screening"]["protocol"] == proto["name"]
    assert t["attacks"]["screening"]["components"] == ["apgd-ce", "apgd-t-malt"]
    assert t["autoattack_version"] == "screening"
    assert "screening-malt" in out and "worst case (screening" in out               # terminal table
    assert "screening protocol, not AutoAttack" in (out_dir / "report.md").read_text()
    assert "screening-malt" in (out_dir / "report.html").read_text()
    items = {i["name"]: i for i in result["gates"]["items"]}                    # gates: an upper bound
    gate = items["robust_accuracy[linf:0.1]"]
    assert code == 1 and not gate["passed"] and "screening protocol, not AutoAttack" in gate["message"]
    with Store(db) as st:
        run = st.list_runs()[0]
    assert run["reference_protocol"] == {"linf:0.1": False}
    assert main(["history", "list", "--db", db]) == 0
    listed = capsys.readouterr().out
    assert "%†" in listed and "† the screening protocol (screening-malt" in listed
    assert main(["gate", str(out_dir), "--allow-upper-bound", "--baseline", "none", "--db", db]) == 0
