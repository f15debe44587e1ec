"""b24desk.kpi.drilldown agrees with build_report for every KPI: the tickets listed behind a number
are exactly the ones the engine counted, and their values summarise to the report's value."""

from __future__ import annotations

import math
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from b24desk.kpi import build_report
from b24desk.kpi.drilldown import MEMBERSHIP, Replay, kind_of
from b24desk.kpi.engine import KPI_KEYS
from b24desk.kpi.stats import summary

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bench_store import PORTAL, seed_store  # noqa: E402

CONFIG = {
    "calendar": {"timezone": "Europe/Moscow"},
    "sla": {"resolution_business_seconds": {"critical": 14400, "high": 32400, "normal": 97200, "low": 194400}},
    "targets": {},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from b24desk.store import open_db

    path = tmp_path_factory.mktemp("drill") / "drill.db"
    db = open_db(path)
    now = int(datetime(2026, 11, 15, tzinfo=timezone.utc).timestamp())
    seed_store(db, 3000, now=now, seed=3)
    db.execute(
        "update tickets set nps = cast(source_id as integer) % 11, ces = 1 + cast(source_id as integer) % 5,"
        " handle_time = 60 * (cast(source_id as integer) % 40), deadline = created_at + 86400"
        " where cast(source_id as integer) % 3 = 0"
    )
    db.conn.commit()
    yield db
    db.conn.close()


FILTERS = [None, {"priority": "high"}, {"department": "3"}, {"agent": "205"}]


@pytest.mark.parametrize("filters", FILTERS)
def test_every_kpi_drills_to_what_the_engine_counted(store, filters):
    rep = build_report(store, PORTAL, "2026-10-01", "2026-11-01", filters=filters, config=CONFIG)
    rp = Replay(store, PORTAL, "2026-10-01", "2026-11-01", filters=filters, config=CONFIG)
    checked = 0
    for key in KPI_KEYS:
        e = rep["kpis"][key]
        rows = rp.members(key)
        kind = kind_of(key)
        value = e["value"]
        if key in ("top_agents", "repeat_contact_share"):
            continue  # a ranking of agents / a share of customers: their tickets are listed, not n
        if kind == "count" and isinstance(value, int):
            assert len(rows) == value, key
        elif kind == "share":
            assert len(rows) == e["n"], key
            hits = sum(1 for r in rows if r["hit"])
            if key == "task_efficiency":
                assert value == (100.0 if not rows else max(0.0, 100 - 100 * hits / len(rows))), key
            elif value is None:
                assert not rows, key
            else:
                assert math.isclose(hits / len(rows), value), key
        elif kind == "duration":
            vals = [r["value"] for r in rows]
            assert summary(vals) == value, key
        else:
            assert len(rows) == e["n"], key
            if key in ("transfers_per_ticket", "interactions_per_ticket") and rows:
                assert math.isclose(sum(r["value"] for r in rows) / len(rows), value), key
        checked += 1
    assert checked == len(KPI_KEYS) - 2
    assert rep["kpis"]["tickets_total"]["value"] > 0 or filters


def test_membership_table_covers_the_fast_paths():
    assert set(MEMBERSHIP) <= set(KPI_KEYS)
    # the few KPIs left to the per-ticket engine fallback
    assert set(KPI_KEYS) - set(MEMBERSHIP) == {"repeat_contact_share", "contacts_per_customer", "tickets_per_agent_day"}


def test_fallback_kpis_drill_through_the_engine(store):
    rep = build_report(store, PORTAL, "2026-10-01", "2026-11-01", config=CONFIG)
    rp = Replay(store, PORTAL, "2026-10-01", "2026-11-01", config=CONFIG)
    rows = rp.members("repeat_contact_share")
    assert rows and all(r["value"] in (0.0, 1.0) for r in rows)
    assert len(rp.members("tickets_per_agent_day")) == rep["kpis"]["tickets_per_agent_day"]["n"]


def test_weekly_series_use_the_report_semantics(store):
    rp = Replay(store, PORTAL, "2026-10-01", "2026-11-01", config=CONFIG)
    from reports.query import weeks

    bounds = weeks(rp.period.start, rp.period.end, "Europe/Moscow")
    assert bounds[0][0] == rp.period.start and bounds[-1][1] == rp.period.end
    series = rp.series(bounds)
    total = build_report(store, PORTAL, "2026-10-01", "2026-11-01", config=CONFIG)["kpis"]
    assert sum(w["created"] for w in series) == total["tickets_total"]["value"]
    one = build_report(
        store,
        PORTAL,
        datetime.fromtimestamp(bounds[1][0], timezone.utc),
        datetime.fromtimestamp(bounds[1][1], timezone.utc),
        config=CONFIG,
    )["kpis"]
    assert series[1]["resolved"] == one["resolved_count"]["value"]
    assert series[1]["first_response_time"] == one["first_response_time"]["value"]
