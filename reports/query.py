"""The query string shared by the dashboard, ``GET /api/kpi``, the drilldown and the exports.

Same parameters as ``flask kpi``: ``from``, ``to`` (``YYYY-MM-DD`` = local midnight, or ISO with
offset), ``group_by`` and the filters ``source``, ``department``, ``agent``, ``priority``,
``type``. Bad values are a 400 with a message naming the parameter (``code`` names the message
the pages show in the viewer's language, b24desk/text/i18n.py ``err_<code>``).

Also ``preset`` (b24desk/kpi/presets.py; it wins over ``from``/``to``) and ``compare``
(``previous`` or ``last_year``). The API keeps kpi.md's half-open ``[from, to)``; the dashboard
parses with ``inclusive=True``: its ``to`` is the last day shown (``to=2026-10-15`` includes the
15th), turned into the half-open end here, so one day is ``from = to``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from b24desk.kpi.periods import last_full_month, make_period, zone
from b24desk.kpi.presets import COMPARE, PRESETS, resolve_preset
from b24desk.model import PRIORITIES
from b24desk.viewer import FILTER_KEYS, GROUP_DIMS, ViewerError

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ID = re.compile(r"^[A-Za-z0-9_:=.,\-]{1,100}$")
MIN_TS, MAX_TS = 946684800, 4102444800  # 2000-01-01 .. 2100-01-01 UTC: what a service desk reports on


@dataclass
class Query:
    date_from: str  # as given, or the default period's local dates
    date_to: str
    filters: dict = field(default_factory=dict)
    group_by: str | None = None
    tz: str = "UTC"
    preset: str | None = None
    compare: str | None = None  # None = "previous"

    def params(self, **extra) -> dict:
        """The query as URL parameters of the API (half-open; empty filters dropped), plus ``extra``."""
        out = {"from": self.date_from, "to": self.date_to}
        if self.compare:
            out["compare"] = self.compare
        out.update({k: v for k, v in self.filters.items() if v not in (None, "", [])})
        if self.group_by:
            out["group_by"] = self.group_by
        out.update({k: v for k, v in extra.items() if v not in (None, "")})
        return out


def default_period(tz_name: str, now: float | None = None) -> tuple[str, str]:
    p = last_full_month(int(now if now is not None else time.time()), zone(tz_name))
    return p.local(p.start).date().isoformat(), p.local(p.end).date().isoformat()


def _period_error(message: str, hint: str, field: str | None = None) -> ViewerError:
    """A refused period: code ``bad_period`` (the API's), the page's message in words (``hint``,
    a key of b24desk/text/i18n.py) and the field to fix."""
    err = ViewerError(400, "bad_period", message)
    err.hint, err.field = hint, field
    return err


def last_day(date_to: str) -> str:
    """The inclusive last day of a half-open end given as a date (``2026-11-01`` -> ``2026-10-31``)."""
    if _DATE.match(date_to or ""):
        return (date.fromisoformat(date_to) - timedelta(days=1)).isoformat()
    return date_to


def parse(args, tz_name: str, *, allow_group: bool = True, now: float | None = None, inclusive: bool = False) -> Query:
    """Read and check the query; missing dates give the last full calendar month (kpi.md s.2)."""
    tz_name = tz_name or "UTC"
    date_from, date_to = (args.get("from") or "").strip(), (args.get("to") or "").strip()
    preset = (args.get("preset") or "").strip() or None
    compare = (args.get("compare") or "").strip() or None
    if compare == "previous":
        compare = None
    if compare is not None and compare not in COMPARE:
        raise ViewerError(400, "bad_compare", f"compare must be one of {', '.join(COMPARE)}")
    if preset is not None:
        if preset not in PRESETS:
            raise ViewerError(400, "bad_preset", f"preset must be one of {', '.join(PRESETS)}")
        tz = zone(tz_name)
        moment = datetime.fromtimestamp(now if now is not None else time.time(), tz)
        a, b = resolve_preset(preset, moment, tz)
        date_from, date_to = a.date().isoformat(), b.date().isoformat()
    elif bool(date_from) != bool(date_to):
        raise _period_error("give both 'from' and 'to', or neither", "err_bad_period_half")
    elif not date_from:
        date_from, date_to = default_period(tz_name, now)
    elif inclusive:
        if not (_DATE.match(date_from) and _DATE.match(date_to)):
            raise _period_error("dates must be YYYY-MM-DD", "err_bad_date", "from")
        try:
            first, last = date.fromisoformat(date_from), date.fromisoformat(date_to)
        except ValueError:
            raise _period_error("dates must be YYYY-MM-DD", "err_bad_date", "from") from None
        if last < first:
            raise _period_error("'to' is before 'from'", "err_bad_period_order", "to")
        try:
            date_to = (last + timedelta(days=1)).isoformat()
        except OverflowError:  # 9999-12-31
            raise _period_error("dates must lie between 2000-01-01 and 2100-01-01", "err_bad_date_range") from None
    if len(date_from) > 40 or len(date_to) > 40 or not (date_from + date_to).isascii():
        raise _period_error("'from' and 'to' are dates such as 2026-10-01", "err_bad_date", "from")
    try:
        p = make_period(date_from, date_to, zone(tz_name))
    except (ValueError, OverflowError, OSError) as exc:  # year 1 / 9999 overflow once zoned
        hint = "err_bad_period_order" if "empty" in str(exc) else "err_bad_date"
        raise _period_error(str(exc) or "'from' and 'to' are dates such as 2026-10-01", hint) from None
    if p.start < MIN_TS or p.end > MAX_TS:
        raise _period_error("dates must lie between 2000-01-01 and 2100-01-01", "err_bad_date_range")
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
    return Query(date_from, date_to, filters, group_by, tz_name, preset, compare)


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
