"""The history database's schema: its versioned migrations, the run columns every query reads, and the
metric rows stored per finished run (see :mod:`advkit.results.store`)."""
from __future__ import annotations

from datetime import datetime, timezone

from ..errors import StoreError

#: Schema migrations, in order: (version, what it does, statements). ``{pk}``, ``{blob}``, ``{real}`` and
#: ``{id}`` become each back end's type names. Version 1 is the schema of advkit 0.1's first releases,
#: which had no ``advkit_schema`` table (a file with a ``runs`` table and no version is version 1).
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (1, "runs, metrics and per-sample batches", (
        "CREATE TABLE IF NOT EXISTS runs (run_id {pk}, created TEXT NOT NULL, finished TEXT, model TEXT NOT NULL, "
        "model_ref TEXT, model_hash TEXT, spec_hash TEXT NOT NULL, git_commit TEXT, seed {id}, status TEXT NOT NULL, "
        "versions TEXT, timings TEXT, spec TEXT, result TEXT, clean_accuracy {real})",
        "CREATE INDEX IF NOT EXISTS runs_model ON runs(model, spec_hash, status)",
        "CREATE TABLE IF NOT EXISTS metrics (run_id {id} NOT NULL REFERENCES runs(run_id), name TEXT NOT NULL, "
        "value {real}, lo {real}, hi {real}, PRIMARY KEY (run_id, name))",
        "CREATE TABLE IF NOT EXISTS samples (run_id {id} NOT NULL REFERENCES runs(run_id), stage TEXT NOT NULL, "
        "batch INTEGER NOT NULL, payload {blob} NOT NULL, seconds {real}, PRIMARY KEY (run_id, stage, batch))",
    )),
    (2, "run identity (data hash, code version), writer locks, the history index by status", (
        "ALTER TABLE runs ADD COLUMN data_hash TEXT",
        "ALTER TABLE runs ADD COLUMN code_version TEXT",
        "CREATE TABLE IF NOT EXISTS run_locks (run_id {id} PRIMARY KEY REFERENCES runs(run_id), owner TEXT NOT NULL, "
        "pid INTEGER NOT NULL, host TEXT NOT NULL, heartbeat {real} NOT NULL)",
        "CREATE INDEX IF NOT EXISTS runs_status ON runs(status, run_id)",
    )),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]
RUN_COLUMNS = ("run_id", "created", "finished", "model", "model_ref", "model_hash", "spec_hash", "git_commit",
                "seed", "status", "clean_accuracy", "data_hash", "code_version")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def migrate(conn, path: str) -> int:
    """Bring the schema of ``conn`` (the store at ``path``, for messages) to :data:`SCHEMA_VERSION`, one process at
    a time; returns the version found before upgrading."""
    with conn.migration_lock() as c:
        if c.has_table("advkit_schema"):
            row = c.execute("SELECT MAX(version) FROM advkit_schema").fetchone()
            found = int(row[0] or 0)
        else:
            c.execute("CREATE TABLE advkit_schema (version INTEGER NOT NULL, applied TEXT NOT NULL)")
            found = 1 if c.has_table("runs") else 0
            if found:
                c.execute("INSERT INTO advkit_schema (version, applied) VALUES (1, ?)", (now(),))
        if found > SCHEMA_VERSION:
            raise StoreError(f"history database {path} has schema version {found}; this advkit knows "
                             f"versions up to {SCHEMA_VERSION}: upgrade advkit")
        for version, _, statements in MIGRATIONS:
            if version > found:
                for stmt in statements:
                    c.execute(c.ddl(stmt))
                c.execute("INSERT INTO advkit_schema (version, applied) VALUES (?, ?)", (version, now()))
    return found


def check_schema(conn, path: str) -> int:
    """Read-only: the schema version, or a StoreError for a database that is not advkit's (no schema table)
    or needs an upgrade that only a writing command may make."""
    if not conn.has_table("advkit_schema"):
        raise StoreError(f"{path} is not an advkit history database (it has no advkit_schema table); "
                         "expected a file written by advkit evaluate")
    found = int(conn.execute("SELECT MAX(version) FROM advkit_schema").fetchone()[0] or 0)
    if found != SCHEMA_VERSION:
        raise StoreError(f"history database {path} has schema version {found}; this advkit reads version "
                         f"{SCHEMA_VERSION}: " + ("upgrade advkit" if found > SCHEMA_VERSION else
                                                  "run `advkit evaluate --db` on it once to upgrade it"))
    return found


def metric_rows(result: dict) -> dict[str, tuple]:
    """``{name: (value, lo, hi)}``: the headline numbers of ``result`` as rows of the ``metrics`` table."""
    rows: dict[str, tuple] = {}
    clean = result.get("clean") or {}
    if clean.get("accuracy") is not None:
        rows["clean_accuracy"] = (clean["accuracy"], *(clean.get("ci") or (None, None)))
    for threat, t in (result.get("threats") or {}).items():
        rows[f"robust_accuracy[{threat}]"] = (t.get("robust_accuracy"), *(t.get("ci") or (None, None)))
        if isinstance(t.get("protocol"), dict):  # 1 = reference AutoAttack, 0 = not (reduced, custom, skipped)
            rows[f"reference_protocol[{threat}]"] = (1.0 if t["protocol"].get("reference") else 0.0, None, None)
        for name, a in (t.get("attacks") or {}).items():
            rows[f"attack_accuracy[{threat}][{name}]"] = (a.get("robust_accuracy"), *(a.get("ci") or (None, None)))
        for part in ("naive", "adaptive"):  # a declared defense: both passes, side by side in the history
            sec = t.get(part)
            if isinstance(sec, dict) and sec.get("robust_accuracy") is not None:
                rows[f"{part}_robust_accuracy[{threat}]"] = (sec["robust_accuracy"], *(sec.get("ci") or (None, None)))
    cert = result.get("certify") or {}
    top = cert.get("max_certifiable_radius")
    for r, acc in (cert.get("certified_accuracy") or {}).items():
        if acc is not None and (top is None or float(r) <= top):  # above the ceiling there is no number
            rows[f"certified_accuracy[{r}]"] = (acc, None, None)
    return rows
