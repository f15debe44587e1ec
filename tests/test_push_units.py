"""Pieces of the push without a portal: period labels, schedules, the push setting, recipients,
the worst items, the rendering of numbers, and the sent-log's own rules."""

from __future__ import annotations

from datetime import datetime

import pytest

from b24desk.kpi.periods import zone
from b24desk.push import data as dg
from b24desk.push import render as R
from b24desk.push import sentlog
from b24desk.store import open_db

MSK, BERLIN = zone("Europe/Moscow"), zone("Europe/Berlin")


def ts(tz, *a) -> int:
    return int(datetime(*a, tzinfo=tz).timestamp())


@pytest.mark.parametrize(
    "kind,text,start,end",
    [
        ("daily", "2026-10-05", (2026, 10, 5), (2026, 10, 6)),
        ("weekly", "2026-W41", (2026, 10, 5), (2026, 10, 12)),
        ("weekly", "2026-W53", (2026, 12, 28), (2027, 1, 4)),
        ("monthly", "2026-12", (2026, 12, 1), (2027, 1, 1)),
    ],
)
def test_periods_are_local_days(kind, text, start, end):
    p = dg.parse_period(kind, text, MSK)
    assert (p.start, p.end) == (ts(MSK, *start), ts(MSK, *end))
    assert p.label == text


def test_a_week_across_the_dst_change_is_seven_local_days():
    p = dg.parse_period("weekly", "2026-W13", BERLIN)  # Sunday 29 March 2026: clocks go forward
    assert p.end - p.start == 7 * 86400 - 3600 and p.label == "2026-W13"
    assert (
        dg.parse_period("monthly", "2026-10", BERLIN).end - dg.parse_period("monthly", "2026-10", BERLIN).start
        == 31 * 86400 + 3600
    )


def test_last_complete_periods():
    now = ts(MSK, 2026, 1, 1, 0, 30)  # just after new year, Thursday
    assert dg.last_complete("daily", now, MSK).label == "2025-12-31"
    assert dg.last_complete("weekly", now, MSK).label == "2025-W52"
    assert dg.last_complete("monthly", now, MSK).label == "2025-12"


@pytest.mark.parametrize(
    "value,message",
    [
        ([], "must be an object"),
        ({"nope": 1}, "unknown field 'nope'"),
        ({"reports": {"daily": {"time": "25:00"}}}, "time must be HH:MM"),
        ({"reports": {"weekly": {"weekday": 0}}}, "weekday must be 1"),
        ({"reports": {"monthly": {"day": 31}}}, "day must be 1 .. 28"),
        ({"reports": {"hourly": {}}}, "one of daily, weekly, monthly"),
        ({"channels": ["notify", "sms"]}, "push.channels"),
        ({"departments": ["x"]}, "push.departments"),
        ({"portal_recipients": ["me"]}, "portal_recipients"),
        ({"chat": {"dialog_id": "room7"}}, "chatNNN"),
        ({"lang": "de"}, "ru or en"),
        ({"alerts": {"window_days": 0}}, "window_days"),
        ({"alerts": {"levels": ["team"]}}, "levels"),
    ],
)
def test_push_setting_validation_names_the_field(value, message):
    with pytest.raises(ValueError, match=message):
        dg.validate_push(value)


def test_push_setting_defaults_merge(db):
    from b24desk.store import set_setting

    set_setting(db, "p", dg.PUSH_SETTING, dg.validate_push({"reports": {"daily": {"enabled": True}}, "lang": "en"}))
    s = dg.push_settings(db, "p")
    assert s["reports"]["daily"] == {"enabled": True, "time": "09:00"} and s["lang"] == "en"
    assert s["reports"]["weekly"]["enabled"] is True and s["channels"] == ["notify"]


def test_heads_walk_up_the_tree(db):
    db["departments"].insert_all(
        [
            {"portal": "p", "id": "1", "name": "Co", "parent": None, "head": "1", "sort": 1},
            {"portal": "p", "id": "2", "name": "Support", "parent": "1", "head": None, "sort": 1},
            {"portal": "p", "id": "3", "name": "L2", "parent": "2", "head": "30", "sort": 1},
        ],
        pk=("portal", "id"),
    )
    deps = dg.departments(db, "p")
    assert dg.head_of(deps, "3") == "30" and dg.head_of(deps, "2") == "1" and dg.head_of(deps, "9") is None
    assert dg.digest_departments(db, "p", {"departments": "all"}) == ["3"]  # the root and headless skipped
    assert dg.digest_departments(db, "p", {"departments": ["2", "7"]}) == ["2"]


def card(key, status, value, target, direction="lower", previous=None):
    return {
        "key": key,
        "status": status,
        "value": value,
        "target": target,
        "direction": direction,
        "previous": previous,
        "delta": None,
        "n": 10,
        "duration": key.endswith("_time"),
    }


def test_worst_is_red_first_then_furthest_from_target():
    items = [
        card("first_response_time", "red", {"avg": 1200.0}, 600),  # 100 % off
        card("fcr_share", "red", 0.35, 0.70, "higher"),  # 50 % off
        card("overdue_share", "yellow", 0.054, 0.05),
        card("csat", "green", 0.9, 0.8, "higher"),
        card("nps", "red", 10, 50, "higher"),
    ]  # 80 % off
    assert [c["key"] for c in dg.worst(items)] == ["first_response_time", "nps", "fcr_share"]


def test_numbers_read_like_the_dashboard():
    item = card(
        "first_response_time", "red", {"avg": 1500.0, "median": 1, "p90": 1, "count": 9}, 600, previous={"avg": 1200.0}
    )
    assert (
        R.line(item, "ru")
        == "🔴 Среднее время первого ответа: 25\u00a0мин — цель 10\u00a0мин (+5\u00a0мин к прошлому периоду)"
    )
    share = card("overdue_share", "yellow", 0.125, 0.05, previous=0.1)
    assert R.line(share, "en") == "🟡 Overdue share: 12.5\u00a0% — target 5\u00a0% (+2.5 pp vs previous period)"
    assert R.line(card("csat", "green", 0.875, 0.8, "higher"), "ru").startswith(
        "🟢 Удовлетворённость (CSAT): 87,5\u00a0%"
    )


def test_title_spans_the_local_days():
    d = {
        "kind": "weekly",
        "period": "2026-W41",
        "from": "2026-10-05T00:00:00+03:00",
        "to": "2026-10-12T00:00:00+03:00",
        "scope": {"level": "department", "name": "L2"},
    }
    assert R.title(d, "ru") == "Сервис-деск: еженедельный отчёт · L2 · 2026-W41 (05.10.2026–11.10.2026)"
    assert (
        R.title(dict(d, scope={"level": "portal"}), "en")
        == "Service desk: Weekly report · whole portal · 2026-W41 (2026-10-05–2026-10-11)"
    )


def test_sentlog_begin_keeps_the_first_payload_and_markers_are_stable(tmp_path):
    db = open_db(str(tmp_path / "s.db"))
    k = sentlog.Key("p", "weekly", "2026-W41", "chat", "portal>chat5")
    first = sentlog.begin(db, k, "im.message.add", {"MESSAGE": "one"})
    again = sentlog.begin(db, k, "im.message.add", {"MESSAGE": "two"})
    assert first == again and again["payload"] == {"MESSAGE": "one"} and again["state"] == sentlog.PENDING
    assert (
        k.marker
        == sentlog.Key("p", "weekly", "2026-W41", "chat", "portal>chat5").marker
        != sentlog.Key("p", "weekly", "2026-W42", "chat", "portal>chat5").marker
    )
    sentlog.attempt(db, k)
    sentlog.mark_sent(db, k, 42)
    assert sentlog.get(db, k)["state"] == sentlog.SENT and sentlog.unfinished(db, "p") == []
    db.conn.close()


def test_sentlog_gives_up_on_refusals_but_never_on_rate_limits(tmp_path):
    db = open_db(str(tmp_path / "s.db"))
    hard = sentlog.Key("p", "weekly", "w", "notify", "a")
    soft = sentlog.Key("p", "weekly", "w", "notify", "b")
    for k, err in (
        (hard, "im.notify.system.add: ACCESS_DENIED (HTTP 403)"),
        (soft, "im.notify.system.add: QUERY_LIMIT_EXCEEDED (HTTP 503): gave up after 0 retries"),
    ):
        sentlog.begin(db, k, "im.notify.system.add", {})
        for _ in range(sentlog.MAX_ATTEMPTS):
            sentlog.attempt(db, k)
        sentlog.mark_failed(db, k, err)
    assert sentlog.gave_up(sentlog.get(db, hard)) and not sentlog.gave_up(sentlog.get(db, soft))
    assert [sentlog.key_of(r) for r in sentlog.unfinished(db, "p")] == [soft]
    db.conn.close()
