"""The history database: every evaluation run, its metrics and its per-sample results (SQLite).

Tables: ``runs`` (one row per evaluation: model name/REF/hash, spec hash, git commit, seed, library
versions, timings, status, the full ``result.json``), ``metrics`` (one row per headline number with
its confidence interval) and ``samples`` (per-sample records, one row per stage and batch, written as
the evaluation goes — this is what ``--resume`` continues from).

The database runs in WAL mode with a ``busy_timeout``; every write is one short ``BEGIN IMMEDIATE``
transaction, so several evaluations can write at once (each process opens its own :class:`Store`).
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path

from ..errors import StoreError
from . import records as rec
from .io import dumps

BUSY_TIMEOUT_MS = 60_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL, finished TEXT,
    model TEXT NOT NULL, model_ref TEXT, model_hash TEXT, spec_hash TEXT NOT NULL, git_commit TEXT,
    seed INTEGER, status TEXT NOT NULL, versions TEXT, timings TEXT, spec TEXT, result TEXT,
    clean_accuracy REAL);
CREATE INDEX IF NOT EXISTS runs_model ON runs(model, spec_hash, status);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs(run_id), name TEXT NOT NULL, value REAL, lo REAL, hi REAL,
    PRIMARY KEY (run_id, name));
CREATE TABLE IF NOT EXISTS samples (
    run_id INTEGER NOT NULL REFERENCES runs(run_id), stage TEXT NOT NULL, batch INTEGER NOT NULL,
    payload BLOB NOT NULL, seconds REAL, PRIMARY KEY (run_id, stage, batch));
"""
_RUN_COLUMNS = ("run_id", "created", "finished", "model", "model_ref", "model_hash", "spec_hash", "git_commit",
                "seed", "status", "clean_accuracy")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Store:
    """Open (creating if needed) the history database at ``path``."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            with self._write() as c:
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        c.execute(stmt)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open history database {self.path!r}: {e}") from None

    # ------------------------------------------------------------ plumbing
    @contextlib.contextmanager
    def _write(self):
        """One ``BEGIN IMMEDIATE`` transaction, retried while another writer holds the lock."""
        for attempt in range(50):
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise StoreError(f"{self.path}: {e}") from None
                time.sleep(0.05 * (attempt + 1))
        else:
            raise StoreError(f"{self.path}: the database stayed locked; another process holds it")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def journal_mode(self) -> str:
        return self.conn.execute("PRAGMA journal_mode").fetchone()[0]

    # ------------------------------------------------------------ runs
    def begin_run(self, *, model: str, model_ref: str, model_hash: str, spec_hash: str, seed: int,
                  spec: dict, versions: dict, git_commit: str | None) -> int:
        with self._write() as c:
            cur = c.execute(
                "INSERT INTO runs (created, model, model_ref, model_hash, spec_hash, git_commit, seed, status, "
                "versions, spec) VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)",
                (_now(), model, model_ref, model_hash, spec_hash, git_commit, seed, json.dumps(versions),
                 json.dumps(spec)))
            return int(cur.lastrowid)

    def find_resumable(self, spec_hash: str, model_hash: str) -> int | None:
        """The newest unfinished run of this spec and model, if any."""
        row = self.conn.execute(
            "SELECT run_id FROM runs WHERE spec_hash = ? AND model_hash = ? AND status IN ('running', 'failed') "
            "ORDER BY run_id DESC LIMIT 1", (spec_hash, model_hash)).fetchone()
        return None if row is None else int(row[0])

    def set_status(self, run_id: int, status: str) -> None:
        with self._write() as c:
            c.execute("UPDATE runs SET status = ? WHERE run_id = ?", (status, run_id))

    def finish_run(self, run_id: int, result: dict, *, status: str = "complete") -> None:
        """Store the final result and its headline metrics; the run becomes a baseline candidate."""
        rows = [(run_id, name, *vals) for name, vals in _metric_rows(result).items()]
        clean = (result.get("clean") or {}).get("accuracy")
        with self._write() as c:
            c.execute("UPDATE runs SET status = ?, finished = ?, result = ?, timings = ?, clean_accuracy = ? "
                      "WHERE run_id = ?", (status, _now(), dumps(result), json.dumps(result.get("timings", {})),
                                           clean, run_id))
            c.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            c.executemany("INSERT INTO metrics (run_id, name, value, lo, hi) VALUES (?, ?, ?, ?, ?)", rows)

    # ------------------------------------------------------------ per-sample progress
    def save_batch(self, run_id: int, stage: str, batch: int, payload: dict, seconds: float = 0.0) -> None:
        blob = rec.pack(payload)
        with self._write() as c:
            c.execute("INSERT OR REPLACE INTO samples (run_id, stage, batch, payload, seconds) VALUES (?, ?, ?, ?, ?)",
                      (run_id, stage, batch, blob, seconds))

    def load_batch(self, run_id: int, stage: str, batch: int) -> dict | None:
        row = self.conn.execute("SELECT payload FROM samples WHERE run_id = ? AND stage = ? AND batch = ?",
                                (run_id, stage, batch)).fetchone()
        return None if row is None else rec.unpack(row[0])

    def load_samples(self, run_id: int) -> dict[str, list[dict]]:
        """Every stored batch of a run: ``{stage: [records of batch 0, 1, …]}``."""
        out: dict[str, list[dict]] = {}
        for stage, _, blob in self.conn.execute(
                "SELECT stage, batch, payload FROM samples WHERE run_id = ? ORDER BY stage, batch", (run_id,)):
            out.setdefault(stage, []).append(rec.unpack(blob))
        return out

    def count_batches(self, run_id: int) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM samples WHERE run_id = ?", (run_id,)).fetchone()[0])

    # ------------------------------------------------------------ queries
    def list_runs(self, model: str | None = None, limit: int | None = None) -> list[dict]:
        sql = f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs"
        args: list = []
        if model is not None:
            sql += " WHERE model = ?"
            args.append(model)
        sql += " ORDER BY run_id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        runs = [dict(zip(_RUN_COLUMNS, r)) for r in self.conn.execute(sql, args).fetchall()]
        for r in runs:
            r["robust_accuracy"] = {
                name[len("robust_accuracy["):-1]: value for name, value in self.conn.execute(
                    "SELECT name, value FROM metrics WHERE run_id = ? AND name LIKE 'robust_accuracy[%'",
                    (r["run_id"],))}
        return runs

    def load_result(self, run_id: int) -> dict:
        row = self.conn.execute("SELECT result, status FROM runs WHERE run_id = ?", (int(run_id),)).fetchone()
        if row is None:
            raise StoreError(f"expected an existing run id in {self.path}, got {run_id} (no such run)")
        if row[0] is None:
            raise StoreError(f"run {run_id} has no result yet (status {row[1]!r})")
        return json.loads(row[0])

    def metrics(self, run_id: int) -> dict[str, tuple[float, float, float]]:
        return {n: (v, lo, hi) for n, v, lo, hi in self.conn.execute(
            "SELECT name, value, lo, hi FROM metrics WHERE run_id = ?", (run_id,))}

    def latest(self, model: str, spec_hash: str | None = None, exclude: int | None = None) -> dict | None:
        """The result of the newest complete run of ``model`` (and ``spec_hash``), except run ``exclude``."""
        sql, args = "SELECT result FROM runs WHERE status = 'complete' AND model = ?", [model]
        if spec_hash is not None:
            sql += " AND spec_hash = ?"
            args.append(spec_hash)
        if exclude is not None:
            sql += " AND run_id != ?"
            args.append(int(exclude))
        row = self.conn.execute(sql + " ORDER BY run_id DESC LIMIT 1", args).fetchone()
        return None if row is None else json.loads(row[0])

    def resolve(self, ref: str | int) -> int:
        """``"latest"`` or a run id (``"12"``, ``"#12"``) → run id."""
        text = str(ref).strip().lstrip("#")
        if text == "latest":
            row = self.conn.execute("SELECT MAX(run_id) FROM runs WHERE status = 'complete'").fetchone()
            if row[0] is None:
                raise StoreError(f"no complete runs in {self.path} yet")
            return int(row[0])
        if not text.isdigit():
            raise StoreError(f"expected a run id or 'latest', got {ref!r}")
        if self.conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (int(text),)).fetchone() is None:
            raise StoreError(f"expected an existing run id in {self.path}, got {ref!r} (no such run)")
        return int(text)


def _metric_rows(result: dict) -> dict[str, tuple]:
    rows: dict[str, tuple] = {}
    clean = result.get("clean") or {}
    if clean.get("accuracy") is not None:
        rows["clean_accuracy"] = (clean["accuracy"], *(clean.get("ci") or (None, None)))
    for threat, t in (result.get("threats") or {}).items():
        rows[f"robust_accuracy[{threat}]"] = (t.get("robust_accuracy"), *(t.get("ci") or (None, None)))
        for name, a in (t.get("attacks") or {}).items():
            rows[f"attack_accuracy[{threat}][{name}]"] = (a.get("robust_accuracy"), *(a.get("ci") or (None, None)))
        for part in ("naive", "adaptive"):  # a declared defense: both passes, side by side in the history
            sec = t.get(part)
            if isinstance(sec, dict) and sec.get("robust_accuracy") is not None:
                rows[f"{part}_robust_accuracy[{threat}]"] = (sec["robust_accuracy"], *(sec.get("ci") or (None, None)))
    return rows
