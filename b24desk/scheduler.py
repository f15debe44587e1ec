"""Periodic work of the server process: reconcile syncs, the offline queue, bindings, pruning.

APScheduler 3.x ``BackgroundScheduler`` with the in-memory job store (jobs are defined in code,
nothing is pickled), started only by the runtime of a server process (``b24desk/runtime.py``, from
``web/server.py`` or ``flask demo``; never by ``create_app``: ``flask sync``, tests and the reloader
must not spawn schedulers). Two locks of ``b24desk/leases.py`` keep the work single:
``scheduler_lock``, so that several server processes on one store do not all schedule, and the
portal's lease, which every sync run and inbox batch holds.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from apscheduler.schedulers.background import BackgroundScheduler

from .proc import short

log = logging.getLogger(__name__)


# --- the scheduler ----------------------------------------------------------------------------


class Jobs:
    """What the scheduler runs, per portal; each callable takes ``member_id``.

    ``reconcile`` is the incremental sync (offline queue first, then the sync's own cursor);
    ``offline`` drains the offline queue alone, on a shorter clock;
    ``ensure_bindings`` re-binds events/placements the portal dropped (an app update drops them,
    DOCS api-reference/events/event-bind.md). ``portals`` lists the active installations.
    """

    def __init__(
        self,
        portals: Callable[[], list[str]],
        reconcile: Callable[[str], None],
        ensure_bindings: Callable[[str], None] | None = None,
        housekeeping: Callable[[], None] | None = None,
        offline: Callable[[str], None] | None = None,
    ):
        self.portals, self.reconcile = portals, reconcile
        self.ensure_bindings, self.housekeeping, self.offline = ensure_bindings, housekeeping, offline


class Scheduler:
    """One ``BackgroundScheduler`` with a job per portal and kind, kept in step with the
    installations by a refresh job. ``run_now(portal)`` asks for an immediate reconcile (the
    worker calls it when an event could not be pinned to an object)."""

    KINDS = ("sync", "bindings", "offline")

    def __init__(
        self,
        jobs: Jobs,
        *,
        sync_minutes: float = 15.0,
        bindings_minutes: float = 60.0,
        offline_minutes: float = 2.0,
        refresh_seconds: float = 60.0,
        timezone: str = "UTC",
    ):
        self.jobs = jobs
        self.sync_minutes, self.bindings_minutes, self.refresh_seconds = sync_minutes, bindings_minutes, refresh_seconds
        self.offline_minutes = offline_minutes
        self.sched = BackgroundScheduler(
            timezone=timezone, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300}
        )
        self._known: set[str] = set()
        self._guard = threading.Lock()

    def _safe(self, what: str, fn: Callable, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:  # a failing portal must not stop the others
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
                self.sched.add_job(
                    self._reconcile,
                    "interval",
                    minutes=self.sync_minutes,
                    args=[p],
                    id=f"sync:{p}",
                    replace_existing=True,
                    next_run_time=_soon(),
                )
                if self.jobs.ensure_bindings:
                    self.sched.add_job(
                        self._bindings,
                        "interval",
                        minutes=self.bindings_minutes,
                        args=[p],
                        id=f"bindings:{p}",
                        replace_existing=True,
                        next_run_time=_soon() if first else None,
                    )
                if self.jobs.offline:
                    self.sched.add_job(
                        self._offline,
                        "interval",
                        minutes=self.offline_minutes,
                        args=[p],
                        id=f"offline:{p}",
                        replace_existing=True,
                    )
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
            self.sched.add_job(
                self._reconcile, "date", args=[portal], id=f"sync-now:{portal}", replace_existing=True, run_date=_soon()
            )

    def start(self) -> "Scheduler":
        self.sched.add_job(self.refresh, "interval", seconds=self.refresh_seconds, id="portals", replace_existing=True)
        if self.jobs.housekeeping:
            self.sched.add_job(
                self._safe,
                "interval",
                hours=6,
                args=["housekeeping", self.jobs.housekeeping],
                id="housekeeping",
                replace_existing=True,
                next_run_time=_soon(),
            )
        self.sched.start()
        self.refresh(first=True)
        return self

    def shutdown(self, wait: bool = False) -> None:
        if self.sched.running:
            self.sched.shutdown(wait=wait)


def _soon():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)
