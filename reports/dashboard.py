"""The dashboard's content for one viewer and query: cards, charts' data, tables, CCEI, filters.

The viewer's role is applied first (``b24desk.viewer.scope_query``): an agent's page is built
from their own numbers (plus their team's totals beside them), a head's from their department
tree, an admin's from the whole portal. Nothing outside that slice is ever computed for the page.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from urllib.parse import urlencode

from babel.dates import format_date
from flask import url_for
from markupsafe import escape

from b24desk import labels
from b24desk.kpi.load import portal_zone
from b24desk.kpi.periods import zone
from b24desk.kpi.presets import PRESETS, preset_days
from b24desk.model import PRIORITIES
from b24desk.sources.openlines import SOURCE as OPENLINES
from b24desk.text import present
from b24desk.text.i18n import catalogue, t
from b24desk.viewer import FILTER_KEYS, Viewer, can_drill, scope_query
from b24desk.viewer import members as dept_members

from . import data, portal_settings
from .names import Names
from .query import Query, last_day, parse

TABLE_KPIS = (
    "tickets_total",
    "resolved_count",
    "backlog",
    "first_response_time",
    "resolution_time",
    "fcr_share",
    "csat",
    "overdue_share",
)


def _median(entry):
    v = (entry or {}).get("value")
    return v.get("median") if isinstance(v, dict) else v


def drill_attr(spec: dict | None):
    """A drill spec as an attribute value: JSON, HTML-escaped once here (cheaper than a template
    filter per table cell; the data-drill attribute is read back with JSON.parse)."""
    return None if spec is None else escape(json.dumps(spec, ensure_ascii=False, separators=(",", ":")))


def _cell(key: str, entry: dict, lang: str, drill: dict | None = None) -> dict:
    """A table cell: the text, the number it sorts by, and its drilldown."""
    v = (entry or {}).get("value")
    text = present.fmt_value(key, v, lang)
    sort = present.headline(key, v)
    if key in present.DURATIONS and isinstance(v, dict) and v.get("median") is not None:
        text = present.fmt_duration(v["median"], lang)
        sort = v["median"]
    return {"text": text, "drill": drill_attr(drill), "sort": "" if sort is None else sort}


def _group_table(
    report: dict,
    dim: str,
    lang: str,
    title: str,
    drill: bool,
    *,
    table_id: str | None = None,
    extra: dict | None = None,
    names: Names | None = None,
) -> dict:
    """One row per group of ``report``; ``extra`` joins each row's drill filters (the line table
    drills into ``type`` *and* ``source=openlines``); a dim that is no filter (channel) has no drill."""
    drill = drill and dim in FILTER_KEYS
    cols = [t(dim, lang)] + [
        present.kpi_label(k, lang, short=True) + (f", {t('median', lang).lower()}" if k in present.DURATIONS else "")
        for k in TABLE_KPIS
    ]
    rows = []
    for g in report.get("groups") or []:
        if g["key"] is None:
            label = labels.empty_group(dim, lang)
        elif dim == "department":
            label = " / ".join(g.get("path") or [g["label"]])
        elif names is not None:
            label = names.group(dim, g["key"], g["label"])
        else:
            label = g["label"]
        base = dict(extra or {}, **{dim: g["key"]}) if g["key"] is not None else None
        cells = [
            {
                "text": label,
                "sort": label.lower(),
                "drill": drill_attr(dict(base, kpi="tickets_total", title=label) if (drill and base) else None),
            }
        ]
        for k in TABLE_KPIS:
            d = (
                dict(base, kpi=k, title=f"{label}: {present.kpi_label(k, lang, short=True)}")
                if (drill and base)
                else None
            )
            cells.append(_cell(k, g["kpis"].get(k), lang, d))
        rows.append({"key": "" if g["key"] is None else str(g["key"]), "cells": cells})
    return {"id": table_id or dim, "title": title, "columns": cols, "rows": rows}


def _top_table(report: dict, lang: str, drill: bool) -> dict:
    rows = []
    for r in ((report.get("kpis") or {}).get("top_agents") or {}).get("value") or []:
        base = {"agent": r["agent"]}
        rows.append(
            {
                "key": str(r["agent"]),
                "cells": [
                    {
                        "text": r.get("name") or labels.empty_group("agent", lang),
                        "sort": (r.get("name") or "").lower(),
                        "drill": drill_attr(dict(base, kpi="resolved_count", title=r.get("name"))) if drill else None,
                    },
                    {
                        "text": present.fmt_value("resolved_count", r.get("resolved"), lang),
                        "sort": r.get("resolved") or 0,
                        "drill": drill_attr(dict(base, kpi="resolved_count", title=r.get("name"))) if drill else None,
                    },
                    {
                        "text": present.fmt_duration(r.get("frt_median"), lang),
                        "drill": None,
                        "sort": _num_or_blank(r.get("frt_median")),
                    },
                    {
                        "text": present.fmt_value("csat", r.get("csat"), lang),
                        "drill": None,
                        "sort": _num_or_blank(r.get("csat")),
                    },
                    {
                        "text": present.fmt_value("fcr_share", r.get("fcr"), lang),
                        "drill": None,
                        "sort": _num_or_blank(r.get("fcr")),
                    },
                ],
            }
        )
    cols = [
        t("agent", lang),
        t("kpi.resolved_count", lang),
        f"{t('first_response', lang)}, {t('median', lang).lower()}",
        "CSAT",
        "FCR",
    ]
    return {"id": "top", "title": t("kpi.top_agents", lang), "columns": cols, "rows": rows}


def _num_or_blank(v):
    return "" if v is None else v


def _ccei(report: dict, lang: str) -> dict | None:
    c = report.get("ccei") or {}
    if c.get("value") is None and not c.get("components"):
        return None
    comps = []
    for name in ("quality", "efficiency", "business", "team"):
        v = (c.get("components") or {}).get(name)
        comps.append(
            {
                "label": t(name, lang),
                "text": "—" if v is None else present._num(v, 1, lang),
                "pct": None if v is None else round(max(0.0, min(100.0, v)), 1),
            }
        )
    left = [_left_out_label(x, lang) for x in c.get("left_out") or []]
    return {
        "value": "—" if c.get("value") is None else present._num(c["value"], 1, lang),
        "hint": labels.kpi_definition("ccei", lang),  # what the number is, and why it may pass 100
        "components": comps,
        "left_out": left,
    }


# a CCEI term (b24desk/kpi/ccei.py TERM_WEIGHTS) that is a KPI under another key
_CCEI_TERM_KPIS = {
    "fcr": "fcr_share",
    "frt": "first_response_time",
    "aht": "handle_time",
    "resolution": "resolution_time",
}


def _left_out_label(x: str, lang: str) -> str:
    """A CCEI input left out: its KPI, term or component name in words, never ``quality.ces`` nor
    ``efficiency.resolution``."""
    part = x.rsplit(".", 1)[-1]
    part = _CCEI_TERM_KPIS.get(part, part) if "." in x else part
    if part in labels.KPIS:
        return present.kpi_label(part, lang)
    for key in (f"ccei_term.{part}", part):
        named = t(key, lang)
        if named != key:
            return named
    return part.replace("_", " ")


def _trend(ch: dict, lang: str) -> dict:
    tz = zone(ch["tz"])
    names, created, resolved, frt, res, partial = [], [], [], [], [], []
    for w in ch["series"]:
        d = datetime.fromtimestamp(w["start"], tz)
        short = w["end"] - w["start"] < 7 * 86400 - 3600  # a week cut by the period (DST-safe)
        names.append(format_date(d.date(), "d MMM", locale="ru" if lang == "ru" else "en") + ("*" if short else ""))
        partial.append(short)
        created.append(w["created"])
        resolved.append(w["resolved"])
        frt.append((w["first_response_time"] or {}).get("median"))
        res.append((w["resolution_time"] or {}).get("median"))
    return {
        "labels": names,
        "created": created,
        "resolved": resolved,
        "frt_median": frt,
        "resolution_median": res,
        "partial": partial,
        "any_partial": any(partial),
    }


def _by_priority(report: dict, lang: str) -> dict:
    e = (report.get("kpis") or {}).get("resolved_by_priority") or {}
    resolved = e.get("value") or {}
    created = (e.get("detail") or {}).get("created") or {}
    keys = [p for p in PRIORITIES if p in resolved or p in created]
    return {
        "keys": keys,
        "labels": [t(f"prio_{p}", lang) for p in keys],
        "resolved": [resolved.get(p, 0) for p in keys],
        "created": [created.get(p, 0) for p in keys],
    }


def _selected(q: Query, name: str) -> set:
    v = q.filters.get(name)
    return set() if v in (None, "") else set(v) if isinstance(v, list) else {v}


def _dept_tree_items(deps: dict, allowed: set) -> list:
    """Departments as a tree (parents first, children indented), limited to ``allowed``."""
    children: dict = {}
    for d in allowed:
        parent = (deps.get(d) or {}).get("parent")
        children.setdefault(parent if parent in allowed else None, []).append(d)
    out = []

    def walk(parent, depth):
        for d in sorted(children.get(parent, []), key=lambda x: ((deps.get(x) or {}).get("name") or x).lower()):
            out.append((d, (deps.get(d) or {}).get("name") or d, depth))
            walk(d, depth + 1)

    walk(None, 0)
    return out


def _options(db, viewer: Viewer, q: Query, lang: str, names: Names, acted: list | None) -> dict:
    """The filters: pickers (searchable, several values) for agents who acted on tickets in the
    period, the department tree, types, sources, channels and lines; a select for priority."""
    users, deps = data.people(db, viewer.portal)
    pickers, selects = [], []

    def picker(name, items, title=None):
        chosen = _selected(q, name)
        known = {str(i[0]) for i in items}
        for v in sorted(chosen - known):  # a chosen value outside the list stays visible
            items = list(items) + [(v, names.group(name, v, (users.get(v) or {}).get("label")), 0)]
        pickers.append(
            {
                "name": name,
                "title": title or t(name, lang),
                "chosen": chosen,
                "items": [
                    {
                        "value": str(i[0]),
                        "label": i[1],
                        "depth": i[2] if len(i) > 2 else 0,
                        "checked": str(i[0]) in chosen,
                    }
                    for i in items
                ],
                "summary": ", ".join(i[1] for i in items if str(i[0]) in chosen),
            }
        )

    if viewer.role != "agent":
        allowed = set(viewer.tree) if viewer.role == "head" else set(deps)
        picker("department", _dept_tree_items(deps, allowed))
        who = [a for a in (acted or []) if a is not None]
        if viewer.role == "head":
            mine = dept_members(db, viewer.portal, viewer.tree) | {viewer.user_id}
            who = [a for a in who if a in mine]
        items = sorted(
            ((u, (users.get(u) or {}).get("label") or names.pick(("Сотрудник ", "User ")) + str(u)) for u in who),
            key=lambda x: x[1].lower(),
        )
        seen: dict = {}
        for _u, label in items:
            seen[label] = seen.get(label, 0) + 1
        # two people of one name: their departments tell them apart

        def where(u):
            ids = (users.get(u) or {}).get("departments") or []
            return ", ".join((deps.get(d) or {}).get("name") or d for d in ids)

        items = [(u, label if seen[label] == 1 else f"{label} ({where(u) or u})") for u, label in items]
        picker("agent", items)
    selects.append(("priority", {"allow_all": True, "items": [(p, t(f"prio_{p}", lang)) for p in PRIORITIES]}))
    sources = data.distinct(db, viewer.portal, "source")
    types = data.distinct(db, viewer.portal, "type")
    if types:
        picker("type", sorted(((x, names.type(x)) for x in types), key=lambda x: x[1].lower()))
    if len(sources) > 1 or q.filters.get("source"):
        picker("source", [(x, names.source(x)) for x in sources])
    channels = data.distinct(db, viewer.portal, "channel")
    if channels:
        picker("channel", sorted(((x, names.channel(x)) for x in channels), key=lambda x: x[1].lower()))
    lines = data.distinct(db, viewer.portal, "line")
    if lines:
        picker("line", sorted(((x, names.line(x)) for x in lines), key=lambda x: x[1].lower()))
    return {"pickers": pickers, "selects": selects}


def _openline_tables(db, viewer: Viewer, q: Query, filters: dict, lang: str, drill: bool, names: Names) -> list[dict]:
    """By channel and by line, over the open-line tickets only (issue 8; tasks and deals have no
    channel, so they are not a "no channel" row). An open-line ticket's ``type`` is its line's
    name (b24desk/sources/openlines.py), so "by line" is ``type`` over ``source=openlines``; both
    tables come from one engine pass and drill with ``source=openlines`` joined."""
    src = filters.get("source")
    if not (src in (None, "", OPENLINES) or (isinstance(src, list) and OPENLINES in src)):
        return []
    pg = data.page(db, viewer.portal, q, dict(filters, source=OPENLINES), ("channel", "type"), group_kpis=TABLE_KPIS)
    return [
        _group_table(
            pg["reports"]["channel"],
            "channel",
            lang,
            t("per_channel", lang),
            drill,
            extra={"source": OPENLINES},
            names=names,
        ),
        _group_table(
            pg["reports"]["type"],
            "type",
            lang,
            t("per_line", lang),
            drill,
            table_id="line",
            extra={"source": OPENLINES},
            names=names,
        ),
    ]


def _presets(tz_name: str, lang: str) -> list[dict]:
    """The preset menu with each preset's days (inclusive), for the page's script and links."""
    today = datetime.now(zone(tz_name)).date()
    out = []
    for name in PRESETS:
        a, b = preset_days(name, today)
        out.append(
            {
                "name": name,
                "label": t(f"preset_{name}", lang),
                "from": a.isoformat(),
                "to": (b - timedelta(days=1)).isoformat(),
            }
        )
    return out


def fmt_day(d: date, lang: str) -> str:
    return format_date(d, "dd.MM.y" if lang == "ru" else "MMM d, y", locale="ru" if lang == "ru" else "en")


def period_text(period: dict, lang: str) -> str:
    """``01.10.2026 — 31.10.2026``: the report's half-open period as the inclusive days it covers."""
    a = date.fromisoformat(period["from"][:10])
    b = datetime.fromisoformat(period["to"])
    last = b.date() - timedelta(days=1) if (b.hour, b.minute, b.second) == (0, 0, 0) else b.date()
    if last <= a:
        return fmt_day(a, lang)
    return f"{fmt_day(a, lang)} — {fmt_day(last, lang)}"


def _now_panel(db, viewer: Viewer, scoped, lang: str, drill: bool) -> dict:
    state = data.now_state(db, viewer.portal, scoped.filters)
    items = []
    for key in ("open", "unassigned", "no_reply", "at_risk"):
        n = len(state["items"][key])
        items.append(
            {
                "key": key,
                "label": t(f"now_{key}", lang),
                "value": present._num(n, 0, lang),
                "alert": key in ("unassigned", "no_reply", "at_risk") and n > 0,
                "drill": drill_attr({"now": key, "title": t(f"now_{key}", lang)}) if drill and n else None,
            }
        )
    oldest = state["items"]["oldest"]
    items.append(
        {
            "key": "oldest",
            "label": t("now_oldest", lang),
            "value": present.fmt_duration(oldest[0]["value"], lang) if oldest else "—",
            "alert": False,
            "drill": drill_attr({"now": "oldest", "title": t("now_oldest", lang)}) if drill and oldest else None,
        }
    )
    as_of = datetime.fromtimestamp(state["now"], zone(viewer_tz(db, viewer))).strftime("%H:%M")
    return {"items": items, "as_of": as_of}


def viewer_tz(db, viewer: Viewer) -> str:
    return portal_zone(db, viewer.portal, data.portal_config(db, viewer.portal))


def _card_groups(cards: list, lang: str) -> list[dict]:
    groups = {g: [] for g in labels.GROUPS}
    for c in cards:
        groups.setdefault(labels.KPIS[c["key"]].group if c["key"] in labels.KPIS else "load", []).append(c)
    out = []
    for g, items in groups.items():
        if not items:
            continue
        big = [c for c in items if c["key"] in labels.HEADLINE]
        small = [c for c in items if c["key"] not in labels.HEADLINE]
        out.append({"key": g, "title": t(f"group_{g}", lang), "big": big, "small": small})
    return out


def _crosscheck_warning(db, viewer: Viewer, token: str) -> dict | None:
    """An admin's banner when the last open-lines cross-check found our figures differ from the portal's."""
    if not viewer.is_admin:
        return None
    _status, check = portal_settings.openlines_state(db, viewer.portal)
    if not check or not check.get("differs"):
        return None
    period = check.get("period") or {}
    return {
        "period": f"{(period.get('from') or '')[:10]} — {(period.get('to') or '')[:10]}",
        "figures": [t(f"ol_{k}", viewer.lang) for k, v in (check.get("differences") or {}).items() if v],
        "url": url_for("reports.settings", t=token) + "#form-openlines",
    }


def build(db, viewer: Viewer, args, token: str) -> dict:
    cfg = data.portal_config(db, viewer.portal)
    tz_name = portal_zone(db, viewer.portal, cfg)
    q = parse(args, tz_name, allow_group=False, inclusive=True)
    lang = viewer.lang
    names = Names(db, viewer.portal, lang)
    scoped = scope_query(viewer, q.filters, None, db=db)
    wide = scoped.slice in ("all", "tree")
    team = None
    # One engine pass for the reports and charts of this query (data.page).
    openlines = wide and OPENLINES in data.distinct(db, viewer.portal, "source")
    group_bys = ("agent", "department") if wide else (None,)
    team_filters = None
    if not wide and viewer.departments:  # their team's totals beside their own, from the same pass
        team_filters = scope_query(
            viewer, {k: v for k, v in q.filters.items() if k != "agent"}, None, db=db, want="team"
        ).filters
    pg = data.page(db, viewer.portal, q, scoped.filters, group_bys, team=team_filters, group_kpis=TABLE_KPIS)
    if wide:
        rep, deps = pg["reports"]["agent"], pg["reports"]["department"]
    else:
        rep, deps, team = pg["reports"][None], None, pg.get("team")
    drill = can_drill(viewer, scoped)
    cards = present.cards(rep, lang, present.directions_from_config(cfg), team)
    for c in cards:
        c["drill"] = drill_attr({"kpi": c["key"], "title": c["label"]}) if drill else None

    tables = []
    acted = None
    if wide:
        # agents who acted on tickets of the period (the per-agent groups), not every portal user
        acted = [g["key"] for g in rep.get("groups") or [] if g["key"] is not None]
        tables.append(_group_table(rep, "agent", lang, t("per_agent", lang), drill, names=names))
        tables.append(_group_table(deps, "department", lang, t("per_department", lang), drill, names=names))
        tables.append(_top_table(rep, lang, drill))
        if openlines:
            tables.extend(_openline_tables(db, viewer, q, scoped.filters, lang, drill, names))

    ch = pg["charts"]
    kp = rep["kpis"]
    frt = (kp.get("first_response_time") or {}).get("value") or {}
    res = (kp.get("resolution_time") or {}).get("value") or {}
    frt_dist = present.histogram(
        ch["frt"],
        frt.get("median"),
        frt.get("p90"),
        lang=lang,
        target=(kp.get("first_response_time") or {}).get("target"),
    )
    res_dist = present.histogram(
        ch["resolution"],
        res.get("median"),
        res.get("p90"),
        lang=lang,
        target=(kp.get("resolution_time") or {}).get("target"),
    )
    if frt_dist:
        frt_dist["kpi"] = "first_response_time"
    if res_dist:
        res_dist["kpi"] = "resolution_time"

    params = q.params()
    raw_query = {k: v for k, v in params.items()}
    export = lambda fmt: url_for(f"reports.export_{fmt}") + "?" + urlencode(dict(raw_query, t=token), doseq=True)  # noqa: E731
    page_q = dict(
        {k: (v or "") for k, v in q.filters.items()},
        **{
            "from": q.date_from,
            "to": last_day(q.date_to),
            "preset": q.preset or "",
            "compare": q.compare or "previous",
        },
    )
    return {
        "q": page_q,
        "options": _options(db, viewer, q, lang, names, acted),
        "presets": _presets(tz_name, lang),
        "compare_options": [("previous", t("compare_previous", lang)), ("last_year", t("compare_last_year", lang))],
        "period_label": period_text(rep["period"], lang),
        "previous_label": period_text(rep["previous"], lang),
        "slice": scoped.slice,
        "has_team": team is not None,
        "stale": data.stale_age() is not None,
        "ol_warning": _crosscheck_warning(db, viewer, token),
        "now": _now_panel(db, viewer, scoped, lang, drill),
        "cards": cards,
        "card_groups": _card_groups(cards, lang),
        "tables": tables,
        "ccei": _ccei(rep, lang),
        "partial_note": _trend(ch, lang)["any_partial"],
        "exports": {"csv": export("csv"), "xlsx": export("xlsx")},
        "reset_url": url_for("reports.dashboard", t=token),
        "data": {
            "token": token,
            "query": raw_query,
            "i18n": catalogue(lang),
            "api": {
                "drilldown": url_for("reports.api_drilldown"),
                "kpi": url_for("reports.api_kpi"),
                "now": url_for("reports.api_now"),
            },
            "trend": _trend(ch, lang),
            "frt_dist": frt_dist,
            "resolution_dist": res_dist,
            "by_priority": _by_priority(rep, lang),
            "slice": scoped.slice,
            "presets": {p["name"]: [p["from"], p["to"]] for p in _presets(tz_name, lang)},
        },
    }
