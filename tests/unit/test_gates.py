"""Gates: parsing, threshold verdicts and margins, regression against a baseline, noise warnings, JUnit."""
from __future__ import annotations

import copy
import warnings
from xml.etree import ElementTree as ET

import pytest

from advkit.errors import ConfigError, GateNoiseWarning
from advkit.gates import (Gate, GateReport, RegressionGate, check_gates, default_gates, gates_to_junit,
                          metric_value, parse_drop, parse_gate)
from advkit.report import clopper_pearson

pytestmark = pytest.mark.filterwarnings("ignore::advkit.errors.GateNoiseWarning")  # checked where it matters


REFERENCE = {"name": "autoattack-standard", "reference": True, "reasons": []}


def result(*, clean=0.99, robust=0.812, n=1000, pgd=0.86, per_class=(0.9, 0.7, 0.95), certify=None, run_id=None,
           protocol=REFERENCE):
    r = {"schema_version": 1, "run_id": run_id, "n": n, "model_name": "m", "clean": {"accuracy": clean,
         "per_class": [{"class": i, "accuracy": a} for i, a in enumerate(per_class)]},
         "threats": {"linf:0.3": {"robust_accuracy": robust, "per_class": [a - 0.3 for a in per_class],
                                  "attacks": {"pgd": {"robust_accuracy": pgd},
                                              "autoattack": {"robust_accuracy": robust}}, "protocol": protocol},
                     "l2:1.5": {"robust_accuracy": robust - 0.1, "attacks": {}, "protocol": protocol}}}
    if certify:
        r["certify"] = {"sigma": 0.25, "certified_accuracy": certify}
    return r


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize("text, metric, key, op, value", [
    ("robust_accuracy[linf:0.3] >= 0.85", "robust_accuracy", "linf:0.3", ">=", 0.85),
    ("robust_accuracy[Linf:8/255]>85%", "robust_accuracy", "linf:8/255", ">", 0.85),
    ("clean_accuracy <= 99.5 %", "clean_accuracy", None, "<=", 0.995),
    ("attacks.apgd-ce.robust_accuracy[linf:0.3] < .5", "attacks.apgd-ce.robust_accuracy", "linf:0.3", "<", 0.5),
    ("per_class_min[linf:0.3] >= 0.4", "per_class_min", "linf:0.3", ">=", 0.4),
    ("certified_accuracy[0.50] >= 60%", "certified_accuracy", "0.5", ">=", 0.6),
])
def test_parse_gate(text, metric, key, op, value):
    g = parse_gate(text)
    assert (g.metric, g.key, g.op) == (metric, key, op) and g.value == pytest.approx(value)


@pytest.mark.parametrize("text, hint", [
    ("robust_accuracy[linf:0.3] => 0.85", "METRIC"), ("accuracy >= 0.9", "gate metric must be one of"),
    ("robust_accuracy[linf:0.3] >= 85", "did you mean 85%"), ("clean_accuracy >= 120%", "fraction in [0, 1]"),
    ("clean_accuracy[linf:0.3] >= 0.5", "takes no [key]"), ("certified_accuracy >= 0.5", "needs a radius"),
    ("certified_accuracy[big] >= 0.5", "needs a number"), ("robust_accuracy[linf:0.3] >=", "METRIC"),
])
def test_parse_gate_errors_say_what_was_expected(text, hint):
    with pytest.raises(ConfigError, match=hint.replace("[", r"\[").replace("]", r"\]")) as e:
        parse_gate(text)
    assert "got" in str(e.value)


@pytest.mark.parametrize("text, value", [("2pp", 0.02), ("2 %", 0.02), ("0.5pp", 0.005), ("0.02", 0.02),
                                         (3, 0.03), (0.01, 0.01), ("2 points", 0.02)])
def test_parse_drop(text, value):
    assert parse_drop(text) == pytest.approx(value)


def test_parse_drop_rejects_garbage():
    with pytest.raises(ConfigError, match="2pp"):
        parse_drop("two")


# ---------------------------------------------------------------- thresholds


def test_threshold_fail_message_has_expected_actual_margin():
    rep = check_gates(result(robust=0.812), ["robust_accuracy[linf:0.3] >= 0.85"], None)
    (it,) = rep.items
    assert not rep.passed and not it.passed and it.actual == pytest.approx(0.812)
    assert it.margin == pytest.approx(-0.038)
    assert it.message == "expected robust_accuracy[linf:0.3] >= 0.850, got 0.812 (margin \u22120.038)"
    assert not it.noisy  # n = 1000: the 95% CI of 0.812 is about ±0.025, 0.85 lies outside


def test_threshold_pass_and_each_operator():
    r = result(clean=0.99, robust=0.5)
    rep = check_gates(r, ["clean_accuracy >= 99%", "clean_accuracy > 0.98", "robust_accuracy[linf:0.3] < 0.6",
                          "robust_accuracy[linf:0.3] <= 50%"])
    assert rep.passed and [round(i.margin, 6) for i in rep.items] == [0.0, 0.01, 0.1, 0.0]
    assert not check_gates(r, ["clean_accuracy > 0.99"]).passed  # strict inequality at equality fails
    assert not check_gates(r, ["robust_accuracy[linf:0.3] < 0.5"]).passed


def test_metric_lookup_of_every_kind():
    r = result(certify={"0.0": 0.97, "0.5": 0.71})
    assert metric_value(r, parse_gate("attacks.pgd.robust_accuracy[linf:0.3] >= 0")) == pytest.approx(0.86)
    assert metric_value(r, parse_gate("per_class_min[linf:0.3] >= 0")) == pytest.approx(0.4)
    assert metric_value(r, parse_gate("per_class_min[clean] >= 0")) == pytest.approx(0.7)
    assert metric_value(r, parse_gate("certified_accuracy[0.5] >= 0")) == pytest.approx(0.71)
    assert metric_value(r, parse_gate("robust_accuracy[l2:1.5] >= 0")) == pytest.approx(0.712)


@pytest.mark.parametrize("text, hint", [
    ("robust_accuracy[linf:0.1] >= 0.5", "no threat 'linf:0.1'"),
    ("robust_accuracy >= 0.5", "needs a threat"),  # the result has two threats
    ("attacks.square.robust_accuracy[linf:0.3] >= 0.5", "did not run"),
    ("certified_accuracy[0.5] >= 0.5", "no certify section"),
])
def test_missing_metrics_are_config_errors(text, hint):
    with pytest.raises(ConfigError, match=hint):
        check_gates(result(), [text])


def test_threat_may_be_omitted_with_a_single_threat():
    r = result()
    del r["threats"]["l2:1.5"]
    assert check_gates(r, ["robust_accuracy >= 0.8"]).items[0].actual == pytest.approx(0.812)


def test_noise_warning_when_margin_inside_the_confidence_interval():
    r = result(robust=0.812, n=200)
    lo, hi = clopper_pearson(round(0.812 * 200), 200)
    assert lo < 0.83 < hi
    with pytest.warns(GateNoiseWarning, match="inside the 95% confidence interval"):
        rep = check_gates(r, ["robust_accuracy[linf:0.3] >= 0.83"])
    assert rep.items[0].noisy and not rep.items[0].passed and rep.noisy == [rep.items[0]]
    with warnings.catch_warnings():
        warnings.simplefilter("error", GateNoiseWarning)
        assert not check_gates(r, ["robust_accuracy[linf:0.3] >= 0.95"]).items[0].noisy  # far outside
        assert not check_gates(result(robust=0.812, n=100_000), ["robust_accuracy[linf:0.3] >= 0.83"]).noisy


def test_noise_uses_the_recorded_interval():
    r = result(robust=0.812, n=100_000)
    r["threats"]["linf:0.3"]["ci"] = [0.70, 0.90]  # e.g. a Wilson interval the pipeline recorded
    with pytest.warns(GateNoiseWarning):
        assert check_gates(r, ["robust_accuracy[linf:0.3] >= 0.85"]).items[0].noisy


# ---------------------------------------------------------------- regression


def test_regression_against_baseline():
    base = result(clean=0.99, robust=0.85, run_id=7)
    now = result(clean=0.985, robust=0.80)
    rep = check_gates(now, [], base, max_drop="2pp")
    by = {i.name: i for i in rep.items}
    assert set(by) == {"clean_accuracy", "robust_accuracy[linf:0.3]", "robust_accuracy[l2:1.5]"}
    assert by["clean_accuracy"].passed and by["clean_accuracy"].margin == pytest.approx(0.015)
    it = by["robust_accuracy[linf:0.3]"]
    assert not it.passed and it.margin == pytest.approx(-0.03) and it.kind == "regression"
    assert "baseline run 7: 0.850" in it.message and "got 0.800 (margin \u22120.030)" in it.message
    assert not rep.passed
    assert check_gates(result(robust=0.84), [], base, max_drop=0.02).passed  # a 1pp drop is allowed
    assert check_gates(result(robust=0.95), [], base, max_drop="0pp").passed  # improvements always pass


def test_regression_without_baseline_is_skipped_and_noise_flagged():
    assert check_gates(result(), [], None, max_drop="2pp").items == ()
    with pytest.warns(GateNoiseWarning):
        rep = check_gates(result(robust=0.80, n=100), [RegressionGate(0.02, ("robust_accuracy",), "linf:0.3")],
                          result(robust=0.83, n=100))
    (it,) = rep.items
    assert not it.passed and it.noisy and it.name == "robust_accuracy[linf:0.3]"


def test_default_gates():
    gates = default_gates(clean_floor=0.9)
    assert gates[0] == Gate("clean_accuracy", ">=", 0.9)
    assert isinstance(gates[1], RegressionGate) and gates[1].max_drop == pytest.approx(0.02)
    base = result(robust=0.85)
    assert not check_gates(result(robust=0.82), gates, base).passed
    rep = check_gates(result(clean=0.8, robust=0.85), gates, base)
    # clean floor fails, and so does the clean regression (one rule: clean and every threat); robust did not drop
    assert [(i.name, i.passed) for i in rep.items] == [
        ("clean_accuracy", False), ("clean_accuracy", False), ("robust_accuracy[linf:0.3]", True),
        ("robust_accuracy[l2:1.5]", True)]
    assert [type(g) for g in default_gates(clean_floor=None, max_drop=None)] == []


def test_inputs_are_not_mutated_and_report_serialises():
    r, base = result(), result(robust=0.9)
    r0, b0 = copy.deepcopy(r), copy.deepcopy(base)
    rep = check_gates(r, ["clean_accuracy >= 0.5"], base, max_drop="2pp")
    assert r == r0 and base == b0
    d = rep.to_dict()
    assert d["passed"] is False and {"name", "expected", "actual", "margin", "passed", "message", "noisy"} <= \
        set(d["items"][0])


def test_junit_xml():
    rep = check_gates(result(robust=0.812), ["robust_accuracy[linf:0.3] >= 0.85", "clean_accuracy >= 0.5"])
    root = ET.fromstring(gates_to_junit(rep))
    suite = root.find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["robust_accuracy[linf:0.3] >= 0.850", "clean_accuracy >= 0.500"]
    assert "margin" in cases[0].find("failure").get("message") and cases[1].find("failure") is None
    assert ET.fromstring(gates_to_junit(rep.to_dict())).find("testsuite").get("failures") == "1"
    empty = ET.fromstring(gates_to_junit(GateReport())).find("testsuite")
    assert GateReport().passed and empty.get("failures") == "0" and empty.find("testcase").get("name") == "no gates"
