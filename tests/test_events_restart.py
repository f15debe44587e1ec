"""The production server (``python -m b24desk.server``, waitress + worker + scheduler) killed with
SIGKILL while the portal sends events, then restarted: after the offline queue and the reconcile,
the store equals a clean sync. Events sent while it was down are lost by the portal (no retries),
so only the offline queue and the reconcile can bring them back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from events_harness import SOURCES, assert_equals_clean_sync, double

from b24desk import inbox
from b24desk.store import open_db

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m b24desk.server`` in a child process, configured through the environment."""

    def __init__(self, tmp_path, d):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_path = str(tmp_path / "server.db")
        cfg = (ROOT / "config" / "b24desk.toml").read_text()
        cfg = "\n".join(
            f"sources = {SOURCES!r}".replace("'", '"') if line.startswith("sources =") else line
            for line in cfg.splitlines()
        )
        (tmp_path / "b24desk.toml").write_text(cfg)
        self.env = {
            **os.environ,
            "B24DESK_DB": self.db_path,
            "B24DESK_PUBLIC_URL": self.url,
            "B24DESK_CLIENT_ID": d.client_id,
            "B24DESK_CLIENT_SECRET": d.client_secret,
            "B24DESK_OAUTH_URL": d.oauth_token_url,
            "B24DESK_CONFIG": str(tmp_path / "b24desk.toml"),
            "B24DESK_SECRET_KEY": "test",
            "PYTHONPATH": str(ROOT),
        }
        self.log = open(tmp_path / "server.log", "ab")
        self.proc = None

    def start(self, timeout: float = 60) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "b24desk.server", "--port", str(self.port), "--log-level", "WARNING"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(self.url + "/events", timeout=2).status_code == 405:
                    return
            except requests.ConnectionError:
                pass
            assert self.proc.poll() is None, "server exited"
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.1)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def _wait(cond, timeout: float = 180, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def _synced_since(db_path: str, portal: str, t: float) -> bool:
    db = open_db(db_path)
    try:
        rows = {
            r[0]: r[1]
            for r in db.execute(
                "select selector, updated_at from cursors where portal = ? and name = 'changed_since' "
                "and value is not null",
                [portal],
            ).fetchall()
        }
        return all(rows.get(sel, 0) >= int(t) for sel in SOURCES)
    finally:
        db.conn.close()


def _inbox_drained(db_path: str) -> bool:
    db = open_db(db_path)
    try:
        c = inbox.counts(db)
        return not c.get(inbox.NEW) and not c.get(inbox.WORKING)
    finally:
        db.conn.close()


def _traffic(d, n: int, stop: threading.Event, seed: int) -> int:
    """Service-desk changes on the portal, one every few milliseconds."""
    import random

    rng = random.Random(seed)
    p = d.portal
    done = 0
    for i in range(n):
        if stop.is_set():
            break
        d.advance(30)
        kind = rng.random()
        if kind < 0.45:
            t = rng.choice(p.task_list)
            if rng.random() < 0.5:
                p.update_task(t["id"], title=f"edit {seed}-{i}")
            else:
                p.add_task_comment(t["id"], t["responsibleId"], f"comment {seed}-{i}")
        elif kind < 0.55:
            t = rng.choice(p.task_list)
            p.create_task(creator=t["createdBy"], responsible=t["responsibleId"], title=f"new {seed}-{i}")
        elif kind < 0.8:
            it = rng.choice(p.item_lists[2])
            p.set_item_field(2, it["id"], "title", f"deal {seed}-{i}")
        elif kind < 0.95:
            it = rng.choice(p.item_lists[1038])
            p.add_activity(1038, it["id"], kind="call", direction=1)
        else:
            it = rng.choice(p.item_lists[2])
            p.delete_item(2, it["id"])
        done += 1
        time.sleep(0.004)
    return done


@pytest.mark.slow
def test_killed_while_events_arrive_then_restarted_converges_to_a_clean_sync(tmp_path):
    d = double(seed=11, tickets=120)
    server = Server(tmp_path, d)
    try:
        server.start()
        t0 = time.time()
        assert d.app.install_api(server.url + "/install").status_code == 200
        _wait(lambda: _synced_since(server.db_path, d.member_id, t0), what="the first sync")

        stop = threading.Event()
        worker = threading.Thread(target=_traffic, args=(d, 400, stop, 1))
        worker.start()
        _wait(lambda: len(d.app.deliveries) >= 60, what="some deliveries")
        server.kill()  # mid-stream, nothing flushed, locks held
        lost_from = len(d.app.deliveries)
        worker.join()
        assert d.app.wait_idle()
        failed = [x for x in d.app.deliveries[lost_from:] if "error" in x]
        assert failed, "some events must have been lost while the server was down"
        assert d.app.offline, "the portal kept them in the offline queue"

        restarted = time.time()
        server.start()
        _wait(lambda: not [r for r in d.app.offline if r["PROCESS_ID"] is None], what="the offline queue to be read")
        _wait(lambda: _synced_since(server.db_path, d.member_id, restarted), what="the reconcile")
        _wait(lambda: _inbox_drained(server.db_path), what="the inbox")

        class _H:  # the comparator reads the server's store
            double = d
            db_path = server.db_path

            @staticmethod
            def db():
                import contextlib

                @contextlib.contextmanager
                def cm():
                    db = open_db(server.db_path)
                    try:
                        yield db
                    finally:
                        db.conn.close()

                return cm()

        assert_equals_clean_sync(_H, tmp_path)
        db = open_db(server.db_path)
        try:
            c = inbox.counts(db)
        finally:
            db.conn.close()
        assert c.get(inbox.DONE, 0) > 0 and not c.get(inbox.FAILED)
    finally:
        server.stop()
        d.stop()
