"""Read what one report needs from the store, and only that (cost grows with the period).

A ticket can matter to ``[start, end)`` only if it was created before ``end`` and was not already
closed for good before ``start``: ``created_at < end and (closed_at is null or closed_at >= start)``
(its *current* last close is never earlier than any close or reopen inside the period). That set is
read as three index ranges: created inside the window (``portal, created_at``), created before it
and closed since its start, and still open (both ``portal, closed_at, created_at``, a covering
index added by the ``m_kpi_001`` migration), so the store's history before the window is never
scanned. Events come by primary key for those tickets only; the customers' earlier tickets for
repeat contacts are one more ``created_at`` range, read from the index alone (``m_kpi_002``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import marshal
import sqlite3
from bisect import bisect_left, insort
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..model import parse_ids
from ..store import distinct_values, get_setting
from . import cells as cells_mod
from . import derived
from .engine import TICKET_COLUMNS, Context, CustomerHistory, PartialHistory, ticket_facts

log = logging.getLogger(__name__)

EVENT_COLUMNS = ("at", "kind", "actor_id", "field", "from_value", "to_value")

# Source selectors (shared/spec/interfaces.md) -> the ticket's ``source`` column.
SELECTOR_SOURCES = {"tasks": "task", "deals": "crm:2", "openlines": "openlines"}


@contextlib.contextmanager
def read_snapshot(conn):
    """One read transaction around the block (several queries see one state of the store), unless
    the caller already has one open (then its own)."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        yield conn
    finally:
        if own:
            conn.execute("COMMIT")


def group_by_source(keys) -> dict:
    """``source -> [source_id]`` of ``(source, source_id)`` keys (one query per source)."""
    out: dict = {}
    for source, sid in keys:
        out.setdefault(source, []).append(sid)
    return out


@dataclass
class Loaded:
    tickets: list = field(default_factory=list)  # dict rows
    events: dict = field(default_factory=dict)  # (source, source_id) -> [event tuple]
    customer_history: dict = field(default_factory=dict)  # customer -> sorted created_at
    # (source, source_id) -> the ticket's stored facts row (derived.py), when fresh for ``ctx``
    stored: dict = field(default_factory=dict)
    # tickets whose events were read (``events`` has only those with at least one)
    with_events: set | None = None  # None: every ticket's
    # the dormant open tickets' counts (derived.dormant), when asked for at load time
    dormant_rows: list = field(default_factory=list)
    # the ends those rows were counted for, and (when asked for) the tickets they count:
    # key -> (dkey, deadline)
    dormant_ends: list = field(default_factory=list)
    dormant_keys: dict | None = None
    # the settled cells (cells.py) whose tickets this load left out, when asked for
    cells: list = field(default_factory=list)
    # end -> (source, source_id) -> the ticket's facts row as of end, kept for the tickets whose
    # log goes on past an end the load was asked for (derived.month_row): their events not read
    month: dict = field(default_factory=dict)
    db: object = None
    portal: str | None = None
    index: dict | None = None  # by_key()
    replaced: list = field(default_factory=list)  # the rows the last reload() replaced
    history_reread: bool = False  # whether the last reload() read the whole history again

    def facts(self, t: dict, start: int, end: int, ctx: Context):
        """The facts of ticket ``t`` for ``[start, end)``: read off its stored row when that can
        tell (derived.read_off), else replayed from its events (engine.ticket_facts)."""
        key = (t["source"], t["source_id"])
        m = self.month.get(end)
        m = m.get(key) if m else None
        if m is not None:  # its row as of this end (derived.month_row)
            f = derived.read_off(t, m, start, end, ctx)
            if f is not derived.REPLAY:
                return f
        s = self.stored.get(key)
        if s is not None:
            f = derived.read_off(t, s, start, end, ctx)
            if f is not derived.REPLAY:
                return f
        if self.with_events is not None and key not in self.with_events:
            self._read_events([key])
        return ticket_facts(t, self.events.get(key, ()), start, end, ctx)

    def dormant(self, end: int, dims=()) -> list:
        """The dormant open tickets as weighted facts as of ``end`` (one of the load's ``ends``),
        split by the ``dims`` a filter or a group reads (derived.dormant_facts)."""
        return derived.dormant_facts(self.dormant_rows, end, dims) if self.dormant_rows else []

    def prepare(self, start: int, ends, tickets=None) -> None:
        """Read at once the events of every ticket (of ``tickets``, default all) whose stored facts
        cannot serve periods starting at or after ``start`` and ending at one of ``ends`` (a weekly
        series)."""
        if self.with_events is None:
            return
        ends = tuple(ends)
        keys = [
            key
            for t in (self.tickets if tickets is None else tickets)
            if (key := (t["source"], t["source_id"])) not in self.with_events
            and (key not in self.stored or _needs_events(t["created_at"] or 0, self.stored[key], start, ends))
        ]
        if keys:
            self._read_events(keys)

    def by_key(self) -> dict:
        """(source, source_id) -> ticket row, of the tickets this load read (built once)."""
        if self.index is None:
            self.index = {(t["source"], t["source_id"]): t for t in self.tickets}
        return self.index

    def reload(self, keys: dict, start: int, end: int, sources, ctx: Context, repeat_window: int) -> tuple:
        """Re-read the tickets named by ``keys`` (written since this load: the change journal says
        which, each with the earliest its life may have begun) in place of what this load had of
        them, with their events, and their part of the customers' history. Returns the re-read
        tickets that belong to the window ``[start, end)`` (the caller re-derives their facts:
        ReportPass.refresh) and the facts rows computed for them now, to keep (``derived.save``,
        after the read); ``replaced`` holds the rows they replace. Call inside one read
        transaction."""
        conn, portal = self.db.conn, self.portal
        lo = start - repeat_window  # the customers' history covers [lo, end)
        index = self.by_key()
        old = [index.pop(k) for k in keys if k in index]
        # what the written tickets this load read gave the history; one it did not read gave none
        # unless its life began before ``start`` (then the history is read again in full)
        old_keys = {(t["source"], t["source_id"]) for t in old}
        known = all(k in old_keys or b >= start for k, b in keys.items())
        gone = [
            (t["customer"], t["created_at"])
            for t in old
            if t["customer"] is not None and t["created_at"] is not None and lo <= t["created_at"] < end
        ]
        if old:
            dropped = {id(t) for t in old}
            self.tickets = [t for t in self.tickets if id(t) not in dropped]
        for key in keys:
            self.stored.pop(key, None)
            for rows in self.month.values():
                rows.pop(key, None)
            self.events.pop(key, None)
            if self.with_events is not None:
                self.with_events.discard(key)
        fp = derived.fingerprint(ctx)
        sources_ids = group_by_source(keys)
        src_sql, src_params = source_clause(sources, "t.")
        cols = (
            ", ".join(f"t.{c}" for c in TICKET_COLUMNS)
            + ", f.ctx, f.ver, "
            + ", ".join(f"f.{c}" for c in derived.COLUMNS)
        )  # no gap: a kept pass answers repeat contacts from the history once refreshed
        n = len(TICKET_COLUMNS)
        fresh, missing = [], []
        for source, ids in sources_ids.items():
            for row in conn.execute(
                f"select {cols} from tickets t left join {derived.TABLE} f on f.portal = t.portal"
                " and f.source = t.source and f.source_id = t.source_id where t.portal = ? and t.source = ?"
                " and t.source_id in (select value from json_each(?)) and coalesce(t.deleted, 0) = 0"
                # by key: ``+`` keeps the planner off the created_at index (ANALYZE's statistics of a
                # one-portal store made it read every ticket created before ``end``, 0.5 s at 1M)
                " and +t.created_at < ?"
                f" and (+t.created_at >= ? or +t.closed_at is null or +t.closed_at >= ?){src_sql}",
                [portal, source, json.dumps(ids), end, start, start] + src_params,
            ):
                t = dict(zip(TICKET_COLUMNS, row[:n]))
                fresh.append(t)
                if row[n] == fp:
                    self.stored[(t["source"], t["source_id"])] = row[n + 2 :]
                else:
                    missing.append((t, row[n + 1]))
        _read_events(conn, portal, group_by_source((t["source"], t["source_id"]) for t in fresh), self.events)
        if self.with_events is not None:
            self.with_events.update((t["source"], t["source_id"]) for t in fresh)
        for i, (t, ver) in enumerate(missing):
            key = (t["source"], t["source_id"])
            events = self.events.get(key, ())
            self.stored[key] = derived.settle(t, events, ctx)
            missing[i] = (t, ver, self.stored[key], derived.month_row(t, events, self.stored[key], ctx))
        self.tickets.extend(fresh)
        index.update(((t["source"], t["source_id"]), t) for t in fresh)
        self.replaced = old
        history = self.customer_history
        if known and (history is None or isinstance(history, PartialHistory)):
            # a load that read no history (its tickets' gaps told, load()): the written tickets'
            # customers, before and after, are the only ones whose gaps may have changed (store.
            # gaps_triggers): their history is read, the others' gaps still tell
            covers = set(history.covers if history is not None else ())
            covers |= {t["customer"] for t in old + fresh if t["customer"] is not None}
            self.customer_history = _history_of(conn, portal, lo, end, sources, covers)
            self.history_reread = False
            return fresh, missing
        self.history_reread = not known
        if not known:
            self.customer_history = _history(conn, portal, lo, end, sources)
            return fresh, missing
        history = self.customer_history
        touched: set = set()  # the customers whose lists are patched in place (CustomerHistory.changed)
        try:
            for cust, created in gone:
                times = history.get(cust) or []
                i = bisect_left(times, created)
                if i == len(times) or times[i] != created:  # not what the load read: read it all again
                    self.customer_history = _history(conn, portal, lo, end, sources)
                    self.history_reread = True
                    return fresh, missing
                touched.add(cust)
                del times[i]
                if not times:
                    del history[cust]
            for source, ids in sources_ids.items():
                sql, params = history_query(portal, lo, end, sources, by_key=True)
                sql += " and source = ? and source_id in (select value from json_each(?))"
                for cust, created in conn.execute(sql, params + [source, json.dumps(ids)]):
                    touched.add(cust)
                    insort(history.setdefault(cust, []), created)
        except BaseException:
            touched = None  # patched halfway: whatever it knew is forgotten
            raise
        finally:
            if isinstance(history, CustomerHistory):
                history.changed(touched)
        return fresh, missing

    def _read_events(self, keys: list) -> None:
        _read_events(self.db.conn, self.portal, group_by_source(keys), self.events)
        self.with_events.update(keys)


def facts_rows_complete(conn, portal: str, start: int, end: int) -> bool:
    """Whether every ticket of ``portal`` created in ``[start, end)`` has its ``ticket_facts``
    row (two index-only counts; the triggers keep one per ticket, store.facts_triggers): the
    loader may then read the window's tickets from ticket_facts (candidate_query's
    ``exclude_cells``). A store written with the triggers off reads them the old way, no cells."""
    row = conn.execute(
        "select (select count(*) from tickets where portal = ? and created_at >= ? and created_at < ?),"
        f" (select count(*) from {derived.TABLE} indexed by ticket_facts_created where portal = ?"
        " and created_at >= ? and created_at < ?)",
        [portal, start, end, portal, start, end],
    ).fetchone()
    if row[0] != row[1]:
        log.warning("ticket_facts incomplete for %s in [%s, %s): %d tickets, %d rows", portal, start, end, *row)
    return row[0] == row[1]


def _needs_events(created: int, s: tuple, start: int, ends: tuple) -> bool:
    """Whether a stored row (derived.COLUMNS) may not serve a period ``[>= start, end in ends)``:
    an end after creation and at or before the last event, or closes and reopens since ``start``
    (derived.read_off answers REPLAY for exactly these)."""
    n_trans, last_trans_at, last_at = s[-3:]  # derived.COLUMNS ends with these three
    if n_trans >= 2 and last_trans_at >= start:
        return True
    return last_at is not None and any(created < e <= last_at for e in ends)


_EVENTS_SQL = (
    "select j.key, e.at, e.kind, e.actor_id, e.field, e.from_value, e.to_value"
    " from json_each(?) j join events e on e.portal = ? and e.source = ? and e.source_id = j.value"
    " where e.kind not in ('created', 'rated') and e.at is not null order by j.key, e.at, e.key"
)


def _read_events(conn, portal: str, by_source: dict, events: dict) -> None:
    """Events of the given tickets, by primary key, in replay order; one query per source with the
    ids as a JSON array. ``created`` (the ticket row has it) and ``rated`` (scores are on the
    ticket row) are not needed by the maths."""
    for source, ids in by_source.items():
        current, bucket = None, None
        for row in conn.execute(_EVENTS_SQL, [json.dumps(ids), portal, source]):
            if row[0] != current:
                current = row[0]
                bucket = events[(source, ids[current])] = []
            bucket.append(row[1:])


def source_values(sources) -> list | None:
    """The ticket ``source`` values a report's source selectors read (None: every source), or
    ``False`` when a selector narrows a source (``tasks:group=7``: the settled cells, kept per
    source, cannot tell those tickets apart)."""
    if not sources:
        return None
    out = []
    for sel in [sources] if isinstance(sources, str) else sources:
        sel = str(sel).strip()
        if "=" in sel:
            return False
        if sel:
            out.append(SELECTOR_SOURCES.get(sel, sel))
    return sorted(set(out)) or None


def source_clause(sources, prefix: str = "") -> tuple[str, list]:
    """SQL condition for ``--source`` selectors: ``tasks`` means every task, ``tasks:group=7`` only
    the tickets that selector brought in; a raw source (``task``, ``crm:1038``) matches that source."""
    if not sources:
        return "", []
    if isinstance(sources, str):
        sources = [sources]
    by_source, by_selector = [], []
    for sel in sources:
        sel = str(sel).strip()
        if not sel:
            continue
        if "=" in sel:  # a narrowed selector: only what it brought in
            by_selector.append(sel)
        elif sel in SELECTOR_SOURCES:
            by_source.append(SELECTOR_SOURCES[sel])
        else:  # crm:1038, task, crm:2, openlines
            by_source.append(sel)
    parts, params = [], []
    if by_source:
        parts.append(f"{prefix}source in ({','.join('?' * len(by_source))})")
        params += by_source
    if by_selector:
        parts.append(f"{prefix}selector in ({','.join('?' * len(by_selector))})")
        params += by_selector
    return (" and (" + " or ".join(parts) + ")") if parts else "", params


def candidate_query(
    portal: str,
    start: int,
    end: int,
    sources=None,
    *,
    facts: bool = False,
    dormant_ctx: str | None = None,
    exclude_cells: list | None = None,
) -> tuple[str, list]:
    """SQL + params for the tickets that can matter to ``[start, end)`` (three index ranges; the
    second one by ``closed_at``: ``+`` keeps the planner off the ``created_at`` index, which with
    the store's statistics it would take, reading every ticket created before the window).

    With ``facts`` each row also carries, after the ticket columns, its ``ticket_facts`` row's
    ``ctx``, ``ver``, derived.COLUMNS (derived.py) and ``gap`` (derived.fill_gaps). With
    ``dormant_ctx`` (a maths context's digest) the still-open tickets are read from ticket_facts'
    partial index over open tickets, leaving out those kept under that context as open and
    untouched since before ``start``: they are counted in SQL instead (derived.dormant), so years
    of never-closed tickets are not read.
    With ``exclude_cells`` (ids, with ``facts``) the tickets of those settled cells are left out
    (cells.py: their tallies stand for them; they are closed, so only the first two ranges). The
    tickets created in the window then come from ticket_facts' ``ticket_facts_created`` index,
    whose entries name their cell, so a member costs one index step, not a ticket row and a facts
    row (a six-month report at 1M steps over 400k members); the caller checks first that every
    ticket of the window has its facts row (:func:`facts_rows_complete`)."""
    src_sql, src_params = source_clause(sources, "t.")
    cols = ", ".join(f"t.{c}" for c in TICKET_COLUMNS)
    join = ""
    if facts or dormant_ctx is not None:
        cols += ", f.ctx, f.ver, " + ", ".join(f"f.{c}" for c in derived.COLUMNS) + ", f.gap"
        join = (
            f" left join {derived.TABLE} f on f.portal = t.portal and f.source = t.source and f.source_id = t.source_id"
        )
    live = "coalesce(t.deleted, 0) = 0"
    out_sql, out_params = "", []
    if exclude_cells:
        out_sql = " and (f.cell is null or f.cell not in (select value from json_each(?)))"
        out_params = [json.dumps(exclude_cells)]
        # the keys from the index alone, then the others' facts rows by their key (a second
        # instance of the table): read through the index directly, SQLite seeks every entry's
        # facts row before its conditions, members included (WITHOUT ROWID)
        keys = (
            f"select source, source_id from {derived.TABLE} indexed by ticket_facts_created where portal = ?"
            " and created_at >= ? and created_at < ? and coalesce(deleted, 0) = 0"
            " and (cell is null or cell not in (select value from json_each(?)))"
        )
        first = (
            f"select {cols} from ({keys}) k cross join {derived.TABLE} f on f.portal = ? and f.source = k.source"
            " and f.source_id = k.source_id cross join tickets t on t.portal = f.portal and t.source = f.source"
            f" and t.source_id = f.source_id where t.created_at >= ? and t.created_at < ? and {live}{src_sql}"
        )
        first_params = [portal, start, end] + out_params + [portal, start, end] + src_params
    else:
        first = (
            f"select {cols} from tickets t{join} where t.portal = ? and t.created_at >= ? and t.created_at < ?"
            f" and {live}{src_sql}"
        )
        first_params = [portal, start, end] + src_params
    sql = (
        f"{first} union all select {cols} from tickets t{join} where t.portal = ? and t.closed_at >= ?"
        f" and +t.created_at < ? and {live}{src_sql}{out_sql}"
    )
    params = first_params + [portal, start, start] + src_params + out_params
    if dormant_ctx is None:
        sql += (
            f" union all select {cols} from tickets t{join} where t.portal = ? and t.closed_at is null"
            f" and t.created_at < ? and {live}{src_sql}"
        )
        params += [portal, start] + src_params
    else:
        f_src, _ = source_clause(sources, "f.")
        # the open tickets that are not dormant, each kind one seek in ticket_facts_open (portal,
        # ctx, state, last_at): no facts kept (or kept under another context), kept with a closed
        # state though the ticket row is open, or kept as open with an event since ``start``
        seek = f"select source, source_id from {derived.TABLE} indexed by ticket_facts_open where portal = ?"
        seek += " and closed_at is null and "
        kinds = (
            "ctx is null",
            "ctx < ?",
            "ctx > ?",
            "ctx = ? and state < 'open'",
            "ctx = ? and state > 'open'",
            "ctx = ? and state = 'open' and last_at >= ?",
        )
        keys = " union all ".join(seek + k for k in kinds)
        sql += (
            f" union all select {cols} from ({keys}) k join {derived.TABLE} f on f.portal = ?"
            " and f.source = k.source and f.source_id = k.source_id join tickets t on t.portal = f.portal"
            " and t.source = f.source and t.source_id = f.source_id"
            # ``+``: the ticket_facts_created index would have the planner walk every facts row
            f" where +f.created_at < ? and coalesce(f.deleted, 0) = 0{f_src}"
        )
        params += [portal]
        params += [portal, dormant_ctx] + [portal, dormant_ctx] + [portal, dormant_ctx] + [portal, dormant_ctx]
        params += [portal, dormant_ctx, start]
        params += [portal, start] + src_params
    return sql, params


def history_query(portal: str, start: int, end: int, sources=None, *, by_key: bool = False) -> tuple[str, list]:
    """SQL + params for (customer, created_at) of the tickets created in ``[start, end)``; with
    ``by_key`` the caller adds a condition on the key and the range is checked row by row (``+``),
    so the planner seeks the keys instead of reading the range (Loaded.reload)."""
    src_sql, src_params = source_clause(sources)
    col = "+created_at" if by_key else "created_at"
    return (
        f"select customer, created_at from tickets where portal = ? and {col} >= ?"
        # ``+customer``: the planner would take tickets_customer for ``is not null`` (every customer)
        f" and {col} < ? and +customer is not null and coalesce(deleted, 0) = 0{src_sql}",
        [portal, start, end] + src_params,
    )


def load(
    db,
    portal: str,
    start: int,
    end: int,
    *,
    sources=None,
    repeat_window: int = 30 * 86400,
    ctx: Context | None = None,
    ends=None,
    dormant: bool = False,
    dormant_keys: bool = False,
    cell_spans=None,
) -> Loaded:
    """Tickets relevant to ``[start, end)`` with their events, and their customers' recent tickets.

    With ``ctx``, tickets' stored facts (derived.py) are used where they can tell and computed and
    kept where missing; events are then read only for the tickets whose stored facts cannot serve
    a period starting at or after ``start`` and ending at one of ``ends`` (the caller's periods;
    default: any end inside the window). Any other ticket's events are read when first needed
    (``Loaded.prepare`` reads them for many ends at once). With ``dormant`` too, the open tickets
    untouched since before ``start`` are counted in SQL instead (``Loaded.dormant(end)`` for an end
    of ``ends``), and with ``dormant_keys`` those tickets are listed as well (``Loaded.dormant_keys``:
    one index row each, for a pass that is kept and refreshed). With ``cell_spans`` (the caller's
    periods, with ``ctx``: ``(start, end, months)``) the settled cells of whole pieces inside them
    are read too, and with ``months`` of whole months (a period with no weekly series drawn)
    (``Loaded.cells``, cells.py); their tickets are left out of the candidates."""
    conn = db.conn
    with read_snapshot(conn):  # one snapshot: the candidates and the dormant counts must not overlap
        out, missing, fp = _load(
            conn,
            db,
            portal,
            start,
            end,
            sources,
            repeat_window,
            ctx,
            ends,
            dormant,
            dormant_keys,
            cell_spans,
        )
    if missing:  # computed now: kept for the next report (after the read, outside its snapshot)
        derived.save(db, portal, fp, missing)
    return out


def _load(
    conn,
    db,
    portal,
    start,
    end,
    sources,
    repeat_window,
    ctx,
    ends,
    dormant,
    dormant_keys=False,
    spans=None,
):
    out = Loaded(db=db, portal=portal)
    missing: list = []
    fp = derived.fingerprint(ctx) if ctx is not None else None
    src_values = source_values(sources)  # None: every source; False: a narrowed selector
    kept = None  # the dormant counts kept for this start (derived.keep_dormant), if any
    dormant = dormant and bool(ends) and fp is not None
    if dormant and src_values is not False:
        kept = derived.kept_dormant(conn, portal, fp, start)
    dormant = dormant and (kept is not None or derived.open_rows_complete(conn, portal))
    if spans and fp is not None and facts_rows_complete(conn, portal, start, end):
        out.cells = cells_mod.usable(conn, portal, ctx, fp, spans, src_values)
    sql, params = candidate_query(
        portal,
        start,
        end,
        sources,
        facts=fp is not None,
        dormant_ctx=fp if dormant else None,
        exclude_cells=cells_mod.member_cells(out.cells) or None,
    )
    cur = conn.execute(sql, params)
    n = len(TICKET_COLUMNS)
    if fp is None:
        out.tickets = [dict(zip(TICKET_COLUMNS, row)) for row in cur]
        by_source = group_by_source((t["source"], t["source_id"]) for t in out.tickets)
    else:
        ends = (start,) if ends is None else tuple(ends)
        tickets, stored, by_source, later = [], {}, {}, []
        # repeat contacts from the tickets' gaps (derived.fill_gaps) instead of the customers'
        # history, when the scope is every source (a gap counts any source's ticket) and every
        # ticket of C, the cells' members too, has its gap
        gaps = gaps_cover(conn, portal, sources) and not any(c.tally.nogap for c in out.cells)
        for row in cur:
            t = dict(zip(TICKET_COLUMNS, row[:n]))
            tickets.append(t)
            key = (t["source"], t["source_id"])
            gap = t["gap"] = row[-1]
            if gap is None and gaps and t["created_at"] is not None and t["created_at"] >= start:
                gaps = False  # a ticket of C whose gap is not known: the history answers
            if row[n] != fp:  # no facts kept under this context: replayed now, and kept
                missing.append((t, row[n + 1]))
            else:
                s = stored[key] = row[n + 2 : -1]
                if not _needs_events(t["created_at"] or 0, s, start, ends):
                    continue  # the kept row serves every period the caller asks
                later.append((t, key, s, row[n + 1]))  # its log goes on: a month row may serve
                continue
            by_source.setdefault(key[0], []).append(key[1])
        out.tickets, out.stored = tickets, stored
        out.month = _month_rows(conn, portal, fp, later, start, ends)
        for _t, key, _s, _v in later:
            if not any(key in rows for rows in out.month.values()):
                by_source.setdefault(key[0], []).append(key[1])
        out.with_events = {(src, sid) for src, ids in by_source.items() for sid in ids}
    if out.tickets:
        _read_events(conn, portal, by_source, out.events)
    for i, (t, ver) in enumerate(missing):
        key = (t["source"], t["source_id"])
        events = out.events.get(key, ())
        out.stored[key] = derived.settle(t, events, ctx)
        missing[i] = (t, ver, out.stored[key], derived.month_row(t, events, out.stored[key], ctx))
    if dormant:
        src_sql, src_params = source_clause(sources, "f.")
        if kept is not None:
            out.dormant_rows = derived.dormant_of_kept(kept, list(ends), src_values)
        else:
            out.dormant_rows = derived.dormant(conn, portal, start, list(ends), fp, src_sql, src_params)
        out.dormant_ends = list(ends)
        if dormant_keys:  # for a pass kept to be refreshed (ReportPass.refresh): one row per ticket
            out.dormant_keys = derived.dormant_keys(conn, portal, start, fp, src_sql, src_params)

    if fp is None or not gaps or repeat_window != ctx.repeat_window:
        out.customer_history = _history(conn, portal, start - repeat_window, end, sources)
    else:
        out.customer_history = None  # Context.customer_history: the tallies count the gaps
    return out, missing, fp


def _month_rows(conn, portal: str, fp: str, later: list, start: int, ends: tuple) -> dict:
    """end -> key -> row as of end, of the tickets of ``later`` (``(ticket, key, kept row, ver)``
    whose log goes on past an end of ``ends``) whose month row (derived.month_row) is kept under
    ``fp`` and their facts' ``ver``, ends at one of ``ends``, and serves that period while the
    whole-log row serves the others: their events are not read."""
    if not later:
        return {}
    want: dict = {}
    for t, key, s, ver in later:
        want.setdefault(key[0], {})[key[1]] = (t, s, ver)
    out = {}
    try:
        for source, by_id in want.items():
            rows = conn.execute(
                f"select source_id, ctx, ver, month_end, facts from {derived.MONTH_TABLE} where portal = ?"
                " and source = ? and source_id in (select value from json_each(?))",
                [portal, source, json.dumps(list(by_id))],
            )
            for sid, ctx, ver, m_end, blob in rows:
                t, s, fver = by_id[sid]
                if ctx != fp or ver != fver or m_end not in ends:
                    continue
                try:
                    mrow = marshal.loads(blob)
                except (ValueError, EOFError, TypeError):
                    continue  # another Python's marshal: its events are read
                if type(mrow) is not tuple or len(mrow) != len(derived.COLUMNS):
                    continue
                created = t["created_at"] or 0
                others = tuple(e for e in ends if e != m_end)
                if _needs_events(created, mrow, start, (m_end,)) or _needs_events(created, s, start, others):
                    continue
                out.setdefault(m_end, {})[(source, sid)] = mrow
    except sqlite3.OperationalError:  # a store not migrated: the events are read
        return {}
    return out


def gaps_cover(conn, portal: str, sources) -> bool:
    """Whether the tickets' gaps (derived.fill_gaps: to the customer's previous ticket of any
    source) answer repeat contacts in the scope of ``sources``: every source, or each source the
    portal's live tickets come from (store.distinct_values, a few index seeks)."""
    if not sources:
        return True
    values = source_values(sources)
    if values is False:
        return False
    if values is None:
        return True
    present = {row[0] for row in distinct_values(conn, portal)}
    return present <= set(values)


def _history(conn, portal: str, start: int, end: int, sources) -> dict:
    """customer -> sorted created_at of their tickets created in ``[start, end)`` (repeat contacts),
    read in ``created_at`` order (the index's: no sort in SQL), so each list comes sorted: no sort
    per customer (100k of them for a 1M dashboard)."""
    sql, params = history_query(portal, start, end, sources)
    history = CustomerHistory()
    add = history.setdefault
    for cust, created in conn.execute(sql + " order by created_at", params):
        add(cust, []).append(created)
    return history


def _history_of(conn, portal: str, start: int, end: int, sources, customers) -> PartialHistory:
    """The history of ``customers`` only (:func:`_history`'s rows of theirs), by the
    ``tickets_customer`` index."""
    history = PartialHistory(customers)
    if not customers:
        return history
    sql, params = history_query(portal, start, end, sources, by_key=True)
    for cust, created in conn.execute(
        sql + " and customer in (select value from json_each(?))", params + [json.dumps(sorted(customers))]
    ):
        history.setdefault(cust, []).append(created)
    for times in history.values():
        times.sort()
    return history


def load_people(db, portal: str) -> tuple[dict, dict]:
    """Users (id -> {label, departments, is_bot, active}) and departments (id -> {name, parent})."""
    users, deps = {}, {}
    if "users" in db.table_names():
        for r in db.query(
            "select id, name, last_name, departments, is_bot, active from users where portal = ?", [portal]
        ):
            label = " ".join(x for x in (r["name"], r["last_name"]) if x) or str(r["id"])
            users[str(r["id"])] = {
                "label": label,
                "departments": parse_ids(r["departments"]),
                "is_bot": bool(r["is_bot"]),
                "active": r["active"],
            }
    if "departments" in db.table_names():
        for r in db.query("select id, name, parent from departments where portal = ?", [portal]):
            deps[str(r["id"])] = {
                "name": r["name"] or str(r["id"]),
                "parent": str(r["parent"]) if r["parent"] not in (None, "", "0") else None,
            }
    return users, deps


def portal_zone(db, portal: str, config: dict | None = None) -> str:
    """The one time-zone rule (reports, pages, pushes, the open-lines cross-check): the zone an
    admin picked in the settings (:func:`admin_timezone`), else the portal's own
    (:func:`portal_timezone`), else the config's ``[calendar] timezone``, else Moscow."""
    return (
        admin_timezone(db, portal)
        or portal_timezone(db, portal)
        or ((config or {}).get("calendar") or {}).get("timezone")
        or "Europe/Moscow"
    )


def admin_timezone(db, portal: str) -> str | None:
    """The time zone an admin picked on the settings page (``calendar.timezone`` of the portal's
    ``config`` overrides, b24desk/overrides.py): it wins over the portal's own and the config
    file's, since the admin chose it for the reports."""
    over = get_setting(db, portal, "config") or {}
    tz = (over.get("calendar") or {}).get("timezone") if isinstance(over, dict) else None
    try:
        return tz if isinstance(tz, str) and tz and ZoneInfo(tz) else None
    except (ValueError, ZoneInfoNotFoundError):
        return None


def portal_timezone(db, portal: str) -> str | None:
    """The portal's time zone, which the KPI day boundaries follow: the admin's ``[calendar]
    timezone`` set for this portal in its settings, else the one saved with the installation
    (``installations.timezone``), else the portal-wide one the sync derived from ``server.time``
    (setting ``portal_timezone``, see ``directory.portal_zone_name``); None: the file config decides."""
    override = (
        ((get_setting(db, portal, "config") or {}).get("calendar") or {})
        if isinstance(get_setting(db, portal, "config"), dict)
        else {}
    )
    candidates = [override.get("timezone") if isinstance(override, dict) else None]
    if "installations" in db.table_names():
        row = db.execute("select timezone from installations where member_id = ?", [portal]).fetchone()
        candidates.append(row[0] if row else None)
    candidates.append(get_setting(db, portal, "portal_timezone"))
    for tz in candidates:
        try:
            if isinstance(tz, str) and tz and ZoneInfo(tz):
                return tz
        except (ValueError, ZoneInfoNotFoundError):
            continue
    return None


def backfill(db, portal: str, ctx: Context, after: tuple = ("", ""), batch: int = 1000) -> tuple[int, tuple | None]:
    """Compute and keep the facts (derived.py) of up to ``batch`` tickets of ``portal`` that have
    none kept under ``ctx``, in key order from ``after``; returns ``(kept, last key)``, the key
    None when no ticket was left. Run after a sync in the background, batch after batch, so the
    first report of any period reads kept facts instead of replaying its tickets (a month of a
    1M-ticket store: about 5 s the first time, 1.7 s after). A batch kept while a sync writes is
    not lost: what it cannot keep (locked, changed since read) the next report or backfill does."""
    conn = db.conn
    fp = derived.fingerprint(ctx)
    keys = conn.execute(
        f"select source, source_id, ver from {derived.TABLE} where portal = ? and (source, source_id) > (?, ?)"
        " and (ctx is null or ctx != ?) and coalesce(deleted, 0) = 0 order by source, source_id limit ?",
        [portal, after[0], after[1], fp, batch],
    ).fetchall()
    if not keys:
        return 0, None
    vers = {(s, i): v for s, i, v in keys}
    sources_ids = group_by_source(vers)
    tickets, events = [], {}
    cols = ", ".join(TICKET_COLUMNS)
    with read_snapshot(conn):  # the rows and their events from one snapshot
        for source, ids in sources_ids.items():
            for row in conn.execute(
                f"select {cols} from tickets where portal = ? and source = ?"
                " and source_id in (select value from json_each(?))",
                [portal, source, json.dumps(ids)],
            ):
                tickets.append(dict(zip(TICKET_COLUMNS, row)))
        _read_events(conn, portal, sources_ids, events)
    rows = []
    for t in tickets:
        key = (t["source"], t["source_id"])
        evs = events.get(key, ())
        row = derived.settle(t, evs, ctx)
        rows.append((t, vers[key], row, derived.month_row(t, evs, row, ctx)))
    return derived.save(db, portal, fp, rows), (keys[-1][0], keys[-1][1])
