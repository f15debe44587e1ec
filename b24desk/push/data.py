"""Report kinds: what a daily, weekly or monthly digest contains, for a portal or a department.

A digest is data, not text (rendering is ``render.py``): the period, the scope, the
KPI engine's report (``b24desk.kpi.report.build_report``, never a second engine), and what a
head reads first -- the scorecard (traffic lights, deltas against the previous period), the
worst KPIs (furthest from their targets) and the agents with the most red lights.

Also here, because pushes and the admin settings share them: period labels (``2026-10-05``,
``2026-W41``, ``2026-10``, in the portal's time zone; shared/spec/interfaces.md), when each kind
is due, and the ``push`` setting (schedules, channels, recipients) with its validation.
"""

from __future__ import annotations

import copy
import re
from datetime import date, datetime, timedelta
from datetime import time as dtime

from .. import saved_reports
from ..kpi.engine import DURATION_KPIS
from ..kpi.periods import Period
from ..kpi.report import ReportEnv, build_report
from ..kpi.targets import comparable
from ..store import get_setting

KINDS = ("daily", "weekly", "monthly")
CHANNELS = ("notify", "chat", "feed", "disk")
PUSH_SETTING = "push"

# The scorecard: the counts a head reads first, then every KPI that has a target.
HEADLINE = ("tickets_total", "resolved_count", "backlog", "overdue_count")
WORST_N = 3

_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


# --- periods ---------------------------------------------------------------------------------------


def _midnight(d: date, tz) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp())


def _span(kind: str, first: date, tz) -> Period:
    if kind == "daily":
        last = first + timedelta(days=1)
    elif kind == "weekly":
        last = first + timedelta(days=7)
    else:
        last = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return Period(_midnight(first, tz), _midnight(last, tz), tz)


def parse_period(kind: str, text: str, tz) -> Period:
    """``YYYY-MM-DD`` (daily), ``YYYY-Www`` (weekly, ISO week), ``YYYY-MM`` (monthly) -> Period."""
    if kind not in KINDS:
        raise ValueError(f"unknown report {kind!r} (one of {', '.join(KINDS)})")
    s = str(text or "").strip()
    want = {"daily": "YYYY-MM-DD", "weekly": "YYYY-Www (an ISO week, e.g. 2026-W41)", "monthly": "YYYY-MM"}[kind]
    pattern = {"daily": _DAY, "weekly": _WEEK, "monthly": _MONTH}[kind]
    m = pattern.match(s)
    if not m:
        raise ValueError(f"--period {s!r} does not fit a {kind} report: use {want}")
    try:
        if kind == "daily":
            first = date(int(m[1]), int(m[2]), int(m[3]))
        elif kind == "weekly":
            first = date.fromisocalendar(int(m[1]), int(m[2]), 1)
        else:
            first = date(int(m[1]), int(m[2]), 1)
    except ValueError as exc:
        raise ValueError(f"--period {s!r} is not a real {kind[:-2] if kind != 'daily' else 'day'}: {exc}") from None
    return _span(kind, first, tz)


def last_complete(kind: str, now: int, tz) -> Period:
    """The latest period of ``kind`` that has ended by ``now``: yesterday, last ISO week, last month."""
    today = datetime.fromtimestamp(now, tz).date()
    if kind == "daily":
        return _span(kind, today - timedelta(days=1), tz)
    if kind == "weekly":
        monday = today - timedelta(days=today.isoweekday() - 1)
        return _span(kind, monday - timedelta(days=7), tz)
    first = today.replace(day=1)
    return _span(kind, (first - timedelta(days=1)).replace(day=1), tz)


def due_at(kind: str, period: Period, schedule: dict) -> int:
    """When the digest of ``period`` is due: at ``time`` on the day the period ends (daily), on
    ``weekday`` (1 = Monday) of the following week, on ``day`` of the following month."""
    end = datetime.fromtimestamp(period.end, period.tz).date()
    hh, mm = (int(x) for x in str(schedule.get("time") or "09:00").split(":"))
    if kind == "weekly":
        end = end + timedelta(days=int(schedule.get("weekday") or 1) - 1)
    elif kind == "monthly":
        end = end.replace(day=min(int(schedule.get("day") or 1), 28))
    return int(datetime.combine(end, dtime(hh, mm), tzinfo=period.tz).timestamp())


# --- the push setting --------------------------------------------------------------------------------

DEFAULT_PUSH = {
    "enabled": True,
    "lang": None,  # None: the installation's language, else ru
    "reports": {
        "daily": {"enabled": False, "time": "09:00"},
        "weekly": {"enabled": True, "weekday": 1, "time": "09:00"},
        "monthly": {"enabled": True, "day": 1, "time": "09:00"},
    },
    "channels": ["notify"],  # what scheduled runs send; `flask push --channel` picks one
    "departments": "all",  # per-department digests: "all" (every department with a head) or ids
    "portal_recipients": [],  # who gets the portal-wide notification; [] = the installing admin
    "chat": {"dialog_id": None, "title": None},  # a chosen chat ("chat12"), else one the app creates
    "feed": {"portal": False},  # department posts go to DR<id>; True also posts the portal digest to all
    "dashboard_url": None,  # link target; default: the portal's app page
    "alerts": {
        "enabled": True,
        "window_days": 7,
        "levels": ["portal", "department", "agent"],
        "kpis": None,
        "every_minutes": 15,  # checked after a sync, at most this often
        "recipients": [],
    },  # portal-wide alerts, and those with no head; [] = portal_recipients
}
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def validate_push(value) -> dict:
    """Check a ``push`` setting (a partial one is fine) and say which field is wrong."""
    if not isinstance(value, dict):
        raise ValueError("push settings must be an object")
    unknown = set(value) - set(DEFAULT_PUSH)
    if unknown:
        raise ValueError(f"push: unknown field {sorted(unknown)[0]!r}")
    for kind, sched in (value.get("reports") or {}).items():
        if kind not in KINDS or not isinstance(sched, dict):
            raise ValueError(f"push.reports.{kind}: a table for one of {', '.join(KINDS)}")
        if "time" in sched and not _TIME.match(str(sched["time"])):
            raise ValueError(f"push.reports.{kind}.time must be HH:MM")
        if "weekday" in sched and sched["weekday"] not in range(1, 8):
            raise ValueError(f"push.reports.{kind}.weekday must be 1 (Monday) .. 7")
        if "day" in sched and sched["day"] not in range(1, 29):
            raise ValueError(f"push.reports.{kind}.day must be 1 .. 28")
    chans = value.get("channels")
    if chans is not None and (not isinstance(chans, list) or set(chans) - set(CHANNELS)):
        raise ValueError(f"push.channels: a list of {', '.join(CHANNELS)}")
    deps = value.get("departments")
    if deps is not None and deps != "all" and not (isinstance(deps, list) and all(str(d).isdigit() for d in deps)):
        raise ValueError('push.departments: "all" or a list of department ids')
    recips = value.get("portal_recipients")
    if recips is not None and not (isinstance(recips, list) and all(str(u).isdigit() for u in recips)):
        raise ValueError("push.portal_recipients: a list of user ids")
    dialog = (value.get("chat") or {}).get("dialog_id")
    if dialog not in (None, "") and not re.match(r"^(chat\d+|\d+)$", str(dialog)):
        raise ValueError("push.chat.dialog_id: chatNNN (a chat) or a user id")
    if value.get("lang") not in (None, "ru", "en"):
        raise ValueError("push.lang: ru or en")
    alerts = value.get("alerts") or {}
    if "window_days" in alerts and (not isinstance(alerts["window_days"], int) or not 1 <= alerts["window_days"] <= 92):
        raise ValueError("push.alerts.window_days must be 1 .. 92")
    if "every_minutes" in alerts and (not isinstance(alerts["every_minutes"], int) or alerts["every_minutes"] < 0):
        raise ValueError("push.alerts.every_minutes must be a whole number >= 0")
    arecips = alerts.get("recipients")
    if arecips is not None and not (isinstance(arecips, list) and all(str(u).isdigit() for u in arecips)):
        raise ValueError("push.alerts.recipients: a list of user ids")
    if set(alerts.get("levels") or []) - {"portal", "department", "agent"}:
        raise ValueError("push.alerts.levels: portal, department, agent")
    return value


def push_settings(db, portal: str) -> dict:
    """The effective push setting of ``portal``: defaults with the admin's choices on top."""
    stored = get_setting(db, portal, PUSH_SETTING) or {}
    return _merge(DEFAULT_PUSH, stored if isinstance(stored, dict) else {})


# --- recipients ------------------------------------------------------------------------------------------


def departments(db, portal: str) -> dict:
    """id -> {name, parent, head} from the synced directory."""
    if "departments" not in db.table_names():
        return {}
    return {
        str(r["id"]): {
            "name": r["name"] or str(r["id"]),
            "parent": r["parent"] or None,
            "head": str(r["head"]) if r["head"] not in (None, "", "0") else None,
        }
        for r in db.query("select id, name, parent, head from departments where portal = ?", [portal])
    }


def head_of(deps: dict, dep: str | None) -> str | None:
    """The head of ``dep``, else of its nearest parent that has one."""
    seen = set()
    while dep and dep not in seen:
        seen.add(dep)
        d = deps.get(str(dep))
        if d is None:
            return None
        if d["head"]:
            return d["head"]
        dep = d["parent"]
    return None


def digest_departments(db, portal: str, settings: dict) -> list[str]:
    """The departments that get their own digest: the configured ids, or every department with a
    head except the root (the whole company: its digest would repeat the portal's)."""
    deps = departments(db, portal)
    chosen = settings.get("departments", "all")
    if chosen == "all":
        return sorted(
            (d for d, v in deps.items() if v["head"] and v["parent"] not in (None, "", "0")), key=lambda d: (len(d), d)
        )
    return [str(d) for d in chosen if str(d) in deps]


# --- the digest -------------------------------------------------------------------------------------------


def miss(entry: dict, direction: str | None) -> float | None:
    """How far a KPI is from its target, relative to the target (0 = on target, 0.5 = 50 % off)."""
    value, target = comparable("", entry.get("value")), entry.get("target")
    if value is None or target in (None, 0):
        return None
    off = (value - target) if direction == "lower" else (target - value)
    return max(off, 0) / abs(target)


def _item(key: str, entry: dict, direction: str | None) -> dict:
    return {
        "key": key,
        "value": entry.get("value"),
        "previous": entry.get("previous"),
        "delta": entry.get("delta"),
        "target": entry.get("target"),
        "status": entry.get("status") or "grey",
        "n": entry.get("n"),
        "direction": direction,
        "duration": key in DURATION_KPIS,
    }


def scorecard(report: dict, directions: dict) -> list[dict]:
    kpis = report.get("kpis") or {}
    keys = [k for k in HEADLINE if k in kpis]
    keys += [k for k in kpis if k not in keys and (kpis[k] or {}).get("target") is not None]
    return [_item(k, kpis[k], directions.get(k)) for k in keys]


def worst(card: list[dict], n: int = WORST_N) -> list[dict]:
    """Red before yellow, then the furthest from target."""
    bad = [c for c in card if c["status"] in ("red", "yellow")]
    bad.sort(key=lambda c: (c["status"] != "red", -(miss(c, c["direction"]) or 0), c["key"]))
    return bad[:n]


def worst_agents(report: dict, n: int = WORST_N) -> list[dict]:
    """Agents of a ``group_by="agent"`` report with the most red lights (at least one)."""
    out = []
    for g in report.get("groups") or []:
        if g.get("key") is None:
            continue
        reds = sorted(k for k, e in (g.get("kpis") or {}).items() if (e or {}).get("status") == "red")
        if reds:
            out.append({"id": g["key"], "name": g.get("label") or str(g["key"]), "red": reds})
    out.sort(key=lambda a: (-len(a["red"]), a["name"]))
    return out[:n]


def build_digest(
    env: ReportEnv, kind: str, period: Period, *, department: str | None = None, dept_info: dict | None = None
) -> dict:
    """The digest of ``period`` for the portal, or for ``department`` (with its sub-departments).

    ``report`` is exactly what ``flask kpi --group-by agent`` gives for the same period and scope,
    so the XLSX attached to a push holds the same numbers as the command line."""
    filters = {"department": department} if department else None
    report = build_report(env.db, env.portal, period.start, period.end, filters=filters, group_by="agent", env=env)
    targets = env.targets_for(department=department)
    directions = {k: v.get("direction") for k, v in targets.items()}
    card = scorecard(report, directions)
    scope = (
        {
            "level": "department",
            "id": department,
            "name": (dept_info or {}).get("name") or department,
            "head": (dept_info or {}).get("head"),
        }
        if department
        else {"level": "portal", "id": None, "name": None, "head": None}
    )
    # saved reports an admin or head added to this kind of digest ride with the portal's digest
    saved = [] if department else saved_reports.digest_sections(env, kind, period)
    out = {
        "kind": kind,
        "period": period.label,
        "from": period.iso(period.start),
        "to": period.iso(period.end),
        "previous": report.get("previous"),
        "timezone": env.tz_name,
        "scope": scope,
        "report": report,
        "scorecard": card,
        "worst": worst(card),
        "worst_agents": worst_agents(report),
        "saved": saved,
    }
    if kind == "monthly":  # the load forecast's warning, when it passes the norm (b24desk.capacity)
        from ..capacity.digest import capacity_note

        out["capacity"] = capacity_note(env, period.end) if department is None else None
    return out


def is_empty(d: dict) -> bool:
    """Nothing happened in the scope in either period: no digest is worth sending."""
    k = d["report"].get("kpis") or {}
    vals = [
        (k.get(x) or {}).get(f) for x in ("tickets_total", "resolved_count", "backlog") for f in ("value", "previous")
    ]
    return not any(v for v in vals if isinstance(v, (int, float)))
