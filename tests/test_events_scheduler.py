"""The pieces that keep work single and resumable: portal leases, the scheduler lock and its
takeover, the scheduler's per-portal jobs, inbox claims and retries, the offline-queue cursor."""

from __future__ import annotations

import socket
import threading
import time

from events_harness import double

from app import create_app
from b24desk import inbox
from b24desk.client import B24Client
from b24desk.leases import portal as portal_lock
from b24desk.leases import scheduler_lock
from b24desk.runtime import Runtime
from b24desk.scheduler import Jobs, Scheduler
from b24desk.store import get_cursor, open_db, set_cursor


def _wait(cond, timeout=60):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_portal_lock_is_exclusive_and_released(db_path, db):
    with portal_lock(db_path, "p1", "a") as first:
        assert first
        with portal_lock(db_path, "p1", "b", wait=0) as second:
            assert not second
        with portal_lock(db_path, "p2", "b", wait=0) as other_portal:
            assert other_portal
    with portal_lock(db_path, "p1", "b", wait=0) as again:
        assert again


def test_a_dead_process_lease_is_taken_over_at_once(db_path, db):
    dead = f"{socket.gethostname()}:{2**22 + 4321}:x:1"
    db.execute("insert into locks (name, owner, expires_at) values (?, ?, ?)", ["portal:p1", dead, time.time() + 3600])
    db.conn.commit()
    with portal_lock(db_path, "p1", "me", wait=0) as got:
        assert got
    # a live holder on another host keeps it until its lease expires
    db.execute(
        "insert into locks (name, owner, expires_at) values (?, ?, ?)",
        ["portal:p1", "elsewhere:1:x:1", time.time() + 3600],
    )
    db.conn.commit()
    with portal_lock(db_path, "p1", "me", wait=0) as got:
        assert not got


def test_scheduler_lock_admits_one_holder(db_path):
    with scheduler_lock(db_path) as first:
        assert first
        with scheduler_lock(db_path) as second:
            assert not second
    with scheduler_lock(db_path) as third:
        assert third


def test_scheduler_keeps_one_job_set_per_portal_and_runs_now():
    portals = ["a", "b"]
    ran = {p: threading.Event() for p in ("a", "b", "c")}
    s = Scheduler(
        Jobs(lambda: list(portals), lambda p: ran[p].set(), offline=lambda p: None),
        sync_minutes=60,
        refresh_seconds=3600,
    ).start()
    try:
        assert ran["a"].wait(30) and ran["b"].wait(30)  # caught up at start
        ids = {j.id for j in s.sched.get_jobs()}
        assert {"sync:a", "sync:b", "offline:a", "offline:b"} <= ids
        portals[:] = ["b", "c"]
        s.refresh()
        ids = {j.id for j in s.sched.get_jobs()}
        assert "sync:a" not in ids and "offline:a" not in ids and "sync:c" in ids
        ran["b"].clear()
        s.run_now("b")
        assert ran["b"].wait(30)
    finally:
        s.shutdown()


def test_a_second_runtime_takes_over_the_scheduler_when_the_first_stops(tmp_path):
    apps = [create_app({"TESTING": True, "DB": str(tmp_path / "s.db"), "SECRET_KEY": "t"}) for _ in range(2)]
    first = Runtime(apps[0], worker=False).start()
    second = Runtime(apps[1], worker=False).start()
    try:
        assert first.scheduler is not None and second.scheduler is None
        first.stop()
        _wait(lambda: second.scheduler is not None)
    finally:
        first.stop()
        second.stop()


def test_claims_retries_and_failure(db):
    pairs = [("event", "ONTASKUPDATE"), ("data[FIELDS_AFTER][ID]", "5"), ("auth[access_token]", "secret")]
    for _ in range(3):
        inbox.enqueue(db, "p1", "ONTASKUPDATE", pairs)
    inbox.enqueue(db, "p2", "ONTASKUPDATE", pairs)
    assert "secret" not in db.execute("select group_concat(body) from inbox").fetchone()[0]
    rows = inbox.claim(db, "p1", "w1", limit=2)
    assert [r["portal"] for r in rows] == ["p1", "p1"]
    assert inbox.claim(db, "p1", "w2", limit=10)[0]["id"] == 3  # the third, not those held
    inbox.give_back(db, rows, "boom", backoff=3600)
    assert inbox.claim(db, "p1", "w3") == []  # not before its retry time
    assert sorted(inbox.pending_portals(db)) == ["p2"]
    now = time.time() + 10**6
    for _ in range(inbox.MAX_ATTEMPTS):
        got = inbox.claim(db, "p1", "w4", now=now)
        if not got:
            break
        inbox.give_back(db, got, "boom", backoff=0)
    states = dict(db.execute("select state, count(*) from inbox where portal = 'p1' group by state").fetchall())
    assert states.get(inbox.FAILED) == 2 and states.get(inbox.WORKING) == 1


def test_offline_batch_reserved_before_a_crash_is_read_again(tmp_path):
    d = double(seed=4, tickets=20)
    try:
        db = open_db(str(tmp_path / "o.db"))
        tok = d.issue_tokens(1)
        client = B24Client.from_access_token(d.client_endpoint, tok["access_token"], portal_id=d.member_id)
        client.call("event.bind", {"event": "ONTASKUPDATE", "event_type": "offline"})
        for t in d.portal.task_list[:3]:
            d.portal.update_task(t["id"], title="changed offline")
        # a previous run reserved a batch, wrote its process id down, and died before clearing it
        reserved = client.call("event.offline.get", {"clear": 0, "limit": 2})
        set_cursor(db, d.member_id, *inbox.OFFLINE_CURSOR, reserved["process_id"])
        enqueued, blind = inbox.pull_offline(db, client, d.member_id)
        assert (enqueued, blind) == (3, 0)
        assert d.app.offline == [] and get_cursor(db, d.member_id, *inbox.OFFLINE_CURSOR) is None
        ids = sorted(
            int(c.id)
            for r in db.query("select * from inbox")
            for c in inbox.changes_of(r["event"], inbox.decode(r["body"]).get("data"))
        )
        assert ids == sorted(t["id"] for t in d.portal.task_list[:3])
        db.conn.close()
    finally:
        d.stop()


def test_a_clean_uninstall_during_a_batch_is_finished_after_it(tmp_path):
    from b24desk.installations import save_installation
    from b24desk.model import Bundle, Ticket
    from b24desk.store import save_bundle

    path = str(tmp_path / "u.db")
    db = open_db(path)
    save_installation(db, member_id="p1", application_token="t" * 32, access_token="a", refresh_token="r")
    with portal_lock(path, "p1", "batch") as held:  # a batch of p1 is running...
        assert held
        inbox.uninstall(db, "p1", clean=True)  # ...when ONAPPUNINSTALL CLEAN=1 arrives
        save_bundle(db, Bundle(Ticket(portal="p1", source="task", source_id="1")))  # its late write
        assert inbox.purge_pending(db, path, "worker") == 0  # lease still held
    assert inbox.purge_pending(db, path, "worker") == 1
    assert db.execute("select count(*) from tickets").fetchone()[0] == 0
    assert db.execute("select count(*) from locks where name like 'purge:%'").fetchone()[0] == 0
    db.conn.close()
