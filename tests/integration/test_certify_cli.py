"""``advkit certify`` end to end: files, exact CSV header, summary consistency, kill + resume, exit codes."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from advkit.cli.main import main

HEADER = "index,label,prediction,radius,correct,samples,seconds"

FACTORY = '''
import time
import torch
from torch import nn
from sklearn.datasets import load_digits


class Centroids(nn.Module):
    """Nearest-centroid linear classifier on 8x8 digits (deterministic, no training)."""

    def __init__(self, delay):
        super().__init__()
        d = load_digits()
        x = torch.tensor(d.images / 16.0, dtype=torch.float32).flatten(1)
        y = torch.tensor(d.target)
        mu = torch.stack([x[y == c].mean(0) for c in range(10)])
        self.register_buffer("w", mu)
        self.register_buffer("b", -0.5 * (mu ** 2).sum(1))
        self.delay = delay

    def forward(self, x):
        if self.delay:
            time.sleep(self.delay)
        return x.flatten(1) @ self.w.T + self.b


def factory():
    import os
    return Centroids(float(os.environ.get("CENTROIDS_DELAY", "0")))
'''


@pytest.fixture(scope="module")
def factory(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "centroids.py"
    path.write_text(FACTORY)
    return path


def _args(factory, out, n_images=12, extra=()):
    return ["certify", "--model", f"{factory}:factory", "--data", "digits", "--sigma", "0.25", "--n0", "50",
            "--n", "2000", "--alpha", "0.001", "--radii", "0.1,0.25,0.5", "--n-images", str(n_images),
            "--seed", "3", "--out", str(out), "--batch-size", "500", "--no-progress", *extra]


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_certify_writes_files_and_consistent_summary(factory, tmp_path):
    out = tmp_path / "run"
    assert main(_args(factory, out)) == 0
    text = (out / "samples.csv").read_text()
    assert text.split("\n")[0] == HEADER
    rows = _rows(out / "samples.csv")
    assert [int(r["index"]) for r in rows] == list(range(12))
    summary = json.loads((out / "certify.json").read_text())
    assert summary["count"] == 12 and summary["sigma"] == 0.25 and summary["mode"] == "fixed"
    for r in (0.1, 0.25, 0.5):
        expected = np.mean([int(x["correct"]) == 1 and float(x["radius"]) >= r for x in rows])
        assert summary["certified_accuracy"][f"{r:g}"] == pytest.approx(expected)
    for x in rows:
        if int(x["prediction"]) == -1:
            assert float(x["radius"]) == 0.0 and x["correct"] == "0"
        assert int(x["samples"]) == 2050
    assert summary["certified_accuracy"]["0.1"] > 0.5  # the centroid classifier is decent under noise
    assert (out / "certified_accuracy.png").read_bytes()[:4] == b"\x89PNG"


def test_sequential_flag_and_config_mismatch(factory, tmp_path):
    out = tmp_path / "seq"
    assert main(_args(factory, out, extra=("--sequential", "--json"))) == 0
    summary = json.loads((out / "certify.json").read_text())
    assert summary["mode"] == "sequential" and summary["count"] == 12
    # same directory, different σ: refuse rather than mix runs (usage error)
    args = _args(factory, out, extra=("--sequential",))
    args[args.index("--sigma") + 1] = "0.5"
    assert main(args) == 2
    assert main(_args(factory, tmp_path / "bad", extra=("--radii", "a,b"))) == 2


def test_resume_after_kill_gives_the_uninterrupted_result(factory, tmp_path):
    out, ref = tmp_path / "killed", tmp_path / "ref"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CENTROIDS_DELAY": "0.02"}
    proc = subprocess.Popen([sys.executable, "-m", "advkit", *_args(factory, out, 24)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    csv_path = out / "samples.csv"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if csv_path.exists() and csv_path.read_text().count("\n") >= 4:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(_rows(csv_path))
    assert 3 <= done_before < 24
    with open(csv_path, "a") as fh:  # simulate a row torn by the kill
        fh.write("23,3,3,0.12")
    assert main(_args(factory, out, 24)) == 0
    assert main(_args(factory, ref, 24)) == 0
    resumed, fresh = _rows(csv_path), _rows(ref / "samples.csv")
    assert [int(r["index"]) for r in resumed] == list(range(24))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(resumed) == strip(fresh)
    assert json.loads((out / "certify.json").read_text())["certified_accuracy"] == \
        json.loads((ref / "certify.json").read_text())["certified_accuracy"]
