"""The new task card against the portal double's strictest documented readings (DOCS
api-reference/tasks/tasks-new.md, api-reference/chats/messages/im-dialog-messages-get.md):
``task.commentitem.getlist`` answers an empty list, the chat id comes only from ``tasks.task.get``,
``FIRST_ID=0`` counts as not given (the latest messages come back), and task chats are longer than
one 50-message page. The KPIs computed from the sync equal the independent computation."""

from __future__ import annotations

from collections import Counter

import pytest
from openlines_support import END
from test_kpi_e2e import MONTHS, _bounds, _compare, _kpi
from test_sync_e2e import mismatches

from app import create_app
from b24desk.client import B24Client
from b24desk.inbox import changes_of
from b24desk.sources.base import PAGE_TICKETS
from b24desk.store import get_setting, open_db
from b24desk.sync import refresh_tickets, run_sync
from portal_double import PortalDouble

CONFIG = {"sources": [{"select": "tasks"}]}
LONG = 5  # tasks whose chat gets more than two pages of messages


def client_for(d):
    return B24Client.from_webhook(d.webhook_url, rps=1e6, backoff_base=0.01, share_limiter=False)


def _lengthen_chats(d: PortalDouble, n: int = LONG, extra: int = 120) -> list[dict]:
    """``extra`` more messages in the chats of ``n`` tasks that already have a reply, after their
    last one: the first reply is then among the oldest, beyond the latest 50."""
    p = d.portal
    picked = []
    for t in sorted(p.tasks.values(), key=lambda t: t["id"]):
        msgs = p.chats[t["chatId"]]["messages"]
        if any(m["author_id"] not in (0, t["createdBy"]) for m in msgs) and len(picked) < n:
            picked.append(t)
    agents = sorted({m["author_id"] for t in picked for m in p.chats[t["chatId"]]["messages"]} - {0})
    for t in picked:
        last = max(m["at"] for m in p.chats[t["chatId"]]["messages"])
        step = max(1, (p.now - last) // (extra + 1))
        for k in range(extra):
            who = t["createdBy"] if k % 2 else agents[k % len(agents)]
            p._task_comment(t, last + step * (k + 1), who, f"message {k}")
    return picked


@pytest.fixture(scope="module")
def new_card(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("newcard")
    cfg = tmp / "b24desk.toml"
    cfg.write_text('[[sources]]\nselect = "tasks"\n', encoding="utf-8")
    db = str(tmp / "store.db")
    mp = pytest.MonkeyPatch()
    mp.setenv("B24DESK_CONFIG", str(cfg))
    d = PortalDouble(seed=11, tickets=700, drain_per_s=1e6, bucket_size=10**6, end=END, new_task_card=True).start()
    long = _lengthen_chats(d)
    runner = create_app({"TESTING": True, "DB": db, "SECRET_KEY": "t"}).test_cli_runner()
    d.stats.reset()
    res = runner.invoke(args=["sync", "--webhook", d.webhook_url, "--db", db, "--rps", "1000", "--quiet"])
    assert res.exit_code == 0, res.output
    d.first_sync = Counter(d.stats.by_method)
    yield d, runner, db, long
    d.stop()
    mp.undo()


def test_the_double_takes_the_strict_readings(new_card):
    d, *_ = new_card
    c = client_for(d)
    t = d.portal.task_list[0]
    assert c.call("task.commentitem.getlist", {"TASKID": t["id"], "ORDER": {"ID": "asc"}}) == []
    listed = c.call_raw("tasks.task.list", {"select": ["ID", "CHAT_ID"], "filter": {"ID": t["id"]}})
    assert "chatId" not in listed["result"]["tasks"][0]
    got = c.call("tasks.task.get", {"taskId": t["id"], "select": ["ID", "CHAT_ID"]})
    assert got["task"]["chatId"] == t["chatId"]
    chat = d.portal.chats[t["chatId"]]["messages"]
    for first in ({"FIRST_ID": 0}, {}):  # 0 = not given: the latest messages
        page = c.call("im.dialog.messages.get", {"DIALOG_ID": f"chat{t['chatId']}", "LIMIT": 2, **first})
        assert sorted(m["id"] for m in page["messages"]) == [m["id"] for m in chat[-2:]]


def test_long_chats_give_the_same_kpis_as_the_truth(new_card):
    d, runner, db, long = new_card
    store = open_db(db)
    portal = store.execute("select portal from tickets limit 1").fetchone()[0]
    assert get_setting(store, portal, "tasks.comments_via") == "chat"
    assert mismatches(store, d.truth, ("task",)) == {"counts": {}, "examples": {}}
    for t in long:  # every message of the long chats, the oldest (the first reply) too
        n = sum(1 for m in d.portal.chats[t["chatId"]]["messages"] if m["author_id"])
        assert n > 100
        assert (
            store.execute(
                "select count(*) from events where source = 'task' and source_id = ?"
                " and kind in ('reply', 'customer_message')",
                [str(t["id"])],
            ).fetchone()[0]
            == n
        )
    for date_from, date_to in MONTHS:
        report = _kpi(runner, db, date_from, date_to)
        _compare(report, d.truth, _bounds(date_from, date_to), lambda t: t["source"] == "task")


def test_chat_ids_cost_one_batched_request_per_50_tasks(new_card):
    d, *_ = new_card
    n = len(d.portal.tasks)
    # one tasks.task.get command per task (the chat id): ceil(n / 50) batches
    assert d.first_sync["tasks.task.get"] == n
    # the comment list is asked for the first page only: it held only new-card tasks, so the rest
    # of the full sync (newer tasks) skips it, and the syncs after it never ask
    assert d.first_sync["task.commentitem.getlist"] == min(n, PAGE_TICKETS)


def test_incremental_reads_new_messages_without_asking_comment_items(new_card):
    d, runner, db, long = new_card
    store = open_db(db)
    t = long[0]
    d.advance(60)
    d.portal.add_task_comment(t["id"], long[1]["responsibleId"], "one more")
    d.advance(60)
    d.stats.reset()
    res = runner.invoke(args=["sync", "--webhook", d.webhook_url, "--db", db, "--rps", "1000", "--quiet"])
    assert res.exit_code == 0, res.output
    assert d.stats.by_method["task.commentitem.getlist"] == 0
    assert mismatches(store, d.truth, ("task",)) == {"counts": {}, "examples": {}}


def test_mixed_portal_keeps_classic_and_new_card_tasks_apart():
    """A portal moved to the new card half way: older tasks keep their forum comments, newer ones
    have chats; both are read, each where it lives."""
    probe = PortalDouble(seed=4, tickets=300, drain_per_s=1e6, bucket_size=10**6, end=END)
    times = sorted(t["createdDate"] for t in probe.portal.tasks.values())
    with PortalDouble(
        seed=4, tickets=300, drain_per_s=1e6, bucket_size=10**6, end=END, new_card_since=times[len(times) // 2]
    ) as d:
        p = d.portal
        classic = [t for t in p.tasks.values() if not t["chatId"] and p.task_comments[t["id"]]]
        chats = [t for t in p.tasks.values() if t["chatId"] and len(p.chats[t["chatId"]]["messages"]) > 1]
        assert classic and chats
        db = open_db(":memory:")
        reports = run_sync(client_for(d), db, ["tasks"], CONFIG)
        assert reports[0].error is None
        assert get_setting(db, client_for(d).portal_id, "tasks.comments_via") == "mixed"
        assert mismatches(db, d.truth, ("task",)) == {"counts": {}, "examples": {}}
        keys = Counter(
            r["key"][:2] for r in db.query("select key from events where kind in ('reply', 'customer_message')")
        )
        assert keys["c:"] > 0 and keys["m:"] > 0
        # an old task still commented on after the move, and a new one: both land
        d.advance(60)
        p.add_task_comment(classic[0]["id"], classic[0]["createdBy"], "still there?")
        p.add_task_comment(chats[0]["id"], chats[0]["responsibleId"], "on it")
        d.advance(60)
        assert run_sync(client_for(d), db, ["tasks"], CONFIG)[0].error is None
        assert mismatches(db, d.truth, ("task",)) == {"counts": {}, "examples": {}}


def test_comment_events_of_both_cards_land():
    """``ONTASKCOMMENTADD`` with ``MESSAGE_ID`` (new card, ``ID`` 0) and with ``ID`` (classic) both
    name their task, and re-reading it stores the new message (DOCS tasks-new.md, "Events")."""
    probe = PortalDouble(seed=4, tickets=120, drain_per_s=1e6, bucket_size=10**6, end=END)
    times = sorted(t["createdDate"] for t in probe.portal.tasks.values())
    with PortalDouble(
        seed=4, tickets=120, drain_per_s=1e6, bucket_size=10**6, end=END, new_card_since=times[len(times) // 2]
    ) as d:
        p = d.portal
        db = open_db(":memory:")
        c = client_for(d)
        run_sync(c, db, ["tasks"], CONFIG)
        old = next(t for t in p.tasks.values() if not t["chatId"])
        new = next(t for t in p.tasks.values() if t["chatId"])
        d.advance(60)
        msg = p.add_task_comment(new["id"], new["responsibleId"], "new card reply")
        com = p.add_task_comment(old["id"], old["responsibleId"], "classic reply")
        bodies = [
            {"FIELDS_AFTER": {"ID": 0, "TASK_ID": new["id"], "MESSAGE_ID": msg["id"]}},
            {"FIELDS_AFTER": {"ID": com["id"], "TASK_ID": old["id"]}},
        ]
        ids = [ch.id for b in bodies for ch in changes_of("ONTASKCOMMENTADD", b)]
        assert ids == [str(new["id"]), str(old["id"])]
        assert refresh_tickets(c, db, "tasks", ids, CONFIG) == 2
        keys = {r["key"] for r in db.query("select key from events where source = 'task'")}
        assert f"m:{msg['id']}" in keys and f"c:{com['id']}" in keys
