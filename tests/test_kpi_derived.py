"""Stored per-ticket facts (kpi/derived.py): reading a period off a ticket's whole-log row must give
exactly what replaying its log gives, and a report built from stored rows (cold, warm, dormant
counts, after writes, under another context, when the store cannot be written) must equal the
report replayed from every event."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kpi_support import ts

from b24desk.kpi import build_report, derived
from b24desk.kpi.calendar import WorkCalendar
from b24desk.kpi.engine import Context, Facts, PartialHistory, ticket_facts
from b24desk.kpi.load import TICKET_COLUMNS, _history, _needs_events, load
from b24desk.kpi.report import ReportEnv, ReportPass, _facts
from b24desk.kpi.stats import summary
from b24desk.model import PRIORITIES, Bundle, Event, Ticket
from b24desk.store import Store, get_ticket, mark_deleted, open_db, save_bundles, ticket_from_row

# --- 1. read_off equals the replay, slot by slot -----------------------------------------------

BASE = ts("2026-10-05 09:00")  # a Monday
STEP = 3 * 3600  # a coarse grid of times: equal times (events, closes, deadlines) are frequent
CAL = WorkCalendar("Europe/Moscow")
CLOCK = WorkCalendar("Europe/Moscow", work_days=range(1, 8), work_start="00:00", work_end="24:00")
BUCKETS = {"task": {"2": "work", "3": "work", "4": "done", "5": "done", "6": "wait_customer"}}
BASICS = {"calendar": CAL, "status_buckets": BUCKETS, "bots": frozenset({"99"})}
CTXS = [
    Context(
        sla_resolution={"normal": 8 * 3600, "high": 4 * 3600, "critical": 3600},
        sla_first_response={"low": 7200, "normal": 3600, "high": 1800, "critical": 900},
        **BASICS,
    ),
    Context(  # SLAs round the clock, and only "10" and "11" are agents
        sla_resolution={"low": 86400, "normal": 3 * 3600},
        sla_first_response={"normal": 5400, "critical": 600},
        sla_calendar=CLOCK,
        support_members=frozenset({"10", "11"}),
        **BASICS,
    ),
]
USERS = ("10", "11", "12", "c1", "99", None, "", "0")
SIMPLE = ("reply", "customer_message", "comment", "escalated", "resolved", "rejected", "reopened", "call_out")
FIELD_VALUES = {
    "type": (None, "", "bug", "question"),
    "priority": (None, "", "low", "high", "critical", "bogus"),
    "deadline": (None, "", str(BASE + 86400), "2026-10-06T12:00:00+03:00", "garbage"),
}


@st.composite
def ticket_logs(draw):
    """A ticket row and a time-sorted log of every kind the engine reads, odd values included."""
    created = BASE + draw(st.integers(-4, 30)) * STEP
    t = dict.fromkeys(TICKET_COLUMNS)
    t.update(
        source=draw(st.sampled_from(["task", "crm:2"])),
        source_id="1",
        type=draw(st.sampled_from([None, "bug", "question"])),
        priority=draw(st.sampled_from([*PRIORITIES, None])),
        author_id="c1",
        customer="c1",
        responsible_id=draw(st.sampled_from(["10", "11", None])),
        created_at=created,
        deadline=draw(st.one_of(st.none(), st.integers(-2, 40).map(lambda k: created + k * STEP))),
        handle_time=draw(st.sampled_from([None, 600])),
    )
    events = []
    for _ in range(draw(st.integers(0, 10))):
        at = created + draw(st.integers(-2, 40)) * STEP
        kind = draw(st.sampled_from((*SIMPLE, "assigned", "field_changed", "status", "status", "worked")))
        actor, fld, fv, tv = draw(st.sampled_from(USERS)), None, None, None
        if kind == "assigned":
            fld, fv, tv = (
                "RESPONSIBLE_ID",
                draw(st.sampled_from([None, "", "0", "10", "11"])),
                draw(st.sampled_from(["", "0", "10", "11", "12"])),
            )
        elif kind == "field_changed":
            fld = draw(st.sampled_from(sorted(FIELD_VALUES)))
            fv, tv = draw(st.sampled_from(FIELD_VALUES[fld])), draw(st.sampled_from(FIELD_VALUES[fld]))
        elif kind == "status":
            fld, fv, tv = "STATUS", str(draw(st.integers(1, 7))), str(draw(st.integers(1, 7)))
        elif kind == "worked":
            tv = draw(st.sampled_from(["600", "60", "abc", None]))
        events.append((at, kind, actor, fld, fv, tv))
    events.sort(key=lambda e: e[0])  # stable: events at equal times keep their drawn order
    return t, events


def bounds(t, events) -> list[int]:
    """Period edges around everything that matters: creation, every event, the deadline, before and
    after all."""
    c = t["created_at"]
    pts = {c - 86400, c, c + 1, BASE - 40 * 86400, BASE + 400 * 86400}
    if t["deadline"] is not None:
        pts |= {t["deadline"], t["deadline"] + 1}
    for at, *_ in events:
        pts |= {at, at + 1}
    if events:
        pts.add(events[-1][0] + 86400)
    return sorted(pts)


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(log=ticket_logs(), ctx=st.sampled_from(CTXS))
def test_read_off_equals_replay(log, ctx):
    """For every period: REPLAY (only where the loader reads events), or None exactly when the
    replay is None, or facts equal to the replay's in every slot."""
    t, events = log
    row = derived.settle(t, events, ctx)
    pts = bounds(t, events)
    for i, start in enumerate(pts):
        for end in pts[i + 1 :]:
            _same_as_replay(t, events, row, start, end, ctx, ("t",))


def _same_as_replay(t, events, row, start, end, ctx, skip) -> None:
    """``row`` read off for ``[start, end)``: REPLAY only where the loader reads events, else None
    exactly when the replay is None, or the replay's facts in every slot but ``skip``."""
    got = derived.read_off(t, row, start, end, ctx)
    if got is derived.REPLAY:
        assert _needs_events(t["created_at"], row, start, (end,)), (start, end)
        return
    want = ticket_facts(t, events, start, end, ctx)
    assert (got is None) == (want is None), (start, end, events)
    if want is None:
        return
    assert got.t is t
    for slot in (s for s in Facts.__slots__ if s not in skip):
        assert getattr(got, slot) == getattr(want, slot), (slot, start, end, events)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(log=ticket_logs(), ctx=st.sampled_from(CTXS))
def test_a_row_as_of_an_end_read_off_equals_the_replay_for_that_end(log, ctx):
    """derived.settle_at (the month rows): for every end and every start before it, reading the
    row kept as of ``end`` off gives the replay's facts, or REPLAY only where the loader reads
    events for it; its last event is before ``end``."""
    t, events = log
    pts = bounds(t, events)
    for j, end in enumerate(pts):
        row = derived.settle_at(t, events, end, ctx)
        if row is None:
            assert t["created_at"] >= end
            continue
        last = row[derived.COLUMNS.index("last_at")]
        assert last is None or last < end
        for start in pts[:j]:
            _same_as_replay(t, events, row, start, end, ctx, ("t", "last_at"))


def test_the_month_rows_columns_are_the_facts_columns():
    from b24desk.store import FACT_COLUMNS

    assert derived.COLUMNS == FACT_COLUMNS


# --- 2.-5. reports on a generated store ----------------------------------------------------------

PORTAL = "bench"
CONFIG = {
    "calendar": {"timezone": "Europe/Moscow"},
    "sla": {
        "resolution_business_seconds": {"critical": 14400, "high": 32400, "normal": 97200, "low": 194400},
        "first_response_business_seconds": {"critical": 900, "high": 1800, "normal": 3600, "low": 7200},
    },
}
OCT, JUN, Q3 = ("2026-10-01", "2026-11-01"), ("2026-06-01", "2026-07-01"), ("2026-07-01", "2026-10-01")
FILTERS = [None, {"agent": "77"}, {"priority": "normal"}, {"type": "bug"}, {"source": "tasks"}]
GROUPS = [None, "agent", "priority", "department", "week", "type", "source"]


AGENT = "77"  # the responsible of the look-alike dormant tickets below (none of bench's agents)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """bench's generator at 3,000 tickets over a year, plus 27 look-alike open tickets untouched
    since December: dormant groups of several tickets, per deadline class (overdue is per end) and
    three whose author is their responsible (no agent of their own ticket)."""
    from bench.kpi import generate  # bench/kpi.py puts the repository root on the path itself

    path = tmp_path_factory.mktemp("derived") / "gen.db"
    generate(path, 3000, seed=11, years=1)
    db = open_db(path)
    deadlines = [ts("2026-09-20 12:00"), ts("2026-10-10 12:00"), ts("2026-11-10 12:00"), None]
    bundles = []
    for i in range(27):
        author = "c9" if i < 24 else AGENT
        t = Ticket(PORTAL, "task", f"d{i}", type="bug", author_id=author, customer=author, responsible_id=AGENT)
        t.created_at, t.deadline = ts("2025-12-01 10:00") + 3600 * i, deadlines[i % 4] if i < 24 else None
        bundles.append(Bundle(t, [Event(PORTAL, "task", f"d{i}", "e0", "created", t.created_at, author)]))
    with db.atomic():
        save_bundles(db, bundles)
    db.conn.close()
    return path


@pytest.fixture
def store(generated, tmp_path):
    """A private copy of the generated store (tests write to it)."""
    path = tmp_path / "store.db"
    shutil.copy(generated, path)
    db = open_db(path)
    yield db
    db.conn.close()


def dump(report) -> str:
    return json.dumps(report, sort_keys=True, default=str)


def reference(db, period=OCT, filters=None, group_by="agent", config=CONFIG, compare=None) -> dict:
    """The report without stored facts: a load without ``ctx`` (every candidate replayed from its
    events, no dormant counts) put under a ReportPass. Call it after the report under test: the
    pass it borrows loads (and keeps rows) the product's way first."""
    rp = ReportPass(db, PORTAL, *period, filters=filters, config=config, compare=compare)
    start, sources = min(rp.prev.start, rp.period.start), rp.filters.sources()
    ref = load(db, PORTAL, start, rp.period.end, sources=sources, repeat_window=rp.env.repeat_window)
    assert not ref.stored and ref.with_events is None and not ref.dormant_rows
    rp.loaded, rp.ctx = ref, replace(rp.ctx, customer_history=ref.customer_history)
    rp.tickets_c, rp.tickets_p = _facts(ref, rp.period, rp.ctx, rp.keep), _facts(ref, rp.prev, rp.ctx, rp.keep)
    rp.fc, rp.fp = rp.facts_for(None)
    rp._totals = rp._old = rp._tally = None
    replayed = {id(t) for t in ref.tickets}
    assert all(id(f.t) in replayed and f.weight == 1 for f in rp.fc + rp.fp)  # nothing of the product's
    return rp.report(group_by)


def report(db, period=OCT, filters=None, group_by="agent", config=CONFIG, compare=None) -> dict:
    return build_report(db, PORTAL, *period, filters=filters, group_by=group_by, config=config, compare=compare)


def count(db, where="1") -> int:
    """Tickets with facts kept (every ticket has a row; ``ctx`` null: none kept)."""
    return db.execute(f"select count(*) from ticket_facts where ctx is not null and {where}").fetchone()[0]


def clear(db) -> None:
    db.execute("update ticket_facts set ctx = null, ver = ver + 1")
    db.conn.commit()


def test_cold_warm_and_replayed_reports_agree(store):
    """Cold (no rows), warm (rows read, dormant tickets counted in SQL) and the full replay give
    the same JSON for several periods, filters and breakdowns; so do other periods and a
    last-year comparison served by the rows an October report kept."""
    cases = [(p, f, g) for p in (OCT, JUN) for f in FILTERS for g in GROUPS if f is None or g in (None, "agent")]
    for period, filters, group_by in cases:
        clear(store)
        cold = report(store, period, filters, group_by)
        assert count(store) > 0
        warm = report(store, period, filters, group_by)
        ref = reference(store, period, filters, group_by)
        assert dump(cold) == dump(ref), (period, filters, group_by)
        assert dump(warm) == dump(ref), (period, filters, group_by)
    report(store)
    rp = ReportPass(store, PORTAL, *OCT, config=CONFIG)
    assert len(rp.loaded.with_events) < len(rp.loaded.tickets) / 2  # most tickets read off their rows
    # the look-alikes, one weighted fact per deadline class: before both ends (September 20, and
    # the SLA's deadline of those without one), before the second (October 10), after both; and
    # the three own tickets apart (SLA deadline: overdue at both ends)
    for end, overdue in ((rp.prev.end, 12), (rp.period.end, 18)):
        mine = [f for f in rp.loaded.dormant(end) if f.resp_end == AGENT]
        assert sorted(f.weight for f in mine) == [3, 6, 6, 12]
        assert sum(f.weight for f in mine if f.overdue) == overdue + 3
    assert len(rp.loaded.dormant(rp.period.end)) > 4  # the generator's own forgotten tickets too
    for period, compare in ((JUN, None), (Q3, None), (OCT, "last_year")):  # rows kept by October's
        assert dump(report(store, period, compare=compare)) == dump(reference(store, period, compare=compare))


def test_warm_report_equals_bench_baseline(store):
    """Anchor independent of the loader: bench's baseline replays every ticket of the store."""
    from bench.kpi import CONFIG as BENCH_CONFIG
    from bench.kpi import baseline

    for _ in range(2):  # cold, then warm
        k = report(store, group_by=None, config=BENCH_CONFIG)["kpis"]
        mine = {
            "value": {key: e["value"] for key, e in k.items() if key != "ccei"},
            "previous": {key: e["previous"] for key, e in k.items() if key != "ccei"},
        }
        assert dump(mine) == dump(baseline(store, *OCT))


def _oct_task(db) -> dict:
    """A task created and resolved in October, with a reply: every write below shows in a KPI."""
    sid = db.execute(
        "select t.source_id from tickets t where t.portal = ? and t.source = 'task' and t.created_at >= ?"
        " and t.resolved_at < ? and exists (select 1 from events e where e.portal = t.portal"
        " and e.source = t.source and e.source_id = t.source_id and e.kind = 'reply') order by t.created_at limit 1",
        [PORTAL, ts("2026-10-01 00:00"), ts("2026-11-01 00:00")],
    ).fetchone()[0]
    return get_ticket(db, PORTAL, "task", sid)


def _save(db, row: dict, events=(), **changes) -> None:
    t = ticket_from_row(row)
    for k, v in changes.items():
        setattr(t, k, v)
    with db.atomic():
        save_bundles(db, [Bundle(t, list(events))])


def _ev(row, key, kind, at, actor="1", fld=None, fv=None, tv=None) -> Event:
    return Event(PORTAL, row["source"], row["source_id"], key, kind, at, actor, fld, fv, tv)


def _wake(db, r) -> None:
    """A dormant ticket resolved in October (through a sync's write path, like the others)."""
    at = ts("2026-10-15 12:00")
    evs = [_ev(r, "x2", "status", at, AGENT, "STATUS", "2", "5"), _ev(r, "x3", "resolved", at, AGENT)]
    _save(db, r, evs, state="resolved", resolved_at=at, closed_at=at)


WRITES = {
    "priority": lambda db, r: _save(db, r, priority="critical" if r["priority"] != "critical" else "low"),
    "transfer": lambda db, r: _save(
        db, r, [_ev(r, "x1", "assigned", r["created_at"] + 60, fld="RESPONSIBLE_ID", fv=r["responsible_id"], tv="13")]
    ),
    "reply deleted": lambda db, r: db.execute(
        "delete from events where portal = ? and source = ? and source_id = ? and kind = 'reply'",
        [PORTAL, r["source"], r["source_id"]],
    ),
    "ticket deleted": lambda db, r: mark_deleted(db, PORTAL, r["source"], [r["source_id"]]),
    "dormant resolved": _wake,
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_write_drops_exactly_its_ticket_row(store, write):
    """The triggers drop the written ticket's kept facts and no other; the next report sees the write
    (it differs from before) and equals the full replay."""
    before = report(store)
    row = get_ticket(store, PORTAL, "task", "d1") if write == "dormant resolved" else _oct_task(store)
    mine, n = f"source = 'task' and source_id = '{row['source_id']}'", count(store)
    assert count(store, mine) == 1
    WRITES[write](store, row)
    store.conn.commit()
    assert count(store, mine) == 0 and count(store) == n - 1
    after = report(store)
    assert dump(after) != dump(before)
    assert dump(after) == dump(reference(store))


CONFIG_SLA = {**CONFIG, "sla": {**CONFIG["sla"], "resolution_business_seconds": {"normal": 7200, "high": 3600}}}
CONFIG_CAL = {**CONFIG, "calendar": {"timezone": "Europe/Moscow", "work_start": "11:00", "work_end": "15:00"}}


def fingerprint(db, config) -> str:
    return derived.fingerprint(ReportEnv(db, PORTAL, config).ctx)


@pytest.mark.parametrize("other", [CONFIG_SLA, CONFIG_CAL], ids=["sla", "calendar"])
def test_another_context_never_reads_rows_of_the_first(store, other):
    """Rows are keyed by the context's fingerprint: tampered rows stored under CONFIG change a
    warm CONFIG report (so rows are really read), yet a report under another SLA or calendar is
    its own replay, and the first context recomputes afterwards."""
    report(store)
    fp, fp_other = fingerprint(store, CONFIG), fingerprint(store, other)
    assert fp != fp_other and count(store, f"ctx = '{fp}'") > 0
    good = reference(store)
    store.execute("update ticket_facts set replies = replies + 5, transfers = transfers + 1")
    store.conn.commit()
    assert dump(report(store)) != dump(good)
    mine = report(store, config=other)
    assert dump(mine) == dump(reference(store, config=other))
    assert dump(mine["kpis"]) != dump(good["kpis"])
    assert count(store, f"ctx = '{fp_other}'") > 0 and count(store, f"ctx = '{fp}'") < count(store)
    store.execute("update ticket_facts set ctx = null where ctx = ?", [fp])  # the tampered rows left
    store.conn.commit()
    assert dump(report(store)) == dump(good)


@pytest.mark.parametrize("how", ["locked", "read-only"])
def test_save_gives_up_quietly(store, how):
    """A sync holding the write lock (BEGIN IMMEDIATE elsewhere) or a read-only connection: save
    keeps nothing and raises nothing, the report does not wait out the 30 s busy timeout (which is
    restored) and answers right; the next report on the writable store keeps its rows."""
    clear(store)
    path = store.execute("pragma database_list").fetchone()[2]
    other = sqlite3.connect(path, timeout=0)
    if how == "locked":
        db = store
        other.execute("BEGIN IMMEDIATE")
    else:
        db = Store(sqlite3.connect(f"file:{path}?mode=ro", uri=True))
    try:
        timeout = db.execute("pragma busy_timeout").fetchone()[0]
        t = _oct_task(db)
        row = derived.settle(t, [], ReportEnv(db, PORTAL, CONFIG).ctx)
        t0 = time.monotonic()
        assert derived.save(db, PORTAL, "fp", [(t, 0, row)]) == 0
        got = report(db)
        assert time.monotonic() - t0 < 10
        assert count(db) == 0 and db.execute("pragma busy_timeout").fetchone()[0] == timeout
    finally:
        other.rollback()
        other.close()
        if db is not store:
            db.conn.close()
    assert dump(got) == dump(report(store)) == dump(reference(store))
    assert count(store) > 0


def test_facts_computed_before_a_write_are_not_kept(store):
    """A report reads a ticket, a sync writes it, then the report keeps what it computed: the
    row's ``ver`` moved, so the old facts are not kept (they would hide the write) and the next
    report sees the write."""
    clear(store)
    env = ReportEnv(store, PORTAL, CONFIG)
    t = _oct_task(store)
    key = [PORTAL, t["source"], t["source_id"]]
    ver = store.execute("select ver from ticket_facts where portal = ? and source = ? and source_id = ?", key)
    ver = ver.fetchone()[0]
    old = derived.settle(t, [], env.ctx)  # facts of an older read
    _save(store, t, priority="critical" if t["priority"] != "critical" else "low")
    store.conn.commit()
    assert derived.save(store, PORTAL, derived.fingerprint(env.ctx), [(t, ver, old)]) == 0
    mine = f"source = '{t['source']}' and source_id = '{t['source_id']}'"
    assert count(store, mine) == 0
    assert dump(report(store)) == dump(reference(store))
    assert count(store, mine) == 1  # kept by that report, under the new version


def test_every_ticket_has_its_row_and_a_store_without_them_still_reports_right(store):
    """Triggers give every inserted ticket its row; a store written with the triggers off (open
    tickets without rows) is read the old way, exactly, until the placeholders are added."""
    missing = store.execute(
        "select count(*) from tickets t where not exists (select 1 from ticket_facts f where f.portal = t.portal"
        " and f.source = t.source and f.source_id = t.source_id)"
    ).fetchone()[0]
    assert missing == 0
    want = reference(store)
    store.execute("delete from ticket_facts where closed_at is null and source_id like 'd%'")
    store.conn.commit()
    conn = store.conn
    assert not derived.open_rows_complete(conn, PORTAL)
    assert dump(report(store)) == dump(want)
    rp = ReportPass(store, PORTAL, *OCT, config=CONFIG)
    assert rp.loaded.dormant_rows == []  # counted one by one, not from an incomplete index
    from b24desk.store import facts_placeholders

    assert facts_placeholders(store, PORTAL) > 0
    store.conn.commit()
    assert derived.open_rows_complete(conn, PORTAL)
    assert dump(report(store)) == dump(report(store)) == dump(want)
    assert ReportPass(store, PORTAL, *OCT, config=CONFIG).loaded.dormant_rows


def _now_reference(db, minute: int) -> dict:
    """The "now" panel as it was computed before kept facts: every open ticket replayed from its
    events as of the next minute."""
    env = ReportEnv(db, PORTAL, CONFIG)
    end = minute + 60
    rows = db.execute(
        f"select {', '.join(TICKET_COLUMNS)} from tickets where portal = ? and closed_at is null"
        " and created_at < ? and coalesce(deleted, 0) = 0",
        [PORTAL, end],
    ).fetchall()
    out = {"open": [], "unassigned": [], "no_reply": [], "at_risk": []}
    for row in rows:
        t = dict(zip(TICKET_COLUMNS, row))
        evs = [
            tuple(e)
            for e in db.execute(
                "select at, kind, actor_id, field, from_value, to_value from events where portal = ? and source = ?"
                " and source_id = ? and kind not in ('created', 'rated') and at is not null order by at, key",
                [PORTAL, t["source"], t["source_id"]],
            )
        ]
        f = ticket_facts(t, evs, end - 1, end, env.ctx)
        if f is None or not f.open_at_end:
            continue
        key = (t["source"], t["source_id"])
        out["open"].append(key)
        if not f.resp_end:
            out["unassigned"].append(key)
        if f.first_reply is None:
            out["no_reply"].append(key)
        if f.deadline is not None and minute <= f.deadline < minute + 7200:
            out["at_risk"].append(key)
    return {k: sorted(v) for k, v in out.items()}


def test_now_panel_reads_kept_facts_and_equals_the_replay(store):
    """The dashboard's "now" panel (reports/data.py) takes the open tickets' facts from the kept
    rows: cold, warm and after a write it lists the same tickets as a replay of every open one."""
    from b24desk.kpi.now import now_items as _now_items

    (deadline,) = store.execute(  # a minute with an open ticket's deadline in the next two hours
        "select deadline from tickets where portal = ? and closed_at is null and deadline > ? order by deadline",
        [PORTAL, ts("2026-11-10 00:00")],
    ).fetchone()
    minute = deadline - 3600 - deadline % 60
    want = _now_reference(store, minute)
    assert want["open"] and want["no_reply"] and want["at_risk"]
    for _ in range(2):  # cold, then from the rows the first call kept
        got = _now_items(store, PORTAL, {}, CONFIG, minute)["items"]
        assert {k: sorted((r["source"], r["source_id"]) for r in got[k]) for k in want} == want
    assert count(store, "closed_at is null") > 0
    sid = next(k[1] for k in want["no_reply"] if k[0] == "task")
    r = get_ticket(store, PORTAL, "task", sid)  # a reply lands: the ticket leaves "no reply"
    _save(store, r, [_ev(r, "now-1", "reply", minute - 600, "13")])
    store.conn.commit()
    got = _now_items(store, PORTAL, {}, CONFIG, minute)["items"]
    assert ("task", sid) not in {(x["source"], x["source_id"]) for x in got["no_reply"]}
    assert {k: sorted((x["source"], x["source_id"]) for x in got[k]) for k in want} == _now_reference(store, minute)


@pytest.mark.parametrize(
    "filters", [{}, {"agent": "13"}, {"priority": "high"}, {"source": "tasks"}, {"type": "bug", "agent": AGENT}]
)
def test_now_panel_from_kept_rows_equals_every_open_ticket_read_the_long_way(store, monkeypatch, filters):
    """The "now" panel takes the open tickets kept as open and untouched from ticket_facts alone
    (derived.open_now): with filters, its items (rows, values, order) equal those of the loader's
    way, which reads and reads off every open ticket; a ticket written since is read again."""
    import b24desk.kpi.now as now

    (deadline,) = store.execute(
        "select deadline from tickets where portal = ? and closed_at is null and deadline > ? order by deadline",
        [PORTAL, ts("2026-11-10 00:00")],
    ).fetchone()
    minute = deadline - 3600 - deadline % 60
    # an open ticket answered an hour after the panel's minute: unanswered as of that minute
    t = Ticket(PORTAL, "task", "later", type="bug", author_id="c41", customer="c41", responsible_id="13")
    t.created_at, t.priority = minute - 86400, "high"
    evs = [
        Event(PORTAL, "task", "later", "e0", "created", t.created_at, "c41"),
        Event(PORTAL, "task", "later", "e1", "reply", minute + 3600, "13"),
    ]
    with store.atomic():
        save_bundles(store, [Bundle(t, evs)])
    now.now_items(store, PORTAL, {}, CONFIG, minute)  # keeps every open ticket's facts
    kept, others = derived.open_now(store.conn, PORTAL, fingerprint(store, CONFIG), minute + 59, minute + 60, "", [])
    assert len(kept) > 10 * len(others)  # nearly all from the table alone
    reads = []  # ... and from its index alone (store.m_facts_open_002), filters included
    store.conn.set_trace_callback(lambda sql: reads.append(sql) if "indexed by ticket_facts_open" in sql else None)
    now.now_items(store, PORTAL, filters, CONFIG, minute)
    store.conn.set_trace_callback(None)
    assert reads
    for sql in reads:
        if sql.lstrip().lower().startswith("select"):
            plan = [r[3] for r in store.execute("explain query plan " + sql).fetchall()]
            assert any("COVERING INDEX ticket_facts_open" in p for p in plan), plan
    fast = now.now_items(store, PORTAL, filters, CONFIG, minute)
    monkeypatch.setattr(derived, "open_rows_complete", lambda conn, portal: False)
    slow = now.now_items(store, PORTAL, filters, CONFIG, minute)
    assert dump(fast) == dump(slow)
    assert fast["items"]["open"] and (filters or fast["items"]["no_reply"])
    if not filters:
        assert "later" in {r["source_id"] for r in fast["items"]["no_reply"]}


@pytest.mark.parametrize("group_by", ["agent", "department", "priority", "week"])
def test_groups_without_their_previous_period_keep_this_periods_values(store, group_by):
    """The dashboard's group tables ask for this period's values only (``group_previous=False``):
    the groups with tickets in this period, each with the full report's values, ``previous`` and
    ``delta`` null; the groups that only the previous period had are left out; the totals keep
    both periods."""
    full = ReportPass(store, PORTAL, *OCT, config=CONFIG).report(group_by)
    lean = ReportPass(store, PORTAL, *OCT, config=CONFIG).report(group_by, group_previous=False)
    assert dump(lean["kpis"]) == dump(full["kpis"])
    by_key = {g["key"]: g for g in full["groups"]}
    kept = [g["key"] for g in lean["groups"]]
    assert kept == [k for k in by_key if k in kept] and kept  # the full report's order
    for k, g in by_key.items():
        if k not in kept:  # nothing of it in this period
            v = g["kpis"]
            assert (v["tickets_total"]["value"], v["resolved_count"]["value"], v["backlog"]["value"]) == (0, 0, 0)
            assert v["tickets_total"]["previous"] or v["resolved_count"]["previous"] or v["backlog"]["previous"]
    compared = 0
    for g in lean["groups"]:
        h = by_key[g["key"]]
        assert g["ccei"]["previous"] is None and g["ccei"]["value"] == h["ccei"]["value"]
        for key, e in g["kpis"].items():
            assert dump(e["value"]) == dump(h["kpis"][key]["value"]), (g["key"], key)
            assert e["status"] == h["kpis"][key]["status"]
            assert e["previous"] is None and e["delta"] is None
            compared += h["kpis"][key]["previous"] is not None
    assert compared  # the full report did have previous values to leave out


@pytest.mark.parametrize("group_by", ["agent", "department", "priority"])
def test_groups_with_a_few_kpis_hold_those_with_the_full_values(store, group_by):
    """A page's group table asks for its columns only (``group_kpis``): each group holds exactly
    those KPIs, equal to the full report's (value, n, target, status), its CCEI null; the totals
    are whole; asking for every KPI again from the same pass gives the full groups."""
    from reports.dashboard import TABLE_KPIS

    full = ReportPass(store, PORTAL, *OCT, config=CONFIG).report(group_by, group_previous=False)
    rp = ReportPass(store, PORTAL, *OCT, config=CONFIG)
    few = rp.report(group_by, group_previous=False, group_kpis=TABLE_KPIS)
    assert dump(few["kpis"]) == dump(full["kpis"]) and few["ccei"] == full["ccei"]
    assert [g["key"] for g in few["groups"]] == [g["key"] for g in full["groups"]]
    for g, h in zip(few["groups"], full["groups"]):
        assert list(g["kpis"]) == [k for k in h["kpis"] if k in TABLE_KPIS]
        assert g["ccei"] is None and h["ccei"]["value"] is not None or h["ccei"]["value"] is None
        for key, e in g["kpis"].items():
            assert dump(e) == dump(h["kpis"][key]), (g["key"], key)
    ccei = rp.report(group_by, group_previous=False, group_kpis=("ccei",))  # it reads other KPIs
    assert [g["ccei"] for g in ccei["groups"]] == [h["ccei"] for h in full["groups"]]
    assert all(list(g["kpis"]) == ["ccei"] for g in ccei["groups"])
    again = rp.report(group_by, group_previous=False)  # the same tallies, every KPI
    assert dump(again["groups"]) == dump(full["groups"])
    with pytest.raises(ValueError):
        rp.report(group_by, group_kpis=TABLE_KPIS)  # kept previous values are whole: not with them


# --- a kept pass brought up to date with the tickets written since (reports/data.py's pool) -------


def _kept_pass(db, filters=None):
    """A pass as reports/data.py keeps it (slimmed), with the journal position read before it."""
    from b24desk.store import journal_state

    seq = journal_state(db.conn)[0]
    rp = ReportPass(db, PORTAL, *OCT, filters=filters, config=CONFIG, keep_keys=True)
    rp.slim()
    return rp, seq


def _refresh(db, rp, seq):
    """What reports/data.py does with the journal: ``(refreshed?, new position, changed keys)``."""
    from b24desk.store import journal_changes

    lo, hi = rp.window[0] - rp.env.repeat_window - 86400, rp.window[1] + 86400  # reports/data.py's scope
    last, changed = journal_changes(db.conn, PORTAL, seq, lo, hi)
    assert changed is not None
    return rp.refresh(db, changed), last, changed


def _new_ticket(db, r) -> None:
    """A ticket created in October by a new customer, answered by ``r``'s responsible."""
    at = ts("2026-10-21 10:00")
    t = Ticket(PORTAL, "task", "n1", type="bug", author_id="c777", customer="c777", responsible_id=r["responsible_id"])
    t.created_at, t.priority = at, "high"
    evs = [
        Event(PORTAL, "task", "n1", "e0", "created", at, "c777"),
        Event(PORTAL, "task", "n1", "e1", "reply", at + 900, r["responsible_id"]),
    ]
    with db.atomic():
        save_bundles(db, [Bundle(t, evs)])


def _earlier_contact(db, r) -> None:
    """The same customer's ticket in September: October's ticket becomes a repeat contact (the
    customers' history is re-read, not only the tickets)."""
    t = Ticket(PORTAL, "task", "n4", type="bug", author_id="c777", customer="c777", responsible_id="13")
    t.created_at = ts("2026-09-25 10:00")
    with db.atomic():
        save_bundles(db, [Bundle(t, [Event(PORTAL, "task", "n4", "e0", "created", t.created_at, "c777")])])


def _outside(db, r) -> None:
    """A ticket created after the window (December): no figure of October or September changes."""
    t = Ticket(PORTAL, "task", "n2", type="bug", author_id="c778", customer="c778", responsible_id="13")
    t.created_at = ts("2026-12-05 10:00")
    with db.atomic():
        save_bundles(db, [Bundle(t, [Event(PORTAL, "task", "n2", "e0", "created", t.created_at, "c778")])])


@pytest.mark.parametrize("gaps", [False, True])
@pytest.mark.parametrize("filters", [None, {"priority": "high"}, {"source": "tasks"}])
def test_a_kept_pass_refreshed_with_the_written_tickets_equals_a_new_report(store, filters, gaps):
    """Write after write (a new ticket, a priority change, a transfer, a deleted reply, a ticket
    outside the window, a deleted ticket), the kept pass re-reads the tickets the journal names and
    nothing else, and its reports (totals, per agent, per priority, per week) equal the full replay.
    With every ticket's gap filled in, the pass reads no customers' history until its first
    refresh, which reads it (a write changes other tickets' gaps, not only its own ticket's)."""
    report(store)  # facts kept, as in the product's steady state
    while gaps and derived.fill_gaps(store, PORTAL):
        pass
    rp, seq = _kept_pass(store, filters)
    # a gap counts a ticket of any source: a pass of the tasks alone reads the history (the store
    # holds deals too)
    assert (rp.loaded.customer_history is None) == (gaps and filters != {"source": "tasks"})
    r = _oct_task(store)
    key = (r["source"], r["source_id"])
    steps = [
        ("new ticket", _new_ticket, {("task", "n1")}),
        ("earlier contact", _earlier_contact, {("task", "n4")}),
        ("priority", WRITES["priority"], {key}),
        ("transfer", WRITES["transfer"], {key}),
        ("customer", lambda db, r: _save(db, r, customer="c777"), {key}),
        ("reply deleted", WRITES["reply deleted"], {key}),
        ("outside", _outside, set()),
        ("ticket deleted", WRITES["ticket deleted"], {key}),
    ]
    before = dump(rp.report("agent"))
    written: set = set()
    for name, write, keys in steps:
        write(store, r)
        store.conn.commit()
        ok, seq, changed = _refresh(store, rp, seq)
        assert ok and set(changed) == keys, name
        written |= keys
        assert rp.loaded.with_events <= written  # only the written tickets were ever re-read
        history = rp.loaded.customer_history
        # with gaps, only the written tickets' customers' history is read (gaps_triggers)
        assert isinstance(history, PartialHistory) == (gaps and filters != {"source": "tasks"})
        if isinstance(history, PartialHistory):
            assert "c777" in history.covers and len(history.covers) < 10
        for group_by in (None, "agent", "priority", "week"):
            assert dump(rp.report(group_by)) == dump(reference(store, OCT, filters, group_by)), (name, group_by)
    assert dump(rp.report("agent")) != before  # the writes did change figures


@pytest.mark.parametrize("filters", [None, {"priority": "normal"}])
def test_a_written_ticket_the_pass_counted_in_sql_leaves_its_count(store, filters):
    """Dormant tickets (counted in SQL, never read) that are written: the pass takes each out of
    its count (it knows which count: derived.dormant_keys) and reads it like the others from then
    on; totals and groups (per agent, per priority: both split the counts) equal the replay."""
    report(store)
    rp, seq = _kept_pass(store, filters)
    assert rp.loaded.dormant_rows and ("task", "d0") in rp.loaded.dormant_keys
    for group_by in (None, "agent", "priority"):
        rp.report(group_by)  # tallies kept before the writes
    weight = sum(f.weight for f in rp.loaded.dormant(rp.period.end))
    for name, write in (
        ("resolved", lambda: _wake(store, get_ticket(store, PORTAL, "task", "d0"))),
        ("priority", lambda: _save(store, get_ticket(store, PORTAL, "task", "d5"), priority="critical")),
    ):
        write()
        store.conn.commit()
        ok, seq, changed = _refresh(store, rp, seq)
        assert ok, name
        for group_by in (None, "agent", "priority", "week"):
            assert dump(rp.report(group_by)) == dump(reference(store, OCT, filters, group_by)), (name, group_by)
    left = sum(f.weight for f in rp.loaded.dormant(rp.period.end))
    assert left == weight - 2 if filters is None else left < weight
    assert ("task", "d0") in rp.loaded.by_key() and ("task", "d0") not in rp.loaded.dormant_keys


def _kept_start(db, period=OCT):
    """A pass of ``period``, the start its load counts the dormant tickets for, and the context's digest."""
    rp = ReportPass(db, PORTAL, *period, config=CONFIG)
    return rp, min(rp.prev.start, rp.period.start), derived.fingerprint(rp.env.ctx)


def _dormant_reads(db) -> list:
    """The statements that count the dormant tickets in SQL or check every open ticket has its row,
    from now on (``db.conn.set_trace_callback(None)`` ends it)."""
    reads: list = []
    marks = ("group by f.dkey", "from tickets where portal = ? and closed_at is null),")
    db.conn.set_trace_callback(lambda sql: reads.append(sql) if any(m in sql for m in marks) else None)
    return reads


@pytest.mark.parametrize("filters", [None, {"source": "tasks"}, {"agent": AGENT}])
def test_dormant_counts_kept_for_a_start_equal_the_count_in_sql_and_serve_its_reports(store, filters):
    """derived.keep_dormant keeps, per group, what the count in SQL gives for any ends and sources;
    a report starting there reads that row instead (no scan of the never-closed tickets, no
    completeness check) and equals the replay; the settled cells' build keeps one per whole month."""
    from b24desk.kpi import cells
    from b24desk.kpi.load import source_clause

    report(store)
    rp, start, fp = _kept_start(store)
    conn = store.conn
    assert derived.kept_dormant(conn, PORTAL, fp, start) is None and rp.loaded.dormant_rows
    assert derived.keep_dormant(store, PORTAL, fp, start)
    kept = derived.kept_dormant(conn, PORTAL, fp, start)
    assert sum(n for _, n, _ in kept) > 27  # the look-alikes and the generator's own
    sources = [r[0] for r in conn.execute("select distinct source from tickets")]
    assert len(sources) > 1
    some_ends = ([rp.prev.end, rp.period.end], [ts("2026-09-20 12:00"), ts("2026-10-10 12:00")], [start + 1])
    for ends in some_ends:
        for src in (None, sources[:1], sources[1:], ["nothing"]):
            src_sql, src_params = source_clause(src, "f.")
            want = derived.dormant(conn, PORTAL, start, ends, fp, src_sql, src_params)
            assert derived.dormant_of_kept(kept, ends, src) == want, (ends, src)
    reads = _dormant_reads(store)
    got = report(store, OCT, filters)
    again = ReportPass(store, PORTAL, *OCT, config=CONFIG)
    conn.set_trace_callback(None)
    assert not reads
    assert again.loaded.dormant_rows == rp.loaded.dormant_rows
    assert dump(got) == dump(reference(store, OCT, filters))
    # a narrowed selector cannot be told apart in the kept groups: counted in SQL
    reads = _dormant_reads(store)
    ReportPass(store, PORTAL, *OCT, filters={"source": "tasks:group=7"}, config=CONFIG)
    conn.set_trace_callback(None)
    assert reads
    # the warmer's build of the settled cells keeps the counts of each whole month's start, also
    # of the months whose cells it was not asked to look at (a write to a ticket untouched for
    # years drops the counts of every start since)
    conn.execute("delete from dormant_kept")
    conn.commit()
    tz = cells.zone_of(rp.env.ctx)
    cells.build(store, PORTAL, rp.env.ctx, ts("2026-08-15 00:00"), ts("2026-11-01 00:00"), only=set())
    befores = {b for (b,) in conn.execute("select before from dormant_kept")}
    assert befores == {cells.month_of(ts("2026-09-10 00:00"), tz), cells.month_of(ts("2026-10-10 00:00"), tz)}
    assert not conn.execute("select count(*) from settled_cells").fetchone()[0]


def _old_ticket(db) -> None:
    """An open ticket created last December and untouched since, brought in by a sync now."""
    t = Ticket(PORTAL, "task", "o1", type="bug", author_id="c9", customer="c9", responsible_id=AGENT)
    t.created_at = ts("2025-12-20 10:00")
    with db.atomic():
        save_bundles(db, [Bundle(t, [Event(PORTAL, "task", "o1", "e0", "created", t.created_at, "c9")])])


DORMANT_WRITES = {
    "dormant ticket resolved": lambda db: _wake(db, get_ticket(db, PORTAL, "task", "d1")),
    "dormant ticket's priority": lambda db: _save(db, get_ticket(db, PORTAL, "task", "d5"), priority="critical"),
    "dormant ticket deleted": lambda db: mark_deleted(db, PORTAL, "task", ["d2"]),
    "old open ticket brought in": _old_ticket,
    "open ticket's facts row removed": lambda db: db.execute("delete from ticket_facts where source_id = 'd3'"),
}


@pytest.mark.parametrize("write", sorted(DORMANT_WRITES))
def test_a_write_to_a_ticket_a_kept_count_may_hold_drops_it_and_reports_stay_exact(store, write):
    """A write to an open ticket created and last touched before a kept start (or a facts row of
    an open ticket removed: the row stood for "every open ticket has its row") drops that start's
    counts; a start before the ticket's life keeps its own; the reports equal the replay."""
    report(store)
    rp, start, fp = _kept_start(store)
    early = ts("2025-11-01 00:00")  # before the look-alikes were created
    for before in (start, early):
        assert derived.keep_dormant(store, PORTAL, fp, before)
    counted = rp.loaded.dormant_rows
    DORMANT_WRITES[write](store)
    store.conn.commit()
    assert derived.kept_dormant(store.conn, PORTAL, fp, start) is None
    assert (derived.kept_dormant(store.conn, PORTAL, fp, early) is None) == (write == "open ticket's facts row removed")
    assert dump(report(store)) == dump(reference(store))
    if write != "open ticket's facts row removed":  # the counts did change: kept ones would be wrong
        assert ReportPass(store, PORTAL, *OCT, config=CONFIG).loaded.dormant_rows != counted
    if write == "open ticket's facts row removed":
        assert not derived.keep_dormant(store, PORTAL, fp, start)  # incomplete: not kept
        from b24desk.store import facts_placeholders

        facts_placeholders(store, PORTAL)
        store.conn.commit()
        report(store)
    assert derived.keep_dormant(store, PORTAL, fp, start)
    assert dump(report(store)) == dump(reference(store))


def test_a_write_to_a_ticket_worked_since_the_start_leaves_the_kept_counts(store):
    """Writes to tickets last touched on or after a kept start (a closed October task, a ticket
    still open and worked since) leave its counts, which stay exact; a store busy with a sync
    keeps none, and says so."""
    report(store)
    rp, start, fp = _kept_start(store)
    assert derived.keep_dormant(store, PORTAL, fp, start)
    WRITES["transfer"](store, _oct_task(store))
    src, sid = store.execute(
        "select source, source_id from ticket_facts where portal = ? and closed_at is null and ctx is not null"
        " and last_at >= ? order by last_at limit 1",
        [PORTAL, start],
    ).fetchone()
    r = get_ticket(store, PORTAL, src, sid)
    _save(store, r, [_ev(r, "x9", "comment", ts("2026-10-20 12:00"), AGENT)])
    store.conn.commit()
    assert derived.kept_dormant(store.conn, PORTAL, fp, start) is not None
    reads = _dormant_reads(store)
    got = report(store)
    store.conn.set_trace_callback(None)
    assert not reads and dump(got) == dump(reference(store))
    path = store.conn.execute("pragma database_list").fetchone()[2]
    other = sqlite3.connect(path)
    other.execute("BEGIN IMMEDIATE")
    try:
        assert not derived.keep_dormant(store, PORTAL, fp, rp.period.start)
    finally:
        other.rollback()
        other.close()
    assert derived.kept_dormant(store.conn, PORTAL, fp, rp.period.start) is None
    assert derived.keep_dormant(store, PORTAL, fp, rp.period.start)


def test_dormant_counts_are_not_kept_when_a_write_lands_while_they_are_counted(store, monkeypatch):
    """A sync that commits a write to a dormant ticket after keep_dormant began reading: the
    counts it read are those before the write, so it keeps nothing; the next call keeps the
    counts after the write, which equal the count in SQL."""
    report(store)
    rp, start, fp = _kept_start(store)
    path = store.conn.execute("pragma database_list").fetchone()[2]
    check = derived.open_rows_complete

    def with_a_write(conn, portal):  # runs inside keep_dormant's transaction, after its first read
        other = sqlite3.connect(path)
        other.execute("update tickets set closed_at = ? where source_id = 'd4'", [ts("2026-10-20 10:00")])
        other.commit()
        other.close()
        return check(conn, portal)

    monkeypatch.setattr(derived, "open_rows_complete", with_a_write)
    assert not derived.keep_dormant(store, PORTAL, fp, start)
    monkeypatch.setattr(derived, "open_rows_complete", check)
    assert derived.kept_dormant(store.conn, PORTAL, fp, start) is None
    report(store)
    assert derived.keep_dormant(store, PORTAL, fp, start)
    kept = derived.kept_dormant(store.conn, PORTAL, fp, start)
    ends = [rp.prev.end, rp.period.end]
    assert derived.dormant_of_kept(kept, ends) == derived.dormant(store.conn, PORTAL, start, ends, fp, "", [])
    assert dump(report(store)) == dump(reference(store))


def _values(out: dict) -> str:
    return dump({k: [v.value, v.n, v.detail] for k, v in out.items()})


@pytest.mark.parametrize("seed", range(3))
def test_a_tally_with_facts_taken_away_equals_one_that_never_had_them(store, seed):
    """engine.Tally: every KPI of a tally that had facts added and some taken away equals the
    aggregate of the rest (dormant weighted facts, priorities, customers, agents included); taking
    all away leaves the empty aggregate."""
    import random

    from b24desk.kpi.engine import Tally, aggregate

    report(store)  # facts kept: the pass counts dormant tickets in SQL
    rp = ReportPass(store, PORTAL, *OCT, config=CONFIG)
    p, users = rp.period, rp.env.users
    facts = rp.fc
    assert any(f.weight > 1 for f in facts)  # dormant aggregates among them
    rnd = random.Random(seed)
    gone = rnd.sample(facts, len(facts) // 3)
    ids = {id(f) for f in gone}
    rest = [f for f in facts if id(f) not in ids]
    tally = Tally(rp.ctx)
    tally.add(facts)
    tally.remove(gone)
    assert _values(tally.result(p.start, p.end, p.days, users)) == _values(
        aggregate(rest, p.start, p.end, p.days, rp.ctx, users)
    )
    tally.add(gone[::-1])
    assert _values(tally.result(p.start, p.end, p.days, users)) == _values(
        aggregate(facts, p.start, p.end, p.days, rp.ctx, users)
    )
    tally.remove(rnd.sample(facts, len(facts)))
    assert _values(tally.result(p.start, p.end, p.days, users)) == _values(
        aggregate([], p.start, p.end, p.days, rp.ctx, users)
    )
    assert not tally.customers and not tally.by_agent and not tally.eff_agents and not tally.per_agent


def _state(tally) -> dict:
    """Everything a Tally holds, in an order-free form (lists sorted, facts by identity)."""

    def norm(v):
        if isinstance(v, list):
            return sorted((id(x) if hasattr(x, "t") else x) for x in v)
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        return v

    tally.all_customers()  # the frozen tallies' lists merged in (Tally.merge shares them)
    return {k: norm(v) for k, v in vars(tally).items() if k not in ("ctx", "_last", "_cparts", "frozen")}


@pytest.mark.parametrize("seed,frozen", [(1, False), (2, False), (3, True), (4, True)])
def test_tallies_merged_equal_one_tally_of_all_their_facts(store, seed, frozen):
    """engine.Tally.merge: tallies of disjoint parts of the facts, merged, hold exactly what one
    tally of all of them holds (every attribute, so one added later is not forgotten) and give
    the same KPIs; the parts are left as they were. ``frozen`` parts (kept cells') share their
    customers' lists instead of having them copied: the same KPIs before any list is merged, and
    a fact they brought can still be taken away."""
    import random

    from b24desk.kpi.engine import Tally

    report(store)
    rp = ReportPass(store, PORTAL, *OCT, config=CONFIG)
    p, users = rp.period, rp.env.users
    facts = list(rp.fc)
    rnd = random.Random(seed)
    rnd.shuffle(facts)
    cuts = sorted(rnd.sample(range(1, len(facts)), 4))
    parts = [facts[a:b] for a, b in zip([0] + cuts, cuts + [len(facts)])]
    whole = Tally(rp.ctx)
    whole.add(facts)
    merged = Tally(rp.ctx)
    tallies = []
    for part in parts:
        t = Tally(rp.ctx)
        t.add(part)
        if frozen:
            t = Tally.of_state(rp.ctx, t.state(), frozen=True)
        tallies.append((t, _state(t)))
        merged.merge(t)
    if frozen:  # nothing merged yet: the KPIs read the shared lists (counted from gaps, then the history)
        check, ref = Tally(rp.ctx), Tally(rp.ctx)
        for t, _before in tallies:
            check.merge(t)
        ref.add(facts)
        assert check._cparts and not check.customers
        full = _history(store.conn, PORTAL, p.start - rp.ctx.repeat_window, p.end, None)
        for history in (None, full):
            check.ctx = ref.ctx = replace(rp.ctx, customer_history=history)
            check.stale(), ref.stale()
            if history is None:
                for t in (check, ref):
                    t.nogap.clear()  # as if every ticket had its gap (none here has)
            assert _values(check.result(p.start, p.end, p.days, users)) == _values(
                ref.result(p.start, p.end, p.days, users)
            )
            # counted from the gaps, no list was merged; the history's repeat contacts merge them
            assert bool(check._cparts) == (history is None)
        gone = Tally(rp.ctx)
        for t, _before in tallies:
            gone.merge(t)
        gone.remove(parts[1])  # taken away before any merge of the lists
        rest = Tally(rp.ctx)
        rest.add([f for part in parts if part is not parts[1] for f in part])
        assert _state(gone) == _state(rest)
    # every attribute is merged (a count no test data makes non-zero would not show below)
    merged_names = Tally._COUNTS + Tally._VALUES + Tally._SUMS_BY_KEY + Tally._LISTS_BY_KEY + ("eff_agents", "by_agent")
    assert sorted(merged_names) == sorted(_state(whole))
    assert _state(merged) == _state(whole)
    assert _values(merged.result(p.start, p.end, p.days, users)) == _values(whole.result(p.start, p.end, p.days, users))
    assert all(_state(t) == before for t, before in tallies)
    merged.remove(parts[0])  # a merged tally takes facts away like any other
    rest = Tally(rp.ctx)
    rest.add([f for part in parts[1:] for f in part])
    assert _state(merged) == _state(rest)


@pytest.mark.parametrize("sources", [None, {"source": "tasks"}])
def test_a_pass_narrowed_to_filters_equals_a_pass_made_with_them(store, sources):
    """ReportPass.narrow: a pass that filters only the sources, narrowed to an agent, a department,
    a priority (dormant counts split by it), a type with an agent, gives the same report (totals,
    groups) as a pass made with those filters; the first pass is left as it was; a narrowed pass
    is never refreshed, and a filtered pass or other sources cannot be narrowed."""
    report(store)
    base = ReportPass(store, PORTAL, *OCT, filters=sources, config=CONFIG)
    before = dump(base.report("agent"))
    cases = [{"agent": AGENT}, {"department": "2"}, {"priority": "normal"}, {"type": "bug", "agent": "13"}]
    for extra in cases:
        filters = dict(sources or {}, **extra)
        narrowed = base.narrow(filters)
        made = ReportPass(store, PORTAL, *OCT, filters=filters, config=CONFIG)
        for group_by in (None, "priority", "week"):
            assert dump(narrowed.report(group_by)) == dump(made.report(group_by)), (filters, group_by)
        assert narrowed.narrowed and not narrowed.refresh(store, {("task", "1"): 0})
    assert dump(base.report("agent")) == before
    with pytest.raises(ValueError):
        base.narrow({"source": "deals"})
    with pytest.raises(ValueError):
        base.narrow(cases[0]).narrow(cases[1])


def test_a_backfill_keeps_every_tickets_facts_and_reports_then_replay_almost_nothing(store):
    """load.backfill, batch after batch, keeps the facts of every live ticket that has none; a
    report made after it replays only the tickets whose kept facts cannot tell (REPLAY), and equals
    the replay of every ticket."""
    from b24desk.kpi.load import backfill

    clear(store)
    env = ReportEnv(store, PORTAL, CONFIG)
    fp = derived.fingerprint(env.ctx)
    live = "coalesce(deleted, 0) = 0"
    total = store.execute(f"select count(*) from ticket_facts where portal = ? and {live}", [PORTAL]).fetchone()[0]
    kept, after, batches = 0, ("", ""), 0
    while after is not None:
        n, after = backfill(store, PORTAL, env.ctx, after, 500)
        kept, batches = kept + n, batches + 1
    assert kept == total and batches >= total // 500
    assert count(store, f"portal = '{PORTAL}' and ctx = '{fp}' and {live}") == total
    assert backfill(store, PORTAL, env.ctx) == (0, None)  # nothing left
    from b24desk.kpi.load import _load

    p = env.period(*JUN)
    prev = p.previous()
    loaded, missing, _fp = _load(
        store.conn, store, PORTAL, prev.start, p.end, None, env.repeat_window, env.ctx, (prev.end, p.end), True
    )
    assert loaded.tickets and missing == []  # every ticket read off its kept facts or replayed for REPLAY only
    assert dump(report(store, JUN)) == dump(reference(store, JUN))


def test_a_pass_that_did_not_list_its_counted_tickets_declines_a_write_to_one(store):
    """Without ``keep_keys`` (build_report's pass) the counts are not listed ticket by ticket: a
    write to an old open ticket the pass did not read may be in them, so refresh declines."""
    from b24desk.store import journal_state

    report(store)
    seq = journal_state(store.conn)[0]
    rp = ReportPass(store, PORTAL, *OCT, config=CONFIG)
    rp.slim()
    assert rp.loaded.dormant_rows and rp.loaded.dormant_keys is None
    _wake(store, get_ticket(store, PORTAL, "task", "d0"))
    store.conn.commit()
    ok, _seq, changed = _refresh(store, rp, seq)
    assert not ok and ("task", "d0") in changed


# --- 6. the weekly series reads off only the tickets whose log goes on past a week ------------


def _week_edges(db) -> None:
    """Two October tickets on a week's edge (weeks start on Mondays: October 5, 12): one resolved
    at the very moment a week ends (open as of that end), one created and resolved in a week as
    ``normal`` and made ``high`` two weeks later (a ``normal`` filter counts it in its week only)."""
    bundles = []
    for sid, fix in (("w1", None), ("w2", "priority")):
        t = Ticket(PORTAL, "task", sid, type="bug", author_id="c31", customer="c31", responsible_id="13")
        t.created_at, t.priority = ts("2026-10-06 10:00"), "high" if fix else "normal"
        done = ts("2026-10-12 00:00") if fix is None else ts("2026-10-08 10:00")
        t.state, t.resolved_at, t.closed_at = "resolved", done, done
        evs = [
            Event(PORTAL, "task", sid, "e0", "created", t.created_at, "c31"),
            Event(PORTAL, "task", sid, "e1", "reply", t.created_at + 3600, "13"),
            Event(PORTAL, "task", sid, "e2", "resolved", done, "13"),
        ]
        if fix:
            evs.append(
                Event(PORTAL, "task", sid, "e3", "field_changed", ts("2026-10-20 10:00"), "13", fix, "normal", "high")
            )
        bundles.append(Bundle(t, evs))
    with db.atomic():
        save_bundles(db, bundles)


@pytest.mark.parametrize("period", [OCT, JUN, Q3])
@pytest.mark.parametrize("filters", [None, {"priority": "normal"}])
def test_weekly_series_from_period_facts_equal_every_ticket_replayed_per_week(store, period, filters):
    """The weekly series takes a ticket whose last event is before a week's end from its period
    facts (nothing changed it since): the series equals the one that replays every ticket of the
    window from its events week by week, while reading off few tickets per week."""
    from b24desk.kpi.drilldown import Replay
    from reports.query import weeks

    _week_edges(store)
    report(store, period)  # every candidate's facts kept
    rp = ReportPass(store, PORTAL, *period, filters=filters, config=CONFIG)
    replay = Replay.of_pass(rp)
    bounds = weeks(rp.period.start, rp.period.end, "Europe/Moscow")
    read = []
    facts_of = replay.loaded.facts
    replay.loaded.facts = lambda t, *a: read.append(t) or facts_of(t, *a)
    fast = replay.series(bounds)

    slow = Replay.of_pass(rp)
    slow.loaded = load(store, PORTAL, *rp.window, repeat_window=rp.env.repeat_window)  # no rows: replays
    assert not slow.loaded.stored and not slow.loaded.dormant_rows
    expected = []
    for start, end in bounds:  # the series' meaning, window by window
        fs = slow.facts_between(start, end)
        c = [f for f in fs if f.in_c]
        r = [f for f in fs if f.in_r]
        expected.append(
            {
                "start": start,
                "end": end,
                "created": len(c),
                "resolved": len(r),
                "first_response_time": summary(
                    max(0, f.first_reply - f.t["created_at"]) for f in c if f.first_reply is not None
                ),
                "resolution_time": summary(f.resolution_at - f.t["created_at"] for f in r),
            }
        )
    assert dump(fast) == dump(expected)
    assert sum(w["resolved"] for w in fast) > 0 and sum(w["created"] for w in fast) > 0
    per_week = sum(len(slow.facts_between(s, e)) for s, e in bounds)
    assert len(read) < per_week / 2  # most tickets were not read off week by week
