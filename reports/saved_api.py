"""``/api/reports``: saved reports over HTTP (interfaces.md "Saved reports"), a thin layer over
``b24desk.saved_reports``. Every call carries a viewer token; errors are ``{"error", "field"}``
in the viewer's language. ``/data`` computes the definition exactly as ``GET /api/kpi`` would
(same engine call, same cache), after cutting it to the viewer's role.
"""

from __future__ import annotations

import json
from datetime import datetime

from flask import Response, jsonify, request

from b24desk import saved_reports as store
from b24desk.kpi.load import portal_zone
from b24desk.kpi.periods import zone
from b24desk.kpi.presets import compare_period, resolve_preset
from b24desk.kpi.report import value_delta
from b24desk.saved_reports import ReportError
from b24desk.viewer import ViewerError

from . import data
from .auth import current_viewer, viewer_required
from .blueprint import bp, get_db
from .query import Query, parse

SCHEMA = "b24desk.report/1"
TIME_KEYED = ("week", "month")


def _error(err: ReportError):
    return jsonify(err.as_json()), err.status


def _body(lang: str):
    raw = request.get_json(silent=True)
    if raw is None:
        raise ReportError(400, "not_object", None, lang)
    return raw


@bp.route("/api/reports", methods=["GET", "POST"])
@viewer_required
def api_reports():
    v, db = current_viewer(), get_db()
    try:
        if request.method == "GET":
            return jsonify({"reports": store.list_for(db, v)})
        d = store.create(db, v, _body(v.lang))
        return jsonify({"id": d["id"]}), 201
    except ReportError as err:
        return _error(err)


@bp.route("/api/reports/<report_id>", methods=["GET", "PUT", "DELETE"])
@viewer_required
def api_report(report_id):
    v, db = current_viewer(), get_db()
    try:
        if request.method == "GET":
            return jsonify(store.get_for(db, v, report_id))
        if request.method == "PUT":
            return jsonify(store.update(db, v, report_id, _body(v.lang)))
        store.delete(db, v, report_id)
        return Response(status=204)
    except ReportError as err:
        return _error(err)


def report_query(db, v, definition: dict, args, now: datetime | None = None) -> Query:
    """The period to compute: ``?from=&to=`` if given, else the definition's preset or dates."""
    cfg = data.portal_config(db, v.portal)
    tz_name = portal_zone(db, v.portal, cfg)
    if args.get("from") or args.get("to"):
        try:
            q = parse({"from": args.get("from"), "to": args.get("to")}, tz_name)
        except ViewerError as exc:
            raise ReportError(400, "period", "from", v.lang, exc.message) from None
        return q
    period = definition["period"]
    if "preset" in period:
        a, b = resolve_preset(period["preset"], now or datetime.now(zone(tz_name)), zone(tz_name))
        return Query(a.date().isoformat(), b.date().isoformat(), {}, None, tz_name)
    return Query(period["from"], period["to"], {}, None, tz_name)


def _year_on(key, group_by):
    """``2025-10`` -> ``2026-10``, ``2025-W43`` -> ``2026-W43`` (a year-earlier bucket's match)."""
    if group_by in TIME_KEYED and isinstance(key, str) and key[:4].isdigit():
        return f"{int(key[:4]) + 1:04d}{key[4:]}"
    return key


def _with_last_year(result: dict, ly: dict) -> dict:
    """``result`` whose ``previous`` values and deltas are those of the same period a year earlier."""

    def splice(kpis, old):
        for k, e in kpis.items():
            p = (old or {}).get(k, {}).get("value")
            e["previous"], e["delta"] = p, value_delta(e["value"], p)

    result = json.loads(json.dumps(result))
    result["previous"] = ly["period"]
    result["compare"] = "last_year"
    splice(result["kpis"], ly["kpis"])
    if "ccei" in result and "ccei" in ly:
        result["ccei"]["previous"] = ly["ccei"].get("value")
    old_groups = {_year_on(g["key"], ly.get("group_by")): g for g in ly.get("groups") or []}
    for g in result.get("groups") or []:
        og = old_groups.get(g["key"])
        splice(g["kpis"], og["kpis"] if og else None)
        if "ccei" in g:
            g["ccei"]["previous"] = og["ccei"].get("value") if og else None
    return result


def report_data(db, v, definition: dict, args, now: datetime | None = None) -> dict:
    """``{"schema", "definition", "result"}`` for this viewer."""
    scoped = store.data_scope(db, v, definition)
    q = report_query(db, v, definition, args, now)
    q.filters, q.group_by = scoped.filters, scoped.group_by
    result = json.loads(data.rendered(db, v.portal, q, scoped.filters, scoped.group_by, "json"))
    if definition.get("compare") == "last_year":
        tz = zone(q.tz)
        a = datetime.fromisoformat(result["period"]["from"])
        b = datetime.fromisoformat(result["period"]["to"])
        la, lb = compare_period(a, b, "last_year", tz)
        ly_q = Query(la.isoformat(), lb.isoformat(), scoped.filters, scoped.group_by, q.tz)
        ly = json.loads(data.rendered(db, v.portal, ly_q, scoped.filters, scoped.group_by, "json"))
        result = _with_last_year(result, ly)
    return {"schema": SCHEMA, "definition": definition, "result": result}


@bp.route("/api/reports/<report_id>/data")
@viewer_required
def api_report_data(report_id):
    v, db = current_viewer(), get_db()
    try:
        definition = store.get_for(db, v, report_id)
        body = report_data(db, v, definition, request.args)
        if request.args.get("analysis") == "1":
            # problem zones and best agents of a per-agent / per-department report (not for agents)
            from .saved_pages import _zones

            scoped = store.data_scope(db, v, definition)
            body["analysis"] = _zones(db, v, definition, body["result"], scoped.filters)
        return data.with_stale_header(jsonify(body))
    except ReportError as err:
        return _error(err)
