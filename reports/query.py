"""The query string shared by the dashboard, ``GET /api/kpi``, the drilldown and the exports.

Same parameters as ``flask kpi``: ``from``, ``to`` (``YYYY-MM-DD`` = local midnight, or ISO with
offset), ``group_by`` and the filters ``source``, ``department``, ``agent``, ``priority``,
``type``. Bad values are a 400 with a message naming the parameter.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from b24desk.kpi.periods import last_full_month, make_period, zone
from b24desk.model import PRIORITIES
from b24desk.viewer import FILTER_KEYS, GROUP_DIMS, ViewerError

_ID = re.compile(r"^[A-Za-z0-9_:=.,\-]{1,100}$")
MIN_TS, MAX_TS = 946684800, 4102444800      # 2000-01-01 .. 2100-01-01 UTC: what a service desk reports on


@dataclass
class Query:
    date_from: str                       # as given, or the default period's local dates
    date_to: str
    filters: dict = field(default_factory=dict)
    group_by: str | None = None
    tz: str = "UTC"

    def params(self, **extra) -> dict:
        """The query as URL parameters (empty filters dropped), plus ``extra``."""
        out = {"from": self.date_from, "to": self.date_to}
        out.update({k: v for k, v in self.filters.items() if v not in (None, "", [])})
        if self.group_by:
            out["group_by"] = self.group_by
        out.update({k: v for k, v in extra.items() if v not in (None, "")})
        return out


def default_period(tz_name: str, now: float | None = None) -> tuple[str, str]:
    p = last_full_month(int(now if now is not None else time.time()), zone(tz_name))
    return p.local(p.start).date().isoformat(), p.local(p.end).date().isoformat()


def parse(args, tz_name: str, *, allow_group: bool = True, now: float | None = None) -> Query:
    """Read and check the query; missing dates give the last full calendar month (kpi.md s.2)."""
    tz_name = tz_name or "UTC"
    date_from, date_to = (args.get("from") or "").strip(), (args.get("to") or "").strip()
    if bool(date_from) != bool(date_to):
        raise ViewerError(400, "bad_period", "give both 'from' and 'to', or neither")
    if not date_from:
        date_from, date_to = default_period(tz_name, now)
    if len(date_from) > 40 or len(date_to) > 40 or not (date_from + date_to).isascii():
        raise ViewerError(400, "bad_period", "'from' and 'to' are dates such as 2026-10-01")
    try:
        p = make_period(date_from, date_to, zone(tz_name))
    except (ValueError, OverflowError, OSError) as exc:   # year 1 / 9999 overflow once zoned
        raise ViewerError(400, "bad_period", str(exc) or "'from' and 'to' are dates such as 2026-10-01") from None
    if p.start < MIN_TS or p.end > MAX_TS:
        raise ViewerError(400, "bad_period", "dates must lie between 2000-01-01 and 2100-01-01")
    filters = {}
    for k in FILTER_KEYS:
        getlist = getattr(args, "getlist", None)
        raw = getlist(k) if getlist else [args.get(k)]
        vals = []
        for v in raw:
            v = (v or "").strip()
            if not v:
                continue
            if not _ID.match(v):
                raise ViewerError(400, "bad_filter", f"{k}: unexpected characters")
            if k == "priority" and v not in PRIORITIES:
                raise ViewerError(400, "bad_filter", f"priority must be one of {', '.join(PRIORITIES)}")
            vals.append(v)
        vals = sorted(set(vals))
        filters[k] = None if not vals else vals[0] if len(vals) == 1 else vals
    group_by = (args.get("group_by") or "").strip() or None
    if group_by and (not allow_group or group_by not in GROUP_DIMS):
        raise ViewerError(400, "bad_group_by", f"group_by must be one of {', '.join(GROUP_DIMS)}")
    return Query(date_from, date_to, filters, group_by, tz_name)


def period_bounds(q: Query) -> tuple[int, int]:
    p = make_period(q.date_from, q.date_to, zone(q.tz))
    return p.start, p.end


def weeks(start: int, end: int, tz_name: str, limit: int = 26) -> list[tuple[int, int]]:
    """ISO weeks (Monday 00:00 local) overlapping ``[start, end)``, clipped to it; at most ``limit``
    (the last ones), so a year-long period still draws a readable trend."""
    tz = zone(tz_name)
    d = datetime.fromtimestamp(start, tz).date()
    monday = d - timedelta(days=d.isoweekday() - 1)
    out = []
    while True:
        a = int(datetime(monday.year, monday.month, monday.day, tzinfo=tz).timestamp())
        nxt = monday + timedelta(days=7)
        b = int(datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp())
        if a >= end:
            break
        out.append((max(a, start), min(b, end)))
        monday = nxt
    return out[-limit:]
