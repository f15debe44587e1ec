"""Small statistics with the report's conventions: nearest-rank percentiles, null for empty.

kpi.md section 3: the p-th percentile of n sorted values is the value at rank ceil(p/100 · n), so
the median of 4 values is the 2nd; a KPI with an empty population is ``None``, never 0.
"""

from __future__ import annotations

import math
from fractions import Fraction


def nearest_rank(sorted_values: list, p: float):
    """The p-th percentile (0 < p <= 100) of already sorted values by the nearest-rank method."""
    n = len(sorted_values)
    if n == 0:
        return None
    if type(p) is int:
        rank = -(-p * n // 100)  # ceil in integers (the report's 50 and 90, thousands of times a page)
    else:
        rank = math.ceil(Fraction(str(p)) / 100 * n)  # exact: 0.9 * 10 is 9, not 9.000000000000002
    return sorted_values[max(rank, 1) - 1]


def summary(values) -> dict | None:
    """``{avg, median, p90, count}`` of durations, or None when there are none."""
    vals = [v for v in values if v is not None]  # callers pass lists: a list comprehension is fast
    vals.sort()
    return summary_sorted(vals)


def summary_sorted(vals: list) -> dict | None:
    """:func:`summary` of values already sorted, none of them None (the engine's tallies keep
    theirs so): no copy, no sort."""
    if not vals:
        return None
    return {
        "avg": sum(vals) / len(vals),
        "median": nearest_rank(vals, 50),
        "p90": nearest_rank(vals, 90),
        "count": len(vals),
    }


def share(hits: int, total: int) -> float | None:
    return hits / total if total else None


def mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None
