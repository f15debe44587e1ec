"""Several writers on one store: a write block takes the write lock at ``BEGIN`` (``BEGIN
IMMEDIATE``), so the busy timeout applies and nobody gets ``database is locked`` -- not two
connections racing, and not four portals installed back to back whose first syncs run at once."""

from __future__ import annotations

import logging
import threading
import time

from events_harness import Harness, double

from b24desk.runtime import Runtime
from b24desk.store import get_cursor, get_setting, open_db, set_setting


def test_a_read_then_write_block_waits_for_the_other_writer(tmp_path):
    """Block A reads, another connection writes meanwhile, then A writes: with a deferred BEGIN
    the second write fails at once ("database is locked", the reader's snapshot is stale); with
    the lock taken at BEGIN the other writer waits for A, and both writes land."""
    path = tmp_path / "s.db"
    a = open_db(path)
    errors, started = [], threading.Event()

    def other_writer():
        b = open_db(path)  # its own connection, in its own thread
        started.set()
        try:
            with b.atomic():
                set_setting(b, "p", "b", 2)
        except Exception as exc:  # what the deferred BEGIN gave
            errors.append(exc)

    with a.atomic():
        assert get_setting(a, "p", "a") is None  # the read first
        t = threading.Thread(target=other_writer)
        t.start()
        started.wait()
        time.sleep(0.3)  # the other writer is at its write now
        set_setting(a, "p", "a", 1)
    t.join(30)
    assert errors == []
    assert get_setting(a, "p", "a") == 1 and get_setting(a, "p", "b") == 2


def test_four_portals_installed_back_to_back_all_finish_their_first_sync(tmp_path, caplog):
    first = double(seed=20, tickets=50, member_id="0" * 32)
    doubles = [first] + [double(seed=20 + i, tickets=50, member_id=f"{i}" * 32, oauth=first) for i in range(1, 4)]
    h = Harness(tmp_path, doubles[0], runtime=False)
    runtime = Runtime(h.app, scheduler=True, poll=0.05, retry_backoff=0.2, sync_minutes=60, push=None).start()
    try:
        with caplog.at_level(logging.INFO):
            answers = [h.install_api(d) for d in doubles]  # each schedules its first sync now
            assert [r.status_code for r in answers] == [200] * 4
            deadline = time.monotonic() + 240  # a bound on waiting for the work, not a timing check
            while True:
                with h.db() as db:
                    done = [
                        all(
                            get_cursor(db, d.member_id, s, "changed_since") is not None
                            for s in ("tasks", "deals", "crm:1038")
                        )
                        for d in doubles
                    ]
                if all(done) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        assert all(done), done
        with h.db() as db:
            for d in doubles:
                n = db.execute("select count(*) from tickets where portal = ?", [d.member_id]).fetchone()[0]
                assert n > 0
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert "database is locked" not in text and "FAILED" not in text
    finally:
        runtime.stop()
        h.close()
        for d in doubles:
            d.stop()
