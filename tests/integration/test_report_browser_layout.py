"""The report and the dashboard in headless Chromium with two threats, an empty class and a certification
ceiling (issue 14): every figure decodes, no two figures overlap, nothing runs off the page, and the
page says what the figures cannot (no samples, not certifiable at this n).  The legends inside each
figure are checked on matplotlib's rendered layout in tests/unit/test_plots_layout.py."""
from __future__ import annotations

import html
import importlib.util
import json
import re
from pathlib import Path

import pytest

from advkit.report.dashboard import render_dashboard
from advkit.report.html import render_html


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


browser = _load("_report_browser", Path(__file__).parent / "test_report_browser.py")
layout = _load("_plots_layout", Path(__file__).parents[1] / "unit" / "test_plots_layout.py")
pytestmark = pytest.mark.skipif(browser.CHROMIUM is None, reason="Debian's chromium is not installed "
                                "(apt-get install -y chromium); the browser check needs it")

RECTS = """<script>
window.addEventListener('load', function () {
  var r = Array.prototype.map.call(document.images, function (i) {
    var b = i.getBoundingClientRect();
    return [i.alt, i.complete, i.naturalWidth, b.left, b.top + window.scrollY, b.right, b.bottom + window.scrollY]; });
  document.title = 'RECTS' + JSON.stringify({imgs: r, scroll: document.documentElement.scrollWidth,
    inner: window.innerWidth, text: document.body.innerText});
});
</script>"""


def _layout(tmp_path: Path, page: str, width: int) -> dict:
    probe = tmp_path / f"probe{width}.html"
    probe.write_text(page.replace("</body>", RECTS + "</body>"), encoding="utf-8")
    flags = [f for f in browser.FLAGS if not f.startswith("--window-size")] + [f"--window-size={width},900"]
    import subprocess
    proc = subprocess.run([browser.CHROMIUM, *flags, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                           probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r"<title>RECTS(.*?)</title>", proc.stdout, re.S)
    assert m, proc.stdout[:500]
    return json.loads(html.unescape(m.group(1)))


def _disjoint(rects) -> None:
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            overlap = a[3] < b[5] - 1 and b[3] < a[5] - 1 and a[4] < b[6] - 1 and b[4] < a[6] - 1
            assert not overlap, (a[0], b[0])


@pytest.mark.parametrize("width", [1200, 700])
def test_report_with_two_threats_and_an_empty_class(tmp_path, width):
    result = layout.two_threats_empty_class()
    result["certify"] = {"sigma": 0.25, "n0": 100, "n": 2000, "alpha": 0.001, "count": 200,
                         "radii": [0.25, 0.5, 0.75, 1.0], "average_radius": 0.41, "abstain_rate": 0.02,
                         "certified_accuracy": {"0.25": 0.93, "0.5": 0.8, "0.75": 0.0, "1": 0.0}}
    page = render_html(result, layout.fx.make_samples(8))
    info = _layout(tmp_path, page, width)
    imgs = info["imgs"]
    alts = [i[0] for i in imgs]
    assert sum(a.startswith("per-class") for a in alts) == 2 and "robustness curve" in alts
    for alt, complete, natural, *_ in imgs:
        assert complete and natural > 200, alt
    _disjoint(imgs)
    assert all(i[5] <= info["inner"] + 1 for i in imgs)  # every figure inside the viewport
    assert info["scroll"] <= info["inner"]
    assert "not certifiable at this n" in info["text"] and "0.675" in info["text"]


def test_dashboard_mixing_specs(tmp_path):
    class Store:
        def list_runs(self, model=None, limit=None):
            return [{"run_id": i, "created": f"2026-11-2{i}T09:00:00+00:00", "model": "m", "status": "complete",
                     "spec_hash": "ab"[i % 2] * 8, "clean_accuracy": 0.98,
                     "robust_accuracy": {"linf:0.3": 0.5 + 0.1 * i}} for i in range(1, 5)]

    info = _layout(tmp_path, render_dashboard(Store()), 1200)
    assert len(info["imgs"]) == 1 and info["imgs"][0][2] > 200 and info["scroll"] <= info["inner"]
