"""Settled cells: kept tallies of the tickets whose whole life lies inside one piece of a week.

A report walks every ticket active in its period (load.py, engine.py): at a million tickets a
month's dashboard reads some 80,000 of them, a six-month report half a million, about 10 µs each
however the rows are packed. Most are *settled*: created in a piece (a local week, cut where a
month begins), closed, their last event before the piece's end, nothing left that depends on the
period (no first-response target still waiting for a reply, no resolution stamped before the
piece). Such a ticket has the same facts as of the end of every period containing its piece
(derived.read_off gives its whole-log facts, in C and, resolved, in R), so what it adds to a
tally (engine.Tally) does not depend on the period either. This module keeps the Tally of those
tickets per piece, source and responsible (``settled_cells``); a report of whole pieces merges
the cells and reads only the other tickets: the same maths over the same facts, summed in
another order. A piece is also a window of the dashboard's weekly series (weeks cut at the
period's bounds), whose counts and durations a cell's tally holds too. A whole month's *as-of*
cells hold its other tickets, those whose log goes on past its end, as of that end (their month
rows, derived.month_row): the same facts for every period ending there that starts at or before
the month, read for a report's last period only (:func:`_build_asof`).

Exactness. A ticket is in one cell at most (``ticket_facts.cell``). Triggers mark a cell stale
when a member is written (its facts row's ``ver`` bumped, its score or customer changed, its row
deleted) and take the member out; a stale cell is never read, and its tickets are read one by
one again until :func:`build` (the warmer, after a sync) makes the piece's cells anew. A report
selects the cells and reads the other tickets in one read snapshot. Cells belong to one maths
context (``fp``, derived.fingerprint), whose calendar also fixes the pieces' time zone.
"""

from __future__ import annotations

import json
import logging
import marshal
import sqlite3
import time
from bisect import bisect_right
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ..model import OPEN
from . import derived
from .engine import TICKET_COLUMNS, Context, Tally, frt_missed

log = logging.getLogger(__name__)

TABLE = "settled_cells"
# what a cell's tally holds of its tickets (engine.Tally.state), and the layout of that dict:
# bump when Tally's attributes change, so a kept cell of another layout is never read
# (3: the repeat contacts counted from the members' gaps, derived.fill_gaps)
LAYOUT = 3


class Cell:
    """One kept tally: the settled tickets of one piece (or month: ``kind``), source and
    responsible (``agent``); ``piece``/``end`` are its span. A month's ``ROLLUP`` is the merge of
    that month's piece and month cells of its source and responsible (``parts``: their ids, whose
    tickets it stands for)."""

    __slots__ = ("id", "kind", "piece", "end", "source", "agent", "tally", "parts")

    def __init__(self, id_, kind, piece, end, source, agent, tally, parts=None):
        self.id, self.kind, self.piece, self.end = id_, kind, piece, end
        self.source, self.agent, self.tally, self.parts = source, agent, tally, parts


def member_cells(cells: list) -> list:
    """The ids of the cells whose members ``cells`` stand for (a rollup's parts)."""
    return [i for c in cells for i in (c.parts if c.parts is not None else (c.id,))]


def _midnight(d: date, tz) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp())


def piece_of(at: int, tz) -> tuple[int, int]:
    """``[start, end)`` of the piece holding ``at``: its local week (Monday to Monday) cut at the
    start of a month."""
    d = datetime.fromtimestamp(at, tz).date()
    monday = d - timedelta(days=d.weekday())
    first = d.replace(day=1)
    next_month = (first + timedelta(days=32)).replace(day=1)
    return _midnight(max(monday, first), tz), _midnight(min(monday + timedelta(days=7), next_month), tz)


def pieces(start: int, end: int, tz) -> list[tuple[int, int]]:
    """The pieces lying wholly inside ``[start, end)``, in order."""
    out = []
    a, b = piece_of(start, tz)
    while a < end:
        if a >= start and b <= end:
            out.append((a, b))
        a, b = piece_of(b, tz)
    return out


def zone_of(ctx: Context):
    return ZoneInfo(ctx.calendar.tz_name)


def cell_fp(ctx: Context, fp: str | None = None) -> str:
    """The context a cell is kept under: its facts' (derived.fingerprint) and the repeat window its
    tally counted its members' gaps with (``Tally.repeaters``)."""
    return f"{fp or derived.fingerprint(ctx)}/{int(ctx.repeat_window)}"


def any_valid(conn, portal: str, ctx: Context, start: int, end: int) -> bool:
    """Whether a valid cell of ``ctx``'s maths lies in ``[start, end)`` (one index seek): a report
    of that window made anew would read some."""
    if TABLE not in _tables(conn):
        return False
    row = conn.execute(
        f"select 1 from {TABLE} where portal = ? and fp = ? and piece >= ? and piece < ? and stale = 0"
        " and layout = ? and piece_end <= ? and kind != ? limit 1",
        [portal, cell_fp(ctx), start, end, LAYOUT, end, ASOF],
    ).fetchone()
    return row is not None


def usable(conn, portal: str, ctx: Context, fp: str, spans, src) -> list[Cell]:
    """The valid cells of ``fp`` whose span lies wholly inside one of ``spans`` (the periods of a
    report, ``(start, end, months)``) and whose source is one of ``src`` (load.source_values: None
    every source, False none): the pieces', and with ``months`` the months' too (a period that
    draws no weekly series). Call inside the read that loads the other tickets."""
    if src is False or TABLE not in _tables(conn):
        return []
    tz = zone_of(ctx)
    out = []
    last = max(end for _start, end, _months in spans) if spans else None
    for start, end, months in spans:
        inside = pieces(start, end, tz)
        if not inside:
            continue
        sql = (
            f"select id, kind, piece, piece_end, source, agent, parts from {TABLE} where portal = ?"
            " and fp = ? and layout = ? and stale = 0 and piece >= ? and piece_end <= ?"
        )
        params = [portal, cell_fp(ctx, fp), LAYOUT, inside[0][0], inside[-1][1]]
        if not months:
            sql += " and kind = ?"
            params.append(PIECE)
        if src is not None:
            sql += f" and source in ({', '.join('?' * len(src))})"
            params += src
        rows = conn.execute(sql, params).fetchall()
        # an as-of cell tells a period ending at its month's end only, and only the window's last
        # one: its members' lives go on past it (an earlier period's, the later one needs them)
        rows = [r for r in rows if r[1] != ASOF or (r[3] == end == last)]
        # a whole month with a valid rollup reads it instead of its cells (a valid rollup's parts
        # are every valid piece and month cell of its month: any change to them makes it stale)
        rolled = sorted((r[2], r[3]) for r in rows if r[1] == ROLLUP)
        starts = [a for a, _b in rolled]
        chosen = {}
        for row in rows:
            if row[1] in (PIECE, MONTH) and rolled:
                i = bisect_right(starts, row[2]) - 1
                if i >= 0 and row[2] < rolled[i][1]:
                    continue  # in its month's rollup
            chosen[row[0]] = row
        if not chosen:
            continue
        # the tallies of the chosen cells only (a rolled month's cells are not read)
        blobs = conn.execute(
            f"select id, tally from {TABLE} where id in (select value from json_each(?))", [json.dumps(list(chosen))]
        )
        for id_, blob in blobs:
            _id, kind, piece, piece_end, source, agent, parts = chosen[id_]
            try:
                state = marshal.loads(blob)
                ids = json.loads(parts) if kind == ROLLUP else None
            except (ValueError, EOFError, TypeError):
                continue  # another Python's marshal: not read (its tickets are read one by one)
            out.append(Cell(id_, kind, piece, piece_end, source, agent, Tally.of_state(ctx, state, frozen=True), ids))
    return out


def _tables(conn) -> set:
    return {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}


def settles(
    created, state, last_at, resolution_at, first_reply, priority, piece: tuple[int, int], ctx: Context
) -> bool:
    """Whether a ticket created in ``piece`` whose kept facts say this is settled there: closed,
    its last event before the piece's end, no resolution stamped before the piece (clock skew: R
    would depend on the period's start), and, unanswered under a first-response target, that target
    passed by the piece's end (before it, met or missed would depend on the period's end)."""
    start, end = piece
    if state == OPEN or last_at is None or last_at >= end:
        return False
    if resolution_at is not None and resolution_at < start:
        return False
    target = ctx.sla_first_response.get(priority) if first_reply is None else None
    return target is None or frt_missed(created, end, target, ctx)


# the light columns that tell whether a piece's cells still hold its settled tickets (the facts'
# after the first two are settles()'s arguments, in order)
_LIGHT_FACTS = ("state", "last_at", "resolution_at", "first_reply", "priority")
_LIGHT = "t.created_at, f.cell, f.gap, " + ", ".join(f"f.{c}" for c in _LIGHT_FACTS)
# cell kinds: a piece's settled tickets; a whole month's settled tickets that are not settled in
# their piece (their log goes on past its end): for reports with no weekly series; a whole month's
# piece and month cells merged per source and responsible (build_rollups): for those reports too;
# a whole month's tickets whose log goes on past its end, tallied as of that end from their month
# rows (derived.month_row): for a report with no weekly series whose window ends there
PIECE, MONTH, ROLLUP, ASOF = "piece", "month", "rollup", "asof"


def _rows(conn, portal: str, fp: str, start: int, end: int, cols: str):
    """Tickets created in ``[start, end)`` with facts kept under ``fp``, closed, their last event
    before ``end`` (a first cut; :func:`settles` decides), by the ``created_at`` index."""
    sql = (
        f"select {cols} from tickets t join {derived.TABLE} f on f.portal = t.portal and f.source = t.source"
        " and f.source_id = t.source_id where t.portal = ? and t.created_at >= ? and t.created_at < ?"
        " and coalesce(t.deleted, 0) = 0 and f.ctx = ? and f.state != ? and f.last_at < ?"
    )
    return conn.execute(sql, [portal, start, end, fp, OPEN, end])


def build(db, portal: str, ctx: Context, start: int, end: int, stop=None, pause: float = 0.0, only=None) -> int:
    """Make anew the cells of every piece (and month) starting in ``[start, end)`` whose cells no
    longer hold exactly its settled tickets (a member written since, tickets settled or facts kept
    since, none made yet), a month at a time, the newest first, ``pause`` seconds between months
    (requests come first); ``stop()`` true ends it between months. ``only``: the months to look at
    (their first instants, :func:`month_of`), None every month. A month whose tickets change while
    it is read is left for the next call. Then every whole month's start, in ``only`` or not, gets
    its dormant counts kept (derived.keep_dormant). Returns the tickets now in new cells."""
    conn = db.conn
    if TABLE not in _tables(conn):
        return 0
    fp = derived.fingerprint(ctx)
    tz = zone_of(ctx)
    months = []
    a = piece_of(start, tz)[0]
    while a < end:
        first = datetime.fromtimestamp(a, tz).date().replace(day=1)
        b = _midnight((first + timedelta(days=32)).replace(day=1), tz)  # the month's end
        whole = _midnight(first, tz) >= start and b <= end
        months.append((max(a, start), min(b, end), (_midnight(first, tz), b) if whole else None))
        a = b
    starts = [m[2][0] for m in months if m[2] is not None]  # every whole month's, ``only`` or not
    if only is not None:
        months = [m for m in months if month_of(m[0], tz) in only]
    kept = 0
    for i, (a, b, month) in enumerate(reversed(months)):
        if stop and stop():
            break
        if i and pause:
            time.sleep(pause)
        kept += _build_month(conn, portal, ctx, fp, tz, a, b, month)
        if month is not None:
            kept += _build_asof(conn, portal, ctx, fp, *month)
            build_rollups(conn, portal, ctx, *month)
    # a write to a ticket untouched for years drops the counts of every start since, whatever
    # month it was created in: each is kept anew (a seek when kept, a scan of the dormant otherwise)
    for at in reversed(starts):
        if stop and stop():
            break
        derived.keep_dormant(conn, portal, fp, at)
    return kept


def build_rollups(conn, portal: str, ctx: Context, start: int, end: int) -> int:
    """Merge the valid cells of the whole month ``[start, end)`` per source and responsible into
    its rollups, unless it has valid ones: a six-month report merges some 100 rollups instead of
    5,900 cells. Triggers (store.rollup_triggers) make a month's rollups stale when one of its
    cells is added, removed or made stale, so a valid rollup holds exactly the month's valid
    cells. Returns the rollups made (0 also when the store is busy: next time)."""
    cfp = cell_fp(ctx)
    base = f"from {TABLE} where portal = ? and fp = ? and layout = ? and stale = 0 and piece >= ? and piece < ?"
    params = [portal, cfp, LAYOUT, start, end]
    if conn.execute(f"select 1 {base} and kind = ? limit 1", params + [ROLLUP]).fetchone():
        return 0
    groups: dict = {}
    for id_, source, agent, n, blob in conn.execute(
        f"select id, source, agent, n, tally {base} and kind in (?, ?) and piece_end <= ?", params + [PIECE, MONTH, end]
    ):
        g = groups.get((source, agent))
        if g is None:
            g = groups[(source, agent)] = (Tally(ctx), [], [0])
        g[0].merge(Tally.of_state(ctx, marshal.loads(blob), frozen=True))
        g[1].append(id_)
        g[2][0] += n
    if not groups:
        return 0
    # made before the write lock is taken (sorting, merging the customers' lists, marshalling)
    blobs = {key: marshal.dumps(_sorted(tally).state()) for key, (tally, _parts, _n) in groups.items()}
    try:
        with derived.brief_wait(conn):
            conn.execute("BEGIN IMMEDIATE")
            try:
                ids = sorted(i for _t, parts, _n in groups.values() for i in parts)
                now = [
                    r[0]
                    for r in conn.execute(f"select id {base} and kind in (?, ?) order by id", params + [PIECE, MONTH])
                ]
                if now != ids:  # the month's cells changed since they were read: next time
                    conn.execute("ROLLBACK")
                    return 0
                conn.execute(
                    f"delete from {TABLE} where portal = ? and kind = ? and piece = ?", [portal, ROLLUP, start]
                )
                for (source, agent), (_tally, parts, n) in groups.items():
                    conn.execute(
                        f"insert into {TABLE} (portal, fp, layout, kind, piece, piece_end, source, agent, n, tally,"
                        " stale, parts) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
                        [portal, cfp, LAYOUT, ROLLUP, start, end, source, agent, n[0],
                         blobs[(source, agent)], json.dumps(parts)],
                    )  # fmt: skip
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    except sqlite3.Error as exc:
        log.debug("rollups of %s not kept for now (%s)", portal, exc)
        return 0
    return len(groups)


def month_of(at: int, tz) -> int:
    """The first instant of the local month holding ``at``."""
    return _midnight(datetime.fromtimestamp(at, tz).date().replace(day=1), tz)


def _bucket(created, light, spans, starts, month, ctx):
    """``(kind, start, end)`` of the cell a ticket settles in (its piece's, else with a whole
    ``month`` its month's), or None."""
    i = bisect_right(starts, created) - 1
    if i < 0:
        return None
    if settles(created, *light, spans[i], ctx):
        return (PIECE, *spans[i])
    if month is not None and settles(created, *light, month, ctx):
        return (MONTH, *month)
    return None


def _build_month(conn, portal, ctx, fp, tz, start, end, month) -> int:
    spans = pieces(piece_of(start, tz)[0], end, tz)
    spans = [p for p in spans if p[0] >= start]
    if not spans:
        return 0
    lo, hi = spans[0][0], spans[-1][1]
    valid: dict = {}  # (kind, start) -> {id: n}
    other: set = set()  # (kind, start) with stale cells, of another context or layout
    cfp = cell_fp(ctx, fp)
    for id_, kind, piece, n, kept_fp, layout, stale in conn.execute(
        f"select id, kind, piece, n, fp, layout, stale from {TABLE} where portal = ? and piece >= ? and piece < ?"
        " and kind in (?, ?)",
        [portal, lo, hi, PIECE, MONTH],
    ):
        if kept_fp == cfp and layout == LAYOUT and not stale:
            valid.setdefault((kind, piece), {})[id_] = n
        else:
            other.add((kind, piece))
    # which cells no longer hold exactly their settled tickets: a first cut by the light columns
    # (a ticket outside its bucket's valid cells, or counts that differ)
    starts = [p[0] for p in spans]
    outside, inside, buckets = set(), {}, {}
    for created, cell, gap, *light in _rows(conn, portal, fp, lo, hi, _LIGHT):
        if gap is None:
            continue  # its gap not filled in yet (derived.fill_gaps): read one by one until then
        b = _bucket(created, light, spans, starts, month, ctx)
        if b is None:
            continue
        key = b[:2]
        buckets[key] = b
        if cell is not None and cell in valid.get(key, ()):
            inside[key] = inside.get(key, 0) + 1
        else:
            outside.add(key)
    keys = set(valid) | other | set(buckets)
    todo = [k for k in keys if k in other or k in outside or sum(valid.get(k, {}).values()) != inside.get(k, 0)]
    if not todo:
        return 0
    cols = ", ".join(f"t.{c}" for c in TICKET_COLUMNS) + ", f.ver, " + ", ".join(f"f.{c}" for c in derived.COLUMNS)
    cols += ", f.gap"
    n = len(TICKET_COLUMNS)
    light_at = [n + 1 + derived.COLUMNS.index(c) for c in _LIGHT_FACTS]
    created_at = TICKET_COLUMNS.index("created_at")
    made = []  # (kind, start, end, source, agent, Tally, [(source, source_id, ver)])
    rebuild = set(todo)
    groups: dict = {}
    for row in _rows(conn, portal, fp, lo, hi, cols):
        if row[-1] is None:
            continue  # no gap yet, as above
        b = _bucket(row[created_at], [row[k] for k in light_at], spans, starts, month, ctx)
        if b is None or b[:2] not in rebuild:
            continue
        t = dict(zip(TICKET_COLUMNS, row[:n]))
        t["gap"] = row[-1]  # whether it repeats a contact: counted in the cell (Tally.repeaters)
        # settled in that span: its facts as of any end after it (in C, its log inside the span)
        f = derived.read_off(t, row[n + 1 : -1], b[1], b[2], ctx)
        if f is None or f is derived.REPLAY:
            continue  # never for a ticket _bucket placed
        key = (b, t["source"], f.resp_end)
        g = groups.get(key)
        if g is None:
            g = groups[key] = (Tally(ctx), [])
        g[0].add([f])
        g[1].append((t["source"], t["source_id"], row[n]))
    for ((kind, a, b), source, agent), (tally, members) in groups.items():
        made.append((kind, a, b, source, agent, _sorted(tally), members))
    return _write(conn, portal, fp, cfp, sorted(rebuild), made)


def _build_asof(conn, portal: str, ctx: Context, fp: str, start: int, end: int) -> int:
    """Make anew the as-of cells of the whole month ``[start, end)`` unless they hold exactly its
    tickets that qualify: created in it, their log going on past its end, their month row
    (derived.month_row) kept under ``fp`` with their facts row's ``ver``, their gap known, and
    their facts as of ``end`` the same for every period ending there that starts at or before
    ``start`` (no resolution stamped before the month: clock skew). A report of such a period
    merges them instead of reading some 10k tickets and month rows (a month at 3M tickets).
    A member written since makes its cell stale (its ``ver`` is bumped, cells_triggers), so the
    last month's cells go stale while its tickets are still worked, and are made again here."""
    valid, other, cfp = {}, False, cell_fp(ctx, fp)
    for id_, n, kept_fp, layout, stale in conn.execute(
        f"select id, n, fp, layout, stale from {TABLE} where portal = ? and kind = ? and piece = ?",
        [portal, ASOF, start],
    ):
        if kept_fp == cfp and layout == LAYOUT and not stale:
            valid[id_] = n
        else:
            other = True
    cols = ", ".join(f"t.{c}" for c in TICKET_COLUMNS) + ", f.ver, f.cell, f.gap, m.facts"
    n = len(TICKET_COLUMNS)
    try:
        rows = conn.execute(
            f"select {cols} from tickets t join {derived.TABLE} f on f.portal = t.portal and f.source = t.source"
            f" and f.source_id = t.source_id join {derived.MONTH_TABLE} m on m.portal = f.portal"
            " and m.source = f.source and m.source_id = f.source_id where t.portal = ? and t.created_at >= ?"
            " and t.created_at < ? and coalesce(t.deleted, 0) = 0 and f.ctx = ? and f.gap is not null"
            " and m.ctx = f.ctx and m.ver = f.ver and m.month_end = ?",
            [portal, start, end, fp, end],
        ).fetchall()
    except sqlite3.OperationalError:  # a store not migrated: no month rows
        return 0
    picked = []  # (ticket, ver, cell, facts as of end)
    for row in rows:
        try:
            mrow = marshal.loads(row[-1])
        except (ValueError, EOFError, TypeError):
            continue  # another Python's marshal: read one by one
        if type(mrow) is not tuple or len(mrow) != len(derived.COLUMNS):
            continue
        t = dict(zip(TICKET_COLUMNS, row[:n]))
        t["gap"] = row[n + 2]
        resolution_at = mrow[_RESOLUTION_AT]
        if resolution_at is not None and resolution_at < start:
            continue  # R would depend on the period's start
        f = derived.read_off(t, mrow, start, end, ctx)
        if f is None or f is derived.REPLAY:
            continue
        picked.append((t, row[n], row[n + 1], f))
    if not other and sum(valid.values()) == len(picked) and all(p[2] in valid for p in picked):
        return 0
    groups: dict = {}
    for t, ver, _cell, f in picked:
        g = groups.get((t["source"], f.resp_end))
        if g is None:
            g = groups[(t["source"], f.resp_end)] = (Tally(ctx), [])
        g[0].add([f])
        g[1].append((t["source"], t["source_id"], ver))
    made = []
    for (source, agent), (tally, members) in groups.items():
        made.append((ASOF, start, end, source, agent, _sorted(tally), members))
    return _write(conn, portal, fp, cfp, [(ASOF, start)], made)


_RESOLUTION_AT = derived.COLUMNS.index("resolution_at")


def _write(conn, portal: str, fp: str, cfp: str, rebuilt: list, made: list) -> int:
    """Replace the cells of the ``rebuilt`` ``(kind, start)`` by ``made`` in one transaction;
    nothing when a member was written since it was read (its ``ver``) or the store is busy (tried
    again later)."""
    kept = 0
    try:
        with derived.brief_wait(conn):  # behind a sync: next time
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    f"delete from {TABLE} where portal = ? and kind = ? and piece = ?",
                    [(portal, kind, piece) for kind, piece in rebuilt],
                )
                for kind, piece, piece_end, source, agent, tally, members in made:
                    cur = conn.execute(
                        f"insert into {TABLE} (portal, fp, layout, kind, piece, piece_end, source, agent, n, tally,"
                        " stale) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                        [portal, cfp, LAYOUT, kind, piece, piece_end, source, agent, len(members),
                         marshal.dumps(tally.state())],
                    )  # fmt: skip
                    cell = cur.lastrowid
                    before = conn.total_changes
                    conn.executemany(
                        f"update {derived.TABLE} set cell = ? where portal = ? and source = ? and source_id = ?"
                        " and ver = ? and ctx = ?",
                        [(cell, portal, s, i, v, fp) for s, i, v in members],
                    )
                    if conn.total_changes - before != len(members):
                        raise _Changed()
                    kept += len(members)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    except _Changed:
        log.debug("settled cells of %s not kept: tickets written while read", portal)
        return 0
    except sqlite3.Error as exc:
        log.debug("settled cells of %s not kept for now (%s)", portal, exc)
        return 0
    return kept


def _sorted(tally: Tally) -> Tally:
    """``tally`` with its value lists sorted in place, as a cell keeps them (a report's sort of
    merged cells finds the runs)."""
    for name in Tally._VALUES:
        getattr(tally, name).sort()
    return tally


class _Changed(Exception):
    """A member's ``ver`` moved between the read and the write."""


def still_valid(conn, ids: list) -> bool:
    """Whether every cell of ``ids`` is still kept and not stale (no member written since)."""
    if not ids:
        return True
    (n,) = conn.execute(
        f"select count(*) from {TABLE} where id in (select value from json_each(?)) and stale = 0",
        [json.dumps(sorted(set(ids)))],
    ).fetchone()
    return n == len(set(ids))
