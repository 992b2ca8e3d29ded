"""Writer locks on history runs: one live process writes into a run at a time.

A lock is a row per run in the history store: ``owner`` (a random token per holder), ``pid`` and
``host`` of the holding process, and ``heartbeat`` (seconds since the epoch, refreshed while it
works).  A lock is *stale*, and may be taken over, when its process is known dead (same host, no
such pid) or its heartbeat is older than ``stale_after`` seconds (another host, or a hung process).

The store backend implements four methods (``acquire_lock``, ``refresh_lock``, ``release_lock``,
``lock_holder``) with one atomic read-check-write each; the policy (:func:`is_stale`) and the
heartbeat thread (:class:`RunLock`) live here so that every backend shares them.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from ..errors import RunLockedError

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
STALE_AFTER_SECONDS = 120.0


@dataclass(frozen=True)
class LockHolder:
    """Who holds a run's lock: ``owner`` token, process ``pid`` on ``host``, last ``heartbeat`` (epoch s)."""

    run_id: int
    owner: str
    pid: int
    host: str
    heartbeat: float

    def describe(self, now: float | None = None) -> str:
        age = max(0.0, (time.time() if now is None else now) - self.heartbeat)
        return f"pid {self.pid} on {self.host}, last heartbeat {age:.0f}s ago"


def this_process() -> tuple[int, str]:
    return os.getpid(), socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host (a zombie counts as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    try:  # a killed child not yet reaped is a zombie: dead for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def is_stale(holder: LockHolder, *, now: float | None = None, stale_after: float = STALE_AFTER_SECONDS) -> bool:
    """A dead process on this host, or a heartbeat older than ``stale_after`` seconds."""
    now = time.time() if now is None else now
    if holder.host == socket.gethostname() and not pid_alive(holder.pid):
        return True
    return now - holder.heartbeat > stale_after


def locked_message(run_id: int, holder: LockHolder) -> str:
    return (f"run {run_id} is being written by another live process ({holder.describe()}); "
            "wait for it to finish, or resume once it has stopped")


class RunLock:
    """Hold ``store``'s lock on ``run_id`` while the ``with`` block runs; a thread refreshes the heartbeat.

    Raises :class:`~advkit.errors.RunLockedError` on entry when a live process holds the lock.
    """

    def __init__(self, store, run_id: int, *, heartbeat: float = HEARTBEAT_SECONDS,
                 stale_after: float = STALE_AFTER_SECONDS):
        self.store, self.run_id = store, int(run_id)
        self.owner = uuid.uuid4().hex
        self.heartbeat, self.stale_after = heartbeat, stale_after
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "RunLock":
        self.store.acquire_lock(self.run_id, owner=self.owner, stale_after=self.stale_after)
        self._thread = threading.Thread(target=self._beat, name=f"advkit-lock-{self.run_id}", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                self.store.refresh_lock(self.run_id, owner=self.owner)
            except RunLockedError as e:  # taken over after we looked dead: stop claiming it
                log.error("%s", e)
                return
            except Exception as e:  # noqa: BLE001 - a missed heartbeat must not kill the evaluation
                log.warning("run %s: heartbeat not written (%s)", self.run_id, e)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.store.release_lock(self.run_id, owner=self.owner)
        except Exception as e:  # noqa: BLE001 - the run's result is already stored
            log.warning("run %s: lock not released (%s); it goes stale by itself", self.run_id, e)


__all__ = ["LockHolder", "RunLock", "is_stale", "pid_alive", "this_process", "locked_message",
           "HEARTBEAT_SECONDS", "STALE_AFTER_SECONDS"]
