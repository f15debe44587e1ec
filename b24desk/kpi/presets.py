"""Named report periods ("this week", "last month", ...) and the period to compare with.

Used by the dashboard's preset menu and by saved reports (interfaces.md "Saved reports"), so a
definition saved as ``{"preset": "last_month"}`` means the same month on the page, in the API and in
a push. Every preset is a half-open ``[from, to)`` of calendar units in the portal's time zone, weeks
from Monday; the "this ..." presets end at the end of the current unit (the period is partial, the
engine counts what exists so far), "last_7_days"/"last_30_days" end at the end of today.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo

PRESETS: tuple[str, ...] = (
    "today",
    "yesterday",
    "this_week",
    "last_week",
    "last_7_days",
    "last_30_days",
    "this_month",
    "last_month",
    "this_quarter",
    "last_quarter",
    "this_year",
)

COMPARE: tuple[str, ...] = ("previous", "last_year")


def _at(d: date, tz) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=tz)


def _add_months(d: date, months: int) -> date:
    """The first day of the month ``months`` after ``d``'s month."""
    y, m = divmod(d.year * 12 + d.month - 1 + months, 12)
    return date(y, m + 1, 1)


def preset_days(name: str, today: date) -> tuple[date, date]:
    """The preset as local dates ``[first, end)`` around ``today`` (pure calendar arithmetic)."""
    if name == "today":
        return today, today + timedelta(days=1)
    if name == "yesterday":
        return today - timedelta(days=1), today
    if name in ("this_week", "last_week"):
        monday = today - timedelta(days=today.weekday())
        if name == "last_week":
            monday -= timedelta(days=7)
        return monday, monday + timedelta(days=7)
    if name == "last_7_days":
        return today - timedelta(days=6), today + timedelta(days=1)
    if name == "last_30_days":
        return today - timedelta(days=29), today + timedelta(days=1)
    if name in ("this_month", "last_month"):
        first = today.replace(day=1)
        if name == "last_month":
            first = _add_months(first, -1)
        return first, _add_months(first, 1)
    if name in ("this_quarter", "last_quarter"):
        first = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
        if name == "last_quarter":
            first = _add_months(first, -3)
        return first, _add_months(first, 3)
    if name == "this_year":
        return date(today.year, 1, 1), date(today.year + 1, 1, 1)
    raise ValueError(f"unknown period preset: {name!r} (one of {', '.join(PRESETS)})")


def resolve_preset(name: str, now: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
    """The preset ``name`` as aware local datetimes ``[from, to)`` for the moment ``now`` in ``tz``.

    ``now`` may be naive (taken as already local in ``tz``) or aware (converted to ``tz``).
    """
    local_now = now.replace(tzinfo=tz) if now.tzinfo is None else now.astimezone(tz)
    a, b = preset_days(name, local_now.date())
    return _at(a, tz), _at(b, tz)


def _shift_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def compare_period(start: datetime, end: datetime, how: str, tz: tzinfo) -> tuple[datetime, datetime]:
    """The period to compare ``[start, end)`` with.

    ``previous``: whole calendar months -> the same number of months before; whole local days -> the
    same number of days before; otherwise the same length just before. ``last_year``: the same dates a
    year earlier (29 February -> 28 February). Local midnights stay midnights across DST changes.
    """
    if how not in COMPARE:
        raise ValueError(f"unknown comparison: {how!r} (one of {', '.join(COMPARE)})")
    s, e = start.astimezone(tz), end.astimezone(tz)
    midnights = all((x.hour, x.minute, x.second, x.microsecond) == (0, 0, 0, 0) for x in (s, e))
    if how == "last_year":
        if midnights:
            return _at(_shift_years(s.date(), -1), tz), _at(_shift_years(e.date(), -1), tz)
        return (
            s.replace(year=s.year - 1) if not (s.month == 2 and s.day == 29) else s - timedelta(days=366),
            e.replace(year=e.year - 1) if not (e.month == 2 and e.day == 29) else e - timedelta(days=366),
        )
    if midnights:
        a, b = s.date(), e.date()
        if a.day == 1 and b.day == 1:
            months = (b.year - a.year) * 12 + b.month - a.month
            return _at(_add_months(a, -months), tz), s
        return _at(a - (b - a), tz), s
    return s - (e - s), s
