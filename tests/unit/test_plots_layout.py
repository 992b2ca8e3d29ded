"""Report figures read the way a user expects, checked on matplotlib's rendered layout (issue 14).

Two threats: each panel's legend stays clear of the other legends and of the other panels; the PGD and
AutoAttack markers stand apart from the worst-case star; a class without samples says "no samples"; a
threat given as k/255 gets k/255 ticks; the dashboard's x axis is the run id and never joins runs of
different specs.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from advkit.report import history_plots, plots

_spec = importlib.util.spec_from_file_location("_report_fixtures", Path(__file__).parent / "test_report.py")
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)


def two_threats_empty_class() -> dict:
    """Two threats (linf:8/255 and l2:2.0), class 3 without test samples."""
    r = fx.make_result()
    linf = r["threats"].pop("linf:0.3")
    linf["curve"]["eps"] = [i / 255 for i in (0, 2, 4, 6, 8, 10, 12)]
    r["threats"] = {"linf:8/255": linf, **r["threats"]}
    for sec in r["threats"].values():
        sec["per_class"][3] = {"class": 3, "accuracy": None, "n": 0, "ci": [0.0, 1.0]}
    r["robust_accuracy"] = {k: v["robust_accuracy"] for k, v in r["threats"].items()}
    return r


def _boxes(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the Agg canvas the report's PNGs are drawn with
    canvas.draw()
    return canvas.get_renderer()


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_two_threat_legends_do_not_overlap_each_other_or_other_panels():
    fig = plots.robustness_curve_figure(two_threats_empty_class())
    renderer = _boxes(fig)
    axes = fig.axes
    assert len(axes) == 2
    legends = [ax.get_legend().get_window_extent(renderer) for ax in axes]
    assert not _overlap(legends[0], legends[1])
    for i, leg in enumerate(legends):
        for j, ax in enumerate(axes):
            if i != j:
                assert not _overlap(leg, ax.get_tightbbox(renderer)), (i, j)
        assert not _overlap(leg, axes[i].get_window_extent(renderer))  # under its own panel, not on the curve
    fig_box = fig.bbox
    for leg in legends:  # nothing cut off at the figure edge
        assert leg.x0 >= fig_box.x0 - 1 and leg.x1 <= fig_box.x1 + 1 and leg.y0 >= fig_box.y0 - 1


def _marker_centres(ax, renderer) -> dict[str, np.ndarray]:
    out = {}
    for line in ax.get_lines():
        label = line.get_label()
        if line.get_marker() in ("D", "*") and len(line.get_xdata()) == 1:
            xy = line.get_transform().transform((line.get_xdata()[0], line.get_ydata()[0]))
            out[label.split(":")[0]] = (xy, line.get_markersize() * fig_dpi(ax) / 72)
    return out


def fig_dpi(ax) -> float:
    return ax.figure.dpi


def test_attack_markers_are_not_hidden_by_the_worst_case_star():
    r = fx.make_result()  # PGD 85%, AutoAttack 81% = worst case 81%: AutoAttack sits where the star is
    fig = plots.robustness_curve_figure(r)
    renderer = _boxes(fig)
    marks = _marker_centres(fig.axes[0], renderer)
    assert {"pgd", "autoattack", "worst case"} <= set(marks)
    star, star_size = marks["worst case"]
    for name in ("pgd", "autoattack", "fgsm"):
        xy, size = marks[name]
        assert np.hypot(*(xy - star)) > (size + star_size) / 2, name  # the marker discs do not touch


def test_empty_class_says_no_samples_not_zero():
    r = two_threats_empty_class()
    fig = plots.per_class_figure(r, "l2:2.0")
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("no samples") == 1
    robust = [c for c in ax.containers if "robust" in str(c.get_label())][0]
    heights = [p.get_height() for p in robust.patches]
    assert np.isnan(heights[3]) and not np.isnan(heights).all()  # no bar (not a 0% bar) for class 3


def test_eps_axis_in_k_over_255_when_the_threat_was_given_so():
    fig = plots.robustness_curve_figure(two_threats_empty_class())
    _boxes(fig)
    linf, l2 = fig.axes
    labels = [t.get_text() for t in linf.get_xticklabels() if t.get_text()]
    assert labels and all(float(t).is_integer() for t in labels), labels  # 0, 2, 4, ... (in 1/255)
    assert "1/255" in linf.get_xlabel()
    assert "1/255" not in l2.get_xlabel()


def test_dashboard_axis_is_run_id_and_specs_are_not_joined():
    runs = [{"run_id": i, "model": "m", "spec_hash": spec, "created": f"2026-11-2{i}", "clean_accuracy": 0.9,
             "robust_accuracy": {"linf:0.3": acc}}
            for i, spec, acc in [(3, "aaa", 0.5), (5, "bbb", 0.1), (7, "aaa", 0.52), (8, "bbb", 0.12)]]
    fig = history_plots.trend_figure(runs)
    _boxes(fig)
    ax = fig.axes[0]
    robust = [line for line in ax.get_lines() if "linf:0.3" in line.get_label()]
    assert len(robust) == 2  # one line per spec
    for line in robust:
        ys = set(np.round(line.get_ydata(), 2))
        assert ys in ({0.5, 0.52}, {0.1, 0.12})  # never a line through runs of both specs
        assert set(line.get_xdata()) in ({3, 7}, {5, 8})
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert all(float(t).is_integer() for t in ticks)
    assert ax.get_xlabel() == "run id"
