"""The production entry point: waitress serving the app, plus the inbox worker and the scheduler.

    python -m b24desk.server [--host 0.0.0.0] [--port 8080] [--threads 8] [--background process]

The web process runs waitress (one process, many threads) and nothing else, so an ack on
``POST /events`` never waits for the GIL behind the worker's parsing; a supervised child process
(:class:`Background`, restarted if it dies, gone when the web process is) runs the inbox worker
and, if it wins ``scheduler_lock``, the scheduler (a process that loses keeps retrying, so a
restarted server takes over once its predecessor's child has exited). ``flask run`` serves the
same routes but starts neither (events wait in the inbox). Everything survives a restart: the
inbox and the offline-queue cursor are in the store, rows and leases of a killed process are
reclaimed, and every portal is reconciled when the scheduler starts.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import time

from . import bindings, inbox
from .client import B24Client
from .config import rest_limits
from .installations import get_installation
from .overrides import effective_config
from .scheduler import Jobs, Scheduler, portal_lock, scheduler_lock
from .store import open_db

log = logging.getLogger("b24desk.server")


# The server's worker lets events gather up to a second (or 500 of them) before it reads the
# objects they name: the re-reads then go 50 to a command (a second is two requests' worth at the
# portal's 2/s, so nothing is read later than the limit would allow anyway).
FILL_WAIT = 1.0


class Runtime:
    """The worker and the scheduler of one app, wired to its config (``app.config``)."""

    def __init__(self, app, *, scheduler: bool = True, worker: bool = True, poll: float = 1.0,
                 sync_minutes: float | None = None, lock_wait: float = 600.0, retry_backoff: float = 5.0,
                 after_sync=None, fill_wait: float = 0.0):
        self.app = app
        self.after_sync = after_sync    # portal -> None, after each sync that ran (reports warm the dashboard)
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
        self.worker = inbox.Worker(self.db_path, inbox.make_handler(
            self.client_for, self.config_for, reconcile=self.request_reconcile, rebind=self.rebind),
            poll=poll, backoff=retry_backoff, fill_wait=fill_wait)
        self._pending_reconcile: set[str] = set()
        self._guard = threading.Lock()
        self._stopped = False

    # -- wiring ---------------------------------------------------------------------------------
    def client_for(self, portal: str) -> B24Client:
        return B24Client.from_installation(self.db_path, portal, self.client_id, self.client_secret,
                                           self.oauth_url, **rest_limits(self.base_config))

    def config_for(self, db, portal: str) -> dict:
        return effective_config(db, portal, self.base_config)

    def portals(self) -> list[str]:
        db = open_db(self.db_path)
        try:
            return [r[0] for r in db.execute(
                "select member_id from installations where coalesce(active, 1) = 1 "
                "and (access_token is not null or refresh_token is not null)").fetchall()]
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
        holds the portal lock)."""
        if self.scheduler is not None:
            self.scheduler.run_now(portal)
        else:
            self._pending_reconcile.add(portal)

    def reconcile(self, portal: str) -> dict:
        """Catch up one portal: offline queue into the inbox, then the incremental sync; then
        ``after_sync``, once the portal lock's release has been written."""
        result = self._reconcile(portal)
        if "sources" in result:
            self._synced(portal)
        return result

    def _reconcile(self, portal: str) -> dict:
        from .client import AuthError
        from .sync import SyncBusy, run_sync
        with portal_lock(self.db_path, portal, ttl=120, wait=self.lock_wait) as got:
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
                    enqueued, _ = inbox.pull_offline(db, client, portal)   # blind records: the sync below
                except Exception as exc:    # no offline events on this plan / not admin: sync covers it
                    log.info("offline queue of %s not read: %s", portal, inbox._short(exc))
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
        except Exception as exc:        # warming is an optimisation: never fail the sync for it
            log.warning("after_sync hook for %s failed: %s", portal, inbox._short(exc))

    def reconcile_and_push(self, portal: str) -> dict:
        """The scheduled job: reconcile, then what is due to be pushed -- digests in the portal's
        time zone, KPI alerts, deliveries earlier runs left unsure (reports/push.py ``after_sync``;
        pushes hold their own lease, not the portal lock); ``after_sync`` last, after the pushes'
        own writes, so what it warms is current."""
        result = self._reconcile(portal)
        try:
            return self._push(portal, result)
        finally:
            if "sources" in result:
                self._synced(portal)

    def _push(self, portal: str, result: dict) -> dict:
        try:
            from reports.push import after_sync, open_clients
        except ImportError:             # the reports package is optional for the core
            return result
        try:
            db = open_db(self.db_path)
            try:
                config = self.config_for(db, portal)
            finally:
                db.conn.close()
            clients = open_clients(self.db_path, portal, client_id=self.client_id,
                                   client_secret=self.client_secret, oauth_url=self.oauth_url)
            outcomes = after_sync(self.db_path, portal, config=config, clients=clients)
            result["push"] = {s: sum(1 for o in outcomes if o.state == s) for s in {o.state for o in outcomes}}
        except Exception as exc:        # a failed push must not fail the sync job
            log.warning("push after the sync of %s failed: %s", portal, inbox._short(exc))
            result["push"] = {"error": inbox._short(exc)}
        return result

    def drain_offline(self, portal: str) -> int:
        """Move the portal's offline queue into the inbox (cheap; the worker re-reads)."""
        with portal_lock(self.db_path, portal, ttl=120, wait=self.lock_wait) as got:
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
        open_db(self.db_path).conn.close()      # migrate once, before any thread races to
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
            if not stack.enter_context(scheduler_lock(self.db_path)):
                stack.close()
                return False
            self._sched_lock = stack
            self.scheduler = Scheduler(Jobs(self.portals, self.reconcile_and_push, self.rebind, self.housekeeping,
                                            self.drain_offline),
                                       sync_minutes=self.sync_minutes, refresh_seconds=10).start()
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


def _background_main(parent: int, log_level: str, poll: float, synced=None) -> None:
    """The background process: inbox worker + scheduler, until the web process is gone. Each
    portal it syncs is put on ``synced`` (a queue the web process reads: its memo is the one
    viewers hit, so the warming happens there)."""
    import os
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from app import create_app
    app = create_app()
    runtime = Runtime(app, scheduler=True, worker=True, poll=poll, fill_wait=FILL_WAIT,
                      after_sync=synced.put if synced is not None else None).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    try:
        while not stop.is_set() and os.getppid() == parent:
            stop.wait(1.0)
    finally:
        runtime.stop()


class Background:
    """Runs :func:`_background_main` in a child process and restarts it if it dies, so request
    threads never share a GIL with the worker's parsing and mapping (the ack latency target)."""

    def __init__(self, log_level: str, poll: float = 0.2, on_sync=None):
        import multiprocessing as mp
        import os
        self.ctx = mp.get_context("spawn")
        self.on_sync = on_sync
        self.synced = self.ctx.SimpleQueue() if on_sync is not None else None
        self.args = (os.getpid(), log_level, poll, self.synced)
        self.proc = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="b24desk-background", daemon=True)

    def _supervise(self) -> None:
        while not self._stop.is_set():
            self.proc = self.ctx.Process(target=_background_main, args=self.args, name="b24desk-background")
            self.proc.start()
            self.proc.join()
            if not self._stop.is_set():
                log.warning("background process exited (%s); restarting", self.proc.exitcode)
                self._stop.wait(1.0)

    def start(self) -> "Background":
        self._thread.start()
        if self.synced is not None:
            threading.Thread(target=self._relay, name="b24desk-synced", daemon=True).start()
        return self

    def _relay(self) -> None:
        """Portals the child synced -> ``on_sync`` in this process."""
        while not self._stop.is_set():
            try:
                portal = self.synced.get()
            except (EOFError, OSError):
                return
            if portal is None:
                return
            try:
                self.on_sync(portal)
            except Exception as exc:
                log.warning("on_sync for %s failed: %s", portal, inbox._short(exc))

    def stop(self) -> None:
        self._stop.set()
        if self.synced is not None:
            self.synced.put(None)       # ends the relay
        if self.proc is not None and self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(15)
            if self.proc.is_alive():
                self.proc.kill()


def warm_hook(app):
    """The web layer's after-sync warmer (reports/warm.py), if the reports package is there."""
    try:
        from reports.warm import Warmer
    except ImportError:
        return None
    return Warmer(app)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m b24desk.server",
                                     description="Serve b24desk with waitress, the inbox worker and the scheduler.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--background", choices=("process", "thread", "none"), default="process",
                        help="where the inbox worker and the scheduler run: a child process (default), "
                             "threads of this process, or nowhere (another process drains the inbox)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import waitress

    from app import create_app
    app = create_app()
    in_process = args.background == "thread"
    warm = warm_hook(app)
    runtime = Runtime(app, scheduler=in_process, worker=in_process, after_sync=warm, fill_wait=FILL_WAIT).start()
    background = Background(args.log_level, on_sync=warm).start() if args.background == "process" else None

    def _term(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, _term)
    log.info("serving on http://%s:%d (public URL %s)", args.host, args.port, runtime.public_url)
    try:
        waitress.serve(app, host=args.host, port=args.port, threads=args.threads, ident="b24desk")
    finally:
        if background is not None:
            background.stop()
        runtime.stop()


if __name__ == "__main__":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    main()
