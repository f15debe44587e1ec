"""Repeat contacts from kept gaps (derived.fill_gaps, store.gaps_triggers): each ticket's gap to its
customer's previous live ticket is forgotten by every write that can change it and nothing else,
filled in again equal to the rule, and a report that reads gaps instead of the customers' history
equals the report replayed from every event, cells included."""

from __future__ import annotations

import random

import pytest
from kpi_support import ts
from test_kpi_cells import build, members
from test_kpi_derived import (  # noqa: F401  (the fixtures)
    CONFIG,
    OCT,
    PORTAL,
    dump,
    generated,
    reference,
    report,
    store,
)

from b24desk.kpi import cells, derived
from b24desk.kpi.report import ReportEnv, ReportPass
from b24desk.store import open_db


def rule(db, portal: str) -> dict:
    """Each live ticket with a customer -> its gap by the definition (kpi.md's repeat contacts):
    to the latest other live ticket of the customer created at or before it, -1 with none."""
    rows = db.execute(
        "select source, source_id, customer, created_at from tickets where portal = ?"
        " and coalesce(deleted, 0) = 0 and customer is not null and created_at is not null",
        [portal],
    ).fetchall()
    by: dict = {}
    for s, i, c, at in rows:
        by.setdefault(c, []).append((at, s, i))
    out = {}
    for lst in by.values():
        for at, s, i in lst:
            prev = [a for a, s2, i2 in lst if a <= at and (s2, i2) != (s, i)]
            out[(s, i)] = at - max(prev) if prev else -1
    return out


def kept(db, portal: str) -> dict:
    return {
        (s, i): g
        for s, i, g in db.execute("select source, source_id, gap from ticket_facts where portal = ?", [portal])
    }


def fill(db, portal: str) -> None:
    while derived.fill_gaps(db, portal, 7):  # small batches: several statements
        pass


@pytest.mark.parametrize("seed", range(3))
def test_every_write_forgets_the_gaps_it_changes_and_the_fill_gives_the_rule(tmp_path, seed):
    """Tickets inserted, deleted, undeleted, moved in time or to another customer (same-second
    tickets frequent, two portals): after each write every gap still kept equals the rule, the
    forgotten ones are of the written ticket's customers only, and filling in gives the rule."""
    db = open_db(tmp_path / "gaps.db")
    rnd = random.Random(seed)
    base = ts("2026-10-05 09:00")
    customers = ["a", "b", "c", None]
    n = 0

    def insert():
        nonlocal n
        n += 1
        db.execute(
            "insert into tickets (portal, source, source_id, customer, created_at, deleted) values (?, ?, ?, ?, ?, ?)",
            [rnd.choice(["p1", "p2"]), rnd.choice(["task", "crm:2"]), str(n), rnd.choice(customers),
             base + rnd.randint(0, 12) * 3600, rnd.choice([None, 0, 0, 0, 1])],
        )  # fmt: skip

    for _ in range(40):
        insert()
    db.conn.commit()
    for portal in ("p1", "p2"):
        fill(db, portal)
        want = rule(db, portal)
        got = kept(db, portal)
        assert want and all(got[k] == v for k, v in want.items())
        assert derived.fill_gaps(db, portal) == 0  # none left to fill
        assert not db.execute(
            "select count(*) from ticket_facts where portal = ? and gap is null", [portal]
        ).fetchone()[0]
    forgotten_sql = (
        "select t.portal, t.source, t.source_id, t.customer from ticket_facts f join tickets t"
        " using (portal, source, source_id) where f.gap is null and coalesce(t.deleted, 0) = 0"
    )
    for step in range(150):
        before = set(db.execute(forgotten_sql).fetchall())
        keys = db.execute("select portal, source, source_id, customer from tickets").fetchall()
        portal, source, sid, cust = rnd.choice(keys)
        op = rnd.choice(["insert", "customer", "created", "deleted", "delete", "title"])
        if op == "insert":
            insert()
            portal, source, sid, new_cust = db.execute(
                "select portal, source, source_id, customer from tickets where source_id = ?", [str(n)]
            ).fetchone()
            cust = None
        else:
            new_cust = rnd.choice(customers) if op == "customer" else cust
            sets = {
                "customer": ("customer = ?", [new_cust]),
                "created": ("created_at = ?", [base + rnd.randint(0, 12) * 3600]),
                "deleted": ("deleted = 1 - coalesce(deleted, 0)", []),
                "title": ("title = ?", [f"t{step}"]),
            }
            if op == "delete":
                db.execute(
                    "delete from tickets where portal = ? and source = ? and source_id = ?", [portal, source, sid]
                )
            else:
                sql, params = sets[op]
                db.execute(
                    f"update tickets set {sql} where portal = ? and source = ? and source_id = ?",
                    params + [portal, source, sid],
                )
        db.conn.commit()
        for p in ("p1", "p2"):
            want, got = rule(db, p), kept(db, p)
            assert all(got[k] is None or got[k] == v for k, v in want.items()), (step, op)
        forgotten = {r for r in db.execute(forgotten_sql).fetchall() if r[:3] not in {b[:3] for b in before}}
        assert {(r[0], r[3]) for r in forgotten} <= {(portal, cust), (portal, new_cust)}, (step, op)
        if op == "title":
            assert not forgotten  # a write that moves no ticket forgets nothing
        if step % 10 == 9:
            for p in ("p1", "p2"):
                fill(db, p)
                want, got = rule(db, p), kept(db, p)
                assert all(got[k] == v for k, v in want.items()), step
    db.conn.close()


def test_a_report_reads_the_gaps_instead_of_the_history_and_equals_the_replay(store):
    """Every ticket's gap filled in: no customers' history is read and every group equals the full
    replay (which reads the history); a ticket of the window without its gap, or a scope narrower
    than the portal's sources, reads the history again, with the same figures."""
    report(store)
    fill(store, PORTAL)
    for group_by in (None, "agent", "department", "priority", "week", "source"):
        rp = ReportPass(store, PORTAL, *OCT, config=CONFIG)
        assert rp.loaded.customer_history is None
        got = rp.report(group_by)
        assert dump(got) == dump(reference(store, OCT, None, group_by))
    assert got["kpis"]["repeat_contact_share"]["value"] > 0  # repeat contacts there to count
    rp = ReportPass(store, PORTAL, *OCT, config=CONFIG, filters={"source": "tasks"})
    assert rp.loaded.customer_history is not None
    assert dump(rp.report("agent")) == dump(reference(store, OCT, {"source": "tasks"}, "agent"))
    (sid,) = store.execute(
        "select source_id from ticket_facts where portal = ? and created_at >= ? and created_at < ? limit 1",
        [PORTAL, ts("2026-10-10 00:00"), ts("2026-10-20 00:00")],
    ).fetchone()
    store.execute("update ticket_facts set gap = null where portal = ? and source_id = ?", [PORTAL, sid])
    store.conn.commit()
    rp = ReportPass(store, PORTAL, *OCT, config=CONFIG)
    assert rp.loaded.customer_history is not None
    assert dump(rp.report(None)) == dump(reference(store, OCT, None, None))


def test_a_ticket_that_makes_a_cell_member_a_repeat_contact_makes_its_cell_stale(store):
    """A new ticket of a member's customer, a day before the member: the member's own row and
    events are untouched, but its gap changes, so its cell goes stale and it leaves it; the
    report (cells read, gaps read) equals the replay, and so it does after the warmer's fill and
    build again."""
    report(store)
    assert build(store) > 0
    cell, sid, cust, created, gap = store.execute(
        "select f.cell, f.source_id, t.customer, t.created_at, f.gap from ticket_facts f join tickets t"
        " using (portal, source, source_id) where f.cell is not null and f.gap > 2 * 86400 and t.customer is not null"
        " and t.created_at >= ? and t.created_at < ? order by t.created_at limit 1",
        [ts("2026-10-05 00:00"), ts("2026-10-25 00:00")],
    ).fetchone()
    before = dump(reference(store, OCT, None, "agent"))
    n = members(store)
    store.execute(
        "insert into tickets (portal, source, source_id, customer, author_id, responsible_id, created_at, closed_at)"
        " values (?, 'task', 'g1', ?, ?, '13', ?, ?)",
        [PORTAL, cust, cust, created - 86400, created - 86400 + 600],
    )
    store.conn.commit()
    assert store.execute("select stale from settled_cells where id = ?", [cell]).fetchone()[0] == 1
    row = store.execute("select cell, gap from ticket_facts where source_id = ?", [sid]).fetchone()
    assert row == (None, None) and members(store) < n
    rp = ReportPass(store, PORTAL, *OCT, config=CONFIG, cells=True)
    assert cell not in {c.id for c in rp.loaded.cells}
    assert rp.loaded.customer_history is not None  # a ticket of the window without its gap
    got = dump(rp.report("agent"))
    assert got == dump(reference(store, OCT, None, "agent")) and got != before
    report(store)
    fill(store, PORTAL)
    assert store.execute("select gap from ticket_facts where source_id = ?", [sid]).fetchone()[0] == 86400
    assert build(store) > 0
    rp = ReportPass(store, PORTAL, *OCT, config=CONFIG, cells=True)
    assert rp.loaded.cells and rp.loaded.customer_history is None
    assert dump(rp.report("agent")) == got


def test_a_ticket_without_its_gap_stays_out_of_the_cells_until_filled(store):
    """Cells are built of tickets whose gap is known (the warmer fills first): one still without
    it is read one by one (the history answers), and the next build takes it in once filled, so
    the report reads gaps again."""
    report(store)
    fill(store, PORTAL)
    store.execute(
        "update ticket_facts set gap = null where portal = ? and created_at >= ? and created_at < ?",
        [PORTAL, ts("2026-10-12 00:00"), ts("2026-10-14 00:00")],
    )
    store.conn.commit()
    ctx = ReportEnv(store, PORTAL, CONFIG).ctx
    assert cells.build(store, PORTAL, ctx, ts("2025-12-01 00:00"), ts("2026-12-01 00:00")) > 0
    out = store.execute(
        "select count(*), count(cell) from ticket_facts where portal = ? and gap is null", [PORTAL]
    ).fetchone()
    assert out[0] > 0 and out[1] == 0
    rp = ReportPass(store, PORTAL, *OCT, config=CONFIG, cells=True)
    assert rp.loaded.cells and rp.loaded.customer_history is not None
    want = dump(reference(store, OCT, None, "agent"))
    assert dump(rp.report("agent")) == want
    n = members(store)
    fill(store, PORTAL)
    assert cells.build(store, PORTAL, ctx, ts("2025-12-01 00:00"), ts("2026-12-01 00:00")) > 0
    assert members(store) > n
    rp = ReportPass(store, PORTAL, *OCT, config=CONFIG, cells=True)
    assert rp.loaded.customer_history is None
    assert dump(rp.report("agent")) == want


@pytest.mark.parametrize("cells_on", [False, True])
def test_a_kept_pass_reading_gaps_recounts_the_written_customers_only(store, cells_on):
    """A kept pass that read gaps, then writes whose customers' repeat contacts change though the
    pass's kept gaps do not say so: a ticket a day before a customer's first October ticket (which
    becomes a repeat contact), another ticket of a customer already counted as repeating, and an
    earlier ticket moved to another customer (the later one no longer repeats it). Each refresh
    reads the history of the written tickets' customers only (before and after), and every figure
    equals the replay."""
    from test_kpi_derived import _kept_pass, _refresh

    from b24desk.kpi.engine import PartialHistory

    report(store)
    fill(store, PORTAL)
    if cells_on:
        assert build(store) > 0
    rp, seq = _kept_pass(store)
    assert rp.loaded.customer_history is None
    for group_by in (None, "agent"):
        rp.report(group_by)  # tallies kept before the writes
    october = [ts("2026-10-05 00:00"), ts("2026-10-25 00:00")]
    joined = "select t.customer, t.created_at, t.source, t.source_id, f.gap from ticket_facts f join tickets t"
    joined += (
        " using (portal, source, source_id) where t.customer is not null and t.created_at >= ? and t.created_at < ?"
    )
    ((x, x_at, *_),) = store.execute(joined + " and f.gap > 40 * 86400 order by t.created_at limit 1", october)
    (z, z_at, *_), = store.execute(joined + " and f.gap between 86400 and 20 * 86400 and t.customer != ?"
                                   " order by t.created_at limit 1", october + [x]).fetchall()  # fmt: skip
    # B repeats A only: A is the customer's one ticket within the window before B
    pairs = store.execute(
        joined + " and f.gap between 86400 and 20 * 86400 and t.customer not in (?, ?) order by t.created_at",
        october + [x, z],
    ).fetchall()
    moved = None
    for cust, b_at, _s, _i, gap in pairs:
        earlier = store.execute(
            "select source, source_id from tickets where portal = ? and customer = ? and created_at >= ?"
            " and created_at < ? and coalesce(deleted, 0) = 0",
            [PORTAL, cust, b_at - 30 * 86400, b_at],
        ).fetchall()
        if len(earlier) == 1 and b_at - gap >= ts("2026-09-01 00:00"):
            moved = (cust, *earlier[0])
            break
    assert moved is not None
    writes = [
        ("insert into tickets (portal, source, source_id, customer, author_id, responsible_id, created_at,"
         " closed_at) values (?, 'task', 'w1', ?, ?, '13', ?, ?)", [PORTAL, x, x, x_at - 86400, x_at - 86000], {x}),
        ("insert into tickets (portal, source, source_id, customer, author_id, responsible_id, created_at,"
         " closed_at) values (?, 'task', 'w2', ?, ?, '13', ?, ?)", [PORTAL, z, z, z_at + 3600, z_at + 4000], {x, z}),
        ("update tickets set customer = 'zz' where portal = ? and source = ? and source_id = ?",
         [PORTAL, moved[1], moved[2]], {x, z, moved[0], "zz"}),
    ]  # fmt: skip
    before = dump(rp.report(None))
    for i, (sql, params, covers) in enumerate(writes):
        store.execute(sql, params)
        store.conn.commit()
        ok, seq, _changed = _refresh(store, rp, seq)
        assert ok or cells_on  # a member's gap forgotten makes its cell stale: a new pass then
        if not ok:
            rp, seq = _kept_pass(store)
            continue
        history = rp.loaded.customer_history
        assert isinstance(history, PartialHistory) and history.covers == covers, i
        for group_by in (None, "agent"):
            assert dump(rp.report(group_by)) == dump(reference(store, OCT, None, group_by)), (i, group_by)
    assert dump(rp.report(None)) != before
    assert dump(rp.report(None)) == dump(reference(store, OCT, None, None))


def test_rows_as_of_the_creation_months_end_stand_in_for_the_replays(store):
    """The tickets whose log goes on past the end of their creation month (and of the period)
    are read off their month rows (derived.month_row) instead of replayed: no events read for
    them, and every group equals the replay; a month row of another ``ver`` (its ticket written
    since) or context is not read, and a write keeps a new one."""
    report(store)
    q3 = ("2026-07-01", "2026-10-01")
    for period in (OCT, q3):
        rp = ReportPass(store, PORTAL, *period, config=CONFIG)
        month = rp.loaded.month
        keys = {k for rows in month.values() for k in rows}
        assert keys and not keys & rp.loaded.with_events
        assert set(month) <= {rp.period.end, rp.prev.end}
        for group_by in (None, "agent", "priority", "week"):
            assert dump(rp.report(group_by)) == dump(reference(store, period, None, group_by)), group_by
    rp = ReportPass(store, PORTAL, *OCT, config=CONFIG)
    end, rows = next(iter(rp.loaded.month.items()))
    (src, sid), (src2, sid2) = list(rows)[:2]
    store.execute("update ticket_facts_month set ver = ver - 1 where source = ? and source_id = ?", [src, sid])
    store.execute("update ticket_facts_month set ctx = 'other' where source = ? and source_id = ?", [src2, sid2])
    store.conn.commit()
    rp = ReportPass(store, PORTAL, *OCT, config=CONFIG)
    for key in ((src, sid), (src2, sid2)):
        assert key not in rp.loaded.month.get(end, {}) and key in rp.loaded.with_events
    assert dump(rp.report("agent")) == dump(reference(store, OCT, None, "agent"))
    # a reply after the month's end: the facts and the month row are kept anew at the next report
    store.execute(
        "insert into events (portal, source, source_id, key, kind, at, actor_id) values (?, ?, ?, 'late', 'reply', ?, '13')",
        [PORTAL, src, sid, end + 3600],
    )
    store.conn.commit()
    want = dump(reference(store, OCT, None, "agent"))
    assert dump(ReportPass(store, PORTAL, *OCT, config=CONFIG).report("agent")) == want
    rp = ReportPass(store, PORTAL, *OCT, config=CONFIG)
    assert (src, sid) in rp.loaded.month[end]
    assert dump(rp.report("agent")) == want
