"""Two evaluations writing to one history database at the same time both land intact."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from advkit.results import Store

WRITER = r"""
import sys, numpy as np
from advkit.results import Store
db, tag, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
st = Store(db)
run = st.begin_run(model=tag, model_ref=tag, model_hash="h-" + tag, spec_hash="s", seed=0, spec={}, versions={},
                   git_commit=None)
for b in range(batches):
    st.save_batch(run, "stage", b, {"success": np.arange(50) % (b + 2) == 0, "tag": np.array([tag] * 50)})
st.finish_run(run, {"run_id": run, "n": 50 * batches, "clean": {"accuracy": 0.5, "ci": [0.4, 0.6]}, "threats": {}})
print(run)
"""


def _spawn(*args) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_two_processes_write_runs_and_samples_at_once(tmp_path):
    db = tmp_path / "h.db"
    Store(db).close()
    procs = [_spawn("-c", WRITER, str(db), tag, "150") for tag in ("a", "b")]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    with Store(db) as st:
        runs = {r["model"]: r for r in st.list_runs()}
        assert set(runs) == {"a", "b"} and all(r["status"] == "complete" for r in runs.values())
        for tag, r in runs.items():
            stored = st.load_samples(r["run_id"])["stage"]
            assert len(stored) == 150
            for b, payload in enumerate(sorted(stored, key=lambda p: int(p["success"].sum()), reverse=True)):
                assert set(payload["tag"].tolist()) == {tag}
            sums = sorted(int(p["success"].sum()) for p in stored)
            assert sums == sorted(int((np.arange(50) % (b + 2) == 0).sum()) for b in range(150))
        assert st.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_two_cli_evaluations_share_one_database(tmp_path, digits_model):
    sys.path.insert(0, str(Path(__file__).parent))
    from _evalhelpers import write_inputs, write_spec
    refs = write_inputs(tmp_path, digits_model)
    db = tmp_path / "h.db"
    spec = write_spec(tmp_path / "s.toml", refs, n=20, batch_size=5)
    procs = [_spawn("-m", "advkit", "evaluate", str(spec), "--seed", str(i), "--db", str(db),
                    "--out", str(tmp_path / f"o{i}"), "--quiet") for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    with Store(db) as st:
        runs = st.list_runs()
        assert len(runs) == 2 and {r["status"] for r in runs} == {"complete"}
        assert len({r["spec_hash"] for r in runs}) == 2
        for r in runs:
            res = st.load_result(r["run_id"])
            assert res["n"] == 20 and "linf:0.1" in res["threats"]
            assert st.count_batches(r["run_id"]) >= 4 * 6  # every stage's 4 batches were stored


MANY = r"""
import sys, numpy as np
from advkit.results import Store
db, tag, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Store(db) as st:
    for i in range(runs):
        run = st.begin_run(model=tag, model_ref=tag, model_hash=f"{tag}-{i}", spec_hash="s", seed=i, spec={},
                           versions={}, git_commit=None)
        st.save_batch(run, "clean", 0, {"tag": np.array([tag] * 4), "i": np.array([i] * 4)})
        st.finish_run(run, {"run_id": run, "model": tag, "i": i, "n": 4,
                            "clean": {"accuracy": i / runs, "ci": [0.0, 1.0]}, "threats": {}})
"""


def test_eight_processes_write_fifty_runs_each_into_one_postgresql_history(pg_server):
    url = pg_server.new_database()
    Store(url).close()  # schema created once; the writers also race to open it
    procs = [_spawn("-c", MANY, url, f"w{k}", "50") for k in range(8)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [o[1][-1500:] for o in outs]
    with Store(url) as st:
        runs = st.list_runs()
        assert len(runs) == 400 and all(r["status"] == "complete" for r in runs)
        assert len({r["run_id"] for r in runs}) == 400
        for r in runs:  # nothing mixed: each run's result and samples are its own writer's
            res = st.load_result(r["run_id"])
            assert res["run_id"] == r["run_id"] and res["model"] == r["model"]
            assert r["model_hash"] == f"{r['model']}-{res['i']}"
            batch = st.load_batch(r["run_id"], "clean", 0)
            assert set(batch["tag"].tolist()) == {r["model"]} and set(batch["i"].tolist()) == {res["i"]}
