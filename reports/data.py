"""Every number a page, the API or an export shows, fetched from the KPI engine and memoized.

The engine (``b24desk.kpi.build_report``) and its per-ticket replay (``b24desk.kpi.drilldown``)
do all KPI maths; this module only chooses the calls (scoped by the viewer's role before it is
reached) and caches their results while the store is unchanged (reports/cache.py).
"""
from __future__ import annotations

from flask import current_app

from b24desk.kpi import build_report
from b24desk.kpi.drilldown import Replay
from b24desk.kpi.formats import render
from b24desk.kpi.load import load_people

from .blueprint import config
from .cache import Memo
from .portal_settings import effective_config
from .query import Query, weeks

MEMO = Memo()


def _db_path() -> str:
    return str(current_app.config["DB"])


def portal_config(db, portal: str) -> dict:
    return effective_config(db, portal, config())


def engine_filters(filters: dict) -> dict:
    return {k: v for k, v in filters.items() if v not in (None, "", [])}


def report(db, portal: str, q: Query, filters: dict, group_by: str | None = None) -> dict:
    """``build_report`` for the query (the same call ``flask kpi`` makes), memoized: shared
    between requests, so callers treat it as read-only."""
    cfg = portal_config(db, portal)
    key = ("report", portal, q.date_from, q.date_to, engine_filters(filters), group_by, cfg)
    return MEMO.get_or_compute(_db_path(), key, lambda: build_report(
        db, portal, q.date_from, q.date_to, filters=engine_filters(filters), group_by=group_by, config=cfg))


def rendered(db, portal: str, q: Query, filters: dict, group_by: str | None, fmt: str):
    """The report in ``flask kpi``'s ``--format`` (json, csv, xlsx), memoized like the report."""
    cfg = portal_config(db, portal)
    key = ("rendered", fmt, portal, q.date_from, q.date_to, engine_filters(filters), group_by, cfg)
    return MEMO.get_or_compute(_db_path(), key, lambda: render(report(db, portal, q, filters, group_by), fmt))


def charts(db, portal: str, q: Query, filters: dict, tz_name: str) -> dict:
    """Weekly series and the FRT / resolution per-ticket durations, from one replay."""
    cfg = portal_config(db, portal)

    def compute():
        rp = Replay(db, portal, q.date_from, q.date_to, filters=engine_filters(filters), config=cfg)
        bounds = weeks(rp.period.start, rp.period.end, rp.env.tz_name)
        return {"series": rp.series(bounds), "tz": rp.env.tz_name,
                "frt": sorted(rp.durations("first_response_time")),
                "resolution": sorted(rp.durations("resolution_time"))}
    key = ("charts", portal, q.date_from, q.date_to, engine_filters(filters), cfg)
    return MEMO.get_or_compute(_db_path(), key, compute)


def members(db, portal: str, q: Query, filters: dict, kpi: str) -> list[dict]:
    cfg = portal_config(db, portal)

    def compute():
        rp = Replay(db, portal, q.date_from, q.date_to, filters=engine_filters(filters), config=cfg)
        return rp.members(kpi)
    key = ("members", portal, q.date_from, q.date_to, engine_filters(filters), kpi, cfg)
    return MEMO.get_or_compute(_db_path(), key, compute)


def people(db, portal: str) -> tuple[dict, dict]:
    """Users (id -> {label, departments}) and departments (id -> {name, parent}), memoized."""
    return MEMO.get_or_compute(_db_path(), ("people", portal), lambda: load_people(db, portal))


def distinct(db, portal: str, column: str) -> list[str]:
    assert column in ("source", "type", "channel")

    def compute():
        rows = db.execute(f"select distinct {column} from tickets where portal = ? and {column} is not null"
                          " and coalesce(deleted, 0) = 0 order by 1", [portal]).fetchall()
        return [str(r[0]) for r in rows if r[0] not in (None, "")]
    return MEMO.get_or_compute(_db_path(), ("distinct", portal, column), compute)


def tickets_by_key(db, portal: str, keys: list[tuple[str, str]]) -> dict:
    """Title and portal path of tickets, for drilldown rows (one query)."""
    import json
    if not keys:
        return {}
    rows = db.execute(
        "select t.source, t.source_id, t.title, t.url, t.responsible_id from json_each(?) j join tickets t"
        " on t.portal = ? and t.source = j.value ->> 0 and t.source_id = j.value ->> 1",
        [json.dumps([list(k) for k in keys]), portal]).fetchall()
    return {(r[0], r[1]): {"title": r[2], "url": r[3], "responsible_id": r[4]} for r in rows}
