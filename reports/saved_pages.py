"""Saved-report pages: the list (in the app's menu), the builder with a live preview, the report
page (table or chart, problem zones, best agents, the long-term view, CSV/XLSX export, digest and
dashboard pin). Thin: definitions, rights and the analysis live in the core
(``b24desk.saved_reports``, ``b24desk.kpi.compare``); the numbers are ``/api/reports/<id>/data``'s.
"""

from __future__ import annotations

import json
from datetime import date, datetime

from flask import Response, g, jsonify, render_template, request, url_for

from b24desk import saved_reports as store
from b24desk.installations import get_installation
from b24desk.kpi import compare as analysis
from b24desk.kpi.drilldown import Replay
from b24desk.kpi.engine import KPI_KEYS
from b24desk.kpi.filters import GROUP_BY
from b24desk.kpi.periods import zone
from b24desk.kpi.presets import PRESETS
from b24desk.kpi.report import paused_gc
from b24desk.kpi.timedims import TIME_DIMS
from b24desk.model import PRIORITIES
from b24desk.saved_reports import ReportError
from b24desk.store import get_setting
from b24desk.text import present
from b24desk.text.i18n import kpi_label
from b24desk.viewer import ADMIN, AGENT, HEAD, ROLES, ViewerError
from b24desk.viewer import members as dept_members

from . import data
from .auth import current_viewer, viewer_required
from .blueprint import bp, get_db
from .saved_api import report_data
from .saved_i18n import catalogue, month_name, ts
from .security import bx24_script

MAX_CHARTS = 6
MAX_BEST = 4  # best-agent tables: one per testable KPI of the report, at most this many
LONG_MONTHS = (12, 24)


# --- shared helpers ------------------------------------------------------------------------------


def _page(template: str, **ctx):
    v = current_viewer()
    token = g.viewer_token
    inst = get_installation(get_db(), v.portal)
    return render_template(
        f"reports/{template}",
        viewer=v,
        lang=v.lang,
        token=token,
        active="saved",
        t=lambda k: ts(k, v.lang),
        bx24_js=bx24_script(inst),
        nav={
            "dashboard": url_for("reports.dashboard", t=token),
            "settings": url_for("reports.settings", t=token),
            "saved": url_for("reports.saved_list", t=token),
        },
        **ctx,
    )


def _fail(err: ReportError):
    raise ViewerError(err.status, err.code, err.message)


def _people(db, v):
    users, deps = data.people(db, v.portal)
    return users, deps


def group_label(dim: str | None, key, label: str, lang: str) -> str:
    """A group's name as people read it: weekday names, priorities in words, "created before"."""
    if key is None:
        return ts("before_period", lang) if dim in TIME_DIMS else "—"
    if dim == "weekday":
        return ts(f"wd_{key}", lang)
    if dim == "priority" and key in PRIORITIES:
        return ts(f"priority_{key}", lang)
    return label


def better(kpi: str, directions: dict) -> str | None:
    """Which way is better, where that is known (targets, or a KPI with a per-ticket test); counts
    of tickets have none, so their change is shown neutral."""
    if kpi in directions:
        return directions[kpi]
    if kpi in analysis.TESTABLE or kpi in analysis.LOWER_BETTER:
        return analysis.direction(kpi)
    return None


def _cell(kpi: str, entry: dict, lang: str, directions: dict, compare: str | None, users: dict) -> dict:
    value = entry.get("value")
    if kpi == "resolved_by_priority" and isinstance(value, dict):
        text = " · ".join(f"{ts('priority_' + p, lang)} {value.get(p, 0)}" for p in PRIORITIES if value.get(p))
        return {"text": text or "0", "sub": ""}
    if kpi == "top_agents":
        rows = value or []
        return {"text": ", ".join(f"{r.get('name')} ({r.get('resolved')})" for r in rows[:3]) or "—", "sub": ""}
    cell = {"text": present.fmt_value(kpi, value, lang), "sub": "", "good": None, "arrow": None}
    if compare:
        d = present.delta(kpi, dict(entry, direction=better(kpi, directions)))
        prev = present.fmt_value(kpi, entry.get("previous"), lang)
        if d:
            cell.update(
                sub=f"{present.fmt_delta(kpi, d, lang)} · {ts('was', lang)} {prev}", good=d["good"], arrow=d["arrow"]
            )
        elif entry.get("previous") is not None:
            cell["sub"] = f"{ts('was', lang)} {prev}"
    return cell


def view_table(result: dict, definition: dict, lang: str, directions: dict, users: dict) -> dict:
    """Rows × KPI columns of formatted text (the page, the preview and the CSV of the page agree)."""
    kpis = definition["kpis"]
    compare = definition.get("compare")
    dim = result.get("group_by")
    rows = []
    for g_ in result.get("groups") or []:
        rows.append(
            {
                "key": g_["key"],
                "label": group_label(dim, g_["key"], g_.get("label") or "", lang),
                "cells": [_cell(k, g_["kpis"][k], lang, directions, compare, users) for k in kpis],
            }
        )
    total = {
        "key": "__total__",
        "label": ts("total", lang),
        "total": True,
        "cells": [_cell(k, result["kpis"][k], lang, directions, compare, users) for k in kpis],
    }
    rows.append(total)
    return {
        "columns": [{"key": k, "label": kpi_label(k, lang)} for k in kpis],
        "rows": rows,
        "dim": dim,
        "dim_label": ts(f"dim_{dim}", lang) if dim else "",
    }


def chart_series(result: dict, definition: dict, lang: str) -> list[dict]:
    """One small chart per KPI (units never mixed on one axis): labels and headline numbers."""
    dim = result.get("group_by")
    groups = [g_ for g_ in result.get("groups") or [] if g_["key"] is not None]
    if not groups:
        return []
    out = []
    for k in definition["kpis"][:MAX_CHARTS]:
        if k in ("resolved_by_priority", "top_agents"):
            continue
        kind = present.kind(k)
        vals = [present.headline(k, g_["kpis"][k]["value"]) for g_ in groups]
        prev = [present.headline(k, g_["kpis"][k].get("previous")) for g_ in groups]
        scale, unit = (100, "%") if kind == "share" else (1, "")
        if kind == "duration":  # minutes, or hours when minutes would run to thousands
            big = max([x for x in vals + prev if x is not None] or [0]) > 3 * 3600
            ru = lang == "ru"
            scale, unit = (1 / 3600, "ч" if ru else "h") if big else (1 / 60, "мин" if ru else "min")
        out.append(
            {
                "kpi": k,
                "label": kpi_label(k, lang),
                "unit": unit,
                "labels": [group_label(dim, g_["key"], g_.get("label") or "", lang) for g_ in groups],
                "values": [None if v is None else round(v * scale, 2) for v in vals],
                "previous": [None if v is None else round(v * scale, 2) for v in prev]
                if definition.get("compare")
                else None,
            }
        )
    return out


def _options(db, v) -> dict:
    """What the builder offers this viewer: KPIs, breakdowns, presets, and the departments, people,
    sources, channels and lines they may filter by or share with (names, never ids)."""
    users, deps = _people(db, v)
    lang = v.lang
    if v.role == ADMIN:
        dep_ids = list(deps)
        user_ids = list(users)
    elif v.role == HEAD:
        dep_ids = list(v.tree)
        user_ids = sorted(dept_members(db, v.portal, v.tree) | {v.user_id})
    else:
        dep_ids, user_ids = list(v.departments), [v.user_id]
    parents = {d: (deps.get(d) or {}).get("parent") for d in deps}

    def dep_name(d):
        chain, seen, cur = [], set(), d
        while cur and cur not in seen:
            seen.add(cur)
            chain.append((deps.get(cur) or {}).get("name") or cur)
            cur = parents.get(cur)
        return " / ".join(reversed(chain))

    lines = get_setting(db, v.portal, "openlines.lines") or {}
    return {
        "kpis": [(k, kpi_label(k, lang)) for k in KPI_KEYS],
        "group_by": [(d, ts(f"dim_{d}", lang)) for d in GROUP_BY],
        "presets": [(p, ts(f"preset_{p}", lang)) for p in PRESETS],
        "departments": sorted(((d, dep_name(d)) for d in dep_ids if d in deps), key=lambda x: x[1].lower()),
        "users": sorted(
            ((u, (users.get(u) or {}).get("label") or u) for u in user_ids if u in users), key=lambda x: x[1].lower()
        ),
        "priorities": [(p, ts(f"priority_{p}", lang)) for p in PRIORITIES],
        "sources": [(s, s) for s in data.distinct(db, v.portal, "source")],
        "types": _types(db, v.portal),
        "channels": [(c, c) for c in data.distinct(db, v.portal, "channel")],
        "lines": sorted(((str(k), str(n)) for k, n in lines.items()), key=lambda x: x[1].lower()),
        "roles": [(r, ts(f"role_{r}_pl", lang)) for r in ROLES],
        "charts": [(c, ts(f"chart_{c}", lang)) for c in store.CHARTS],
        "compares": [
            ("previous", ts("compare_previous", lang)),
            ("last_year", ts("compare_last_year", lang)),
            ("", ts("compare_none", lang)),
        ],
    }


def _types(db, portal: str) -> list[tuple[str, str]]:
    """Ticket types with their names (CRM funnels are stored by id; their names by the CRM sync)."""
    names = {}
    for row in db.execute("select value from settings where portal = ? and key like 'crm.%.stages'", [portal]):
        try:
            names.update({str(k): v for k, v in (json.loads(row[0]).get("categories") or {}).items()})
        except (ValueError, AttributeError):
            continue
    pairs = [(t_, names.get(t_) or t_) for t_ in data.distinct(db, portal, "type")]
    return sorted(pairs, key=lambda x: x[1].lower())


def _describe(defn: dict, lang: str, users: dict, deps: dict) -> dict:
    """One line per list row: KPIs, breakdown, period and audience in words."""
    p = defn["period"]
    period = ts(f"preset_{p['preset']}", lang) if "preset" in p else f"{p['from']} — {p['to']}"
    s = defn.get("share") or {}
    who = [ts(f"role_{r}_pl", lang) for r in s.get("roles") or []]
    who += [(deps.get(d) or {}).get("name") or d for d in s.get("departments") or []]
    who += [(users.get(u) or {}).get("label") or u for u in s.get("users") or []]
    return {
        "kpis": ", ".join(kpi_label(k, lang) for k in defn["kpis"][:3])
        + (f" +{len(defn['kpis']) - 3}" if len(defn["kpis"]) > 3 else ""),
        "breakdown": ts(f"dim_{defn['group_by']}", lang) if defn.get("group_by") else ts("no_breakdown", lang),
        "period": period,
        "shared": ", ".join(who) or ts("only_me", lang),
        "owner": (users.get(defn["owner"]) or {}).get("label") or defn["owner"],
    }


def span_text(a: datetime, b: datetime, lang: str) -> str:
    """``[from, to)`` as people write it: the last day included (``01.10.2026 — 31.10.2026``)."""
    from datetime import timedelta

    fmt = "%d.%m.%Y" if lang == "ru" else "%d %b %Y"
    last = b - timedelta(days=1) if (b.hour, b.minute, b.second) == (0, 0, 0) else b
    if last.date() <= a.date():
        return a.strftime(fmt) if lang == "ru" else a.strftime(fmt)
    return f"{a.strftime(fmt)} — {last.strftime(fmt)}"


def _can_edit(v, defn: dict) -> bool:
    return v.role == ADMIN or defn.get("owner") == v.user_id


# --- pages ---------------------------------------------------------------------------------------


@bp.route("/reports/saved")
@viewer_required
def saved_list():
    v, db = current_viewer(), get_db()
    users, deps = _people(db, v)
    reports = []
    for d in store.list_for(db, v):
        reports.append(
            dict(
                d,
                info=_describe(d, v.lang, users, deps),
                can_edit=_can_edit(v, d),
                url=url_for("reports.saved_report", rid=d["id"], t=g.viewer_token),
                edit_url=url_for("reports.saved_edit", rid=d["id"], t=g.viewer_token),
            )
        )
    return _page(
        "saved_list.html",
        reports=reports,
        can_create=v.role in (ADMIN, HEAD) and (v.role == ADMIN or v.tree),
        new_url=url_for("reports.saved_new", t=g.viewer_token),
        boot=_boot(v),
    )


def _boot(v, **extra) -> dict:
    """What the page's script needs, rendered with ``tojson`` into a JSON block (never executed)."""
    return dict(
        {
            "token": g.viewer_token,
            "i18n": catalogue(v.lang),
            "lang": v.lang,
            "list_url": url_for("reports.saved_list", t=g.viewer_token),
            "report_url": url_for("reports.saved_report", rid="__ID__", t=g.viewer_token),
        },
        **extra,
    )


def _builder(defn: dict | None):
    v, db = current_viewer(), get_db()
    if v.role == AGENT or (v.role == HEAD and not v.tree):
        raise ViewerError(403, "forbidden_create", ts("agents_cannot_create", v.lang))
    blank = {
        "name": "",
        "kpis": ["tickets_total", "first_response_time", "resolution_time", "fcr_share"],
        "group_by": "agent" if v.role == ADMIN else "agent",
        "filters": {},
        "period": {"preset": "last_month"},
        "compare": "previous",
        "chart": "table",
        "share": {"roles": [], "departments": [], "users": []},
    }
    d = defn or blank
    return _page(
        "saved_builder.html",
        d=d,
        opts=_options(db, v),
        editing=defn is not None,
        boot=_boot(v, id=(defn or {}).get("id")),
        head=v.role == HEAD,
    )


@bp.route("/reports/saved/new")
@viewer_required
def saved_new():
    return _builder(None)


@bp.route("/reports/saved/<rid>/edit")
@viewer_required
def saved_edit(rid):
    v, db = current_viewer(), get_db()
    try:
        d = store.get_for(db, v, rid)
    except ReportError as err:
        _fail(err)
    if not _can_edit(v, d):
        raise ViewerError(403, "forbidden_edit", ts("forbidden_edit", v.lang))
    return _builder(d)


def _zones(db, v, defn: dict, result: dict, scoped_filters: dict) -> dict | None:
    """Problem zones and best agents for per-agent / per-department tables (not for an agent's own slice)."""
    dim = result.get("group_by")
    if dim not in ("agent", "department") or v.role == AGENT:
        return None
    q_from, q_to = result["period"]["from"], result["period"]["to"]
    cfg = data.portal_config(db, v.portal)
    kpis = [k for k in defn["kpis"] if k in analysis.TESTABLE]
    if not kpis:
        return None

    def compute(own):
        with paused_gc():
            rp = Replay(own, v.portal, q_from, q_to, filters=data.engine_filters(scoped_filters), config=cfg)
            zones = analysis.problem_zones(rp, kpis, dim)
            best = [analysis.best_agents(rp, k) for k in kpis[:MAX_BEST]] if dim == "agent" else None
        return {"zones": zones, "best": best}

    key = ("saved.zones", v.portal, q_from, q_to, data.engine_filters(scoped_filters), dim, kpis, cfg)
    return data._get(key, compute, exact=True)


def _pct(x, lang):
    return "—" if x is None else present._num(x * 100, 1, lang) + "\u00a0%"


def _zone_notes(z: dict, table: dict, lang: str) -> list[dict]:
    """Explanations of the marked cells, and the marks themselves on the table."""
    notes = []
    labels = {r["key"]: r["label"] for r in table["rows"]}
    col = {c["key"]: i for i, c in enumerate(table["columns"])}
    for kpi, res in z["zones"].items():
        for key, e in res["groups"].items():
            if not e["worse"]:
                continue
            if res["test"] == "wilson":
                text = ts("worse_share", lang).format(
                    kpi=kpi_label(kpi, lang),
                    value=_pct(e["value"], lang),
                    low=_pct(e["low"], lang),
                    high=_pct(e["high"], lang),
                    n=e["n"],
                    rest=_pct(e["rest"], lang),
                )
            else:
                fmt = (
                    (lambda x: present.fmt_duration(x, lang))
                    if present.kind(kpi) == "duration"
                    else (lambda x: "—" if x is None else present._num(x, 2, lang))
                )
                text = ts("worse_rank", lang).format(
                    kpi=kpi_label(kpi, lang), value=fmt(e["value"]), n=e["n"], rest=fmt(e["rest"]), p=_p(e["p"], lang)
                )
            notes.append({"group": labels.get(key, key), "text": text})
            for r in table["rows"]:
                if r["key"] == key and kpi in col:
                    r["cells"][col[kpi]]["worse"] = text
    return notes


def _p(p: float, lang: str) -> str:
    """A p-value as a statistician writes it: ``< 0.001`` below that, else three decimals."""
    s = "< 0.001" if p < 0.001 else f"= {p:.3f}"
    return s.replace(".", ",") if lang == "ru" else s


def _best_view(best: dict | None, lang: str) -> dict | None:
    if not best or not best.get("agents"):
        return None
    kpi = best["kpi"]

    def fmt(k, x):
        if x is None:
            return "—"
        if present.kind(k) == "duration":
            return present.fmt_duration(x, lang)
        if k.endswith("_share"):
            return _pct(x, lang)
        return present._num(x, 2, lang)

    rows = []
    for a in best["agents"]:
        rows.append(
            {
                "name": a["name"],
                "value": fmt(kpi, a["value"]),
                "n": a["n"],
                "habits": [
                    {"label": kpi_label(h, lang), "value": fmt(h, x["value"]), "team": fmt(h, x["team"])}
                    for h, x in a["habits"].items()
                    if h != kpi
                ],
            }
        )
    label = kpi_label(kpi, lang)
    if present.kind(kpi) in ("duration", "number"):
        label += f" ({ts('median_word', lang)})"
    return {"kpi": label, "key": kpi, "rows": rows}


def _long_term(db, v, defn, scoped_filters, kpi: str, months: int, end: date):
    cfg = data.portal_config(db, v.portal)

    def compute(own):
        with paused_gc():
            return analysis.long_term(
                own, v.portal, kpi, end=end, months=months, filters=data.engine_filters(scoped_filters), config=cfg
            )

    key = ("saved.long", v.portal, kpi, months, end.isoformat(), data.engine_filters(scoped_filters), cfg)
    return data._get(key, compute, exact=True)


def _heatmap(db, v, result: dict, scoped_filters: dict) -> list[list[int]]:
    """Tickets created per weekday (rows, Monday first) × hour (0–23), in the portal's zone."""
    cfg = data.portal_config(db, v.portal)
    q_from, q_to = result["period"]["from"], result["period"]["to"]

    def compute(own):
        with paused_gc():
            rp = Replay(own, v.portal, q_from, q_to, filters=data.engine_filters(scoped_filters), config=cfg)
            tz = rp.env.tz
            grid = [[0] * 24 for _ in range(7)]
            for f in rp.facts:
                if f.in_c:
                    dt = datetime.fromtimestamp(f.t["created_at"], tz)
                    grid[dt.isoweekday() - 1][dt.hour] += 1
            return grid

    key = ("saved.heatmap", v.portal, q_from, q_to, data.engine_filters(scoped_filters), cfg)
    return data._get(key, compute, exact=True)


def page_args(args) -> dict:
    """The page's period form gives the last day people think in (``till``, inclusive); the API's
    ``to`` is exclusive (kpi.md), so ``till`` becomes ``to`` = the next day."""
    from datetime import timedelta

    out = {"from": args.get("from"), "to": args.get("to")}
    till = (args.get("till") or "").strip()
    if till:
        try:
            out["to"] = (date.fromisoformat(till) + timedelta(days=1)).isoformat()
        except ValueError:
            out["to"] = till  # parse() refuses it with a message naming the field
    return {k: v for k, v in out.items() if v}


def _last_day(b: datetime) -> date:
    from datetime import timedelta

    return (b - timedelta(days=1)).date() if (b.hour, b.minute, b.second) == (0, 0, 0) else b.date()


@bp.route("/reports/saved/<rid>")
@viewer_required
def saved_report(rid):
    v, db = current_viewer(), get_db()
    lang = v.lang
    args = page_args(request.args)
    try:
        d = store.get_for(db, v, rid)
        out = report_data(db, v, d, args)
        scoped = store.data_scope(db, v, d)
    except ReportError as err:
        _fail(err)
    result = out["result"]
    users, deps = _people(db, v)
    cfg = data.portal_config(db, v.portal)
    directions = present.directions_from_config(cfg)
    table = view_table(result, d, lang, directions, users)
    z = _zones(db, v, d, result, scoped.filters)
    notes = _zone_notes(z, table, lang) if z else None
    best = [b for b in (_best_view(x, lang) for x in ((z or {}).get("best") or [])) if b]
    charts = chart_series(result, d, lang) if d["chart"] in ("bar", "line") else []
    heat = _heatmap(db, v, result, scoped.filters) if d["chart"] == "heatmap" else None
    long_kpi = request.args.get("long")
    long_view = None
    if long_kpi in analysis.TESTABLE or long_kpi in ("tickets_total", "resolved_count", "backlog", "overdue_count"):
        months = 24 if request.args.get("months") == "24" else 12
        end_local = datetime.fromisoformat(result["period"]["to"])
        end = date(end_local.year, end_local.month, 1)
        if end_local.day != 1 or end_local.hour:
            end = date(end.year + end.month // 12, end.month % 12 + 1, 1)
        lt = _long_term(db, v, d, scoped.filters, long_kpi, months, end)
        long_view = {
            "kpi": long_kpi,
            "label": kpi_label(long_kpi, lang),
            "months": months,
            "rows": [
                dict(
                    m,
                    label=month_name(m["month"], lang),
                    text=present.fmt_value(long_kpi, m["value"], lang),
                    year_text=present.fmt_value(long_kpi, m["year_ago"], lang),
                    delta_text=present.fmt_delta(
                        long_kpi, present.delta(long_kpi, {"value": m["value"], "previous": m["year_ago"]}), lang
                    ),
                )
                for m in lt["months"]
            ],
        }
    tz = zone(result["timezone"])
    a = datetime.fromisoformat(result["period"]["from"]).astimezone(tz)
    b = datetime.fromisoformat(result["period"]["to"]).astimezone(tz)
    pa = datetime.fromisoformat(result["previous"]["from"]).astimezone(tz)
    pb = datetime.fromisoformat(result["previous"]["to"]).astimezone(tz)
    period_text, prev_text = span_text(a, b, lang), span_text(pa, pb, lang)
    ex = store.extras(db, v.portal, rid)
    q = {"from": args.get("from"), "to": args.get("to")}
    given = {x: y for x, y in q.items() if y}
    token = g.viewer_token
    long_links = [
        (
            k,
            kpi_label(k, lang),
            url_for("reports.saved_report", rid=rid, t=token, long=k, months=24, **{x: y for x, y in q.items() if y}),
        )
        for k in d["kpis"]
        if k in analysis.TESTABLE or k in ("tickets_total", "resolved_count")
    ]
    return _page(
        "saved_report.html",
        d=d,
        info=_describe(d, lang, users, deps),
        table=table,
        notes=notes,
        best=best,
        charts=charts,
        heat=heat,
        long=long_view,
        long_links=long_links,
        period_text=period_text,
        prev_text=prev_text,
        extras=ex,
        can_edit=_can_edit(v, d),
        slice_note=("your_slice" if v.role == AGENT else "head_slice" if v.role == HEAD else None),
        zone_note=ts("problem_note", lang).format(n=analysis.MIN_N),
        exports={f: url_for("reports.saved_export", rid=rid, fmt=f, t=token, **given) for f in ("csv", "xlsx")},
        edit_url=url_for("reports.saved_edit", rid=rid, t=token),
        self_url=url_for("reports.saved_report", rid=rid),
        reset_url=url_for("reports.saved_report", rid=rid, t=token),
        q_from=a.date().isoformat(),
        q_till=_last_day(b).isoformat(),
        overridden=bool(given),
        boot=_boot(
            v, id=rid, charts=charts, heat=heat, chart=d["chart"], name=d["name"], long=_long_chart(long_view, long_kpi)
        ),
    )


def _long_chart(long_view: dict | None, kpi: str | None) -> dict | None:
    """The long-term chart's series: month names, this year's values, a year earlier's."""
    if not long_view:
        return None
    rows = long_view["rows"]
    return {
        "labels": [m["label"] for m in rows],
        "values": [present.headline(kpi, m["value"]) for m in rows],
        "year": [present.headline(kpi, m["year_ago"]) for m in rows],
        "kind": present.kind(kpi),
    }


@bp.route("/reports/saved/<rid>/export.<fmt>")
@viewer_required
def saved_export(rid, fmt):
    v, db = current_viewer(), get_db()
    if fmt not in ("csv", "xlsx"):
        raise ViewerError(404, "not_found", "csv or xlsx")
    try:
        d = store.get_for(db, v, rid)
        result = report_data(db, v, d, request.args)["result"]
    except ReportError as err:
        _fail(err)
    header, rows = export_rows(result, d, v.lang)
    safe = "".join(ch for ch in d["name"] if ch.isalnum() or ch in " -_")[:60].strip() or rid
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        for r in rows:
            w.writerow(["" if x is None else _csv_cell(x) for x in r])
        body, mime = "\ufeff" + buf.getvalue(), "text/csv; charset=utf-8"
    else:
        body = _xlsx(d["name"], result, header, rows)
        mime = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    from urllib.parse import quote

    return Response(
        body,
        mimetype=mime,
        headers={
            "Content-Disposition": f'attachment; filename="b24desk-{rid}.{fmt}"; '
            f"filename*=UTF-8''{quote(safe + '.' + fmt)}"
        },
    )


def _num_of(kpi: str, v):
    """A cell's number in the unit people use: minutes for durations, % for shares."""
    h = present.headline(kpi, v)
    if h is None:
        return None
    k = present.kind(kpi)
    return round(h / 60, 2) if k == "duration" else round(h * 100, 2) if k == "share" else h


def export_rows(result: dict, d: dict, lang: str) -> tuple[list, list]:
    """One row per group (then the total), per KPI: value, before, n (durations in minutes, shares in %)."""
    dim = result.get("group_by")
    unit = {"duration": " (мин)" if lang == "ru" else " (min)", "share": " (%)"}
    header = [ts(f"dim_{dim}", lang) if dim else ts("group", lang)]
    simple = [k for k in d["kpis"] if k not in ("resolved_by_priority", "top_agents")]
    for k in simple:
        lbl = kpi_label(k, lang) + unit.get(present.kind(k), "")
        header += [lbl, f"{lbl} — {ts('previous', lang).lower()}", f"{kpi_label(k, lang)} — n"]
    rows = []
    for g_ in (result.get("groups") or []) + [{"key": "__total__", "label": ts("total", lang), "kpis": result["kpis"]}]:
        label = g_["label"] if g_["key"] == "__total__" else group_label(dim, g_["key"], g_.get("label") or "", lang)
        row = [label]
        for k in simple:
            e = g_["kpis"][k]
            row += [_num_of(k, e["value"]), _num_of(k, e.get("previous")), e.get("n")]
        rows.append(row)
    return header, rows


def _csv_cell(v):
    from b24desk.kpi.formats import _csv_cell as cell

    return cell(v)


def _xlsx(name: str, result: dict, header: list, rows: list) -> bytes:
    import io

    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    bold = wb.add_format({"bold": True, "text_wrap": True, "valign": "top"})
    ws = wb.add_worksheet("Report")
    ws.write_string(0, 0, name, wb.add_format({"bold": True, "font_size": 13}))
    ws.write_string(1, 0, f"{result['period']['from']} — {result['period']['to']}")
    ws.write_row(3, 0, header, bold)
    for r, row in enumerate(rows, 4):
        for c, v in enumerate(row):
            if v is None:
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                ws.write_number(r, c, v)
            else:
                ws.write_string(r, c, str(v))
    ws.set_column(0, 0, 28)
    ws.set_column(1, len(header), 14)
    wb.close()
    return buf.getvalue()


# --- JSON helpers of the pages: preview, pin, digest ------------------------------------------------


@bp.route("/api/reports/preview", methods=["POST"])
@viewer_required
def api_report_preview():
    """The builder's live preview: an unsaved definition, validated and computed for this viewer."""
    v, db = current_viewer(), get_db()
    try:
        raw = request.get_json(silent=True)
        if isinstance(raw, dict):
            raw = {k: x for k, x in raw.items() if k not in ("id", "owner")}
        d = store.validate(raw, v.lang)
        store.check_author(db, v, d)
        d = store.pin_scope(v, d)
        out = report_data(db, v, d, {})
    except ReportError as err:
        return jsonify(err.as_json()), err.status
    users, _deps = _people(db, v)
    table = view_table(
        out["result"], d, v.lang, present.directions_from_config(data.portal_config(db, v.portal)), users
    )
    res = out["result"]
    text = span_text(datetime.fromisoformat(res["period"]["from"]), datetime.fromisoformat(res["period"]["to"]), v.lang)
    return jsonify({"table": table, "period": res["period"], "previous": res["previous"], "period_text": text})


@bp.route("/api/reports/<rid>/pin", methods=["POST"])
@viewer_required
def api_report_pin(rid):
    v, db = current_viewer(), get_db()
    body = request.get_json(silent=True) or {}
    try:
        store.set_pinned(db, v, rid, bool(body.get("pinned")) if isinstance(body, dict) else False)
    except ReportError as err:
        return jsonify(err.as_json()), err.status
    return jsonify(store.extras(db, v.portal, rid))


@bp.route("/api/reports/<rid>/digest", methods=["POST"])
@viewer_required
def api_report_digest(rid):
    v, db = current_viewer(), get_db()
    body = request.get_json(silent=True)
    try:
        if not isinstance(body, dict):
            raise ReportError(400, "digest", "digest", v.lang)
        store.set_digest(db, v, rid, body.get("digest"))
    except ReportError as err:
        return jsonify(err.as_json()), err.status
    return jsonify(store.extras(db, v.portal, rid))


def pinned_panel(db, v, token: str) -> dict:
    """The dashboard's "pinned reports" panel: its title and, per report, name, what it shows, a link."""
    users, deps = data.people(db, v.portal)
    return {
        "title": ts("pinned", v.lang),
        "open": ts("open", v.lang),
        "items": [
            {
                "name": d["name"],
                "info": _describe(d, v.lang, users, deps),
                "url": url_for("reports.saved_report", rid=d["id"], t=token),
            }
            for d in store.pinned_for(db, v)
        ],
    }
