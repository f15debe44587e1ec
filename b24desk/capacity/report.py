"""``build_capacity``: the ``b24desk.capacity/1`` report (shared/spec/interfaces.md "Capacity").

Reads only aggregates from the store (tickets per quarter-hour, who acted per quarter-hour, tracked
time per ticket), so a year of a million tickets stays a few grouped queries; everything after that
is the pure maths of ``slots``, ``forecast`` and ``erlang``.

Two kinds of work are staffed differently:

* chat-like sources (open lines; ``capacity.chat_sources``): agents needed per weekday × hour by
  Erlang C, from the slot's measured arrivals, the handle time (``capacity.chat_aht_s``, else the
  median time from the first live answer to the close of the period's closed dialogs), the
  first-response target (``capacity.target_answer_s``, else the ``first_response_time`` target)
  and the share to meet (``capacity.target_share``);
* tickets (tasks, deals, smart processes): agents needed per weekday from the day's volume (what
  arrives on a day off waits for the next working day) and the tracked handle time where the
  source tracks it (``worked`` events), else the load norm (15–20 requests per agent a day, seed
  000): ``ceil(volume / upper norm)``.

Agents active are those who replied to or changed a ticket in the slot (not its author, not a bot,
within the support departments when configured); a slot's value is their mean over its occurrences.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
from datetime import date, datetime, timedelta

from ..kpi.engine import NO_USER
from ..kpi.load import source_clause
from ..kpi.periods import Period, make_period
from ..kpi.report import ReportEnv
from . import forecast as fc
from .erlang import agents_needed, service_level, traffic
from .slots import (
    EPOCH_ORDINAL,
    HOURS,
    WEEKDAYS,
    LocalClock,
    daily_counts,
    next_mondays,
    per_slot_mean,
    per_weekday_mean,
    period_days,
    week_label,
    weekly_counts,
)
from .text import forecast_text, gap_text

SCHEMA = "b24desk.capacity/1"
DEFAULT_WEEKS = 12
MAX_WEEKS_AHEAD = 8
DAILY_HISTORY = 16 * 7
LIGHT_METHODS = ("naive", "drift")
MAX_DAYS = 3 * 366
AGENT_KINDS = (
    "reply",
    "status",
    "assigned",
    "resolved",
    "rejected",
    "reopened",
    "field_changed",
    "comment",
    "worked",
    "call_out",
    "escalated",
)
DEFAULTS = {
    "norm_per_agent_day": [15, 20],
    "target_share": 0.8,
    "chat_sources": ["openlines"],
    "occupancy": 0.85,
    "backtest_weeks": 8,
    "chat_aht_min_s": 60,
    "chat_aht_max_s": 3600,
    "chat_aht_default_s": 300,
    "service_hours": "calendar",
}


class CapacityError(ValueError):
    """Bad input (period, horizon, selector, department): the caller's 4xx. ``code`` names it."""

    def __init__(self, code: str, message: str, **params):
        super().__init__(message)
        self.code, self.params = code, params


def settings(config: dict) -> dict:
    """The ``[capacity]`` table over its defaults, checked (a bad value is a CapacityError)."""
    cap = dict(DEFAULTS)
    cap.update((config or {}).get("capacity") or {})
    norm = cap["norm_per_agent_day"]
    if (
        not isinstance(norm, (list, tuple))
        or len(norm) != 2
        or not all(isinstance(x, (int, float)) and x > 0 for x in norm)
        or norm[0] > norm[1]
    ):
        raise CapacityError("bad_config", "capacity.norm_per_agent_day must be [low, high], 0 < low <= high")
    if "target_answer_s" not in cap:
        frt = ((config or {}).get("targets") or {}).get("first_response_time") or {}
        cap["target_answer_s"] = frt.get("target", 600) if isinstance(frt, dict) else 600
    chat = cap["chat_sources"]
    if not isinstance(chat, (list, tuple)) or not all(isinstance(x, str) and x for x in chat):
        raise CapacityError("bad_config", 'capacity.chat_sources must be a list of sources, e.g. ["openlines"]')
    if cap.get("chat_aht_s") is not None and (
        isinstance(cap["chat_aht_s"], bool)
        or not isinstance(cap["chat_aht_s"], (int, float))
        or not 1 <= cap["chat_aht_s"] <= 86400
    ):
        raise CapacityError("bad_config", "capacity.chat_aht_s must be seconds in [1, 86400]")
    for key, lo, hi in (
        ("target_share", 0.01, 0.999),
        ("occupancy", 0.1, 1.0),
        ("target_answer_s", 1, 86400 * 7),
        ("backtest_weeks", 2, 26),
    ):
        v = cap[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise CapacityError("bad_config", f"capacity.{key} must be a number in [{lo}, {hi}]")
    return cap


def default_period(tz, now: float | None = None) -> Period:
    """The last ``DEFAULT_WEEKS`` full ISO weeks (Monday 00:00 local) before ``now``."""
    today = datetime.fromtimestamp(int(now if now is not None else time.time()), tz).date()
    monday = today - timedelta(days=today.isoweekday() - 1)
    start = monday - timedelta(weeks=DEFAULT_WEEKS)
    return make_period(start.isoformat(), monday.isoformat(), tz)


def check_weeks_ahead(value) -> int:
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        raise CapacityError("bad_weeks_ahead", "weeks_ahead must be a whole number from 1 to 8") from None
    if not 1 <= n <= MAX_WEEKS_AHEAD:
        raise CapacityError("bad_weeks_ahead", "weeks_ahead must be a whole number from 1 to 8")
    return n


_LINE = re.compile(r"^openlines:line=([A-Za-z0-9_]+)$")


def _needs_ticket(sources) -> bool:
    """A selector narrowed by ``=`` (a category, a group, a line) is known from the ticket row only."""
    return any("=" in str(s) for s in sources or ())


def scope_clause(sources, alias: str = "") -> tuple[str, list]:
    """SQL for the ``--source`` selectors, as the KPI engine reads them (``load.source_clause``),
    except that ``openlines:line=N`` also matches line N of dialogs synced under ``openlines``."""
    if not sources:
        return "", []
    parts, params, rest = [], [], []
    for sel in sources:
        m = _LINE.match(str(sel).strip())
        if m:
            parts.append(f"({alias}source = 'openlines' and ({alias}line = ? or {alias}selector = ?))")
            params += [m.group(1), sel]
        else:
            rest.append(sel)
    if rest:
        sql, ps = source_clause(rest)
        if sql:
            inner = sql[len(" and ") :]
            inner = inner.replace("source in (", f"{alias}source in (").replace(
                "selector in (", f"{alias}selector in ("
            )
            parts.append(inner)
            params += ps
    return (" and (" + " or ".join(parts) + ")") if parts else "", params


def build_capacity(
    db,
    portal: str,
    date_from=None,
    date_to=None,
    *,
    weeks_ahead=4,
    source=None,
    department=None,
    config: dict | None = None,
    env: ReportEnv | None = None,
    now: float | None = None,
    light: bool = False,
) -> dict:
    """The capacity report for ``[date_from, date_to)`` (default: the last 12 full weeks).
    ``light``: the weekly forecast from the pure-Python candidates only and no daily forecast, so a
    background job (the monthly digest) never loads the statistics libraries."""
    env = env or ReportEnv(db, portal, config)
    cap = settings(env.config)
    weeks_ahead = check_weeks_ahead(weeks_ahead)
    if bool(date_from) != bool(date_to):
        raise CapacityError("bad_period", "give both 'from' and 'to', or neither")
    try:
        period = env.period(date_from, date_to) if date_from else default_period(env.tz, now)
    except ValueError as exc:
        raise CapacityError("bad_period", str(exc)) from None
    if period.end - period.start > MAX_DAYS * 86400:
        raise CapacityError("bad_period", "the period may span at most three years")
    sources = [source] if isinstance(source, str) and source else (list(source) if source else None)
    members = None
    if department:
        deps = [department] if isinstance(department, str) else list(department)
        for d in deps:
            if d not in env.departments:
                raise CapacityError("bad_department", f"unknown department {d!r}", department=d)
        roots = frozenset(deps)
        members = sorted(
            u for u, info in env.users.items() if any(env.tree.within(dep, roots) for dep in info["departments"])
        )
    chat = frozenset(cap["chat_sources"])
    start, end = period.start, period.end
    conn = db.conn
    src_sql, src_params = scope_clause(sources)
    src_sql_t, _same = scope_clause(sources, "t.")
    dep_sql, dep_params = "", []
    if members is not None:
        dep_sql, dep_params = " and responsible_id in (select value from json_each(?))", [json.dumps(members)]

    clock = LocalClock(start, end, period.tz)
    hours = clock.hours()

    # 1. tickets created per local hour, chat-like apart (grouped by the store)
    counts_all, counts_chat = {}, {}
    local, local_params = clock.sql("created_at")
    for lh, src, n in conn.execute(
        f"select {local} / 3600, source, count(*) from tickets where portal = ? and created_at >= ?"
        f" and created_at < ? and coalesce(deleted, 0) = 0{src_sql}{dep_sql} group by 1, 2",
        local_params + [portal, start, end] + src_params + dep_params,
    ):
        counts_all[lh] = counts_all.get(lh, 0) + n
        if src in chat:
            counts_chat[lh] = counts_chat.get(lh, 0) + n

    # 2. who acted in which local hour (distinct agent, hour, kind of work): not the ticket's author,
    # not the system or a bot, within the support departments / the chosen department
    ctx = env.ctx
    allowed = None
    if ctx.support_members is not None:
        allowed = set(ctx.support_members)
    if members is not None:
        allowed = set(members) if allowed is None else allowed & set(members)
    kinds = ",".join("?" * len(AGENT_KINDS))
    chat_marks = ",".join("?" * len(chat)) or "''"
    local_e, local_e_params = clock.sql("e.at")
    who = " and e.actor_id in (select value from json_each(?))" if allowed is not None else ""
    # distinct (hour, agent, chat?) once, then counted per local hour and per local day by SQLite.
    # Only an actor who is also some ticket's author needs the ticket row (is it their own ticket?):
    # everyone else is read from the events index alone (m_capacity_001), unless a narrowed selector
    # (a category, a group, a line) needs the ticket's columns anyway. (On that path the work done on
    # a ticket since deleted from the portal still counts: it was done.) ``cross join``: the events
    # of the period first, each ticket by its key; left to itself the planner may read every ticket
    # of the portal first (tickets_values looks like 10 rows to it on a store analyzed before that
    # index was added: 2.2 s at 1M tickets instead of 0.06 s).
    bots = json.dumps(sorted(set(NO_USER[1:]) | set(ctx.bots)))
    allowed_params = [json.dumps(sorted(allowed))] if allowed is not None else []
    base_where = (
        f"e.portal = ? and e.at >= ? and e.at < ? and e.kind in ({kinds}) and e.actor_id is not null"
        " and e.actor_id not in (select value from json_each(?))"
    )
    joined = (
        "select {lh} / 3600 as lh, e.actor_id as actor, t.source in ({chat}) as chat from events e"
        " cross join tickets t on t.portal = e.portal and t.source = e.source and t.source_id = e.source_id"
        " where {where} and (t.author_id is null or e.actor_id != t.author_id)"
        " and coalesce(t.deleted, 0) = 0{src}{who}{extra} group by 1, 2, 3"
    )
    if _needs_ticket(sources):
        parts = [joined.format(lh=local_e, chat=chat_marks, where=base_where, src=src_sql_t, who=who, extra="")]
        params = local_e_params + sorted(chat) + [portal, start, end, *AGENT_KINDS, bots] + src_params + allowed_params
    else:
        # authors who may also act: the portal's users among them (customers never act as agents);
        # with no users synced yet, every author
        known_users = (
            {str(r[0]) for r in conn.execute("select id from users where portal = ?", [portal])}
            if "users" in db.table_names()
            else set()
        )
        if known_users:  # one seek per user (every distinct author: 0.24 s at 1M tickets)
            authors_list = [
                r[0]
                for r in conn.execute(
                    "select value from json_each(?) where exists"
                    " (select 1 from tickets where portal = ? and author_id = value)",
                    [json.dumps(sorted(known_users)), portal],
                )
            ]
        else:
            authors_list = [
                r[0]
                for r in conn.execute(
                    "select distinct author_id from tickets where portal = ? and author_id is not null", [portal]
                )
            ]
        authors = json.dumps(authors_list)
        e_src, e_src_params = scope_clause(sources, "e.")
        plain = (
            f"select {local_e} / 3600 as lh, e.actor_id as actor, e.source in ({chat_marks}) as chat"
            f" from events e where {base_where} and e.actor_id not in (select value from json_each(?))"
            f"{e_src}{who} group by 1, 2, 3"
        )
        mixed = joined.format(
            lh=local_e,
            chat=chat_marks,
            where=base_where,
            src=src_sql_t,
            who=who,
            extra=" and e.actor_id in (select value from json_each(?))",
        )
        parts = [plain]
        params = (
            local_e_params
            + sorted(chat)
            + [portal, start, end, *AGENT_KINDS, bots, authors]
            + e_src_params
            + allowed_params
        )
        if authors_list:
            parts.append(mixed)
            params += (
                local_e_params
                + sorted(chat)
                + [portal, start, end, *AGENT_KINDS, bots]
                + src_params
                + allowed_params
                + [authors]
            )
    distinct = (
        "count(distinct actor), count(distinct case when chat then actor end),"
        " count(distinct case when chat then null else actor end)"
    )
    hour_all, hour_chat, hour_tix, day_all, day_tix = {}, {}, {}, {}, {}
    for level, idx, n_all, n_chat, n_tix in conn.execute(
        f"with x as materialized ({' union '.join(parts)})"
        f" select 0, lh, {distinct} from x group by lh"
        f" union all select 1, lh / 24, {distinct} from x group by lh / 24",
        params,
    ):
        if level == 0:
            hour_all[idx], hour_chat[idx], hour_tix[idx] = n_all, n_chat, n_tix
        else:
            day_all[idx + EPOCH_ORDINAL], day_tix[idx + EPOCH_ORDINAL] = n_all, n_tix

    arr = per_slot_mean(counts_all, hours)
    active_slot = per_slot_mean(hour_all, hours)
    day_hours = period_days(hours)
    per_date = {d: n for d, n in day_all.items() if d in day_hours}  # date -> agents at work

    # 3. forecasts from the daily series
    daily = daily_counts(counts_all, hours)
    weeks = weekly_counts(daily)
    wf = fc.weekly(
        [n for _w, n in weeks], weeks_ahead, int(cap["backtest_weeks"]), methods=LIGHT_METHODS if light else None
    )
    full_days = [d for d in sorted(daily) if day_hours[d] >= 23]
    # the daily model reads the last 16 weeks: the weekly shape and the recent trend, not last year's
    df = fc.daily([daily[d] for d in full_days[-DAILY_HISTORY:]], weeks_ahead * 7) if not light else fc.Forecast("none")
    forecast, forecast_daily = [], []
    if weeks:
        for monday, (p, lo, hi) in zip(next_mondays(weeks[-1][0], weeks_ahead), wf.values):
            forecast.append(
                {
                    "week": week_label(monday),
                    "created": round(p),
                    "low": None if lo is None else math.floor(lo),
                    "high": None if hi is None else math.ceil(hi),
                }
            )
    if full_days:
        first = date.fromordinal(full_days[-1] + 1)
        for i, (p, lo, hi) in enumerate(df.values):
            forecast_daily.append(
                {
                    "date": (first + timedelta(days=i)).isoformat(),
                    "created": round(p, 1),
                    "low": None if lo is None else round(lo, 1),
                    "high": None if hi is None else round(hi, 1),
                }
            )

    # 4. staffing: chat-like per slot (Erlang C), tickets per weekday (handle time or norm)
    staffing, gaps = [], []
    target_s, share = int(cap["target_answer_s"]), float(cap["target_share"])
    chat_aht, chat_aht_source = None, None
    if counts_chat:
        chat_aht, chat_aht_source = _chat_aht(
            conn, portal, start, end, chat, src_sql_t, src_params, dep_sql, dep_params, cap
        )
        in_hours = _service_hours(cap, env.calendar)
        arr_chat = per_slot_mean(counts_chat, hours)
        act_chat = per_slot_mean(hour_chat, hours)
        for wd in WEEKDAYS:
            for h in HOURS:
                # rounded as shown, so every row can be recomputed from what it says
                lam = round(arr_chat.get((wd, h), 0.0), 2)
                need = agents_needed(lam, chat_aht, target_s, share)
                active = round(act_chat.get((wd, h), 0.0), 1)
                load = traffic(lam, chat_aht)
                staffing.append(
                    {
                        "weekday": wd,
                        "hour": h,
                        "arrivals_per_hour": round(lam, 2),
                        "aht_s": chat_aht,
                        "target_answer_s": target_s,
                        "target_share": share,
                        "agents_needed": need,
                        "agents_active": round(active, 1),
                        "short": _short(need, active) if in_hours(wd, h) else 0,
                        "in_service_hours": in_hours(wd, h),
                        "service_level_active": (
                            round(service_level(round(active), load, chat_aht, target_s), 3) if lam > 0 else None
                        ),
                    }
                )
        gaps += _slot_gaps(staffing)

    staffing_daily, ticket_aht, ticket_aht_n = [], None, 0
    counts_tickets = {q: n - counts_chat.get(q, 0) for q, n in counts_all.items()}
    if any(counts_tickets.values()):
        ticket_aht, ticket_aht_n = _ticket_aht(
            conn, portal, start, end, chat, src_sql_t, src_params, dep_params, members is not None
        )
        staffing_daily = _daily_staffing(counts_tickets, day_tix, hours, env.calendar, cap, ticket_aht)
        gaps += [dict(g, from_hour=None, to_hour=None) for g in _day_gaps(staffing_daily)]

    # 5. summary: load per agent-day now and as forecast
    norm = [float(x) if not float(x).is_integer() else int(x) for x in cap["norm_per_agent_day"]]
    agent_days = sum(per_date.values())
    created_total = sum(counts_all.values())
    load_now = created_total / agent_days if agent_days else None
    # agent-days per full week: what the team gave while the period's weeks were worked
    week_agent_days = _week_agent_days(per_date, weeks)
    peak_load, peak_week = None, None
    if week_agent_days:
        for row in forecast:
            load = row["created"] / week_agent_days
            if peak_load is None or load > peak_load:
                peak_load, peak_week = load, row["week"]
    exceeds = peak_load is not None and peak_load > norm[1]
    shorts = [r["short"] for r in staffing] + [r["short"] for r in staffing_daily]
    summary = {
        "agents_short_peak": max(shorts) if shorts else 0,
        "load_per_agent_day": None if load_now is None else round(load_now, 1),
        "norm_per_agent_day": norm,
        "short_agent_hours_per_week": sum(r["short"] for r in staffing),
        "created": created_total,
        "agent_days": agent_days,
        "forecast_load_per_agent_day": None if peak_load is None else round(peak_load, 1),
        "forecast_peak_week": peak_week,
        "forecast_exceeds_norm": exceeds,
        "forecast_note": (
            {
                "ru": forecast_text(peak_load, norm[1], peak_week, "ru"),
                "en": forecast_text(peak_load, norm[1], peak_week, "en"),
            }
            if exceeds
            else None
        ),
        "chat_aht_s": chat_aht,
        "chat_aht_source": chat_aht_source,
        "ticket_aht_s": ticket_aht,
        "ticket_aht_tickets": ticket_aht_n,
        "gaps": gaps,
    }
    return {
        "schema": SCHEMA,
        "portal": portal,
        "timezone": env.tz_name,
        "period": period.as_json(),
        "filters": {
            "source": (sources[0] if sources and len(sources) == 1 else sources),
            "department": department or None,
        },
        "arrivals": [
            {
                "weekday": wd,
                "hour": h,
                "created_per_hour": round(arr.get((wd, h), 0.0), 2),
                "agents_active": round(active_slot.get((wd, h), 0.0), 1),
            }
            for wd in WEEKDAYS
            for h in HOURS
        ],
        "history": [{"week": w, "created": n} for w, n in weeks],
        "forecast": forecast,
        "forecast_daily": forecast_daily,
        "backtest": {
            "method": wf.method,
            "weeks": wf.backtest_points,
            "mape": None if wf.mape is None else round(wf.mape, 3),
            "candidates": {k: (None if v is None else round(v, 3)) for k, v in wf.scores.items()},
            "daily": {
                "method": df.method,
                "days": df.backtest_points,
                "mape": None if df.mape is None else round(df.mape, 3),
            },
        },
        "staffing": staffing,
        "staffing_daily": staffing_daily,
        "summary": summary,
    }


def _service_hours(cap: dict, calendar):
    """Which slots must be staffed: ``capacity.service_hours`` = "calendar" (the work calendar's
    days and hours: a chat outside them waits for the morning) or "always" (a 24/7 line)."""
    mode = cap.get("service_hours", "calendar")
    if mode == "always":
        return lambda wd, h: True
    if mode != "calendar":
        raise CapacityError("bad_config", 'capacity.service_hours must be "calendar" or "always"')
    days, a, b = calendar.work_days, calendar.work_start, calendar.work_end
    return lambda wd, h: wd in days and h * 60 + 60 > a and h * 60 < b


def _short(need: int, active: float) -> int:
    return max(0, math.floor(need - active + 0.5))


def _slot_gaps(rows: list) -> list:
    """Runs of consecutive hours on one weekday short of the same number of agents."""
    short = {(r["weekday"], r["hour"]): r["short"] for r in rows}
    out = []
    for wd in WEEKDAYS:
        h = 0
        while h < 24:
            s = short.get((wd, h), 0)
            if s <= 0:
                h += 1
                continue
            a = h
            while h < 24 and short.get((wd, h), 0) == s:
                h += 1
            out.append(
                {
                    "weekday": wd,
                    "from_hour": a,
                    "to_hour": h,
                    "short": s,
                    "text": {"ru": gap_text(s, wd, a, h, "ru"), "en": gap_text(s, wd, a, h, "en")},
                }
            )
    return out


def _day_gaps(rows: list) -> list:
    return [
        {
            "weekday": r["weekday"],
            "short": r["short"],
            "text": {
                "ru": gap_text(r["short"], r["weekday"], lang="ru"),
                "en": gap_text(r["short"], r["weekday"], lang="en"),
            },
        }
        for r in rows
        if r["short"] > 0
    ]


def _chat_aht(conn, portal, start, end, chat, src_sql, src_params, dep_sql, dep_params, cap):
    """Configured, else the median first-answer-to-close time of the period's closed dialogs."""
    if cap.get("chat_aht_s"):
        return int(cap["chat_aht_s"]), "config"
    marks = ",".join("?" * len(chat))
    rows = conn.execute(
        "select t.closed_at - min(e.at) from tickets t join events e on e.portal = t.portal"
        " and e.source = t.source and e.source_id = t.source_id and e.kind = 'reply'"
        f" where t.portal = ? and t.source in ({marks}) and t.closed_at >= ? and t.closed_at < ?"
        f" and t.state = 'resolved' and coalesce(t.deleted, 0) = 0{src_sql}"
        f"{dep_sql.replace('responsible_id', 't.responsible_id')} group by t.source, t.source_id",
        [portal, *sorted(chat), start, end] + src_params + dep_params,
    ).fetchall()
    spans = [r[0] for r in rows if r[0] is not None and r[0] > 0]
    if not spans:
        return int(cap["chat_aht_default_s"]), "default"
    med = statistics.median(spans)
    return int(min(max(med, cap["chat_aht_min_s"]), cap["chat_aht_max_s"])), "measured"


def _ticket_aht(conn, portal, start, end, chat, src_sql, src_params, dep_params, by_dep):
    """Mean tracked seconds per ticket over the non-chat tickets with work logged in the period
    (the period's events first, ``cross join``: see the agents' query in build_capacity)."""
    marks = ",".join("?" * len(chat))
    dep = " and t.responsible_id in (select value from json_each(?))" if by_dep else ""
    rows = conn.execute(
        "select sum(cast(e.to_value as integer)) from events e cross join tickets t on t.portal = e.portal"
        " and t.source = e.source and t.source_id = e.source_id where e.portal = ? and e.kind = 'worked'"
        f" and e.at >= ? and e.at < ? and t.source not in ({marks}) and coalesce(t.deleted, 0) = 0"
        f"{src_sql}{dep} group by e.source, e.source_id",
        [portal, start, end, *sorted(chat)] + src_params + (dep_params if by_dep else []),
    ).fetchall()
    secs = [r[0] for r in rows if r[0] and r[0] > 0]
    if not secs:
        return None, 0
    return int(round(sum(secs) / len(secs))), len(secs)


def _daily_staffing(counts, agents_of_day, hours, calendar, cap, aht) -> list:
    """Per weekday: mean volume to handle (a day off's arrivals wait for the next working day),
    agents that volume needs, and agents who acted on tickets that weekday."""
    daily = daily_counts(counts, hours)
    carry, due = 0, {}
    for d in sorted(daily):
        day = date.fromordinal(d)
        if calendar.is_working_day(day):
            due[d] = daily[d] + carry
            carry = 0
        else:
            due[d] = 0
            carry += daily[d]
    by_day = per_weekday_mean(agents_of_day, daily)
    work_s = (calendar.work_end - calendar.work_start) * 60
    norm_hi = float(cap["norm_per_agent_day"][1])
    per_wd: dict = {}
    for d, n in due.items():
        per_wd.setdefault(date.fromordinal(d).isoweekday(), []).append(n)
    out = []
    for wd in WEEKDAYS:
        vals = per_wd.get(wd)
        if not vals:
            continue
        volume = sum(vals) / len(vals)
        if aht:
            need = math.ceil(volume * aht / (work_s * float(cap["occupancy"])) - 1e-9) if volume else 0
            method = "aht"
        else:
            need = math.ceil(volume / norm_hi - 1e-9) if volume else 0
            method = "norm"
        active = round(by_day.get(wd, 0.0), 1)
        out.append(
            {
                "weekday": wd,
                "created_per_day": round(volume, 1),
                "aht_s": aht,
                "method": method,
                "agents_needed": need,
                "agents_active": round(active, 1),
                "short": _short(need, active),
                "load_per_agent": round(volume / active, 1) if active else None,
            }
        )
    return out


def _week_agent_days(per_date: dict, weeks: list) -> float | None:
    """Mean agent-days (agents active on a date, summed over the week) over the full weeks."""
    if not weeks:
        return None
    totals = []
    for label, _n in weeks:
        y, w = label.split("-W")
        monday = date.fromisocalendar(int(y), int(w), 1).toordinal()
        totals.append(sum(per_date.get(monday + i, 0) for i in range(7)))
    mean = sum(totals) / len(totals)
    return mean or None
