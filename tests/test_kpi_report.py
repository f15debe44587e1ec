"""build_report over a store: schema, as-of-`to` stability, breakdowns, filters, targets, CCEI."""

from __future__ import annotations

import json

import pytest
from kpi_support import CONFIG, PORTAL, add_ticket, close, one_portal_statistics, reopen, ts
from test_kpi_examples import seed as seed_example

from b24desk.kpi import build_report
from b24desk.kpi.calendar import PORTAL_CALENDAR_SETTING
from b24desk.kpi.ccei import set_inputs
from b24desk.kpi.engine import DURATION_KPIS, KPI_KEYS
from b24desk.kpi.filters import Filters
from b24desk.kpi.load import candidate_query, history_query, load
from b24desk.kpi.targets import TARGETS_SETTING
from b24desk.store import set_setting

OCT = ("2026-10-01", "2026-11-01")


def users(db):
    db["departments"].insert_all(
        [
            {"portal": PORTAL, "id": "1", "name": "Company", "parent": None},
            {"portal": PORTAL, "id": "5", "name": "Support", "parent": "1"},
            {"portal": PORTAL, "id": "7", "name": "Second line", "parent": "5"},
            {"portal": PORTAL, "id": "9", "name": "Sales", "parent": "1"},
        ],
        pk=("portal", "id"),
    )
    db["users"].insert_all(
        [
            {"portal": PORTAL, "id": "10", "name": "Ivan", "last_name": "Petrov", "departments": "[5]", "is_bot": 0},
            {"portal": PORTAL, "id": "18", "name": "Olga", "last_name": "", "departments": "[7, 9]", "is_bot": 0},
            {"portal": PORTAL, "id": "30", "name": "Sam", "last_name": "", "departments": "9", "is_bot": 0},
        ],
        pk=("portal", "id"),
    )


def mixed_store(db):
    """A dozen tickets of three agents, two sources, every priority."""
    users(db)
    specs = [  # (id, created, author, resp, priority, source, events)
        (
            1,
            "2026-10-02 10:00",
            "c1",
            "10",
            "high",
            "task",
            [("2026-10-02 10:10", "reply", "10"), *close("2026-10-02 12:00", "10")],
        ),
        (
            2,
            "2026-10-03 10:00",
            "c2",
            "10",
            "normal",
            "task",
            [("2026-10-03 10:30", "reply", "10"), *close("2026-10-04 12:00", "10")],
        ),
        (3, "2026-10-04 10:00", "c3", "18", "low", "task", [("2026-10-04 11:00", "reply", "18")]),
        (
            4,
            "2026-10-05 10:00",
            "c1",
            "18",
            "critical",
            "crm:2",
            [("2026-10-05 10:20", "reply", "18"), ("2026-10-06 10:00", "resolved", "18")],
        ),
        (5, "2026-10-06 10:00", "c4", "30", "normal", "crm:2", [("2026-10-07 10:00", "rejected", "30")]),
        (6, "2026-09-20 10:00", "c5", "10", "normal", "task", [*close("2026-10-10 10:00", "10")]),
        (7, "2026-10-07 10:00", "c6", None, "normal", "task", []),
        (
            8,
            "2026-10-08 10:00",
            "c7",
            "10",
            "high",
            "task",
            [
                ("2026-10-08 10:05", "reply", "10"),
                ("2026-10-09 10:00", "assigned", "1", "RESPONSIBLE_ID", "10", "18"),
                *close("2026-10-12 10:00", "18"),
            ],
        ),
        (9, "2026-09-01 10:00", "c8", "30", "low", "crm:2", []),
    ]
    for sid, created, author, resp, pr, source, evs in specs:
        closed = [e for e in evs if e[1] in ("resolved", "rejected")]
        state = {"resolved": "resolved", "rejected": "rejected"}[closed[-1][1]] if closed else "open"
        add_ticket(
            db,
            sid,
            created,
            author,
            resp,
            evs,
            source=source,
            priority=pr,
            state=state,
            closed_at=ts(closed[-1][0]) if closed else None,
            selector="tasks:group=7" if sid == 1 else None,
            type="bug" if sid % 2 else "question",
        )


# --- schema ----------------------------------------------------------------------------------


def test_report_has_section_6_shape(db):
    seed_example(db)
    r = build_report(db, PORTAL, *OCT, config=CONFIG)
    assert r["schema"] == "b24desk.kpi/1" and r["portal"] == PORTAL and r["timezone"] == "Europe/Moscow"
    assert r["filters"] == {
        "source": None,
        "department": None,
        "agent": None,
        "priority": None,
        "type": None,
        "channel": None,
        "line": None,
    }
    assert r["period_bounds"] == "[from, to)"
    assert set(r["kpis"]) == set(KPI_KEYS)
    for key, e in r["kpis"].items():
        assert {"value", "previous", "delta", "target", "status"} <= set(e), key
        assert e["status"] in ("green", "yellow", "red", "grey")
    assert r["kpis"]["tickets_total"] == {
        "value": 3,
        "previous": 2,
        "delta": 1,
        "target": None,
        "status": "grey",
        "n": 3,
    }
    assert r["kpis"]["first_response_time"]["target"] == 600
    assert set(r["ccei"]) >= {"value", "components", "left_out"}
    json.dumps(r)  # plain JSON, no custom types


def test_report_is_identical_whenever_computed(db):
    """The October report before and after November happens (resolutions, transfers, reopens, ratings)."""
    seed_example(db)
    add_ticket(db, 20, "2026-10-30 09:00", "c9", "10", [("2026-10-30 09:30", "reply", "10")])
    before = build_report(db, PORTAL, *OCT, config=CONFIG)
    # November: T20 is transferred, resolved and reopened; T1 (resolved in October) is reopened;
    # new tickets arrive; the T3 resolution (after `to`) was already there.
    add_ticket(
        db,
        20,
        "2026-10-30 09:00",
        "c9",
        "18",
        [
            ("2026-10-30 09:30", "reply", "10"),
            ("2026-11-02 09:00", "assigned", "1", "RESPONSIBLE_ID", "10", "18"),
            *close("2026-11-03 09:00", "18", frm="2"),
            *reopen("2026-11-04 09:00", "c9"),
            ("2026-11-04 10:00", "field_changed", "18", "type", "question", "bug"),
        ],
        type="bug",
        state="open",
    )
    add_ticket(
        db,
        1,
        "2026-10-02 10:00",
        "1",
        "10",
        [("2026-10-02 10:05", "reply", "10"), *close("2026-10-02 12:00", "10"), *reopen("2026-11-05 10:00", "1")],
        priority="high",
        state="open",
        rating=5,
    )
    add_ticket(db, 21, "2026-11-02 09:00", "1", "10", [])
    after = build_report(db, PORTAL, *OCT, config=CONFIG)
    assert json.dumps(after, sort_keys=True) == json.dumps(before, sort_keys=True)


def test_period_across_dst_in_the_portal_time_zone(db):
    db["installations"].insert({"member_id": PORTAL, "timezone": "Europe/Berlin"}, pk="member_id")
    add_ticket(db, 1, "2026-10-31T23:30:00+01:00", "c1", "10")  # after the change, still October
    add_ticket(db, 2, "2026-11-01T00:30:00+01:00", "c1", "10")  # November
    add_ticket(db, 3, "2026-10-01T00:10:00+02:00", "c2", "10")
    add_ticket(db, 4, "2026-09-30T23:50:00+02:00", "c2", "10")  # September
    r = build_report(db, PORTAL, *OCT, config=CONFIG)
    assert r["timezone"] == "Europe/Berlin"
    assert r["period"] == {"from": "2026-10-01T00:00:00+02:00", "to": "2026-11-01T00:00:00+01:00"}
    assert r["kpis"]["tickets_total"]["value"] == 2
    assert r["kpis"]["tickets_per_day"]["value"] == 2 / 31
    assert r["kpis"]["tickets_total"]["previous"] == 1


# --- breakdowns ----------------------------------------------------------------------------

COUNTS = ("tickets_total", "resolved_count", "backlog", "overdue_count")


@pytest.mark.parametrize("dim", ["agent", "department", "priority", "type", "source", "channel"])
def test_group_counts_sum_to_the_total(db, dim):
    mixed_store(db)
    r = build_report(
        db, PORTAL, *OCT, config={**CONFIG, "sla": {"resolution_business_seconds": {"normal": 3600}}}, group_by=dim
    )
    assert r["group_by"] == dim and r["groups"]
    for key in COUNTS:
        for side in ("value", "previous"):
            assert sum(g["kpis"][key][side] for g in r["groups"]) == r["kpis"][key][side], (key, side)
    for key in DURATION_KPIS:
        total = r["kpis"][key]["value"]
        assert sum((g["kpis"][key]["value"] or {"count": 0})["count"] for g in r["groups"]) == (
            total["count"] if total else 0
        ), key


def test_group_by_agent_uses_the_responsible_at_to_and_names(db):
    mixed_store(db)
    r = build_report(db, PORTAL, *OCT, config=CONFIG, group_by="agent")
    by = {g["key"]: g for g in r["groups"]}
    assert by["10"]["label"] == "Ivan Petrov"
    assert by[None]["label"] == "—"  # the unassigned ticket still counts
    assert by["18"]["kpis"]["resolved_count"]["value"] == 2  # T4 and T8 (transferred to Olga)


def test_group_by_department_carries_the_tree(db):
    mixed_store(db)
    r = build_report(db, PORTAL, *OCT, config=CONFIG, group_by="department")
    by = {g["key"]: g for g in r["groups"]}
    assert by["7"]["path"] == ["Company", "Support", "Second line"]
    assert by["7"]["parent"] == "5" and by["7"]["depth"] == 2
    assert by["9"]["path"] == ["Company", "Sales"]
    keys = [g["key"] for g in r["groups"]]
    assert keys.index("5") < keys.index("7")  # tree order: parent before child


# --- filters -------------------------------------------------------------------------------


def total(db, **kw):
    return build_report(db, PORTAL, *OCT, config=CONFIG, **kw)["kpis"]["tickets_total"]["value"]


def test_filters(db):
    mixed_store(db)
    assert total(db) == 7
    assert total(db, filters={"source": "tasks"}) == 5
    assert total(db, filters={"source": "deals"}) == 2
    assert total(db, filters={"source": "tasks:group=7"}) == 1
    assert total(db, filters={"source": ["crm:2", "tasks:group=7"]}) == 3
    assert total(db, filters={"agent": "10"}) == 2  # T1, T2 (T8 moved to 18 before `to`)
    assert total(db, filters={"department": "5"}) == 5  # Support + Second line (sub-department)
    assert total(db, filters={"department": "7"}) == 3
    assert total(db, filters={"priority": "high"}) == 2
    assert total(db, filters={"type": "bug"}) == 4
    r = build_report(db, PORTAL, *OCT, config=CONFIG, filters={"agent": "10", "priority": "high"})
    assert r["filters"]["agent"] == "10" and r["filters"]["priority"] == "high"
    assert r["kpis"]["tickets_total"]["value"] == 1


def test_filters_compose_for_role_views(db):
    mixed_store(db)
    chosen = Filters(department="5")
    role = Filters(agent="18")  # an agent sees only their own numbers
    assert total(db, filters=chosen.restrict(role)) == 3  # T3, T4 and T8 (moved to Olga)
    assert total(db, filters=Filters(agent="18").restrict({"agent": "10"})) == 0
    assert total(db, filters=Filters(source="tasks").restrict({"source": "deals"})) == 0


def test_bad_filters_and_group_by_are_clear_errors(db):
    seed_example(db)
    with pytest.raises(ValueError, match="unknown filter 'team'"):
        build_report(db, PORTAL, *OCT, config=CONFIG, filters={"team": "x"})
    with pytest.raises(ValueError, match="unknown priority"):
        build_report(db, PORTAL, *OCT, config=CONFIG, filters={"priority": "urgent"})
    with pytest.raises(ValueError, match="unknown group-by"):
        build_report(db, PORTAL, *OCT, config=CONFIG, group_by="moon")
    with pytest.raises(ValueError, match="not a date"):
        build_report(db, PORTAL, "2026-10-32", "2026-11-01", config=CONFIG)


# --- the loader reads only the period ---------------------------------------------------------


def test_loader_selects_only_relevant_tickets(db):
    add_ticket(
        db,
        1,
        "2020-01-01 10:00",
        "c1",
        "10",
        [("2020-01-02 10:00", "resolved", "10")],
        state="resolved",
        closed_at=ts("2020-01-02 10:00"),
    )  # history: never read
    add_ticket(db, 2, "2020-01-01 10:00", "c1", "10", [])  # open since 2020: read
    add_ticket(
        db,
        3,
        "2026-09-20 10:00",
        "c1",
        "10",
        [("2026-10-02 10:00", "resolved", "10")],
        state="resolved",
        closed_at=ts("2026-10-02 10:00"),
    )
    add_ticket(db, 4, "2026-10-05 10:00", "c1", "10", [])
    add_ticket(db, 5, "2026-12-05 10:00", "c1", "10", [])  # after the window
    add_ticket(db, 6, "2026-10-05 10:00", "c1", "10", [], deleted=1)  # gone from the portal
    got = load(db, PORTAL, ts("2026-10-01 00:00"), ts("2026-11-01 00:00"))
    assert sorted(t["source_id"] for t in got.tickets) == ["2", "3", "4"]
    assert [e[1] for e in got.events[("task", "3")]] == ["resolved"]  # replay events only
    for sql, params in (
        candidate_query(PORTAL, 1, 2),
        history_query(PORTAL, 1, 2),
        candidate_query(PORTAL, 1, 2, ["tasks", "deals:category=3"]),
    ):
        plan = [r[3] for r in db.execute("explain query plan " + sql, params).fetchall()]
        assert not [p for p in plan if p.startswith("SCAN")], plan  # index ranges only
        assert any("closed_at" in p for p in plan) or "customer" in sql


def test_customer_history_lists_come_sorted_from_the_index(db):
    """The repeat-contact history is read in ``created_at`` order off the index (no sort in SQL,
    none per customer in Python): tickets written in any order give each customer's times sorted."""
    import random

    from b24desk.kpi.load import _history

    rnd = random.Random(3)
    days = list(range(1, 29))
    rnd.shuffle(days)
    for i, day in enumerate(days):
        add_ticket(db, 100 + i, f"2026-10-{day:02d} {rnd.randrange(24):02d}:00", f"c{i % 3}", "10", [])
    start, end = ts("2026-10-01 00:00"), ts("2026-11-01 00:00")
    got = _history(db.conn, PORTAL, start, end, None)
    assert sorted(got) == ["c0", "c1", "c2"] and sum(len(v) for v in got.values()) == len(days)
    assert all(v == sorted(v) for v in got.values())
    for sources in (None, ["tasks"]):
        assert _history(db.conn, PORTAL, start, end, sources) == got
    sql, params = history_query(PORTAL, start, end)
    plan = [r[3] for r in db.execute("explain query plan " + sql + " order by created_at", params).fetchall()]
    assert not [p for p in plan if "TEMP B-TREE" in p], plan


def test_tickets_closed_in_the_window_are_read_by_closed_at_whatever_the_statistics(db):
    """The candidates created before the window and closed since its start come from the
    ``closed_at`` index even when ANALYZE's statistics make every index look alike (as on a
    store where all tickets are one portal's): by ``created_at`` the loader would read every ticket
    created before the window (at 1M tickets 0.3 s of each report, and of the "now" panel)."""
    add_ticket(db, 1, "2026-10-05 10:00", "c1", "10", [])
    stats = {  # what ANALYZE wrote on a 1M-ticket store of one portal
        "idx_tickets_portal_created_at": "1000000 1000000 1",
        "idx_tickets_portal_created_at_customer_deleted": "1000000 1000000 1 1 1",
        "idx_tickets_portal_closed_at": "1000000 1000000 1",
        "idx_tickets_portal_closed_at_created_at": "1000000 1000000 1 1",
    }
    one_portal_statistics(db, {"tickets": stats})
    for sql, params in (candidate_query(PORTAL, 1, 2), candidate_query(PORTAL, 1, 2, facts=True, dormant_ctx="x")):
        closed = sql.split(" union all ")[1]
        plan = [r[3] for r in db.execute("explain query plan " + closed, params[3:6]).fetchall()]
        assert "closed_at>?" in plan[0], plan
    # a kept pass re-reads written tickets by their key, not by a range of created_at
    from b24desk.kpi.report import ReportPass

    rp = ReportPass(db, PORTAL, *OCT, config=CONFIG, keep_keys=True)
    said = []
    db.conn.set_trace_callback(said.append)
    try:
        assert rp.refresh(db, {("task", "1"): ts("2026-10-05 10:00")})
    finally:
        db.conn.set_trace_callback(None)
    by_key = [q for q in said if "json_each" in q and "from tickets" in q]
    assert len(by_key) >= 2  # the tickets and their customers' history
    for q in by_key:
        plan = " ".join(r[3] for r in db.execute("explain query plan " + q).fetchall())
        assert "sqlite_autoindex_tickets_1" in plan and "created_at<" not in plan, plan


# --- targets and status -----------------------------------------------------------------------


def test_traffic_lights_with_overrides(db):
    mixed_store(db)
    cfg = {
        **CONFIG,
        "targets": {
            "tickets_total": {"target": 10, "direction": "lower"},
            "fcr_share": {"target": 0.9, "direction": "higher"},
            "resolved_count": {"target": 5, "direction": "higher"},
        },
        "scorecard": {"tolerance": 0.1, "min_n": 5},
    }
    r = build_report(db, PORTAL, *OCT, config=cfg)
    assert r["kpis"]["tickets_total"]["status"] == "green"  # 7 <= 10
    assert r["kpis"]["resolved_count"]["status"] == "green"  # 5 >= 5 (T1 T2 T4 T6 T8)
    assert r["kpis"]["fcr_share"]["status"] == "red"
    set_setting(
        db,
        PORTAL,
        TARGETS_SETTING,
        {
            "portal": {"tickets_total": {"target": 6.5}},
            "agents": {"10": {"tickets_total": {"target": 1, "min_n": 1}}},
            "departments": {"5": {"tickets_total": {"target": 3, "min_n": 0}}},
        },
    )
    r = build_report(db, PORTAL, *OCT, config=cfg)
    assert r["kpis"]["tickets_total"]["status"] == "yellow"  # 7 within 10 % of 6.5
    assert r["kpis"]["tickets_total"]["target"] == 6.5
    one = build_report(db, PORTAL, *OCT, config=cfg, filters={"agent": "10"})
    assert one["kpis"]["tickets_total"]["target"] == 1 and one["kpis"]["tickets_total"]["status"] == "red"
    sub = build_report(db, PORTAL, *OCT, config=cfg, filters={"department": "7"})
    assert sub["kpis"]["tickets_total"]["target"] == 3  # inherited from Support (5)
    assert sub["kpis"]["tickets_total"]["status"] == "green"
    g = {x["key"]: x for x in build_report(db, PORTAL, *OCT, config=cfg, group_by="agent")["groups"]}
    assert g["10"]["kpis"]["tickets_total"]["target"] == 1
    assert g["30"]["kpis"]["tickets_total"]["status"] == "grey"  # 1 ticket < min_n 5


# --- CCEI and the portal calendar ---------------------------------------------------------------


def test_ccei_with_manual_inputs_of_the_period(db):
    seed_example(db)
    r = build_report(db, PORTAL, *OCT, config=CONFIG)
    assert r["ccei"]["components"]["business"] is None and "business" in r["ccei"]["left_out"]
    set_inputs(
        db,
        PORTAL,
        "2026-10",
        {"retention_after_support": 88, "overall_retention": 80, "feedback_quality": 80, "enps": 50, "turnover": 0.10},
    )
    r = build_report(db, PORTAL, *OCT, config=CONFIG)
    assert r["ccei"]["components"]["business"] == 95 and r["ccei"]["components"]["team"] == 66
    assert "business" not in r["ccei"]["left_out"] and "team" not in r["ccei"]["left_out"]
    q = r["ccei"]["components"]["quality"]
    # CSAT 0.5, FCR 2/3, no CES: the CES term is left out and 0.5/0.2 rescaled
    assert q == pytest.approx(100 * (0.5 * 0.5 + 0.2 * 2 / 3) / 0.7)
    assert "quality.ces" in r["ccei"]["left_out"]
    assert r["kpis"]["ccei"]["value"] == r["ccei"]["value"]
    assert r["kpis"]["ccei"]["previous"] == r["ccei"]["previous"]


def test_portal_calendar_setting_changes_business_time(db):
    seed_example(db)
    base = build_report(db, PORTAL, *OCT, config=CONFIG)["kpis"]["resolution_time_business"]["value"]
    set_setting(
        db, PORTAL, PORTAL_CALENDAR_SETTING, {"work_time_start": "8", "work_time_end": "20", "week_holidays": ["SU"]}
    )
    wider = build_report(db, PORTAL, *OCT, config=CONFIG)["kpis"]["resolution_time_business"]["value"]
    assert wider["avg"] > base["avg"]
