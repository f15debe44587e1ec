"""Arrivals and agents at work per weekday × hour, in the portal's time zone (pure functions).

Inputs are counted per quarter-hour of UTC time (``ts // 900``): every UTC offset in use is a
whole number of quarter-hours, so a quarter maps to exactly one local weekday, hour and date, and
the store can group a year of tickets into at most 35 040 rows before Python sees them.

A slot's value is a mean over its *occurrences* in the period: the local hours "Monday 10:00"
that lie inside ``[start, end)``. So a 12-week period divides Monday 10:00 by 12, a period that
starts on a Wednesday divides it by the Mondays it holds, and the hour a DST change repeats or
skips is counted as it happened.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta, tzinfo
from typing import Iterable, Mapping

QUARTER = 900
WEEKDAYS = range(1, 8)          # ISO: 1 = Monday
HOURS = range(24)


def quarter_map(start: int, end: int, tz: tzinfo) -> dict[int, tuple[int, int, int]]:
    """Quarter index -> (ISO weekday, local hour, local date ordinal) for every quarter that
    starts inside ``[start, end)`` (the period's bounds are local midnights: whole quarters)."""
    out = {}
    q0, q1 = start // QUARTER, -(-end // QUARTER)
    for q in range(q0, q1):
        ts = max(q * QUARTER, start)
        if ts >= end:
            break
        dt = datetime.fromtimestamp(ts, tz)
        out[q] = (dt.isoweekday(), dt.hour, dt.toordinal())
    return out


def occurrences(qmap: Mapping[int, tuple[int, int, int]]) -> dict[tuple[int, int], int]:
    """How many local (date, hour) of each (weekday, hour) the period holds."""
    seen = {(d, h): wd for wd, h, d in qmap.values()}
    out: dict = defaultdict(int)
    for (d, h), wd in seen.items():
        out[(wd, h)] += 1
    return out


def day_counts(qmap: Mapping) -> dict[int, int]:
    """How many local dates of each ISO weekday the period holds."""
    out: dict = defaultdict(int)
    for d in {d for _wd, _h, d in qmap.values()}:
        out[date.fromordinal(d).isoweekday()] += 1
    return out


def quarters_of(times: Iterable[int]) -> dict[int, int]:
    """Unix seconds -> count per quarter (what ``select at/900, count(*) ... group by 1`` gives)."""
    out: dict = defaultdict(int)
    for ts in times:
        out[int(ts) // QUARTER] += 1
    return out


def arrivals(counts: Mapping[int, int], qmap: Mapping) -> dict[tuple[int, int], float]:
    """Mean tickets created per hour in each (weekday, hour) slot: created in the slot over the
    period, divided by the slot's occurrences. Quarters outside the period are ignored."""
    total: dict = defaultdict(int)
    for q, n in counts.items():
        where = qmap.get(q)
        if where is not None:
            total[(where[0], where[1])] += n
    occ = occurrences(qmap)
    return {slot: (total.get(slot, 0) / k if k else 0.0) for slot, k in occ.items()}


def active_agents(actor_quarters: Iterable[tuple[str, int]], qmap: Mapping
                  ) -> tuple[dict[tuple[int, int], float], dict[int, float], dict[int, set]]:
    """Agents at work per slot and per day, from who acted when.

    ``actor_quarters``: (actor, quarter) pairs of the period's agent actions (replies, status
    changes, reassignments...). An agent counts once per local hour and once per local date they
    acted in. Returns (mean distinct agents per slot occurrence, mean distinct agents per
    weekday's date, date ordinal -> the agents active that day).
    """
    per_hour: dict = defaultdict(set)        # (date, hour) -> agents
    per_date: dict = defaultdict(set)        # date -> agents
    for actor, q in actor_quarters:
        where = qmap.get(q)
        if where is None:
            continue
        per_hour[(where[2], where[1])].add(actor)
        per_date[where[2]].add(actor)
    total: dict = defaultdict(int)
    for (d, h), agents in per_hour.items():
        total[(date.fromordinal(d).isoweekday(), h)] += len(agents)
    occ = occurrences(qmap)
    by_slot = {slot: (total.get(slot, 0) / k if k else 0.0) for slot, k in occ.items()}
    days = day_counts(qmap)
    day_total: dict = defaultdict(int)
    for d, agents in per_date.items():
        day_total[date.fromordinal(d).isoweekday()] += len(agents)
    by_day = {wd: (day_total.get(wd, 0) / k if k else 0.0) for wd, k in days.items()}
    return by_slot, by_day, dict(per_date)


def daily_counts(counts: Mapping[int, int], qmap: Mapping) -> dict[int, int]:
    """Tickets created per local date (ordinal), zero-filled over the period's dates."""
    out = {d: 0 for d in {d for _wd, _h, d in qmap.values()}}
    for q, n in counts.items():
        where = qmap.get(q)
        if where is not None:
            out[where[2]] += n
    return out


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
