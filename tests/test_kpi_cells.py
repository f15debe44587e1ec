"""Settled cells (kpi/cells.py): a report that merges the kept tallies of settled tickets instead of
reading those tickets must equal the report that reads every ticket, whatever is written between
(a member written makes its cell stale; nothing stale is ever read), for totals, the groups a cell
can serve, the weekly series and the duration charts."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from kpi_support import ts
from test_kpi_derived import (  # noqa: F401  (the fixtures)
    CONFIG,
    OCT,
    PORTAL,
    Q3,
    WRITES,
    _kept_pass,
    _new_ticket,
    _oct_task,
    _refresh,
    _save,
    dump,
    generated,
    reference,
    report,
    store,
)

from b24desk.kpi import cells, derived
from b24desk.kpi.cells import _midnight
from b24desk.kpi.drilldown import Replay
from b24desk.kpi.engine import frt_missed
from b24desk.kpi.report import ReportEnv, ReportPass
from b24desk.store import get_ticket
from reports.query import weeks

YEAR = (ts("2025-11-01 00:00"), ts("2026-12-01 00:00"))


def build(db, config=CONFIG) -> int:
    """Every ticket's facts kept (the warmer's backfill) and its gap filled in, then the cells of
    the year made."""
    from b24desk.kpi.load import backfill

    ctx = ReportEnv(db, PORTAL, config).ctx
    after = ("", "")
    while after is not None:
        _n, after = backfill(db, PORTAL, ctx, after)
    while derived.fill_gaps(db, PORTAL):
        pass
    return cells.build(db, PORTAL, ctx, *YEAR)


def members(db) -> int:
    return db.execute("select count(*) from ticket_facts where cell is not null").fetchone()[0]


def both(db, period, filters=None, compare=None, months=False):
    """The pass that reads cells (with ``months`` the whole months' too) and the one that reads
    every ticket, of one query."""
    with_cells = ReportPass(
        db, PORTAL, *period, filters=filters, config=CONFIG, compare=compare, cells=True, month_cells=months
    )
    without = ReportPass(db, PORTAL, *period, filters=filters, config=CONFIG, compare=compare)
    assert not without.loaded.cells
    return with_cells, without


def charts(rp) -> str:
    replay = Replay.of_pass(rp)
    bounds = weeks(rp.period.start, rp.period.end, "Europe/Moscow")
    return dump(
        {
            "series": replay.series(bounds),
            "frt": sorted(replay.durations("first_response_time")),
            "resolution": sorted(replay.durations("resolution_time")),
        }
    )


def same(db, period, filters=None, compare=None, months=False) -> ReportPass:
    rp, ref = both(db, period, filters, compare, months)
    for group_by in (None, "agent", "department"):
        assert dump(rp.report(group_by)) == dump(ref.report(group_by)), (period, filters, group_by)
    if any(c.kind != cells.PIECE for c in rp.cells_c):  # a month's cell or rollup: no weekly series
        with pytest.raises(ValueError):
            charts(rp)
    else:
        assert charts(rp) == charts(ref), (period, filters)
    return rp


@pytest.mark.parametrize(
    "period, compare",
    [
        (OCT, None),
        (Q3, None),
        (OCT, "last_year"),
        (("2026-10-05", "2026-10-19"), None),
        (("2026-10-07", "2026-10-30"), None),
        (("2026-10-06", "2026-10-12"), None),
    ],
)
@pytest.mark.parametrize("filters", [None, {"agent": "13"}, {"department": "2"}, {"source": "tasks"}])
@pytest.mark.parametrize("months", [False, True])
def test_a_report_from_cells_equals_the_report_of_every_ticket(store, period, compare, filters, months):
    """Totals (with the previous period), per agent, per department, the weekly series and the
    FRT / resolution durations: the same from cells as from every ticket, for whole months, a
    quarter, last year's comparison, two whole weeks, whole weeks between parts of weeks, and a
    period of no whole piece; with the whole months' cells too (reports with no weekly series)."""
    assert build(store) > 0
    rp = same(store, period, filters, compare, months)
    if period in (OCT, Q3) and filters is None and compare is None:
        # no weekly series (the previous period's, or asked): whole months' rollups of every cell,
        # and the last month's as-of cells (the previous period's members live on into this one)
        assert {c.kind for c in rp.cells_c} == ({cells.ROLLUP, cells.ASOF} if months else {cells.PIECE})
        assert {c.kind for c in rp.cells_p} == {cells.ROLLUP}
        asof = [c for c in rp.cells_c if c.kind == cells.ASOF]
        assert all(c.end == rp.period.end and c.piece >= rp.period.start for c in asof)
        if months:  # their members are not read: their month rows' tallies stand for them
            ids = {c.id for c in asof}
            read = {(t["source"], t["source_id"]) for t in rp.loaded.tickets}
            kept = store.execute(
                f"select source, source_id from ticket_facts where cell in ({', '.join('?' * len(ids))})", sorted(ids)
            ).fetchall()
            assert kept and read.isdisjoint(map(tuple, kept))
    if period in (OCT, Q3) and filters is None and compare is None:  # most of the period's tickets came from cells
        in_cells = sum(c.tally.nC for c in rp.cells_c)
        assert in_cells > rp.report(None)["kpis"]["tickets_total"]["value"] / 2
        assert len(rp.loaded.tickets) < len(ReportPass(store, PORTAL, *period, config=CONFIG).loaded.tickets) / 2
    if period == ("2026-10-07", "2026-10-30"):  # the two whole weeks inside it
        read = {(c.piece, c.end) for c in rp.cells_c}
        weeks_inside = {(ts(f"2026-10-{d} 00:00"), ts(f"2026-10-{d + 7} 00:00")) for d in (12, 19)}
        assert read == weeks_inside if filters is None else read <= weeks_inside
    if period == ("2026-10-06", "2026-10-12"):
        assert not rp.cells_c  # no piece lies wholly inside it


def test_cells_hold_only_settled_tickets_and_each_ticket_once(store):
    """A member is closed, created in its cell's piece with its last event before the piece's end,
    unanswered only with its first-response target passed inside the piece; or, in an as-of cell,
    created in its whole month with its log going on past the month's end and its row as of that
    end kept under its facts' ``ver``; the cells' counts are their members; a second build finds
    nothing to do."""
    import marshal

    report(store)
    assert build(store) == members(store) > 0
    assert build(store) == 0
    env = ReportEnv(store, PORTAL, CONFIG)
    tz = cells.zone_of(env.ctx)
    rows = store.execute(
        "select c.kind, t.created_at, f.state, f.last_at, f.first_reply, f.priority, c.piece, c.piece_end, c.source,"
        " c.agent, f.resp_end, t.source, f.resolution_at, m.month_end, m.ver = f.ver, m.facts"
        " from ticket_facts f join tickets t using (portal, source, source_id)"
        " join settled_cells c on c.id = f.cell left join ticket_facts_month m using (portal, source, source_id)"
    ).fetchall()
    assert len(rows) == members(store)
    assert {r[0] for r in rows} == {cells.PIECE, cells.MONTH, cells.ASOF}
    at = {c: derived.COLUMNS.index(c) for c in ("last_at", "resolution_at", "resp_end")}
    for kind, created, state, last_at, first_reply, priority, piece, end, *rest in rows:
        source, agent, resp, t_source, res, month_end, same_ver, month = rest
        own = cells.piece_of(created, tz)
        first = datetime.fromtimestamp(created, tz).date().replace(day=1)
        whole = (_midnight(first, tz), _midnight((first + timedelta(days=32)).replace(day=1), tz))
        if kind == cells.ASOF:  # its month's, as of its end: its log goes on past it
            assert (piece, end) == whole and month_end == end and same_ver and last_at >= end
            mrow = marshal.loads(month)
            assert (mrow[at["last_at"]] or piece) < end and (mrow[at["resolution_at"]] or piece) >= piece
            assert (source, agent) == (t_source, mrow[at["resp_end"]])
            continue
        assert month is None  # a settled ticket's log ends inside its month: no month row
        if kind == cells.MONTH:  # settled in its month, not in its piece (its log goes on past it...)
            assert (piece, end) == whole
            assert not cells.settles(created, state, last_at, res, first_reply, priority, own, env.ctx)
        else:
            assert (piece, end) == own
        assert state != "open" and last_at < end
        target = env.ctx.sla_first_response.get(priority)
        assert first_reply is not None or target is None or frt_missed(created, end, target, env.ctx)
        assert (source, agent) == (t_source, resp)
    n = dict(store.execute("select id, n from settled_cells where kind != 'rollup'").fetchall())
    held = dict(
        store.execute("select cell, count(*) from ticket_facts where cell is not null group by cell").fetchall()
    )
    assert n == held
    # a whole month's rollups: its cells, each in the rollup of its source and responsible
    rollups = store.execute("select piece, piece_end, source, agent, n, parts from settled_cells where kind = 'rollup'")
    seen = []
    for piece, end, source, agent, total, parts in rollups.fetchall():
        parts = json.loads(parts)
        seen += parts
        got = store.execute(
            f"select count(*), sum(n) from settled_cells where id in ({', '.join('?' * len(parts))}) and piece >= ?"
            " and piece_end <= ? and source is ? and agent is ? and kind != 'rollup'",
            [*parts, piece, end, source, agent],
        ).fetchone()
        assert got == (len(parts), total)
    assert seen and len(seen) == len(set(seen))
    # unanswered and closed: in a cell once its first-response target passed inside the piece
    # (breached whatever the period), out of it while the target may still be met at a period's end
    assert store.execute("select count(*) from ticket_facts where cell is not null and first_reply is null").fetchone()[
        0
    ]


def test_an_unanswered_ticket_joins_a_cell_only_once_its_target_passed_inside_the_piece(store):
    """Closed without a reply: created on a Tuesday morning its 15-minute target (critical) passed
    that morning, so it is settled (breached in every period); created on a Sunday night its target
    runs from Monday's working hours, after the piece's end: it is read one by one by a pass with a
    weekly series (its month's cell holds it for the others), and the periods around it equal the
    replay."""
    from b24desk.model import Bundle, Event, Ticket
    from b24desk.store import save_bundles

    bundles = []
    for sid, created in (("tue", "2026-10-13 10:00"), ("sun", "2026-10-18 23:00")):
        t = Ticket(PORTAL, "task", sid, type="bug", author_id="c778", customer="c778", responsible_id="13")
        t.created_at, t.priority = ts(created), "critical"
        done = t.created_at + 1800
        t.state, t.resolved_at, t.closed_at = "resolved", done, done
        evs = [
            Event(PORTAL, "task", sid, "e0", "created", t.created_at, "c778"),
            Event(PORTAL, "task", sid, "e1", "resolved", done, "13"),
        ]
        bundles.append(Bundle(t, evs))
    with store.atomic():
        save_bundles(store, bundles)
    build(store)
    kind = dict(
        store.execute(
            "select f.source_id, c.kind from ticket_facts f left join settled_cells c on c.id = f.cell"
            " where f.source_id in ('tue', 'sun')"
        ).fetchall()
    )
    # Sunday's: settled in its month (the target passed on Monday), which only reports without a
    # weekly series read
    assert kind == {"tue": cells.PIECE, "sun": cells.MONTH}
    for months in (False, True):
        same(store, OCT, months=months)
        same(store, ("2026-10-12", "2026-10-19"), months=months)
        same(store, ("2026-10-12", "2026-10-26"), months=months)


def _member(db) -> dict:
    """An October task in a cell (created, answered and resolved there)."""
    sid = db.execute(
        "select f.source_id from ticket_facts f join settled_cells c on c.id = f.cell where f.source = 'task'"
        " and f.created_at >= ? and f.created_at < ? and f.first_reply is not null and f.state = 'resolved'"
        " order by f.created_at limit 1",
        [ts("2026-10-01 00:00"), ts("2026-11-01 00:00")],
    ).fetchone()[0]
    return get_ticket(db, PORTAL, "task", sid)


CELL_WRITES = dict(
    WRITES,
    rating=lambda db, r: _save(db, r, rating=1 if r["rating"] != 1 else 5),
    customer=lambda db, r: _save(db, r, customer="c777"),
)
del CELL_WRITES["dormant resolved"]


@pytest.mark.parametrize("write", sorted(CELL_WRITES))
def test_a_written_member_makes_its_cell_stale_and_reports_stay_exact(store, write):
    """Whatever is written of a member (a field, an event, its score, its customer, its deletion),
    its cell is stale at once and it leaves it; reports read the piece's tickets one by one, equal
    the full replay, and the next build makes the piece's cells anew."""
    report(store)
    build(store)
    r = _member(store)
    key = "portal = ? and source = ? and source_id = ?"
    (cell,) = store.execute(f"select cell from ticket_facts where {key}", [PORTAL, "task", r["source_id"]]).fetchone()
    before = dump(report(store))
    CELL_WRITES[write](store, r)
    store.conn.commit()
    assert store.execute("select stale from settled_cells where id = ?", [cell]).fetchone()[0] == 1
    row = store.execute(f"select cell from ticket_facts where {key}", [PORTAL, "task", r["source_id"]]).fetchone()
    assert row is None or row[0] is None
    rp = same(store, OCT)
    assert cell not in {c.id for c in rp.loaded.cells}
    if write != "customer":  # a new customer with one ticket changes no figure here
        assert dump(report(store)) != before
    assert dump(report(store)) == dump(reference(store))
    report(store)  # the written ticket's facts kept again
    assert build(store) > 0
    assert store.execute("select count(*) from settled_cells where id = ?", [cell]).fetchone()[0] == 0
    same(store, OCT)


def test_a_kept_pass_that_read_cells_refreshes_or_makes_way(store):
    """A kept pass with cells is brought up to date after a write to a ticket it read (the new one);
    after a write to a member of a cell it read, it declines (the caller makes a new pass)."""
    report(store)
    build(store)
    from b24desk.store import journal_state

    seq = journal_state(store.conn)[0]
    rp = ReportPass(store, PORTAL, *OCT, config=CONFIG, keep_keys=True, cells=True)
    rp.slim()
    assert rp.cells_c
    r = _oct_task(store)
    _new_ticket(store, r)
    store.conn.commit()
    ok, seq, _changed = _refresh(store, rp, seq)
    assert ok
    for group_by in (None, "agent", "department"):
        assert dump(rp.report(group_by)) == dump(reference(store, OCT, None, group_by)), group_by
    WRITES["priority"](store, _member(store))
    store.conn.commit()
    ok, seq, _changed = _refresh(store, rp, seq)
    assert not ok


def test_a_pass_with_cells_narrows_to_an_agent_or_a_department_only(store):
    """Narrowed to an agent or a department (what a cell is keyed by), a pass with cells equals a
    pass made with those filters; other filters, other groups and ticket lists are refused, never
    answered from part of the tickets."""
    report(store)
    build(store)
    base = ReportPass(store, PORTAL, *OCT, config=CONFIG, cells=True)
    for filters in ({"agent": "13"}, {"department": "2"}, {"agent": ["13", "14"]}):
        narrowed = base.narrow(filters)
        made = ReportPass(store, PORTAL, *OCT, filters=filters, config=CONFIG)
        for group_by in (None, "agent", "department"):
            assert dump(narrowed.report(group_by)) == dump(made.report(group_by)), (filters, group_by)
        assert charts(narrowed) == charts(made)
    with pytest.raises(ValueError):
        base.narrow({"priority": "high"})
    for group_by in ("priority", "week", "type"):
        with pytest.raises(ValueError):
            base.report(group_by)
    with pytest.raises(ValueError):
        Replay.of_pass(base).members("tickets_total")
    with pytest.raises(ValueError):
        Replay.of_pass(base).durations("handle_time")
    # a pass asked for cells with filters a cell cannot tell reads every ticket
    assert not ReportPass(store, PORTAL, *OCT, filters={"priority": "high"}, config=CONFIG, cells=True).loaded.cells


def test_cells_of_another_context_are_never_read(store):
    """Cells belong to the maths context they were made under: another config reads none of them
    (and equals the replay); building under it replaces the piece's cells."""
    report(store)
    build(store)
    other = {**CONFIG, "sla": {**CONFIG["sla"], "first_response_business_seconds": {"critical": 600}}}
    rp = ReportPass(store, PORTAL, *OCT, config=other, cells=True)
    assert not rp.loaded.cells
    assert dump(rp.report(None)) == dump(reference(store, OCT, None, None, config=other))
    report(store, config=other)
    assert build(store, other) > 0
    fp = cells.cell_fp(ReportEnv(store, PORTAL, other).ctx)
    assert {r[0] for r in store.execute("select distinct fp from settled_cells")} == {fp}
    rp = ReportPass(store, PORTAL, *OCT, config=other, cells=True)
    assert rp.loaded.cells
    assert dump(rp.report("agent")) == dump(reference(store, OCT, None, "agent", config=other))
    # the same maths with another repeat window: the cells counted their repeat contacts with 30
    # days, so none is read (the facts rows serve: they do not depend on the window)
    shorter = {**other, "repeat_window_days": 3}
    rp = ReportPass(store, PORTAL, *OCT, config=shorter, cells=True)
    assert not rp.loaded.cells and rp.loaded.customer_history is None
    got = dump(rp.report(None))
    assert got == dump(reference(store, OCT, None, None, config=shorter))
    assert got != dump(reference(store, OCT, None, None, config=other))  # the window tells
    assert build(store, shorter) > 0
    rp = ReportPass(store, PORTAL, *OCT, config=shorter, cells=True)
    assert rp.loaded.cells and rp.loaded.customer_history is None
    assert dump(rp.report(None)) == got


@pytest.mark.parametrize("kind", ["settled", "asof"])
def test_a_build_that_meets_a_write_keeps_nothing_of_that_month(store, monkeypatch, kind):
    """A member written between the build's read and its write (its ``ver`` moved): the month's
    cells of its kind are not kept (tried again by the next build), and reports stay exact."""
    report(store)
    october = [ts("2026-10-01 00:00"), ts("2026-11-01 00:00")]
    if kind == "settled":
        sid, kinds = _oct_task(store)["source_id"], (cells.PIECE, cells.MONTH, cells.ROLLUP)
    else:  # a member of October's as-of cells, found by a first build; then no cell is kept
        build(store)
        (sid,) = store.execute(
            "select f.source_id from ticket_facts f join settled_cells c on c.id = f.cell where c.kind = ?"
            " and f.source = 'task' and c.piece >= ? and c.piece < ? limit 1",
            [cells.ASOF, *october],
        ).fetchone()
        store.execute("delete from settled_cells")
        store.execute("update ticket_facts set cell = null")
        store.conn.commit()
        kinds = (cells.ASOF,)
    real = cells._write

    def racing(conn, portal, fp, cfp, rebuilt, made):
        if any(sid in {m[1] for m in g[-1]} for g in made):
            conn.execute(
                "update ticket_facts set ver = ver + 1, ctx = null where portal = ? and source = 'task' and source_id = ?",
                [PORTAL, sid],
            )
            conn.commit()
        return real(conn, portal, fp, cfp, rebuilt, made)

    monkeypatch.setattr(cells, "_write", racing)
    build(store)
    got = store.execute(
        f"select count(*) from settled_cells where piece >= ? and piece < ? and kind in ({', '.join('?' * len(kinds))})",
        [*october, *kinds],
    ).fetchone()[0]
    assert got == 0 and store.execute("select count(*) from settled_cells").fetchone()[0] > 0
    monkeypatch.setattr(cells, "_write", real)
    same(store, OCT)
    same(store, OCT, months=True)


def test_pieces_are_weeks_cut_at_month_starts():
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Europe/Moscow")
    # Thursday 2026-10-01 .. Monday 2026-10-05 .. 2026-11-01 (a Sunday) .. Monday 2026-11-02
    got = cells.pieces(ts("2026-10-01 00:00"), ts("2026-11-03 00:00"), tz)
    days = [
        ("2026-10-01", "2026-10-05"),
        ("2026-10-05", "2026-10-12"),
        ("2026-10-12", "2026-10-19"),
        ("2026-10-19", "2026-10-26"),
        ("2026-10-26", "2026-11-01"),
        ("2026-11-01", "2026-11-02"),
    ]
    assert got == [(ts(a + " 00:00"), ts(b + " 00:00")) for a, b in days]
    assert cells.piece_of(ts("2026-10-31 23:59"), tz) == (ts("2026-10-26 00:00"), ts("2026-11-01 00:00"))
    assert cells.pieces(ts("2026-10-02 00:00"), ts("2026-10-11 00:00"), tz) == []  # none wholly inside
    from b24desk.kpi.load import source_values

    assert source_values(None) is None and source_values(["tasks", "crm:2"]) == ["crm:2", "task"]
    assert source_values(["tasks:group=7"]) is False
    assert json.loads(json.dumps(cells.LAYOUT)) == 3  # 3: repeat contacts counted from the gaps


def test_a_ticket_resolved_before_its_creation_is_read_one_by_one(store):
    """Clock skew: a ticket created on Tuesday and resolved (by its log) on the Sunday before is in
    R of its month, not of its week: it stays out of its week's cell (in its month's), and the
    month and the week equal the replay."""
    from b24desk.model import Bundle, Event, Ticket
    from b24desk.store import save_bundles

    t = Ticket(PORTAL, "task", "skew", type="bug", author_id="c778", customer="c778", responsible_id="13")
    t.created_at = ts("2026-10-13 10:00")
    done = ts("2026-10-11 10:00")
    evs = [
        Event(PORTAL, "task", "skew", "e0", "created", t.created_at, "c778"),
        Event(PORTAL, "task", "skew", "e1", "reply", t.created_at + 600, "13"),
        Event(PORTAL, "task", "skew", "e2", "resolved", done, "13"),
    ]
    t.state, t.resolved_at, t.closed_at = "resolved", done, done
    with store.atomic():
        save_bundles(store, [Bundle(t, evs)])
    build(store)
    row = store.execute(
        "select f.ctx, c.kind from ticket_facts f left join settled_cells c on c.id = f.cell where f.source_id = 'skew'"
    ).fetchone()
    assert row[0] is not None and row[1] == cells.MONTH  # not in its week's cell: its month's
    assert same(store, OCT).cells_c
    assert same(store, OCT, months=True).cells_c
    assert same(store, ("2026-10-12", "2026-10-19"), months=True).cells_c  # its week: read one by one


def test_a_build_behind_a_writer_keeps_nothing_and_tries_again_later(store, tmp_path):
    """The store is locked by a sync, then full (it may not grow by a page): the build gives up
    without raising (after its short wait for the lock), keeps no cell, and the next one keeps
    them; reports are exact either way."""
    import sqlite3

    from b24desk.kpi.load import backfill

    ctx = ReportEnv(store, PORTAL, CONFIG).ctx
    after = ("", "")
    while after is not None:
        _n, after = backfill(store, PORTAL, ctx, after)
    while derived.fill_gaps(store, PORTAL):
        pass
    path = store.execute("pragma database_list").fetchone()[2]
    sync = sqlite3.connect(path, isolation_level=None)
    sync.execute("BEGIN IMMEDIATE")
    try:
        assert cells.build(store, PORTAL, ctx, *YEAR) == 0
    finally:
        sync.execute("ROLLBACK")
        sync.close()
    assert store.execute("select count(*) from settled_cells").fetchone()[0] == 0 and members(store) == 0
    same(store, OCT)
    # a full disk: the store may not grow by a page
    (pages,) = store.execute("pragma page_count").fetchone()
    store.execute(f"pragma max_page_count = {pages}")
    try:
        kept = cells.build(store, PORTAL, ctx, *YEAR)
    finally:
        store.execute("pragma max_page_count = 1073741823")
    # the piece and month cells need new pages: none kept; a month's few as-of cells may fit in
    # the pages' free space (kept whole and exact, or not at all)
    assert store.execute("select count(*) from settled_cells where kind != ?", [cells.ASOF]).fetchone()[0] == 0
    assert members(store) == kept
    same(store, OCT)
    same(store, OCT, months=True)
    assert cells.build(store, PORTAL, ctx, *YEAR) > 0
    same(store, OCT)


def test_the_window_is_walked_in_the_facts_index_and_members_cost_no_row(store):
    """With cells the loader takes the window's tickets from ticket_facts_created's entries alone
    (a member is one index step: no facts or ticket row read), then reads the others' rows; the
    open tickets' branch keeps off that index. Under a big one-portal store's statistics, where
    every index on ``(portal, ...)`` looks alike (the open branch once walked every facts row)."""
    from kpi_support import one_portal_statistics

    from b24desk.kpi.load import candidate_query

    report(store)
    build(store)
    # as on the bench's 1M stores: the table and the dormant index analyzed, the newer indexes not
    one_portal_statistics(
        store,
        {
            "ticket_facts": {
                "ticket_facts": "1000000 1000000 1000000 1",
                "ticket_facts_dormant": "21417 21417 21417 21417 21417 21417 21417 1 1 1 1",
            }
        },
    )
    ids = [r[0] for r in store.execute("select id from settled_cells where stale = 0")]
    sql, params = candidate_query(PORTAL, ts("2026-09-01 00:00"), ts("2026-11-01 00:00"), facts=True,
                                  dormant_ctx="x", exclude_cells=ids)  # fmt: skip
    plan = [r[3] for r in store.execute("explain query plan " + sql, params).fetchall()]
    created = [p for p in plan if "ticket_facts_created" in p]
    assert created == [
        "SEARCH ticket_facts USING COVERING INDEX ticket_facts_created (portal=? AND created_at>? AND created_at<?)"
    ], plan
    assert not [p for p in plan if p.startswith("SCAN") and "json_each" not in p and p != "SCAN k"], plan


def test_a_window_with_a_ticket_without_facts_row_reads_no_cells(store, caplog):
    """The facts index stands for the window's tickets only when each has its facts row (the
    triggers keep one); a row missing (a store written with the triggers off): no cells are read,
    every ticket is, and the report equals the replay."""
    report(store)
    build(store)
    assert ReportPass(store, PORTAL, *OCT, config=CONFIG, cells=True).loaded.cells
    with store.atomic():
        store.execute(
            "delete from ticket_facts where (portal, source, source_id) in (select portal, source, source_id"
            # one outside the cells if there is one (the as-of cells may hold every other ticket)
            " from ticket_facts where created_at >= ? and created_at < ? order by cell is not null limit 1)",
            [ts("2026-10-01 00:00"), ts("2026-11-01 00:00")],
        )
    rp = ReportPass(store, PORTAL, *OCT, config=CONFIG, cells=True)
    assert not rp.loaded.cells and "ticket_facts incomplete" in caplog.text
    assert dump(rp.report("agent")) == dump(reference(store, OCT, None, "agent"))


def test_an_asof_cell_tells_the_last_period_ending_at_its_months_end_only(store):
    """A month's as-of cells (its tickets whose log goes on past its end, as of that end) are read
    for a period ending there, a month or longer, never for a previous period (their members live
    on into the next) nor a period ending elsewhere; a member written makes its cell stale (not
    the month's rollups, which hold none), the reports stay equal to the replay, and the next
    build makes it anew."""
    report(store)
    assert build(store) > 0
    nov = ("2026-11-01", "2026-12-01")
    for period in (OCT, ("2026-09-01", "2026-11-01"), nov, ("2026-10-01", "2026-10-20")):
        rp = same(store, period, months=True)
        asof = [c for c in rp.cells_c if c.kind == cells.ASOF]
        assert not any(c.kind == cells.ASOF for c in rp.cells_p)
        if period[1] == "2026-11-01":
            assert asof and {(c.piece, c.end) for c in asof} == {(ts("2026-10-01 00:00"), ts("2026-11-01 00:00"))}
        else:
            assert not asof
    rp = same(store, OCT, months=True)
    (cell, sid) = store.execute(
        "select f.cell, f.source_id from ticket_facts f join settled_cells c on c.id = f.cell where c.kind = ?"
        " and c.piece = ? limit 1",
        [cells.ASOF, ts("2026-10-01 00:00")],
    ).fetchone()
    store.execute(
        "update tickets set rating = coalesce(rating, 0) % 5 + 1 where portal = ? and source_id = ?", [PORTAL, sid]
    )
    store.conn.commit()
    assert store.execute("select stale from settled_cells where id = ?", [cell]).fetchone()[0] == 1
    assert not store.execute(
        "select count(*) from settled_cells where stale = 1 and kind != ?", [cells.ASOF]
    ).fetchone()[0]
    rp = same(store, OCT, months=True)
    assert cell not in {c.id for c in rp.cells_c} and cells.ROLLUP in {c.kind for c in rp.cells_c}
    assert build(store) > 0
    assert not store.execute("select count(*) from settled_cells where stale = 0 and id = ?", [cell]).fetchone()[0]
    rp = same(store, OCT, months=True)
    assert cells.ASOF in {c.kind for c in rp.cells_c}


def test_a_cells_value_lists_are_kept_sorted(store):
    """A report sorts the merged cells' duration lists: each cell's kept sorted, the sort finds
    runs (the values are the same multiset, so no figure depends on it)."""
    import marshal

    from b24desk.kpi.engine import Tally

    report(store)
    assert build(store) > 0
    seen = 0
    for (blob,) in store.execute("select tally from settled_cells where stale = 0"):
        state = marshal.loads(blob)
        for name in Tally._VALUES:
            assert state[name] == sorted(state[name]), name
            seen += len(state[name]) > 1
    assert seen > 0


def test_a_months_rollup_stands_for_its_cells_until_one_of_them_changes(store):
    """Whole months read their rollups (no weekly series); a member written makes its cell stale
    and so its month's rollup: that month is read from its other valid cells and its tickets, the
    other months still from their rollups, every report equal to the replay; the next build
    makes the cell and the rollup anew. A rollup is never made from cells that changed since
    they were read."""
    report(store)
    assert build(store) > 0
    rp = same(store, Q3, months=True)
    rolled = {c.piece for c in rp.cells_c if c.kind == cells.ROLLUP}
    assert {c.kind for c in rp.cells_c} == {cells.ROLLUP, cells.ASOF} and len(rolled) == 3
    aug = (ts("2026-08-01 00:00"), ts("2026-09-01 00:00"))
    (cell, sid) = store.execute(
        "select f.cell, f.source_id from ticket_facts f join settled_cells c on c.id = f.cell"
        " where c.piece >= ? and c.piece < ? and c.kind = 'piece' limit 1",
        list(aug),
    ).fetchone()
    store.execute(
        "update tickets set rating = coalesce(rating, 0) % 5 + 1 where portal = ? and source_id = ?", [PORTAL, sid]
    )
    store.conn.commit()
    stale = store.execute(
        "select count(*) from settled_cells where kind = 'rollup' and stale = 1 and piece = ?", [aug[0]]
    ).fetchone()[0]
    assert stale > 0
    rp = same(store, Q3, months=True)
    kinds = {(c.kind, c.piece >= aug[0] and c.piece < aug[1]) for c in rp.cells_c}
    assert (cells.ROLLUP, True) not in kinds and (cells.ROLLUP, False) in kinds and (cells.PIECE, True) in kinds
    assert cell not in cells.member_cells(rp.cells_c)
    assert build(store) > 0
    rp = same(store, Q3, months=True)
    assert {c.kind for c in rp.cells_c} == {cells.ROLLUP, cells.ASOF}
    # a cell of the month made stale while its rollup is being made: nothing kept, next time
    ctx = ReportEnv(store, PORTAL, CONFIG).ctx
    store.execute("update settled_cells set stale = 1 where kind = 'rollup' and piece = ?", [aug[0]])
    store.conn.commit()
    real = store.conn

    class Racing:
        def __init__(self, conn):
            self.conn, self.raced = conn, False

        def execute(self, sql, params=()):
            if sql.startswith("BEGIN IMMEDIATE") and not self.raced:
                self.raced = True
                real.execute("update settled_cells set stale = 1 where id = ?", [cell_of_aug])
                real.commit()
            return self.conn.execute(sql, params)

    (cell_of_aug,) = store.execute(
        "select id from settled_cells where kind = 'piece' and piece >= ? and piece < ? and stale = 0 limit 1",
        list(aug),
    ).fetchone()
    assert cells.build_rollups(Racing(real), PORTAL, ctx, *aug) == 0
    assert not store.execute(
        "select count(*) from settled_cells where kind = 'rollup' and piece = ? and stale = 0", [aug[0]]
    ).fetchone()[0]
    same(store, Q3, months=True)
