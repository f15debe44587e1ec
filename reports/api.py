"""``GET /api/kpi`` (the JSON of ``flask kpi --format json``), the drilldown and the exports.

All three take the viewer from the signed token (Bearer header or ``?t=``) and apply the role's
slice before the engine runs, so a script cannot ask for more than the page shows.
"""

from __future__ import annotations

from datetime import datetime

from flask import Response, jsonify, request

from b24desk import labels
from b24desk.installations import get_installation
from b24desk.kpi.drilldown import kind_of
from b24desk.kpi.load import portal_zone
from b24desk.kpi.now import NOW_ITEMS
from b24desk.kpi.periods import zone
from b24desk.text import present
from b24desk.text.i18n import t
from b24desk.viewer import FILTER_KEYS, ViewerError, can_drill, scope_query

from . import data
from .auth import current_viewer, viewer_required
from .blueprint import bp, get_db
from .names import Names
from .query import last_day, parse, period_bounds
from .security import portal_origins

# What the API and the exports read; anything else is a typo the caller should hear about
# (``departmnt=5`` silently ignored would answer the whole portal's numbers).
KNOWN_PARAMS = frozenset(
    {
        "from",
        "to",
        "group_by",
        "t",
        "LANG",
        "lang",
        "kpi",
        "min",
        "max",
        "_",
        *FILTER_KEYS,
        # issue 14: periods, the comparison, the drilldown's pages, the export's layout
        "preset",
        "compare",
        "page",
        "per_page",
        "sort",
        "dir",
        "format",
        "item",
        "layout",
    }
)


def _scoped_query(allow_group=True):
    v = current_viewer()
    unknown = sorted(k for k in request.args if k not in KNOWN_PARAMS)
    if unknown:
        raise ViewerError(
            400,
            "unknown_param",
            f"unknown parameter {unknown[0][:40]!r}; known: {', '.join(sorted(KNOWN_PARAMS - {'_', 'LANG'}))}",
        )
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


DRILL_SORTS = ("value", "created", "title", "responsible", "state")


@bp.route("/api/drilldown")
@viewer_required
def api_drilldown():
    """The tickets behind a number, paged (``page``, ``per_page`` up to 200) and sorted (``sort``:
    value, created, title, responsible, state; ``dir``: asc/desc); ``format=csv`` exports all of
    them with the value behind each row, in the viewer's language."""
    v, db, q, scoped, tz = _scoped_query(allow_group=False)
    kpi = (request.args.get("kpi") or "").strip()
    if kpi not in present.KPI_KEYS_ALL:
        raise ViewerError(400, "bad_kpi", f"unknown kpi {kpi!r}")
    if not can_drill(v, scoped):
        raise ViewerError(403, "no_drill", "team totals have no ticket list")
    lo, hi = _bound("min"), _bound("max")
    rows = data.members(db, v.portal, q, scoped.filters, kpi)
    if lo is not None or hi is not None:
        rows = [
            r
            for r in rows
            if r["value"] is not None and (lo is None or r["value"] >= lo) and (hi is None or r["value"] < hi)
        ]
    kind = kind_of(kpi)
    _start, end = period_bounds(q)
    if kind in ("count", "share"):
        # the value behind a counted ticket: how long it took (to its resolution, else to the period's end)
        closed = data.closed_at(db, v.portal, [(r["source"], r["source_id"]) for r in rows])
        rows = [
            dict(r, value=max(0, min(closed.get((r["source"], r["source_id"])) or end, end) - (r["created_at"] or end)))
            for r in rows
        ]
    return _ticket_list(v, db, tz, rows, kpi=kpi, kind=kind, value_kind="duration" if kind != "number" else "number")


@bp.route("/api/now")
@viewer_required
def api_now():
    """The tickets behind an item of the dashboard's "now" panel (open, unassigned, no_reply,
    at_risk, oldest), in the viewer's slice; the value is the age (time left for at_risk)."""
    v, db, q, scoped, tz = _scoped_query(allow_group=False)
    item = (request.args.get("item") or "").strip()
    if item not in NOW_ITEMS:
        raise ViewerError(400, "bad_item", f"item must be one of {', '.join(NOW_ITEMS)}")
    if not can_drill(v, scoped):
        raise ViewerError(403, "no_drill", "team totals have no ticket list")
    state = data.now_state(db, v.portal, scoped.filters)
    return _ticket_list(v, db, tz, state["items"][item], kpi=None, kind="now", value_kind="duration")


def _sort_key(sort: str):
    return {
        "value": lambda r: (r["value"] is None, r["value"] or 0),
        "created": lambda r: r["created_at"] or 0,
        "title": lambda r: (r.get("title") or "").lower(),
        "responsible": lambda r: (r.get("responsible_label") or "").lower(),
        "state": lambda r: r.get("state") or "",
    }[sort]


def _ticket_list(v, db, tz, rows, *, kpi, kind, value_kind):
    sort = request.args.get("sort") or "value"
    if sort not in DRILL_SORTS:
        raise ViewerError(400, "bad_sort", f"sort must be one of {', '.join(DRILL_SORTS)}")
    desc = (request.args.get("dir") or ("desc" if sort in ("value", "created") else "asc")) == "desc"
    page, per_page = _int_arg("page", 1, 1, 100000), _int_arg("per_page", 50, 1, 200)
    lang = v.lang
    names = Names(db, v.portal, lang)
    users, _deps = data.people(db, v.portal)
    info = data.tickets_by_key(db, v.portal, [(r["source"], r["source_id"]) for r in rows])
    full = []
    for r in rows:
        meta = info.get((r["source"], r["source_id"])) or {}
        full.append(
            dict(
                r,
                title=names.title(r["source"], meta.get("title"), r["source_id"]),
                url=meta.get("url"),
                responsible_label=(users.get(str(r["responsible"])) or {}).get("label")
                or (labels.empty_group("agent", lang) if not r["responsible"] else ""),
            )
        )
    full.sort(key=_sort_key(sort), reverse=desc)
    total, hits = len(full), sum(1 for r in full if r.get("hit"))
    want_csv = request.args.get("format") == "csv"
    shown = full if want_csv else full[(page - 1) * per_page : page * per_page]
    origins = portal_origins(get_installation(db, v.portal))
    origin = origins[0] if origins else None
    tzinfo = zone(tz)
    out = []
    for r in shown:
        url = r.get("url")
        if r["value"] is None:
            value_text = ""
        elif kind == "share" and r.get("hit") is not None:
            value_text = t("yes" if r["hit"] else "no", lang) + " · " + present.fmt_duration(r["value"], lang)
        elif value_kind == "duration":
            value_text = present.fmt_duration(r["value"], lang)
        else:
            value_text = present._num(r["value"], 2, lang)
        out.append(
            {
                "source": r["source"],
                "source_id": r["source_id"],
                "source_label": names.source(r["source"]),
                "title": r["title"],
                "link": (origin + url) if origin and url and str(url).startswith("/") else None,
                "responsible": r["responsible_label"],
                "created": datetime.fromtimestamp(r["created_at"], tzinfo).strftime(
                    "%d.%m.%Y %H:%M" if lang == "ru" else "%Y-%m-%d %H:%M"
                )
                if r["created_at"]
                else "",
                "state": r["state"],
                "state_label": t(f"state_{r['state']}", lang),
                "hit": r.get("hit"),
                "value": r["value"],
                "value_text": value_text,
            }
        )
    if want_csv:
        return _drill_csv(out, lang, kpi or request.args.get("item") or "now", value_kind)
    return data.with_stale_header(
        jsonify(
            {
                "kpi": kpi,
                "kind": kind,
                "total": total,
                "hits": hits,
                "tickets": out,
                "page": page,
                "per_page": per_page,
                "pages": max(1, -(-total // per_page)),
                "sort": sort,
                "dir": "desc" if desc else "asc",
                "truncated": total > len(out),
                "value_label": t(
                    "drill_value_now"
                    if kind == "now"
                    else "drill_value_duration"
                    if kind in ("count", "share")
                    else "value",
                    lang,
                ),
            }
        )
    )


def _drill_csv(rows, lang, name, value_kind):
    import csv
    import io

    ru = lang == "ru"
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";" if ru else ",", lineterminator="\r\n")
    w.writerow(
        [t(k, lang) for k in ("title", "source", "responsible", "created_at", "state")]
        + [t("value", lang) + (" (" + t("minutes_short", lang) + ")" if value_kind == "duration" else "")]
    )
    for r in rows:
        v = r["value"]
        if v is not None:
            v = round(v / 60, 1) if value_kind == "duration" else round(v, 2)
            v = str(v).replace(".", ",") if ru else v
        title = r["title"]
        if title[:1] in ("=", "+", "-", "@"):
            title = "'" + title
        w.writerow([title, r["source_label"], r["responsible"], r["created"], r["state_label"], v])
    return Response(
        "\ufeff" + buf.getvalue(),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="b24desk-{name}.csv"'},
    )


def _int_arg(name, default, lo, hi):
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    try:
        n = int(raw)
    except ValueError:
        raise ViewerError(400, "bad_number", f"{name} must be a whole number") from None
    return max(lo, min(hi, n))


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
        group_by = "agent"  # the dashboard's view: totals and the per-agent table
    # the viewer's language (headers, units, ';' and decimal commas in Russian); ?layout=raw gives
    # flask kpi's machine layout (ids, seconds, fractions) for scripts
    lang = None if request.args.get("layout") == "raw" else v.lang
    body = data.rendered(db, v.portal, q, scoped.filters, group_by, fmt, lang=lang)
    name = f"b24desk-kpi-{q.date_from}-{last_day(q.date_to)}.{fmt}"  # the days shown, inclusive
    mime = (
        "text/csv; charset=utf-8"
        if fmt == "csv"
        else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    if fmt == "csv":
        body = "\ufeff" + body  # so Excel opens Cyrillic labels as UTF-8
    return Response(body, content_type=mime, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.route("/reports/export.csv")
@viewer_required
def export_csv():
    return _export("csv")


@bp.route("/reports/export.xlsx")
@viewer_required
def export_xlsx():
    return _export("xlsx")
