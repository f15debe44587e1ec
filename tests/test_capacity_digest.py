"""The monthly digest says when the forecast load per agent passes the norm, and only then."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

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
