"""Breakdown by open line, display names of group keys, and the CRM default status buckets."""

from kpi_support import CONFIG, PORTAL, add_ticket

from b24desk.kpi.report import build_report
from b24desk.store import set_setting

FROM, TO = "2026-10-01", "2026-11-01"


def _desk(db):
    set_setting(db, PORTAL, "openlines.lines", {"1": "Поддержка", "2": "VIP"})
    set_setting(
        db,
        PORTAL,
        "crm.2.stages",
        {"stages": {"C3:NEW": "P", "C3:UC_WAIT": "P", "C3:WON": "S"}, "categories": {"3": "Обращения"}},
    )
    add_ticket(
        db, 1, "2026-10-02 10:00", "C_1", "10", source="openlines", line="1", channel="livechat", type="Поддержка"
    )
    add_ticket(db, 2, "2026-10-03 10:00", "C_2", "10", source="openlines", line="2", channel="telegrambot", type="VIP")
    add_ticket(db, 3, "2026-10-04 10:00", "C_3", "11", source="openlines", line="2", channel="livechat", type="VIP")
    # a deal: 2 h in C3:NEW, 3 h waiting for the customer, then won
    add_ticket(
        db,
        9,
        "2026-10-05 10:00",
        "C_9",
        "11",
        source="crm:2",
        type="3",
        events=[
            ("2026-10-05 12:00", "status", None, None, "C3:NEW", "C3:UC_WAIT"),
            ("2026-10-05 15:00", "status", None, None, "C3:UC_WAIT", "C3:WON"),
            ("2026-10-05 15:00", "resolved", None),
        ],
    )


def test_group_by_line_sums_and_names(db):
    _desk(db)
    r = build_report(db, PORTAL, FROM, TO, group_by="line", config=CONFIG)
    groups = {g["key"]: g for g in r["groups"]}
    assert set(groups) == {"1", "2", None}
    assert groups["1"]["label"] == "Поддержка" and groups["2"]["label"] == "VIP"
    assert groups["2"]["kpis"]["tickets_total"]["value"] == 2
    assert sum(g["kpis"]["tickets_total"]["value"] for g in r["groups"]) == r["kpis"]["tickets_total"]["value"] == 4


def test_crm_funnel_ids_show_their_names(db):
    _desk(db)
    r = build_report(db, PORTAL, FROM, TO, group_by="type", config=CONFIG)
    labels = {g["key"]: g["label"] for g in r["groups"]}
    assert labels["3"] == "Обращения"
    assert labels["VIP"] == "VIP"


def test_crm_in_progress_stages_count_as_work_by_default(db):
    _desk(db)
    r = build_report(db, PORTAL, FROM, TO, filters={"source": ["crm:2"]}, config=CONFIG)
    assert r["kpis"]["requester_wait_time"]["value"]["avg"] == 5 * 3600  # both P stages
    assert r["kpis"]["agent_wait_time"]["value"] is None  # nothing mapped to wait_customer
    cfg = dict(CONFIG, status_buckets={"crm:2": {"C3:UC_WAIT": "wait_customer"}})
    r = build_report(db, PORTAL, FROM, TO, filters={"source": ["crm:2"]}, config=cfg)
    assert r["kpis"]["requester_wait_time"]["value"]["avg"] == 2 * 3600
    assert r["kpis"]["agent_wait_time"]["value"]["avg"] == 3 * 3600


def test_time_zone_read_from_the_portal_is_used(db):
    set_setting(db, PORTAL, "portal_timezone", "Asia/Yekaterinburg")
    r = build_report(db, PORTAL, FROM, TO, config=CONFIG)
    assert r["timezone"] == "Asia/Yekaterinburg" and r["period"]["from"] == "2026-10-01T00:00:00+05:00"
    set_setting(db, PORTAL, "portal_timezone", "Not/AZone")
    assert build_report(db, PORTAL, FROM, TO, config=CONFIG)["timezone"] == "Europe/Moscow"


def test_first_response_sla_share_in_business_time_as_of_to(db):
    cfg = dict(CONFIG, sla={"first_response_business_seconds": {"normal": 3600}})
    # week of Mon 2026-10-05 (Moscow, work 09:00-18:00); target: 1 business hour
    add_ticket(db, 1, "2026-10-05 10:00", "a", "10", events=[("2026-10-05 10:30", "reply", "10")])  # met
    add_ticket(db, 2, "2026-10-05 10:00", "b", "10", events=[("2026-10-05 12:00", "reply", "10")])  # breached
    # Fri 17:30 -> Mon 09:20: 64 h on the clock, 50 business minutes: met
    add_ticket(db, 3, "2026-10-02 17:30", "c", "10", events=[("2026-10-05 09:20", "reply", "10")])
    add_ticket(db, 5, "2026-10-07 10:00", "e", "10")  # never answered: breached
    add_ticket(db, 4, "2026-10-11 20:00", "d", "10")  # Sunday, still inside: pending
    # answered only after `to`; as of `to` it is 10 business minutes old: pending, not breached
    add_ticket(db, 6, "2026-10-09 17:50", "f", "10", events=[("2026-10-12 09:05", "reply", "10")])
    add_ticket(
        db,
        7,
        "2026-10-05 11:00",
        "g",
        "10",
        priority="high",  # no target for high
        events=[("2026-10-06 11:00", "reply", "10")],
    )
    r = build_report(db, PORTAL, "2026-10-05", "2026-10-12", config=cfg)
    k = r["kpis"]["first_response_sla_share"]
    # C = 1, 2, 4, 5, 6, 7 (3 was created before the week): 1 met; 2, 5 breached; 4, 6 pending;
    # 7 has no target
    assert (k["value"], k["n"]) == (1 / 3, 3)
    r = build_report(db, PORTAL, "2026-09-28", "2026-10-12", config=cfg)  # two weeks: 3 is in C too
    k = r["kpis"]["first_response_sla_share"]
    assert (k["value"], k["n"]) == (2 / 4, 4)  # 1, 3 met; 2, 5 breached
    assert k["target"] == 0.9 and k["status"] == "grey"  # n = 4 < min_n 5
    assert (
        build_report(db, PORTAL, "2026-10-05", "2026-10-12", config=CONFIG)["kpis"]["first_response_sla_share"]["value"]
        is None
    )  # no SLA configured: null


def test_channel_and_line_filters(db):
    _desk(db)
    r = build_report(db, PORTAL, FROM, TO, filters={"line": "2"}, config=CONFIG)
    assert r["kpis"]["tickets_total"]["value"] == 2 and r["filters"]["line"] == "2"
    r = build_report(db, PORTAL, FROM, TO, filters={"line": "2", "channel": "livechat"}, config=CONFIG)
    assert r["kpis"]["tickets_total"]["value"] == 1
    r = build_report(db, PORTAL, FROM, TO, filters={"channel": ["livechat", "telegrambot"]}, config=CONFIG)
    assert r["kpis"]["tickets_total"]["value"] == 3
