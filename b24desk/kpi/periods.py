"""Report periods: parse the user's dates, find the previous period, name the period.

A period is ``[from, to)`` in the portal's time zone (kpi.md section 2). A bare date means local
midnight, so "2026-10-01".."2026-11-01" is October wherever the offset changes inside it; the
previous period of a calendar month is the previous calendar month, of whole local days the same
number of local days before, of anything else the same number of seconds before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def zone(name: str | None) -> ZoneInfo:
    """An IANA zone by name, with a clear error for a bad one."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone: {name!r}") from exc


def parse_point(value, tz: tzinfo) -> int:
    """A date (local midnight), an ISO datetime (with offset, else local), a datetime or unix int -> unix s."""
    if isinstance(value, bool):
        raise ValueError(f"not a date: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=tz)
        return int(dt.timestamp())
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=tz).timestamp())
    s = str(value or "").strip()
    try:
        if _DATE.match(s):
            d = date.fromisoformat(s)
            return int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp())
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"not a date or ISO datetime: {value!r} (use YYYY-MM-DD or e.g. 2026-10-01T00:00:00+03:00)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return int(dt.timestamp())


@dataclass(frozen=True)
class Period:
    """``[start, end)`` in unix seconds, shown in ``tz``."""

    start: int
    end: int
    tz: tzinfo

    def __post_init__(self):
        if self.end <= self.start:
            raise ValueError("the period is empty: 'to' must be after 'from'")

    # --- local views -------------------------------------------------------------------------
    def local(self, ts: int) -> datetime:
        return datetime.fromtimestamp(ts, self.tz)

    def _midnight(self, ts: int) -> date | None:
        """The local date if ``ts`` is a local midnight, else None."""
        dt = self.local(ts)
        return dt.date() if (dt.hour, dt.minute, dt.second) == (0, 0, 0) else None

    def _month_span(self) -> int | None:
        """Number of whole calendar months the period covers exactly, else None."""
        a, b = self._midnight(self.start), self._midnight(self.end)
        if a and b and a.day == 1 and b.day == 1:
            return (b.year - a.year) * 12 + b.month - a.month
        return None

    @property
    def days(self) -> float:
        """Calendar days: whole local days when both ends are midnights (DST-proof), else seconds/86400."""
        a, b = self._midnight(self.start), self._midnight(self.end)
        if a and b:
            return float((b - a).days)
        return (self.end - self.start) / 86400

    def previous(self) -> "Period":
        months = self._month_span()
        if months:
            a = self.local(self.start).date()
            y, m = divmod(a.year * 12 + a.month - 1 - months, 12)
            return Period(_local_ts(date(y, m + 1, 1), self.tz), self.start, self.tz)
        a, b = self._midnight(self.start), self._midnight(self.end)
        if a and b:
            return Period(_local_ts(a - (b - a), self.tz), self.start, self.tz)
        return Period(self.start - (self.end - self.start), self.start, self.tz)

    @property
    def label(self) -> str:
        """``2026-10`` for a month, ``2026-10-05`` for a day, ``2026-W41`` for an ISO week, else from..to."""
        a, b = self._midnight(self.start), self._midnight(self.end)
        if self._month_span() == 1:
            return f"{a.year:04d}-{a.month:02d}"
        if a and b and (b - a).days == 1:
            return a.isoformat()
        if a and b and (b - a).days == 7 and a.isoweekday() == 1:
            y, w, _ = a.isocalendar()
            return f"{y:04d}-W{w:02d}"
        return f"{self.iso(self.start)}..{self.iso(self.end)}"

    def iso(self, ts: int | None) -> str | None:
        return None if ts is None else self.local(ts).isoformat()

    def as_json(self) -> dict:
        return {"from": self.iso(self.start), "to": self.iso(self.end)}


def _local_ts(d: date, tz: tzinfo) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp())


def make_period(date_from, date_to, tz: tzinfo) -> Period:
    return Period(parse_point(date_from, tz), parse_point(date_to, tz), tz)


def last_full_month(now_ts: int, tz: tzinfo) -> Period:
    """The default report period (kpi.md section 2): the last full calendar month before ``now``."""
    today = datetime.fromtimestamp(now_ts, tz).date()
    first = today.replace(day=1)
    prev = (first - timedelta(days=1)).replace(day=1)
    return Period(_local_ts(prev, tz), _local_ts(first, tz), tz)
