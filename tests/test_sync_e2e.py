"""The sync end to end: b24desk's client against the portal double over real HTTP on 127.0.0.1.

The double's ground truth (``d.truth``) is derived from the portal's own records independently of
b24desk; a correct sync stores exactly those tickets and events.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest

from b24desk.client import AuthError, B24Client
from b24desk.installations import save_installation
from b24desk.store import get_cursor, get_setting, open_db
from b24desk.sync import run_sync
from portal_double import PortalDouble
from portal_double.truth import SOURCE_CONFIG

CONFIG = {"sources": SOURCE_CONFIG}
SELECTORS = ["tasks", "deals:category=3", "crm:1038"]
FIELDS = [
    "title",
    "type",
    "priority",
    "priority_raw",
    "author_id",
    "customer",
    "responsible_id",
    "created_at",
    "deadline",
    "resolved_at",
    "closed_at",
    "state",
    "rating",
    "handle_time",
]


def client_for(d: PortalDouble, **opts) -> B24Client:
    return B24Client.from_webhook(d.webhook_url, rps=1e6, backoff_base=0.01, share_limiter=False, **opts)


def _s(v):
    return None if v is None else str(v)


def in_scope(truth, t) -> bool:
    x = truth.extra[(t["source"], t["source_id"])]
    return t["source"] != "crm:2" or x["category"] == 3


def mismatches(db, truth, selectors_sources=("task", "crm:2", "crm:1038")) -> dict:
    """Field and event-kind differences between the store and the truth, per (source, what)."""
    out: Counter = Counter()
    examples = {}
    cols = None
    for t in truth.tickets:
        if t["source"] not in selectors_sources or not in_scope(truth, t):
            continue
        cur = db.execute("select * from tickets where source = ? and source_id = ?", [t["source"], t["source_id"]])
        cols = cols or [c[0] for c in cur.description]
        row = cur.fetchone()
        if row is None:
            out[(t["source"], "missing")] += 1
            continue
        row = dict(zip(cols, row))
        for f in FIELDS:
            if _s(row[f]) != _s(t[f]):
                out[(t["source"], f)] += 1
                examples.setdefault((t["source"], f), (t["source_id"], row[f], t[f]))
        ours = Counter(
            r["kind"]
            for r in db.query(
                "select kind from events where source = ? and source_id = ?", [t["source"], t["source_id"]]
            )
        )
        theirs = Counter(e["kind"] for e in truth.events_of(t["source"], t["source_id"]))
        if ours != theirs:
            out[(t["source"], "events")] += 1
            examples.setdefault((t["source"], "events"), (t["source_id"], ours - theirs, theirs - ours))
    return {"counts": dict(out), "examples": examples}


@pytest.fixture
def double():
    d = PortalDouble(seed=11, tickets=600, drain_per_s=1e6).start()
    yield d
    d.stop()


def test_full_sync_stores_exactly_the_truth_at_the_floor_cost(double, db):
    c = client_for(double)
    reports = run_sync(c, db, SELECTORS, CONFIG)
    assert [r.mode for r in reports] == ["full", "full", "full"]
    assert all(r.error is None for r in reports)
    truth = double.truth
    assert mismatches(db, truth) == {"counts": {}, "examples": {}}
    n_tasks = len(truth.select("task"))
    assert db.execute("select count(*) from tickets where source = 'task'").fetchone()[0] == n_tasks
    # tasks: list ceil(N/2500)+1, one server.time, and the three detail reads (history, comments,
    # elapsed time) 50 commands a batch: one batched request per 50 tasks per detail method; and the
    # chat id of each task without comment items (a new-card task has none): at most one more per 50
    floor = math.ceil(n_tasks / 2500) + 3 * math.ceil(n_tasks / 50)
    assert reports[0].requests <= floor + math.ceil(n_tasks / 50) + 2
    assert double.stats.by_method["tasks.task.get"] < n_tasks
    # elapsed items are read only for tasks that track time (timeSpentInLogs > 0)
    tracking = sum(1 for t in double.portal.task_list if int(t.get("timeSpentInLogs") or 0) > 0)
    assert 0 < tracking < n_tasks
    assert double.stats.by_method["task.elapseditem.getlist"] == tracking
    # users, departments, portal clock and calendar came along
    assert db["users"].count > 0 and db["departments"].count > 0
    assert get_setting(db, c.portal_id, "portal_calendar")["week_start"]
    assert get_setting(db, c.portal_id, "portal_utc_offset") == 3 * 3600  # Europe/Moscow
    assert get_setting(db, c.portal_id, "tasks.comments_via") == "commentitem"


def test_group_selector_reads_only_that_project(double, db):
    reports = run_sync(client_for(double), db, ["tasks:group=7"], CONFIG)
    want = {t["source_id"] for t in double.truth.select("task", group_id=7)}
    got = {r["source_id"] for r in db.query("select source_id from tickets where selector = 'tasks:group=7'")}
    assert got == want and reports[0].saved == len(want) > 0


def test_elapsed_items_are_worked_events_past_one_page(double, db):
    """Elapsed items become ``worked`` events stamped when logged, by who logged them; a task with
    more than one page (50) of them is read to the end."""
    t = next(t for t in double.truth.select("task") if t["state"] == "resolved")
    tid, agent = int(t["source_id"]), int(t["responsible_id"])
    before = len(double.portal.task_elapsed[tid])
    double.advance(86400)
    logged_at = double.portal.now
    for _ in range(60):
        double.portal.add_elapsed(tid, agent, 60)
    double.advance(60)
    reports = run_sync(client_for(double), db, ["tasks"], CONFIG)
    assert reports[0].error is None
    rows = list(
        db.query(
            "select * from events where source = 'task' and source_id = ? and kind = 'worked' order by at, key",
            [t["source_id"]],
        )
    )
    assert len(rows) == before + 60
    late = [r for r in rows if r["at"] >= logged_at]
    assert len(late) == 60 and {(r["to_value"], r["actor_id"]) for r in late} == {("60", str(agent))}
    assert (
        sum(int(r["to_value"]) for r in rows)
        == db.execute(
            "select handle_time from tickets where source = 'task' and source_id = ?", [t["source_id"]]
        ).fetchone()[0]
    )
    assert mismatches(db, double.truth, ("task",)) == {"counts": {}, "examples": {}}


def test_incremental_after_five_changes_is_a_handful_of_requests(double, db):
    c = client_for(double)
    run_sync(c, db, SELECTORS, CONFIG)
    p = double.portal
    truth = double.truth
    open_tasks = [t for t in truth.select("task") if t["state"] == "open"]
    done_tasks = [t for t in truth.select("task") if t["state"] == "resolved"]
    open_deal = next(t for t in truth.select("crm:2", category=3) if t["state"] == "open")
    double.advance(3600)
    t1, t2, t3 = open_tasks[0], open_tasks[1], done_tasks[0]
    p.update_task(int(t1["source_id"]), status=5)  # resolved
    p.add_task_comment(int(t2["source_id"]), int(t2["author_id"]), "any news?")  # comment: activity only
    p.update_task(int(t3["source_id"]), status=2, actor=int(t3["author_id"]))  # reopened
    new = p.create_task(creator=int(t2["author_id"]), responsible=int(t2["responsible_id"]), title="New one")
    other = next(u for u in double.desk.agents if str(u) != open_deal["responsible_id"])
    p.reassign_item(2, int(open_deal["source_id"]), other)  # CRM transfer (no history API)
    double.advance(60)
    double.stats.reset()
    reports = run_sync(c, db, SELECTORS, CONFIG)
    assert [r.mode for r in reports] == ["incremental"] * 3
    # tasks: the listing batch, the details batch, and the chat ids of the tasks without comment
    # items (the new one: a new-card task would have none either)
    assert double.stats.requests <= 7, dict(double.stats.by_method)
    assert reports[0].requests <= 3 and reports[1].requests <= 2 and reports[2].requests <= 1
    truth = double.truth
    got = mismatches(db, truth)
    # the only difference the truth can tell: the CRM transfer we saw by diffing is stamped at the
    # item's updatedTime, and everything else matches field by field and event by event
    assert got == {"counts": {}, "examples": {}}
    ev = {(e["kind"], e["source_id"]) for e in db.query("select kind, source_id from events")}
    assert ("resolved", t1["source_id"]) in ev and ("reopened", t3["source_id"]) in ev
    assert ("customer_message", t2["source_id"]) in ev and ("created", str(new["id"])) in ev
    assigned = list(
        db.query(
            "select * from events where source = 'crm:2' and source_id = ? and kind = 'assigned' order by at",
            [open_deal["source_id"]],
        )
    )
    assert (assigned[-1]["from_value"], assigned[-1]["to_value"]) == (open_deal["responsible_id"], str(other))
    # nothing changed since: one batch per selector, nothing re-read
    double.stats.reset()
    again = run_sync(c, db, SELECTORS, CONFIG)
    assert double.stats.requests == 3 and all(r.saved == 0 for r in again)


def test_deletions_are_noticed(double, db):
    c = client_for(double)
    run_sync(c, db, SELECTORS, CONFIG)
    truth = double.truth
    task = truth.select("task")[5]
    deal = truth.select("crm:2", category=3)[3]
    double.portal.delete_task(int(task["source_id"]))
    double.portal.delete_item(2, int(deal["source_id"]))
    double.advance(60)
    double.stats.reset()
    reports = run_sync(c, db, SELECTORS, CONFIG)
    assert [r.deleted for r in reports] == [1, 1, 0]
    deleted = {
        (r["source"], r["source_id"]) for r in db.query("select source, source_id from tickets where deleted = 1")
    }
    assert deleted == {("task", task["source_id"]), ("crm:2", deal["source_id"])}
    # found by range counts, not by listing every id: a few requests per selector
    assert reports[0].requests <= 4 and reports[1].requests <= 4


def test_new_task_card_reads_task_chats():
    with PortalDouble(seed=5, tickets=200, drain_per_s=1e6, new_task_card=True) as d:
        db = open_db(":memory:")
        c = client_for(d)
        run_sync(c, db, ["tasks"], CONFIG)
        assert get_setting(db, c.portal_id, "tasks.comments_via") == "chat"
        assert mismatches(db, d.truth, ("task",)) == {"counts": {}, "examples": {}}
        kinds = Counter(r["kind"] for r in db.query("select kind from events"))
        assert kinds["reply"] > 0 and kinds["customer_message"] > 0
        # remembered: the next syncs go straight to the chats (no comment items asked; the chat id
        # of each re-read task from tasks.task.get, the only method the docs name for it)
        t = d.truth.select("task")[0]
        d.advance(60)
        d.portal.add_task_comment(int(t["source_id"]), int(t["author_id"]), "hello?")
        d.advance(60)
        d.stats.reset()
        run_sync(c, db, ["tasks"], CONFIG)
        assert d.stats.by_method["task.commentitem.getlist"] == 0
        assert 1 <= d.stats.by_method["tasks.task.get"] <= d.stats.by_method["tasks.task.history.list"]
        assert mismatches(db, d.truth, ("task",)) == {"counts": {}, "examples": {}}


def test_survives_a_burst_of_503_and_limits_inside_batches(double, db):
    double.faults.fail_next(4, status=503, error="QUERY_LIMIT_EXCEEDED")  # whole requests
    double.faults.fail_next(30, status=503, error="QUERY_LIMIT_EXCEEDED", method="tasks.task.history.list")
    double.faults.fail_next(2, status=500, error="INTERNAL_SERVER_ERROR")
    double.faults.fail_next(3, status=500, error="INTERNAL_SERVER_ERROR", method="task.commentitem.getlist")
    reports = run_sync(client_for(double), db, ["tasks"], CONFIG)
    assert reports[0].error is None
    assert double.stats.refused["QUERY_LIMIT_EXCEEDED"] >= 34
    assert double.stats.refused["INTERNAL_SERVER_ERROR"] >= 5
    assert mismatches(db, double.truth, ("task",)) == {"counts": {}, "examples": {}}


def test_a_command_failing_for_good_stops_the_selector_without_a_hole(double, db):
    """A detail read that keeps failing inside its batch: the page is not saved half-read; the
    re-run resumes and the store ends exactly like the truth."""
    double.faults.fail_next(10**6, status=500, error="INTERNAL_SERVER_ERROR", method="tasks.task.history.list")
    double.faults.fail_next(2, status=503, error="QUERY_LIMIT_EXCEEDED", method="tasks.task.list")
    c = client_for(double)
    reports = run_sync(c, db, ["tasks"], CONFIG)
    assert "INTERNAL_SERVER_ERROR" in reports[0].error and reports[0].saved == 0
    assert db["tickets"].count == 0 and db["events"].count == 0
    double.faults.clear()
    reports = run_sync(c, db, ["tasks"], CONFIG)
    assert reports[0].mode == "full" and reports[0].error is None
    assert mismatches(db, double.truth, ("task",)) == {"counts": {}, "examples": {}}


def test_expired_token_is_refreshed_with_an_installed_app(double, db_path):
    db = open_db(db_path)
    tokens = double.issue_tokens()
    save_installation(db, **tokens)
    double.expire_tokens()
    c = B24Client.from_installation(
        db_path,
        double.member_id,
        double.client_id,
        double.client_secret,
        oauth_url=double.oauth_token_url,
        rps=1e6,
        share_limiter=False,
    )
    reports = run_sync(c, db, ["tasks"], CONFIG)
    assert reports[0].error is None and c.refreshes == 1
    assert db.execute("select refresh_token from installations").fetchone()[0] != tokens["refresh_token"]
    assert mismatches(db, double.truth, ("task",)) == {"counts": {}, "examples": {}}
    # an app whose refresh token is gone: a clear auth error, nothing written half-way
    double.creds.refresh.clear()
    double.expire_tokens()
    with pytest.raises(AuthError):
        run_sync(c, db, ["tasks"], CONFIG)


def test_webhook_without_rights_stops_only_what_it_cannot_read(double, db):
    # a webhook with task/user rights only: CRM refused (insufficient_scope), calendar refused,
    # and an app-only method the portal refuses (WRONG_AUTH_TYPE) is skipped with a note
    url = double.add_webhook(1, scopes={"task", "user", "department", "basic"})
    double.faults.fail_next(
        1,
        status=403,
        error="WRONG_AUTH_TYPE",
        method="calendar.settings.get",
        description="Current authorization type is denied for this method",
    )
    c = B24Client.from_webhook(url, rps=1e6, share_limiter=False)
    reports = run_sync(c, db, ["tasks", "deals:category=3"], CONFIG)
    assert reports[0].error is None and reports[0].saved == len(double.truth.select("task"))
    assert "insufficient_scope" in reports[1].error and reports[1].saved == 0
    assert get_setting(db, c.portal_id, "portal_calendar") is None
    assert get_cursor(db, c.portal_id, "deals:category=3", "changed_since") is None
    # the task part is complete and usable
    assert mismatches(db, double.truth, ("task",)) == {"counts": {}, "examples": {}}


def test_refresh_and_forget_by_id_for_event_handlers(double, db):
    """What the event inbox calls: re-read named tickets under a selector, mark deleted ones."""
    from b24desk.sync import forget_tickets, refresh_tickets

    c = client_for(double)
    truth = double.truth
    in_group = [t["source_id"] for t in truth.select("task", group_id=7)][:3]
    outside = next(
        t["source_id"] for t in truth.select("task") if truth.extra[("task", t["source_id"])]["group_id"] != 7
    )
    deal = truth.select("crm:2", category=3)[0]["source_id"]
    sales = next(
        t["source_id"] for t in truth.select("crm:2") if truth.extra[("crm:2", t["source_id"])]["category"] == 0
    )
    saved: set[str] = set()
    assert refresh_tickets(c, db, "tasks:group=7", in_group + [outside, "999999", "x"], CONFIG, saved=saved) == 3
    assert saved == set(in_group)  # not the task of another project
    assert refresh_tickets(c, db, "deals:category=3", [deal, sales], CONFIG) == 1
    assert forget_tickets(db, c.portal_id, "tasks:group=7", in_group[:1], CONFIG) == 1
    assert (
        db.execute("select deleted from tickets where source_id = ? and source = 'task'", [in_group[0]]).fetchone()[0]
        == 1
    )
    assert (
        mismatches(db, truth, ("crm:2",))["counts"].get(("crm:2", "missing"))
        == len(truth.select("crm:2", category=3)) - 1
    )


def test_crm_incremental_stage_moves_activities_requalification_and_rating(double, db):
    c = client_for(double)
    run_sync(c, db, SELECTORS, CONFIG)
    truth = double.truth
    p = double.portal
    opened = [t for t in truth.select("crm:2", category=3) if t["state"] == "open"]
    spa = [t for t in truth.select("crm:1038") if t["state"] == "open"]
    double.advance(1800)
    a, b, e = (int(t["source_id"]) for t in opened[:3])
    p.move_item(2, a, "C3:UC_SECOND_LINE")  # escalation
    double.advance(600)
    p.add_activity(2, a, kind="email", direction=1)  # customer writes
    p.add_activity(2, a, kind="call", direction=2, duration=240)  # agent calls back
    p.add_timeline_comment(2, a, int(opened[0]["responsible_id"]), "internal note")
    p.move_item(2, b, "C3:WON")  # resolved
    p.set_item_field(2, b, "ufCrm_RATING", 5)  # rated after the resolution
    p.move_item(2, e, "C3:APOLOGY")  # an 'apology' stage is a failure
    p.change_item_category(
        1038, int(spa[0]["source_id"]), 6 if truth.extra[("crm:1038", spa[0]["source_id"])]["category"] == 5 else 5
    )
    double.advance(60)
    reports = run_sync(c, db, SELECTORS, CONFIG)
    assert [r.saved for r in reports] == [0, 3, 1]
    truth = double.truth
    assert mismatches(db, truth) == {"counts": {}, "examples": {}}
    kinds = {r["kind"] for r in db.query("select kind from events where source = 'crm:2' and source_id = ?", [str(a)])}
    assert {"escalated", "customer_message", "reply", "call_out", "comment"} <= kinds
    assert db.execute(
        "select state, rating from tickets where source = 'crm:2' and source_id = ?", [str(b)]
    ).fetchone() == ("resolved", 5)
    assert db.execute("select state from tickets where source = 'crm:2' and source_id = ?", [str(e)]).fetchone() == (
        "rejected",
    )


def test_all_deals_of_every_funnel(double, db):
    reports = run_sync(client_for(double), db, ["deals"], {})
    want = {t["source_id"] for t in double.truth.select("crm:2")}
    got = {r["source_id"] for r in db.query("select source_id from tickets where source = 'crm:2'")}
    assert got == want and reports[0].error is None
    # the sales funnel (category 0, stages DEAL_STAGE) has its own semantics: won deals are resolved
    states = {r["source_id"]: r["state"] for r in db.query("select source_id, state from tickets")}
    assert all(states[t["source_id"]] == t["state"] for t in double.truth.select("crm:2"))
