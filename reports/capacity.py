"""The capacity page (``/reports/capacity``) and ``GET /api/capacity`` (heads and admins).

Thin glue over ``b24desk.capacity``: read and check the query (every parameter, a 4xx in the
viewer's language for a bad one), scope it by role (a head sees their departments only, an agent
nothing), build the report, and render it as JSON or as the page.
"""

from __future__ import annotations

import json
import re

from flask import Response, g, render_template, request, url_for

from b24desk.capacity import CapacityError, build_capacity
from b24desk.capacity.report import default_period
from b24desk.capacity.report import settings as capacity_settings
from b24desk.capacity.text import WEEKDAY_SHORT
from b24desk.installations import get_installation
from b24desk.kpi.load import portal_zone
from b24desk.kpi.periods import make_period, zone
from b24desk.store import get_setting
from b24desk.text.i18n import t
from b24desk.viewer import ADMIN, HEAD, ViewerError

from . import data
from .auth import current_viewer, viewer_required
from .blueprint import bp, get_db
from .capacity_text import ct
from .security import bx24_script
from .ticket_card import source_label

PARAMS = ("t", "from", "to", "weeks_ahead", "source", "department")
_DATE = re.compile(r"^[0-9T:+\-.Z ]{10,40}$")
BARE = {"tasks": "task", "deals": "crm:2", "openlines": "openlines"}


def _err(status: int, code: str, lang: str, **kw) -> ViewerError:
    return ViewerError(status, code, ct(f"err_{code}", lang, **kw))


def _one(name: str, lang: str) -> str | None:
    vals = request.args.getlist(name)
    if len(vals) > 1:
        raise _err(400, "unknown_param", lang, detail=f"{name} (×{len(vals)})")
    v = (vals[0] if vals else "").strip()
    return v or None


def _label(base: str, lang: str) -> str:
    return source_label(BARE.get(base, base), lang)


def source_options(db, portal: str, cfg: dict, lang: str) -> list[tuple[str, str]]:
    """The selectors a user may pick: the configured ones, their whole sources, and each open line."""
    out: dict = {}
    for s in cfg.get("sources") or []:
        sel = s.get("select") if isinstance(s, dict) else s
        if not isinstance(sel, str) or not sel.strip():
            continue
        sel = sel.strip()
        base = re.split(r":(?:category|group|line)=", sel, maxsplit=1)[0]
        out.setdefault(base, _label(base, lang))
        if sel != base:
            out.setdefault(sel, f"{_label(base, lang)} ({sel[len(base) + 1 :]})")
    lines = get_setting(db, portal, "openlines.lines") or {}
    if isinstance(lines, dict) and lines:
        out.setdefault("openlines", _label("openlines", lang))
        for lid, name in sorted(lines.items(), key=lambda kv: str(kv[0])):
            out[f"openlines:line={lid}"] = f"{_label('openlines', lang)}: {name}"
    return sorted(out.items(), key=lambda kv: kv[0])


def department_options(viewer, env_departments: dict) -> list[tuple[str, str]]:
    ids = list(env_departments) if viewer.role == ADMIN else [d for d in viewer.tree]
    return sorted(((d, (env_departments.get(d) or {}).get("name") or d) for d in ids), key=lambda kv: kv[1])


def _query(db, v, cfg, tz_name):
    """The checked query: (from, to, weeks_ahead, source, department)."""
    lang = v.lang
    if v.role not in (ADMIN, HEAD):
        raise _err(403, "agents", lang)
    date_from, date_to = _one("from", lang), _one("to", lang)
    for raw in (date_from, date_to):
        if raw is not None and not _DATE.match(raw):
            raise _err(400, "bad_period", lang, detail=raw[:40])
    if bool(date_from) != bool(date_to):
        raise _err(400, "bad_period", lang, detail="from / to")
    if date_from:
        try:
            make_period(date_from, date_to, zone(tz_name))
        except ValueError as exc:
            raise _err(400, "bad_period", lang, detail=str(exc)) from None
    weeks = _one("weeks_ahead", lang) or "4"
    if not re.fullmatch(r"[0-9]{1,2}", weeks) or not 1 <= int(weeks) <= 8:
        raise _err(400, "bad_weeks_ahead", lang)
    source = _one("source", lang)
    if source is not None and source not in dict(source_options(db, v.portal, cfg, lang)):
        raise _err(400, "bad_source", lang)
    department = _one("department", lang)
    if v.role == HEAD:
        if not v.tree:
            raise _err(403, "no_scope", lang)
        if department is None:
            department = (v.headed or v.tree)[0]
        elif department not in v.tree:
            raise _err(403, "forbidden_department", lang)
    return date_from, date_to, int(weeks), source, department


def _report(db, v, *, exact: bool):
    """The report, memoized like the KPI pages (reports/cache.py): the API is always exact (it
    equals ``flask capacity``), the page may show the last figures while they are refreshed."""
    cfg = data.portal_config(db, v.portal)
    tz_name = portal_zone(db, v.portal, cfg)
    date_from, date_to, weeks, source, department = _query(db, v, cfg, tz_name)
    if not date_from:  # the default period, by its dates (it moves every Monday)
        p = default_period(zone(tz_name))
        date_from, date_to = p.local(p.start).date().isoformat(), p.local(p.end).date().isoformat()
    key = ("capacity", v.portal, date_from, date_to, weeks, source, department, cfg)
    try:
        report = data._get(
            key,
            lambda own: build_capacity(
                own, v.portal, date_from, date_to, weeks_ahead=weeks, source=source, department=department, config=cfg
            ),
            exact=exact,
        )
    except CapacityError as exc:
        status = 400
        detail = str(exc)
        raise _err(
            status,
            exc.code if exc.code in ("bad_period", "bad_department", "bad_config", "bad_weeks_ahead") else "bad_period",
            v.lang,
            detail=detail,
        ) from None
    return report, cfg, (date_from, date_to, weeks, source, department)


@bp.route("/api/capacity")
@viewer_required
def api_capacity():
    report, _cfg, _q = _report(get_db(), current_viewer(), exact=True)
    return Response(json.dumps(report, ensure_ascii=False), mimetype="application/json")


# --- the page -----------------------------------------------------------------------------------


def _num(x, lang, digits=1):
    if x is None:
        return "—"
    s = f"{x:,.{digits}f}".replace(",", " ")
    if digits and s.endswith("0" * digits):
        s = s[: -(digits + 1)]
    return s.replace(".", ",") if lang == "ru" else s


def _heat(report, key, lang):
    grid = {(r["weekday"], r["hour"]): r[key] for r in report["arrivals"]}
    top = max(grid.values()) or 1
    rows = []
    for wd in range(1, 8):
        cells = []
        for h in range(24):
            v = grid[(wd, h)]
            level = 0 if v <= 0 else min(9, 1 + int(8 * v / top))
            cells.append({"text": _num(v, lang) if v else "", "level": level})
        rows.append({"label": WEEKDAY_SHORT[lang][wd - 1], "cells": cells})
    return rows


def _staff_grid(report, lang):
    rows = report["staffing"]
    if not rows:
        return None
    hours = sorted({r["hour"] for r in rows if r["in_service_hours"] and (r["agents_needed"] or r["agents_active"])})
    if not hours:
        return None
    hours = list(range(hours[0], hours[-1] + 1))
    by = {(r["weekday"], r["hour"]): r for r in rows}
    out = []
    for wd in range(1, 8):
        cells = []
        for h in hours:
            r = by[(wd, h)]
            cells.append(
                {
                    "text": f"{r['agents_needed']} / {_num(r['agents_active'], lang)}",
                    "short": r["short"] > 0 and r["in_service_hours"],
                    "off": not r["in_service_hours"],
                    "title": f"{_num(r['arrivals_per_hour'], lang, 2)}/h",
                }
            )
        out.append({"label": WEEKDAY_SHORT[lang][wd - 1], "cells": cells})
    return {"hours": hours, "rows": out}


@bp.route("/reports/capacity")
@viewer_required
def capacity_page():
    v = current_viewer()
    db = get_db()
    report, cfg, (date_from, date_to, weeks, source, department) = _report(db, v, exact=False)
    lang = v.lang
    s = report["summary"]
    lo, hi = s["norm_per_agent_day"]
    load = s["load_per_agent_day"]
    load_status = "grey" if load is None else "green" if load <= hi else "red"
    first = report["forecast"][0] if report["forecast"] else None
    b = report["backtest"]
    cards = [
        {
            "id": "load",
            "label": ct("load_card", lang),
            "value": _num(load, lang),
            "status": load_status,
            "note": ct("load_note", lang, lo=lo, hi=hi),
        },
        {
            "id": "short",
            "label": ct("short_card", lang),
            "value": str(s["agents_short_peak"]),
            "status": "red" if s["agents_short_peak"] else "green",
            "note": ct("short_note", lang),
        },
        {
            "id": "forecast",
            "label": ct("forecast_card", lang, week=first["week"] if first else "—"),
            "value": (
                f"{first['created']}"
                + (f" ({first['low']}–{first['high']})" if first and first["low"] is not None else "")
            )
            if first
            else "—",
            "status": "red" if s["forecast_exceeds_norm"] else "grey",
            "note": s["forecast_note"][lang] if s["forecast_note"] else ct("forecast_note", lang),
        },
        {
            "id": "mape",
            "label": ct("mape_card", lang),
            "value": "—" if b["mape"] is None else _num(b["mape"] * 100, lang) + " %",
            "status": "grey",
            "note": ct("mape_note", lang, method=ct("m_" + b["method"], lang), weeks=b["weeks"]),
        },
    ]
    chat_rows = [r for r in report["staffing"] if r["arrivals_per_hour"]]
    aht = (chat_rows[0]["aht_s"] if chat_rows else s["chat_aht_s"]) or 0
    daily_rows = [
        {
            "label": WEEKDAY_SHORT[lang][r["weekday"] - 1],
            "per_day": _num(r["created_per_day"], lang),
            "needed": r["agents_needed"],
            "active": _num(r["agents_active"], lang),
            "short": r["short"],
        }
        for r in report["staffing_daily"]
    ]
    ticket_method = report["staffing_daily"][0]["method"] if report["staffing_daily"] else None
    tz_name = report["timezone"]
    period = report["period"]
    env_deps = data.people(db, v.portal)[1]
    chart = {
        "history": report["history"],
        "forecast": report["forecast"],
        "i18n": {"actual": ct("actual", lang), "forecast": ct("forecast", lang), "interval": ct("interval", lang)},
    }
    token = g.viewer_token
    inst = get_installation(db, v.portal)
    return data.with_stale_header(
        render_template(
            "reports/capacity.html",
            viewer=v,
            lang=lang,
            token=token,
            active="capacity",
            t=lambda k: t(k, lang),
            ct=lambda k, **kw: ct(k, lang, **kw),
            bx24_js=bx24_script(inst),
            nav={
                "dashboard": url_for("reports.dashboard", t=token),
                "settings": url_for("reports.settings", t=token),
                "saved": url_for("reports.saved_list", t=token),
                "capacity": url_for("reports.capacity_page", t=token),
            },
            report=report,
            cards=cards,
            heat_arrivals=_heat(report, "created_per_hour", lang),
            heat_agents=_heat(report, "agents_active", lang),
            staff=_staff_grid(report, lang),
            gaps=[g_["text"][lang] for g_ in s["gaps"]],
            daily_rows=daily_rows,
            ticket_method=ticket_method,
            aht_min=_num(aht / 60, lang),
            target_min=_num(report["staffing"][0]["target_answer_s"] / 60, lang) if report["staffing"] else "",
            share_pct=_num((report["staffing"][0]["target_share"] * 100) if report["staffing"] else 0, lang),
            ticket_aht_min=_num((s["ticket_aht_s"] or 0) / 60, lang),
            occ=_num(capacity_settings(cfg)["occupancy"] * 100, lang),
            norm_hi=hi,
            tz_name=tz_name,
            period_label=f"{period['from'][:10]} — {period['to'][:10]}",
            forecast_rows=report["forecast"],
            chart=chart,
            q={
                "from": (date_from or period["from"][:10]),
                "to": (date_to or period["to"][:10]),
                "weeks_ahead": weeks,
                "source": source or "",
                "department": department or "",
            },
            source_opts=source_options(db, v.portal, cfg, lang),
            dept_opts=department_options(v, env_deps),
            can_all_departments=v.role == ADMIN,
        )
    )
