"""The history database: every evaluation run, its metrics and its per-sample results.

Two back ends behind one interface (:mod:`advkit.results.backends`): a SQLite file (the default,
``./advkit.db``) or a PostgreSQL server (``postgresql://user@host/dbname``) that a team's CI runners
share. Tables: ``runs`` (one row per evaluation: model name/REF/hash, spec hash, git commit, seed, library
versions, timings, status, the full ``result.json``), ``metrics`` (one row per headline number with
its confidence interval), ``samples`` (per-sample records, one row per stage and batch, written as
the evaluation goes — this is what ``--resume`` continues from) and ``run_locks`` (the writer lock of
a run being written: owner token, pid, host, heartbeat; see :mod:`advkit.results.locks`).

A run's identity is its spec hash plus the content hashes of its model weights (``model_hash``) and
evaluated data (``data_hash``) and the code version (``code_version``: advkit version + git commit);
:meth:`Store.find_resumable` returns them so that a resume can refuse a run computed from other inputs.

The schema is versioned (table ``advkit_schema``) and upgraded in place by
:data:`advkit.results.schema.MIGRATIONS` when a store opens, one process at a time. Every write is one
short transaction, so a killed writer leaves no half-written run and several processes can write at once
(each opens its own :class:`Store`).
"""
from __future__ import annotations

import json
import threading
import time

from ..errors import RunLockedError, StoreError
from . import records as rec
from .backends import BUSY_TIMEOUT_MS, connect, display  # noqa: F401  (BUSY_TIMEOUT_MS: re-exported)
from .io import dumps
from .locks import STALE_AFTER_SECONDS, LockHolder, is_stale, locked_message, this_process
from .schema import RUN_COLUMNS, check_schema, metric_rows, migrate, now

MAX_RUN_ID = 2**63 - 1  # SQLite INTEGER and PostgreSQL BIGINT


class Store:
    """Open (creating if needed, upgrading if older) the history database ``target``: a SQLite path or a
    ``postgresql://`` URL. ``path`` is the target as it may be shown (a URL's password masked).

    One connection, shared with a run lock's heartbeat thread: writes are serialised by ``_mutex``."""

    def __init__(self, target, *, readonly: bool = False):
        self.path = display(target)
        self.conn = connect(str(target), readonly=readonly)
        self._mutex = threading.RLock()
        try:
            self.schema_version = check_schema(self.conn, self.path) if readonly else migrate(self.conn, self.path)
        except BaseException:
            self.conn.close()
            raise

    @property
    def backend(self) -> str:
        return self.conn.dialect

    # ------------------------------------------------------------ plumbing
    def _write(self):
        """One write transaction (retried while SQLite's writer lock is held elsewhere)."""
        return _Locked(self._mutex, self.conn.transaction())

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def journal_mode(self) -> str:
        return self.conn.execute("PRAGMA journal_mode").fetchone()[0] if self.backend == "sqlite" else "server"

    # ------------------------------------------------------------ runs
    def begin_run(self, *, model: str, model_ref: str, model_hash: str, spec_hash: str, seed: int,
                  spec: dict, versions: dict, git_commit: str | None, data_hash: str | None = None,
                  code_version: str | None = None) -> int:
        with self._write() as c:
            row = c.execute(
                "INSERT INTO runs (created, model, model_ref, model_hash, spec_hash, git_commit, seed, status, "
                "versions, spec, data_hash, code_version) VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?) "
                "RETURNING run_id", (now(), model, model_ref, model_hash, spec_hash, git_commit, seed,
                                     json.dumps(versions), json.dumps(spec), data_hash, code_version)).fetchone()
            return int(row[0])

    def find_resumable(self, spec_hash: str) -> dict | None:
        """The newest unfinished (running or failed) run of this spec: its row, with the identity columns
        ``model_hash``, ``data_hash`` and ``code_version`` for the caller to compare, or None."""
        row = self.conn.execute(
            f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE spec_hash = ? AND status IN ('running', 'failed') "
            "ORDER BY run_id DESC LIMIT 1", (spec_hash,)).fetchone()
        return None if row is None else dict(zip(RUN_COLUMNS, row))

    def set_status(self, run_id: int, status: str) -> None:
        with self._write() as c:
            c.execute("UPDATE runs SET status = ? WHERE run_id = ?", (status, run_id))

    def finish_run(self, run_id: int, result: dict, *, status: str = "complete") -> None:
        """Store the final result and its headline metrics; the run becomes a baseline candidate."""
        rows = [(run_id, name, *vals) for name, vals in metric_rows(result).items()]
        clean = (result.get("clean") or {}).get("accuracy")
        with self._write() as c:
            c.execute("UPDATE runs SET status = ?, finished = ?, result = ?, timings = ?, clean_accuracy = ? "
                      "WHERE run_id = ?", (status, now(), dumps(result), json.dumps(result.get("timings", {})),
                                           clean, run_id))
            c.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            c.executemany("INSERT INTO metrics (run_id, name, value, lo, hi) VALUES (?, ?, ?, ?, ?)", rows)

    # ------------------------------------------------------------ writer locks
    def acquire_lock(self, run_id: int, *, owner: str, stale_after: float = STALE_AFTER_SECONDS) -> None:
        """Take ``run_id``'s writer lock for ``owner`` (this process); a stale lock is taken over.

        Raises :class:`RunLockedError` naming the holder when another live process holds it.
        """
        pid, host = this_process()
        with self._write() as c:
            if self.backend == "postgresql":  # serialise acquirers on the run's row (SQLite: BEGIN IMMEDIATE does)
                c.execute("SELECT run_id FROM runs WHERE run_id = ? FOR UPDATE", (int(run_id),))
            holder = self._holder(c, run_id)
            if holder is not None and holder.owner != owner and not is_stale(holder, stale_after=stale_after):
                raise RunLockedError(locked_message(run_id, holder))
            c.execute("INSERT INTO run_locks (run_id, owner, pid, host, heartbeat) VALUES (?, ?, ?, ?, ?) "
                      "ON CONFLICT (run_id) DO UPDATE SET owner = excluded.owner, pid = excluded.pid, "
                      "host = excluded.host, heartbeat = excluded.heartbeat",
                      (int(run_id), owner, pid, host, time.time()))

    def refresh_lock(self, run_id: int, *, owner: str) -> None:
        """The heartbeat: ``owner`` still holds the lock; :class:`RunLockedError` when it was taken over."""
        with self._write() as c:
            cur = c.execute("UPDATE run_locks SET heartbeat = ? WHERE run_id = ? AND owner = ?",
                            (time.time(), int(run_id), owner))
            if cur.rowcount == 0:
                holder = self._holder(c, run_id)
                raise RunLockedError(f"run {run_id}: this process lost its lock"
                                     + (f" to {holder.describe()}" if holder else ""))

    def release_lock(self, run_id: int, *, owner: str) -> None:
        """Drop ``owner``'s lock on ``run_id`` (no-op when another owner holds it now)."""
        with self._write() as c:
            c.execute("DELETE FROM run_locks WHERE run_id = ? AND owner = ?", (int(run_id), owner))

    def lock_holder(self, run_id: int) -> LockHolder | None:
        """Who holds ``run_id``'s lock (stale or not), or None."""
        return self._holder(self.conn, run_id)

    @staticmethod
    def _holder(conn, run_id: int) -> LockHolder | None:
        row = conn.execute("SELECT run_id, owner, pid, host, heartbeat FROM run_locks WHERE run_id = ?",
                           (int(run_id),)).fetchone()
        return None if row is None else LockHolder(int(row[0]), row[1], int(row[2]), row[3], float(row[4]))

    # ------------------------------------------------------------ per-sample progress
    def save_batch(self, run_id: int, stage: str, batch: int, payload: dict, seconds: float = 0.0) -> None:
        blob = rec.pack(payload)
        with self._write() as c:
            c.execute("INSERT INTO samples (run_id, stage, batch, payload, seconds) VALUES (?, ?, ?, ?, ?) "
                      "ON CONFLICT (run_id, stage, batch) DO UPDATE SET payload = excluded.payload, "
                      "seconds = excluded.seconds", (run_id, stage, batch, blob, seconds))

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
    def list_runs(self, model: str | None = None, limit: int | None = None, *,
                  spec_hash: str | None = None) -> list[dict]:
        """Runs of any status, newest first; ``model`` matches the model name or its REF."""
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"
        where, args = [], []
        if model is not None:
            where.append("(model = ? OR model_ref = ?)")
            args += [model, model]
        if spec_hash is not None:
            where.append("spec_hash = ?")
            args.append(spec_hash)
        sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY run_id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        runs = [dict(zip(RUN_COLUMNS, r)) for r in self.conn.execute(sql, args).fetchall()]
        for r in runs:
            r["robust_accuracy"] = {
                name[len("robust_accuracy["):-1]: value for name, value in self.conn.execute(
                    "SELECT name, value FROM metrics WHERE run_id = ? AND name LIKE 'robust_accuracy[%'",
                    (r["run_id"],))}
            r["reference_protocol"] = {
                name[len("reference_protocol["):-1]: bool(value) for name, value in self.conn.execute(
                    "SELECT name, value FROM metrics WHERE run_id = ? AND name LIKE 'reference_protocol[%'",
                    (r["run_id"],))}
            r["certified_accuracy"] = {
                name[len("certified_accuracy["):-1]: value for name, value in self.conn.execute(
                    "SELECT name, value FROM metrics WHERE run_id = ? AND name LIKE 'certified_accuracy[%'",
                    (r["run_id"],))}
        return runs

    def load_result(self, run_id: int) -> dict:
        row = self.conn.execute("SELECT result, status FROM runs WHERE run_id = ?", (int(run_id),)).fetchone()
        if row is None:
            raise StoreError(f"expected an existing run id in {self.path}, got {run_id} (no such run)")
        if row[0] is None:
            raise StoreError(f"run {run_id} has no result yet (status {row[1]!r})")
        return _stored_json(row[0], run_id, self.path)

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
        row = self.conn.execute(sql.replace("SELECT result", "SELECT result, run_id") + " ORDER BY run_id DESC LIMIT 1",
                                args).fetchone()
        return None if row is None else _stored_json(row[0], row[1], self.path)

    def resolve(self, ref: str | int) -> int:
        """``"latest"`` or a run id (``"12"``, ``"#12"``) → run id."""
        text = str(ref).strip().lstrip("#")
        if text == "latest":
            row = self.conn.execute("SELECT MAX(run_id) FROM runs WHERE status = 'complete'").fetchone()
            if row[0] is None:
                raise StoreError(f"no complete runs in {self.path} yet")
            return int(row[0])
        if not (text.isascii() and text.isdigit()):
            raise StoreError(f"expected a run id or 'latest', got {ref!r}")
        if int(text) > MAX_RUN_ID:  # beyond a 64-bit INTEGER: no database can hold it
            raise StoreError(f"expected a run id between 1 and 2^63-1 in {self.path}, got {text} (no such run)")
        if self.conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (int(text),)).fetchone() is None:
            raise StoreError(f"expected an existing run id in {self.path}, got {ref!r} (no such run)")
        return int(text)


def _stored_json(text, run_id, path) -> dict:
    """A stored result: a JSON object, or a StoreError naming the run (a damaged row is never half-read)."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as e:
        raise StoreError(f"run {run_id} in {path}: its stored result is not valid JSON ({e}); expected the "
                         "result.json of a finished run") from None
    if not isinstance(value, dict):
        raise StoreError(f"run {run_id} in {path}: expected its stored result to be a JSON object, got "
                         f"{type(value).__name__}")
    return value


class _Locked:
    """``with``: take ``mutex``, then enter ``inner`` (a transaction); leave both in reverse order."""

    def __init__(self, mutex, inner):
        self._mutex, self._inner = mutex, inner

    def __enter__(self):
        self._mutex.acquire()
        try:
            return self._inner.__enter__()
        except BaseException:
            self._mutex.release()
            raise

    def __exit__(self, *exc):
        try:
            return self._inner.__exit__(*exc)
        finally:
            self._mutex.release()
