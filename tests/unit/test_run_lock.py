"""Run writer locks in the history store: one live owner, stale locks (dead pid, old heartbeat) taken over."""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from advkit.errors import RunLockedError
from advkit.results import Store
from advkit.results.locks import LockHolder, RunLock, is_stale, pid_alive


@pytest.fixture
def store(history_db):
    """A store with run 1, on each back end (SQLite, PostgreSQL)."""
    with Store(history_db) as st:
        run = st.begin_run(model="m", model_ref="zoo:m", model_hash="h", spec_hash="s", seed=0, spec={},
                           versions={}, git_commit=None)
        assert run == 1
        yield st


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _plant(store, *, pid, host, age):
    with store._write() as c:
        c.execute("DELETE FROM run_locks WHERE run_id = 1")
        c.execute("INSERT INTO run_locks (run_id, owner, pid, host, heartbeat) VALUES (1, 'other', ?, ?, ?)",
                  (pid, host, time.time() - age))


def test_one_live_owner_at_a_time(store):
    store.acquire_lock(1, owner="a")
    store.acquire_lock(1, owner="a")  # re-entrant for the same owner
    with pytest.raises(RunLockedError, match=r"run 1 is being written by another live process \(pid \d+ on "):
        store.acquire_lock(1, owner="b")  # this very process is alive: not stale
    store.refresh_lock(1, owner="a")
    store.release_lock(1, owner="b")  # not b's: no effect
    assert store.lock_holder(1).owner == "a"
    store.release_lock(1, owner="a")
    assert store.lock_holder(1) is None
    store.acquire_lock(1, owner="b")
    with pytest.raises(RunLockedError, match="lost its lock"):
        store.refresh_lock(1, owner="a")


def test_a_dead_process_lock_is_taken_over(store):
    _plant(store, pid=_dead_pid(), host=socket.gethostname(), age=0)
    store.acquire_lock(1, owner="mine")
    assert store.lock_holder(1).owner == "mine"


def test_another_hosts_lock_goes_stale_by_heartbeat_only(store):
    _plant(store, pid=1, host="elsewhere", age=5)
    with pytest.raises(RunLockedError, match="on elsewhere, last heartbeat 5s ago"):
        store.acquire_lock(1, owner="mine", stale_after=60)
    _plant(store, pid=1, host="elsewhere", age=61)
    store.acquire_lock(1, owner="mine", stale_after=60)


def test_is_stale_policy():
    me = socket.gethostname()
    now = 1000.0
    assert not is_stale(LockHolder(1, "o", __import__("os").getpid(), me, now - 10), now=now, stale_after=60)
    assert is_stale(LockHolder(1, "o", __import__("os").getpid(), me, now - 61), now=now, stale_after=60)
    assert is_stale(LockHolder(1, "o", _dead_pid(), me, now), now=now, stale_after=60)
    assert not pid_alive(_dead_pid()) and not pid_alive(0)


def test_runlock_heartbeats_and_releases(store):
    with RunLock(store, 1, heartbeat=0.05) as lock:
        first = store.lock_holder(1)
        assert first.owner == lock.owner
        deadline = time.monotonic() + 30
        while store.lock_holder(1).heartbeat <= first.heartbeat:
            assert time.monotonic() < deadline, "no heartbeat was written"
            time.sleep(0.05)
        with pytest.raises(RunLockedError):
            RunLock(store, 1).__enter__()
    assert store.lock_holder(1) is None


def test_old_databases_gain_the_identity_columns(tmp_path):
    import sqlite3
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE runs (run_id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL, finished TEXT, "
                  "model TEXT NOT NULL, model_ref TEXT, model_hash TEXT, spec_hash TEXT NOT NULL, git_commit TEXT, "
                  "seed INTEGER, status TEXT NOT NULL, versions TEXT, timings TEXT, spec TEXT, result TEXT, "
                  "clean_accuracy REAL)")
        c.execute("INSERT INTO runs (created, model, spec_hash, status) VALUES ('x', 'm', 's', 'failed')")
    with Store(db) as st:
        row = st.find_resumable("s")
        assert row["run_id"] == 1 and row["data_hash"] is None and row["code_version"] is None
