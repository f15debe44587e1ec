"""The one lease module: heartbeat, threads queueing, re-entry, marks."""
from __future__ import annotations

import threading
import time

from b24desk import leases


def _row(db, name):
    return db.execute("select owner, expires_at from locks where name = ?", [name]).fetchone()


def test_the_heartbeat_keeps_a_long_holder_s_lease(db_path, db):
    with leases.hold(db_path, "job", ttl=0.3) as got:
        assert got
        first = _row(db, "job")[1]
        time.sleep(0.8)                                   # longer than the ttl: renewed meanwhile
        assert _row(db, "job")[1] > first
        assert leases.holder(db, "job") is not None
        assert not leases.try_take(db, "job", "elsewhere:1", 10)
    assert _row(db, "job") is None


def test_threads_of_a_process_queue_and_a_nested_hold_re_enters(db_path, db):
    order = []

    def other():
        with leases.hold(db_path, "job", wait=5) as got:
            order.append(got)

    with leases.hold(db, "job") as got:
        assert got
        t = threading.Thread(target=other)
        t.start()
        with leases.hold(db, "job") as again:            # same thread, no owner named: re-entered
            assert again
        time.sleep(0.1)
        assert order == []                                # the other thread waits...
        order.append("released")
    t.join(5)
    assert order == ["released", True]                    # ...and gets it after the release


def test_marks_remember_work_to_finish(db):
    leases.mark(db, "purge:p1", at=123.0)
    assert leases.marks(db, "purge:") == [("p1", 123.0)]
    leases.unmark(db, "purge:p1")
    assert leases.marks(db, "purge:") == []
