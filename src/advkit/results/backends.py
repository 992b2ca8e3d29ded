"""The two history back ends behind :class:`~advkit.results.store.Store`: SQLite and PostgreSQL.

A *target* names the database: a file path (SQLite, the zero-set-up default) or a
``postgresql://user[:password]@host[:port]/dbname[?options]`` URL (a server the team already runs;
needs the optional extra ``pip install 'advkit[postgres]'``, which brings psycopg 3).

Each back end is a small connection adapter with the same surface:

- ``execute(sql, args)`` / ``executemany(sql, rows)`` take SQL written once, with ``?`` placeholders, in
  the subset both databases understand (``INSERT … RETURNING``, ``ON CONFLICT … DO UPDATE``);
- ``transaction()`` is one write transaction, retried while SQLite's writer lock is held elsewhere;
- ``ddl(stmt)`` fills the few type names that differ (``{pk}``, ``{blob}``, ``{real}``) and
  ``migration_lock()`` serialises schema upgrades between processes.

Credentials never leave this module unmasked: :func:`display` is what every message and record shows.
"""
from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError, StoreError, StoreWriteError

BUSY_TIMEOUT_MS = 60_000
_PG_SCHEMES = ("postgresql://", "postgres://")
_MIGRATION_LOCK_KEY = 0x61647674  # any fixed 64-bit number; "advt"


def is_url(target: str) -> bool:
    return str(target).startswith(_PG_SCHEMES)


def display(target) -> str:
    """``target`` as it may be printed or stored: a URL's password (and a ``password=`` option) masked."""
    text = str(target)
    if not is_url(text):
        return text
    parts = urlsplit(text)
    netloc = parts.netloc
    if "@" in netloc:
        cred, host = netloc.rsplit("@", 1)
        if ":" in cred:
            cred = cred.split(":", 1)[0] + ":***"
        netloc = f"{cred}@{host}"
    query = re.sub(r"(?i)(^|&)(password)=[^&]*", r"\1\2=***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def connect(target, *, readonly: bool = False):
    """The adapter for ``target``: :class:`SqliteConnection` or :class:`PostgresConnection`; ``readonly``
    opens a SQLite file with ``mode=ro`` (the file is never changed, not even its journal mode)."""
    text = str(target)
    if is_url(text):
        return PostgresConnection(text, readonly=readonly)
    if "://" in text:
        raise ConfigError(f"expected a SQLite file path or a postgresql:// URL for the history database, "
                          f"got {display(text)!r}")
    return SqliteConnection(text, readonly=readonly)


_DISK_FULL = ("database or disk is full", "disk i/o error", "readonly database", "attempt to write a readonly")


def db_error(name: str, e: Exception) -> StoreError:
    """A SQLite error as a one-line StoreError; a failed write to the disk is a :class:`StoreWriteError`."""
    text = " ".join(str(e).split())
    if any(t in text.lower() for t in _DISK_FULL):
        return StoreWriteError(f"cannot write the history database {name!r}: {text}; the run is not recorded "
                               "as complete")
    return StoreError(f"history database {name!r}: {text}")


def _rollback(raw) -> None:
    with contextlib.suppress(sqlite3.Error):
        raw.execute("ROLLBACK")


class SqliteConnection:
    """SQLite in WAL mode with a busy timeout; each write is one ``BEGIN IMMEDIATE`` transaction."""

    dialect = "sqlite"
    _TYPES = {"pk": "INTEGER PRIMARY KEY AUTOINCREMENT", "blob": "BLOB", "real": "REAL", "id": "INTEGER"}

    def __init__(self, path: str, *, readonly: bool = False):
        self.name = path
        if readonly and path != ":memory:":
            self._open_readonly(path)
            return
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.raw = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                       check_same_thread=False)  # the lock heartbeat thread shares it
            self.raw.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._pragma("PRAGMA journal_mode = WAL")  # needs a moment alone with the file: retried
            self.raw.execute("PRAGMA synchronous = NORMAL")
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"cannot open history database {path!r}: {e}") from None

    def _open_readonly(self, path: str) -> None:
        from urllib.parse import quote
        try:
            uri = f"file:{quote(str(Path(path).resolve()))}?mode=ro"
            self.raw = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                       check_same_thread=False)
            self.raw.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self.raw.execute("PRAGMA query_only = 1")
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"cannot open history database {path!r}: {e}") from None

    def _pragma(self, sql: str) -> None:
        """Run ``sql``, retrying while another process holds the file (switching to WAL, or creating it,
        takes a lock that the busy timeout does not wait for)."""
        for attempt in range(100):
            try:
                self.raw.execute(sql)
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
                time.sleep(0.02 * (attempt + 1))
        self.raw.execute(sql)

    def execute(self, sql: str, args=()):
        try:
            return self.raw.execute(sql, tuple(args))
        except sqlite3.DatabaseError as e:
            raise db_error(self.name, e) from None

    def executemany(self, sql: str, rows) -> None:
        try:
            self.raw.executemany(sql, list(rows))
        except sqlite3.DatabaseError as e:
            raise db_error(self.name, e) from None

    def ddl(self, stmt: str) -> str:
        return stmt.format(**self._TYPES)

    def has_table(self, name: str) -> bool:
        return self.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None

    @contextlib.contextmanager
    def transaction(self):
        """One ``BEGIN IMMEDIATE`` transaction, retried while another writer holds the lock."""
        for attempt in range(50):
            try:
                self.raw.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise StoreError(f"{self.name}: {e}") from None
                time.sleep(0.05 * (attempt + 1))
            except sqlite3.DatabaseError as e:
                raise db_error(self.name, e) from None
        else:
            raise StoreError(f"{self.name}: the database stayed locked; another process holds it")
        try:
            yield self
            self.raw.execute("COMMIT")
        except sqlite3.DatabaseError as e:  # COMMIT itself failed (full disk, I/O error)
            _rollback(self.raw)
            raise db_error(self.name, e) from None
        except BaseException:
            _rollback(self.raw)
            raise

    migration_lock = transaction  # BEGIN IMMEDIATE already excludes every other writer

    def close(self) -> None:
        self.raw.close()


class PostgresConnection:
    """PostgreSQL through psycopg 3: autocommit outside :meth:`transaction`, ``?`` placeholders translated."""

    dialect = "postgresql"
    _TYPES = {"pk": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "blob": "BYTEA",
              "real": "DOUBLE PRECISION", "id": "BIGINT"}

    def __init__(self, url: str, *, readonly: bool = False):
        self.name = display(url)
        try:
            import psycopg
        except ImportError:
            raise ConfigError("a postgresql:// history database needs psycopg 3: "
                              "pip install 'advkit[postgres]'") from None
        self._psycopg = psycopg
        try:
            self.raw = psycopg.connect(url, autocommit=True, connect_timeout=10)
            if readonly:  # the read-only commands: the server refuses any write of this session
                self.raw.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        except psycopg.Error as e:
            raise StoreError(f"cannot open history database {self.name}: {_pg_message(e, url)}") from None

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def execute(self, sql: str, args=()):
        try:
            cur = self.raw.cursor()
            cur.execute(self._sql(sql), tuple(args))
            return _PgCursor(cur)
        except self._psycopg.Error as e:
            raise StoreError(f"history database {self.name}: {_pg_message(e)}") from None

    def executemany(self, sql: str, rows) -> None:
        rows = list(rows)
        if not rows:
            return
        try:
            self.raw.cursor().executemany(self._sql(sql), rows)
        except self._psycopg.Error as e:
            raise StoreError(f"history database {self.name}: {_pg_message(e)}") from None

    def ddl(self, stmt: str) -> str:
        return stmt.format(**self._TYPES)

    def has_table(self, name: str) -> bool:
        return self.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() "
                            "AND table_name = ?", (name,)).fetchone() is not None

    @contextlib.contextmanager
    def transaction(self):
        try:
            tx = self.raw.transaction()
            tx.__enter__()
        except self._psycopg.Error as e:
            raise StoreError(f"history database {self.name}: {_pg_message(e)}") from None
        try:
            yield self
        except BaseException as e:
            tx.__exit__(type(e), e, e.__traceback__)
            raise
        else:
            try:
                tx.__exit__(None, None, None)
            except self._psycopg.Error as e:
                raise StoreError(f"history database {self.name}: {_pg_message(e)}") from None

    @contextlib.contextmanager
    def migration_lock(self):
        """A transaction holding an advisory lock, so that one process at a time upgrades the schema."""
        with self.transaction():
            self.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})")
            yield self

    def close(self) -> None:
        self.raw.close()


class _PgCursor:
    """psycopg's cursor with ``bytea`` values as ``bytes`` (SQLite returns ``bytes`` for BLOBs)."""

    def __init__(self, cur):
        self._cur = cur

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    @staticmethod
    def _row(row):
        return None if row is None else tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)

    def fetchone(self):
        return self._row(self._cur.fetchone() if self._cur.description else None)

    def fetchall(self):
        return [self._row(r) for r in self._cur.fetchall()] if self._cur.description else []

    def __iter__(self):
        return iter(self.fetchall())


def _pg_message(e, url: str | None = None) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if url:
        text = text.replace(url, display(url))
        password = urlsplit(url).password
        if password:
            text = text.replace(password, "***")
    return text
