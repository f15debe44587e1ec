"""The dashboard's content for one viewer and query: cards, charts' data, tables, CCEI, filters.

The viewer's role is applied first (``b24desk.viewer.scope_query``): an agent's page is built
from their own numbers (plus their team's totals beside them), a head's from their department
tree, an admin's from the whole portal. Nothing outside that slice is ever computed for the page.
"""
from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import urlencode

from flask import url_for
from markupsafe import escape

from b24desk.kpi.load import portal_zone
from b24desk.kpi.periods import zone
from b24desk.model import PRIORITIES
from b24desk.sources.openlines import SOURCE as OPENLINES
from b24desk.viewer import FILTER_KEYS, Viewer, can_drill, members as dept_members, scope_query

from b24desk.text import present

from . import data, portal_settings
from b24desk.text.i18n import catalogue, t
from .query import Query, parse

TABLE_KPIS = ("tickets_total", "resolved_count", "backlog", "first_response_time", "resolution_time",
              "fcr_share", "csat", "overdue_share")


def _median(entry):
    v = (entry or {}).get("value")
    return v.get("median") if isinstance(v, dict) else v


def drill_attr(spec: dict | None):
    """A drill spec as an attribute value: JSON, HTML-escaped once here (cheaper than a template
    filter per table cell; the data-drill attribute is read back with JSON.parse)."""
    return None if spec is None else escape(json.dumps(spec, ensure_ascii=False, separators=(",", ":")))


def _cell(key: str, entry: dict, lang: str, drill: dict | None = None) -> dict:
    v = (entry or {}).get("value")
    text = present.fmt_value(key, v, lang)
    if key in present.DURATIONS and isinstance(v, dict) and v.get("median") is not None:
        text = present.fmt_duration(v["median"], lang)
    return {"text": text, "drill": drill_attr(drill)}


def _group_table(report: dict, dim: str, lang: str, title: str, drill: bool, *, table_id: str | None = None,
                 extra: dict | None = None) -> dict:
    """One row per group of ``report``; ``extra`` joins each row's drill filters (the line table
    drills into ``type`` *and* ``source=openlines``); a dim that is no filter (channel) has no drill."""
    drill = drill and dim in FILTER_KEYS
    cols = [t(dim, lang)] + [present.kpi_label(k, lang) + (f" ({t('median', lang).lower()})"
                                                             if k in present.DURATIONS else "")
                             for k in TABLE_KPIS]
    rows = []
    for g in report.get("groups") or []:
        if g["key"] is None:
            label = "—"
        elif dim == "department":
            label = " / ".join(g.get("path") or [g["label"]])
        else:
            label = g["label"]
        base = dict(extra or {}, **{dim: g["key"]}) if g["key"] is not None else None
        cells = [{"text": label,
                  "drill": drill_attr(dict(base, kpi="tickets_total", title=label) if (drill and base) else None)}]
        for k in TABLE_KPIS:
            d = dict(base, kpi=k, title=f"{label}: {present.kpi_label(k, lang)}") if (drill and base) else None
            cells.append(_cell(k, g["kpis"].get(k), lang, d))
        rows.append({"key": "" if g["key"] is None else str(g["key"]), "cells": cells})
    return {"id": table_id or dim, "title": title, "columns": cols, "rows": rows}


def _top_table(report: dict, lang: str, drill: bool) -> dict:
    rows = []
    for r in ((report.get("kpis") or {}).get("top_agents") or {}).get("value") or []:
        base = {"agent": r["agent"]}
        rows.append({"key": str(r["agent"]), "cells": [
            {"text": r.get("name") or r["agent"],
             "drill": drill_attr(dict(base, kpi="resolved_count", title=r.get("name"))) if drill else None},
            {"text": present.fmt_value("resolved_count", r.get("resolved"), lang),
             "drill": drill_attr(dict(base, kpi="resolved_count", title=r.get("name"))) if drill else None},
            {"text": present.fmt_duration(r.get("frt_median"), lang), "drill": None},
            {"text": present.fmt_value("csat", r.get("csat"), lang), "drill": None},
            {"text": present.fmt_value("fcr_share", r.get("fcr"), lang), "drill": None},
        ]})
    cols = [t("agent", lang), t("kpi.resolved_count", lang),
            f"{t('first_response', lang)} ({t('median', lang).lower()})", "CSAT", "FCR"]
    return {"id": "top", "title": t("kpi.top_agents", lang), "columns": cols, "rows": rows}


def _ccei(report: dict, lang: str) -> dict | None:
    c = report.get("ccei") or {}
    if c.get("value") is None and not c.get("components"):
        return None
    comps = []
    for name in ("quality", "efficiency", "business", "team"):
        v = (c.get("components") or {}).get(name)
        comps.append({"label": t(name, lang), "text": "—" if v is None else present._num(v, 1, lang),
                      "pct": None if v is None else round(max(0.0, min(100.0, v)), 1)})
    left = [t(x, lang) if "." not in x else x for x in c.get("left_out") or []]
    return {"value": "—" if c.get("value") is None else present._num(c["value"], 1, lang),
            "components": comps, "left_out": left}


def _trend(ch: dict, lang: str) -> dict:
    tz = zone(ch["tz"])
    labels, created, resolved, frt, res = [], [], [], [], []
    for w in ch["series"]:
        d = datetime.fromtimestamp(w["start"], tz)
        labels.append(d.strftime("%d.%m") if lang == "ru" else d.strftime("%b %d"))
        created.append(w["created"])
        resolved.append(w["resolved"])
        frt.append((w["first_response_time"] or {}).get("median"))
        res.append((w["resolution_time"] or {}).get("median"))
    return {"labels": labels, "created": created, "resolved": resolved, "frt_median": frt,
            "resolution_median": res}


def _by_priority(report: dict, lang: str) -> dict:
    e = (report.get("kpis") or {}).get("resolved_by_priority") or {}
    resolved = e.get("value") or {}
    created = (e.get("detail") or {}).get("created") or {}
    keys = [p for p in PRIORITIES if p in resolved or p in created]
    return {"keys": keys, "labels": [t(f"prio_{p}", lang) for p in keys],
            "resolved": [resolved.get(p, 0) for p in keys], "created": [created.get(p, 0) for p in keys]}


def _options(db, viewer: Viewer, q: Query, lang: str) -> list:
    users, deps = data.people(db, viewer.portal)
    opts = []
    if viewer.role != "agent":
        allowed = set(viewer.tree) if viewer.role == "head" else set(deps)
        items = sorted(((d, (deps.get(d) or {}).get("name") or d) for d in allowed), key=lambda x: x[1].lower())
        opts.append(("department", {"allow_all": True, "items": items}))
        if viewer.role == "head":
            who = dept_members(db, viewer.portal, viewer.tree) | {viewer.user_id}
        else:
            who = set(users)
        items = sorted(((u, (users.get(u) or {}).get("label") or u) for u in who), key=lambda x: x[1].lower())
        opts.append(("agent", {"allow_all": True, "items": items}))
    opts.append(("priority", {"allow_all": True, "items": [(p, t(f"prio_{p}", lang)) for p in PRIORITIES]}))
    types = data.distinct(db, viewer.portal, "type")
    if types:
        opts.append(("type", {"allow_all": True, "items": [(x, x) for x in types]}))
    sources = data.distinct(db, viewer.portal, "source")
    if len(sources) > 1 or q.filters.get("source"):
        opts.append(("source", {"allow_all": True, "items": [(x, x) for x in sources]}))
    return opts


def _openline_tables(db, viewer: Viewer, q: Query, filters: dict, lang: str, drill: bool,
                     by_channel: dict) -> list[dict]:
    """By channel and by line, when the portal has open-line tickets (issue 8). An open-line
    ticket's ``type`` is its line's name (b24desk/sources/openlines.py), so "by line" is ``type``
    over ``source=openlines``: the same groups as ``group_by="line"``, and drillable, since
    ``type`` is a filter. Only called when the portal has open-line tickets."""
    out = [_group_table(by_channel, "channel", lang, t("per_channel", lang), drill)]
    src = filters.get("source")
    if src in (None, "", OPENLINES) or (isinstance(src, list) and OPENLINES in src):
        lines = data.report(db, viewer.portal, q, dict(filters, source=OPENLINES), "type")
        out.append(_group_table(lines, "type", lang, t("per_line", lang), drill, table_id="line",
                                extra={"source": OPENLINES}))
    return out


def _crosscheck_warning(db, viewer: Viewer, token: str) -> dict | None:
    """An admin's banner when the last open-lines cross-check found our figures differ from the portal's."""
    if not viewer.is_admin:
        return None
    _status, check = portal_settings.openlines_state(db, viewer.portal)
    if not check or not check.get("differs"):
        return None
    period = check.get("period") or {}
    return {"period": f"{(period.get('from') or '')[:10]} — {(period.get('to') or '')[:10]}",
            "figures": [t(f"ol_{k}", viewer.lang) for k, v in (check.get("differences") or {}).items() if v],
            "url": url_for("reports.settings", t=token) + "#form-openlines"}


def build(db, viewer: Viewer, args, token: str) -> dict:
    cfg = data.portal_config(db, viewer.portal)
    tz_name = portal_zone(db, viewer.portal, cfg)
    q = parse(args, tz_name, allow_group=False)
    lang = viewer.lang
    scoped = scope_query(viewer, q.filters, None, db=db)
    wide = scoped.slice in ("all", "tree")
    team = None
    # One engine pass for the reports and charts of this query (data.page).
    openlines = wide and OPENLINES in data.distinct(db, viewer.portal, "source")
    group_bys = (("agent", "department") + (("channel",) if openlines else ())) if wide else (None,)
    pg = data.page(db, viewer.portal, q, scoped.filters, group_bys)
    if wide:
        rep, deps = pg["reports"]["agent"], pg["reports"]["department"]
    else:
        rep, deps = pg["reports"][None], None
        if viewer.departments:
            team_scope = scope_query(viewer, {k: v for k, v in q.filters.items() if k != "agent"}, None,
                                     db=db, want="team")
            team = data.report(db, viewer.portal, q, team_scope.filters)
    drill = can_drill(viewer, scoped)
    cards = present.cards(rep, lang, present.directions_from_config(cfg), team)
    for c in cards:
        c["drill"] = drill_attr({"kpi": c["key"], "title": c["label"]}) if drill else None

    tables = []
    if wide:
        tables.append(_group_table(rep, "agent", lang, t("per_agent", lang), drill))
        tables.append(_group_table(deps, "department", lang, t("per_department", lang), drill))
        tables.append(_top_table(rep, lang, drill))
        if openlines:
            tables.extend(_openline_tables(db, viewer, q, scoped.filters, lang, drill, pg["reports"]["channel"]))

    ch = pg["charts"]
    frt = (rep["kpis"].get("first_response_time") or {}).get("value") or {}
    res = (rep["kpis"].get("resolution_time") or {}).get("value") or {}
    frt_dist = present.histogram(ch["frt"], frt.get("median"), frt.get("p90"), lang=lang)
    res_dist = present.histogram(ch["resolution"], res.get("median"), res.get("p90"), lang=lang)
    if frt_dist:
        frt_dist["kpi"] = "first_response_time"
    if res_dist:
        res_dist["kpi"] = "resolution_time"

    params = q.params()
    raw_query = {k: v for k, v in params.items()}
    export = lambda fmt: url_for(f"reports.export_{fmt}") + "?" + urlencode(dict(raw_query, t=token), doseq=True)  # noqa: E731
    return {
        "q": dict({k: (v or "") for k, v in q.filters.items()}, **{"from": q.date_from, "to": q.date_to}),
        "options": _options(db, viewer, q, lang),
        "period_label": f"{rep['period']['from'][:10]} — {rep['period']['to'][:10]}",
        "previous_label": f"{rep['previous']['from'][:10]} — {rep['previous']['to'][:10]}",
        "slice": scoped.slice, "has_team": team is not None, "stale": data.stale_age() is not None,
        "ol_warning": _crosscheck_warning(db, viewer, token),
        "cards": cards, "tables": tables, "ccei": _ccei(rep, lang),
        "exports": {"csv": export("csv"), "xlsx": export("xlsx")},
        "reset_url": url_for("reports.dashboard", t=token),
        "data": {
            "token": token, "query": raw_query, "i18n": catalogue(lang),
            "api": {"drilldown": url_for("reports.api_drilldown"), "kpi": url_for("reports.api_kpi")},
            "trend": _trend(ch, lang), "frt_dist": frt_dist, "resolution_dist": res_dist,
            "by_priority": _by_priority(rep, lang), "slice": scoped.slice,
        },
    }
