"""Leases and locks: who may do a piece of work now, across threads, processes and hosts.

A lease is a row of the store's ``locks`` table (``name``, ``owner`` = ``host:pid[:...]``,
``expires_at``). It is taken if free, expired, already ours, or held by a dead process on this host;
another host's holder keeps it until it expires. :func:`hold` is the one way to take one: threads
of this process queue on a thread lock first, other processes are polled for up to ``wait``
seconds, a nested :func:`hold` of the same name on the same thread re-enters, and one heartbeat
thread per process renews every held lease every ``ttl/3`` seconds, so long work keeps it and a
killed process loses it after ``ttl`` (at once on this host).

The names in use:

* ``portal:<member_id>``: every sync-like work of a portal (a sync, an inbox batch, the offline
  queue, finishing a clean uninstall) -- one lease per portal, so they never interleave;
* ``push:<member_id>``: one push run (digests, alerts) of a portal;
* ``oauth-refresh:<member_id>``: one token refresh of a portal;
* ``purge:<member_id>`` rows are *marks*, not leases: a clean uninstall to finish (:func:`mark`).

Besides, :func:`scheduler_lock` is an ``fcntl`` file lock beside the database: only the process
holding it runs the scheduler.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from sqlite_utils import Database

from .store import open_db

log = logging.getLogger(__name__)

DEFAULT_TTL = 120.0


class Busy(RuntimeError):
    """Another live holder has the lease."""


# --- owners -----------------------------------------------------------------------------------------


def owner(tag: str | None = None) -> str:
    """``host:pid[:tag]``: who holds a lease, so that a dead holder on this host is recognised."""
    base = f"{socket.gethostname()}:{os.getpid()}"
    return f"{base}:{tag}" if tag else base


def owner_id() -> str:
    """``host:pid:random``: lets a restarted process reclaim what a dead one held."""
    return owner(uuid.uuid4().hex[:8])


def owner_dead(holder: str | None) -> bool:
    """True when ``holder`` (``host:pid[:...]``) names a process on this host that no longer runs.
    Another host's process is never presumed dead: its lease's expiry decides."""
    if not holder:
        return True
    parts = holder.split(":")
    if len(parts) < 2 or parts[0] != socket.gethostname():
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return True
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# --- one row ----------------------------------------------------------------------------------------


def try_take(db: Database, name: str, who: str, ttl: float) -> bool:
    """Take or renew ``name`` for ``ttl`` seconds if it is free, expired, ours, or held by a dead
    process; commits at once (one statement is atomic in SQLite). Returns whether we hold it."""
    now = time.time()
    db.execute(
        "insert into locks (name, owner, expires_at) values (?, ?, ?) "
        "on conflict(name) do update set owner = excluded.owner, expires_at = excluded.expires_at "
        "where locks.expires_at < ? or locks.owner = excluded.owner",
        [name, who, now + ttl, now],
    )
    db.conn.commit()
    row = db.execute("select owner from locks where name = ?", [name]).fetchone()
    if row and row[0] == who:
        return True
    if row and owner_dead(row[0]):
        cur = db.execute(
            "update locks set owner = ?, expires_at = ? where name = ? and owner = ?", [who, now + ttl, name, row[0]]
        )
        db.conn.commit()
        return cur.rowcount == 1
    return False


def release(db: Database, name: str, who: str) -> None:
    db.execute("delete from locks where name = ? and owner = ?", [name, who])
    db.conn.commit()


def holder(db: Database, name: str) -> str | None:
    """Who holds ``name`` now (None when free or expired)."""
    row = db.execute("select owner, expires_at from locks where name = ?", [name]).fetchone()
    return row[0] if row and row[1] >= time.time() else None


# --- the heartbeat: one thread per process renews every held lease ----------------------------------


class _Heartbeat:
    def __init__(self):
        self._beats: dict[int, list] = {}  # key -> [db path, name, owner, ttl, next due]
        self._cond = threading.Condition()
        self._next = 0
        self._thread: threading.Thread | None = None

    def add(self, path: str, name: str, who: str, ttl: float) -> int:
        with self._cond:
            self._next += 1
            self._beats[self._next] = [path, name, who, ttl, time.monotonic() + ttl / 3]
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)
                self._thread.start()
            self._cond.notify()
            return self._next

    def remove(self, key: int) -> None:
        with self._cond:
            self._beats.pop(key, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [(k, b[:4]) for k, b in self._beats.items() if b[4] <= now]
                if not due:
                    nxt = min((b[4] for b in self._beats.values()), default=now + 3600)
                    self._cond.wait(max(0.01, nxt - now))
                    continue
                for k, b in due:
                    self._beats[k][4] = now + b[3] / 3
            for _, (path, name, who, ttl) in due:
                try:
                    db = open_db(path, migrate=False)
                    try:
                        cur = db.execute(
                            "update locks set expires_at = ? where name = ? and owner = ?",
                            [time.time() + ttl, name, who],
                        )
                        db.conn.commit()
                        if cur.rowcount != 1:
                            log.warning("lease %s was lost (expired and taken)", name)
                    finally:
                        db.conn.close()
                except Exception as exc:  # the lease then simply expires
                    log.warning("lease heartbeat for %s failed: %s", name, exc)


_heartbeat = _Heartbeat()
_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()
_mine = threading.local()  # .held: {name: owner} of the leases this thread holds


def _local(name: str) -> threading.Lock:
    with _local_guard:
        return _local_locks.setdefault(name, threading.Lock())


def _db_path(db: Database) -> str | None:
    row = db.execute("pragma database_list").fetchone()
    return row[2] if row and row[2] else None


# --- holding a lease ----------------------------------------------------------------------------------


@contextmanager
def hold(
    db: Database | str | Path,
    name: str,
    who: str | None = None,
    *,
    ttl: float = DEFAULT_TTL,
    wait: float = 0.0,
    local_wait: float | None = None,
    poll: float = 0.2,
    heartbeat: bool = True,
    busy: Callable[[str | None], Exception] | None = None,
):
    """Hold the lease ``name``; yields True when held, False when not got within ``wait`` seconds
    (or, with ``busy``, raises ``busy(holder)`` instead).

    ``db`` is a store path (a connection is opened for the lease) or an open ``Database`` of this
    thread. ``who`` defaults to this process and thread. ``local_wait`` (default ``wait``) is how
    long to queue behind another thread of this process. Held on this thread already (by any
    owner when ``who`` is None): re-entered, released by the outermost exit.
    """
    held = getattr(_mine, "held", None)
    if held is None:
        held = _mine.held = {}
    if name in held and who in (None, held[name]):
        yield True  # the outer hold releases it
        return
    who = who or f"{owner_id()}:{threading.get_ident()}"
    own = not isinstance(db, Database)
    conn = open_db(db, migrate=False) if own else db
    try:
        deadline = time.monotonic() + wait
        lock = _local(name)
        lw = wait if local_wait is None else local_wait
        if not (lock.acquire(timeout=lw) if lw > 0 else lock.acquire(blocking=False)):
            got = False
        else:
            got = try_take(conn, name, who, ttl)
            while not got and time.monotonic() < deadline:
                time.sleep(poll)
                got = try_take(conn, name, who, ttl)
            if not got:
                lock.release()
        if not got:
            if busy is not None:
                raise busy(holder(conn, name))
            yield False
            return
        path = str(db) if own else _db_path(conn)
        beat = _heartbeat.add(path, name, who, ttl) if heartbeat and path else None
        held[name] = who
        try:
            yield True
        finally:
            held.pop(name, None)
            if beat is not None:
                _heartbeat.remove(beat)
            try:
                release(conn, name, who)
            finally:
                lock.release()
    finally:
        if own:
            conn.conn.close()


def portal_name(member_id: str) -> str:
    return f"portal:{member_id}"


def portal(db: Database | str | Path, member_id: str, who: str | None = None, **kw):
    """The portal's one lease for sync-like work (a sync, an inbox batch, the offline queue, a
    purge); ``who`` is suffixed with the thread, so two threads of one worker never share it."""
    return hold(db, portal_name(member_id), f"{who}:{threading.get_ident()}" if who else None, **kw)


# --- marks: rows of ``locks`` that remember work to finish (no owner, no expiry) -------------------


def mark(db: Database, name: str, at: float | None = None) -> None:
    """Remember ``name`` (since ``at``); the caller commits (it belongs with the caller's writes)."""
    db.execute(
        "insert or replace into locks (name, owner, expires_at) values (?, 'mark', ?)",
        [name, time.time() if at is None else at],
    )


def marks(db: Database, prefix: str) -> list[tuple[str, float]]:
    """``(rest of the name, since)`` of every mark named ``prefix...``."""
    return [
        (n[len(prefix) :], at)
        for n, at in db.execute("select name, expires_at from locks where name like ? || '%'", [prefix]).fetchall()
    ]


def unmark(db: Database, name: str) -> None:
    db.execute("delete from locks where name = ?", [name])


# --- the scheduler's file lock ----------------------------------------------------------------------


@contextmanager
def scheduler_lock(db_path: str):
    """Yields True in the one process (per store) that may run the scheduler, else False."""
    path = Path(str(db_path) + ".scheduler.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()
