"""group_by week / month / weekday / hour: each ticket of C once, by created_at in the portal's zone."""

from datetime import datetime

from kpi_support import CONFIG, PORTAL, add_ticket, close, ts

from b24desk.kpi.periods import zone
from b24desk.kpi.report import build_report
from b24desk.kpi.timedims import bucket, spans

MSK = zone("Europe/Moscow")


def _desk(db):
    # Thu 2026-10-01 00:30 Moscow is Wed 21:30 UTC: weekday 4 and hour 0 in the portal's zone
    add_ticket(db, 1, "2026-10-01 00:30", "a", "10")
    add_ticket(db, 2, "2026-10-05 10:15", "b", "10", events=close("2026-10-05 12:00", "10"))  # Mon, W41
    add_ticket(db, 3, "2026-10-05 10:45", "c", "11")  # Mon, W41
    add_ticket(db, 4, "2026-10-31 23:59", "d", "11")  # Sat, W44
    # created in September, resolved in October: in R, not in C
    add_ticket(db, 5, "2026-09-20 10:00", "e", "10", events=close("2026-10-02 10:00", "10"))
    # previous period (September) tickets
    add_ticket(db, 6, "2026-09-07 10:10", "f", "10")  # Mon
    add_ticket(db, 7, "2026-09-01 09:00", "g", "10")  # Tue


def test_buckets_are_local():
    t = ts("2026-10-01 00:30")
    assert bucket("weekday", t, MSK) == 4 and bucket("hour", t, MSK) == 0
    assert bucket("week", t, MSK) == "2026-W40" and bucket("month", t, MSK) == "2026-10"
    assert bucket("week", ts("2027-01-01 12:00"), MSK) == "2026-W53"


def test_week_spans_are_clipped_to_the_period():
    s = spans("week", ts("2026-10-01 00:00"), ts("2026-11-01 00:00"), MSK)
    assert [k for k, *_ in s] == ["2026-W40", "2026-W41", "2026-W42", "2026-W43", "2026-W44"]
    assert [d for *_, d in s] == [4.0, 7.0, 7.0, 7.0, 6.0]
    assert sum(d for *_, d in spans("weekday", ts("2026-10-01 00:00"), ts("2026-11-01 00:00"), MSK)) == 31


def test_group_by_weekday_counts_each_ticket_of_c_once(db):
    _desk(db)
    r = build_report(db, PORTAL, "2026-10-01", "2026-11-01", group_by="weekday", config=CONFIG)
    g = {x["key"]: x["kpis"] for x in r["groups"]}
    assert [x["key"] for x in r["groups"]] == [1, 2, 3, 4, 5, 6, 7, None]
    assert g[1]["tickets_total"]["value"] == 2 and g[4]["tickets_total"]["value"] == 1
    assert g[6]["tickets_total"]["value"] == 1 and g[2]["tickets_total"]["value"] == 0
    assert g[2]["tickets_total"]["previous"] == 1 and g[1]["tickets_total"]["previous"] == 1
    # October 2026 has 4 Mondays: two Monday tickets are 0.5 a Monday
    assert g[1]["tickets_per_day"]["value"] == 0.5
    # the ticket created in September and resolved in October sits in the "before" group
    assert g[None]["tickets_total"]["value"] == 0 and g[None]["resolved_count"]["value"] == 1
    total = r["kpis"]
    for k in ("tickets_total", "resolved_count", "backlog"):
        assert sum(x["kpis"][k]["value"] for x in r["groups"]) == total[k]["value"]


def test_group_by_hour_week_month(db):
    _desk(db)
    r = build_report(db, PORTAL, "2026-10-01", "2026-11-01", group_by="hour", config=CONFIG)
    g = {x["key"]: x for x in r["groups"]}
    assert len([k for k in g if k is not None]) == 24
    assert g[0]["kpis"]["tickets_total"]["value"] == 1 and g[10]["kpis"]["tickets_total"]["value"] == 2
    assert g[23]["kpis"]["tickets_total"]["value"] == 1 and g[10]["label"] == "10:00"
    r = build_report(db, PORTAL, "2026-10-01", "2026-11-01", group_by="week", config=CONFIG)
    g = {x["key"]: x["kpis"] for x in r["groups"]}
    assert g["2026-W41"]["tickets_total"]["value"] == 2 and g["2026-W42"]["tickets_total"]["value"] == 0
    assert g["2026-W41"]["resolved_count"]["value"] == 1 and g["2026-W41"]["tickets_per_day"]["value"] == 2 / 7
    # W41 = Oct 5..12; the same slice of September (30 days earlier) holds ticket 6 (Sep 7)
    assert g["2026-W41"]["tickets_total"]["previous"] == 1
    r = build_report(db, PORTAL, "2026-09-01", "2026-11-01", group_by="month", config=CONFIG)
    g = {x["key"]: x["kpis"] for x in r["groups"]}
    assert list(g) == ["2026-09", "2026-10"]  # ticket 5 is in C now: no "before" group
    assert g["2026-09"]["tickets_total"]["value"] == 3 and g["2026-10"]["tickets_total"]["value"] == 4


def test_other_time_zones_and_a_dst_week(db):
    """Buckets follow the portal's zone, not Moscow's or UTC's; a week with a DST change still has 7 days."""
    berlin = zone("Europe/Berlin")
    s = spans(
        "week",
        int(datetime(2026, 10, 19, tzinfo=berlin).timestamp()),
        int(datetime(2026, 11, 2, tzinfo=berlin).timestamp()),
        berlin,
    )
    assert [(k, d) for k, _a, _b, d in s] == [("2026-W43", 7.0), ("2026-W44", 7.0)]
    cfg = dict(CONFIG, calendar={"timezone": "Asia/Vladivostok"})
    # 2026-10-01 05:00 in Vladivostok (+10) is 2026-09-30 19:00 UTC, 22:00 in Moscow
    add_ticket(db, 1, "2026-09-30T19:00:00+00:00", "a", "10")
    r = build_report(db, PORTAL, "2026-10-01", "2026-11-01", group_by="hour", config=cfg)
    assert r["timezone"] == "Asia/Vladivostok"
    assert [g["key"] for g in r["groups"] if g["kpis"]["tickets_total"]["value"]] == [5]
    r = build_report(db, PORTAL, "2026-10-01", "2026-11-01", group_by="weekday", config=cfg)
    assert [g["key"] for g in r["groups"] if g["kpis"]["tickets_total"]["value"]] == [4]
    r = build_report(db, PORTAL, "2026-10-01", "2026-11-01", group_by="month", config=cfg)
    assert [(g["key"], g["kpis"]["tickets_total"]["value"]) for g in r["groups"]] == [("2026-10", 1)]
