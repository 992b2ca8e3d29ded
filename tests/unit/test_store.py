"""The history database: WAL, runs/metrics/samples, queries, resume lookup, run directories.

The store tests that take ``history_db`` run against both back ends: SQLite and a PostgreSQL server
started by the test session (tests/support/pgserver.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from advkit.errors import StoreError
from advkit.results import Store, load_run_dir, write_run_dir
from advkit.results import records as rec


def _result(clean, robust, n=100):
    return {"schema_version": 1, "n": n, "clean": {"accuracy": clean, "ci": [clean - 0.05, clean + 0.02]},
            "threats": {"linf:0.3": {"robust_accuracy": robust, "ci": [robust - 0.1, robust + 0.1],
                                     "attacks": {"pgd": {"robust_accuracy": robust + 0.1, "ci": [0, 1]}}}},
            "timings": {"clean": 0.5}}


def _begin(st, model="m", spec_hash="s1", model_hash="h1"):
    return st.begin_run(model=model, model_ref=f"zoo:{model}", model_hash=model_hash, spec_hash=spec_hash, seed=0,
                        spec={"n": 100}, versions={"torch": "x"}, git_commit=None)


def test_wal_mode_and_busy_timeout(tmp_path):
    with Store(tmp_path / "h.db") as st:
        assert st.journal_mode() == "wal"
        assert st.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000


def test_runs_metrics_and_queries(history_db):
    st = Store(history_db)
    a = _begin(st)
    st.finish_run(a, {**_result(0.98, 0.80), "run_id": a})
    b = _begin(st)
    st.finish_run(b, {**_result(0.97, 0.75), "run_id": b})
    c = _begin(st, spec_hash="s2")
    st.finish_run(c, {**_result(0.99, 0.5), "run_id": c})
    d = _begin(st, model="other")  # still running: never a baseline
    runs = st.list_runs()
    assert [r["run_id"] for r in runs] == [d, c, b, a]
    assert runs[-1]["robust_accuracy"] == {"linf:0.3": 0.80} and runs[-1]["clean_accuracy"] == 0.98
    assert [r["run_id"] for r in st.list_runs(model="m", limit=2)] == [c, b]
    assert st.latest("m")["run_id"] == c
    assert st.latest("m", "s1")["run_id"] == b
    assert st.latest("m", "s1", exclude=b)["run_id"] == a
    assert st.latest("other") is None
    assert st.metrics(a)["robust_accuracy[linf:0.3]"] == pytest.approx((0.8, 0.7, 0.9))
    assert st.metrics(a)["attack_accuracy[linf:0.3][pgd]"][0] == pytest.approx(0.9)
    assert st.resolve("latest") == c and st.resolve(str(a)) == a and st.resolve(f"#{b}") == b
    for bad in ("999", "yesterday"):
        with pytest.raises(StoreError):
            st.resolve(bad)
    with pytest.raises(StoreError, match="no result yet"):
        st.load_result(d)
    assert st.load_result(a)["clean"]["accuracy"] == 0.98


def test_samples_and_resume_lookup(history_db):
    st = Store(history_db)
    run = _begin(st)
    payload = {"success": np.array([True, False]), "pred": np.array([3, 4]), "by": np.array(["pgd", ""]),
               "_adv": np.zeros((1, 1, 2, 2), np.float32)}
    st.save_batch(run, "linf:0.3/pgd", 0, payload)
    got = st.load_batch(run, "linf:0.3/pgd", 0)
    assert set(got) == set(payload) and all((got[k] == payload[k]).all() for k in payload)
    assert st.load_batch(run, "linf:0.3/pgd", 1) is None
    row = st.find_resumable("s1")
    assert row["run_id"] == run and row["model_hash"] == "h1"  # identity columns for the caller to compare
    assert st.find_resumable("other-spec") is None
    st.set_status(run, "failed")
    assert st.find_resumable("s1")["run_id"] == run
    st.finish_run(run, _result(0.9, 0.1))
    assert st.find_resumable("s1") is None
    assert st.load_samples(run)["linf:0.3/pgd"][0]["pred"].tolist() == [3, 4]


def test_records_worst_case_and_attribution():
    r = {"clean_correct": np.array([True, True, True, False]),
         "t/fgsm/success": np.array([False, True, False, True]),
         "t/pgd/success": np.array([False, True, True, True])}
    robust, by = rec.worst_case(r, "t", ["fgsm", "pgd"])
    assert robust.tolist() == [True, False, False, False]
    assert by.tolist() == ["", "fgsm", "pgd", "clean"]
    assert rec.attribution(by) == {"fgsm": 1, "pgd": 1, "clean": 1}
    assert rec.unpack(rec.pack(r))["t/pgd/success"].tolist() == r["t/pgd/success"].tolist()


def test_run_directory_round_trip(tmp_path):
    result = {**_result(0.9, float("nan")), "schema_version": 1}
    samples = {"index": np.arange(3), "linf:0.3/broken_by": np.array(["pgd", "", "clean"], dtype=object),
               "gallery_threat": np.asarray("linf:0.3")}
    write_run_dir(tmp_path / "run", result, samples)
    back, s = load_run_dir(tmp_path / "run")
    assert back["threats"]["linf:0.3"]["robust_accuracy"] is None  # NaN → null, valid JSON
    assert json.loads((tmp_path / "run" / "result.json").read_text())["n"] == 100
    assert s["linf:0.3/broken_by"].tolist() == ["pgd", "", "clean"] and str(s["gallery_threat"]) == "linf:0.3"
    assert load_run_dir(tmp_path / "run" / "result.json")[0]["n"] == 100
    with pytest.raises(StoreError, match="no result.json"):
        load_run_dir(tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "result.json").write_text('{"schema_version": 7}')
    with pytest.raises(StoreError, match="schema_version"):
        load_run_dir(tmp_path / "bad")
