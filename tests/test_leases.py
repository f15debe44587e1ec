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
        time.sleep(0.8)  # longer than the ttl: renewed meanwhile
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
        with leases.hold(db, "job") as again:  # same thread, no owner named: re-entered
            assert again
        time.sleep(0.1)
        assert order == []  # the other thread waits...
        order.append("released")
    t.join(5)
    assert order == ["released", True]  # ...and gets it after the release


def test_marks_remember_work_to_finish(db):
    leases.mark(db, "purge:p1", at=123.0)
    assert leases.marks(db, "purge:") == [("p1", 123.0)]
    leases.unmark(db, "purge:p1")
    assert leases.marks(db, "purge:") == []


def test_a_sync_under_the_worker_s_lease_takes_no_second_one(db_path, db):
    import pytest

    from b24desk.store import open_db
    from b24desk.sync import SyncBusy, portal_lease

    errors = []

    def flask_sync_elsewhere():
        other = open_db(db_path)
        try:
            with portal_lease(other, "p1"):
                pass
        except SyncBusy as exc:
            errors.append(str(exc))
        finally:
            other.conn.close()

    with leases.portal(db_path, "p1", "worker") as got:  # an inbox batch of p1...
        assert got
        with portal_lease(db, "p1"):  # ...whose handler syncs: re-entered
            assert [r[0] for r in db.execute("select name from locks")] == ["portal:p1"]
            t = threading.Thread(target=flask_sync_elsewhere)
            t.start()
            t.join(10)
        assert leases.holder(db, "portal:p1").startswith("worker:")  # still the worker's
    assert len(errors) == 1 and "another sync of this portal is running" in errors[0]
    with pytest.raises(SyncBusy):
        db.execute("insert into locks values ('portal:p2', 'elsewhere:1', ?)", [time.time() + 60])
        db.conn.commit()
        with portal_lease(db, "p2"):
            pass
