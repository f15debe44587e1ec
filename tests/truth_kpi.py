"""An independent, deliberately plain computation of the main KPIs (kpi.md sections 2-3) from the
portal double's ground truth: no store, no engine, just the definitions. End-to-end tests compare
what the product computes from a sync against it."""

from __future__ import annotations

import math
from datetime import datetime, time, timedelta


def nearest_rank(values, p):
    s = sorted(values)
    return s[max(1, math.ceil(p / 100 * len(s))) - 1]


def duration(values):
    if not values:
        return None
    return {
        "avg": sum(values) / len(values),
        "median": nearest_rank(values, 50),
        "p90": nearest_rank(values, 90),
        "count": len(values),
    }


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
        elif kind == "reply" and is_agent(e["actor_id"], t):
            replies += 1
            first = e["at"] if first is None else first
        elif kind == "assigned" and e["from_value"] not in (None, "", "0") and e["from_value"] != e["to_value"]:
            transfers += 1
        elif kind == "escalated":
            transfers += 1
    return state, since, first, replies, transfers


def replay(t, events, start, end):
    """One ticket as of ``end``, read plainly from its truth log (kpi.md section 2)."""
    f = {
        "state": "open",
        "since": None,
        "first": None,
        "replies": 0,
        "transfers": 0,
        "reopens": 0,
        "reopened_in": False,
        "interactions": 0,
        "requalified": False,
        "calls": [],
        "resp_created": None,
        "resp_end": None,
        "deadline": t["deadline"],
        "state_at_start": None,
    }
    deadline_after = None
    for e in sorted(events, key=lambda e: e["at"]):
        kind = e["kind"]
        if kind == "assigned" and e["from_value"] is None and f["resp_created"] is None:
            f["resp_created"] = e["to_value"]  # the initial assignment (at creation)
        if e["at"] >= end:  # not happened yet as of ``end``
            if kind == "field_changed" and e["field"] == "deadline" and deadline_after is None:
                deadline_after = e
            continue
        if e["at"] >= start and f["state_at_start"] is None:
            f["state_at_start"] = f["state"]
        if kind in ("resolved", "rejected") and f["state"] != kind:
            f["state"], f["since"] = kind, e["at"]
        elif kind == "reopened" and f["state"] != "open":
            f["state"], f["since"] = "open", e["at"]
            f["reopens"] += 1
            f["reopened_in"] = f["reopened_in"] or e["at"] >= start
        elif kind == "reply":
            f["interactions"] += 1
            if is_agent(e["actor_id"], t):
                f["replies"] += 1
                f["first"] = e["at"] if f["first"] is None else f["first"]
        elif kind in ("customer_message", "comment"):
            f["interactions"] += 1
        elif kind == "assigned":
            if e["from_value"] not in (None, "", "0") and e["from_value"] != e["to_value"]:
                f["transfers"] += 1
            f["resp_end"] = e["to_value"]  # the responsible as of ``end``: the last change before it
        elif kind == "escalated":
            f["transfers"] += 1
        elif kind == "field_changed" and e["field"] == "type":
            f["requalified"] = f["requalified"] or (
                e["from_value"] not in (None, "") and e["from_value"] != e["to_value"]
            )
        elif kind == "call_out":
            f["calls"].append(e["at"])
    if f["state_at_start"] is None:
        f["state_at_start"] = f["state"]
    if deadline_after is not None:  # the deadline as of ``end`` is the one the first later change replaced
        f["deadline"] = None if deadline_after["from_value"] in (None, "") else int(deadline_after["from_value"])
    return f


def requester(t):
    """kpi.md section 1: a task's (and an open-line session's) author; a CRM item's customer, never
    an internal user, so the CRM item's creator is an agent like any other."""
    return None if t["source"].startswith("crm:") else t["author_id"]


def is_agent(user, t):
    """kpi.md section 1 (no bots, no support_departments in the tests' config)."""
    return user not in (None, "", "0") and user != requester(t)


def local_days(start, end, tz):
    d, last = datetime.fromtimestamp(start, tz).date(), datetime.fromtimestamp(end, tz).date()
    while d <= last:
        midnight = int(datetime.combine(d, time(), tz).timestamp())
        if start <= midnight < end:
            yield d
        d += timedelta(days=1)


def working_days(start, end, tz, holidays):
    """Mon-Fri local dates starting inside the period that are not holidays ((month, day) pairs and
    dates) -- the double's calendar (9-18, SA/SU off, its year_holidays, the RU calendar)."""
    return sum(
        1
        for d in local_days(start, end, tz)
        if d.weekday() < 5 and (d.month, d.day) not in holidays and d not in holidays
    )


def expected(
    truth,
    start,
    end,
    keep=lambda t: True,
    *,
    tz=None,
    sla=None,
    calendar=None,
    holidays=(),
    handle_time=None,
    repeat_window=30 * 86400,
    scope=None,
):
    """Every KPI of kpi.md section 3 the double exercises, for ``[start, end)``.

    ``sla``: priority -> business seconds (``calendar``, the product's WorkCalendar, is used for that
    business-time arithmetic only); ``handle_time(t, end)``: tracked time of a ticket (default: the
    truth's ``worked`` events logged before ``end``, None without any); ``holidays``: for working days; ``scope``: the tickets an earlier contact may be
    (the report's source filter; a group does not narrow it), default ``keep``."""
    C, R, A, backlog = [], [], [], 0
    everyone = [t for t in truth.tickets if keep(t)]
    for t in everyone:
        if t["created_at"] >= end:
            continue
        f = replay(t, truth.events_of(t["source"], t["source_id"]), start, end)
        f["t"] = t
        if f["state"] == "open":
            backlog += 1
        in_c = t["created_at"] >= start
        if in_c:
            C.append(f)
        if f["state"] == "resolved" and f["since"] >= start:
            R.append(f)
        if in_c or f["state_at_start"] == "open" or f["reopened_in"]:
            A.append(f)
        d = f["deadline"]
        if d is None and sla and t["priority"] in sla:
            d = calendar.add_business_seconds(t["created_at"], sla[t["priority"]])
        f["eff_deadline"] = d
        f["overdue"] = d is not None and d < (f["since"] if f["state"] != "open" else end)
    fcr = lambda f: f["replies"] <= 1 and not f["transfers"] and not f["reopens"]  # noqa: E731
    rated = [f["t"]["rating"] for f in R if f["t"]["rating"] is not None]
    out = {
        "tickets_total": len(C),
        "first_response_time": duration([f["first"] - f["t"]["created_at"] for f in C if f["first"] is not None]),
        "unanswered_share": share(sum(1 for f in C if f["first"] is None and f["state"] == "open"), len(C)),
        "resolved_count": len(R),
        "resolution_time": duration([f["since"] - f["t"]["created_at"] for f in R]),
        "backlog": backlog,
        "transferred_share": share(sum(1 for f in C if f["transfers"]), len(C)),
        "one_touch_share": share(sum(1 for f in R if f["replies"] <= 1), len(R)),
        "rated_share": share(len(rated), len(R)),
        "csat": share(sum(1 for r in rated if r >= 4), len(rated)),
        "resolved_share": share(sum(1 for f in C if f["state"] == "resolved"), len(C)),
        "transfers_per_ticket": share(sum(f["transfers"] for f in C), len(C)),
        "fcr_share": share(sum(1 for f in R if fcr(f)), len(R)),
        "reopen_share": share(sum(1 for f in R if f["reopens"]), len(R)),
        "correctly_qualified_share": share(sum(1 for f in C if not f["requalified"]), len(C)),
        "interactions_per_ticket": share(sum(f["interactions"] for f in R), len(R)),
        "callback_share": share(sum(1 for f in R if any(c > f["since"] for c in f["calls"])), len(R)),
    }
    if tz is not None:
        # calendar days: whole local dates; a period not bounded by midnights has a fraction of one
        # (spec silent; the product's documented choice, b24desk/kpi/periods.py Period.days)
        midnights = [datetime.fromtimestamp(x, tz).time() == time() for x in (start, end)]
        days = len(list(local_days(start, end, tz))) if all(midnights) else (end - start) / 86400
        out["tickets_per_day"] = len(C) / days
    dl = [f for f in A if f["eff_deadline"] is not None]
    out["overdue_count"] = sum(1 for f in dl if f["overdue"])
    out["overdue_share"] = share(out["overdue_count"], len(dl))
    v = sum(1 for f in A if f["overdue"])
    out["task_efficiency"] = 100.0 if not A else max(0.0, 100 - 100 * v / len(A))
    per = {}
    for f in A:
        if is_agent(f["resp_end"], f["t"]):
            p, o = per.get(f["resp_end"], (0, 0))
            per[f["resp_end"]] = (p + 1, o + f["overdue"])
    out["task_efficiency.per_agent"] = {a: max(0.0, 100 - 100 * o / p) for a, (p, o) in per.items()}

    prios = ("low", "normal", "high", "critical")
    out["resolved_by_priority"] = {p: sum(1 for f in R if f["t"]["priority"] == p) for p in prios}
    created = {p: sum(1 for f in C if f["t"]["priority"] == p) for p in prios}
    out["resolved_by_priority.created"] = created
    out["resolved_by_priority.resolved_share"] = {
        p: share(sum(1 for f in C if f["t"]["priority"] == p and f["state"] == "resolved"), n)
        for p, n in created.items()
    }

    # customers: another ticket of theirs (any in the scope) created within the window before one in C
    mine = {}
    for f in C:
        if f["t"]["customer"] is not None:
            mine.setdefault(f["t"]["customer"], []).append(f["t"])

    def repeat(cust, tickets):
        return any(
            o is not t and t["created_at"] - repeat_window <= o["created_at"] <= t["created_at"]
            for t in tickets
            for o in history
            if o["customer"] == cust
        )

    history = [t for t in truth.tickets if (scope or keep)(t)]
    out["repeat_contact_share"] = share(sum(1 for c, ts in mine.items() if repeat(c, ts)), len(mine))
    out["contacts_per_customer"] = share(sum(len(ts) for ts in mine.values()), len(mine))

    def worked_before(t, end):
        secs = [
            int(e["to_value"])
            for e in truth.events_of(t["source"], t["source_id"])
            if e["kind"] == "worked" and e["at"] < end
        ]
        return sum(secs) if secs else None

    ht = handle_time or worked_before
    out["handle_time"] = duration([h for h in (ht(f["t"], end) for f in R) if h is not None])

    if tz is not None:
        wd = working_days(start, end, tz, holidays)
        load = {}
        for f in C:
            if is_agent(f["resp_created"], f["t"]):
                load[f["resp_created"]] = load.get(f["resp_created"], 0) + 1
        rates = {a: n / wd for a, n in load.items()} if wd else {}
        out["tickets_per_agent_day"] = share(sum(rates.values()), len(rates))
        out["tickets_per_agent_day.per_agent"] = rates
        out["tickets_per_agent_day.working_days"] = wd

    agents = {}
    for f in R:
        if is_agent(f["resp_end"], f["t"]):
            agents.setdefault(f["resp_end"], []).append(f)
    rows = []
    for a, fs in agents.items():
        frt = [f["first"] - f["t"]["created_at"] for f in fs if f["first"] is not None]
        rt = [f["t"]["rating"] for f in fs if f["t"]["rating"] is not None]
        rows.append(
            {
                "agent": a,
                "resolved": len(fs),
                "frt_median": nearest_rank(frt, 50) if frt else None,
                "csat": share(sum(1 for r in rt if r >= 4), len(rt)),
                "fcr": share(sum(1 for f in fs if fcr(f)), len(fs)),
            }
        )
    # kpi.md: ranked by resolved count; ties by agent id (the product's documented choice); ten shown
    rows.sort(key=lambda r: (-r["resolved"], str(r["agent"])))
    out["top_agents"] = rows[:10] or None
    return out


def got(kpis, key, which="value"):
    """The product's number for ``key`` (``kpi.detail`` for a detail, e.g. ``csat.avg_rating``)."""
    name, _, detail = key.partition(".")
    if detail:
        return (kpis[name].get("detail") or {}).get(detail) if which == "value" else None
    v = kpis[key][which]
    if key == "top_agents" and v is not None:
        return [{k: r.get(k) for k in ("agent", "resolved", "frt_median", "csat", "fcr")} for r in v]
    if key == "csat" and isinstance(v, dict):
        return v.get("share", v.get("value"))
    return v


def same(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        return all(same(a[k], b.get(k)) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b
