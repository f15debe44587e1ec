"""Periodic work of the server process: reconcile syncs, the offline queue, bindings, pruning.

APScheduler 3.x ``BackgroundScheduler`` with the in-memory job store (jobs are defined in code,
nothing is pickled), started only by the runtime of a server process (``b24desk/runtime.py``, from
``web/server.py`` or ``flask demo``; never by ``create_app``: ``flask sync``, tests and the reloader
must not spawn schedulers). Two locks keep the work single:

* :func:`scheduler_lock`: an ``fcntl`` file lock beside the database; only the process holding it
  runs the scheduler, so several server processes on one store do not all schedule;
* :func:`portal_lock`: a lease row in the store's ``locks`` table, per portal. Every sync run and
  every inbox batch of a portal holds it, in any process, so they never interleave. A lease of a
  dead process on this host is taken over at once; one of another host after its ``ttl``.
"""
from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from sqlite_utils import Database

from .proc import owner_id, short
from .store import lease_holder, open_db, release_lease, try_lease

log = logging.getLogger("b24desk.scheduler")


# --- the per-portal lease -----------------------------------------------------------------------

def holder(db: Database, portal: str) -> str | None:
    return lease_holder(db, f"portal:{portal}")


@contextmanager
def portal_lock(db_path: str, portal: str, owner: str | None = None, *, ttl: float = 120.0,
                wait: float = 0.0, poll: float = 0.2):
    """Hold the lease ``portal:{member_id}``; yields True if held, False if not got in ``wait`` s.

    While held, a heartbeat thread renews it every ``ttl/3`` seconds, so a long sync keeps it and
    a killed process loses it after ``ttl`` (at once for a dead pid on this host).
    """
    owner = owner or owner_id()
    owner = f"{owner}:{threading.get_ident()}"
    name = f"portal:{portal}"
    db = open_db(db_path, migrate=False)
    try:
        deadline = time.monotonic() + wait
        got = try_lease(db, name, owner, ttl)
        while not got and time.monotonic() < deadline:
            time.sleep(poll)
            got = try_lease(db, name, owner, ttl)
        if not got:
            yield False
            return
        stop = threading.Event()

        def beat():
            hb = open_db(db_path, migrate=False)
            try:
                while not stop.wait(ttl / 3):
                    hb.execute("update locks set expires_at = ? where name = ? and owner = ?",
                               [time.time() + ttl, name, owner])
                    hb.conn.commit()
            except Exception as exc:            # the lease then simply expires
                log.warning("lock heartbeat for %s failed: %s", portal, exc)
            finally:
                hb.conn.close()

        t = threading.Thread(target=beat, name=f"lease-{portal}", daemon=True)
        t.start()
        try:
            yield True
        finally:
            stop.set()
            t.join(5)
            release_lease(db, name, owner)
    finally:
        db.conn.close()


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


# --- the scheduler ----------------------------------------------------------------------------

class Jobs:
    """What the scheduler runs, per portal; each callable takes ``member_id``.

    ``reconcile`` is the incremental sync (offline queue first, then the sync's own cursor);
    ``offline`` drains the offline queue alone, on a shorter clock;
    ``ensure_bindings`` re-binds events/placements the portal dropped (an app update drops them,
    DOCS api-reference/events/event-bind.md). ``portals`` lists the active installations.
    """

    def __init__(self, portals: Callable[[], list[str]], reconcile: Callable[[str], None],
                 ensure_bindings: Callable[[str], None] | None = None,
                 housekeeping: Callable[[], None] | None = None,
                 offline: Callable[[str], None] | None = None):
        self.portals, self.reconcile = portals, reconcile
        self.ensure_bindings, self.housekeeping, self.offline = ensure_bindings, housekeeping, offline


class Scheduler:
    """One ``BackgroundScheduler`` with a job per portal and kind, kept in step with the
    installations by a refresh job. ``run_now(portal)`` asks for an immediate reconcile (the
    worker calls it when an event could not be pinned to an object)."""

    KINDS = ("sync", "bindings", "offline")

    def __init__(self, jobs: Jobs, *, sync_minutes: float = 15.0, bindings_minutes: float = 60.0,
                 offline_minutes: float = 2.0, refresh_seconds: float = 60.0, timezone: str = "UTC"):
        self.jobs = jobs
        self.sync_minutes, self.bindings_minutes, self.refresh_seconds = sync_minutes, bindings_minutes, refresh_seconds
        self.offline_minutes = offline_minutes
        self.sched = BackgroundScheduler(timezone=timezone, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": 300})
        self._known: set[str] = set()
        self._guard = threading.Lock()

    def _safe(self, what: str, fn: Callable, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:        # a failing portal must not stop the others
            log.warning("%s %s failed: %s", what, " ".join(map(str, args)), short(exc))

    def _reconcile(self, portal: str) -> None:
        self._safe("reconcile", self.jobs.reconcile, portal)

    def _bindings(self, portal: str) -> None:
        if self.jobs.ensure_bindings:
            self._safe("bindings", self.jobs.ensure_bindings, portal)

    def _offline(self, portal: str) -> None:
        if self.jobs.offline:
            self._safe("offline queue", self.jobs.offline, portal)

    def refresh(self, first: bool = False) -> None:
        """Add jobs for new portals (first run at once: catch up after downtime), drop gone ones."""
        with self._guard:
            try:
                current = set(self.jobs.portals())
            except Exception as exc:
                log.warning("listing portals failed: %s", exc)
                return
            for p in sorted(current - self._known):
                self.sched.add_job(self._reconcile, "interval", minutes=self.sync_minutes, args=[p],
                                   id=f"sync:{p}", replace_existing=True,
                                   next_run_time=_soon())
                if self.jobs.ensure_bindings:
                    self.sched.add_job(self._bindings, "interval", minutes=self.bindings_minutes, args=[p],
                                       id=f"bindings:{p}", replace_existing=True,
                                       next_run_time=_soon() if first else None)
                if self.jobs.offline:
                    self.sched.add_job(self._offline, "interval", minutes=self.offline_minutes, args=[p],
                                       id=f"offline:{p}", replace_existing=True)
            for p in sorted(self._known - current):
                for kind in self.KINDS:
                    try:
                        self.sched.remove_job(f"{kind}:{p}")
                    except Exception:
                        pass
            self._known = current

    def run_now(self, portal: str) -> None:
        job = self.sched.get_job(f"sync:{portal}")
        if job is not None:
            job.modify(next_run_time=_soon())
        else:
            self.sched.add_job(self._reconcile, "date", args=[portal], id=f"sync-now:{portal}",
                               replace_existing=True, run_date=_soon())

    def start(self) -> "Scheduler":
        self.sched.add_job(self.refresh, "interval", seconds=self.refresh_seconds, id="portals",
                           replace_existing=True)
        if self.jobs.housekeeping:
            self.sched.add_job(self._safe, "interval", hours=6, args=["housekeeping", self.jobs.housekeeping],
                               id="housekeeping", replace_existing=True, next_run_time=_soon())
        self.sched.start()
        self.refresh(first=True)
        return self

    def shutdown(self, wait: bool = False) -> None:
        if self.sched.running:
            self.sched.shutdown(wait=wait)


def _soon():
    from datetime import datetime, timezone
    return datetime.now(timezone.utc)
