"""The production entry point: waitress serving the app, plus the inbox worker and the scheduler.

    python -m web.server [--host 0.0.0.0] [--port 8080] [--threads 8] [--background process]

(``python -m b24desk.server`` is the old name of the same command and still works.) The web
process runs waitress (one process, many threads) and nothing else, so an ack on ``POST /events``
never waits for the GIL behind the worker's parsing; a supervised child process
(:class:`Background`, restarted if it dies, gone when the web process is) runs the inbox worker
and, if it wins ``leases.scheduler_lock``, the scheduler (a process that loses keeps retrying, so a
restarted server takes over once its predecessor's child has exited). ``flask run`` serves the
same routes but starts neither (events wait in the inbox). The worker and the scheduler are the
core's :class:`b24desk.runtime.Runtime`; this module hands it the pages' after-sync warmer.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from b24desk.proc import short
from b24desk.runtime import FILL_WAIT, Runtime

from .factory import create_app

log = logging.getLogger(__name__)


def _background_main(parent: int, log_level: str, poll: float, synced=None) -> None:
    """The background process: inbox worker + scheduler, until the web process is gone. Each
    portal it syncs is put on ``synced`` (a queue the web process reads: its memo is the one
    viewers hit, so the warming happens there)."""
    import os

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app()
    runtime = Runtime(
        app,
        scheduler=True,
        worker=True,
        poll=poll,
        fill_wait=FILL_WAIT,
        after_sync=synced.put if synced is not None else None,
    ).start()
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
                log.warning("on_sync for %s failed: %s", portal, short(exc))

    def stop(self) -> None:
        self._stop.set()
        if self.synced is not None:
            self.synced.put(None)  # ends the relay
        if self.proc is not None and self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(15)
            if self.proc.is_alive():
                self.proc.kill()


def warm_hook(app):
    """The pages' after-sync warmer (reports/warm.py): the dashboard a viewer opens next is ready."""
    from reports.warm import Warmer

    return Warmer(app)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m web.server", description="Serve b24desk with waitress, the inbox worker and the scheduler."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--background",
        choices=("process", "thread", "none"),
        default="process",
        help="where the inbox worker and the scheduler run: a child process (default), "
        "threads of this process, or nowhere (another process drains the inbox)",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import waitress

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
    main()
