"""An independent, deliberately plain computation of the main KPIs (kpi.md sections 2-3) from the
portal double's ground truth: no store, no engine, just the definitions. End-to-end tests compare
what the product computes from a sync against it."""
from __future__ import annotations

import math


def nearest_rank(values, p):
    s = sorted(values)
    return s[max(1, math.ceil(p / 100 * len(s))) - 1]


def duration(values):
    if not values:
        return None
    return {"avg": sum(values) / len(values), "median": nearest_rank(values, 50), "p90": nearest_rank(values, 90),
            "count": len(values)}


def share(hits, total):
    return None if total == 0 else hits / total


def as_of(t, events, end):
    """State, time of entering it, first reply, replies and transfers, from the log up to ``end``."""
    state, since, first, replies, transfers = "open", None, None, 0, 0
    for e in sorted(events, key=lambda e: e["at"]):
        if e["at"] >= end:
            break
        kind = e["kind"]
        if kind in ("resolved", "rejected") and state != kind:
            state, since = kind, e["at"]
        elif kind == "reopened" and state != "open":
            state, since = "open", e["at"]
        elif kind == "reply" and e["actor_id"] not in (None, "", "0", t["author_id"]):
            replies += 1
            first = e["at"] if first is None else first
        elif kind == "assigned" and e["from_value"] not in (None, "", "0") and e["from_value"] != e["to_value"]:
            transfers += 1
        elif kind == "escalated":
            transfers += 1
    return state, since, first, replies, transfers


def expected(truth, start, end, keep=lambda t: True):
    C, R, backlog = [], [], 0
    for t in truth.tickets:
        if not keep(t) or t["created_at"] >= end:
            continue
        state, since, first, replies, transfers = as_of(t, truth.events_of(t["source"], t["source_id"]), end)
        row = (t, first, replies, transfers, since)
        if state == "open":
            backlog += 1
        if t["created_at"] >= start:
            C.append((row, state))
        if state == "resolved" and since >= start:
            R.append(row)
    rated = [t["rating"] for t, *_ in R if t["rating"] is not None]
    return {
        "tickets_total": len(C),
        "first_response_time": duration([first - t["created_at"] for (t, first, *_), _ in C if first is not None]),
        "unanswered_share": share(sum(1 for (t, first, *_), st in C if first is None and st == "open"), len(C)),
        "resolved_count": len(R),
        "resolution_time": duration([since - t["created_at"] for t, _, _, _, since in R]),
        "backlog": backlog,
        "transferred_share": share(sum(1 for (t, _, _, tr, _), _ in C if tr), len(C)),
        "one_touch_share": share(sum(1 for _, _, rp, _, _ in R if rp <= 1), len(R)),
        "rated_share": share(len(rated), len(R)),
        "csat": share(sum(1 for r in rated if r >= 4), len(rated)),
    }


def got(kpis, key):
    v = kpis[key]["value"]
    if key == "csat" and isinstance(v, dict):
        return v.get("share", v.get("value"))
    return v


def same(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        return all(same(a[k], b.get(k)) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b
