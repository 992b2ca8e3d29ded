"""A throw-away PostgreSQL server for the history tests, started in a temporary directory.

It uses Debian's ``postgresql`` package (``.ci/run`` installs it); the server listens only on a Unix
socket inside its own directory, trusts local connections, runs without fsync, and is stopped and
deleted at the end of the test session. As root (CI), the server runs as the ``postgres`` user.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass


class Unavailable(Exception):
    """Why no server could be started (the tests that need one skip with this reason)."""


def _bindir() -> str:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    raise Unavailable("PostgreSQL is not installed (apt-get install postgresql)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    base: str
    port: int
    bindir: str
    prefix: list

    def url(self, dbname: str = "postgres", password: str | None = None) -> str:
        cred = "postgres" + (f":{password}" if password else "")
        return f"postgresql://{cred}@/{dbname}?host={self.base}&port={self.port}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        subprocess.run([*self.prefix, f"{self.bindir}/pg_ctl", "-D", f"{self.base}/data", "-m", "immediate",
                        "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.base, ignore_errors=True)


def start() -> Server:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise Unavailable("psycopg is not installed (pip install 'advkit[postgres]')") from None
    bindir = _bindir()
    base = tempfile.mkdtemp(prefix="advkit-pg-")
    prefix: list = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and there is no 'postgres' user to run the server as") from None
        os.chown(base, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    steps = [
        [f"{bindir}/initdb", "-D", f"{base}/data", "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
        [f"{bindir}/pg_ctl", "-D", f"{base}/data", "-l", f"{base}/log", "-w", "-t", "60", "-o",
         f"-k {base} -c listen_addresses='' -p {port} -c fsync=off -c full_page_writes=off "
         f"-c max_connections=100", "start"],
    ]
    for cmd in steps:
        proc = subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            log = open(f"{base}/log").read()[-2000:] if os.path.exists(f"{base}/log") else ""
            shutil.rmtree(base, ignore_errors=True)
            raise Unavailable(f"{os.path.basename(cmd[0])} failed: {proc.stderr.strip()[-500:]} {log}")
    return Server(base, port, bindir, prefix)
