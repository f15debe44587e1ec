"""``GET /api/kpi`` (the JSON of ``flask kpi --format json``), the drilldown and the exports.

All three take the viewer from the signed token (Bearer header or ``?t=``) and apply the role's
slice before the engine runs, so a script cannot ask for more than the page shows.
"""
from __future__ import annotations

from datetime import datetime

from flask import Response, jsonify, request

from b24desk.installations import get_installation
from b24desk.kpi.load import portal_zone
from b24desk.kpi.drilldown import kind_of
from b24desk.kpi.periods import zone
from b24desk.viewer import FILTER_KEYS, ViewerError, can_drill, scope_query

from b24desk.text import present

from . import data
from .auth import current_viewer, viewer_required
from .blueprint import bp, get_db
from b24desk.text.i18n import t
from .query import parse
from .security import portal_origins
from .ticket_card import source_label

DRILL_LIMIT = 500


# What the API and the exports read; anything else is a typo the caller should hear about
# (``departmnt=5`` silently ignored would answer the whole portal's numbers).
KNOWN_PARAMS = frozenset({"from", "to", "group_by", "t", "LANG", "lang", "kpi", "min", "max", "_", *FILTER_KEYS})


def _scoped_query(allow_group=True):
    v = current_viewer()
    unknown = sorted(k for k in request.args if k not in KNOWN_PARAMS)
    if unknown:
        raise ViewerError(400, "unknown_param", f"unknown parameter {unknown[0][:40]!r}; known: "
                                                f"{', '.join(sorted(KNOWN_PARAMS - {'_', 'LANG'}))}")
    db = get_db()
    cfg = data.portal_config(db, v.portal)
    tz = portal_zone(db, v.portal, cfg)
    q = parse(request.args, tz, allow_group=allow_group)
    scoped = scope_query(v, q.filters, q.group_by, db=db)
    return v, db, q, scoped, tz


@bp.route("/api/kpi")
@viewer_required
def api_kpi():
    v, db, q, scoped, _tz = _scoped_query()
    body = data.rendered(db, v.portal, q, scoped.filters, scoped.group_by, "json")
    return Response(body, mimetype="application/json")


@bp.route("/api/drilldown")
@viewer_required
def api_drilldown():
    v, db, q, scoped, tz = _scoped_query(allow_group=False)
    kpi = (request.args.get("kpi") or "").strip()
    if kpi not in present.KPI_KEYS_ALL:
        raise ViewerError(400, "bad_kpi", f"unknown kpi {kpi!r}")
    if not can_drill(v, scoped):
        raise ViewerError(403, "no_drill", "team totals have no ticket list")
    lo, hi = _bound("min"), _bound("max")
    rows = data.members(db, v.portal, q, scoped.filters, kpi)
    if lo is not None or hi is not None:
        rows = [r for r in rows if r["value"] is not None and (lo is None or r["value"] >= lo)
                and (hi is None or r["value"] < hi)]
    kind = kind_of(kpi)
    rows = sorted(rows, key=lambda r: (not r["hit"] if r["hit"] is not None else False,
                                       -(r["value"] or 0), -(r["created_at"] or 0)))
    total, hits = len(rows), sum(1 for r in rows if r["hit"])
    shown = rows[:DRILL_LIMIT]
    info = data.tickets_by_key(db, v.portal, [(r["source"], r["source_id"]) for r in shown])
    users, _deps = data.people(db, v.portal)
    origins = portal_origins(get_installation(db, v.portal))
    origin = origins[0] if origins else None
    tzinfo = zone(tz)
    lang = v.lang
    out = []
    for r in shown:
        meta = info.get((r["source"], r["source_id"])) or {}
        url = meta.get("url")
        if r["value"] is not None:
            value_text = (present.fmt_value(kpi, r["value"], lang) if kind == "duration"
                          else present._num(r["value"], 2, lang))
        elif r["hit"] is not None and kind == "share":
            value_text = "✓" if r["hit"] else "—"
        else:
            value_text = ""
        out.append({
            "source": r["source"], "source_id": r["source_id"], "source_label": source_label(r["source"], lang),
            "title": meta.get("title") or f"#{r['source_id']}",
            "link": (origin + url) if origin and url and str(url).startswith("/") else None,
            "responsible": (users.get(str(r["responsible"])) or {}).get("label") or (r["responsible"] or ""),
            "created": (datetime.fromtimestamp(r["created_at"], tzinfo).strftime("%d.%m.%Y %H:%M")
                        if r["created_at"] else ""),
            "state": r["state"], "state_label": t(f"state_{r['state']}", lang),
            "hit": r["hit"], "value": r["value"], "value_text": value_text,
        })
    return data.with_stale_header(jsonify({"kpi": kpi, "kind": kind, "total": total, "hits": hits,
                                           "tickets": out, "truncated": total > len(out)}))


def _bound(name):
    raw = request.args.get(name)
    if raw in (None, "", "null", "None"):
        return None
    try:
        return float(raw)
    except ValueError:
        raise ViewerError(400, "bad_bound", f"{name} must be a number") from None


def _export(fmt: str):
    v, db, q, scoped, _tz = _scoped_query()
    group_by = scoped.group_by
    if group_by is None and scoped.slice in ("all", "tree") and "group_by" not in request.args:
        group_by = "agent"                   # the dashboard's view: totals and the per-agent table
    body = data.rendered(db, v.portal, q, scoped.filters, group_by, fmt)
    name = f"b24desk-kpi-{q.date_from}-{q.date_to}.{fmt}"
    mime = "text/csv; charset=utf-8" if fmt == "csv" else \
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    if fmt == "csv":
        body = "\ufeff" + body               # so Excel opens Cyrillic labels as UTF-8
    return Response(body, mimetype=mime, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.route("/reports/export.csv")
@viewer_required
def export_csv():
    return _export("csv")


@bp.route("/reports/export.xlsx")
@viewer_required
def export_xlsx():
    return _export("xlsx")
