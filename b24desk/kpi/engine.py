"""The KPI maths: pure functions over ticket rows and their event logs (kpi.md sections 2-3).

Two steps, so that a breakdown is just the second step run on a subset:

1. ``ticket_facts(ticket, events, start, end, ctx)`` replays one ticket's log up to ``end`` (the
   period's ``to``) and returns what the KPIs need *as of* ``end``: populations (C, R, A, backlog),
   first reply, transfers, reopens, the responsible, type/priority/deadline, overdue, time per
   status bucket. Nothing after ``end`` changes the answer, except the customer scores on the
   ticket row (rating, NPS, CES), which count as known now.
2. ``aggregate(facts, start, end, ctx)`` turns a list of facts into every KPI value, through a
   ``Tally`` that can also take facts away again (a kept report brought up to date after a write).

Events are tuples ``(at, kind, actor_id, field, from_value, to_value)`` sorted by time; tickets
are store rows (dicts). Resolutions are deduplicated by a small state machine, so a source that
emits both ``status`` and ``resolved`` events, or ``resolved`` on 4 and again on 5, gives one
resolution (the first entry into a closed state after the last reopen).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from ..model import (
    ASSIGNED,
    CALL_OUT,
    COMMENT,
    CUSTOMER_MESSAGE,
    ESCALATED,
    FIELD_CHANGED,
    OPEN,
    PRIORITIES,
    REJECTED,
    REJECTED_EV,
    REOPENED,
    REPLY,
    RESOLVED,
    RESOLVED_EV,
    STATUS,
    WORKED,
    parse_time,
)
from .calendar import WorkCalendar
from .stats import mean, share, summary, summary_sorted

# What the maths reads of a ticket row (the state comes from the event log, not from ``state``).
TICKET_COLUMNS = (
    "source",
    "source_id",
    "type",
    "priority",
    "author_id",
    "customer",
    "responsible_id",
    "created_at",
    "deadline",
    "closed_at",
    "rating",
    "nps",
    "ces",
    "channel",
    "line",
    "handle_time",
)
# kpi.md section 1, default mapping for tasks: 4 (awaiting control) and 5 (completed) are resolved.
DEFAULT_STATUS_STATES = {
    "task": {"1": OPEN, "2": OPEN, "3": OPEN, "4": RESOLVED, "5": RESOLVED, "6": OPEN, "7": REJECTED},
}
DEFAULT_STATUS_BUCKETS = {"task": {"2": "work", "3": "work", "4": "done", "5": "done", "6": "wait_third_party"}}
NO_USER = (None, "", "0")
INTERACTIONS = (REPLY, CUSTOMER_MESSAGE, COMMENT)
TOP_AGENTS = 10

# Every KPI key of kpi.md section 3, in display order, plus the business-time variants.
KPI_KEYS = (
    "tickets_total",
    "tickets_per_day",
    "first_response_time",
    "first_response_time_business",
    "first_response_sla_share",
    "unanswered_share",
    "resolution_time",
    "resolution_time_business",
    "resolved_count",
    "resolved_share",
    "backlog",
    "overdue_count",
    "overdue_share",
    "transferred_share",
    "transfers_per_ticket",
    "resolved_by_priority",
    "fcr_share",
    "reopen_share",
    "correctly_qualified_share",
    "repeat_contact_share",
    "contacts_per_customer",
    "tickets_per_agent_day",
    "interactions_per_ticket",
    "handle_time",
    "rated_share",
    "csat",
    "nps",
    "ces",
    "callback_share",
    "one_touch_share",
    "task_efficiency",
    "requester_wait_time",
    "requester_wait_time_business",
    "agent_wait_time",
    "agent_wait_time_business",
    "top_agents",
    "ccei",
)
DURATION_KPIS = frozenset(
    {
        "first_response_time",
        "first_response_time_business",
        "resolution_time",
        "resolution_time_business",
        "handle_time",
        "requester_wait_time",
        "requester_wait_time_business",
        "agent_wait_time",
        "agent_wait_time_business",
    }
)


class CustomerHistory(dict):
    """customer -> sorted created_at of their tickets (load._history), knowing which customers
    have two tickets or more (the only ones a repeat contact can be: three in four have one) and,
    once asked, which of their tickets are repeat contacts: ``Tally._result`` visits only those
    customers, with a set test instead of two bisects a ticket (a page asks tens of tallies).
    Whoever changes a list in place calls :meth:`changed`."""

    __slots__ = ("_multi", "_entries")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._multi = None
        self._entries = None  # (window, customer -> (hits, every created_at) or None: no hit)

    def multi(self) -> set:
        if self._multi is None:
            self._multi = {c for c, times in self.items() if len(times) >= 2}
        return self._multi

    def entries(self, window: int) -> dict:
        """The memo of :meth:`entry` for ``window``."""
        if self._entries is None or self._entries[0] != window:
            self._entries = (window, {})
        return self._entries[1]

    def entry(self, cust, window: int):
        """None when none of their tickets has another one created within ``window`` before it;
        else ``(first, second)`` for a customer of two tickets (the second repeats the first:
        most of them, kept small), or ``(set of those tickets' created_at, set of all theirs)``."""
        hist = self[cust]
        if len(hist) == 2:
            a, b = hist
            return (a, b) if b - a <= window else None  # a == b: both repeat, b is a
        hits = {c for c in hist if bisect_right(hist, c) - bisect_left(hist, c - window) >= 2}
        return (hits, set(hist)) if hits else None

    def changed(self, customers=None) -> None:
        """Some lists changed in place: those of ``customers``, or any (None)."""
        if customers is None:
            self._multi = self._entries = None
            return
        multi, entries = self._multi, self._entries
        for cust in customers:
            if entries is not None:
                entries[1].pop(cust, None)
            if multi is not None:
                if len(self.get(cust) or ()) >= 2:
                    multi.add(cust)
                else:
                    multi.discard(cust)


class PartialHistory(CustomerHistory):
    """The history of the customers in ``covers`` only: a kept pass whose tickets carried their
    gaps (Context.customer_history None) re-reads, after a write, the history of the written
    tickets' customers, the only ones whose repeat contacts a write can change (a gap counts its
    own customer's tickets); the others' gaps still tell."""

    __slots__ = ("covers",)

    def __init__(self, covers=frozenset(), *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.covers = frozenset(covers)


def _repeats_in(hist: list, times, window: int) -> bool:
    """Whether one of ``times`` has another ticket of ``hist`` (sorted) within ``window`` before it."""
    for c in times:
        if bisect_right(hist, c) - bisect_left(hist, c - window) >= 2:
            return True
    return False


def _repeat_customers(customers: dict, history: dict, window: int) -> int:
    """How many of ``customers`` (customer -> created_at of their tickets in a tally) had another
    ticket created within ``window`` before one of theirs, in ``history`` (all the tickets of the
    scope, customer -> sorted created_at) or, for a customer it does not know, among their own."""
    repeat = 0
    if isinstance(history, CustomerHistory):
        entries, entry = history.entries(window), history.entry
        for cust in customers.keys() & history.multi():  # set operations loop in C, over the smaller side
            got = entries.get(cust, entries)
            if got is entries:
                got = entries[cust] = entry(cust, window)
            if got is None:
                continue  # none of their tickets is a repeat contact
            times = customers[cust]
            first, second = got
            if type(first) is not set:  # two tickets: the second repeats the first
                if second in times:
                    repeat += 1
                elif any(c != first for c in times):  # a ticket the history does not hold: as before
                    repeat += _repeats_in(history[cust], times, window)
            elif not first.isdisjoint(times):
                repeat += 1
            elif not second.issuperset(times):  # a ticket the history does not hold: asked as before
                repeat += _repeats_in(history[cust], times, window)
        if customers.keys() <= history.keys():  # as usual: no customer unknown (a C loop, no set made)
            return repeat
        unknown = [c for c in customers if c not in history]
    else:
        for cust in customers.keys() & history.keys():
            hist = history[cust]
            if len(hist) >= 2:
                repeat += _repeats_in(hist, customers[cust], window)
        unknown = [c for c in customers if not history.get(c)]
    for cust in unknown:
        times = customers[cust]
        if len(times) >= 2:
            repeat += _repeats_in(sorted(times), times, window)
    return repeat


@dataclass
class Context:
    """Everything the maths needs besides the rows: calendar, SLA, mappings, who is an agent."""

    calendar: WorkCalendar
    sla_resolution: dict = field(default_factory=dict)  # priority -> business seconds
    sla_first_response: dict = field(default_factory=dict)  # priority -> business seconds
    # the clock SLAs run on ([sla] mode = "calendar": round the clock); None: ``calendar``
    sla_calendar: WorkCalendar | None = None
    status_states: dict = field(default_factory=lambda: DEFAULT_STATUS_STATES)
    status_buckets: dict = field(default_factory=lambda: DEFAULT_STATUS_BUCKETS)
    bots: frozenset = frozenset()
    support_members: frozenset | None = None  # None: everyone may be an agent
    user_department: dict = field(default_factory=dict)  # user id -> first department id
    repeat_window: int = 30 * 86400
    # customer -> sorted created_at of every ticket in the report's source scope (repeat contacts);
    # None: every ticket of C carries its gap (t["gap"], derived.fill_gaps) and tallies count those
    customer_history: dict | None = field(default_factory=dict)

    def is_agent(self, user, author=None) -> bool:
        """kpi.md section 1: not the requester (``author``, see ``requester``), not the system or a
        bot, in the support departments."""
        if user in NO_USER or user == author or user in self.bots:
            return False
        return self.support_members is None or user in self.support_members


def requester(t: dict):
    """Who asked (kpi.md section 1): a task's author; an open-line session's client (its author).
    A CRM item's requester is its customer (a contact or company, never a user), so the internal
    user who created it is an agent like any other: a deal created by the agent who then e-mails
    the customer has a first reply."""
    return None if str(t.get("source") or "").startswith("crm:") else t["author_id"]


class Facts:
    """One ticket as of the end of a period (see module docstring)."""

    __slots__ = (
        "t",
        "in_c",
        "in_r",
        "in_a",
        "open_at_end",
        "state",
        "close_at",
        "resolution_at",
        "first_reply",
        "replies",
        "interactions",
        "transfers",
        "reopens",
        "requalified",
        "callback",
        "resp_created",
        "resp_end",
        "type",
        "priority",
        "deadline",
        "overdue",
        "work",
        "wait_customer",
        "work_b",
        "wait_customer_b",
        "handle",
        "frt_sla",
        # business-time durations, computed once per fact (kept by derived.py with the facts)
        "frt_b",
        "res_b",
        "frt_sla_b",
        # the log's shape, for facts kept over a ticket's whole log (derived.py): state changes
        # made, the moment of the last one, the last event
        "n_trans",
        "last_trans_at",
        "last_at",
        # how many tickets this fact stands for: 1, or more for derived.py's dormant aggregates
        # (open tickets untouched since before the period; in A and the backlog only)
        "weight",
        "req",  # the requester (``requester(t)``), never an agent of this ticket
    )


# ``end`` of a replay over the whole log (derived.py): later than any event.
END_OF_TIME = 2**62


def ticket_facts(t: dict, events, start: int, end: int, ctx: Context) -> Facts | None:
    """Replay ``events`` up to ``end``; None when the ticket is in none of the period's populations.
    With ``end = END_OF_TIME`` (and ``start`` at or before creation) it replays the whole log: what
    derived.py stores, from which any period ending after the last event is read off."""
    created = t["created_at"] or 0
    if created >= end:
        return None
    author = requester(t)
    states = ctx.status_states.get(t["source"])
    is_agent = ctx.is_agent
    # The state machine: a close while already in that state (4 -> 5, or a resolved event beside
    # its status event) changes nothing; a reopen while open changes nothing.
    state, close_at, resolution_at = OPEN, None, None
    state_at_start = None if created < start else OPEN
    first_reply = None
    replies = interactions = transfers = reopens = 0
    requalified = reopened_in = False
    first_assign = resp_end = None
    n_trans, last_trans_at, last_at = 0, None, None
    after = None  # field -> its value as of ``end`` (from the first change after it)
    statuses = calls = None  # (at, from, to) for status buckets; outgoing call times
    worked = None  # tracked seconds logged before ``end``
    worked_later = False  # the log has tracked work, all of it logged from ``end`` on
    for at, kind, actor, fld, fv, tv in events:
        last_at = at
        if at >= end:
            if kind == WORKED:
                worked_later = True
                continue
            if kind == FIELD_CHANGED or kind == ASSIGNED:
                if after is None:
                    after = {}
                name = fld if kind == FIELD_CHANGED else "responsible"
                if name not in after:
                    after[name] = fv
                if kind == ASSIGNED and first_assign is None:
                    first_assign = (fv, tv, at)
            continue
        if state_at_start is None and at >= start:
            state_at_start = state
        if kind == REPLY:
            if actor is None or is_agent(actor, author):
                replies += 1
                if first_reply is None:
                    first_reply = at
            interactions += 1
        elif kind == CUSTOMER_MESSAGE or kind == COMMENT:
            interactions += 1
        else:
            target = None
            if kind == RESOLVED_EV:
                target = RESOLVED
            elif kind == REJECTED_EV:
                target = REJECTED
            elif kind == REOPENED:
                target = OPEN
            elif kind == STATUS:
                if statuses is None:
                    statuses = []
                statuses.append((at, fv, tv))
                target = states.get(tv) if states else None
            elif kind == ASSIGNED:
                if first_assign is None:
                    first_assign = (fv, tv, at)
                if fv not in NO_USER and fv != tv:
                    transfers += 1
                resp_end = tv
            elif kind == ESCALATED:
                transfers += 1
            elif kind == FIELD_CHANGED:
                if fld == "type" and fv not in (None, "") and fv != tv:
                    requalified = True
            elif kind == CALL_OUT:
                if calls is None:
                    calls = []
                calls.append(at)
            elif kind == WORKED:
                secs = _seconds(tv)
                if secs is not None:
                    worked = (worked or 0) + secs
                continue
            if target is None or target == state:
                continue
            n_trans += 1
            last_trans_at = at
            if target == OPEN:
                state = OPEN
                reopens += 1
                if at >= start:
                    reopened_in = True
            else:
                state, close_at = target, at
                resolution_at = at if target == RESOLVED else None
    if state_at_start is None:
        state_at_start = state

    in_c = created >= start
    in_a = in_c or state_at_start == OPEN or reopened_in
    f = new_facts(t, start, in_c, in_a, state, close_at, resolution_at, (first_reply, replies, interactions, transfers))
    if f is None:
        return None
    in_r = f.in_r
    f.reopens, f.requalified, f.n_trans, f.last_trans_at = reopens, requalified, n_trans, last_trans_at
    f.last_at, f.req = last_at, author
    cal = ctx.calendar
    f.frt_b = max(0, cal.business_seconds(created, first_reply)) if first_reply is not None and in_c else None
    f.res_b = max(0, cal.business_seconds(created, resolution_at)) if in_r else None
    # AHT as of ``end``: the ``worked`` events before it. A ticket whose log has none at all but a
    # tracked total was stored before ``worked`` events existed: its total stands in until re-read.
    if worked is not None or worked_later:
        f.handle = worked
    else:
        f.handle = t["handle_time"]
    after = after or {}

    # The responsible at creation and as of ``end`` (kpi.md: the first assignment is no transfer).
    current = t["responsible_id"]
    if first_assign is None:
        f.resp_created = current
    elif first_assign[0] not in NO_USER:
        f.resp_created = first_assign[0]
    else:
        f.resp_created = first_assign[1] if first_assign[2] < end else None
    if resp_end is None:
        resp_end = after["responsible"] if "responsible" in after else current
    f.resp_end = resp_end if resp_end not in ("", "0") else None

    f.type = after["type"] if "type" in after else t["type"]
    pr = after.get("priority") if after.get("priority") in PRIORITIES else t["priority"]
    f.priority = pr or "normal"
    # First-response SLA (ours, beside kpi.md §3): met / breached as of ``end``; None without a
    # target, or while still unanswered and inside it (pending: neither met nor breached yet).
    f.frt_sla_b = None
    if first_reply is not None and f.priority in ctx.sla_first_response:
        f.frt_sla_b = (ctx.sla_calendar or cal).business_seconds(created, first_reply)
    f.frt_sla = frt_sla(f, created, end, ctx)
    deadline = parse_time(after["deadline"]) if "deadline" in after else t["deadline"]
    if deadline is None:
        secs = ctx.sla_resolution.get(f.priority)
        if secs is not None:
            deadline = (ctx.sla_calendar or ctx.calendar).add_business_seconds(created, int(secs))
    f.deadline = deadline
    f.overdue = in_a and deadline is not None and deadline < (close_at if state != OPEN else end)
    f.callback = in_r and calls is not None and any(c > resolution_at for c in calls)

    f.work = f.wait_customer = f.work_b = f.wait_customer_b = None
    if in_r and statuses:
        _bucket_times(f, statuses, created, ctx.status_buckets.get(t["source"]) or {}, ctx.calendar)
    return f


def new_facts(t: dict, start: int, in_c: bool, in_a: bool, state: str, close_at, resolution_at, replies) -> Facts:
    """A ``Facts`` with its populations, state and ``(first_reply, replies, interactions,
    transfers)`` set (one ticket: weight 1); None when the ticket is in no population of the period
    starting at ``start`` (R: resolved, the last resolution in the period)."""
    in_r = state == RESOLVED and resolution_at is not None and resolution_at >= start
    if not in_a and not in_r:
        return None
    f = Facts()
    f.t, f.in_c, f.in_a, f.in_r, f.weight = t, in_c, in_a, in_r, 1
    f.state, f.close_at, f.resolution_at, f.open_at_end = state, close_at, resolution_at, state == OPEN
    f.first_reply, f.replies, f.interactions, f.transfers = replies
    return f


def frt_sla(f: Facts, created: int, end: int, ctx: Context):
    """First-response SLA as of ``end``: met (True) / breached (False) / pending or no target (None)."""
    target = ctx.sla_first_response.get(f.priority)
    if target is None:
        return None
    if f.first_reply is not None:
        return f.frt_sla_b <= int(target)
    if end >= END_OF_TIME:
        return None  # a whole-log replay: read off per period (derived.py)
    return False if frt_missed(created, end, target, ctx) else None


def frt_missed(created: int, end: int, target, ctx: Context) -> bool:
    """Whether a ticket still unanswered at ``end`` has passed its first-response ``target``
    (business seconds on the SLA clock): breached from then on, whatever comes later."""
    return (ctx.sla_calendar or ctx.calendar).business_seconds(created, end) > int(target)


def _seconds(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _bucket_times(f: Facts, statuses: list, created: int, buckets: dict, cal: WorkCalendar) -> None:
    """Time in ``work`` and ``wait_customer`` statuses from creation to the resolution."""
    work = wait = work_b = wait_b = 0
    seg_from, seg_status = created, statuses[0][1]
    stop = f.resolution_at
    for at, _fv, tv in statuses + [(stop, None, None)]:
        a, b = max(seg_from, created), min(at, stop)
        if b > a:
            bucket = buckets.get(seg_status)
            if bucket == "work":
                work += b - a
                work_b += cal.business_seconds(a, b)
            elif bucket == "wait_customer":
                wait += b - a
                wait_b += cal.business_seconds(a, b)
        if at >= stop:
            break
        seg_from, seg_status = at, tv
    tracked = set(buckets.values())  # a bucket the source never maps to stays None
    if "work" in tracked:
        f.work, f.work_b = work, work_b
    if "wait_customer" in tracked:
        f.wait_customer, f.wait_customer_b = wait, wait_b


# --- step 2: aggregation -------------------------------------------------------------------


class Value:
    """A KPI's value with the number of tickets it rests on (for min_n) and optional detail."""

    __slots__ = ("value", "n", "detail")

    def __init__(self, value, n: int = 0, detail: dict | None = None):
        self.value, self.n, self.detail = value, n, detail


def _dur(values) -> Value:
    """The summary of a tally's value list (sorted by ``_result``, no None kept)."""
    s = summary_sorted(values)
    return Value(s, s["count"] if s else 0)


def _share(hits: int, total: int) -> Value:
    return Value(share(hits, total), total)


def aggregate(facts: list, start: int, end: int, days: float, ctx: Context, users: dict | None = None) -> dict:
    """Every KPI of kpi.md section 3 (except ``ccei``, see ccei.py) over ``facts``."""
    tally = Tally(ctx)
    tally.add(facts)
    return tally.result(start, end, days, users)


def _merge_lists(mine: dict, theirs: dict) -> None:
    """Add ``theirs``' lists to ``mine``'s, key by key (``theirs`` left as it was)."""
    for k, values in theirs.items():
        if k in mine:
            mine[k].extend(values)
        else:
            mine[k] = list(values)


def _drop(d: dict, key, keep=()) -> None:
    """Forget a key whose count fell to zero (a tally that never saw it would not have it)."""
    if not d[key] and key not in keep:
        del d[key]


class Tally:
    """What ``aggregate`` needs of a set of facts: counts, sums and the values behind each
    summary, per population (C, R, A). Facts can be added and taken away again (``add``,
    ``remove``), so a kept report is brought up to date with the tickets written since it was
    made (ReportPass.refresh) without walking the others; ``result`` turns it into every KPI.

    One walk per fact collects what every KPI needs (a report aggregates tens of thousands of facts
    several times: per period, per group, per chart point)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.n = 0  # facts in it
        self._last = None  # (start, end, days, users, result) of the last result, until a change
        # A (weighted: a dormant aggregate counts its tickets), the backlog, task efficiency
        self.nA = self.backlog = self.overdue = self.n_deadline = self.team_v = 0
        self.eff_agents: dict = {}  # agent -> [active, overdue]
        # C: the tickets created in the period (the value lists keep no None: the summaries skip it)
        self.nC = self.sla_n = self.sla_hits = self.unanswered = self.resolved_c = 0
        self.transferred = self.qualified = 0
        self.frt, self.frt_b, self.transfers = [], [], []
        self.by_pr_c = {p: 0 for p in PRIORITIES}
        self.by_pr_c_res = {p: 0 for p in PRIORITIES}
        self.customers: dict = {}  # customer -> created_at of their tickets in C
        # the ``customers`` of frozen tallies merged in (settled cells': never changed), read beside
        # this one's instead of copied into it (a six-month report's cells hold 460k entries):
        # all_customers() merges them when the lists themselves are asked for
        self._cparts: list = []
        self.frozen = False  # never walked or merged into: merge() may share what it holds
        # customer -> their tickets in C whose gap to the customer's previous ticket is within the
        # repeat window (repeat contacts without the history: Context.customer_history None), and
        # customer -> their tickets of C that came without a gap (then the history answers)
        self.repeaters: dict = {}
        self.nogap: dict = {}
        self.per_agent: dict = {}  # responsible at creation -> tickets in C
        # R: the tickets resolved in the period
        self.nR = self.fcr = self.reopened = self.one_touch = self.callback = 0
        self.res, self.res_b, self.interactions, self.handle = [], [], [], []
        self.rated, self.nps, self.ces = [], [], []
        self.work, self.work_b, self.wait, self.wait_b = [], [], [], []
        self.by_pr_r = {p: 0 for p in PRIORITIES}
        # responsible at the end -> what the top agents table shows of their facts in R: counts,
        # first-reply durations, ratings (no facts kept: a tally is counts and values only)
        self.by_agent: dict = {}

    def add(self, facts) -> None:
        self._walk(facts, 1)

    def remove(self, facts) -> None:
        """Take away facts added before (the same objects)."""
        self._walk(facts, -1)

    _COUNTS = (
        "n", "nA", "backlog", "overdue", "n_deadline", "team_v", "nC", "sla_n", "sla_hits", "unanswered",
        "resolved_c", "transferred", "qualified", "nR", "fcr", "reopened", "one_touch", "callback",
    )  # fmt: skip
    _VALUES = (
        "frt", "frt_b", "transfers", "res", "res_b", "interactions", "handle", "rated", "nps", "ces",
        "work", "work_b", "wait", "wait_b",
    )  # fmt: skip
    _SUMS_BY_KEY = ("by_pr_c", "by_pr_c_res", "by_pr_r", "per_agent", "repeaters", "nogap")
    _LISTS_BY_KEY = ("customers",)
    _AGENT_COUNTS = ("resolved", "fcr")  # by_agent's counts and value lists
    _AGENT_VALUES = ("frt", "rated")

    def merge(self, other: "Tally") -> None:
        """Add the facts of ``other`` (none of them in this tally): afterwards this tally is the one
        that walked both sets, without walking them again (a department's from its agents', the
        period's from its groups'). ``other`` is left as it was (nothing of it is shared)."""
        self._last = None
        for name in self._COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in self._VALUES:
            getattr(self, name).extend(getattr(other, name))
        for name in self._SUMS_BY_KEY:
            mine = getattr(self, name)
            for k, v in getattr(other, name).items():
                mine[k] = mine.get(k, 0) + v
        for agent, (active, overdue) in other.eff_agents.items():
            pv = self.eff_agents.setdefault(agent, [0, 0])
            pv[0] += active
            pv[1] += overdue
        self._cparts.extend(other._cparts)
        if other.frozen:
            if other.customers:
                self._cparts.append(other.customers)
        else:
            _merge_lists(self.customers, other.customers)
        by_agent = self.by_agent
        for agent, theirs in other.by_agent.items():
            mine = by_agent.get(agent)
            if mine is None:
                by_agent[agent] = {k: (list(v) if isinstance(v, list) else v) for k, v in theirs.items()}
                continue
            for k in self._AGENT_COUNTS:
                mine[k] += theirs[k]
            for k in self._AGENT_VALUES:
                mine[k].extend(theirs[k])

    def state(self) -> dict:
        """What this tally holds, as plain data (counts, lists, dicts of them) to be kept in the
        store (cells.py) and given back to :meth:`of_state` with the same context."""
        self.all_customers()
        names = self._COUNTS + self._VALUES + self._SUMS_BY_KEY + self._LISTS_BY_KEY + ("eff_agents", "by_agent")
        return {name: getattr(self, name) for name in names}

    @classmethod
    def of_state(cls, ctx: Context, state: dict, *, frozen: bool = False) -> "Tally":
        """The tally whose :meth:`state` was ``state`` (the dict's lists are taken, not copied);
        ``frozen``: it will never be walked (a kept cell's), so a merge may share its lists."""
        tally = cls(ctx)
        for name, value in state.items():
            setattr(tally, name, value)
        tally.frozen = frozen
        return tally

    def all_customers(self) -> dict:
        """``customers`` with the frozen tallies' merged in (done once, here)."""
        if self._cparts:
            for part in self._cparts:
                _merge_lists(self.customers, part)
            self._cparts = []
        return self.customers

    def has_customer(self, customers) -> bool:
        """Whether one of ``customers`` (a set) has a ticket in C here."""
        return any(not customers.isdisjoint(d) for d in (self.customers, *self._cparts))

    def _customer_counts(self) -> tuple:
        """(the customers with a ticket in C, how many tickets of C have a customer), without
        merging the frozen tallies' lists (set and ``len`` loops run in C)."""
        own = self.customers
        if not self._cparts:
            return own.keys(), sum(map(len, own.values()))
        keys = set(own)
        n = sum(map(len, own.values()))
        for part in self._cparts:
            keys.update(part)
            n += sum(map(len, part.values()))
        return keys, n

    def _times_of(self, cust) -> list:
        """created_at of ``cust``'s tickets in C (the frozen tallies' too)."""
        out = list(self.customers.get(cust, ()))
        for part in self._cparts:
            out.extend(part.get(cust, ()))
        return out

    def stale(self) -> None:
        """Forget the last result: something it read besides the facts changed (the customers'
        history of ``ctx``, for repeat contacts)."""
        self._last = None

    def _walk(self, facts, sign: int) -> None:
        self._last = None
        is_agent = self.ctx.is_agent
        put = list.append if sign > 0 else list.remove
        eff_agents, per_agent, customers, by_agent = self.eff_agents, self.per_agent, self.customers, self.by_agent
        repeaters, nogap, window = self.repeaters, self.nogap, self.ctx.repeat_window
        cparts = self._cparts if sign < 0 else None  # taking away what a frozen tally brought
        by_pr_c, by_pr_c_res, by_pr_r = self.by_pr_c, self.by_pr_c_res, self.by_pr_r
        frt, frt_b, transfers = self.frt, self.frt_b, self.transfers
        res, res_b, interactions, handle = self.res, self.res_b, self.interactions, self.handle
        rated, nps, ces = self.rated, self.nps, self.ces
        work, work_b, wait, wait_b = self.work, self.work_b, self.wait, self.wait_b
        for f in facts:
            self.n += sign
            w = f.weight * sign
            if f.open_at_end:
                self.backlog += w
            if f.in_a:
                self.nA += w
                od = f.overdue
                if f.deadline is not None:
                    self.n_deadline += w
                    if od:
                        self.overdue += w
                if od:
                    self.team_v += w
                agent = f.resp_end
                if is_agent(agent, f.req):
                    pv = eff_agents.get(agent)
                    if pv is None:
                        pv = eff_agents[agent] = [0, 0]
                    pv[0] += w
                    if od:
                        pv[1] += w
                    if not pv[0] and not pv[1]:
                        del eff_agents[agent]
            t = f.t
            if f.in_c:
                self.nC += sign
                created = t["created_at"]
                state = f.state
                fr = f.first_reply
                if fr is not None:
                    put(frt, max(0, fr - created))
                    if (v := f.frt_b) is not None:
                        put(frt_b, v)
                elif state == OPEN:
                    self.unanswered += sign
                s = f.frt_sla
                if s is not None:
                    self.sla_n += sign
                    if s:
                        self.sla_hits += sign
                pr = f.priority
                by_pr_c[pr] = by_pr_c.get(pr, 0) + sign
                by_pr_c_res.setdefault(pr, 0)
                if state == RESOLVED:
                    self.resolved_c += sign
                    by_pr_c_res[pr] += sign
                if not by_pr_c[pr] and pr not in PRIORITIES:
                    del by_pr_c[pr], by_pr_c_res[pr]
                tr = f.transfers
                if tr is not None:
                    put(transfers, tr)
                if tr:
                    self.transferred += sign
                if not f.requalified:
                    self.qualified += sign
                cust = t["customer"]
                if cust is not None and cust != "":
                    if cparts and created not in customers.get(cust, ()):
                        cparts = None  # a fact merged in from a frozen tally: the lists merged first
                        self.all_customers()
                    if cust in customers:
                        put(customers[cust], created)
                        if not customers[cust]:
                            del customers[cust]
                    else:
                        customers[cust] = [created]
                    gap = t.get("gap")
                    if gap is None:
                        nogap[cust] = nogap.get(cust, 0) + sign
                        _drop(nogap, cust)
                    elif 0 <= gap <= window:
                        repeaters[cust] = repeaters.get(cust, 0) + sign
                        _drop(repeaters, cust)
                agent = f.resp_created
                if is_agent(agent, f.req):
                    per_agent[agent] = per_agent.get(agent, 0) + sign
                    _drop(per_agent, agent)
            if f.in_r:
                self.nR += sign
                put(res, f.resolution_at - t["created_at"])
                if (v := f.res_b) is not None:
                    put(res_b, v)
                pr = f.priority
                by_pr_r[pr] = by_pr_r.get(pr, 0) + sign
                _drop(by_pr_r, pr, PRIORITIES)
                fcr = False
                if f.replies <= 1:
                    self.one_touch += sign
                    if not f.transfers and not f.reopens:
                        self.fcr += sign
                        fcr = True
                if f.reopens:
                    self.reopened += sign
                if (v := f.interactions) is not None:
                    put(interactions, v)
                if (v := f.handle) is not None:
                    put(handle, v)
                r = t["rating"]
                if r is not None:
                    put(rated, r)
                if (s := t["nps"]) is not None:
                    put(nps, s)
                if (s := t["ces"]) is not None:
                    put(ces, s)
                if f.callback:
                    self.callback += sign
                if (v := f.work) is not None:
                    put(work, v)
                if (v := f.work_b) is not None:
                    put(work_b, v)
                if (v := f.wait_customer) is not None:
                    put(wait, v)
                if (v := f.wait_customer_b) is not None:
                    put(wait_b, v)
                agent = f.resp_end
                if is_agent(agent, f.req):
                    mine = by_agent.get(agent)
                    if mine is None:
                        mine = by_agent[agent] = {"resolved": 0, "fcr": 0, "frt": [], "rated": []}
                    mine["resolved"] += sign
                    if fcr:
                        mine["fcr"] += sign
                    if (fr := f.first_reply) is not None:
                        put(mine["frt"], max(0, fr - t["created_at"]))
                    if r is not None:
                        put(mine["rated"], r)
                    if not mine["resolved"]:
                        del by_agent[agent]

    def result(self, start: int, end: int, days: float, users: dict | None = None, only=None) -> dict:
        """Every KPI, or with ``only`` (KPI keys) those alone: a page's group table shows a few,
        and the others' sorts and repeat contacts are most of a group's cost. The same dict again
        while nothing changed (callers only read it)."""
        only = None if only is None else frozenset(only)
        last = self._last
        if last is not None and last[:3] == (start, end, days) and last[3] is users and last[5] == only:
            return last[4]
        out = self._result(start, end, days, users, only)
        self._last = (start, end, days, users, out, only)
        return out

    def _result(self, start: int, end: int, days: float, users: dict | None, only: frozenset | None) -> dict:
        ctx = self.ctx
        want = _EVERY if only is None else only
        nC, nR, nA = self.nC, self.nR, self.nA
        out: dict[str, Value] = {}
        # counts first (cheap, every result has them); the duration lists are sorted in place when
        # asked (kept sorted: the next result re-sorts a few added in O(n))
        out["tickets_total"] = Value(nC, nC)
        out["tickets_per_day"] = Value(nC / days if days else None, nC)
        out["first_response_sla_share"] = _share(self.sla_hits, self.sla_n)
        out["unanswered_share"] = _share(self.unanswered, nC)
        out["resolved_count"] = Value(nR, nR)
        out["resolved_share"] = _share(self.resolved_c, nC)
        out["backlog"] = Value(self.backlog, self.backlog)
        out["overdue_count"] = Value(self.overdue, self.n_deadline)
        out["overdue_share"] = _share(self.overdue, self.n_deadline)
        out["transferred_share"] = _share(self.transferred, nC)
        out["fcr_share"] = _share(self.fcr, nR)
        out["reopen_share"] = _share(self.reopened, nR)
        out["correctly_qualified_share"] = _share(self.qualified, nC)
        out["callback_share"] = _share(self.callback, nR)
        out["one_touch_share"] = _share(self.one_touch, nR)
        out["rated_share"] = _share(len(self.rated), nR)
        for key, values in (
            ("first_response_time", self.frt),
            ("first_response_time_business", self.frt_b),
            ("resolution_time", self.res),
            ("resolution_time_business", self.res_b),
            ("handle_time", self.handle),
            ("requester_wait_time", self.work),
            ("requester_wait_time_business", self.work_b),
            ("agent_wait_time", self.wait),
            ("agent_wait_time_business", self.wait_b),
        ):
            if key in want:
                values.sort()
                out[key] = _dur(values)
        if "transfers_per_ticket" in want:
            out["transfers_per_ticket"] = Value(mean(self.transfers), nC)
        if "resolved_by_priority" in want:
            by_pr_c = dict(self.by_pr_c)
            out["resolved_by_priority"] = Value(
                dict(self.by_pr_r),
                nR,
                {
                    "created": by_pr_c,
                    "resolved_share": {p: share(self.by_pr_c_res.get(p, 0), n) for p, n in by_pr_c.items()},
                },
            )

        # Repeat contacts: customers of C with another ticket created within the window before one of theirs.
        if "repeat_contact_share" in want or "contacts_per_customer" in want:
            keys, with_customer = self._customer_counts()
        if "repeat_contact_share" in want:
            history = ctx.customer_history
            if history is not None and not isinstance(history, PartialHistory):
                repeat = _repeat_customers(self.all_customers(), history, ctx.repeat_window)
            else:  # the gaps tell, but for the customers a partial history covers
                covers = frozenset() if history is None else history.covers
                if not self.nogap.keys() <= covers:  # the loader reads the history then
                    raise ValueError("repeat contacts: a ticket without its gap, and no customer history")
                repeat = len(self.repeaters)
                if covers:
                    mine = keys & covers
                    repeat -= len(self.repeaters.keys() & covers)
                    repeat += _repeat_customers({c: self._times_of(c) for c in mine}, history, ctx.repeat_window)
            out["repeat_contact_share"] = _share(repeat, len(keys))
        if "contacts_per_customer" in want:
            out["contacts_per_customer"] = Value(with_customer / len(keys) if keys else None, with_customer)

        if "tickets_per_agent_day" in want:
            wdays = ctx.calendar.working_days(start, end)
            per_agent = self.per_agent
            rates = {a: n / wdays for a, n in sorted(per_agent.items())} if wdays else {}
            out["tickets_per_agent_day"] = Value(
                mean(rates.values()), sum(per_agent.values()), {"per_agent": rates, "working_days": wdays}
            )

        if "interactions_per_ticket" in want:
            out["interactions_per_ticket"] = Value(mean(self.interactions), nR)
        rated, nps, ces = self.rated, self.nps, self.ces
        if "csat" in want:
            out["csat"] = Value(
                share(len([1 for r in rated if r >= 4]), len(rated)), len(rated), {"avg_rating": mean(rated)}
            )
        if "nps" in want:
            out["nps"] = Value(
                100 * (len([1 for s in nps if s >= 9]) - len([1 for s in nps if s <= 6])) / len(nps) if nps else None,
                len(nps),
            )
        if "ces" in want:
            out["ces"] = _share(len([1 for s in ces if s == 5]), len(ces))

        if "task_efficiency" in want:
            # Bitrix24's task efficiency: 100 - 100·V/P over the active set, per agent and for the team.
            out["task_efficiency"] = Value(
                _efficiency(self.team_v, nA),
                nA,
                {"per_agent": {a: _efficiency(v, p) for a, (p, v) in sorted(self.eff_agents.items())}},
            )
        if "top_agents" in want:
            out["top_agents"] = _top_agents(self.by_agent, nR, users or {})
        return out


class _Every:
    """Every KPI key is wanted (``Tally.result`` without ``only``)."""

    def __contains__(self, key) -> bool:
        return True


_EVERY = _Every()


def _efficiency(overdue: int, total: int) -> float:
    return 100.0 if total == 0 else max(0.0, 100 - 100 * overdue / total)


def _top_agents(by_agent: dict, nR: int, users: dict) -> Value:
    """The agents who resolved most (``by_agent``: agent -> counts and values of their facts in R,
    Tally._walk). Their first-reply median clamps a reply stamped before creation to 0 s, as the
    period's first-response time does."""
    rows = []
    for agent, mine in by_agent.items():
        frt = summary(mine["frt"])
        rated = mine["rated"]
        rows.append(
            {
                "agent": agent,
                "name": users.get(agent, {}).get("label") or agent,
                "resolved": mine["resolved"],
                "frt_median": frt["median"] if frt else None,
                "csat": share(len([1 for r in rated if r >= 4]), len(rated)),
                "fcr": share(mine["fcr"], mine["resolved"]),
            }
        )
    rows.sort(key=lambda r: (-r["resolved"], str(r["agent"])))
    return Value(rows[:TOP_AGENTS] if rows else None, nR)
