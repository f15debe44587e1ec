"""The monthly digest says when the forecast load per agent passes the norm, and only then."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from kpi_support import one_portal_statistics

from b24desk.kpi.report import ReportEnv
from b24desk.push.data import build_digest, parse_period
from b24desk.push.render import digest_text, feed_message
from b24desk.store import open_db

TZ = ZoneInfo("Europe/Moscow")
PORTAL = "p1"
CONFIG = {"calendar": {"timezone": "Europe/Moscow"}, "sources": ["tasks"]}


def _store(path, per_day_start: float, growth: float, agents: int):
    """Tasks created on working days of Jul-Oct 2026, growing by ``growth`` a week, each answered by
    one of ``agents`` agents within the hour."""
    db = open_db(path)
    rnd = random.Random(3)
    names = [str(100 + i) for i in range(agents)]
    db["users"].insert_all(
        [{"portal": PORTAL, "id": a, "name": f"Agent {a}", "departments": "[1]", "is_bot": 0} for a in names],
        pk=("portal", "id"),
    )
    day = datetime(2026, 7, 6, tzinfo=TZ)
    n = 0
    while day < datetime(2026, 11, 1, tzinfo=TZ):
        if day.isoweekday() <= 5:
            weeks = (day - datetime(2026, 7, 6, tzinfo=TZ)).days / 7
            for _ in range(int(per_day_start + growth * weeks)):
                created = int((day + timedelta(hours=9, minutes=rnd.randrange(540))).timestamp())
                agent = rnd.choice(names)
                db.execute(
                    "insert into tickets (portal, source, source_id, author_id, responsible_id, created_at,"
                    " state, deleted) values (?, 'task', ?, 'c1', ?, ?, 'open', 0)",
                    [PORTAL, str(n), agent, created],
                )
                db.execute(
                    "insert into events (portal, source, source_id, key, kind, at, actor_id) values"
                    " (?, 'task', ?, 'r', 'reply', ?, ?)",
                    [PORTAL, str(n), created + 600, agent],
                )
                n += 1
        day += timedelta(days=1)
    db.conn.commit()
    return db


def test_monthly_digest_warns_when_the_forecast_passes_the_norm(tmp_path):
    db = _store(tmp_path / "busy.db", per_day_start=40, growth=4, agents=2)
    env = ReportEnv(db, PORTAL, CONFIG)
    d = build_digest(env, "monthly", parse_period("monthly", "2026-10", TZ))
    cap = d["capacity"]
    assert cap is not None and cap["load"] > cap["norm"] == 20
    # the 4 weeks after the 12 full weeks before November: the peak of a rising load is the last
    assert cap["week"] == "2026-W47"
    text = digest_text(d, "ru")
    assert "Прогноз: к неделе 2026-W47 нагрузка вырастет до" in text and "норма — не больше 20" in text
    assert "Forecast: by week 2026-W47" in feed_message(d, "en")
    # the portal's digest carries it; a department's does not (its forecast is on the capacity page)
    assert build_digest(env, "monthly", parse_period("monthly", "2026-10", TZ), department="1")["capacity"] is None
    # weekly digests do not carry it
    assert "capacity" not in build_digest(env, "weekly", parse_period("weekly", "2026-W43", TZ))


def test_no_line_while_the_forecast_stays_within_the_norm(tmp_path):
    db = _store(tmp_path / "calm.db", per_day_start=10, growth=0.2, agents=3)
    env = ReportEnv(db, PORTAL, CONFIG)
    d = build_digest(env, "monthly", parse_period("monthly", "2026-10", TZ))
    assert d["capacity"] is None
    assert "Прогноз" not in digest_text(d, "ru")


# what ANALYZE wrote on a 1M-ticket store of one portal, before m_tickets_values_001 added an index
# it has no statistics for (the planner then takes that index's ``portal = ?`` for about 10 rows)
ONE_PORTAL_STATS = {
    "events": {
        "events_capacity": "4628323 4628323 2 1 1 1 1",
        "idx_events_portal_at": "4628323 4628323 2",
        "sqlite_autoindex_events_1": "4628323 4628323 4628323 5 1",
    },
    "tickets": {
        "tickets_author": "1000000 1000000 4",
        "idx_tickets_portal_created_at": "1000000 1000000 1",
        "idx_tickets_portal_created_at_customer_deleted": "1000000 1000000 1 1 1",
        "idx_tickets_portal_closed_at": "1000000 1000000 1",
        "idx_tickets_portal_closed_at_created_at": "1000000 1000000 1 1",
        "idx_tickets_portal_responsible_id": "1000000 1000000 16667",
        "sqlite_autoindex_tickets_1": "1000000 1000000 1000000 1",
    },
}


def _one_portal_stats(db) -> None:
    one_portal_statistics(db, ONE_PORTAL_STATS)


def test_capacity_reads_the_period_s_events_then_their_tickets_whatever_the_statistics(tmp_path):
    """The queries joining events to tickets read the period's events by ``at`` and each one's
    ticket by its key, whatever the statistics: the planner would otherwise read every ticket of the
    portal first and its events by key (the tracked-time query: 2.2 s at 1M tickets, not 0.06 s).
    The users who author tickets are found by one seek per user, not from every author (0.24 s)."""
    from b24desk.capacity.report import build_capacity

    db = _store(tmp_path / "plans.db", per_day_start=3, growth=0, agents=2)
    # an agent who also authors a ticket: the agents' query then joins the tickets of such actors
    db.execute(
        "insert into tickets (portal, source, source_id, author_id, created_at, state, deleted)"
        " values (?, 'task', 'own', '100', ?, 'open', 0)",
        [PORTAL, int(datetime(2026, 10, 5, 10, tzinfo=TZ).timestamp())],
    )
    db.conn.commit()
    _one_portal_stats(db)
    said = []
    db.conn.set_trace_callback(said.append)
    try:
        for source in (None, "tasks:group=7"):  # the second needs the ticket row of every event
            build_capacity(db, PORTAL, "2026-10-01", "2026-10-31", source=source, config=CONFIG, light=True)
    finally:
        db.conn.set_trace_callback(None)
    joins = [q for q in said if "from events e" in q and "tickets t" in q]
    assert len(joins) >= 3  # agents (mixed, then narrowed) and tracked time
    for q in joins:
        plan = [r[3] for r in db.execute("explain query plan " + q).fetchall()]
        reads = [p for p in plan if p.startswith(("SEARCH", "SCAN")) and " json_each " not in p]
        assert reads[0].startswith("SEARCH e USING") and "at>? AND at<?" in reads[0], plan
        assert all("source_id=?" in p for p in reads if p.startswith(("SEARCH t ", "SCAN t "))), plan
    # the users among the authors, one seek each (not every distinct author of the portal)
    assert any("'[\"100\"]'" in q for q in joins)  # agent 100 authored a ticket, agent 101 none
    by_author = [q for q in said if "author_id" in q and "from tickets" in q]
    assert by_author
    for q in by_author:
        plan = " ".join(r[3] for r in db.execute("explain query plan " + q).fetchall())
        assert "author_id=?" in plan, plan
