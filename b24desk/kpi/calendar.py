"""The work calendar: business seconds between two instants and SLA deadlines in business time.

Business time is the part of an interval that falls inside the working hours of working days in
the portal's time zone (kpi.md section 3, "Business hours"). Working days come from the config's
``[calendar]`` (ISO weekdays, extra holidays / workdays), the country's production calendar from the
``holidays`` package (for Russia it carries the government's day transfers, so a Saturday made a
workday counts), and the portal's own ``calendar.settings.get`` where it was read.

Each day is turned once into its working window in UTC and a running total of business seconds,
so a duration is two binary searches however long it is (a ticket open for years costs the same).
"""

from __future__ import annotations

import json
import re
import threading
from bisect import bisect_left, bisect_right
from datetime import date, datetime, time, timedelta
from functools import lru_cache

import holidays as holidays_lib

from .periods import zone

WEEKDAY_CODES = {"MO": 1, "TU": 2, "WE": 3, "TH": 4, "FR": 5, "SA": 6, "SU": 7}

# The settings key where the sync stores the raw result of calendar.settings.get.
PORTAL_CALENDAR_SETTING = "portal_calendar"

DEFAULTS = {
    "timezone": "Europe/Moscow",
    "work_days": [1, 2, 3, 4, 5],
    "work_start": "09:00",
    "work_end": "18:00",
    "holidays_country": "RU",
    "extra_holidays": [],
    "extra_workdays": [],
    "use_portal_calendar": True,
}


class WorkCalendar:
    """Working days and hours in one time zone; all methods take and return unix seconds."""

    def __init__(
        self,
        tz="Europe/Moscow",
        work_days=(1, 2, 3, 4, 5),
        work_start="09:00",
        work_end="18:00",
        holidays_country: str | None = "RU",
        extra_holidays=(),
        extra_workdays=(),
        recurring_holidays=(),
        recurring_workdays=(),
    ):
        self.tz = zone(tz) if isinstance(tz, str) else tz
        self.tz_name = getattr(self.tz, "key", str(self.tz))
        days = set()
        for d in work_days:
            if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= 7:
                raise ValueError(f"calendar work_days must be ISO weekdays 1..7, got {d!r}")
            days.add(d)
        if not days and not extra_workdays and not recurring_workdays:
            raise ValueError("calendar has no working days")
        self.work_days = frozenset(days)
        self.work_start = _clock(work_start, "work_start")  # minutes after local midnight
        self.work_end = _clock(work_end, "work_end")
        if self.work_end <= self.work_start:
            raise ValueError("calendar work_end must be after work_start")
        self.extra_holidays = frozenset(_day(d, "extra_holidays") for d in extra_holidays)
        self.extra_workdays = frozenset(_day(d, "extra_workdays") for d in extra_workdays)
        self.recurring_holidays = frozenset(_month_day(d) for d in recurring_holidays)
        self.recurring_workdays = frozenset(_month_day(d) for d in recurring_workdays)
        self.country = None
        if holidays_country:
            try:
                self.country = holidays_lib.country_holidays(str(holidays_country))
            except NotImplementedError:
                raise ValueError(f"unknown holidays_country: {holidays_country!r}") from None
        # Day table (base ordinal, local midnights, window starts, window lengths, business
        # seconds before each day), replaced whole under a lock and read as one snapshot, so a
        # calendar can be shared by threads (build_calendar caches them).
        self._table = None
        self._lock = threading.Lock()

    # --- days ----------------------------------------------------------------------------------
    def is_working_day(self, d: date) -> bool:
        if d in self.extra_workdays or (d.month, d.day) in self.recurring_workdays:
            return True
        if d in self.extra_holidays or (d.month, d.day) in self.recurring_holidays:
            return False
        if self.country is not None:
            is_holiday = d in self.country  # also populates that year
            if d in getattr(self.country, "weekend_workdays", ()):
                return True
            if is_holiday:
                return False
        return d.isoweekday() in self.work_days

    def _snapshot(self, *stamps: int) -> tuple:
        """A day table covering every one of ``stamps``."""
        tab = self._table
        if tab is not None and all(tab[1][0] <= ts < tab[1][-1] for ts in stamps):
            return tab
        with self._lock:
            for ts in stamps:
                self._extend(ts)
            return self._table

    def _extend(self, ts: int) -> None:
        """Grow the table (under the lock) to cover the local day of ``ts``, with a margin."""
        tab = self._table
        if tab is not None and tab[1][0] <= ts < tab[1][-1]:
            return
        d = datetime.fromtimestamp(ts, self.tz).date()
        if tab is None:
            self._build(d - timedelta(days=400), d + timedelta(days=400))
            return
        first = date.fromordinal(tab[0])
        last = first + timedelta(days=len(tab[2]) - 1)
        if d < first:
            self._build(d - timedelta(days=max(400, (last - d).days)), last)
        elif d > last:
            self._build(first, d + timedelta(days=max(400, (d - first).days)))

    def _build(self, first: date, last: date) -> None:
        mids, starts, lens, cum = [], [], [], [0]
        d = first
        while d <= last + timedelta(days=1):  # one extra midnight closes the last day
            mids.append(int(datetime(d.year, d.month, d.day, tzinfo=self.tz).timestamp()))
            if d <= last:
                if self.is_working_day(d):
                    wall = datetime(d.year, d.month, d.day, tzinfo=self.tz)  # wall-clock arithmetic
                    s = int((wall + timedelta(minutes=self.work_start)).timestamp())
                    e = int((wall + timedelta(minutes=self.work_end)).timestamp())
                else:
                    s = e = mids[-1]
                starts.append(s)
                lens.append(e - s)
                cum.append(cum[-1] + e - s)
            d += timedelta(days=1)
        self._table = (first.toordinal(), mids, starts, lens, cum)

    @staticmethod
    def _position(tab: tuple, ts: int) -> int:
        """Business seconds from the start of the table ``tab`` to ``ts``."""
        _, mids, starts, lens, cum = tab
        i = bisect_right(mids, ts) - 1
        into = ts - starts[i]
        return cum[i] + (0 if into <= 0 else (into if into < lens[i] else lens[i]))

    # --- public --------------------------------------------------------------------------------
    def business_seconds(self, a: int, b: int) -> int:
        """Working seconds in ``[a, b)``; negative if ``b < a`` (never happens for sane logs)."""
        if b < a:
            return -self.business_seconds(b, a)
        tab = self._table
        if tab is None or a < tab[1][0] or b >= tab[1][-1]:
            tab = self._snapshot(a, b)
        _, mids, starts, lens, cum = tab  # _position inlined twice: the hot path
        i = bisect_right(mids, a) - 1
        into = a - starts[i]
        pa = cum[i] + (0 if into <= 0 else (into if into < lens[i] else lens[i]))
        j = bisect_right(mids, b, i) - 1
        into = b - starts[j]
        return cum[j] + (0 if into <= 0 else (into if into < lens[j] else lens[j])) - pa

    def add_business_seconds(self, ts: int, seconds: int) -> int:
        """The instant when ``seconds`` of working time have passed since ``ts`` (an SLA deadline)."""
        if seconds <= 0:
            return ts
        tab = self._snapshot(ts)
        target = self._position(tab, ts) + seconds
        while target > tab[4][-1]:  # grow forward, then redo on the new table
            tab = self._snapshot(ts, tab[1][-1] + 43200)
            target = self._position(tab, ts) + seconds
        _, mids, starts, lens, cum = tab
        i = bisect_left(cum, target) - 1  # day i holds the target second
        return starts[i] + (target - cum[i])

    def working_days(self, start: int, end: int) -> int:
        """Working days whose local date starts inside ``[start, end)``."""
        _, mids, _starts, lens, _cum = self._snapshot(start, end)
        i = bisect_left(mids, start)
        j = bisect_left(mids, end)
        return sum(1 for k in range(i, j) if lens[k] > 0)


# --- building a calendar from config and from the portal -------------------------------------


def _clock(value, name: str) -> int:
    """``"HH:MM"`` (``"24:00"`` allowed) -> minutes after midnight."""
    if isinstance(value, time):
        return value.hour * 60 + value.minute
    m = re.fullmatch(r"(\d{1,2})(?::(\d{2}))?", str(value).strip())
    minutes = int(m.group(1)) * 60 + int(m.group(2) or 0) if m and int(m.group(2) or 0) < 60 else -1
    if not 0 <= minutes <= 24 * 60:
        raise ValueError(f"calendar {name} must be HH:MM, got {value!r}")
    return minutes


def _day(value, name: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"calendar {name} must hold YYYY-MM-DD dates, got {value!r}") from None


def _month_day(value) -> tuple[int, int]:
    """``(month, day)`` from ``(m, d)`` or ``"MM-DD"``."""
    if isinstance(value, (tuple, list)):
        m, d = value
    else:
        m, d = (int(x) for x in str(value).split("-"))
    date(2000, m, d)  # validates (2000 is a leap year, so 02-29 passes)
    return int(m), int(d)


def portal_calendar(payload: dict) -> dict:
    """``calendar.settings.get`` result -> ``[calendar]`` keys (DOCS api-reference/calendar/calendar-settings-get.md).

    The portal gives ``work_time_start``/``work_time_end`` as hours ("9", "19"; "9.30" is read as
    9:30), ``year_holidays``/``year_workdays`` as ``D.MM`` lists without a year (they recur every
    year), and ``week_holidays`` as two-letter day codes.
    """
    if not isinstance(payload, dict):
        raise ValueError("calendar.settings.get result must be an object")
    out: dict = {}
    if payload.get("work_time_start") not in (None, ""):
        out["work_start"] = _portal_hour(payload["work_time_start"])
    if payload.get("work_time_end") not in (None, ""):
        out["work_end"] = _portal_hour(payload["work_time_end"])
    if "week_holidays" in payload:
        codes = payload["week_holidays"] or []
        if isinstance(codes, str):
            codes = [c for c in codes.split(",") if c]
        off = set()
        for c in codes:
            if str(c).upper() not in WEEKDAY_CODES:
                raise ValueError(f"calendar.settings.get week_holidays: unknown day {c!r}")
            off.add(WEEKDAY_CODES[str(c).upper()])
        out["work_days"] = [d for d in range(1, 8) if d not in off]
    for key, name in (("year_holidays", "recurring_holidays"), ("year_workdays", "recurring_workdays")):
        if payload.get(key):
            out[name] = [_portal_day(x) for x in str(payload[key]).split(",") if x.strip()]
    return out


def save_portal_calendar(db, portal: str, payload: dict) -> dict:
    """Store a ``calendar.settings.get`` result for the reports (the sync calls this).

    The payload is checked first (``portal_calendar`` raises ValueError on a bad one), so a
    malformed answer never replaces a good stored one; only the keys the calendar reads are kept.
    """
    from ..store import set_setting

    portal_calendar(payload)
    keep = {
        k: payload[k]
        for k in ("work_time_start", "work_time_end", "year_holidays", "year_workdays", "week_holidays", "week_start")
        if k in payload
    }
    set_setting(db, portal, PORTAL_CALENDAR_SETTING, keep)
    return keep


def _portal_hour(value) -> str:
    s = str(value).strip().replace(":", ".")
    m = re.fullmatch(r"(\d{1,2})(?:\.(\d{1,2}))?", s)
    if not m:
        raise ValueError(f"calendar.settings.get: bad work time {value!r}")
    h, frac = int(m.group(1)), m.group(2)
    minutes = 0 if not frac else (int(frac) if len(frac) == 2 else int(frac) * 6)  # "9.5" = 9:30
    if h > 24 or minutes > 59:
        raise ValueError(f"calendar.settings.get: bad work time {value!r}")
    return f"{h:02d}:{minutes:02d}"


def _portal_day(value: str) -> str:
    try:
        d, m = (int(x) for x in value.strip().split("."))
        date(2000, m, d)
    except ValueError:
        raise ValueError(f"calendar.settings.get: bad day {value!r} (want D.MM)") from None
    return f"{m:02d}-{d:02d}"


def calendar_settings(config: dict | None, portal_payload: dict | None = None, timezone: str | None = None) -> dict:
    """The effective ``[calendar]`` keys: defaults < config < the portal's settings; ``timezone`` wins."""
    cal = dict(DEFAULTS)
    cal.update((config or {}).get("calendar") or {})
    if portal_payload and cal.get("use_portal_calendar", True):
        cal.update(portal_calendar(portal_payload))
    if timezone:
        cal["timezone"] = timezone
    return cal


def build_calendar(settings: dict) -> WorkCalendar:
    """A ``WorkCalendar`` from ``calendar_settings()`` output (or a ``[calendar]`` table).

    Calendars are cached by their settings: building the day table and the holiday years is the
    costly part, and a calendar never changes once built (its table only grows).
    """
    known = {
        "timezone",
        "work_days",
        "work_start",
        "work_end",
        "holidays_country",
        "extra_holidays",
        "extra_workdays",
        "recurring_holidays",
        "recurring_workdays",
        "use_portal_calendar",
    }
    unknown = set(settings) - known
    if unknown:
        raise ValueError(f"unknown [calendar] keys: {', '.join(sorted(unknown))}")
    return _cached_calendar(json.dumps({**DEFAULTS, **settings}, sort_keys=True, default=str))


@lru_cache(maxsize=32)
def _cached_calendar(key: str) -> WorkCalendar:
    s = json.loads(key)
    return WorkCalendar(
        tz=s["timezone"],
        work_days=s["work_days"],
        work_start=s["work_start"],
        work_end=s["work_end"],
        holidays_country=s.get("holidays_country") or None,
        extra_holidays=s["extra_holidays"],
        extra_workdays=s["extra_workdays"],
        recurring_holidays=s.get("recurring_holidays", ()),
        recurring_workdays=s.get("recurring_workdays", ()),
    )
