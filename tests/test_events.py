"""POST /events end to end: the double delivers events over HTTP, the worker re-reads, the store
matches a clean sync; duplicates, out-of-order events and a crashed batch change nothing."""

from __future__ import annotations

import os
import time

import pytest
import requests
from events_harness import Harness, assert_equals_clean_sync, double, event_body

from b24desk import inbox


@pytest.fixture
def setup(tmp_path):
    d = double(seed=3, tickets=80)
    h = Harness(tmp_path, d)
    assert h.install_api().status_code == 200
    h.runtime.reconcile(d.member_id)  # the first (full) sync
    yield h
    h.close()
    d.stop()


def _mutate(d):
    """A morning of service-desk work, through the portal's own mutation API."""
    p = d.portal
    d.advance(600)
    tasks = p.task_list
    p.update_task(tasks[0]["id"], status=3)
    p.add_task_comment(tasks[0]["id"], tasks[0]["responsibleId"], "Looking into it")
    p.update_task(tasks[1]["id"], responsible_id=tasks[2]["responsibleId"])
    new = p.create_task(creator=tasks[3]["createdBy"], responsible=tasks[3]["responsibleId"], title="Printer on fire")
    d.advance(600)
    p.update_task(new["id"], status=5)
    p.delete_task(tasks[4]["id"])
    deals = p.item_lists[2]
    other = next(x["assignedById"] for x in deals if x["assignedById"] != deals[0]["assignedById"])
    p.reassign_item(2, deals[0]["id"], other)
    p.add_activity(2, deals[1]["id"], kind="email", direction=2)
    p.add_timeline_comment(2, deals[2]["id"], deals[2]["assignedById"], "called back")
    p.delete_item(2, deals[3]["id"])
    spa = p.item_lists[1038]
    p.set_item_field(1038, spa[0]["id"], "title", "Renamed")
    p.create_item(
        1038,
        creator=spa[1]["createdBy"],
        assigned=spa[1]["assignedById"],
        title="New SPA ticket",
        category_id=spa[1]["categoryId"],
    )
    d.advance(600)


def test_delivered_events_bring_the_store_to_a_clean_sync(setup, tmp_path):
    h = setup
    before = h.double.stats.requests
    _mutate(h.double)
    h.settle()
    delivered = [x for x in h.double.app.deliveries if x.get("status") == 200]
    assert len(delivered) >= 12
    assert all(x.get("status") == 200 for x in h.double.app.deliveries)
    with h.db() as db:
        assert inbox.counts(db).get(inbox.DONE) == len(delivered)
        deleted = {
            r["source_id"]
            for r in db.query("select source_id from tickets where portal = ? and deleted = 1", [h.double.member_id])
        }
    assert len(deleted) == 2  # the task and the deal deleted above
    assert h.double.stats.requests > before  # the worker read the changed objects back
    observed = assert_equals_clean_sync(h, tmp_path)
    # the reassigned deal: a transfer only a live observer can record (no history API for it)
    assert ("crm:2", str(h.double.portal.item_lists[2][0]["id"])) in observed


def test_duplicates_and_out_of_order_events_are_harmless(setup, tmp_path):
    h = setup
    d, p = h.double, h.double.portal
    d.advance(600)
    t = p.task_list[5]
    p.update_task(t["id"], status=3)
    gone = p.task_list[6]["id"]
    p.delete_task(gone)
    h.settle()
    url = h.url + "/events"
    hdr = {"Content-Type": "application/x-www-form-urlencoded"}
    # the same update twenty times, an ADD arriving after the DELETE, a DELETE of a live task
    bodies = [event_body(h, "ONTASKUPDATE", {"FIELDS_BEFORE": {"ID": t["id"]}, "FIELDS_AFTER": {"ID": t["id"]}})] * 20
    bodies += [event_body(h, "ONTASKADD", {"FIELDS_BEFORE": "undefined", "FIELDS_AFTER": {"ID": gone}})]
    bodies += [event_body(h, "ONTASKDELETE", {"FIELDS_BEFORE": {"ID": t["id"]}, "FIELDS_AFTER": "undefined"})]
    deal = p.item_lists[2][0]["id"]
    bodies += [event_body(h, "ONCRMDEALUPDATE", {"FIELDS": {"ID": deal}})] * 5
    for b in reversed(bodies):
        assert requests.post(url, data=b, headers=hdr, timeout=10).status_code == 200
    h.settle()
    with h.db() as db:
        row = db.execute(
            "select deleted from tickets where portal = ? and source = 'task' and source_id = ?",
            [d.member_id, str(gone)],
        ).fetchone()
        live = db.execute(
            "select deleted from tickets where portal = ? and source = 'task' and source_id = ?",
            [d.member_id, str(t["id"])],
        ).fetchone()
        snapshots = db.execute(
            "select count(*) from snapshots where portal = ? and source = 'task' and source_id = ?",
            [d.member_id, str(t["id"])],
        ).fetchone()[0]
    assert row[0] == 1 and live[0] == 0
    assert snapshots == 2  # before and after the one real change: replays add nothing
    assert_equals_clean_sync(h, tmp_path)


def test_a_batch_held_by_a_dead_process_is_taken_back(setup):
    h = setup
    d = h.double
    h.runtime.worker.stop()
    d.advance(600)
    t = d.portal.task_list[7]
    d.portal.update_task(t["id"], title="Picked up after a crash")
    assert d.app.wait_idle()
    with h.db() as db:
        # a worker of a process that died mid-batch: rows claimed, never finished
        dead = f"{os.uname().nodename}:{2**22 + 12345}:deadbeef"
        db.execute(
            "update inbox set state = 'working', claimed_by = ?, claimed_at = ? where state = 'new'",
            [dead, time.time()],
        )
        db.conn.commit()
        assert inbox.counts(db).get(inbox.WORKING) == 1
    h.runtime.worker.start()
    h.settle()
    with h.db() as db:
        title = db.execute(
            "select title from tickets where portal = ? and source = 'task' and source_id = ?",
            [d.member_id, str(t["id"])],
        ).fetchone()[0]
    assert title == "Picked up after a crash"


def test_failed_batch_goes_back_and_is_retried(setup):
    h = setup
    d = h.double
    d.advance(600)
    t = d.portal.task_list[8]
    d.faults.fail_next(3, status=401, error="NO_AUTH_FOUND")  # the portal refuses us three times
    d.portal.update_task(t["id"], title="After an outage")
    assert d.app.wait_idle()
    h.settle()
    with h.db() as db:
        row = db.execute("select attempts, error from inbox order by id desc limit 1").fetchone()
    assert row[0] > 1 and "NO_AUTH_FOUND" in row[1]  # retried, and the reason kept
    with h.db() as db:
        title = db.execute(
            "select title from tickets where portal = ? and source = 'task' and source_id = ?",
            [d.member_id, str(t["id"])],
        ).fetchone()[0]
    assert title == "After an outage"


def test_events_about_unchanged_objects_cost_one_read_each_50_to_a_request(setup, tmp_path):
    """A burst of events naming tasks and deals whose rows are as stored (already synced) reads
    only the rows, 50 commands to a batch; a comment event still re-reads its task's details, and a
    real change among them is still saved."""
    h = setup
    d, p = h.double, h.double.portal
    h.runtime.worker.stop()
    tasks = [t["id"] for t in p.task_list]
    deals = [x["id"] for x in p.item_lists[2]]
    d.advance(600)
    changed = tasks[9]
    p.update_task(changed, title="Changed among the unchanged")
    commented = tasks[10]
    assert d.app.wait_idle()
    hdr = {"Content-Type": "application/x-www-form-urlencoded"}
    bodies = [event_body(h, "ONTASKUPDATE", {"FIELDS_BEFORE": {"ID": t}, "FIELDS_AFTER": {"ID": t}}) for t in tasks]
    bodies += [event_body(h, "ONCRMDEALUPDATE", {"FIELDS": {"ID": x}}) for x in deals]
    bodies += [event_body(h, "ONTASKCOMMENTUPDATE", {"FIELDS_AFTER": {"ID": 1, "TASK_ID": commented}})]
    for b in bodies:
        assert requests.post(h.url + "/events", data=b, headers=hdr, timeout=10).status_code == 200
    d.stats.reset()
    w = inbox.Worker(h.db_path, h.runtime.worker.handler)  # the stopped worker's handler, drained here
    with h.db() as db:
        assert w.drain(db) >= len(bodies)
    calls = d.stats.by_method
    assert calls["tasks.task.get"] == len(tasks)
    assert calls["tasks.task.history.list"] == 2  # the changed task and the commented one
    assert calls["task.commentitem.getlist"] == 2
    assert calls["crm.stagehistory.list"] == 0  # no deal changed
    # gets packed 50 to a batch (+ one batch of details, + the deals' list-by-id batch)
    assert d.stats.requests <= -(-len(tasks) // 50) + 1 + 1 + 1
    with h.db() as db:
        title = db.execute(
            "select title from tickets where portal = ? and source = 'task' and source_id = ?",
            [d.member_id, str(changed)],
        ).fetchone()[0]
    assert title == "Changed among the unchanged"
    assert_equals_clean_sync(h, tmp_path)


def test_the_worker_lets_a_trickle_of_events_gather_before_reading(setup):
    """With ``fill_wait``, fewer than ``fill_rows`` young events wait; when the oldest has waited
    long enough (or enough have come) they go in one pass. drain() without it never waits."""
    h = setup
    p = h.double.portal
    h.runtime.worker.stop()
    w = inbox.Worker(h.db_path, h.runtime.worker.handler, fill_rows=3)
    hdr = {"Content-Type": "application/x-www-form-urlencoded"}
    tasks = [t["id"] for t in p.task_list[:3]]

    def post(t):
        b = event_body(h, "ONTASKUPDATE", {"FIELDS_BEFORE": {"ID": t}, "FIELDS_AFTER": {"ID": t}})
        assert requests.post(h.url + "/events", data=b, headers=hdr, timeout=10).status_code == 200

    post(tasks[0])
    post(tasks[1])
    with h.db() as db:
        w._hold = None
        assert w.drain(db, fill_wait=3600) == 0  # two young events: gathering
        assert w._hold is not None and w._hold > 0
        assert inbox.counts(db).get(inbox.NEW) == 2
        post(tasks[2])  # the third fills the batch
        assert w.drain(db, fill_wait=3600) == 3
        post(tasks[0])
        db.execute("update inbox set received_at = received_at - 7200 where state = 'new'")
        db.conn.commit()
        assert w.drain(db, fill_wait=3600) == 1  # old enough: no more waiting
        post(tasks[1])
        assert w.drain(db) == 1  # a direct drain never waits
