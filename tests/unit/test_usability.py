"""Issue 14, "a tool people enjoy using": live progress, honest certification numbers, zoo defaults,
ε sanity, no spurious train-mode warning, literal code spans, every adversarial example saved."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import norm
from torch import nn

from advkit import ThreatModel
from advkit.attacks import PGD
from advkit.attacks.restarts import BestOf
from advkit.errors import ConfigError
from advkit.model import Classifier


# ---------------------------------------------------------------- progress
def test_attack_reports_every_iteration_of_one_batch(digits_model, gen):
    clf, x, y = digits_model
    calls = []
    PGD(ThreatModel("linf", 0.02), steps=30)(clf, x[:40], y[:40], generator=gen, batch_size=64,
                                              progress=lambda t, d, n: calls.append((t, d, n)))
    done = [d for _, d, _ in calls]
    assert {t for t, _, _ in calls} == {"pgd"} and {n for *_, n in calls} == {40}
    inside = [d for d in done if 0 < d < 40]
    assert len(set(inside)) >= 10  # the bar moves while the single batch runs (not just 0/1 → 1/1)
    assert done == sorted(done) and done[-1] == 40


def test_restarts_spread_over_the_bar(digits_model, gen):
    clf, x, y = digits_model
    calls = []
    BestOf(PGD(ThreatModel("linf", 0.01), steps=10), restarts=3)(clf, x[:30], y[:30], generator=gen,
                                                                  progress=lambda t, d, n: calls.append(d))
    # 3 restarts × 10 steps: the first restart ends about a third of the way, not at the end
    assert any(5 < d < 15 for d in calls) and calls[-1] == 30


def test_evaluation_stage_progress_moves_inside_a_batch(digits_model):
    from advkit.evaluation import evaluate
    from advkit.evaluation.spec_load import spec_from_dict

    clf, x, y = digits_model
    spec = spec_from_dict({"n": 30, "batch_size": 250, "threats": ["linf:0.05"], "db": None,
                           "stages": {"pgd": {"steps": 10, "restarts": 2}, "autoattack": {"version": "off"},
                                      "curve": {"enabled": False}, "checks": {"enabled": False}}})
    seen: dict[str, list] = {}
    evaluate(spec, model=clf, data=(x[:30], y[:30]), progress=lambda t, d, n: seen.setdefault(t, []).append((d, n)))
    pgd = seen["linf:0.05 pgd"]
    assert len({d for d, _ in pgd if 0 < d < 30}) >= 5  # one batch, yet the stage bar moves
    assert pgd[-1] == (30, 30) and all(n == 30 for _, n in pgd)


def test_progress_bar_renders_percent_and_eta():
    import io

    from rich.console import Console

    from advkit.cli import render

    buf = io.StringIO()
    saved = render.err_console
    render.err_console = Console(file=buf, width=80, force_terminal=False)
    try:
        with render.progress_bar(min_interval=0.0) as cb:
            for d in (0.0, 12.5, 40.0):
                cb("linf:0.3 apgd-ce", d, 40)
    finally:
        render.err_console = saved
    out = buf.getvalue()
    assert "linf:0.3 apgd-ce" in out and "100%" in out and "40/40" in out and "eta" in out


# ---------------------------------------------------------------- certification ceiling
def _cert_summary(n=2000, alpha=0.001, sigma=0.25):
    from advkit.smoothing.stage import summarize

    recs = [{"index": i, "label": 0, "prediction": 0, "radius": 0.6, "correct": 1, "samples": n, "seconds": 0.1}
            for i in range(4)]
    return summarize(recs, radii=(0.25, 0.5, 0.75, 1.0), sigma=sigma, n0=100, n=n, alpha=alpha, mode="fixed")


def test_certify_records_the_largest_certifiable_radius():
    s = _cert_summary()
    expected = 0.25 * norm.ppf(0.001 ** (1 / 2000))
    assert s["max_certifiable_radius"] == pytest.approx(expected, rel=1e-6)
    assert s["max_certifiable_radius"] == pytest.approx(0.675, abs=1e-3)  # the number
    assert s["uncertifiable_radii"] == [0.75, 1.0]


def test_reports_mark_radii_above_the_ceiling():
    from advkit.report.html import render_html
    from advkit.report.markdown import render_markdown

    result = {"model": "m", "data": "d", "n": 4, "threats": {}, "findings": [], "certify": _cert_summary()}
    md = render_markdown(result)
    row = next(line for line in md.splitlines() if line.startswith("| certified"))
    cells = [c.strip() for c in row.split("|")[2:-1]]
    assert cells[:2] == ["100.0%", "100.0%"] and cells[2:] == ["not certifiable at this n"] * 2
    assert "0.675" in md
    page = render_html(result)
    assert page.count("not certifiable at this n") >= 2 and "largest certifiable radius = 0.675" in page


def test_ceiling_recomputed_for_old_results():
    from advkit.report import certify_ceiling

    assert certify_ceiling({"sigma": 0.5, "n": 100_000, "alpha": 0.001}) == pytest.approx(3.81 * 0.5, abs=0.01)


def test_certify_next_to_attack_gets_a_caveat():
    from advkit.evaluation.checks import certify_findings

    found = certify_findings(_cert_summary(), ["l2:1.0", "l2:0.5", "linf:0.3"])
    assert [f.data["threat"] for f in found] == ["l2:1.0", "l2:0.5"]
    assert "0.675" in found[0].message and "by construction" in found[0].message
    assert certify_findings(None, ["l2:1.0"]) == []


def test_certify_in_history(tmp_path):
    from advkit.results.store import Store

    with Store(tmp_path / "h.db") as s:
        rid = s.begin_run(model="m", model_ref="m", model_hash="h", spec_hash="s", seed=0, spec={}, versions={},
                          git_commit=None)
        s.finish_run(rid, {"clean": {"accuracy": 0.9}, "threats": {}, "certify": _cert_summary()})
        run = s.list_runs()[0]
    assert run["certified_accuracy"] == {"0.25": 1.0, "0.5": 1.0}  # nothing stored above the ceiling


# ---------------------------------------------------------------- zoo defaults, ε sanity
def test_zoo_model_brings_its_data_and_threat():
    from advkit.evaluation.spec import EvaluationSpec
    from advkit.evaluation.spec_load import with_model_defaults, with_options

    spec = with_options(EvaluationSpec(), model="zoo:fmnist-standard")
    filled, note = with_model_defaults(spec, set())
    assert filled.data == "fashion-mnist" and [str(t) for t in filled.threats] == ["linf:0.1"]
    assert "fashion-mnist" in note and "linf:0.1" in note
    kept, note = with_model_defaults(with_options(spec, data="mnist5k"), {"data"})
    assert kept.data == "mnist5k" and note is None
    plain, _ = with_model_defaults(with_options(EvaluationSpec(), model="m.py:f"), set())
    assert plain.data == EvaluationSpec().data
    given, _ = with_model_defaults(with_options(spec, threats=("linf:0.05",)), set())
    assert given.data == "fashion-mnist" and [str(t) for t in given.threats] == ["linf:0.05"]  # given wins


@pytest.mark.parametrize("text, hint", [("linf:8", "linf:8/255"), ("linf:1", "linf:1/255"), ("linf:255", "")])
def test_linf_budget_covering_the_box_is_refused(text, hint):
    from advkit.threat import check_budget

    with pytest.raises(ConfigError, match="--force-eps") as e:
        check_budget(ThreatModel.parse(text), (0.0, 1.0))
    assert hint in str(e.value)
    check_budget(ThreatModel.parse(text), (0.0, 1.0), force=True)
    check_budget(ThreatModel.parse("linf:8/255"), (0.0, 1.0))
    check_budget(ThreatModel.parse("l2:8"), (0.0, 1.0))  # L2 8 on an MNIST image is large but meaningful
    check_budget(ThreatModel.parse(text), (0.0, 255.0 * 2))


def test_evaluate_refuses_linf_8(digits_model):
    from advkit.evaluation import evaluate
    from advkit.evaluation.spec_load import spec_from_dict

    clf, x, y = digits_model
    with pytest.raises(ConfigError, match="linf:8/255"):
        evaluate(spec_from_dict({"n": 5, "threats": ["linf:8"], "db": None}), model=clf, data=(x[:5], y[:5]))


# ---------------------------------------------------------------- train mode
FACTORY = """
from torch import nn
def build():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.Dropout(0.1), nn.Linear(32, 10))
"""


def test_fresh_factory_module_and_defend_get_no_train_mode_warning(tmp_path, caplog):
    import logging

    from advkit.defenses import defend
    from advkit.defenses.preprocessing import BitDepth
    from advkit.sources.models import load_model

    (tmp_path / "fresh.py").write_text(FACTORY)
    x = torch.rand(8, 1, 8, 8)
    with caplog.at_level(logging.INFO, logger="advkit.sources.models"):
        clf = load_model(f"{tmp_path / 'fresh.py'}:build")
    assert [r.levelno for r in caplog.records] == [logging.INFO] and "eval mode" in caplog.records[0].getMessage()
    assert not any(f.code == "train-mode" for f in clf.preflight(x, warn=False))
    defended = defend(clf, BitDepth(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not any(f.code == "train-mode" for f in defended.preflight(x))
    # a module the caller left in train mode is still reported
    user = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Dropout(0.5)))
    assert any(f.code == "train-mode" for f in user.preflight(x, warn=False))


# ---------------------------------------------------------------- markdown code spans
def test_code_spans_are_literal():
    from advkit.report.markdown import render_markdown

    md = render_markdown({"model": "cifar_model.py:build", "data": "npz:my_data.npz", "n": 3,
                          "threats": {"linf:8/255": {"robust_accuracy": 0.5, "attacks": {}}},
                          "findings": [{"code": "train-mode", "severity": "warning", "message": "a_b"}]})
    assert "`cifar_model.py:build`" in md and "`npz:my_data.npz`" in md and "`train-mode`" in md
    assert "\\_" not in "".join(md.split("`")[1::2])  # no backslash inside any code span
    assert "a\\_b" in md  # prose outside code is still escaped


# ---------------------------------------------------------------- samples.npz keeps every x_adv
def test_samples_keep_every_adversarial_example(digits_model):
    from advkit.evaluation import evaluate
    from advkit.evaluation.spec_load import spec_from_dict

    clf, x, y = digits_model
    n, eps = 60, 0.15
    spec = spec_from_dict({"n": n, "batch_size": 20, "threats": [f"linf:{eps}"], "db": None,
                           "stages": {"pgd": {"steps": 10, "restarts": 1}, "autoattack": {"version": "off"},
                                      "curve": {"enabled": False}, "checks": {"enabled": False}}})
    res = evaluate(spec, model=clf, data=(x[:n], y[:n]))
    key = f"linf:{eps}"
    xa, found = res.samples[f"{key}/x_adv"], res.samples[f"{key}/x_adv_found"]
    by = res.samples[f"{key}/broken_by"]
    assert xa.shape == (n, *x.shape[1:]) and xa.dtype == np.float32
    attacked = (by != "") & (by != "clean")
    assert found.sum() == attacked.sum() > 3 * 4  # more than the old 4-per-batch gallery rows
    assert np.array_equal(found, attacked)
    xt = torch.from_numpy(xa)
    assert ((xt - x[:n]).abs().flatten(1).amax(1)[torch.from_numpy(found)] <= eps + 1e-6).all()
    pred = clf.predict(xt)
    assert (pred[torch.from_numpy(found)] != y[:n][torch.from_numpy(found)]).all()
    assert torch.equal(xt[torch.from_numpy(~found)], x[:n][torch.from_numpy(~found)])
    assert not math.isnan(float(xa.sum()))


def test_metric_tables_print_percentages():
    from advkit.cli.render import metric_rows

    rows = dict(metric_rows({"val_clean_accuracy": 0.9765, "abstain_rate": 0.02, "loss": 0.31, "epochs": 3,
                             "n": 50}))
    assert rows == {"val_clean_accuracy": "97.7%", "abstain_rate": "2.0%", "loss": "0.31", "epochs": "3", "n": "50"}
