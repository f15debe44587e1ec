"""Users, departments and the portal's clock and calendar, into the store.

- ``user.get`` -> ``users`` (DOCS api-reference/user/user-get.md; bots are never listed there, so
  ``is_bot`` comes from the config's ``bot_users``);
- ``department.get`` -> ``departments`` (DOCS api-reference/departments/department-get.md);
- ``server.time`` -> settings ``portal_utc_offset`` (seconds) and ``clock_skew`` (portal minus our
  clock, used to place incremental cursors on the portal's clock);
- the portal's time zone (setting ``portal_timezone``) from a portal-wide source: the offset of
  ``server.time`` (DOCS api-reference/common/system/server-time.md; api-reference/data-types.md:
  "at the API level all dates and times are stored according to the server parameters"). A
  zone name with daylight-saving rules is taken from ``calendar.user.settings.get``
  (api-reference/calendar/calendar-user-settings-get.md) or the configured ``[calendar] timezone``
  only when it agrees with that offset now: the first gives one user's personal setting, never
  the portal's by itself. Otherwise the fixed zone of the offset (``Etc/GMT-3`` for +03:00). An
  admin's ``[calendar] timezone`` in the portal's settings overrides both (``kpi.load.portal_timezone``);
- ``calendar.settings.get`` -> setting ``portal_calendar`` (work hours, holidays; DOCS
  api-reference/calendar/calendar-settings-get.md).

Everything here is optional for a sync: a portal that refuses a method (scope, plan, a webhook
without the right) is logged and skipped.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .kpi.calendar import save_portal_calendar
from .model import parse_time
from .store import set_setting

log = logging.getLogger(__name__)
DEFAULT_ZONE = "Europe/Moscow"  # the product's default (kpi.calendar DEFAULTS)


def _user_row(portal: str, u: dict, bots: set[str]) -> dict:
    uid = str(u.get("ID"))
    deps = u.get("UF_DEPARTMENT") or []
    if not isinstance(deps, list):
        deps = [deps]
    active = u.get("ACTIVE")
    return {
        "portal": portal,
        "id": uid,
        "name": u.get("NAME") or "",
        "last_name": u.get("LAST_NAME") or "",
        "email": u.get("EMAIL") or "",
        "active": None if active is None else int(active in (True, "Y", "true", 1, "1")),
        "departments": json.dumps([str(d) for d in deps]),
        "user_type": u.get("USER_TYPE"),
        "is_bot": int(uid in bots),
        "is_admin": None,
    }


def _department_row(portal: str, d: dict) -> dict:
    try:
        sort = int(d.get("SORT")) if d.get("SORT") not in (None, "") else None
    except (TypeError, ValueError):
        sort = None
    head = d.get("UF_HEAD")
    return {
        "portal": portal,
        "id": str(d.get("ID")),
        "name": d.get("NAME") or "",
        "parent": None if d.get("PARENT") in (None, "", "0", 0) else str(d.get("PARENT")),
        "head": None if head in (None, "", "0", 0) else str(head),
        "sort": sort,
    }


def server_offset(value: str) -> int | None:
    """``2024-08-05T09:02:13+03:00`` -> 10800 (DOCS api-reference/common/system/server-time.md)."""
    try:
        off = datetime.fromisoformat(str(value).replace("Z", "+00:00")).utcoffset()
    except ValueError:
        return None
    return int(off.total_seconds()) if off is not None else None


def portal_zone_name(offset: int | None, names, at: int | None) -> str | None:
    """The portal's time zone from the server's UTC offset (seconds, ``server.time``): the first of
    ``names`` (the user's calendar zone, the configured one) that has that very offset at ``at`` --
    a name keeps daylight saving -- else the fixed ``Etc/GMT`` zone of a whole-hour offset; None
    when the offset is unknown, or fractional with no agreeing name."""
    if offset is None:
        return None
    for name in names:
        if not name:
            continue
        try:
            off = datetime.fromtimestamp(at or time.time(), ZoneInfo(str(name))).utcoffset()
        except (ValueError, ZoneInfoNotFoundError):
            continue
        if off is not None and int(off.total_seconds()) == offset:
            return str(name)
    if offset % 3600 == 0 and abs(offset) <= 14 * 3600:
        hours = offset // 3600
        return "Etc/UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"  # POSIX signs: Etc/GMT-3 is UTC+3
    return None


def sync_directory(client, db, portal: str, config: dict | None = None, now=time.time) -> dict:
    """Refresh users, departments, clock and calendar of ``portal``; returns what was stored."""
    bots = {str(b) for b in (config or {}).get("bot_users") or []}
    summary: dict = {"users": 0, "departments": 0}
    try:
        users = [
            _user_row(portal, u, bots)
            for u in client.list_paged("user.get", {"sort": "ID", "order": "ASC"})
            if u.get("ID") is not None
        ]
        with db.atomic():
            db["users"].upsert_all(users, pk=("portal", "id"))
        summary["users"] = len(users)
    except Exception as exc:
        log.warning("user.get: %s (users not refreshed)", exc)
    try:
        deps = [_department_row(portal, d) for d in client.list_paged("department.get", {}) if d.get("ID") is not None]
        with db.atomic():
            db["departments"].upsert_all(deps, pk=("portal", "id"))
        summary["departments"] = len(deps)
    except Exception as exc:
        log.warning("department.get: %s (departments not refreshed)", exc)
    try:
        sent = now()
        res = client.batch(
            {
                "time": ("server.time", {}),
                "calendar": ("calendar.settings.get", {}),
                "usercal": ("calendar.user.settings.get", {}),
            }
        )
        got = now()
        with db.atomic():
            server = res.results.get("time")
            if server and "time" not in res.errors:
                off = server_offset(server)
                ts = parse_time(server)
                if off is not None:
                    set_setting(db, portal, "portal_utc_offset", off)
                    summary["portal_utc_offset"] = off
                if ts is not None:
                    skew = int(round(ts - (sent + got) / 2))
                    set_setting(db, portal, "clock_skew", skew)
                    summary["clock_skew"] = skew
            cal = res.results.get("calendar")
            if isinstance(cal, dict) and "calendar" not in res.errors:
                try:  # validated first: a malformed answer never replaces a good stored calendar
                    save_portal_calendar(db, portal, cal)
                    summary["portal_calendar"] = True
                except ValueError as exc:
                    log.warning("calendar.settings.get of %s not used: %s", portal, exc)
            ucal = res.results.get("usercal") if "usercal" not in res.errors else None
            off = server_offset(server) if server and "time" not in res.errors else None
            names = [
                ucal.get("timezoneName") if isinstance(ucal, dict) else None,
                ((config or {}).get("calendar") or {}).get("timezone"),
                DEFAULT_ZONE,
            ]
            tz = portal_zone_name(off, names, parse_time(server) if off is not None else None)
            if tz:
                set_setting(db, portal, "portal_timezone", tz)
                summary["portal_timezone"] = tz
            for name, err in res.errors.items():
                log.info("%s: %s (skipped)", err.method or name, err)
            set_setting(db, portal, "directory_synced_at", int(now()))
    except Exception as exc:
        log.warning("server.time / calendar: %s (clock and calendar not refreshed)", exc)
    return summary
