"""Markdown, HTML and plots rendered from a realistic result.json dict (the pipeline's contract).

``make_result`` / ``make_samples`` / ``write_run`` are also used by the integration tests of the
report, history and gate commands.
"""
from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from advkit.report import accuracy_ci, clopper_pearson, curve, per_class, threats
from advkit.report import history_plots, plots
from advkit.report.dashboard import render_dashboard
from advkit.report.html import render_html
from advkit.report.markdown import render_markdown

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert('x')</script>"


def _per_class(accs):
    return [{"class": i, "accuracy": a, "n": 20} for i, a in enumerate(accs)]


def make_result(*, model_name="mnist5k-pgdat", clean=0.985, robust=0.81, n=200, run_id=None, seed=0,
                created="2026-11-25T20:00:00+00:00", spec_hash="spec-a", certify=False, gates=None) -> dict:
    """A result.json dict shaped like advkit.results.io documents it (schema_version 1)."""
    fgsm, pgd = min(clean, robust + 0.1), min(clean, robust + 0.04)
    k = lambda acc: int(round(acc * n))  # noqa: E731
    linf = {
        "robust_accuracy": robust, "ci": list(clopper_pearson(k(robust), n)), "n": n, "upper_bound": False,
        "protocol": {"name": "autoattack-standard", "reference": True, "reasons": []},
        "attacks": {
            "fgsm": {"robust_accuracy": fgsm, "seconds": 0.4, "model_calls": n, "gradient_calls": n,
                     "config": {"name": "fgsm", "norm": "linf", "eps": 0.3, "seed": seed, "advkit": "0.1.0"}},
            "pgd": {"robust_accuracy": pgd, "seconds": 6.1, "model_calls": 20 * 5 * n,
                    "config": {"norm": "linf", "eps": 0.3, "steps": 20, "step_size": 0.0375, "restarts": 5}},
            "autoattack": {"robust_accuracy": robust, "seconds": 40.2, "model_calls": 123456,
                           "config": {"version": "standard", "attacks": ["apgd-ce", "apgd-t", "fab-t", "square"]}},
        },
        "broken_by": {"clean": k(1 - clean), "fgsm": k(clean - fgsm), "pgd": k(fgsm - pgd),
                      "autoattack": k(pgd - robust)},
        "per_class": _per_class([robust + 0.1] * 8 + [robust - 0.4, robust - 0.1]),
        "classes_below_minimum": [8],
        "curve": {"eps": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "attacks": ["apgd-ce", "apgd-t"],
                  "robust_accuracy": [clean, 0.95, 0.9, robust + 0.01, 0.4, 0.1, 0.0], "monotone": True},
    }
    l2 = {"robust_accuracy": robust - 0.2, "n": n,
          "protocol": {"name": "autoattack-standard", "reference": True, "reasons": []},
          "attacks": {"pgd": {"robust_accuracy": robust - 0.15, "config": {"norm": "l2", "eps": 2.0}},
                      "autoattack": {"robust_accuracy": robust - 0.2, "config": {"version": "standard"}}},
          "per_class": _per_class([robust - 0.2] * 10)}
    result = {
        "schema_version": 1, "advkit_version": "0.1.0", "run_id": run_id, "created": created,
        "status": "complete", "model": "zoo:" + model_name, "model_name": model_name, "model_hash": "ab" * 32,
        "data": "mnist5k", "split": "test", "n": n, "seed": seed, "spec_hash": spec_hash,
        "spec": {"stages": {"per_class": {"min_accuracy": 0.5}}},
        "environment": {"python": "3.11", "torch": "2.13", "numpy": "2.1", "advkit": "0.1.0", "git_commit": "abc123"},
        "clean": {"accuracy": clean, "ci": list(clopper_pearson(k(clean), n)), "n": n,
                  "per_class": _per_class([clean] * 10), "classes": [str(i) for i in range(10)]},
        "threats": {"linf:0.3": linf, "l2:2.0": l2},
        "robust_accuracy": {"linf:0.3": robust, "l2:2.0": robust - 0.2},
        "findings": [
            {"code": "randomized-model", "severity": "warning", "message": "two forward passes differ " + EVIL},
            {"code": "fgsm-weak", "severity": "info", "message": "FGSM accuracy is above PGD, as expected"},
        ],
        "gates": gates or {"passed": True, "items": []},
    }
    if certify:
        result["certify"] = {"sigma": 0.25, "certified_accuracy": {"0.0": 0.97, "0.25": 0.9, "0.5": 0.71,
                                                                   "0.75": 0.4, "1.0": 0.0}}
    return result


def make_samples(k: int = 6, size: int = 28, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    clean = np.zeros((k, 1, size, size), np.float32)
    clean[:, :, size // 4: 3 * size // 4, size // 2 - 2: size // 2 + 2] = 1.0  # a "1" stroke
    adv = np.clip(clean + rng.choice([-0.3, 0.3], size=clean.shape).astype(np.float32), 0, 1)
    return {"gallery_clean": clean, "gallery_adv": adv, "gallery_label": np.arange(k) % 10,
            "gallery_clean_pred": np.arange(k) % 10, "gallery_adv_pred": (np.arange(k) + 3) % 10,
            "gallery_clean_conf": np.full(k, 0.99), "gallery_adv_conf": np.full(k, 0.7),
            "gallery_threat": np.array("linf:0.3"), "index": np.arange(200),
            "clean_correct": np.ones(200, bool)}


def write_run(directory: Path, result: dict, samples: dict | None = None) -> Path:
    """A run directory (result.json + samples.npz) as the pipeline writes it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "result.json").write_text(json.dumps(result, indent=1))
    np.savez_compressed(directory / "samples.npz", **(samples if samples is not None else make_samples()))
    return directory


class _Imgs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs, self.tags = [], set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])


# ---------------------------------------------------------------- accessors


def test_accessors_read_the_contract():
    r = make_result()
    assert list(threats(r)) == ["linf:0.3", "l2:2.0"]
    assert list(threats({"Linf:8/255": {}, "clean": {}, "n": 3})) == ["linf:8/255"]  # top-level threat keys
    eps, acc, method = curve(r, "linf:0.3")
    assert eps[0] == 0.0 and acc[-1] == 0.0 and method == "apgd-ce + apgd-t"
    pc = per_class(r["threats"]["linf:0.3"], ["zero", "one", "two", "3", "4", "5", "6", "7", "8", "9"])
    assert pc[0][0] == "zero" and pc[8][1] == pytest.approx(0.41)
    lo, hi = accuracy_ci(0.5, 100)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(0.2, abs=0.02)  # ~±1.96·sqrt(.25/100)
    assert accuracy_ci({"accuracy": 0.9, "ci": [0.1, 0.2]}, 10) == (0.1, 0.2)


def test_clopper_pearson_matches_statsmodels():
    sm = pytest.importorskip("statsmodels.stats.proportion")
    for k, n in [(0, 50), (17, 50), (50, 50), (812, 1000)]:
        assert clopper_pearson(k, n) == pytest.approx(sm.proportion_confint(k, n, 0.05, "beta"), abs=1e-9)


# ---------------------------------------------------------------- markdown


def test_markdown_has_table_findings_and_gates():
    r = make_result(gates={"passed": False, "items": [
        {"name": "robust_accuracy[linf:0.3]", "passed": False, "noisy": True,
         "message": "expected robust_accuracy[linf:0.3] >= 0.850, got 0.810 (margin \u22120.040)"}]})
    md = render_markdown(r)
    assert "| threat | clean | FGSM | PGD | AutoAttack | robust (worst case) |" in md
    row = next(line for line in md.splitlines() if line.startswith("| `linf:0.3`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1].startswith("98.5%") and cells[2].startswith("91.0%") and cells[3].startswith("85.0%")
    assert cells[4].startswith("81.0%") and cells[5].startswith("**81.0%")
    lo, hi = r["threats"]["linf:0.3"]["ci"]
    assert f"({100 * lo:.1f}\u2013{100 * hi:.1f})" in cells[5]
    l2 = next(line for line in md.splitlines() if line.startswith("| `l2:2"))
    assert "| \u2014 |" in l2  # no FGSM for l2
    assert "### Findings" in md and "`randomized-model`" in md and "*fix:*" in md
    assert "### Gates: FAILED" in md and "margin \u22120.040" in md and "within noise" in md
    assert "<script>" not in md and "&lt;script&gt;" in md


def test_markdown_certify_and_no_findings():
    r = make_result(certify=True)
    r["findings"] = []
    md = render_markdown(r)
    assert "Certified accuracy" in md and "| certified | 97.0% | 90.0% | 71.0% | 40.0% | 0.0% |" in md
    assert "No findings" in md and "### Gates" not in md


# ---------------------------------------------------------------- plots


@pytest.mark.parametrize("fn", [
    lambda r, s: plots.robustness_curve(r), lambda r, s: plots.per_class_bars(r, "linf:0.3", 0.5),
    lambda r, s: plots.attack_contribution(r), lambda r, s: plots.gallery(s),
    lambda r, s: plots.certified_curve(r),
    lambda r, s: history_plots.trend([{"model": "m", "created": "2026-01-0%d" % i, "clean_accuracy": 0.9,
                               "robust_accuracy": {"linf:0.3": 0.1 * i}} for i in range(1, 4)]),
    lambda r, s: history_plots.tradeoff_scatter([("a", 0.99, 0.1), ("b", 0.95, 0.8)], threat="linf:0.3", n=200),
])
def test_plots_return_png(fn):
    png = fn(make_result(certify=True), make_samples())
    assert png[:8] == PNG_MAGIC and len(png) > 2000


def test_plots_return_none_without_data():
    r = make_result()
    assert plots.certified_curve(r) is None and plots.gallery({}) is None and history_plots.trend([]) is None


def test_contribution_counts_exact_and_estimated():
    r = make_result(n=200, clean=0.985, robust=0.81)
    segs, exact = plots.contribution_counts(r, "linf:0.3")
    assert exact and dict(segs) == {"misclassified": 3, "fgsm": 15, "pgd": 12, "autoattack": 8, "robust": 162}
    assert sum(k for _, k in segs) == 200
    del r["threats"]["linf:0.3"]["broken_by"]
    segs, exact = plots.contribution_counts(r, "linf:0.3")
    assert not exact and sum(k for _, k in segs) == 200 and dict(segs)["pgd"] == 12


# ---------------------------------------------------------------- html


def test_html_is_self_contained_with_all_sections(tmp_path):
    r = make_result(certify=True, gates={"passed": True, "items": [
        {"name": "clean_accuracy", "expected": ">= 0.900", "actual": 0.985, "margin": 0.085, "passed": True,
         "message": "ok", "noisy": False}]})
    r["model_name"] = "net" + EVIL
    out = tmp_path / "report.html"
    page = render_html(r, make_samples(), out)
    assert out.read_text() == page
    for sid in ("summary", "curve", "per-class", "contribution", "gallery", "certify", "findings", "gates", "config"):
        assert f'id="{sid}"' in page, sid
    p = _Imgs()
    p.feed(page)
    assert len(p.srcs) == 6  # curve, per-class for each of 2 threats, contribution, gallery, certified
    for src in p.srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG_MAGIC
    assert "script" not in p.tags and "link" not in p.tags
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert EVIL not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    # exact attack configuration, findings' cause and remedy from the catalogue, flagged classes
    assert "steps=20" in page and "step_size=0.0375" in page and "restarts=5" in page and "torch 2.13" in page
    assert "Remedy:" in page and "EOT" in page
    assert "Classes under the 50% minimum: <b>8 (41.0%)</b>" in page


def test_html_certify_section_from_the_smoothing_stage():
    r = make_result(certify=True)
    r["threats"] = {}
    r["certify"].update({"n0": 100, "n": 1000, "alpha": 0.001, "count": 200, "average_radius": 0.61,
                         "abstain_rate": 0.05, "curve": {"radius": [0.0, 0.5, 1.0], "certified_accuracy": [0.97, 0.7, 0.0]}})
    page = render_html(r, None)
    assert 'id="certify"' in page and "average certified radius = 0.610" in page and "abstained = 5.0%" in page
    assert "\u03b1 = 0.001" in page and page.count("data:image/png;base64,") == 1  # the certified-accuracy curve only


def test_html_without_samples_or_threats():
    r = make_result()
    r["threats"], r["findings"] = {}, []
    page = render_html(r, None)
    assert 'id="gallery"' not in page and "No findings" in page and "No gates were checked" in page


class _FakeStore:
    def __init__(self, runs):
        self.runs = runs

    def list_runs(self, model=None, limit=None):
        return [r for r in self.runs if model in (None, r["model"])][:limit]


def test_dashboard_from_store(tmp_path):
    runs = [{"run_id": i, "created": f"2026-11-2{i}T10:00:00+00:00", "model": m, "model_hash": "h" * 64,
             "git_commit": None, "status": "complete", "clean_accuracy": 0.9 + 0.01 * i,
             "robust_accuracy": {"linf:0.3": 0.5 + 0.05 * i}} for i, m in enumerate(["a", "a", "b" + EVIL])]
    page = render_dashboard(_FakeStore(runs), tmp_path / "d.html")
    assert (tmp_path / "d.html").exists() and page.count("<tr>") == 4 and "60.0%" in page
    assert EVIL not in page and page.count("data:image/png;base64,") == 1
