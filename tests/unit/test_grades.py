"""Grades on domain profiles: each threshold boundary, the interval that straddles a threshold, no grade
for an upper bound or a masked model, the clean-accuracy floor, and the grade gate (verdicts and exit codes)."""
from __future__ import annotations

import json

import pytest

from advkit.errors import ConfigError
from advkit.gates import check_gates, parse_gate
from advkit.profiles import annotate, grade_lines, grade_threat, load_profile
from advkit.gates import GradeGate

pytestmark = pytest.mark.filterwarnings("ignore::advkit.errors.GateNoiseWarning")

REFERENCE = {"name": "autoattack-standard", "reference": True, "reasons": []}
TIGHT = 0.004  # half-width of a narrow interval (no threshold inside it)


def section(acc, *, half=TIGHT, protocol=REFERENCE, **extra) -> dict:
    s = {"robust_accuracy": acc, "ci": [acc - half, acc + half], "upper_bound": False, "attacks": {}}
    if protocol is not None:
        s["protocol"] = dict(protocol)
    s.update(extra)
    return s


def result(acc, *, profile="cifar10", threat="linf:8/255", clean=0.85, n=1000, **kw) -> dict:
    return {"schema_version": 1, "n": n, "profile": profile,
            "clean": {"accuracy": clean, "ci": [clean - 0.02, clean + 0.02]},
            "threats": {threat: section(acc, **kw)}, "findings": []}


CIFAR10 = load_profile("cifar10")


@pytest.mark.parametrize("acc, grade", [
    (0.4999, "below-competitive"), (0.50, "competitive"), (0.5499, "competitive"), (0.55, "strong"),
    (0.5999, "strong"), (0.60, "state-of-the-art"), (0.95, "state-of-the-art"), (0.0, "below-competitive"),
])
def test_each_threshold_boundary(acc, grade):
    g = grade_threat(CIFAR10, "linf:8/255", section(acc, half=0.0), clean=0.85, n=1000)
    assert g["grade"] == grade and not g["uncertain"] and g["reasons"] == []
    assert g["possible"] == [grade]


def test_grade_text_states_value_threshold_protocol_and_budget():
    g = grade_threat(CIFAR10, "linf:8/255", section(0.561), clean=0.85)
    assert g["text"] == "strong: 56.1% \u2265 55% under AutoAttack at 8/255"
    low = grade_threat(CIFAR10, "linf:8/255", section(0.42), clean=0.85)
    assert low["text"] == "below competitive: 42.0% < 50% under AutoAttack at 8/255"
    top = grade_threat(CIFAR10, "linf:8/255", section(0.65), clean=0.85)
    assert top["text"].startswith("state of the art: 65.0% \u2265 60%")
    # thresholds advkit chose (no published convention) say so
    l2 = grade_threat(CIFAR10, "l2:0.5", section(0.76), clean=0.85)
    assert l2["grade"] == "strong" and "(advkit's thresholds)" in l2["text"] and "at L2 0.5" in l2["text"]


def test_an_interval_that_straddles_a_threshold_says_so():
    g = grade_threat(CIFAR10, "linf:8/255", section(0.561, half=0.031), clean=0.85)
    assert g["grade"] == "strong" and g["uncertain"] and g["straddles"] == [0.55]
    assert g["possible"] == ["competitive", "strong"]
    assert "straddles 55%" in g["text"] and "could be competitive or strong" in g["text"]
    wide = grade_threat(CIFAR10, "linf:8/255", section(0.56, half=0.07), clean=0.85)
    assert wide["straddles"] == [0.50, 0.55, 0.60]
    assert wide["possible"] == ["below-competitive", "competitive", "strong", "state-of-the-art"]
    assert "could be anything from below competitive to state of the art" in wide["text"]


def test_interval_from_n_when_none_is_recorded():
    s = section(0.561)
    del s["ci"]
    assert grade_threat(CIFAR10, "linf:8/255", s, clean=0.85, n=100)["uncertain"]  # ±~10pp at n=100
    assert not grade_threat(CIFAR10, "linf:8/255", s, clean=0.85, n=100_000)["uncertain"]


@pytest.mark.parametrize("extra, reason", [
    ({"protocol": {"name": None, "reference": False, "reasons": ["autoattack skipped"]}, "upper_bound": True},
     "autoattack skipped"),
    ({"protocol": {"name": "autoattack-standard (reduced: steps 25 < 100)", "reference": False,
                   "reasons": ["steps 25 < 100"]}}, "steps 25 < 100"),
    ({"protocol": None}, "upper bound"),  # no protocol record: not known to be the reference protocol
    ({"trusted": False, "untrusted_reasons": ["obfuscated gradients"]}, "untrusted (obfuscated gradients)"),
])
def test_no_grade_for_an_upper_bound_or_a_masked_model(extra, reason):
    s = section(0.70, protocol=extra.pop("protocol", REFERENCE))
    s.update(extra)
    g = grade_threat(CIFAR10, "linf:8/255", s, clean=0.9)
    assert g["grade"] is None and g["text"].startswith("no grade: ") and reason in g["text"]


def test_no_grade_where_the_profile_has_no_thresholds():
    assert "no thresholds for linf:0.1" in grade_threat(CIFAR10, "linf:0.1", section(0.7))["text"]
    imagenet_l2 = grade_threat(load_profile("imagenet"), "l2:3.0", section(0.4))
    assert imagenet_l2["grade"] is None and "no published thresholds" in imagenet_l2["text"]


def test_clean_accuracy_below_the_floor_is_stated_and_found():
    r = result(0.561, clean=0.75)
    annotate(r, "cifar10")
    g = r["threats"]["linf:8/255"]["grade"]
    assert g["grade"] == "strong" and g["clean_ok"] is False and "below the 80% floor" in g["text"]
    assert [f["code"] for f in r["findings"]] == ["clean-below-floor"]
    ok = result(0.561, clean=0.85)
    annotate(ok, "cifar10")
    assert ok["findings"] == [] and ok["threats"]["linf:8/255"]["grade"]["clean_ok"] is True


def test_annotate_records_the_profile_and_reports_show_the_grade():
    from advkit.report.html import render_html
    from advkit.report.markdown import render_markdown

    r = result(0.561, half=0.031)
    annotate(r, "cifar10")
    assert r["profile"] == "cifar10" and json.loads(json.dumps(r)) == r  # result.json-safe
    (threat, text), = grade_lines(r)
    assert threat == "linf:8/255" and text.startswith("strong: 56.1%") and "straddles" in text
    md = render_markdown(r)
    assert "strong (interval: competitive\u2013strong)" in md and "strong: 56.1% \u2265 55% under AutoAttack" in md
    assert "56.1% (53.0\u201359.2)" in md  # the interval next to it
    page = render_html(r)
    assert "strong (interval: competitive\u2013strong)" in page and "under AutoAttack at 8/255" in page
    bare = result(0.561)
    annotate(bare, None)
    assert bare["profile"] is None and grade_lines(bare) == [] and "Grades" not in render_markdown(bare)


def test_terminal_summary_states_the_grade(capsys):
    from advkit.cli import render
    from advkit.cli.evaluate import print_summary

    r = result(0.561)
    r.update(model="m", data="d", seed=0, gates={}, run_id=1)
    r["threats"]["linf:8/255"]["attacks"] = {}
    annotate(r, "cifar10")
    with render.console.capture() as cap:
        print_summary(r, __import__("pathlib").Path("out"))
    out = cap.get()
    assert "grade linf:8/255 (cifar10 profile): strong: 56.1% \u2265 55% under AutoAttack at 8/255" in out


# ---------------------------------------------------------------- grade gates
@pytest.mark.parametrize("acc, expr, passed", [
    (0.561, "grade[linf:8/255] >= strong", True), (0.549, "grade[linf:8/255] >= strong", False),
    (0.561, "grade[linf:8/255] > strong", False), (0.61, "grade[linf:8/255] > strong", True),
    (0.561, "grade[linf:8/255] <= strong", True), (0.45, "grade[linf:8/255] < competitive", True),
    (0.561, "grade >= competitive", True), (0.62, "grade == SOTA", True), (0.62, "grade == state of the art", True),
])
def test_grade_gate_verdicts(acc, expr, passed):
    item, = check_gates(result(acc), [expr]).items
    assert item.passed is passed and item.kind == "grade" and item.actual == pytest.approx(acc)


def test_grade_gate_margin_and_noise():
    item, = check_gates(result(0.561), ["grade[linf:8/255] >= strong"]).items
    assert item.margin == pytest.approx(0.011) and not item.noisy and "strong: 56.1%" in item.message
    with pytest.warns(Warning):
        noisy, = check_gates(result(0.561, half=0.031), ["grade[linf:8/255] >= strong"]).items
    assert noisy.passed and noisy.noisy


def test_grade_gate_fails_on_an_upper_bound_a_masked_model_or_a_low_clean_accuracy():
    skipped = {"name": None, "reference": False, "reasons": ["autoattack skipped"]}
    for r in (result(0.70, protocol=skipped, upper_bound=True), result(0.70, trusted=False),
              result(0.70, clean=0.75)):
        item, = check_gates(r, ["grade[linf:8/255] >= competitive"]).items
        assert not item.passed


@pytest.mark.parametrize("text, message", [
    ("grade[linf:8/255] >= great", "unknown grade 'great'"), ("grade[linf:8/255] => strong", "expected a grade gate"),
])
def test_grade_gate_parse_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_gate(text)


def test_parse_grade_gate():
    g = parse_gate("grade[Linf:8/255] >= State of the art")
    assert isinstance(g, GradeGate) and (g.key, g.op, g.grade) == ("linf:8/255", ">=", "state-of-the-art")


def test_grade_gate_config_errors_at_check_time():
    with pytest.raises(ConfigError, match="need a profile"):
        check_gates(result(0.6, profile=None), ["grade[linf:8/255] >= strong"])
    with pytest.raises(ConfigError, match="no grades for linf:0.1"):
        check_gates(result(0.6, threat="linf:0.1"), ["grade[linf:0.1] >= strong"])


# ---------------------------------------------------------------- `advkit gate` exit codes
@pytest.fixture
def graded_file(tmp_path):
    path = tmp_path / "result.json"
    path.write_text(json.dumps(result(0.561)))
    return path


@pytest.mark.parametrize("expr, code", [
    ("grade[linf:8/255] >= strong", 0), ("grade[linf:8/255] >= state-of-the-art", 1),
    ("grade[linf:8/255] >= superb", 2), ("grade[l2:0.5] >= strong", 2),
])
def test_gate_command_exit_codes(graded_file, tmp_path, expr, code):
    from advkit.cli.main import main

    argv = ["gate", str(graded_file), "--require", expr, "--baseline", "none", "--db", str(tmp_path / "h.db")]
    assert main(argv) == code
