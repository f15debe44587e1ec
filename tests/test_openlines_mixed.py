"""A mixed portal (tasks + deals + smart process + open lines): the KPI report built from the store
after a sync equals a plain, independent computation over the double's ground truth (kpi.md
sections 2-3), in total and per open-line channel; the channel breakdown sums to the total."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from openlines_support import END, client_for
from truth_kpi import expected, got, same

from b24desk.kpi.report import build_report
from b24desk.sync import run_sync
from portal_double import PortalDouble
from portal_double.truth import SOURCE_CONFIG

CONFIG = {"sources": SOURCE_CONFIG + [{"select": "openlines"}]}
SELECTORS = ["tasks", "deals:category=3", "crm:1038", "openlines"]
TZ = ZoneInfo("Europe/Moscow")
PERIODS = [
    (datetime(2026, 9, 1, tzinfo=TZ), datetime(2026, 10, 1, tzinfo=TZ)),
    (datetime(2026, 10, 1, tzinfo=TZ), datetime(2026, 10, 16, tzinfo=TZ)),
]
CHANNELS = ("livechat", "telegrambot", "whatsappbyedna", "vkgroup", "avito")


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    from b24desk.store import open_db

    d = PortalDouble(seed=21, tickets=400, openlines=700, drain_per_s=1e6, bucket_size=10**6, end=END)
    d.start()
    db = open_db(str(tmp_path_factory.mktemp("mixed") / "b24desk.db"))
    c = client_for(d)
    reports = run_sync(c, db, SELECTORS, CONFIG)
    assert [r.error for r in reports] == [None] * 4
    yield d, db, c.portal_id
    d.stop()
    db.conn.close()


# --- the tests --------------------------------------------------------------------------------------


def test_the_store_holds_every_source(synced):
    d, db, portal = synced
    counts = dict(db.execute("select source, count(*) from tickets group by source").fetchall())
    assert counts["openlines"] == 700 and counts["task"] > 0 and counts["crm:2"] > 0 and counts["crm:1038"] > 0


@pytest.mark.parametrize("start, end", PERIODS)
def test_open_line_channels_match_the_truth(synced, start, end):
    d, db, portal = synced
    truth = d.truth
    report = build_report(db, portal, start, end, group_by="channel", config=CONFIG)
    groups = {g["key"]: g["kpis"] for g in report["groups"]}
    assert set(CHANNELS) <= set(groups) and None in groups

    def synced_only(t):  # a repeat contact's earlier ticket may be of any synced source (no source filter)
        return t["source"] != "crm:2" or truth.extra[("crm:2", t["source_id"])]["category"] == 3

    for ch in CHANNELS:
        want = expected(
            truth,
            int(start.timestamp()),
            int(end.timestamp()),
            lambda t, ch=ch: t["source"] == "openlines" and t["channel"] == ch,
            scope=synced_only,
        )
        mine = {k: got(groups[ch], k) for k in want}
        assert {k: (mine[k], want[k]) for k in want if not same(mine[k], want[k])} == {}, ch
    # a breakdown's group counts add up to the total
    assert sum(got(g, "tickets_total") for g in groups.values()) == got(report["kpis"], "tickets_total")
    assert sum(got(g, "resolved_count") for g in groups.values()) == got(report["kpis"], "resolved_count")


@pytest.mark.parametrize("start, end", PERIODS)
def test_mixed_portal_totals_match_the_truth(synced, start, end):
    d, db, portal = synced
    report = build_report(db, portal, start, end, config=CONFIG)
    truth = d.truth

    def synced_only(t):  # the selector is deals:category=3, the truth has every deal
        return t["source"] != "crm:2" or truth.extra[("crm:2", t["source_id"])]["category"] == 3

    want = expected(truth, int(start.timestamp()), int(end.timestamp()), synced_only)
    # CRM responsible changes have no API (kpi.md: seen only by diffing snapshots), so a first sync
    # cannot know the CRM transfers the truth has: transfers are compared per open-line channel above
    want.pop("transferred_share")
    mine = {k: got(report["kpis"], k) for k in want}
    assert {k: (mine[k], want[k]) for k in want if not same(mine[k], want[k])} == {}


def test_type_breakdown_is_the_line(synced):
    d, db, portal = synced
    start, end = PERIODS[0]
    report = build_report(db, portal, start, end, group_by="type", filters={"source": "openlines"}, config=CONFIG)
    lines = {g["key"]: got(g["kpis"], "tickets_total") for g in report["groups"]}
    truth = [
        t
        for t in d.truth.tickets
        if t["source"] == "openlines" and start.timestamp() <= t["created_at"] < end.timestamp()
    ]
    assert set(lines) == {"Поддержка", "Продажи", "VIP-клиенты"}
    # the type as of the period's end: a dialog moved to another line later still counts in its old one
    assert sum(lines.values()) == len(truth)
