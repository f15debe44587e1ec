"""Time dimensions of a breakdown: ``week``, ``month``, ``weekday``, ``hour`` (interfaces.md).

Each ticket of C is counted once, by its ``created_at`` in the portal's time zone: ``week`` is the
ISO week (``2026-W43``), ``month`` the calendar month (``2026-10``), ``weekday`` 1 = Monday … 7,
``hour`` 0–23. A ticket of the period that is not in C (created earlier, resolved or active in the
period) belongs to no time bucket: it goes to the ``None`` group ("created before the period"), so
the groups' counts of R and A still add up to the totals.

The groups of a period are every bucket the period touches (empty weeks show as zero rows, so a
line or a heatmap has no holes). The *previous* value of a week or month bucket is the same slice
of the previous period (ticket times moved forward by the distance between the two periods'
starts; months by whole months), and of a weekday or hour bucket that weekday or hour in the
previous period. Per-day figures of a bucket use its own days (a week's days inside the period,
the number of Mondays in it, ...).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

TIME_DIMS = ("week", "month", "weekday", "hour")


def _local(ts: int, tz) -> datetime:
    return datetime.fromtimestamp(ts, tz)


def _ts(d: date, tz) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp())


def week_key(d: date) -> str:
    y, w, _ = d.isocalendar()
    return f"{y:04d}-W{w:02d}"


def bucket(dim: str, ts: int, tz):
    """The bucket of a moment: ``"2026-W43"``, ``"2026-10"``, ``1``..``7`` or ``0``..``23``."""
    dt = _local(ts, tz)
    if dim == "week":
        return week_key(dt.date())
    if dim == "month":
        return f"{dt.year:04d}-{dt.month:02d}"
    if dim == "weekday":
        return dt.isoweekday()
    if dim == "hour":
        return dt.hour
    raise ValueError(f"not a time dimension: {dim!r}")


def spans(dim: str, start: int, end: int, tz) -> list[tuple]:
    """``[(key, bucket_start, bucket_end, days)]`` for every bucket ``[start, end)`` touches, in
    order; week and month spans are clipped to the period, weekday and hour span the period."""
    out = []
    whole = max((end - start) / 86400, 0.0)
    a, b = _local(start, tz), _local(end, tz)
    if dim in ("week", "month"):
        d = a.date()
        d = d - timedelta(days=d.isoweekday() - 1) if dim == "week" else d.replace(day=1)
        while True:
            lo = _ts(d, tz)
            if lo >= end:
                break
            if dim == "week":
                nxt = d + timedelta(days=7)
            else:
                nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
            hi = _ts(nxt, tz)
            s, e = max(lo, start), min(hi, end)
            days = _days(s, e, tz)
            out.append((bucket(dim, s, tz), s, e, days))
            d = nxt
        return out
    if dim == "weekday":
        counts = {k: 0.0 for k in range(1, 8)}
        d, last = a.date(), b.date()
        full = (a.hour, a.minute, a.second) == (0, 0, 0) and (b.hour, b.minute, b.second) == (0, 0, 0)
        if full:
            while d < last:
                counts[d.isoweekday()] += 1
                d += timedelta(days=1)
        else:  # a partial day: share the seconds out evenly
            for k in counts:
                counts[k] = whole / 7
        return [(k, start, end, counts[k]) for k in range(1, 8)]
    if dim == "hour":
        days = _days(start, end, tz)
        return [(h, start, end, days) for h in range(24)]
    raise ValueError(f"not a time dimension: {dim!r}")


def _days(s: int, e: int, tz) -> float:
    a, b = _local(s, tz), _local(e, tz)
    if (a.hour, a.minute, a.second) == (0, 0, 0) and (b.hour, b.minute, b.second) == (0, 0, 0):
        return float((b.date() - a.date()).days)
    return (e - s) / 86400


def shift_months(key: str, months: int) -> str:
    y, m = int(key[:4]), int(key[5:7])
    y, m = divmod(y * 12 + m - 1 + months, 12)
    return f"{y:04d}-{m + 1:02d}"


def keyer(dim: str, tz, period_start: int, prev_start: int | None = None):
    """A function ``facts -> key`` for the current period (``prev_start`` None) or for the previous
    period's facts, mapped onto the current period's buckets (see module docstring)."""
    if prev_start is None or dim in ("weekday", "hour"):
        return lambda f: bucket(dim, f.t["created_at"], tz) if f.in_c else None
    if dim == "month":
        a, b = _local(prev_start, tz), _local(period_start, tz)
        months = (b.year - a.year) * 12 + b.month - a.month
        return lambda f: shift_months(bucket("month", f.t["created_at"], tz), months) if f.in_c else None
    shift = period_start - prev_start
    return lambda f: bucket(dim, f.t["created_at"] + shift, tz) if f.in_c else None


def label(dim: str, key) -> str:
    """A neutral label (pages translate weekday names): ``2026-W43``, ``2026-10``, ``1``, ``09:00``."""
    if key is None:
        return "—"
    if dim == "hour":
        return f"{int(key):02d}:00"
    return str(key)
