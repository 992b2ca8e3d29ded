"""The history store's two back ends: schema migrations, credentials, transactions, clear errors."""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from advkit.errors import ConfigError, StoreError
from advkit.results import Store
from advkit.results.backends import display
from advkit.results.schema import MIGRATIONS, SCHEMA_VERSION

# The schema that advkit wrote before schema versioning (main at 3126d0e): a "v1" history file.
V1_SCHEMA = """
CREATE TABLE runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL, finished TEXT,
    model TEXT NOT NULL, model_ref TEXT, model_hash TEXT, spec_hash TEXT NOT NULL, git_commit TEXT,
    seed INTEGER, status TEXT NOT NULL, versions TEXT, timings TEXT, spec TEXT, result TEXT,
    clean_accuracy REAL);
CREATE INDEX runs_model ON runs(model, spec_hash, status);
CREATE TABLE metrics (
    run_id INTEGER NOT NULL REFERENCES runs(run_id), name TEXT NOT NULL, value REAL, lo REAL, hi REAL,
    PRIMARY KEY (run_id, name));
CREATE TABLE samples (
    run_id INTEGER NOT NULL REFERENCES runs(run_id), stage TEXT NOT NULL, batch INTEGER NOT NULL,
    payload BLOB NOT NULL, seconds REAL, PRIMARY KEY (run_id, stage, batch));
"""


def _v1_file(path, runs=3):
    from advkit.results import records as rec

    c = sqlite3.connect(path)
    c.executescript(V1_SCHEMA)
    for i in range(1, runs + 1):
        result = {"run_id": i, "clean": {"accuracy": 0.9 + i / 100, "ci": [0.8, 0.95]},
                  "threats": {"linf:0.3": {"robust_accuracy": 0.1 * i, "ci": [0.0, 0.5]}}}
        c.execute("INSERT INTO runs (created, finished, model, model_ref, model_hash, spec_hash, seed, status, "
                  "result, clean_accuracy) VALUES ('2026-11-01', '2026-11-01', 'm', 'zoo:m', 'h', 's', 0, "
                  "'complete', ?, ?)", (json.dumps(result), result["clean"]["accuracy"]))
        c.execute("INSERT INTO metrics VALUES (?, 'robust_accuracy[linf:0.3]', ?, 0, 0.5)", (i, 0.1 * i))
        c.execute("INSERT INTO samples VALUES (?, 'clean', 0, ?, 0.1)", (i, rec.pack({"pred": np.arange(i)})))
    c.commit()
    c.close()


def test_a_v1_sqlite_history_upgrades_in_place_and_keeps_every_run(tmp_path):
    db = tmp_path / "v1.db"
    _v1_file(db, runs=3)
    with Store(db) as st:
        assert st.schema_version == 1  # found before upgrading
        runs = st.list_runs()
        assert [r["run_id"] for r in runs] == [3, 2, 1]
        assert [r["robust_accuracy"]["linf:0.3"] for r in runs] == pytest.approx([0.3, 0.2, 0.1])
        assert st.load_samples(2)["clean"][0]["pred"].tolist() == [0, 1]
        assert st.load_result(1)["clean"]["accuracy"] == pytest.approx(0.91)
        new = st.begin_run(model="m", model_ref="zoo:m", model_hash="h", spec_hash="s", seed=0, spec={},
                           versions={}, git_commit=None)
        assert new == 4
        cols = {r[1] for r in st.conn.execute("PRAGMA table_info(runs)").fetchall()}
        assert {"data_hash", "code_version"} <= cols
    with Store(db) as st:  # reopening finds the current version and changes nothing
        assert st.schema_version == SCHEMA_VERSION
        versions = [r[0] for r in st.conn.execute("SELECT version FROM advkit_schema ORDER BY version")]
        assert versions == [m[0] for m in MIGRATIONS]


def test_the_same_migrations_build_both_back_ends(history_db):
    with Store(history_db) as st:
        assert st.schema_version == 0
        versions = [r[0] for r in st.conn.execute("SELECT version FROM advkit_schema ORDER BY version").fetchall()]
        assert versions == [m[0] for m in MIGRATIONS]
        run = st.begin_run(model="m", model_ref="r", model_hash="h", spec_hash="s", seed=2 ** 40, spec={"a": 1},
                           versions={}, git_commit=None)
        st.save_batch(run, "clean", 0, {"x": np.arange(3)})
        st.save_batch(run, "clean", 0, {"x": np.arange(4)})  # the upsert replaces, on both back ends
        assert st.load_batch(run, "clean", 0)["x"].tolist() == [0, 1, 2, 3]
        assert st.count_batches(run) == 1
    with Store(history_db) as st:
        assert st.schema_version == SCHEMA_VERSION


def test_a_newer_schema_is_refused_not_damaged(tmp_path):
    db = tmp_path / "future.db"
    Store(db).close()
    c = sqlite3.connect(db)
    c.execute("INSERT INTO advkit_schema VALUES (?, 'later')", (SCHEMA_VERSION + 1,))
    c.commit()
    c.close()
    with pytest.raises(StoreError, match="upgrade advkit"):
        Store(db)


def test_a_failed_write_leaves_no_half_written_run(history_db, monkeypatch):
    with Store(history_db) as st:
        run = st.begin_run(model="m", model_ref="r", model_hash="h", spec_hash="s", seed=0, spec={},
                           versions={}, git_commit=None)

        def dies(*a, **k):  # the process "dies" after the run row was updated, before the metrics land
            raise KeyboardInterrupt

        monkeypatch.setattr(st.conn, "executemany", dies)
        with pytest.raises(KeyboardInterrupt):
            st.finish_run(run, {"run_id": run, "clean": {"accuracy": 0.5, "ci": [0.4, 0.6]}, "threats": {}})
        monkeypatch.undo()
        assert st.list_runs()[0]["status"] == "running"  # the UPDATE was rolled back with the rest
        with pytest.raises(StoreError, match="no result yet"):
            st.load_result(run)
        assert st.metrics(run) == {}


def test_password_masked_in_every_display():
    url = "postgresql://ci:s3cr%40t@db.example:5432/hist?sslmode=require&password=other"
    shown = display(url)
    assert "s3cr" not in shown and "other" not in shown
    assert shown == "postgresql://ci:***@db.example:5432/hist?sslmode=require&password=***"
    assert display("runs/advkit.db") == "runs/advkit.db"
    assert display("postgresql://ci@db/hist") == "postgresql://ci@db/hist"


def test_unknown_scheme_and_unreachable_server_are_clear_errors(monkeypatch):
    with pytest.raises(ConfigError, match="postgresql:// URL"):
        Store("mysql://u:pw@h/db")
    pytest.importorskip("psycopg")
    with pytest.raises(StoreError) as e:
        Store("postgresql://u:hunter2@/nodb?host=/nonexistent-advkit-socket-dir&port=1")
    assert "hunter2" not in str(e.value) and "***" in str(e.value)


def test_without_psycopg_the_error_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "psycopg":
            raise ImportError("no psycopg")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ConfigError, match=r"advkit\[postgres\]"):
        Store("postgresql://u@h/db")
