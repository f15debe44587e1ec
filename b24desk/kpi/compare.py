"""Comparative analysis: problem zones, best practices and the long-term view (issue: saved reports).

Problem zones. In a per-agent or per-department table a value is marked *significantly worse*
than the team when a stated test says so, never on the raw gap alone:

- shares (FCR, overdue, CSAT, ...): the group's Wilson score interval lies wholly on the worse side
  of the rest of the team's share;
- durations and other per-ticket numbers (FRT, resolution, interactions): a one-sided Mann-Whitney
  U rank test (scipy) of the group's tickets against the rest of the team's, p < alpha.

Both are run at a family-wise confidence of 95 % over the groups compared (Bonferroni: the Wilson
interval at 1 - alpha/m, the rank test at p < alpha/m), so a team of 60 agents does not see three
of them flagged every month by chance. A group, or the rest of the team, with fewer than ``min_n``
tickets is never marked (the scorecard's min_n rule): it is reported as a small sample.

Best practices: agents ranked by a KPI (enough tickets only), each with the habits that tell them
apart, compared with the team: median first response, interactions per ticket, FCR.

Long-term: a KPI by calendar month over up to two years, each month computed as its own period
(as of that month's end, like a monthly report), beside the same month a year earlier.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import replace
from datetime import date, datetime

from scipy.stats import mannwhitneyu, norm

from .drilldown import MEMBERSHIP, Replay
from .engine import aggregate
from .filters import Filters, matcher
from .load import Loaded, load
from .periods import Period

ALPHA = 0.05
MIN_N = 5
# Which way is better, for the KPIs a per-ticket test applies to (targets.py holds the same for
# KPIs with a default target; this covers the rest).
LOWER_BETTER = frozenset(
    {
        "first_response_time",
        "first_response_time_business",
        "resolution_time",
        "resolution_time_business",
        "unanswered_share",
        "overdue_share",
        "transferred_share",
        "transfers_per_ticket",
        "reopen_share",
        "interactions_per_ticket",
        "handle_time",
        "requester_wait_time",
        "requester_wait_time_business",
        "callback_share",
        "task_efficiency",
    }
)
TESTABLE = frozenset(
    k
    for k, (kind, _p, _c) in MEMBERSHIP.items()
    if kind in ("share", "duration", "number") and k not in ("task_efficiency", "nps")
)
HABITS = ("first_response_time", "interactions_per_ticket", "fcr_share")


def direction(kpi: str) -> str:
    return "lower" if kpi in LOWER_BETTER else "higher"


def wilson(hits: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """The Wilson score interval of ``hits/n`` (None for n = 0)."""
    if n <= 0:
        return None
    z = norm.ppf(1 - (1 - confidence) / 2)
    p = hits / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def _median(vals: list) -> float | None:
    """Nearest-rank median (kpi.md section 3)."""
    if not vals:
        return None
    s = sorted(vals)
    return s[max(0, math.ceil(0.5 * len(s)) - 1)]


def compare(groups: dict, kind: str, kpi: str, *, min_n: int = MIN_N, alpha: float = ALPHA) -> dict:
    """Mark groups significantly worse than the rest of the team.

    ``groups``: key -> per-ticket values (bools for a share KPI, numbers otherwise). Returns
    ``{"test", "alpha", "compared", "groups": {key: {...}}}`` where each group has ``n``, ``value``
    (share or median), ``rest`` (the rest of the team's), ``worse`` (bool), ``better`` (bool) and
    the test's figures (``low``/``high`` or ``p``), or ``small_sample`` when below ``min_n``.
    """
    lower = direction(kpi) == "lower"
    share_kind = kind == "share"
    all_vals = [(k, v) for k, vs in groups.items() for v in vs]
    eligible = [k for k, vs in groups.items() if len(vs) >= min_n and len(all_vals) - len(vs) >= min_n]
    m = max(len(eligible), 1)
    a = alpha / m
    out = {}
    for key, vals in groups.items():
        rest = [v for k, v in all_vals if k != key]
        n = len(vals)
        entry = {"n": n, "rest_n": len(rest), "worse": False, "better": False, "small_sample": key not in eligible}
        if share_kind:
            hits = sum(1 for v in vals if v)
            entry["value"] = hits / n if n else None
            entry["rest"] = sum(1 for v in rest if v) / len(rest) if rest else None
        else:
            entry["value"] = _median(vals)
            entry["rest"] = _median(rest)
        if key in eligible:
            if share_kind:
                lo, hi = wilson(hits, n, 1 - a)
                entry["low"], entry["high"] = lo, hi
                r = entry["rest"]
                entry["worse"] = (lo > r) if lower else (hi < r)
                entry["better"] = (hi < r) if lower else (lo > r)
            else:
                worse_alt = "greater" if lower else "less"
                better_alt = "less" if lower else "greater"
                p_worse = float(mannwhitneyu(vals, rest, alternative=worse_alt).pvalue)
                p_better = float(mannwhitneyu(vals, rest, alternative=better_alt).pvalue)
                entry["p"] = p_worse
                entry["worse"], entry["better"] = p_worse < a, p_better < a
                if entry["better"]:
                    entry["p"] = p_better
        out[key] = entry
    return {
        "kpi": kpi,
        "test": "wilson" if share_kind else "mann_whitney",
        "alpha": alpha,
        "compared": len(eligible),
        "min_n": min_n,
        "direction": direction(kpi),
        "groups": out,
    }


def _values(replay: Replay, kpi: str, key_of) -> tuple[str, dict]:
    kind, pop, contrib = MEMBERSHIP[kpi]
    cal = replay.env.calendar
    groups: dict = {}
    for f in replay.facts:
        if pop(f):
            v = contrib(f, cal)
            if v is None:
                continue
            groups.setdefault(key_of(f), []).append(bool(v) if kind == "share" else v)
    return kind, groups


def _agent_key(replay: Replay):
    ctx = replay.ctx
    return lambda f: f.resp_end if ctx.is_agent(f.resp_end, f.t["author_id"]) else None


def _department_key(replay: Replay):
    tree = replay.env.tree
    return lambda f: tree.department_of(f.resp_end)


def problem_zones(replay: Replay, kpis, dim: str = "agent", *, min_n: int = MIN_N, alpha: float = ALPHA) -> dict:
    """For each KPI of ``kpis`` that a per-ticket test applies to: ``compare`` over ``dim`` groups
    (agent or department) of the replay's tickets. Unassigned tickets form no group but count in
    the rest of the team."""
    key_of = _agent_key(replay) if dim == "agent" else _department_key(replay)
    out = {}
    for kpi in kpis:
        if kpi not in TESTABLE:
            continue
        kind, groups = _values(replay, kpi, key_of)
        res = compare(groups, kind, kpi, min_n=min_n, alpha=alpha)
        res["groups"].pop(None, None)
        out[kpi] = res
    return out


def best_agents(replay: Replay, kpi: str, *, top: int = 3, min_n: int = MIN_N) -> dict:
    """The ``top`` agents by ``kpi`` (at least ``min_n`` tickets) with their habits beside the team's."""
    if kpi not in TESTABLE:
        return {"kpi": kpi, "agents": [], "team": {}}
    key_of = _agent_key(replay)
    kind, groups = _values(replay, kpi, key_of)
    groups.pop(None, None)
    lower = direction(kpi) == "lower"

    def value(vs):
        return sum(1 for v in vs if v) / len(vs) if kind == "share" else _median(vs)

    ranked = sorted(
        ((value(vs), k) for k, vs in groups.items() if len(vs) >= min_n),
        key=lambda x: (x[0] if lower else -x[0], str(x[1])),
    )[:top]
    habits = {}
    for h in HABITS:
        hk, hg = _values(replay, h, key_of)
        hg.pop(None, None)
        team = [v for vs in hg.values() for v in vs]
        habits[h] = {
            "kind": hk,
            "groups": hg,
            "team": (sum(1 for v in team if v) / len(team) if team else None)
            if hk == "share"
            else (_median(team) if hk == "duration" else (sum(team) / len(team) if team else None)),
        }
    agents = []
    for val, k in ranked:
        row = {
            "agent": k,
            "name": (replay.env.users.get(k) or {}).get("label") or k,
            "value": val,
            "n": len(groups[k]),
            "habits": {},
        }
        for h, info in habits.items():
            vs = info["groups"].get(k) or []
            if info["kind"] == "share":
                mine = sum(1 for v in vs if v) / len(vs) if vs else None
            elif info["kind"] == "duration":
                mine = _median(vs)
            else:
                mine = sum(vs) / len(vs) if vs else None
            row["habits"][h] = {"value": mine, "team": info["team"], "n": len(vs)}
        agents.append(row)
    return {"kpi": kpi, "direction": direction(kpi), "agents": agents}


def _month_start(d: date, add: int = 0) -> date:
    y, m = divmod(d.year * 12 + d.month - 1 + add, 12)
    return date(y, m + 1, 1)


FAST_COUNTS = ("tickets_total", "resolved_count", "backlog", "overdue_count")


def month_value(kpi: str, facts: list, p: Period, ctx, env) -> tuple:
    """``(value, n)`` of one KPI over one period's facts, as ``aggregate`` gives it (a duration's
    ``avg``). Counts, shares and durations are read straight off the per-ticket membership
    (drilldown.MEMBERSHIP, tested equal to the engine); anything else runs the engine."""
    rule = MEMBERSHIP.get(kpi)
    if rule is not None and (
        kpi in FAST_COUNTS or rule[0] == "duration" or (rule[0] == "share" and kpi != "task_efficiency")
    ):
        kind, pop, contrib = rule
        vals = [contrib(f, ctx.calendar) for f in facts if pop(f)]
        n = len(vals)
        if kind == "count":
            return n, n
        if kind == "share":
            return (sum(1 for v in vals if v) / n if n else None), n
        return (sum(vals) / n if n else None), n
    v = aggregate(facts, p.start, p.end, p.days, ctx, env.users).get(kpi)
    if v is None:
        return None, 0  # ccei needs the period's admin inputs: not a monthly series here
    val = v.value
    if isinstance(val, dict) and "avg" in val:
        val = val["avg"]
    if not isinstance(val, (int, float)) or isinstance(val, bool):
        val = None
    return val, v.n


def long_term(db, portal: str, kpi: str, *, end: date, months: int = 24, filters=None, config=None, env=None) -> dict:
    """``kpi`` by calendar month for the ``months`` (<= 24) months before ``end`` (a month's first
    day, exclusive), each beside the same month a year earlier. One load; each month replays only
    the tickets it can see (created before its end, not closed for good before its start)."""
    from .report import ReportEnv

    months = max(1, min(int(months), 24))
    end = _month_start(end)
    first = _month_start(end, -months)
    earliest = _month_start(first, -12)
    env = env or ReportEnv(db, portal, config)
    tz = env.tz

    def ts(d: date) -> int:
        return int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp())

    flt = Filters.of(filters)
    sources = flt.sources()
    loaded = (
        Loaded()
        if flt.source and not sources
        else load(db, portal, ts(earliest), ts(end), sources=sources, repeat_window=env.repeat_window, ctx=env.ctx)
    )
    ctx = replace(env.ctx, customer_history=loaded.customer_history)
    keep = matcher(flt, env.tree)
    tickets = sorted(loaded.tickets, key=lambda t: t["created_at"])
    created = [t["created_at"] for t in tickets]
    values = {}
    for i in range(months + 12):
        a, b = _month_start(earliest, i), _month_start(earliest, i + 1)
        p = Period(ts(a), ts(b), tz)
        facts = []
        for t in tickets[: bisect_left(created, p.end)]:  # created before the month's end ...
            if t["closed_at"] is not None and t["closed_at"] < p.start:
                continue  # ... and not closed for good before it
            f = loaded.facts(t, p.start, p.end, ctx)
            if f is not None and (keep is None or keep(f)):
                facts.append(f)
        values[f"{a.year:04d}-{a.month:02d}"] = month_value(kpi, facts, p, ctx, env)
    rows = []
    for i in range(months):
        a = _month_start(first, i)
        ly = _month_start(a, -12)
        key, lkey = f"{a.year:04d}-{a.month:02d}", f"{ly.year:04d}-{ly.month:02d}"
        (v, n), (lv, ln) = values[key], values[lkey]
        rows.append(
            {
                "month": key,
                "value": v,
                "n": n,
                "year_ago": lv,
                "year_ago_n": ln,
                "delta": (v - lv) if v is not None and lv is not None else None,
            }
        )
    return {"kpi": kpi, "from": first.isoformat(), "to": end.isoformat(), "months": rows}
