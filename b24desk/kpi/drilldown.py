"""The tickets behind a number: which tickets a KPI counted, and each one's own value.

Built on the engine's per-ticket computation (``engine.ticket_facts``, the same replay
``build_report`` runs), never a second engine: for the common KPIs a one-line reading of the
engine's ``Facts`` says whether a ticket is in the KPI's population and what it contributed; any
other KPI falls back to ``engine.aggregate`` run on that ticket alone (exact by construction,
slower). tests/test_api_drilldown.py checks, for every KPI, that the members counted here are the
``n`` of ``build_report`` and that the durations here summarise to the report's avg/median/p90.

Also gives what charts need from the same replay: per-ticket durations (distributions) and
weekly series (trend), so the web layer never re-derives a KPI itself.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import replace

from ..model import OPEN, RESOLVED
from . import cells as cells_mod
from . import derived
from .engine import DURATION_KPIS, aggregate
from .filters import Filters, matcher
from .load import load
from .report import ReportEnv
from .stats import summary

# kpi -> (kind, population(f), contribution(f, cal)); kind: "count" (the members are the hits),
# "share" (members = population, hit = contribution), "duration"/"number" (the ticket's value).
_LAST_AT = derived.COLUMNS.index("last_at")  # a kept row's last event
_C = lambda f: f.in_c  # noqa: E731
_R = lambda f: f.in_r  # noqa: E731
MEMBERSHIP = {
    "tickets_total": ("count", _C, lambda f, cal: True),
    "tickets_per_day": ("count", _C, lambda f, cal: True),
    "first_response_time": (
        "duration",
        lambda f: f.in_c and f.first_reply is not None,
        lambda f, cal: max(0, f.first_reply - f.t["created_at"]),
    ),
    "first_response_time_business": (
        "duration",
        lambda f: f.in_c and f.first_reply is not None,
        lambda f, cal: f.frt_b,
    ),
    "first_response_sla_share": ("share", lambda f: f.in_c and f.frt_sla is not None, lambda f, cal: bool(f.frt_sla)),
    "unanswered_share": ("share", _C, lambda f, cal: f.first_reply is None and f.state == OPEN),
    "resolution_time": ("duration", _R, lambda f, cal: f.resolution_at - f.t["created_at"]),
    "resolution_time_business": (
        "duration",
        _R,
        lambda f, cal: f.res_b,
    ),
    "resolved_count": ("count", _R, lambda f, cal: True),
    "resolved_by_priority": ("count", _R, lambda f, cal: True),
    "top_agents": ("count", _R, lambda f, cal: True),
    "resolved_share": ("share", _C, lambda f, cal: f.state == RESOLVED),
    "backlog": ("count", lambda f: f.open_at_end, lambda f, cal: True),
    "overdue_count": ("count", lambda f: f.in_a and f.deadline is not None and f.overdue, lambda f, cal: True),
    "overdue_share": ("share", lambda f: f.in_a and f.deadline is not None, lambda f, cal: bool(f.overdue)),
    "task_efficiency": ("share", lambda f: f.in_a, lambda f, cal: bool(f.overdue)),
    "transferred_share": ("share", _C, lambda f, cal: f.transfers > 0),
    "transfers_per_ticket": ("number", _C, lambda f, cal: f.transfers),
    "fcr_share": ("share", _R, lambda f, cal: f.replies <= 1 and not f.transfers and not f.reopens),
    "one_touch_share": ("share", _R, lambda f, cal: f.replies <= 1),
    "reopen_share": ("share", _R, lambda f, cal: f.reopens > 0),
    "correctly_qualified_share": ("share", _C, lambda f, cal: not f.requalified),
    "interactions_per_ticket": ("number", _R, lambda f, cal: f.interactions),
    "handle_time": ("duration", lambda f: f.in_r and f.handle is not None, lambda f, cal: f.handle),
    "rated_share": ("share", _R, lambda f, cal: f.t["rating"] is not None),
    "csat": ("share", lambda f: f.in_r and f.t["rating"] is not None, lambda f, cal: f.t["rating"] >= 4),
    "nps": ("number", lambda f: f.in_r and f.t["nps"] is not None, lambda f, cal: f.t["nps"]),
    "ces": ("share", lambda f: f.in_r and f.t["ces"] is not None, lambda f, cal: f.t["ces"] == 5),
    "callback_share": ("share", _R, lambda f, cal: bool(f.callback)),
    "requester_wait_time": ("duration", lambda f: f.in_r and f.work is not None, lambda f, cal: f.work),
    "requester_wait_time_business": ("duration", lambda f: f.in_r and f.work is not None, lambda f, cal: f.work_b),
    "agent_wait_time": ("duration", lambda f: f.in_r and f.wait_customer is not None, lambda f, cal: f.wait_customer),
    "agent_wait_time_business": (
        "duration",
        lambda f: f.in_r and f.wait_customer is not None,
        lambda f, cal: f.wait_customer_b,
    ),
    "ccei": ("count", _R, lambda f, cal: True),
}


class Replay:
    """One load and replay of a period's tickets (after the report's filters), reusable for
    drilldowns, distributions and the weekly trend."""

    def __init__(
        self,
        db,
        portal: str,
        date_from,
        date_to,
        *,
        filters=None,
        config: dict | None = None,
        env: ReportEnv | None = None,
        extra_before: int = 0,
    ):
        self.env = env or ReportEnv(db, portal, config)
        self.filters = Filters.of(filters)
        self.period = self.env.period(date_from, date_to)
        sources = self.filters.sources()
        self.loaded = load(
            db,
            portal,
            self.period.start - extra_before,
            self.period.end,
            sources=sources,
            repeat_window=self.env.repeat_window,
            ctx=self.env.ctx,
            ends=(self.period.end,),
        )
        if self.filters.source and not sources:
            self.loaded.tickets = []
        self.ctx = replace(self.env.ctx, customer_history=self.loaded.customer_history)
        self.keep = matcher(self.filters, self.env.tree)
        self.facts = self.facts_between(self.period.start, self.period.end)
        self.cells = []  # a replay of its own reads every ticket

    @classmethod
    def of_pass(cls, rp) -> "Replay":
        """The replay a ``ReportPass`` already made (its load covers the previous period too, so
        the current period's facts are the report's own): no second load or replay."""
        self = cls.__new__(cls)
        self.env, self.filters, self.period = rp.env, rp.filters, rp.period
        self.loaded, self.ctx, self.keep = rp.loaded, rp.ctx, rp.keep
        # one fact per ticket: the report's dormant aggregates (derived.dormant) stand for many
        self.facts = [f for f in rp.fc if "dormant" not in f.t]
        # the settled cells the pass read instead of their tickets (cells.py): the series and the
        # durations add their tallies; nothing else of a replay can be made from them
        self.cells = rp.cells_c
        return self

    def facts_between(self, start: int, end: int) -> list:
        out = []
        facts_of = self.loaded.facts
        for t in self.loaded.tickets:
            closed = t["closed_at"]
            if (t["created_at"] or 0) >= end or (closed is not None and closed < start):
                continue  # created later, or closed for good before the window: in no population
            f = facts_of(t, start, end, self.ctx)
            if f is not None and (self.keep is None or self.keep(f)):
                out.append(f)
        return out

    # --- drilldown --------------------------------------------------------------------------
    def members(self, kpi: str) -> list[dict]:
        """``[{source, source_id, hit, value}]`` for every ticket the KPI counted (its ``n``)."""
        if self.cells:
            raise ValueError("a replay of a pass that read settled cells lists no tickets")
        cal = self.env.calendar
        rule = MEMBERSHIP.get(kpi)
        out = []
        if rule is not None:
            kind, pop, contrib = rule
            for f in self.facts:
                if pop(f):
                    v = contrib(f, cal)
                    out.append(_row(f, kind, v))
            return out
        p = self.period
        for f in self.facts:  # any other KPI: the engine on this ticket alone
            val = aggregate([f], p.start, p.end, p.days, self.ctx, self.env.users).get(kpi)
            if val is None or not val.n:
                continue
            v = val.value
            if isinstance(v, dict):
                v = v.get("avg")
            out.append(_row(f, "number", v))
        return out

    def durations(self, kpi: str) -> list:
        """The per-ticket durations a duration KPI summarises (for its distribution chart)."""
        if kpi not in DURATION_KPIS or kpi not in MEMBERSHIP:
            raise ValueError(f"{kpi!r} is not a duration KPI")
        _kind, pop, contrib = MEMBERSHIP[kpi]
        cal = self.env.calendar
        out = [contrib(f, cal) for f in self.facts if pop(f)]
        if self.cells:
            name = _CELL_VALUES.get(kpi)
            if name is None:
                raise ValueError(f"settled cells keep no per-ticket {kpi!r}")
            for c in self.cells:
                out.extend(getattr(c.tally, name))
        return out

    def series(self, bounds: list[tuple[int, int]]) -> list[dict]:
        """Per ``[start, end)``: tickets created, resolved, FRT and resolution summaries, each
        from the engine's replay as of that window's end (the report's own semantics).

        A ticket whose last event is before a window's end has the same facts as of that end as
        as of the period's (nothing happened in between): its period facts say whether it was
        created or resolved in the window, without a replay per window. Only the tickets whose log
        goes on past a window's end (or is not known) are read off as of that end."""
        if not bounds:
            return []
        frt, res = MEMBERSHIP["first_response_time"], MEMBERSHIP["resolution_time"]
        starts = [s for s, _e in bounds]
        created, resolved = [0] * len(bounds), [0] * len(bounds)
        frts, ress = [[] for _ in bounds], [[] for _ in bounds]

        def window(at):  # the window holding ``at``, or None
            i = bisect_right(starts, at) - 1
            return i if i >= 0 and at < bounds[i][1] else None

        last = {}  # id(ticket) -> its last event, from its period facts
        for f in self.facts:
            t, la = f.t, f.last_at
            last[id(t)] = la
            i = window(t["created_at"] or 0)
            if i is not None and (la is None or la < bounds[i][1]):
                created[i] += 1
                if frt[1](f):
                    frts[i].append(frt[2](f, None))
            at = f.resolution_at
            if f.state == RESOLVED and at is not None:
                i = window(at)
                if i is not None and (la is None or la < bounds[i][1]):
                    resolved[i] += 1
                    ress[i].append(res[2](f, None))
        # the settled cells: a cell's piece lies inside one window, and its tickets were created
        # and resolved there (their whole log is inside the piece)
        for c in self.cells:
            if c.kind != cells_mod.PIECE:
                raise ValueError("a month's settled cell has no weekly series")
            i = window(c.piece)
            if i is None:
                continue  # before the first window drawn (a long period's oldest weeks)
            if c.end > bounds[i][1]:
                raise ValueError("a settled cell's piece is not inside one window of the series")
            tally = c.tally
            created[i] += tally.nC
            resolved[i] += tally.nR
            frts[i].extend(tally.frt)
            ress[i].extend(tally.res)
        # the others, window by window as before, where their log may go on past its end
        unknown = float("inf")
        stored = self.loaded.stored
        pending = []
        for t in self.loaded.tickets:
            la = last.get(id(t), unknown)
            if la is unknown and (row := stored.get((t["source"], t["source_id"]))) is not None:
                la = row[_LAST_AT]  # no period facts (in no population, or filtered out)
            if la is not None and la >= bounds[0][1]:
                pending.append((t["created_at"] or 0, la, t))
        pending.sort(key=lambda p: p[0])
        self.loaded.prepare(starts[0], [e for _s, e in bounds], [p[2] for p in pending])
        facts_of, keep, ctx = self.loaded.facts, self.keep, self.ctx
        for i, (start, end) in enumerate(bounds):
            for created_at, la, t in pending:
                if created_at >= end:
                    break  # created later (by creation time)
                closed = t["closed_at"]
                if la < end or (closed is not None and closed < start):
                    continue  # counted above from its period facts, or closed before the window
                f = facts_of(t, start, end, ctx)
                if f is None or (keep is not None and not keep(f)):
                    continue
                if f.in_c:
                    created[i] += 1
                    if frt[1](f):
                        frts[i].append(frt[2](f, None))
                if f.in_r:
                    resolved[i] += 1
                    ress[i].append(res[2](f, None))
        return [
            {
                "start": start,
                "end": end,
                "created": created[i],
                "resolved": resolved[i],
                "first_response_time": summary(frts[i]),
                "resolution_time": summary(ress[i]),
            }
            for i, (start, end) in enumerate(bounds)
        ]


# the Tally list holding a duration KPI's per-ticket values exactly as MEMBERSHIP computes them
_CELL_VALUES = {"first_response_time": "frt", "resolution_time": "res"}


def _row(f, kind: str, v) -> dict:
    t = f.t
    hit = bool(v) if kind in ("count", "share") else None
    value = v if kind in ("duration", "number") else None
    return {
        "source": t["source"],
        "source_id": t["source_id"],
        "hit": hit,
        "value": value,
        "responsible": f.resp_end,
        "priority": f.priority,
        "created_at": t["created_at"],
        "state": f.state,
    }


def kind_of(kpi: str) -> str:
    rule = MEMBERSHIP.get(kpi)
    return rule[0] if rule else "number"
