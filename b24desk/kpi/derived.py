"""Per-ticket facts kept in the store, so a report reads them instead of replaying every log.

A ticket's facts as of a period's end ``to`` (engine.ticket_facts) only depend on the events
before ``to``. Once ``to`` is past the ticket's last event they are the facts of its whole log,
apart from a few parts read off per period: whether it was open at the period's start (from the
number and moment of its state changes), whether it was resolved or created in the period, and
what depends on ``to`` itself (overdue at ``to``, a first-response target passed by ``to``).

So the engine replays each ticket's whole log once (``ticket_facts`` with ``END_OF_TIME``), the
result is stored in ``ticket_facts`` (one row per ticket, keyed by the maths context it was
computed with: calendar, SLA, status mappings, who is an agent), and :func:`read_off` turns a row
into the period's facts. The maths stays in engine.py: this module only packs its output and
reads off the period-dependent parts; a ticket it cannot read off (a reopen on or after the
period's start, events at or after ``to``) is replayed from its events as before. Every ticket
has its row from its insertion on (a placeholder, ``ctx`` null, until facts are kept); triggers
null ``ctx`` and bump ``ver`` whenever the ticket or one of its events is written, and facts are
kept only while ``ver`` is the one read with the ticket (:func:`save`), so a kept row is always
the replay of the current log ("as of ``to``" stays exact: kpi.md section 2).

Open tickets untouched since before the period (kpi.md: in the active set of every period they
were open in, however old) are not loaded one by one: :func:`dormant` counts them in SQL from a
covering partial index over open tickets, by the columns filters and groups read, and each count
becomes one weighted fact (engine ``weight``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import marshal
import sqlite3
from bisect import bisect_left, bisect_right
from datetime import datetime
from operator import itemgetter
from zoneinfo import ZoneInfo

from ..model import OPEN
from .engine import END_OF_TIME, Context, Facts, frt_sla, new_facts, requester, ticket_facts

log = logging.getLogger(__name__)

TABLE = "ticket_facts"
# What a stored row holds, in order: the engine's ``Facts`` slots of a whole-log replay, less those
# read off per period (PERIOD_SLOTS).
PERIOD_SLOTS = frozenset({"t", "in_c", "in_r", "in_a", "open_at_end", "overdue", "frt_sla", "weight", "req"})
COLUMNS = tuple(c for c in Facts.__slots__ if c not in PERIOD_SLOTS)
_RESP_END, _PRIORITY, _TYPE = COLUMNS.index("resp_end"), COLUMNS.index("priority"), COLUMNS.index("type")
REPLAY = object()  # read_off: this period needs the ticket's events


@contextlib.contextmanager
def brief_wait(conn, ms: int = 200):
    """Inside the block ``conn`` waits at most ``ms`` for the store's write lock, then its own
    timeout again: what a report or the warmer keeps is kept next time, never behind a sync."""
    (timeout,) = conn.execute("PRAGMA busy_timeout").fetchone()
    conn.execute(f"PRAGMA busy_timeout = {int(ms)}")
    try:
        yield conn
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout)}")


def fingerprint(ctx: Context) -> str:
    """A short digest of everything in ``ctx`` a stored row depends on: a row computed under
    another calendar, SLA, status mapping or set of agents is recomputed, never used."""
    cals = []
    for cal in (ctx.calendar, ctx.sla_calendar):
        if cal is None:
            cals.append(None)
            continue
        cals.append(
            [
                cal.tz_name,
                sorted(cal.work_days),
                cal.work_start,
                cal.work_end,
                sorted(str(d) for d in cal.extra_holidays),
                sorted(str(d) for d in cal.extra_workdays),
                sorted(str(d) for d in cal.recurring_holidays),
                sorted(str(d) for d in cal.recurring_workdays),
                getattr(cal.country, "country", None),
            ]
        )
    parts = [
        2,  # the layout of COLUMNS; bump when it or the engine's maths of a stored part changes
        # (2: rows as of the end of the creation month kept too, MONTH_TABLE)
        cals,
        sorted(ctx.sla_resolution.items()),
        sorted(ctx.sla_first_response.items()),
        {k: sorted(v.items()) for k, v in sorted(ctx.status_states.items())},
        {k: sorted(v.items()) for k, v in sorted(ctx.status_buckets.items())},
        sorted(ctx.bots),
        None if ctx.support_members is None else sorted(ctx.support_members),
    ]
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def settle(t: dict, events, ctx: Context) -> tuple:
    """The stored row of one ticket: its whole log replayed (engine.ticket_facts)."""
    f = ticket_facts(t, events, -END_OF_TIME, END_OF_TIME, ctx)
    return tuple(getattr(f, c) for c in COLUMNS)


# Rows as of the end of a ticket's creation month, for the tickets whose log goes on past it: a
# month's report (and its previous month's) reads them off instead of replaying each such ticket
# (at 3M tickets 17k of a month report's 28k tickets read one by one, 0.4 s of events and replays)
MONTH_TABLE = "ticket_facts_month"
_LAST_AT = COLUMNS.index("last_at")


def month_end(at: int, tz_name: str) -> int:
    """The first instant after the local month holding ``at``."""
    d = datetime.fromtimestamp(at, ZoneInfo(tz_name))
    y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return int(datetime(y, m, 1, tzinfo=ZoneInfo(tz_name)).timestamp())


def settle_at(t: dict, events, end: int, ctx: Context) -> tuple | None:
    """The row of ``t`` as of ``end`` (its log replayed up to ``end``, what a period ending there
    sees, engine.ticket_facts), read off per period like a whole-log row (read_off) but only for
    periods ending at ``end``; ``last_at`` is the last event before ``end``. None when it was
    created at or after ``end``."""
    f = ticket_facts(t, events, -END_OF_TIME, end, ctx)
    if f is None:
        return None
    row = [getattr(f, c) for c in COLUMNS]
    before = [e[0] for e in events if e[0] < end]
    row[_LAST_AT] = max(before) if before else None
    return tuple(row)


def month_row(t: dict, events, row: tuple, ctx: Context) -> tuple | None:
    """``(end, row as of end)`` for a ticket whose whole-log ``row`` has events at or after the end
    of its creation month (the calendar's zone); None for the others."""
    created, last_at = t["created_at"], row[_LAST_AT]
    if created is None or last_at is None:
        return None
    end = month_end(created, ctx.calendar.tz_name)
    if last_at < end:
        return None
    got = settle_at(t, events, end, ctx)
    return None if got is None else (end, got)


def read_off(t: dict, s: tuple, start: int, end: int, ctx: Context):
    """The facts of ``t`` for ``[start, end)`` from its stored row ``s``; None when it is in no
    population of the period; ``REPLAY`` when the row cannot tell (the caller replays)."""
    created = t["created_at"] or 0
    if created >= end:
        return None
    (
        state,
        close_at,
        resolution_at,
        first_reply,
        replies,
        interactions,
        transfers,
        reopens,
        requalified,
        callback,
        resp_created,
        resp_end,
        typ,
        priority,
        deadline,
        work,
        wait_customer,
        work_b,
        wait_customer_b,
        handle,
        frt_b,
        res_b,
        frt_sla_b,
        n_trans,
        last_trans_at,
        last_at,
    ) = s
    if last_at is not None and last_at >= end:
        return REPLAY
    in_c = created >= start
    if in_c or n_trans == 0:
        in_a = True  # created in the period, or never changed state: open at its start
    elif n_trans == 1:
        in_a = close_at >= start  # one change, the close: open at the start unless closed before
    elif last_trans_at < start:
        in_a = state == OPEN  # every change before the start: its state now is its state then
    else:
        return REPLAY  # closes and reopens around the start: the replay knows
    f = new_facts(t, start, in_c, in_a, state, close_at, resolution_at, (first_reply, replies, interactions, transfers))
    if f is None:
        return None
    in_r = f.in_r
    f.reopens, f.requalified, f.n_trans, f.last_trans_at = reopens, bool(requalified), n_trans, last_trans_at
    f.last_at, f.req = last_at, requester(t)
    f.frt_b = frt_b if in_c else None
    f.res_b = res_b if in_r else None
    f.frt_sla_b = frt_sla_b
    f.handle = handle
    f.resp_created, f.resp_end, f.type, f.priority, f.deadline = resp_created, resp_end, typ, priority, deadline
    f.frt_sla = frt_sla(f, created, end, ctx)
    f.overdue = in_a and deadline is not None and deadline < (close_at if state != OPEN else end)
    f.callback = in_r and bool(callback)
    if in_r:
        f.work, f.wait_customer, f.work_b, f.wait_customer_b = work, wait_customer, work_b, wait_customer_b
    else:
        f.work = f.wait_customer = f.work_b = f.wait_customer_b = None
    return f


def save(db, portal: str, fp: str, rows: list) -> int:
    """Keep ``[(ticket row, ver, facts row[, month row])]`` computed under ``fp`` (a month row:
    :func:`month_row`, kept in MONTH_TABLE with ``fp`` and ``ver``, read only while the facts row
    has that ``ver``). Each goes to its ticket's
    ``ticket_facts`` row only while that row's ``ver`` is the one read with the ticket: a write
    since (the triggers bump it) means the facts are already old, and they are not kept. A report
    calls this on its way: when the store cannot be written now (locked by a sync, read-only,
    full disk) nothing is kept and the next report computes them again. Returns the rows kept."""
    if not rows:
        return 0
    conn = db.conn if hasattr(db, "conn") else db
    sets = ", ".join(f"{c} = ?" for c in ("ctx", "own", "dkey") + COLUMNS)
    sql = f"update {TABLE} set {sets} where portal = ? and source = ? and source_id = ? and ver = ?"
    params, months = [], []
    for t, ver, row, *month in rows:
        if month and month[0] is not None:
            months.append((portal, t["source"], t["source_id"], fp, ver, month[0][0], marshal.dumps(month[0][1])))
        req = requester(t)
        resp_end, priority, typ = row[_RESP_END], row[_PRIORITY], row[_TYPE]
        own = req is not None and req == resp_end  # the requester's own ticket: no agent of it
        dkey = json.dumps([resp_end, own, priority, typ, t["channel"], t["line"], t["source"]])
        params.append((fp, own, dkey) + tuple(row) + (portal, t["source"], t["source_id"], ver))
    if conn.in_transaction:  # inside a caller's transaction: join it (a statement that fails
        before = conn.total_changes  # leaves the caller's transaction as it was)
        try:
            conn.executemany(sql, params)
        except sqlite3.Error as exc:
            log.debug("ticket facts not kept for now (%s): %d rows", exc, len(params))
            return 0
        kept = conn.total_changes - before
        _save_months(conn, months)
        return kept
    try:
        with brief_wait(conn):  # a report never waits long behind a sync
            conn.execute("BEGIN IMMEDIATE")
            try:
                before = conn.total_changes
                conn.executemany(sql, params)
                kept = conn.total_changes - before
                _save_months(conn, months)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    except sqlite3.Error as exc:
        log.debug("ticket facts not kept for now (%s): %d rows", exc, len(params))
        return 0
    return kept


def _save_months(conn, months: list) -> None:
    """Keep month rows (see save); a store that cannot (not migrated) keeps the facts without them."""
    if not months:
        return
    try:
        conn.executemany(
            f"insert or replace into {MONTH_TABLE} (portal, source, source_id, ctx, ver, month_end, facts)"
            " values (?, ?, ?, ?, ?, ?, ?)",
            months,
        )
    except sqlite3.Error as exc:  # only this statement is undone: the facts rows stay
        log.debug("month rows not kept (%s): %d rows", exc, len(months))


def open_rows_complete(conn, portal: str) -> bool:
    """Whether every open ticket of ``portal`` has its ``ticket_facts`` row (two index-only counts):
    the loader then reads the open tickets from ticket_facts. A store written with the triggers off
    (or restored from before them) is read the old way until ``store.facts_placeholders`` ran."""
    row = conn.execute(
        "select (select count(*) from tickets where portal = ? and closed_at is null),"
        f" (select count(*) from {TABLE} indexed by ticket_facts_open where portal = ? and closed_at is null)",
        [portal, portal],
    ).fetchone()
    if row[0] != row[1]:
        log.warning("ticket_facts incomplete for %s (%d open tickets, %d rows)", portal, row[0], row[1])
    return row[0] == row[1]


def open_now(conn, portal: str, fp: str, start: int, end: int, src_sql: str, src_params: list) -> tuple[list, list]:
    """The tickets open now (their row says so), for the dashboard's "now" panel as of ``end``:
    those kept under ``fp`` as open and untouched since before ``start`` come as
    ``(source, source_id, created_at, resp_end, priority, type, channel, line, first_reply,
    deadline)``, the columns :func:`read_off` would give them (the facts of their whole log), from
    this table alone; the keys of the others (no facts kept, kept with a closed state, an event
    since ``start``) come apart, to be read off or replayed as before. ``src_sql`` is on ``f.``."""
    sql = (
        "select f.source, f.source_id, f.created_at, f.resp_end, f.priority, f.type, f.channel, f.line,"
        " f.first_reply, f.deadline, f.ctx = ? and f.state = 'open' and coalesce(f.last_at, -1) < ?"
        f" from {TABLE} f indexed by ticket_facts_open where f.portal = ? and f.closed_at is null"
        f" and f.created_at < ? and coalesce(f.deleted, 0) = 0{src_sql}"
    )
    kept, others = [], []
    for row in conn.execute(sql, [fp, start, portal, end] + src_params):
        if row[10]:
            kept.append(row[:10])
        else:
            others.append((row[0], row[1]))
    return kept, others


_DORMANT_WHERE = (
    "f.portal = ? and f.closed_at is null and f.ctx = ? and f.state = 'open'"
    " and coalesce(f.last_at, -1) < ? and f.created_at < ? and coalesce(f.deleted, 0) = 0"
)


def dormant_keys(conn, portal: str, before: int, fp: str, src_sql: str, src_params: list) -> dict:
    """``(source, source_id) -> (dkey, deadline)`` of the tickets :func:`dormant` counts (the same
    condition, from the same index alone: its entries carry the table's key), so a kept report
    can take one out of its count when it is written (ReportPass.refresh)."""
    sql = (
        f"select f.source, f.source_id, f.dkey, f.deadline from {TABLE} f indexed by ticket_facts_dormant"
        f" where {_DORMANT_WHERE}{src_sql}"
    )
    return {(r[0], r[1]): (r[2], r[3]) for r in conn.execute(sql, [portal, fp, before, before] + src_params)}


def dormant_take(rows: list, dkey: str, deadline, ends: list[int]) -> bool:
    """Take one ticket (its ``dkey`` and ``deadline``, from :func:`dormant_keys`) out of the
    :func:`dormant` rows counted with ``ends``; False when no row counts it."""
    resp, own, priority, typ, channel, line, source = json.loads(dkey)
    bounds = [int(e) for e in sorted(set(ends))]
    cls = -1 if deadline is None else bisect_right(bounds, deadline)
    want = (resp, own, cls, priority, typ, source, channel, line)
    for i, row in enumerate(rows):
        if tuple(row[:8]) == want:
            if row[9] > 1:
                rows[i] = tuple(row[:9]) + (row[9] - 1,)
            else:
                del rows[i]
            return True
    return False


def dormant(conn, portal: str, before: int, ends: list[int], fp: str, src_sql: str, src_params: list) -> list:
    """Open tickets created before ``before`` whose last event is before it too, counted in SQL by
    the columns filters and groups read and by where their deadline falls among ``ends`` (overdue
    is per end), from one partial index of ticket_facts; :func:`dormant_facts` turns the counts
    into weighted facts. The same tickets are left out of the loader's candidates
    (load.candidate_query), in the same read. ``src_sql`` is on ``f.``."""
    bounds = [int(e) for e in sorted(set(ends))]
    # one row per group, in the index's own order (no sort): how many, how many with a deadline,
    # and how many with one before each end (overdue is per end)
    before_each = "".join(f", count(case when f.deadline < {e} then 1 end)" for e in bounds)
    sql = (
        f"select f.dkey, count(*), count(f.deadline){before_each} from {TABLE} f indexed by ticket_facts_dormant"
        f" where {_DORMANT_WHERE}{src_sql} group by f.dkey"
    )
    rows = conn.execute(sql, [portal, fp, before, before] + src_params)
    return _dormant_rows(((_dkey(r[0]), r[1], r[2], r[3:]) for r in rows), bounds)


def _dormant_rows(groups, bounds: list[int]) -> list:
    """:func:`dormant`'s rows from ``(dkey as a tuple, tickets, with a deadline, with one before
    each bound)`` per group: one row per deadline class (the tickets on the same side of every
    bound)."""
    # a deadline standing for each class: the same side of every end as the class's tickets
    stand_in = [bounds[0] - 1] + bounds
    out = []
    for key, total, with_deadline, cum in groups:
        resp, own, priority, typ, channel, line, source = key
        if total > with_deadline:
            out.append((resp, own, -1, priority, typ, source, channel, line, None, total - with_deadline))
        if not with_deadline:
            continue
        counts = [cum[0]] + [b - a for a, b in zip(cum, cum[1:])] + [with_deadline - cum[-1]]
        for i, n in enumerate(counts):
            if n:
                out.append((resp, own, i, priority, typ, source, channel, line, stand_in[i], n))
    return out


KEPT_TABLE = "dormant_kept"


def keep_dormant(db, portal: str, fp: str, before: int) -> bool:
    """Keep the tickets :func:`dormant` counts for ``before`` (every source), per group with their
    deadlines, so a report starting there reads one row (:func:`kept_dormant`) instead of
    scanning every never-closed ticket, however old: 50 years of them cost a month's report as
    much as its own tickets. Counted and kept in one transaction that reads first and writes
    last: if any write was committed since its read began, SQLite refuses the write (WAL: a
    snapshot behind the store cannot write) and nothing is kept, so no write falls between, and
    a sync is held up only by the insert, not the scan (0.3 s at 3M tickets when not cached).
    Triggers (store.dormant_triggers) drop the row when a ticket it may count is written. Also
    stands for "every open ticket has its facts row" (:func:`open_rows_complete`, checked here).
    False when not kept: the store is busy (next time), incomplete or not migrated."""
    conn = db.conn if hasattr(db, "conn") else db
    try:
        with brief_wait(conn):  # behind a sync: next time
            conn.execute("BEGIN")
            try:
                if kept_dormant(conn, portal, fp, before) is not None:
                    conn.execute("COMMIT")
                    return True
                if not open_rows_complete(conn, portal):
                    conn.execute("ROLLBACK")
                    return False
                groups: list = []
                for dkey, deadline in conn.execute(
                    f"select f.dkey, f.deadline from {TABLE} f indexed by ticket_facts_dormant where {_DORMANT_WHERE}"
                    " order by f.dkey, f.deadline",
                    [portal, fp, before, before],
                ):
                    if not groups or groups[-1][0] != dkey:
                        groups.append([dkey, 0, []])  # the key decoded below, once
                    g = groups[-1]
                    g[1] += 1
                    if deadline is not None:
                        g[2].append(deadline)
                blob = marshal.dumps([(_dkey(k), n, d) for k, n, d in groups])
                # the first write: refused if the read above is no longer the store's state
                conn.execute(f"delete from {KEPT_TABLE} where portal = ? and fp != ?", [portal, fp])
                conn.execute(
                    f"insert into {KEPT_TABLE} (portal, before, fp, counts) values (?, ?, ?, ?)",
                    [portal, before, fp, blob],
                )
                conn.execute("COMMIT")
                return True
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    except sqlite3.Error as exc:
        log.debug("dormant counts of %s not kept for now (%s)", portal, exc)
        return False


def kept_dormant(conn, portal: str, fp: str, before: int) -> list | None:
    """The groups :func:`keep_dormant` kept for ``before`` under ``fp`` (``(dkey as a tuple,
    tickets, sorted deadlines)``), None when none are (or they are unreadable: another Python's
    marshal)."""
    try:
        row = conn.execute(
            f"select counts from {KEPT_TABLE} where portal = ? and before = ? and fp = ?", [portal, before, fp]
        ).fetchone()
        kept = marshal.loads(row[0]) if row else None
    except (sqlite3.OperationalError, ValueError, EOFError, TypeError):
        return None  # not migrated, or unreadable: counted in SQL
    return kept if type(kept) is list else None


def dormant_of_kept(kept: list, ends: list[int], sources: list | None = None) -> list:
    """:func:`dormant`'s rows from kept groups (:func:`kept_dormant`), for ``ends`` and the ticket
    ``sources`` a report reads (load.source_values; None: every source)."""
    bounds = [int(e) for e in sorted(set(ends))]
    wanted = None if sources is None else set(sources)
    groups = (
        (key, total, len(deadlines), [bisect_left(deadlines, e) for e in bounds] if deadlines else None)
        for key, total, deadlines in kept
        if wanted is None or key[6] in wanted
    )
    return _dormant_rows(groups, bounds)


@functools.lru_cache(maxsize=1 << 16)
def _dkey(dkey: str) -> tuple:
    """A ``dkey`` (store.m_kpi_facts_001: a JSON array) as a tuple, decoded once per process: a
    store with 50 years of never-closed tickets has a thousand groups, read at every report."""
    return tuple(json.loads(dkey))


# the columns of a dormant() row a filter or a group may read, besides the responsible
DORMANT_DIMS = ("priority", "type", "source", "channel", "line")


def dormant_facts(rows: list, end: int, dims=()) -> list[Facts]:
    """Weighted facts as of ``end`` from :func:`dormant` rows, one per responsible, requester flag,
    deadline class and value of the ``dims`` (of DORMANT_DIMS) a filter or group reads; other
    columns are summed over (None), so a page without breakdowns makes a few hundred facts, not
    one per open ticket."""
    key_of = itemgetter(0, 1, 2, *(3 + DORMANT_DIMS.index(d) for d in dims))
    merged: dict = {}
    for row in rows:
        key = key_of(row)
        m = merged.get(key)
        if m is None:
            merged[key] = [row, row[8], row[9]]
        else:
            if row[8] is not None and (m[1] is None or row[8] > m[1]):
                m[1] = row[8]
            m[2] += row[9]
    out = []
    for key, (row, deadline, n) in merged.items():
        vals = dict(zip(dims, key[3:]))
        resp, own = row[0], row[1]
        t = {
            "source": vals.get("source"),
            "source_id": None,
            "channel": vals.get("channel"),
            "line": vals.get("line"),
            "author_id": resp if own else None,
            "customer": None,
            "created_at": None,
            "rating": None,
            "nps": None,
            "ces": None,
            "dormant": n,  # marks a count of tickets, not one (drilldown.Replay.of_pass)
        }
        out.append(_open_bulk(t, resp, vals.get("priority"), vals.get("type"), deadline, end, n))
    return out


def _open_bulk(t: dict, resp, priority, typ, deadline, end: int, n: int) -> Facts:
    f = new_facts(t, 0, False, True, OPEN, None, None, (None, 0, 0, 0))
    f.reopens, f.requalified, f.callback, f.handle = 0, False, False, None
    f.n_trans, f.last_trans_at, f.last_at, f.weight, f.req = 0, None, None, n, requester(t)
    f.frt_b = f.res_b = f.frt_sla_b = f.frt_sla = None
    f.resp_created, f.resp_end, f.type, f.priority, f.deadline = resp, resp, typ, priority, deadline
    f.overdue = deadline is not None and deadline < end
    f.work = f.wait_customer = f.work_b = f.wait_customer_b = None
    return f


# a facts row's gap (store.m_repeat_gaps_001) from its ticket: to the customer's latest other live
# ticket created at or before it (same-second ones count), -1 with none (no customer, deleted)
_GAP_OF = (
    "coalesce((SELECT t.created_at - (SELECT u.created_at FROM tickets u WHERE u.portal = t.portal"
    " AND u.customer = t.customer AND coalesce(u.deleted, 0) = 0 AND u.created_at <= t.created_at"
    " AND u.rowid != t.rowid ORDER BY u.created_at DESC LIMIT 1) FROM tickets t WHERE t.portal = {f}.portal"
    " AND t.source = {f}.source AND t.source_id = {f}.source_id AND coalesce(t.deleted, 0) = 0), -1)"
)


def fill_gaps(db, portal: str, batch: int = 5000, created: set | None = None) -> int | None:
    """Fill in the gap (store.m_repeat_gaps_001) of up to ``batch`` of ``portal``'s facts rows that
    have none; returns how many, 0 when none was left, None when the store could not be written
    now (a sync holds it: the next call goes on). ``created`` gets their tickets' ``created_at``
    (the warmer makes their months' cells anew). Each batch is one statement: computed and
    written under the write lock, so a ticket written meanwhile cannot leave an old gap behind
    (its trigger runs before or after the whole batch)."""
    conn = db.conn if hasattr(db, "conn") else db
    try:
        with brief_wait(conn):
            with conn:
                cur = conn.execute(
                    f"UPDATE {TABLE} SET gap = {_GAP_OF.format(f=TABLE)} WHERE portal = ? AND gap IS NULL"
                    f" AND (source, source_id) IN (SELECT source, source_id FROM {TABLE} INDEXED BY ticket_facts_nogap"
                    " WHERE portal = ? AND gap IS NULL LIMIT ?) RETURNING created_at",
                    [portal, portal, batch],
                )
                rows = cur.fetchall()
            if created is not None:
                created.update(at for (at,) in rows if at is not None)
            return len(rows)
    except sqlite3.OperationalError as exc:
        if "no such column" in str(exc) or "no such index" in str(exc):
            return 0  # a store not migrated: nothing to fill
        log.debug("gaps not filled for now (%s)", exc)
        return None
