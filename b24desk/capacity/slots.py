"""Arrivals and agents at work per weekday × hour, in the portal's time zone (pure functions).

Times are bucketed by *local hour index*: ``(ts + utc_offset(ts)) // 3600``, hours since
1970-01-01 00:00 on the local wall clock. ``LocalClock`` finds the offsets in force over a period
(every zone changes offset on a quarter-hour of UTC) and writes the same arithmetic as a SQL
expression, so the store groups a year of tickets into at most 8 784 rows before Python sees them.

A slot's value is a mean over its *occurrences* in the period: the local hours "Monday 10:00"
that lie inside ``[start, end)``. So a 12-week period divides Monday 10:00 by 12, a period that
starts on a Wednesday divides it by the Mondays it holds, and the hour a DST change repeats is one
occurrence holding both (the skipped hour is none).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from datetime import date, datetime, timedelta, tzinfo
from typing import Iterable, Mapping

QUARTER = 900
WEEKDAYS = range(1, 8)  # ISO: 1 = Monday
HOURS = range(24)
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()  # a Thursday


class LocalClock:
    """The UTC offsets in force over ``[start, end)`` as segments ``(from_ts, offset_s)``."""

    def __init__(self, start: int, end: int, tz: tzinfo):
        self.start, self.end = start, end
        segs: list = []
        ts = start
        while ts < end:
            off = int(datetime.fromtimestamp(ts, tz).utcoffset().total_seconds())
            if not segs or segs[-1][1] != off:
                segs.append((ts, off))
            ts = (ts // QUARTER + 1) * QUARTER
        self.segments = segs or [(start, int(datetime.fromtimestamp(start, tz).utcoffset().total_seconds()))]
        self._starts = [s for s, _o in self.segments]

    def offset(self, ts: int) -> int:
        return self.segments[max(0, bisect_right(self._starts, ts) - 1)][1]

    def hour(self, ts: int) -> int:
        """The local hour index of ``ts``."""
        return (ts + self.offset(ts)) // 3600

    def sql(self, col: str) -> tuple[str, list]:
        """``col`` on the local clock, in seconds, as SQL (+ params)."""
        if len(self.segments) == 1:
            return f"({col} + ?)", [self.segments[0][1]]
        whens, params = [], []
        for (_s, off), (nxt, _o) in zip(self.segments, self.segments[1:]):
            whens.append(f"when {col} < ? then ?")
            params += [nxt, off]
        return f"({col} + case {' '.join(whens)} else ? end)", params + [self.segments[-1][1]]

    def hours(self) -> set[int]:
        """Local hour indices the period holds (a repeated hour once, a skipped hour not at all)."""
        out, ts = set(), self.start
        while ts < self.end:
            out.add(self.hour(ts))
            ts = (ts // QUARTER + 1) * QUARTER
        return out


def slot_of(hour_index: int) -> tuple[int, int, int]:
    """Local hour index -> (ISO weekday, hour, local date ordinal)."""
    days, h = divmod(hour_index, 24)
    return (days + 3) % 7 + 1, h, days + EPOCH_ORDINAL


def occurrences(hours: Iterable[int]) -> dict[tuple[int, int], int]:
    out: dict = defaultdict(int)
    for lh in hours:
        wd, h, _d = slot_of(lh)
        out[(wd, h)] += 1
    return out


def per_slot_mean(values: Mapping[int, float], hours: set) -> dict[tuple[int, int], float]:
    """Sum of ``values`` (by local hour index) per (weekday, hour), over the slot's occurrences;
    hours outside the period are ignored. Every slot the period holds is in the answer."""
    total: dict = defaultdict(float)
    for lh, v in values.items():
        if lh in hours:
            wd, h, _d = slot_of(lh)
            total[(wd, h)] += v
    return {slot: total.get(slot, 0) / k for slot, k in occurrences(hours).items()}


def period_days(hours: set) -> dict[int, int]:
    """Local date ordinal -> how many of its hours the period holds."""
    out: dict = defaultdict(int)
    for lh in hours:
        out[slot_of(lh)[2]] += 1
    return dict(out)


def per_weekday_mean(values: Mapping[int, float], days: Iterable[int]) -> dict[int, float]:
    """Sum of ``values`` (by date ordinal) per ISO weekday, over that weekday's dates."""
    count: dict = defaultdict(int)
    total: dict = defaultdict(float)
    for d in days:
        wd = date.fromordinal(d).isoweekday()
        count[wd] += 1
        total[wd] += values.get(d, 0)
    return {wd: total[wd] / count[wd] for wd in count}


def daily_counts(counts: Mapping[int, int], hours: set) -> dict[int, int]:
    """Tickets created per local date (ordinal), zero-filled over the period's dates."""
    out = {d: 0 for d in period_days(hours)}
    for lh, n in counts.items():
        if lh in hours:
            out[slot_of(lh)[2]] += n
    return out


def agents_by_hour_and_day(pairs: Iterable[tuple[int, str]]) -> tuple[dict[int, int], dict[int, set]]:
    """(local hour index, actor) pairs -> distinct agents per hour, and the agents of each date."""
    per_hour: dict = defaultdict(set)
    per_day: dict = defaultdict(set)
    for lh, actor in pairs:
        per_hour[lh].add(actor)
        per_day[slot_of(lh)[2]].add(actor)
    return {lh: len(s) for lh, s in per_hour.items()}, dict(per_day)


def hour_counts(times: Iterable[int], clock: LocalClock) -> dict[int, int]:
    """Unix seconds -> count per local hour index (what the store's grouped query gives)."""
    out: dict = defaultdict(int)
    for ts in times:
        out[clock.hour(int(ts))] += 1
    return dict(out)


def weekly_counts(daily: Mapping[int, int]) -> list[tuple[str, int]]:
    """Per ISO week ("2026-W49", count) of the *full* weeks the dates cover, in order: a week
    cut by the period's start or end would read as a drop in volume, so it is left out."""
    weeks: dict = {}
    for d, n in daily.items():
        day = date.fromordinal(d)
        monday = day - timedelta(days=day.isoweekday() - 1)
        w = weeks.setdefault(monday, [0, 0])
        w[0] += n
        w[1] += 1
    return [(week_label(m), v[0]) for m, v in sorted(weeks.items()) if v[1] == 7]


def week_label(monday: date) -> str:
    y, w, _ = monday.isocalendar()
    return f"{y}-W{w:02d}"


def next_mondays(last_label: str, n: int) -> list[date]:
    """The ``n`` Mondays after the ISO week ``last_label``."""
    y, w = last_label.split("-W")
    monday = date.fromisocalendar(int(y), int(w), 1)
    return [monday + timedelta(days=7 * (i + 1)) for i in range(n)]
