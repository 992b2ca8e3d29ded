"""``kill -9`` in the middle of an evaluation, then ``--resume``: exactly the uninterrupted result."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from _evalhelpers import comparable, write_inputs, write_spec


def _advkit(*args) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "advkit", "evaluate", *args, "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stored_batches(db) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as c:
            return c.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def _load(out):
    result = json.loads((out / "result.json").read_text())
    with np.load(out / "samples.npz") as z:
        return result, {k: z[k] for k in z.files}


@pytest.mark.slow
def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path, digits_model):
    refs = write_inputs(tmp_path, digits_model)
    spec = write_spec(tmp_path / "spec.toml", refs, n=80, batch_size=4)  # 20 batches per stage
    db = tmp_path / "killed.db"
    proc = _advkit(str(spec), "--db", str(db), "--out", str(tmp_path / "never"))
    deadline = time.time() + 240
    while _stored_batches(db) < 45 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the evaluation finished before it could be killed: " + proc.communicate()[1][-500:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done_before = _stored_batches(db)
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT status FROM runs").fetchall() == [("running",)]
    assert not (tmp_path / "never").exists()

    resumed = _advkit(str(spec), "--db", str(db), "--out", str(tmp_path / "resumed"), "--resume")
    fresh = _advkit(str(spec), "--db", str(tmp_path / "fresh.db"), "--out", str(tmp_path / "fresh"))
    for p in (resumed, fresh):
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]

    r_res, s_res = _load(tmp_path / "resumed")
    r_new, s_new = _load(tmp_path / "fresh")
    assert r_res["resumed_batches"] >= done_before > 0 and r_new["resumed_batches"] == 0
    with sqlite3.connect(db) as c:  # the killed run was continued, not restarted
        assert c.execute("SELECT run_id, status FROM runs").fetchall() == [(r_res["run_id"], "complete")]
    assert comparable(r_res) == comparable(r_new)
    assert set(s_res) == set(s_new)
    for k in s_new:
        np.testing.assert_array_equal(s_res[k], s_new[k], err_msg=k)
    # the runs did attack something: the comparison is not between two empty results
    assert 0 < r_new["threats"]["linf:0.1"]["robust_accuracy"] < r_new["clean"]["accuracy"]
