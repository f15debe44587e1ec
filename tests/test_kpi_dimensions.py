"""Breakdown by open line, display names of group keys, and the CRM default status buckets."""
from b24desk.kpi.report import build_report
from b24desk.store import set_setting
from test_kpi_support import CONFIG, PORTAL, add_ticket

FROM, TO = "2026-10-01", "2026-11-01"


def _desk(db):
    set_setting(db, PORTAL, "openlines.lines", {"1": "Поддержка", "2": "VIP"})
    set_setting(db, PORTAL, "crm.2.stages", {"stages": {"C3:NEW": "P", "C3:UC_WAIT": "P", "C3:WON": "S"},
                                             "categories": {"3": "Обращения"}})
    add_ticket(db, 1, "2026-10-02 10:00", "C_1", "10", source="openlines", line="1", channel="livechat",
               type="Поддержка")
    add_ticket(db, 2, "2026-10-03 10:00", "C_2", "10", source="openlines", line="2", channel="telegrambot",
               type="VIP")
    add_ticket(db, 3, "2026-10-04 10:00", "C_3", "11", source="openlines", line="2", channel="livechat",
               type="VIP")
    # a deal: 2 h in C3:NEW, 3 h waiting for the customer, then won
    add_ticket(db, 9, "2026-10-05 10:00", "C_9", "11", source="crm:2", type="3", events=[
        ("2026-10-05 12:00", "status", None, None, "C3:NEW", "C3:UC_WAIT"),
        ("2026-10-05 15:00", "status", None, None, "C3:UC_WAIT", "C3:WON"),
        ("2026-10-05 15:00", "resolved", None)])


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
    assert r["kpis"]["requester_wait_time"]["value"]["avg"] == 5 * 3600     # both P stages
    assert r["kpis"]["agent_wait_time"]["value"] is None                     # nothing mapped to wait_customer
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
