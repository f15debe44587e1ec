"""``build_report``: the machine-readable KPI report of kpi.md section 6 for one period.

It loads the period's tickets (load.py), replays each one as of the end of the period and of the
previous period (engine.py), aggregates, adds targets and traffic lights (targets.py) and CCEI
(ccei.py). Everything depends only on the store and the period, never on the clock, so a report
computed on November 1 and one computed in December are identical.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import json
from dataclasses import replace

from ..config import load_config
from ..model import PRIORITIES
from ..store import get_setting
from . import ccei as ccei_mod
from . import cells as cells_mod
from . import derived, timedims
from . import targets as targets_mod
from .calendar import PORTAL_CALENDAR_SETTING, build_calendar, calendar_settings
from .engine import DEFAULT_STATUS_BUCKETS, DEFAULT_STATUS_STATES, KPI_KEYS, Context, Tally, Value, aggregate
from .filters import DIMENSIONS, GROUP_BY, Filters, Tree, group_key, matcher
from .load import Loaded, load, load_people, portal_zone, read_snapshot
from .periods import Period, make_period, zone
from .presets import compare_period
from .timedims import TIME_DIMS

SCHEMA = "b24desk.kpi/1"


def crm_settings(db, portal: str) -> dict:
    """What the CRM sources stored per entity type: ``{etid: {"stages": {id: P|S|F}, "categories": {id: name}}}``."""
    out = {}
    for row in db.execute(
        "select key, value from settings where portal = ? and key like 'crm.%.stages'", [portal]
    ).fetchall():
        try:
            out[row[0].split(".")[1]] = json.loads(row[1]) or {}
        except (ValueError, IndexError):
            continue
    return out


# The settings rows a report reads besides the config (ReportEnv, ccei inputs): a memo of reports
# keys on their values (report_settings), so a changed target or CCEI input is never served stale.
REPORT_SETTINGS = ("config", targets_mod.TARGETS_SETTING, PORTAL_CALENDAR_SETTING, "portal_timezone", "openlines.lines")
REPORT_SETTING_PATTERNS = ("crm.%.stages", ccei_mod.INPUTS_SETTING.format(period="%"))


def report_settings(db, portal: str) -> tuple:
    """``((key, stored JSON), ...)`` of every setting a report of ``portal`` depends on, and the
    installation's time zone (:func:`portal_zone`), in one query each: what a cache key must hold
    besides the store's data version."""
    marks = ", ".join("?" * len(REPORT_SETTINGS))
    likes = " or ".join("key like ?" for _ in REPORT_SETTING_PATTERNS)
    rows = db.execute(
        f"select key, value from settings where portal = ? and (key in ({marks}) or {likes}) order by key",
        [portal, *REPORT_SETTINGS, *REPORT_SETTING_PATTERNS],
    ).fetchall()
    out = tuple((r[0], r[1]) for r in rows)
    if "installations" in db.table_names():
        row = db.execute("select timezone from installations where member_id = ?", [portal]).fetchone()
        out += (("installations.timezone", row[0] if row else None),)
    return out


class ReportEnv:
    """What a portal's reports share: time zone, calendar, people, targets, the maths context.

    Build it once to compute many periods (pushes, alerts) without re-reading settings.
    """

    def __init__(self, db, portal: str, config: dict | None = None):
        self.db, self.portal = db, portal
        self.config = load_config() if config is None else config
        self.tz_name = portal_zone(db, portal, self.config)
        self.tz = zone(self.tz_name)
        portal_cal = get_setting(db, portal, PORTAL_CALENDAR_SETTING)
        self.calendar = build_calendar(calendar_settings(self.config, portal_cal, self.tz_name))
        self.users, self.departments = load_people(db, portal)
        first_dep = {u: d["departments"][0] for u, d in self.users.items() if d["departments"]}
        self.tree = Tree(self.departments, first_dep)
        self.stored_targets = get_setting(db, portal, targets_mod.TARGETS_SETTING) or {}
        bots = {str(u) for u in self.config.get("bot_users") or []}
        bots |= {u for u, d in self.users.items() if d["is_bot"]}
        support = [str(d) for d in self.config.get("support_departments") or []]
        members = None
        if support:
            roots = frozenset(support)
            members = frozenset(
                u for u, d in self.users.items() if any(self.tree.within(dep, roots) for dep in d["departments"])
            )
        states = {k: dict(v) for k, v in DEFAULT_STATUS_STATES.items()}
        for src, table in (self.config.get("status_states") or {}).items():
            states.setdefault(src, {}).update({str(k): v for k, v in table.items()})
        buckets = {k: dict(v) for k, v in DEFAULT_STATUS_BUCKETS.items()}
        crm = crm_settings(db, portal)
        for etid, stored in crm.items():  # CRM default: in-progress stages are work, final are done
            buckets[f"crm:{etid}"] = {
                st: ("work" if sem == "P" else "done") for st, sem in (stored.get("stages") or {}).items()
            }
        for src, table in (self.config.get("status_buckets") or {}).items():
            buckets.setdefault(src, {}).update({str(k): v for k, v in table.items()})
        # display names of group keys: CRM funnels (type) and open lines (line)
        self.names = {
            "type": {},
            "line": {str(k): v for k, v in (get_setting(db, portal, "openlines.lines") or {}).items()},
        }
        for stored in crm.values():
            for cat, name in (stored.get("categories") or {}).items():
                known = self.names["type"].get(str(cat))
                self.names["type"][str(cat)] = name if known in (None, name) else f"{known} / {name}"
        sla = (self.config.get("sla") or {}).get("resolution_business_seconds") or {}
        sla_frt = (self.config.get("sla") or {}).get("first_response_business_seconds") or {}
        self.repeat_window = int(self.config.get("repeat_window_days", 30)) * 86400
        sla_clock = None
        if (self.config.get("sla") or {}).get("mode") == "calendar":  # SLAs round the clock
            sla_clock = build_calendar(
                {
                    "timezone": self.tz_name,
                    "work_days": [1, 2, 3, 4, 5, 6, 7],
                    "work_start": "00:00",
                    "work_end": "24:00",
                    "holidays_country": None,
                    "extra_holidays": [],
                    "extra_workdays": [],
                }
            )
        self.ctx = Context(
            calendar=self.calendar,
            sla_resolution=dict(sla),
            sla_first_response=dict(sla_frt),
            sla_calendar=sla_clock,
            status_states=states,
            status_buckets=buckets,
            bots=frozenset(bots),
            support_members=members,
            user_department=first_dep,
            repeat_window=self.repeat_window,
        )

    def period(self, date_from, date_to) -> Period:
        return make_period(date_from, date_to, self.tz)

    def targets_for(self, agent=None, department=None) -> dict:
        if agent is not None and department is None:
            department = self.tree.department_of(agent)
        return targets_mod.resolve(self.config, self.stored_targets, self.tree.chain(department), agent)


def _facts(loaded: Loaded, period: Period, ctx: Context, keep, tickets=None) -> list:
    out = []
    start, end = period.start, period.end
    facts_of = loaded.facts
    for t in loaded.tickets if tickets is None else tickets:
        closed = t["closed_at"]
        if t["created_at"] >= end or (closed is not None and closed < start):
            continue  # created later, or closed for good before the period: in no population
        f = facts_of(t, start, end, ctx)
        if f is not None and (keep is None or keep(f)):
            out.append(f)
    return out


def _with_dormant(facts: list, loaded: Loaded, end: int, keep, dims) -> list:
    """``facts`` and the open tickets untouched since before the load's start, counted in SQL
    (derived.dormant) and split by ``dims``."""
    extra = [f for f in loaded.dormant(end, dims) if keep is None or keep(f)]
    return facts + extra if extra else facts


def value_delta(cur, prev):
    """Current minus previous for numbers (a duration's ``avg``); None for flags and anything else."""
    if isinstance(cur, dict) and isinstance(prev, dict) and "avg" in cur and "avg" in prev:
        cur, prev = cur["avg"], prev["avg"]
    if isinstance(cur, bool) or isinstance(prev, bool):
        return None
    if isinstance(cur, (int, float)) and isinstance(prev, (int, float)):
        return cur - prev
    return None


def _kpis(
    cur: dict, prev: dict | None, targets: dict, ccei_cur: dict | None, ccei_prev: dict | None, only=None
) -> dict:
    """Section 6's ``kpis``; ``prev`` None: the previous period was not computed (null values).
    ``only``: those KPIs alone (``cur`` holds them: Tally.result's ``only``; ``ccei_cur`` None
    unless the CCEI is one)."""
    out = {}
    if ccei_cur is not None:
        cur = dict(cur, ccei=Value(ccei_cur["value"], cur["resolved_count"].n))
    if prev is not None and ccei_prev is not None:
        prev = dict(prev, ccei=Value(ccei_prev["value"], prev["resolved_count"].n))
    none = Value(None)
    for key in KPI_KEYS if only is None else [k for k in KPI_KEYS if k in only]:
        c, p = cur[key], (prev[key] if prev is not None else none)
        spec = targets.get(key)
        entry = {
            "value": c.value,
            "previous": p.value,
            "delta": value_delta(c.value, p.value),
            "target": spec.get("target") if spec else None,
            "status": targets_mod.status(targets_mod.comparable(key, c.value), c.n, spec),
            "n": c.n,
        }
        if c.detail is not None:
            entry["detail"] = c.detail
        out[key] = entry
    return out


def _assemble(env, cur: dict, old: dict | None, targets, inputs, only=None):
    """Section 6's ``kpis`` and ``ccei`` from the periods' aggregates; ``old`` None: the previous
    period is not computed (its values null). ``only``: the KPIs ``cur`` holds (a page's group
    table); the CCEI, which needs others, is then null unless it is one of them."""
    if only is not None and "ccei" not in only:
        return _kpis(cur, old, targets, None, None, only), None
    cc = ccei_mod.compute(cur, inputs[0], env.config)
    cp = ccei_mod.compute(old, inputs[1], env.config) if old is not None else None
    cc_out = dict(cc, previous=cp["value"] if cp else None)
    return _kpis(cur, old, targets, cc, cp, only), cc_out


@contextlib.contextmanager
def paused_gc():
    """Tens of thousands of short-lived rows: the cyclic GC would only rescan them (a third of the
    time at 1M tickets); nothing here builds cycles. Restored on the way out."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_report(
    db,
    portal: str,
    date_from,
    date_to,
    *,
    filters=None,
    group_by: str | None = None,
    config: dict | None = None,
    env: ReportEnv | None = None,
    compare: str | None = None,
) -> dict:
    """The section 6 report for ``[date_from, date_to)`` (dates, ISO datetimes, datetimes or unix s).

    ``filters``: a dict like section 6's (source, department, agent, priority, type) or a
    ``Filters``; ``group_by``: one of agent, department, priority, type, source, channel, which adds
    ``groups``, each with the same ``kpis`` computed on that group's tickets alone; ``compare``:
    ``"previous"`` (the default, section 2) or ``"last_year"`` (the same dates a year before).
    """
    if group_by is not None and group_by not in GROUP_BY:
        raise ValueError(f"unknown group-by {group_by!r} (one of {', '.join(GROUP_BY)})")
    with paused_gc():
        return ReportPass(
            db,
            portal,
            date_from,
            date_to,
            filters=filters,
            config=config,
            env=env,
            compare=compare,
            cells=group_by in CELL_GROUPS,
            month_cells=True,  # a report draws no weekly series
        ).report(group_by)


# What a settled cell (cells.py) can be matched on and grouped by: its source and its responsible.
CELL_DIMS = frozenset({"source", "agent", "department"})
CELL_GROUPS = (None, "agent", "department")


def cells_fit(filters) -> bool:
    """Whether a pass with ``filters`` can read settled cells: they filter only what a cell is
    keyed by (its source, its responsible and so their department)."""
    filters = Filters.of(filters)
    return all(getattr(filters, d) is None for d in DIMENSIONS if d not in CELL_DIMS)


class _CellKey:
    """What a filter's matcher reads of a settled cell: its responsible (agent, department)."""

    __slots__ = ("resp_end",)

    def __init__(self, agent):
        self.resp_end = agent


def _cells_in(cells: list, period: Period, keep) -> list:
    """The cells of ``period``'s pieces that ``keep`` (a matcher, or None) keeps."""
    return [
        c
        for c in cells
        if period.start <= c.piece and c.end <= period.end and (keep is None or keep(_CellKey(c.agent)))
    ]


def _tally_of(ctx, facts: list, cells: list) -> Tally:
    """One tally of ``facts`` and of the settled cells' tallies (the tickets they stand for)."""
    tally = Tally(ctx)
    for c in cells:
        tally.merge(c.tally)
    tally.add(facts)
    return tally


class ReportPass:
    """One load and replay of a period and its previous period after the filters.

    Every ``group_by`` of the same query is a regrouping of these facts, so a page that shows
    several (totals, per agent, per department) and its charts (``Replay.of_pass``) pay for the
    load and the replay once. Call under :func:`paused_gc` for speed.
    """

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
        compare: str | None = None,
        keep_keys: bool = False,
        cells: bool = False,
        month_cells: bool = False,
    ):
        """``keep_keys``: the pass is to be kept and refreshed (``refresh``): the loader lists the
        open tickets it counts in SQL too, so a write to one of them takes it out of its count.
        ``cells``: read the kept tallies of settled tickets (cells.py) instead of those tickets,
        when the filters allow (:func:`cells_fit`); the pass then reports totals and the groups of
        ``CELL_GROUPS`` only, and its charts come from ``Replay.of_pass``'s series and durations.
        ``month_cells``: the cells of whole months too for this period, for a pass that draws no
        weekly series (the previous period's are always read: no series is drawn of it)."""
        self.env = env = env or ReportEnv(db, portal, config)
        self.portal = portal
        self.filters = filters = Filters.of(filters)
        self.period = period = env.period(date_from, date_to)
        self.compare = compare or "previous"
        if self.compare == "previous":
            self.prev = prev = period.previous()
        else:
            a, b = compare_period(period.local(period.start), period.local(period.end), self.compare, env.tz)
            self.prev = prev = Period(int(a.timestamp()), int(b.timestamp()), env.tz)
        self.sources = sources = filters.sources()
        self.window = (min(prev.start, period.start), period.end)  # what the load covers
        # the periods' whole pieces come from kept cells when asked, the filters allow and the
        # previous period ends before this one starts (a cell's tickets are then in one only)
        spans = None
        if cells and cells_fit(filters) and prev.end <= period.start:
            spans = [(period.start, period.end, month_cells), (prev.start, prev.end, True)]
        if filters.source and not sources:
            self.loaded = Loaded()  # contradictory source filters
        else:
            self.loaded = load(
                db,
                portal,
                *self.window,
                sources=sources,
                repeat_window=env.repeat_window,
                ctx=env.ctx,
                ends=(prev.end, period.end),
                dormant=True,
                dormant_keys=keep_keys,
                cell_spans=spans,
            )
        self.ctx = replace(env.ctx, customer_history=self.loaded.customer_history)  # env may serve other threads
        self.keep = matcher(filters, env.tree)
        self.cells_c = _cells_in(self.loaded.cells, period, self.keep)
        self.cells_p = _cells_in(self.loaded.cells, prev, self.keep)
        self.targets = env.targets_for(agent=filters.single("agent"), department=filters.single("department"))
        self.inputs = (ccei_mod.get_inputs(db, portal, period.label), ccei_mod.get_inputs(db, portal, prev.label))
        # the dimensions a dormant count must keep apart for the filters (derived.dormant_facts)
        self.dims = tuple(d for d in derived.DORMANT_DIMS if d != "source" and getattr(filters, d))
        self.tickets_c = _facts(self.loaded, period, self.ctx, self.keep)
        self.tickets_p = _facts(self.loaded, prev, self.ctx, self.keep)
        self.fc, self.fp = self.facts_for(None)
        self._totals = None
        self._old = None  # the previous period's aggregate, once computed
        self._tally = None  # the period's Tally (engine.py), once computed
        # group_by -> [key, {group: Tally}, {group: previous aggregate}, the dormant facts in them]
        self._groups_kept: dict = {}
        self.narrowed = False  # made by narrow() from another pass's load

    def narrow(self, filters) -> "ReportPass":
        """The pass of the same periods for ``filters`` (this pass itself when they are its own),
        from this pass's load and facts: no second load or replay (an agent's own figures and their
        team's totals on one page). This pass must filter nothing but the sources, and ``filters``
        must select the same sources: a ticket's facts do not depend on the filters, so keeping
        those ``filters`` match is the same as a pass made with them."""
        filters = Filters.of(filters)
        if filters == self.filters:
            return self  # nothing more to filter
        same_sources = filters.sources() == self.sources and bool(filters.source) == bool(self.filters.source)
        if self.keep is not None or not same_sources:
            raise ValueError("narrow: this pass filters more than the sources, or the sources differ")
        if self.loaded.cells and not cells_fit(filters):
            raise ValueError("narrow: this pass reads settled cells, which these filters cannot select")
        rp = copy.copy(self)
        env = self.env
        rp.filters = filters
        rp.keep = keep = matcher(filters, env.tree)
        rp.targets = env.targets_for(agent=filters.single("agent"), department=filters.single("department"))
        rp.dims = tuple(d for d in derived.DORMANT_DIMS if d != "source" and getattr(filters, d))
        if keep is not None:
            rp.tickets_c = [f for f in self.tickets_c if keep(f)]
            rp.tickets_p = [f for f in self.tickets_p if keep(f)]
            rp.cells_c = _cells_in(self.cells_c, self.period, keep)
            rp.cells_p = _cells_in(self.cells_p, self.prev, keep)
        rp.fc, rp.fp = rp.facts_for(None)
        rp._totals = rp._old = rp._tally = None
        rp._groups_kept = {}
        rp.narrowed = True  # shares this pass's load: never refreshed (a refresh rewrites the load)
        return rp

    def refresh(self, db, changed: dict) -> bool:
        """Bring this pass up to date with the tickets written since it was made: ``changed`` maps
        each written ticket's key to the lowest ``lo`` of its change-journal rows (store.
        journal_changes). Those tickets are re-read and their facts re-derived; every other ticket's
        facts depend on nothing they wrote (a ticket's facts come from its own row and events), so
        the result equals a new pass. A written ticket the pass counted in SQL (derived.dormant)
        leaves its count and is read from then on. False when the counts do not hold it where
        derived.dormant_keys said (the caller makes a new pass)."""
        loaded = self.loaded
        if loaded.db is None or self.narrowed:
            return False  # contradictory filters (nothing was read), or another pass's load
        if loaded.cells and not cells_mod.still_valid(db.conn, [c.id for c in loaded.cells]):
            return False  # a member of a cell it read was written (or the cell was made anew)
        start, end = self.window
        read = loaded.by_key()
        # a written ticket this pass counted in SQL (derived.dormant) leaves its count: it is read
        # like the others from now on; any other written ticket it did not read was in no
        # population then (closed before the window, created after it, deleted, filtered out)
        counted = loaded.dormant_keys
        if loaded.dormant_rows and counted is None:  # counted in SQL, not listed: cannot tell
            if any(k not in read and lo < start for k, lo in changed.items()):
                return False
            counted = {}
        woken = [k for k in changed if k not in read and k in (counted or {})]
        for k in woken:
            if not derived.dormant_take(loaded.dormant_rows, *counted.pop(k), loaded.dormant_ends):
                return False  # not where it was counted: cannot tell (the caller makes a new pass)
        loaded.db = db
        with read_snapshot(db.conn):
            fresh, missing = loaded.reload(changed, start, end, self.sources, self.env.ctx, self.env.repeat_window)
        if missing:
            derived.save(db, self.portal, derived.fingerprint(self.env.ctx), missing)
        self.ctx = replace(self.env.ctx, customer_history=loaded.customer_history)

        replaced = {id(t) for t in loaded.replaced}

        def renewed(facts: list, period: Period) -> tuple[list, list, list]:
            gone = [f for f in facts if id(f.t) in replaced] if replaced else []
            kept = [f for f in facts if id(f.t) not in replaced] if gone else facts
            new = _facts(loaded, period, self.ctx, self.keep, fresh)
            return kept + new, gone, new

        self.tickets_c, gone, new = renewed(self.tickets_c, self.period)
        self.tickets_p, _gone, _new = renewed(self.tickets_p, self.prev)
        self.fc, self.fp = self.facts_for(None)
        self._totals = None
        if self._tally is not None:  # the period's tally: the written tickets' facts swapped
            self._tally.remove(gone)
            self._tally.add(new)
            if woken:  # and the dormant counts, one fewer
                self._tally.remove(self._tally_dormant)
                self._tally_dormant = _dormant_in(self.fc)
                self._tally.add(self._tally_dormant)
        for dim, (key, tallies, _old, dormant) in self._groups_kept.items():  # and each group's
            if woken:
                fresh_dormant = _dormant_in(self._facts_for_groups(dim))
                gone_g, new_g = gone + dormant, new + fresh_dormant
                self._groups_kept[dim][3] = fresh_dormant
            else:
                gone_g, new_g = gone, new
            for f in gone_g:
                t = tallies[key(f)]
                t.remove([f])
                if not t.n:
                    del tallies[key(f)]
            for f in new_g:
                k = key(f)
                if k not in tallies:
                    tallies[k] = Tally(self.ctx)
                tallies[k].add([f])
        # A tally whose facts did not change keeps its result unless the history of one of its
        # customers did (repeat contacts): the written tickets' customers, before and after.
        touched = {t["customer"] for t in loaded.replaced + fresh if t["customer"] is not None}
        for t in self._tallies():
            t.ctx = self.ctx
            if loaded.history_reread or t.has_customer(touched):
                t.stale()
        # A ticket whose life began at or after the previous period's end has no facts in it and
        # does not make any of its tickets a repeat contact (only earlier tickets count): the
        # previous period's aggregate stands unless a written ticket began before that end.
        if loaded.history_reread or any(lo < self.prev.end for lo in changed.values()):
            self._old = None
            for kept in self._groups_kept.values():
                kept[2] = None
        return True

    def slim(self) -> None:
        """Drop what a kept pass needs no more: its tickets' events (a refresh re-reads those of the
        tickets written; reports read only the facts derived from them). The stored facts rows stay:
        a dashboard's weekly series reads tickets off them as of each week's end (Replay.series)."""
        loaded = self.loaded
        loaded.events = {}
        if loaded.with_events is not None:
            loaded.with_events = set()
        loaded.by_key()  # what a refresh looks tickets up by, built now rather than after a write

    def _tallies(self) -> list:
        """Every tally this pass keeps: the period's, each group's."""
        out = [self._tally] if self._tally is not None else []
        for _key, tallies, _old, _dormant in self._groups_kept.values():
            out.extend(tallies.values())
        return out

    def _facts_for_groups(self, dim: str) -> list:
        """The period's facts as the groups of ``dim`` read them (dormant counts split for it)."""
        return self.facts_for(dim)[0] if dim in derived.DORMANT_DIMS else self.fc

    def facts_for(self, group_by: str | None) -> tuple[list, list]:
        """The current and previous period's facts, the dormant counts split as ``group_by`` needs."""
        dims = self.dims
        if group_by in derived.DORMANT_DIMS and group_by not in dims:
            dims += (group_by,)
        return (
            _with_dormant(self.tickets_c, self.loaded, self.period.end, self.keep, dims),
            _with_dormant(self.tickets_p, self.loaded, self.prev.end, self.keep, dims),
        )

    def report(self, group_by: str | None = None, *, group_previous: bool = True, group_kpis=None) -> dict:
        """The section 6 report. ``group_previous=False``: the groups' previous-period values are
        left out (``previous`` and ``delta`` null, half the groups' cost), for a page whose group
        tables show this period's values only; the totals always carry both periods. With
        ``group_kpis`` (KPI keys, with ``group_previous=False``) each group's ``kpis`` holds those
        only and its ``ccei`` is null unless asked: a page's table shows a few columns (time groups
        hold every KPI)."""
        if group_kpis is not None and group_previous:
            raise ValueError("group_kpis needs group_previous=False (the kept previous values are whole)")
        if group_by is not None and group_by not in GROUP_BY:
            raise ValueError(f"unknown group-by {group_by!r} (one of {', '.join(GROUP_BY)})")
        if self.loaded.cells and group_by not in CELL_GROUPS:
            raise ValueError(f"a pass that reads settled cells cannot group by {group_by!r}")
        env, period, prev = self.env, self.period, self.prev
        if self._totals is None:
            if self._old is None:
                self._old = _tally_of(self.ctx, self.fp, self.cells_p).result(
                    prev.start, prev.end, prev.days, env.users
                )
            if self._tally is None:
                if group_by in _FROM_AGENTS:  # the groups walk the facts anyway: their sum
                    self._tally = Tally(self.ctx)
                    for t in self._group_tallies("agent").values():
                        self._tally.merge(t)
                else:
                    self._tally = _tally_of(self.ctx, self.fc, self.cells_c)
                self._tally_dormant = _dormant_in(self.fc)
            cur = self._tally.result(period.start, period.end, period.days, env.users)
            self._totals = _assemble(env, cur, self._old, self.targets, self.inputs)
        kpis, ccei = self._totals
        report = {
            "schema": SCHEMA,
            "portal": self.portal,
            "timezone": env.tz_name,
            "period": period.as_json(),
            "previous": prev.as_json(),
            # both periods are half-open: "from" is included, "to" is not (the dashboard's fields
            # show the last day included, "to" minus one day)
            "period_bounds": "[from, to)",
            "filters": self.filters.as_json(),
            "kpis": kpis,
            "ccei": ccei,
        }
        if self.compare != "previous":
            report["compare"] = self.compare
        if group_by:
            report["group_by"] = group_by
            fc, fp = self.facts_for(group_by) if group_by in derived.DORMANT_DIMS else (self.fc, self.fp)
            if group_by in TIME_DIMS:
                groups = _time_groups(
                    env, self.ctx, group_by, fc, fp if group_previous else None, period, prev, self.inputs
                )
            else:
                need = None
                if group_kpis is not None:  # and what the CCEI reads, when it is asked
                    need = frozenset(group_kpis) | {"resolved_count"}
                    need |= ccei_mod.INPUT_KPIS if "ccei" in need else frozenset()
                values = self._group_values(group_by, fc, fp, group_previous, need)
                groups = _groups(env, group_by, *values, self.inputs, group_kpis)
            report["groups"] = groups
        return report

    def _group_values(
        self, dim: str, fc: list, fp: list, previous: bool, only=None
    ) -> tuple[dict, dict | None, Period, Period]:
        """Each group's aggregates of both periods (``previous`` False: the current one only), from
        tallies kept per group (``refresh`` swaps the written tickets' facts in them) and previous
        aggregates kept until a write touches the previous period."""
        env, period, prev = self.env, self.period, self.prev
        key = group_key(dim, env.tree)
        tallies = self._group_tallies(dim, fc)
        kept = self._groups_kept[dim]
        if previous and kept[2] is None:
            parts = {k: _tally_of(self.ctx, fs, []) for k, fs in _parts(fp, key).items()}
            self._merge_cells(parts, dim, self.cells_p)
            kept[2] = {k: t.result(prev.start, prev.end, prev.days, env.users) for k, t in parts.items()}
        cur = {k: t.result(period.start, period.end, period.days, env.users, only) for k, t in tallies.items()}
        return cur, (kept[2] if previous else None), period, prev

    def _group_tallies(self, dim: str, fc: list | None = None) -> dict:
        """group -> the Tally of the period's facts in it (``fc``: the facts as ``dim`` reads them,
        default the pass's), kept for ``refresh``. A department's is the sum of its agents' (a
        department is its agent's department: one walk of the facts serves both)."""
        kept = self._groups_kept.get(dim)
        if kept is not None:
            return kept[1]
        fc = self.fc if fc is None else fc
        key = group_key(dim, self.env.tree)
        tallies: dict = {}
        if dim == "department":
            department_of = self.env.tree.department_of
            for agent, t in self._group_tallies("agent").items():
                k = department_of(agent)
                if k not in tallies:
                    tallies[k] = Tally(self.ctx)
                tallies[k].merge(t)
        else:
            for k, fs in _parts(fc, key).items():
                tallies[k] = Tally(self.ctx)
                tallies[k].add(fs)
            self._merge_cells(tallies, dim, self.cells_c)
        self._groups_kept[dim] = [key, tallies, None, _dormant_in(fc)]
        return tallies

    def _merge_cells(self, tallies: dict, dim: str, cells: list) -> None:
        """Add each settled cell's tally to its group's (``dim``: agent or department)."""
        if not cells:
            return
        if dim == "agent":
            key = lambda c: c.agent  # noqa: E731
        elif dim == "department":
            key = lambda c: self.env.tree.department_of(c.agent)  # noqa: E731
        else:
            raise ValueError(f"settled cells cannot be grouped by {dim!r}")
        for c in cells:
            k = key(c)
            if k not in tallies:
                tallies[k] = Tally(self.ctx)
            tallies[k].merge(c.tally)


# group-bys whose groups hold every fact of the period once, from the agents' tallies: the
# period's tally is their sum
_FROM_AGENTS = ("agent", "department")


def _parts(facts: list, key) -> dict:
    """``facts`` split by ``key``."""
    parts: dict = {}
    for f in facts:
        parts.setdefault(key(f), []).append(f)
    return parts


def _dormant_in(facts: list) -> list:
    """The weighted facts of dormant counts among ``facts`` (derived.dormant_facts)."""
    return [f for f in facts if "dormant" in f.t]


def _groups(
    env: ReportEnv, dim: str, cur: dict, old: dict | None, period: Period, prev: Period, inputs, only=None
) -> list:
    """One entry per group from each group's aggregates (``cur``, ``old``: key -> aggregate); ``old``
    None: this period's groups only, their previous values null; ``only``: the KPIs they hold."""
    ctx = env.ctx
    empty_cur = empty_old = None
    out = []
    for k in _order(dim, set(cur) | set(old or {}), env):
        if dim == "agent":
            targets = env.targets_for(agent=k)
        elif dim == "department":
            targets = env.targets_for(department=k)
        else:
            targets = env.targets_for()
        c = cur.get(k)
        if c is None:
            c = empty_cur = empty_cur or Tally(ctx).result(period.start, period.end, period.days, env.users, only)
        o = None
        if old is not None:
            o = old.get(k)
            if o is None:
                o = empty_old = empty_old or aggregate([], prev.start, prev.end, prev.days, ctx, env.users)
        kpis, ccei = _assemble(env, c, o, targets, inputs, only)
        g = {"key": k, "label": _label(dim, k, env), "kpis": kpis, "ccei": ccei}
        if dim == "department":
            chain = env.tree.chain(k) if k is not None else []
            g["path"] = [env.tree.label(d) for d in chain]
            g["parent"] = chain[-2] if len(chain) > 1 else None
            g["depth"] = max(len(chain) - 1, 0)
        out.append(g)
    return out


def _time_groups(env, ctx, dim, fc, fp, period, prev, inputs) -> list:
    """Every bucket of the period (timedims.py), then the tickets of the period outside C (key None)."""
    tz = env.tz
    key_cur = timedims.keyer(dim, tz, period.start)
    key_old = timedims.keyer(dim, tz, period.start, prev.start)
    cur, old = {}, {}
    for f in fc:
        cur.setdefault(key_cur(f), []).append(f)
    for f in fp or ():
        old.setdefault(key_old(f), []).append(f)
    prev_days = (
        {k: d for k, _s, _e, d in timedims.spans(dim, prev.start, prev.end, tz)} if dim in ("weekday", "hour") else {}
    )
    targets = env.targets_for()
    out = []
    rows = [(k, Period(s, e, period.tz), d) for k, s, e, d in timedims.spans(dim, period.start, period.end, tz)]
    if cur.get(None) or old.get(None):
        rows.append((None, period, period.days))
    for k, span, days in rows:
        p_span = (
            Period(span.start - (period.start - prev.start), span.end - (period.start - prev.start), prev.tz)
            if dim in ("week", "month") and k is not None
            else prev
        )
        pdays = prev_days.get(k, prev.days) if k is not None else prev.days
        if dim in ("week", "month") and k is not None:
            pdays = p_span.days
        cur_v = aggregate(cur.get(k, []), span.start, span.end, days, ctx, env.users)
        old_v = aggregate(old.get(k, []), p_span.start, p_span.end, pdays, ctx, env.users) if fp is not None else None
        cc = ccei_mod.compute(cur_v, inputs[0], env.config)
        cp = ccei_mod.compute(old_v, inputs[1], env.config) if old_v is not None else None
        out.append(
            {
                "key": k,
                "label": timedims.label(dim, k),
                "kpis": _kpis(cur_v, old_v, targets, cc, cp),
                "ccei": dict(cc, previous=cp["value"] if cp else None),
            }
        )
    return out


def _label(dim: str, key, env: ReportEnv) -> str:
    if key is None:
        return "—"
    if dim == "agent":
        return (env.users.get(key) or {}).get("label") or str(key)
    if dim == "department":
        return env.tree.label(key)
    return (getattr(env, "names", {}).get(dim) or {}).get(str(key)) or str(key)


def _order(dim: str, keys: set, env: ReportEnv) -> list:
    """Stable group order: priorities by rank, departments in tree order, the rest by label."""
    if dim == "priority":
        rank = {p: i for i, p in enumerate(PRIORITIES)}
        return sorted(keys, key=lambda k: (rank.get(k, len(rank)), str(k)))
    if dim == "department":
        return sorted(keys, key=lambda k: [env.tree.label(d) for d in env.tree.chain(k)] if k else ["\uffff"])
    return sorted(keys, key=lambda k: (k is None, _label(dim, k, env).lower(), str(k)))
