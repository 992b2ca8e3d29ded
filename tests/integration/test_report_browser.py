"""The HTML report and dashboard in a real headless browser (Debian's ``chromium``).

The page itself has no scripts.  The test loads a copy with a small probe script appended that
writes, once the page has loaded, each image's decoded size and the page's layout width into the
document title; ``--dump-dom`` returns the DOM after load, and the browser's console log (stderr)
must show no failed resource or script error.  A screenshot is taken too.
"""
from __future__ import annotations

import html
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from advkit.report.dashboard import render_dashboard
from advkit.report.html import render_html

_spec = importlib.util.spec_from_file_location("_report_fixtures", Path(__file__).parents[1] / "unit" / "test_report.py")
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                "(apt-get install -y chromium); the browser check needs it")

PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.map.call(document.images, function (i) {
    return [i.complete, i.naturalWidth, i.naturalHeight, i.alt]; });
  document.title = 'PROBE' + JSON.stringify({imgs: imgs, scroll: document.documentElement.scrollWidth,
    inner: window.innerWidth, sections: document.querySelectorAll('section').length});
});
</script>"""
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0", "--window-size=1200,900",
         "--virtual-time-budget=5000"]
# Any console message (the page and the probe log nothing), failed loads and blocked resources.
CONSOLE_ERROR = re.compile(r":CONSOLE|Failed to load resource|Uncaught|net::ERR_|Not allowed to load|Refused to", re.I)


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=90)


def _probe(tmp_path: Path, page: str) -> dict:
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    proc = _chromium(tmp_path, "--dump-dom", probe.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if CONSOLE_ERROR.search(line)]
    assert not errors, errors
    m = re.search(r"<title>PROBE(.*?)</title>", proc.stdout, re.S)
    assert m, "the page did not finish loading: " + proc.stdout[:500]
    return json.loads(html.unescape(m.group(1)))


def test_report_loads_and_shows_every_plot(tmp_path):
    result = fx.make_result(certify=True, gates={"passed": False, "items": [
        {"name": "robust_accuracy[linf:0.3]", "expected": ">= 0.850", "actual": 0.81, "margin": -0.04,
         "passed": False, "noisy": True, "message": "expected ..., got 0.810 (margin \u22120.040)"}]})
    page = render_html(result, fx.make_samples(8), tmp_path / "report.html")
    info = _probe(tmp_path, page)
    alts = [alt for *_, alt in info["imgs"]]
    assert {"robustness curve", "contribution", "gallery", "certified accuracy"} <= set(alts)
    assert sum(a.startswith("per-class") for a in alts) == 2
    for complete, w, h, alt in info["imgs"]:
        assert complete and w > 200 and h > 100, (alt, w, h)  # decoded, with a real size
    assert info["sections"] == 9 and info["scroll"] <= info["inner"]  # no horizontal overflow at 1200 px
    shot = tmp_path / "report.png"
    proc = _chromium(tmp_path, "--hide-scrollbars", f"--screenshot={shot}", (tmp_path / "report.html").as_uri())
    assert proc.returncode == 0 and shot.read_bytes()[:8] == fx.PNG_MAGIC and shot.stat().st_size > 20_000


def test_dashboard_loads_in_the_browser(tmp_path):
    class Store:
        def list_runs(self, model=None, limit=None):
            return [{"run_id": i, "created": f"2026-11-2{i}T09:00:00+00:00", "model": "m", "status": "complete",
                     "clean_accuracy": 0.98, "robust_accuracy": {"linf:0.3": 0.5 + 0.1 * i}} for i in range(4)]

    info = _probe(tmp_path, render_dashboard(Store()))
    assert len(info["imgs"]) == 1 and info["imgs"][0][1] > 200 and info["sections"] == 2
