"""The analytics memo's freshness policy (reports/cache.py) and the after-sync warm (reports/warm.py).

A write makes a cached figure stale: the dashboard and its drilldown are served the old entry at
once (marked stale) while one background thread recomputes; the next request is fresh. Beyond the
max staleness, or for exact callers (/api/kpi, exports), the request computes synchronously.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from viewer_tokens import trusted_token

from app import create_app
from b24desk.model import Event, Ticket
from b24desk.store import open_db
from b24desk.viewer import ADMIN, Viewer
from reports import data
from reports.cache import Memo
from reports.warm import Warmer, warm_dashboard

ROOT = Path(__file__).resolve().parent.parent


def _write(path: str, value: int) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("create table if not exists t (v)")
        conn.execute("insert into t values (?)", [value])
    conn.close()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def store(tmp_path):
    path = str(tmp_path / "s.db")
    _write(path, 0)
    return path


def test_a_write_serves_the_old_entry_marked_stale_then_the_recomputed_one(store):
    memo = Memo(max_stale=600, clock=Clock())
    assert memo.lookup(store, "k", lambda: "v1").value == "v1"
    assert memo.lookup(store, "k", lambda: "never").value == "v1"  # same version: a hit
    _write(store, 1)
    gate, calls = threading.Event(), []

    def slow():
        calls.append(1)
        gate.wait(30)
        return "v2"

    served = memo.lookup(store, "k", slow)
    assert (served.value, served.stale) == ("v1", True)  # at once, while slow() waits
    again = memo.lookup(store, "k", slow)  # still stale: no second recompute
    assert (again.value, again.stale) == ("v1", True)
    gate.set()
    assert memo.wait_idle(30)
    assert calls == [1]
    fresh = memo.lookup(store, "k", lambda: "never")
    assert (fresh.value, fresh.stale) == ("v2", False)


def test_beyond_max_staleness_the_request_computes_synchronously(store):
    clock = Clock()
    memo = Memo(max_stale=600, clock=clock)
    memo.lookup(store, "k", lambda: "v1")
    clock.now += 599
    memo.lookup(store, "k", lambda: "never")  # unchanged store: known current again now
    _write(store, 1)
    clock.now += 600
    assert memo.lookup(store, "k", lambda: "v2").stale  # 600 s since last known current: stale allowed
    assert memo.wait_idle(30)
    _write(store, 2)
    clock.now += 601
    served = memo.lookup(store, "k", lambda: "v3")
    assert (served.value, served.stale) == ("v3", False)
    assert not memo._refreshing


def test_a_ttl_entry_is_refreshed_in_the_background_once_old_though_the_store_is_unchanged(store):
    """The dashboard's "now" panel depends on the clock: a minute old, it is served while one
    background recompute runs; younger, it is a plain hit."""
    clock = Clock()
    memo = Memo(max_stale=600, clock=clock)
    assert memo.lookup(store, "now", lambda: "12:00", ttl=60).value == "12:00"
    clock.now += 59
    assert memo.lookup(store, "now", lambda: "never", ttl=60) == memo.lookup(store, "now", lambda: "never", ttl=60)
    assert not memo.lookup(store, "now", lambda: "never", ttl=60).stale
    clock.now += 2
    served = memo.lookup(store, "now", lambda: "12:01", ttl=60)
    assert (served.value, served.stale) == ("12:00", True)
    assert memo.wait_idle(30)
    fresh = memo.lookup(store, "now", lambda: "never", ttl=60)
    assert (fresh.value, fresh.stale) == ("12:01", False)
    # unversioned: a write inside the minute changes nothing, the minute still does
    memo.lookup(store, "clock", lambda: "a", ttl=60, versioned=False)
    _write(store, 5)
    assert memo.lookup(store, "clock", lambda: "never", ttl=60, versioned=False).value == "a"
    assert memo.lookup(store, "now", lambda: "12:02", ttl=60).stale  # versioned: the write counts
    clock.now += 61
    assert memo.lookup(store, "clock", lambda: "b", ttl=60, versioned=False).stale


def test_an_exact_lookup_never_gets_an_entry_older_than_the_newest_write(store):
    memo = Memo(max_stale=600, clock=Clock())
    memo.lookup(store, "k", lambda: "v1")
    _write(store, 1)
    served = memo.lookup(store, "k", lambda: "v2", exact=True)
    assert (served.value, served.stale) == ("v2", False)
    assert memo.lookup(store, "k", lambda: "never").value == "v2"


def test_a_failed_background_recompute_keeps_the_old_entry(store):
    memo = Memo(max_stale=600, clock=Clock())
    memo.lookup(store, "k", lambda: "v1")
    _write(store, 1)

    def boom():
        raise RuntimeError("engine down")

    assert memo.lookup(store, "k", boom).value == "v1"
    assert memo.wait_idle(30)
    served = memo.lookup(store, "k", lambda: "v2")  # retried in the background
    assert (served.value, served.stale) == ("v1", True)
    assert memo.wait_idle(30)
    assert memo.lookup(store, "k", lambda: "never").value == "v2"


def test_two_stores_never_share_entries(tmp_path):
    a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    _write(a, 0)
    _write(b, 0)
    memo = Memo()
    assert memo.lookup(a, "k", lambda: "A").value == "A"
    assert memo.lookup(b, "k", lambda: "B").value == "B"


# --- through the app ------------------------------------------------------------------------


def _bench():
    spec = importlib.util.spec_from_file_location("bench_store", ROOT / "bench" / "bench_store.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def seeded(tmp_path):
    bench = _bench()
    path = str(tmp_path / "b24desk.db")
    now = int(time.time())
    db = open_db(path)
    bench.seed_store(db, 300, now=now)
    db.conn.close()
    app = create_app({"TESTING": True, "DB": path, "SECRET_KEY": "test"})
    token = trusted_token(path, Viewer(portal=bench.PORTAL, user_id="101", role=ADMIN, name="Admin"))
    data.MEMO.clear()
    yield app, token, bench.PORTAL, now, path
    data.MEMO.wait_idle(60)
    data.MEMO.clear()


def _add_ticket(path: str, portal: str, at: int) -> None:
    db = open_db(path)
    t = Ticket(
        portal=portal,
        source="task",
        source_id="999999",
        title="New",
        priority="normal",
        author_id="c1",
        customer="c1",
        responsible_id="201",
        created_at=at,
        selector="tasks",
    )
    with db.atomic():
        db["tickets"].insert(t.row() | {"synced_at": at}, pk=("portal", "source", "source_id"), replace=True)
        db["events"].insert(
            Event(portal, "task", "999999", "h:c", "created", at, "c1").row(),
            pk=("portal", "source", "source_id", "key"),
            replace=True,
        )
    db.conn.close()


def test_pages_serve_stale_then_fresh_and_the_api_stays_exact(seeded):
    app, token, portal, now, path = seeded
    c = app.test_client()
    day = time.strftime("%Y-%m-%d", time.gmtime(now - 20 * 86400))
    end = time.strftime("%Y-%m-%d", time.gmtime(now + 2 * 86400))
    q = f"from={day}&to={end}"
    auth = {"Authorization": f"Bearer {token}"}

    def total_api():
        r = c.get(f"/api/kpi?{q}", headers=auth)
        assert r.status_code == 200 and "X-B24desk-Stale" not in r.headers
        return r.get_json()["kpis"]["tickets_total"]["value"]

    def drill():
        r = c.get(f"/api/drilldown?{q}&kpi=tickets_total", headers=auth)
        assert r.status_code == 200
        return r.get_json()["total"], r.headers.get("X-B24desk-Stale")

    page = c.get(f"/reports/dashboard?{q}&t={token}")
    assert page.status_code == 200 and "X-B24desk-Stale" not in page.headers
    before, before_drill = total_api(), drill()
    assert before_drill == (before, None)

    _add_ticket(path, portal, now - 3600)
    assert total_api() == before + 1  # exact: equal to `flask kpi` right after the write
    n, stale = drill()
    assert n == before and stale is not None  # the old entry, at once, marked stale
    page = c.get(f"/reports/dashboard?{q}&t={token}")
    assert page.headers.get("X-B24desk-Stale") is not None
    assert 'id="stale-note"' in page.get_data(as_text=True)
    assert data.MEMO.wait_idle(60)
    assert drill() == (before + 1, None)  # recomputed in the background
    page = c.get(f"/reports/dashboard?{q}&t={token}")
    assert "X-B24desk-Stale" not in page.headers and 'id="stale-note"' not in page.get_data(as_text=True)


def test_warm_dashboard_leaves_the_default_page_computed(seeded):
    app, token, portal, _now, _path = seeded
    warm_dashboard(app, portal)
    misses = data.MEMO.misses
    r = app.test_client().get(f"/reports/dashboard?t={token}")
    assert r.status_code == 200 and "X-B24desk-Stale" not in r.headers
    assert data.MEMO.misses == misses  # every figure of the default page was warm


# --- the hook after a real reconcile against the portal double ---------------------------------


def test_the_runtime_warms_after_each_reconcile(tmp_path):
    from events_harness import Harness, double

    d = double(seed=5, tickets=40)
    h = Harness(tmp_path, d)
    try:
        assert h.install_api().status_code == 200
        calls = []
        warmer = Warmer(h.app, warm=lambda app, portal: (calls.append(portal), warm_dashboard(app, portal)))
        h.runtime.after_sync = warmer
        result = h.runtime.reconcile(d.member_id)
        assert "sources" in result
        warmer.join(60)
        assert calls == [d.member_id] and warmer.done == 1
        data.MEMO.wait_idle(60)  # refreshes other tests left running in the shared memo
        misses, stale = data.MEMO.misses, data.MEMO.stale_hits
        token = trusted_token(h.db_path, Viewer(portal=d.member_id, user_id="1", role=ADMIN))
        r = h.app.test_client().get(f"/reports/dashboard?t={token}")
        assert r.status_code == 200 and "X-B24desk-Stale" not in r.headers
        data.MEMO.wait_idle(60)
        # the first viewer after the sync is warm: nothing computed in the request; a clock-bound
        # part (the "now" panel, ttl) served stale may be refreshed behind it, one compute each
        assert data.MEMO.misses - misses <= data.MEMO.stale_hits - stale
    finally:
        data.MEMO.wait_idle(60)
        h.close()
        d.stop()


def test_a_failing_hook_does_not_fail_the_sync(tmp_path):
    from events_harness import Harness, double

    d = double(seed=6, tickets=10)
    h = Harness(tmp_path, d)
    try:
        assert h.install_api().status_code == 200

        def broken(portal):
            raise RuntimeError("no")

        h.runtime.after_sync = broken
        assert "sources" in h.runtime.reconcile(d.member_id)
    finally:
        h.close()
        d.stop()


def test_a_changed_target_gives_a_fresh_dashboard_at_once(seeded):
    """A target (or any setting the engine reads) is part of the memo's key: after a change the
    dashboard is computed anew, never the old scorecard served once more as stale."""
    from b24desk.kpi.targets import TARGETS_SETTING
    from b24desk.store import set_setting

    app, token, portal, now, path = seeded
    c = app.test_client()
    day = time.strftime("%Y-%m-%d", time.gmtime(now - 20 * 86400))
    end = time.strftime("%Y-%m-%d", time.gmtime(now + 2 * 86400))
    url = f"/reports/dashboard?from={day}&to={end}&t={token}"
    page = c.get(url)
    target = re.compile(r"Target: (\d+)\s%")  # overdue share: 5 % by default
    assert page.status_code == 200 and "5" in target.findall(page.get_data(as_text=True))
    db = open_db(path)
    set_setting(db, portal, TARGETS_SETTING, {"portal": {"overdue_share": {"target": 0.37}}})
    db.conn.close()
    page = c.get(url)
    assert page.status_code == 200 and "X-B24desk-Stale" not in page.headers
    html = page.get_data(as_text=True)
    assert "37" in target.findall(html) and "5" not in target.findall(html) and 'id="stale-note"' not in html


def _api(c, q, auth):
    r = c.get(f"/api/kpi?{q}", headers=auth)
    assert r.status_code == 200 and "X-B24desk-Stale" not in r.headers
    return r.get_json()


def test_the_api_keeps_its_entry_across_writes_that_cannot_touch_the_period(seeded):
    """Writes to tickets whose lives lie outside the report's window, to another portal, or to
    settings no report reads leave /api/kpi's entry exact (a hit, no recompute); a write inside
    the window, to people or to settings the reports read recomputes it."""
    from b24desk.store import set_setting

    app, token, portal, now, path = seeded
    c = app.test_client()
    frm = time.strftime("%Y-%m-%d", time.gmtime(now - 20 * 86400))
    to = time.strftime("%Y-%m-%d", time.gmtime(now - 2 * 86400))
    q = f"from={frm}&to={to}"
    auth = {"Authorization": f"Bearer {token}"}
    first = _api(c, q, auth)

    def kept_after(write) -> bool:
        misses, kept = data.MEMO.misses, data.MEMO.kept
        write()
        got = _api(c, q, auth)
        if data.MEMO.misses == misses:
            assert data.MEMO.kept == kept + 1
            assert got == first
            return True
        return False

    def ticket(p, sid, at, closed=None):
        db = open_db(path)
        t = Ticket(
            portal=p,
            source="task",
            source_id=sid,
            title="New",
            priority="normal",
            author_id="c1",
            customer="c1",
            responsible_id="201",
            created_at=at,
            selector="tasks",
        )
        with db.atomic():
            db["tickets"].insert(
                t.row() | {"synced_at": at, "closed_at": closed}, pk=("portal", "source", "source_id"), replace=True
            )
        db.conn.close()

    def setting(key, value=None):
        db = open_db(path)
        with db.atomic():
            set_setting(db, portal, key, int(time.time() * 1000) if value is None else value)
        db.conn.close()

    assert kept_after(lambda: ticket(portal, "900001", now + 3 * 86400))  # created after `to`
    assert kept_after(lambda: ticket("another-portal", "900002", now - 10 * 86400))
    assert kept_after(lambda: ticket(portal, "900003", now - 600 * 86400, now - 500 * 86400))  # closed long before
    assert kept_after(lambda: setting("clock_skew"))
    assert _api(c, q, auth) == first
    # the entry kept through all that equals a fresh computation
    data.MEMO.clear()
    assert _api(c, q, auth) == first

    assert not kept_after(lambda: ticket(portal, "900004", now - 10 * 86400))  # inside: recomputed
    second = _api(c, q, auth)
    assert second["kpis"]["tickets_total"]["value"] == first["kpis"]["tickets_total"]["value"] + 1
    first = second
    assert not kept_after(lambda: ticket(portal, "900005", now - 900 * 86400))  # still open: in A
    first = _api(c, q, auth)
    assert not kept_after(lambda: setting("targets", {"portal": {"csat": {"target": 0.5, "direction": "higher"}}}))
    first = _api(c, q, auth)
    db = open_db(path)
    with db.atomic():
        db.execute("update users set name = 'Renamed' where portal = ? and id = '201'", [portal])
    db.conn.close()
    misses = data.MEMO.misses
    _api(c, q, auth)
    assert data.MEMO.misses == misses + 1


def test_the_journal_says_which_windows_a_write_meets(tmp_path):
    from b24desk.store import journal_state

    db = open_db(tmp_path / "j.db")
    c = db.conn
    start = journal_state(c)[0]
    c.execute("insert into tickets (portal, source, source_id, created_at, closed_at) values ('P','task','1',100,200)")
    c.commit()
    assert journal_state(c, "P", start, 250, 400)[1] is False  # closed before the window
    assert journal_state(c, "P", start, 150, 400)[1] is True
    assert journal_state(c, "Q", start, 0, 400)[1] is False  # another portal
    mid = journal_state(c)[0]
    c.execute("insert into events (portal, source, source_id, key, kind, at) values ('P','task','1','k','reply',900)")
    c.execute("update tickets set closed_at = null where source_id = '1'")  # reopened: open for good
    c.commit()
    assert journal_state(c, "P", mid, 5000, 6000)[1] is True
    assert journal_state(c, "P", mid, 0, 50)[1] is False  # created after the window
    last = journal_state(c)[0]
    c.execute("insert or replace into settings (portal, key, value) values ('P', 'clock_skew', '3')")
    c.commit()
    assert journal_state(c, "P", last, 0, 50) == (last, False)  # a setting no report reads
    c.execute("insert or replace into settings (portal, key, value) values ('P', 'targets', '{}')")
    c.commit()
    assert journal_state(c, "P", last, 0, 50)[1] is True  # one it reads: every period
    last = journal_state(c)[0]
    c.execute("delete from kpi_journal")  # emptied: nothing can be told
    c.commit()
    assert journal_state(c, "P", last, 0, 50)[1] is True
    db.conn.close()


def _writes_inside(path: str, portal: str, now: int, kind: str, responsible: str | None = None) -> None:
    """Writes inside the period: a new ticket, and on one of the last ten days' tickets a priority
    change (and a new responsible), and an event of ``kind`` by agent 201."""
    _add_ticket(path, portal, now - 3600)
    db = open_db(path)
    sid = db.execute(
        "select source_id from tickets where portal = ? and created_at >= ? and source_id != '999999' limit 1",
        [portal, now - 10 * 86400],
    ).fetchone()[0]
    with db.atomic():
        db.execute(
            "update tickets set priority = 'critical', responsible_id = coalesce(?, responsible_id)"
            " where portal = ? and source = 'task' and source_id = ?",
            [responsible, portal, sid],
        )
        db["events"].insert(
            Event(portal, "task", sid, f"h:{kind}", kind, now - 1800, "201").row(),
            pk=("portal", "source", "source_id", "key"),
            replace=True,
        )
    db.conn.close()


def test_the_api_after_writes_inside_the_period_refreshes_its_kept_pass_and_stays_exact(seeded):
    """``/api/kpi`` after writes inside the period re-reads only the written tickets into the kept
    engine pass (reports/data.py's PASSES; the same pass object serves again), and its answer, per
    agent too, equals the answer computed from nothing (no memo, no pass kept). A write to people
    makes a new pass."""
    app, token, portal, now, path = seeded
    data.PASSES.clear()
    c = app.test_client()
    frm = time.strftime("%Y-%m-%d", time.gmtime(now - 20 * 86400))
    to = time.strftime("%Y-%m-%d", time.gmtime(now + 2 * 86400))
    auth = {"Authorization": f"Bearer {token}"}
    q = f"from={frm}&to={to}&group_by=agent"

    def from_nothing():
        data.MEMO.clear()
        data.PASSES.clear()
        return _api(c, q, auth)

    def kept_passes():
        return [rp for rp, _seq in data.PASSES.values()]

    first = _api(c, q, auth)
    (rp,) = kept_passes()
    _writes_inside(path, portal, now, "comment")
    second = _api(c, q, auth)
    assert kept_passes() == [rp]  # refreshed, not made anew
    assert second["kpis"]["tickets_total"]["value"] == first["kpis"]["tickets_total"]["value"] + 1
    assert second == from_nothing()
    (rp,) = kept_passes()
    db = open_db(path)
    with db.atomic():
        db.execute("update users set name = 'Renamed' where portal = ? and id = '201'", [portal])
    db.conn.close()
    third = _api(c, q, auth)
    assert kept_passes() != [rp]  # people changed: the journal cannot name tickets, a new pass
    assert third == from_nothing()


def test_a_page_after_writes_inside_its_period_refreshes_the_pass_the_api_keeps(seeded):
    """A dashboard's data (reports/data.py page) comes from the kept pass of its sources, the same
    pass ``/api/kpi`` keeps: after writes inside the period it is refreshed, not made anew, and the
    page (totals, groups, weekly series, durations; an agent's own and team figures narrowed from
    it) equals the page computed from nothing."""
    from reports.query import Query

    app, token, portal, now, path = seeded
    data.PASSES.clear()
    c = app.test_client()
    frm = time.strftime("%Y-%m-%d", time.gmtime(now - 20 * 86400))
    to = time.strftime("%Y-%m-%d", time.gmtime(now + 2 * 86400))
    q = Query(frm, to, tz="UTC")
    cases = [({}, ("agent", "department"), None), ({"agent": "201"}, (None,), {"department": "3"})]

    def pages():
        with app.test_request_context():
            db = open_db(path)
            try:
                return [data.page(db, portal, q, f, gbs, team=team, exact=True) for f, gbs, team in cases]
            finally:
                db.conn.close()

    def kept_passes():
        return [rp for rp, _seq in data.PASSES.values()]

    pages()
    (rp,) = kept_passes()  # one pass for both pages: the agent's narrowed from it
    _api(c, f"from={frm}&to={to}", {"Authorization": f"Bearer {token}"})
    narrowed = _api(c, f"from={frm}&to={to}&agent=201&group_by=priority", {"Authorization": f"Bearer {token}"})
    assert kept_passes() == [rp]  # and the API's answers too, with filters narrowed from it
    data.PASSES.clear()
    data.MEMO.clear()
    assert narrowed == _api(c, f"from={frm}&to={to}&agent=201&group_by=priority", {"Authorization": f"Bearer {token}"})
    pages()
    (rp,) = kept_passes()
    _writes_inside(path, portal, now, "reply", responsible="201")
    refreshed = pages()
    assert kept_passes() == [rp]  # refreshed, not made anew
    assert refreshed[1]["team"]["kpis"]["tickets_total"]["value"] > 0
    data.MEMO.clear()
    data.PASSES.clear()
    assert json.dumps(refreshed, sort_keys=True, default=str) == json.dumps(pages(), sort_keys=True, default=str)


def test_a_kept_pass_is_out_of_the_gcs_sight_and_still_freed_when_dropped(seeded):
    """A newly kept pass is frozen (gc.freeze): a full collection no longer walks its tens of
    thousands of facts objects (at 1M tickets it paused requests for 230 ms); it has no reference
    cycles, so dropping it from the pool frees it all the same."""
    import gc
    import weakref

    app, token, portal, now, path = seeded
    data.PASSES.clear()
    data.MEMO.clear()
    frm = time.strftime("%Y-%m-%d", time.gmtime(now - 20 * 86400))
    to = time.strftime("%Y-%m-%d", time.gmtime(now + 2 * 86400))
    gc.unfreeze()
    _api(app.test_client(), f"from={frm}&to={to}", {"Authorization": f"Bearer {token}"})
    (rp,) = [p for p, _seq in data.PASSES.values()]
    assert gc.get_freeze_count() > 0 and rp.tickets_c
    tracked = {id(o) for o in gc.get_objects()}
    assert not any(id(f) in tracked for f in rp.tickets_c)  # the collector does not walk them
    gone = weakref.ref(rp)
    del rp
    data.PASSES.clear()
    data.MEMO.clear()
    assert gone() is None  # freed by reference counting, frozen or not
    gc.unfreeze()


def test_the_pass_pool_holds_a_bounded_number_of_tickets():
    """reports/data.py keeps at most two passes and a bounded number of tickets: a pass heavier
    than the bound is not kept; a new one pushes out the least recently put until the rest fits;
    a taken pass is out of the pool until put back."""
    from reports.cache import Pool

    pool = Pool(2, max_weight=100, weight=len)
    assert pool.put("a", "x" * 60) and pool.put("b", "y" * 30)
    assert pool.values() == ["x" * 60, "y" * 30]
    assert not pool.put("big", "z" * 101) and pool.values() == ["x" * 60, "y" * 30]
    assert pool.put("c", "w" * 50)  # 60 + 30 + 50 > 100: "a" goes
    assert pool.values() == ["y" * 30, "w" * 50]
    assert pool.take("b") == "y" * 30 and pool.take("b") is None
    pool.put("d", "v")
    pool.put("e", "u")  # two at most
    assert pool.values() == ["v", "u"]


def test_the_warmer_keeps_every_tickets_facts_after_the_dashboard(seeded):
    """After a sync the warmer builds the dashboard, then keeps the facts of every ticket that has
    none (reports/warm.py backfill_facts), so the first report of any period replays nothing, and
    the settled cells of the last months; a newer sync's warm stops it (``stop``)."""
    from reports.warm import Warmer, backfill_facts

    app, _token, portal, _now, path = seeded
    conn = sqlite3.connect(path)
    conn.execute("update ticket_facts set ctx = null, ver = ver + 1")
    conn.commit()
    assert backfill_facts(app, portal, stop=lambda: True) == 0
    warmer = Warmer(app)
    warmer(portal)
    warmer.join(120)
    assert warmer.done == 1 and warmer.backfilled > 0
    left = conn.execute(
        "select count(*) from ticket_facts where portal = ? and ctx is null and coalesce(deleted, 0) = 0", [portal]
    ).fetchone()[0]
    # then the settled cells of the last months (b24desk/kpi/cells.py), holding their members
    n, held = conn.execute(
        "select (select sum(n) from settled_cells where portal = ? and stale = 0 and kind != 'rollup'),"
        " (select count(*) from ticket_facts where portal = ? and cell is not null)",
        [portal, portal],
    ).fetchone()
    conn.close()
    assert left == 0
    assert n == held > 0


def test_pages_from_settled_cells_equal_pages_of_every_ticket(seeded, monkeypatch):
    """Once the warmer made the settled cells (b24desk/kpi/cells.py), a dashboard's pass reads them
    instead of most of its tickets: the admin's page (totals, agents, departments, weekly series,
    durations) and an agent's (own and team figures) equal the pages made with cells switched off;
    an API query the cells cannot answer (grouped by priority) gets a pass of its own; after a
    write to one of the cells' tickets the page's pass is made anew and still equal."""
    from reports.query import Query
    from reports.warm import backfill_facts

    app, token, portal, now, path = seeded
    backfill_facts(app, portal)
    conn = sqlite3.connect(path)
    assert conn.execute("select count(*) from ticket_facts where cell is not null").fetchone()[0] > 0
    frm = time.strftime("%Y-%m-%d", time.gmtime(now - 35 * 86400))
    to = time.strftime("%Y-%m-%d", time.gmtime(now - 3 * 86400))
    q = Query(frm, to, tz="UTC")
    cases = [({}, ("agent", "department"), None), ({"agent": "201"}, (None,), {"department": "3"})]

    def pages():
        data.MEMO.clear()
        with app.test_request_context():
            db = open_db(path)
            try:
                return json.dumps(
                    [data.page(db, portal, q, f, gbs, team=team, exact=True) for f, gbs, team in cases],
                    sort_keys=True,
                    default=str,
                )
            finally:
                db.conn.close()

    data.PASSES.clear()
    with_cells = pages()
    (rp,) = [rp for rp, _seq in data.PASSES.values()]
    assert rp.loaded.cells and rp.cells_c
    c = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    by_priority = _api(c, f"from={frm}&to={to}&agent=201&group_by=priority", auth)
    assert len(data.PASSES.values()) == 2  # its own pass: a cell cannot tell priorities apart
    monkeypatch.setattr(data, "_with_cells", lambda *a: False)
    data.PASSES.clear()
    without = pages()
    assert not [rp for rp, _seq in data.PASSES.values() if rp.loaded.cells]
    assert with_cells == without
    data.MEMO.clear()
    assert by_priority == _api(c, f"from={frm}&to={to}&agent=201&group_by=priority", auth)
    monkeypatch.undo()
    data.PASSES.clear()
    assert pages() == with_cells
    # a write to a ticket of a cell the kept pass read: the pass is made anew, without that cell
    (rp,) = [rp for rp, _seq in data.PASSES.values()]
    member = conn.execute(
        "select f.source, f.source_id, f.cell from ticket_facts f where f.cell in (select value from json_each(?))",
        [json.dumps([c.id for c in rp.loaded.cells])],
    ).fetchone()
    conn.execute(
        "update tickets set priority = 'critical' where portal = ? and source = ? and source_id = ?",
        [portal, member[0], member[1]],
    )
    conn.commit()
    after = pages()
    (fresh,) = [p for p, _seq in data.PASSES.values()]
    assert fresh is not rp and member[2] not in {c.id for c in fresh.loaded.cells}
    monkeypatch.setattr(data, "_with_cells", lambda *a: False)
    data.PASSES.clear()
    assert after == pages() != with_cells
    conn.close()


def test_a_pass_kept_before_the_cells_reads_them_once_the_warmer_kept_some(seeded):
    """The warmer warms the dashboard first and builds the cells after: the page's kept pass then
    read no cells. Once a build kept some of its window, the next request makes that pass anew,
    reading them (the figures unchanged); a later write only refreshes it, and a pass whose
    window has no cells is refreshed as before."""
    from reports.query import Query
    from reports.warm import backfill_facts

    app, token, portal, now, path = seeded
    frm = time.strftime("%Y-%m-%d", time.gmtime(now - 35 * 86400))
    to = time.strftime("%Y-%m-%d", time.gmtime(now - 3 * 86400))
    q = Query(frm, to, tz="UTC")
    old = Query("2019-01-01", "2019-02-01", tz="UTC")  # nothing there: no cells ever
    conn = sqlite3.connect(path)
    conn.execute("delete from settled_cells")
    conn.execute("update ticket_facts set cell = null")
    conn.commit()

    def page(query):
        data.MEMO.clear()
        with app.test_request_context():
            db = open_db(path)
            try:
                out = data.page(db, portal, query, {}, ("agent", "department"), exact=True)
                return json.dumps(out, sort_keys=True, default=str)
            finally:
                db.conn.close()

    def kept(of_old=False):
        """The kept passes of ``q`` by whether they read cells; with ``of_old``, those of ``old``."""
        passes = [rp for rp, _seq in data.PASSES.values()]
        if of_old:
            return [rp for rp in passes if rp.period.start < 1577836800]  # before 2020
        return {bool(rp.loaded.cells): rp for rp in passes if rp.period.start >= 1577836800}

    def write():
        row = conn.execute(
            "select source, source_id from tickets where portal = ? and created_at >= ? order by created_at limit 1",
            [portal, now - 20 * 86400],
        ).fetchone()
        conn.execute(
            "update tickets set priority = case priority when 'high' then 'low' else 'high' end"
            " where portal = ? and source = ? and source_id = ?",
            [portal, *row],
        )
        conn.commit()

    data.PASSES.clear()
    before = page(q)
    page(old)
    first = kept()[False]
    assert not first.loaded.cells
    backfill_facts(app, portal)  # the warmer's cells
    assert conn.execute("select count(*) from settled_cells where stale = 0").fetchone()[0] > 0
    write()
    after = page(q)
    made = kept()
    assert made[True].loaded.cells and made[True] is not first  # made anew, reading the cells
    (empty,) = kept(of_old=True)
    page(old)
    assert kept(of_old=True) == [empty]  # no cells in its window: refreshed, not made anew
    write()
    later = page(q)
    assert kept()[True] is made[True]  # a later write: refreshed
    data.PASSES.clear()
    assert page(q) == later != after  # the same figures as a pass made from nothing
    write()
    data.PASSES.clear()
    assert page(q) == after and after != before  # (the write toggles back and forth)
    conn.close()


def _months_looked_at(monkeypatch) -> list:
    """The months the warmer's cells builds look at from now on (a list it appends to), with no
    complete build remembered."""
    from b24desk.kpi import cells
    from reports import warm

    warm._CELLS_SEEN.clear()
    looked: list = []
    real = cells._build_month

    def spy(conn, portal_, ctx, fp, tz, a, b, month):
        looked.append(cells.month_of(a, tz))
        return real(conn, portal_, ctx, fp, tz, a, b, month)

    monkeypatch.setattr(cells, "_build_month", spy)
    return looked


def test_after_a_complete_cells_build_the_warmer_looks_only_at_the_months_written(seeded, monkeypatch):
    """The warmer's first cells build looks at every month; the next ones only at this month and
    the one before (tickets settle as time passes) and at the months of the tickets written since
    (the change journal), whose stale cells it makes anew; facts dropped some other way (not
    journaled) send it through every month again."""
    from b24desk.kpi import cells
    from reports import warm

    app, _token, portal, now, path = seeded
    looked = _months_looked_at(monkeypatch)
    warm.backfill_facts(app, portal)
    every = set(looked)
    conn = sqlite3.connect(path)
    zone = cells.zone_of(_ctx(app, portal))
    recent = {cells.month_of(now, zone), cells.month_of(cells.month_of(now, zone) - 1, zone)}
    older = conn.execute(
        "select f.source, f.source_id, f.created_at, f.cell from ticket_facts f join settled_cells c on c.id = f.cell"
        " where c.stale = 0 and f.created_at < ? order by f.created_at desc limit 1",
        [min(recent)],
    ).fetchone()
    assert older is not None and len(every) > len(recent)
    looked.clear()
    warm.backfill_facts(app, portal)
    assert set(looked) == recent  # nothing written
    conn.execute(
        "update tickets set priority = case priority when 'high' then 'low' else 'high' end"
        " where portal = ? and source = ? and source_id = ?",
        [portal, older[0], older[1]],
    )
    conn.commit()
    assert conn.execute("select stale from settled_cells where id = ?", [older[3]]).fetchone()[0] == 1
    looked.clear()
    warm.backfill_facts(app, portal)
    assert set(looked) == recent | {cells.month_of(older[2], zone)}
    assert conn.execute("select count(*) from settled_cells where id = ?", [older[3]]).fetchone()[0] == 0  # made anew
    assert conn.execute("select count(*) from settled_cells where stale = 1").fetchone()[0] == 0
    conn.execute("update ticket_facts set ctx = null, ver = ver + 1 where portal = ?", [portal])
    conn.commit()
    looked.clear()
    warm.backfill_facts(app, portal)
    assert set(looked) == every
    conn.close()


def _ctx(app, portal):
    from b24desk.kpi.report import ReportEnv

    with app.app_context():
        db = open_db(app.config["DB"])
        try:
            return ReportEnv(db, portal, data.portal_config(db, portal)).ctx
        finally:
            db.conn.close()


def test_after_a_complete_cells_build_the_warmer_looks_at_the_months_whose_gaps_it_filled(seeded, monkeypatch):
    """A member's gap forgotten (its customer's earlier ticket written; here forgotten by hand, so no
    change journal names its month) takes it out of its cell; the warmer fills the gap in and looks
    at that month too, so the ticket is back in a cell and no cell is left stale."""
    from b24desk.kpi import cells
    from reports import warm

    app, _token, portal, now, path = seeded
    looked = _months_looked_at(monkeypatch)
    warm.backfill_facts(app, portal)
    conn = sqlite3.connect(path)
    zone = cells.zone_of(_ctx(app, portal))
    recent = {cells.month_of(now, zone), cells.month_of(cells.month_of(now, zone) - 1, zone)}
    source, sid, created, cell = conn.execute(
        "select f.source, f.source_id, f.created_at, f.cell from ticket_facts f join settled_cells c on c.id = f.cell"
        " where c.stale = 0 and c.kind = 'piece' and f.created_at < ? order by f.created_at desc limit 1",
        [min(recent)],
    ).fetchone()
    conn.execute("update ticket_facts set gap = null where portal = ? and source = ? and source_id = ?",
                 [portal, source, sid])  # fmt: skip
    conn.commit()
    assert conn.execute("select stale from settled_cells where id = ?", [cell]).fetchone()[0] == 1
    looked.clear()
    warm.backfill_facts(app, portal)
    assert set(looked) == recent | {cells.month_of(created, zone)}
    got = conn.execute(
        "select gap is not null, cell is not null from ticket_facts where portal = ? and source = ? and source_id = ?",
        [portal, source, sid],
    ).fetchone()
    assert got == (1, 1)
    assert conn.execute("select count(*) from settled_cells where stale = 1").fetchone()[0] == 0  # rollups too
    conn.close()
