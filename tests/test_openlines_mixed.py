"""A mixed portal (tasks + deals + smart process + open lines): the KPI report built from the store
after a sync equals a plain, independent computation over the double's ground truth (kpi.md
sections 2-3), in total and per open-line channel; the channel breakdown sums to the total."""
from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from b24desk.kpi.report import build_report
from b24desk.sync import run_sync
from portal_double import PortalDouble
from portal_double.truth import SOURCE_CONFIG
from test_openlines_support import END, client_for

CONFIG = {"sources": SOURCE_CONFIG + [{"select": "openlines"}]}
SELECTORS = ["tasks", "deals:category=3", "crm:1038", "openlines"]
TZ = ZoneInfo("Europe/Moscow")
PERIODS = [(datetime(2026, 9, 1, tzinfo=TZ), datetime(2026, 10, 1, tzinfo=TZ)),
           (datetime(2026, 10, 1, tzinfo=TZ), datetime(2026, 10, 16, tzinfo=TZ))]
CHANNELS = ("livechat", "telegrambot", "whatsappbyedna", "vkgroup", "avito")


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    from b24desk.store import open_db
    d = PortalDouble(seed=21, tickets=400, openlines=700, drain_per_s=1e6, bucket_size=10 ** 6, end=END)
    d.start()
    db = open_db(str(tmp_path_factory.mktemp("mixed") / "b24desk.db"))
    c = client_for(d)
    reports = run_sync(c, db, SELECTORS, CONFIG)
    assert [r.error for r in reports] == [None] * 4
    yield d, db, c.portal_id
    d.stop()
    db.conn.close()


# --- the independent computation -----------------------------------------------------------------

def nearest_rank(values, p):
    s = sorted(values)
    return s[max(1, math.ceil(p / 100 * len(s))) - 1]


def duration(values):
    if not values:
        return None
    return {"avg": sum(values) / len(values), "median": nearest_rank(values, 50), "p90": nearest_rank(values, 90),
            "count": len(values)}


def share(hits, total):
    return None if total == 0 else hits / total


def as_of(t, events, end):
    """State, time of entering it, first reply, replies and transfers, from the log up to ``end``."""
    state, since, first, replies, transfers = "open", None, None, 0, 0
    for e in sorted(events, key=lambda e: e["at"]):
        if e["at"] >= end:
            break
        kind = e["kind"]
        if kind in ("resolved", "rejected") and state != kind:
            state, since = kind, e["at"]
        elif kind == "reopened" and state != "open":
            state, since = "open", e["at"]
        elif kind == "reply" and e["actor_id"] not in (None, "", "0", t["author_id"]):
            replies += 1
            first = e["at"] if first is None else first
        elif kind == "assigned" and e["from_value"] not in (None, "", "0") and e["from_value"] != e["to_value"]:
            transfers += 1
        elif kind == "escalated":
            transfers += 1
    return state, since, first, replies, transfers


def expected(truth, start, end, keep=lambda t: True):
    C, R, backlog = [], [], 0
    for t in truth.tickets:
        if not keep(t) or t["created_at"] >= end:
            continue
        state, since, first, replies, transfers = as_of(t, truth.events_of(t["source"], t["source_id"]), end)
        row = (t, first, replies, transfers, since)
        if state == "open":
            backlog += 1
        if t["created_at"] >= start:
            C.append((row, state))
        if state == "resolved" and since >= start:
            R.append(row)
    rated = [t["rating"] for t, *_ in R if t["rating"] is not None]
    return {
        "tickets_total": len(C),
        "first_response_time": duration([first - t["created_at"] for (t, first, *_), _ in C if first is not None]),
        "unanswered_share": share(sum(1 for (t, first, *_), st in C if first is None and st == "open"), len(C)),
        "resolved_count": len(R),
        "resolution_time": duration([since - t["created_at"] for t, _, _, _, since in R]),
        "backlog": backlog,
        "transferred_share": share(sum(1 for (t, _, _, tr, _), _ in C if tr), len(C)),
        "one_touch_share": share(sum(1 for _, _, rp, _, _ in R if rp <= 1), len(R)),
        "rated_share": share(len(rated), len(R)),
        "csat": share(sum(1 for r in rated if r >= 4), len(rated)),
    }


def got(kpis, key):
    v = kpis[key]["value"]
    if key == "csat" and isinstance(v, dict):
        return v.get("share", v.get("value"))
    return v


def same(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        return all(same(a[k], b.get(k)) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


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
    for ch in CHANNELS:
        want = expected(truth, int(start.timestamp()), int(end.timestamp()),
                        lambda t, ch=ch: t["source"] == "openlines" and t["channel"] == ch)
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
    def synced_only(t):                       # the selector is deals:category=3, the truth has every deal
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
    truth = [t for t in d.truth.tickets if t["source"] == "openlines"
             and start.timestamp() <= t["created_at"] < end.timestamp()]
    assert set(lines) == {"Поддержка", "Продажи", "VIP-клиенты"}
    # the type as of the period's end: a dialog moved to another line later still counts in its old one
    assert sum(lines.values()) == len(truth)
