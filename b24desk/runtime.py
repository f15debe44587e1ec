"""The runtime of a server process: the inbox worker and the scheduler, wired to one app's config.

The web layer starts it (``web/server.py``, ``flask demo``) and hands it what it must call:
``after_sync`` (portal -> None, after each sync that ran; the pages warm their dashboard) and
``push`` (what is due to be pushed after a scheduled sync; default the core's
:func:`b24desk.push.digests.after_sync` through the installed app's clients). ``app`` is anything
with ``config`` (a mapping: ``DB``, ``PUBLIC_URL``, ``CLIENT_ID``, ``CLIENT_SECRET``, ``OAUTH_URL``,
``B24DESK``) and ``extensions`` (a dict where the running worker and runtime are published):
the Flask app, in practice, though nothing here imports Flask. Everything survives a restart:
the inbox and the offline-queue cursor are in the store, rows and leases of a killed process are
reclaimed, and every portal is reconciled when the scheduler starts.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Callable

from . import bindings, inbox, leases
from .client import B24Client
from .config import rest_limits
from .installations import get_installation
from .overrides import effective_config
from .proc import short
from .scheduler import Jobs, Scheduler
from .store import open_db

log = logging.getLogger(__name__)


# The server's worker lets events gather up to a second (or 500 of them) before it reads the
# objects they name: the re-reads then go 50 to a command (a second is two requests' worth at the
# portal's 2/s, so nothing is read later than the limit would allow anyway).
FILL_WAIT = 1.0


def push_due(db_path: str, portal: str, *, config: dict, client_id=None, client_secret=None, oauth_url=None) -> list:
    """The default ``push`` of :class:`Runtime`: what is due after a sync, through the app's clients."""
    from .push.digests import after_sync, open_clients

    clients = open_clients(db_path, portal, client_id=client_id, client_secret=client_secret, oauth_url=oauth_url)
    return after_sync(db_path, portal, config=config, clients=clients)


class Runtime:
    """The worker and the scheduler of one app, wired to its config (``app.config``)."""

    def __init__(
        self,
        app,
        *,
        scheduler: bool = True,
        worker: bool = True,
        poll: float = 1.0,
        sync_minutes: float | None = None,
        lock_wait: float = 600.0,
        retry_backoff: float = 5.0,
        after_sync: Callable[[str], None] | None = None,
        push: Callable[..., list] | None = push_due,
        fill_wait: float = 0.0,
    ):
        self.app = app
        self.after_sync = after_sync  # portal -> None, after each sync that ran (the pages warm the dashboard)
        self.push = push  # what is due after a scheduled sync (None: push nothing)
        cfg = app.config
        self.db_path = cfg["DB"]
        self.public_url = cfg.get("PUBLIC_URL") or ""
        self.client_id, self.client_secret = cfg.get("CLIENT_ID"), cfg.get("CLIENT_SECRET")
        self.oauth_url = cfg.get("OAUTH_URL")
        self.base_config = cfg.get("B24DESK") or {}
        self.sync_minutes = float(sync_minutes or self.base_config.get("sync_interval_minutes") or 15)
        self.want_scheduler, self.want_worker = scheduler, worker
        self.lock_wait = lock_wait
        self.scheduler: Scheduler | None = None
        self._sched_lock = None
        self.worker = inbox.Worker(
            self.db_path,
            inbox.make_handler(self.client_for, self.config_for, reconcile=self.request_reconcile, rebind=self.rebind),
            poll=poll,
            backoff=retry_backoff,
            fill_wait=fill_wait,
        )
        self._pending_reconcile: set[str] = set()
        self._guard = threading.Lock()
        self._stopped = False

    # -- wiring ---------------------------------------------------------------------------------
    def client_for(self, portal: str) -> B24Client:
        return B24Client.from_installation(
            self.db_path, portal, self.client_id, self.client_secret, self.oauth_url, **rest_limits(self.base_config)
        )

    def config_for(self, db, portal: str) -> dict:
        return effective_config(db, portal, self.base_config)

    def portals(self) -> list[str]:
        db = open_db(self.db_path)
        try:
            return [
                r[0]
                for r in db.execute(
                    "select member_id from installations where coalesce(active, 1) = 1 "
                    "and (access_token is not null or refresh_token is not null)"
                ).fetchall()
            ]
        finally:
            db.conn.close()

    def rebind(self, portal: str, client=None) -> dict:
        own = client is None
        client = client or self.client_for(portal)
        try:
            db = open_db(self.db_path)
            try:
                lang = (get_installation(db, portal) or {}).get("lang") or "en"
                config = self.config_for(db, portal)
            finally:
                db.conn.close()
            return bindings.ensure_bindings(client, self.public_url, config=config, lang=lang).as_dict()
        finally:
            if own:
                client.close()

    def request_reconcile(self, portal: str) -> None:
        """Ask for a reconcile soon (from inside a worker batch: never run it there, the batch
        holds the portal lease)."""
        if self.scheduler is not None:
            self.scheduler.run_now(portal)
        else:
            self._pending_reconcile.add(portal)

    def reconcile(self, portal: str) -> dict:
        """Catch up one portal: offline queue into the inbox, then the incremental sync; then
        ``after_sync``, once the portal lease's release has been written."""
        result = self._reconcile(portal)
        if "sources" in result:
            self._synced(portal)
        return result

    def _reconcile(self, portal: str) -> dict:
        from .client import AuthError
        from .sync import SyncBusy, run_sync

        with leases.portal(self.db_path, portal, wait=self.lock_wait) as got:
            if not got:
                return {"skipped": "portal busy"}
            db = open_db(self.db_path)
            try:
                client = self.client_for(portal)
            except AuthError as exc:
                db.conn.close()
                return {"skipped": exc.code}
            try:
                enqueued = 0
                try:
                    enqueued, _ = inbox.pull_offline(db, client, portal)  # blind records: the sync below
                except Exception as exc:  # no offline events on this plan / not admin: sync covers it
                    log.info("offline queue of %s not read: %s", portal, short(exc))
                config = self.config_for(db, portal)
                try:
                    reports = run_sync(client, db, None, config)
                except SyncBusy as exc:
                    return {"skipped": str(exc), "offline": enqueued}
                return {"offline": enqueued, "sources": [r.line() for r in reports]}
            finally:
                client.close()
                db.conn.close()
                if enqueued:
                    self.worker.notify()

    def _synced(self, portal: str) -> None:
        """Tell ``after_sync`` (it runs on the scheduler's thread: it must not block)."""
        if self.after_sync is None:
            return
        try:
            self.after_sync(portal)
        except Exception as exc:  # warming is an optimisation: never fail the sync for it
            log.warning("after_sync hook for %s failed: %s", portal, short(exc))

    def reconcile_and_push(self, portal: str) -> dict:
        """The scheduled job: reconcile, then what is due to be pushed -- digests in the portal's
        time zone, KPI alerts, deliveries earlier runs left unsure (``self.push``;
        pushes hold their own lease, not the portal's); ``after_sync`` last, after the pushes'
        own writes, so what it warms is current."""
        result = self._reconcile(portal)
        try:
            return self._push(portal, result)
        finally:
            if "sources" in result:
                self._synced(portal)

    def _push(self, portal: str, result: dict) -> dict:
        if self.push is None:
            return result
        try:
            db = open_db(self.db_path)
            try:
                config = self.config_for(db, portal)
            finally:
                db.conn.close()
            outcomes = self.push(
                self.db_path,
                portal,
                config=config,
                client_id=self.client_id,
                client_secret=self.client_secret,
                oauth_url=self.oauth_url,
            )
            result["push"] = {s: sum(1 for o in outcomes if o.state == s) for s in {o.state for o in outcomes}}
        except Exception as exc:  # a failed push must not fail the sync job
            log.warning("push after the sync of %s failed: %s", portal, short(exc))
            result["push"] = {"error": short(exc)}
        return result

    def drain_offline(self, portal: str) -> int:
        """Move the portal's offline queue into the inbox (cheap; the worker re-reads)."""
        with leases.portal(self.db_path, portal, wait=self.lock_wait) as got:
            if not got:
                return 0
            db = open_db(self.db_path)
            client = self.client_for(portal)
            try:
                enqueued, blind = inbox.pull_offline(db, client, portal)
            finally:
                client.close()
                db.conn.close()
        if blind:
            self.request_reconcile(portal)
        if enqueued:
            self.worker.notify()
        return enqueued

    def housekeeping(self) -> None:
        db = open_db(self.db_path)
        try:
            inbox.prune(db)
        finally:
            db.conn.close()

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> "Runtime":
        open_db(self.db_path).conn.close()  # migrate once, before any thread races to
        self.app.extensions["b24desk.runtime"] = self
        if self.want_worker:
            self.app.extensions["b24desk.worker"] = self.worker
            self.worker.start()
        if self.want_scheduler and not self._try_scheduler():
            log.info("another process runs the scheduler for %s; retrying", self.db_path)
            threading.Thread(target=self._retry_scheduler, name="b24desk-scheduler-lock", daemon=True).start()
        return self

    def _try_scheduler(self) -> bool:
        """Take the scheduler lock and start the scheduler; False if another process has it."""
        with self._guard:
            if self._stopped or self.scheduler is not None:
                return True
            stack = contextlib.ExitStack()
            if not stack.enter_context(leases.scheduler_lock(self.db_path)):
                stack.close()
                return False
            self._sched_lock = stack
            self.scheduler = Scheduler(
                Jobs(self.portals, self.reconcile_and_push, self.rebind, self.housekeeping, self.drain_offline),
                sync_minutes=self.sync_minutes,
                refresh_seconds=10,
            ).start()
            for p in sorted(self._pending_reconcile):
                self.scheduler.run_now(p)
            return True

    def _retry_scheduler(self, every: float = 2.0) -> None:
        """A process that held the lock (a predecessor still exiting) lets go: take over then."""
        while not self._stopped and not self._try_scheduler():
            time.sleep(every)

    def portal_added(self, portal: str) -> None:
        """A new install: schedule it now rather than at the next refresh."""
        if self.scheduler is not None:
            self.scheduler.refresh()

    def stop(self) -> None:
        with self._guard:
            self._stopped = True
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        if self._sched_lock is not None:
            self._sched_lock.close()
            self._sched_lock = None
        self.worker.stop()
        self.app.extensions.pop("b24desk.worker", None)
        self.app.extensions.pop("b24desk.runtime", None)
