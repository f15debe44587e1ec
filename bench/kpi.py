"""Benchmark: one monthly KPI report on generated stores of 100k and 1M tickets.

    python bench/kpi.py [--sizes 100000 1000000] [--dir /tmp] [--fresh]

The store is written directly with SQLite (not via HTTP): tickets spread over five years up to
2026-11, a few events each (created, replies, comments, transfers, status changes, resolutions,
reopens), ratings on some. For each size it times ``build_report`` for one month (best of
``--repeat`` runs, or of as many as fill ``--fill`` CPU seconds, with its previous month, as the
product computes it) and measures its peak Python memory (tracemalloc,
in a separate run so the timing is not slowed by tracing). Beside it, in the same run, the
baseline: a straightforward loop in Python over *every* ticket and event of the store, replaying
each with the same maths; its numbers must equal the report's. Target: under 1 s for 1M tickets,
cost growing with the tickets in the period, not with the store.

Shapes: ``--shapes 100000x5 1000000x2 ...`` (tickets x years of history up to 2026-11; the default
is 100k and 1M over five years) and ``--months 1 6`` (period lengths ending with October 2026).
After the per-run table comes the growth table: for each shape and period, the tickets in the
store, the tickets the store read for the period (candidates), the tickets in the period (A: open
at some moment of it), the report's seconds and peak MiB, each as a multiple of the first row, so
a cost that follows the store rather than the period shows at a glance (e.g. 100000x5 against
1000000x50: the same monthly volume with ten times the history).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import time
import tracemalloc
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from b24desk.kpi import build_report  # noqa: E402
from b24desk.kpi.engine import aggregate, ticket_facts  # noqa: E402
from b24desk.kpi.load import TICKET_COLUMNS  # noqa: E402
from b24desk.kpi.report import ReportEnv  # noqa: E402
from b24desk.store import facts_placeholders, facts_triggers, m_kpi_journal_001, open_db  # noqa: E402

PORTAL = "bench"
TZ = ZoneInfo("Europe/Moscow")
END = int(datetime(2026, 11, 1, tzinfo=TZ).timestamp())
NOW = int(datetime(2026, 11, 20, tzinfo=TZ).timestamp())  # sync time: later events exist
YEAR = 365 * 86400
CONFIG = {
    "calendar": {"timezone": "Europe/Moscow"},
    "sla": {"resolution_business_seconds": {"critical": 14400, "high": 32400, "normal": 97200, "low": 194400}},
}


def periods(months: int, years: float) -> list[tuple[str, str, str]]:
    """The last ``months`` months before 2026-11, and the same length in the middle of the history."""

    def back(y: int, m: int, k: int) -> tuple[int, int]:
        m -= k
        while m < 1:
            y, m = y - 1, m + 12
        return y, m

    y, m = back(2026, 11, months)
    latest = (f"{y:04d}-{m:02d}-01", "2026-11-01", f"latest {months} mo")
    mid = back(2026, 11, int(years * 6) + months)
    mend = back(mid[0], mid[1], -months)
    middle = (f"{mid[0]:04d}-{mid[1]:02d}-01", f"{mend[0]:04d}-{mend[1]:02d}-01", f"mid-history {months} mo")
    return [latest, middle]


def generate(path: Path, n: int, seed: int = 7, years: float = 5) -> None:
    """Write a store of ``n`` tickets (about 5 events each) over ``years`` before 2026-11 at ``path``."""
    span = int(years * YEAR)
    rnd = random.Random(seed)
    db = open_db(path)
    db.execute("PRAGMA synchronous=OFF")
    # a generated store needs no change journal while it is written (reports/cache.py); its
    # triggers are put back at the end
    for (name,) in db.execute(
        "select name from sqlite_master where type = 'trigger' and (name like 'kpi_j_%' or name like 'kpi_f_%')"
    ).fetchall():
        db.execute(f"drop trigger {name}")
    agents = [str(i) for i in range(10, 50)]
    db["departments"].insert_all(
        [{"portal": PORTAL, "id": str(d), "name": f"Dept {d}", "parent": None if d == 1 else "1"} for d in range(1, 6)],
        pk=("portal", "id"),
    )
    db["users"].insert_all(
        [
            {"portal": PORTAL, "id": a, "name": f"Agent {a}", "departments": f"[{int(a) % 4 + 2}]", "is_bot": 0}
            for a in agents
        ],
        pk=("portal", "id"),
    )
    customers = max(n // 3, 1)
    start = END - span
    cols = [
        "portal",
        "source",
        "source_id",
        "title",
        "type",
        "priority",
        "author_id",
        "customer",
        "responsible_id",
        "created_at",
        "deadline",
        "resolved_at",
        "closed_at",
        "state",
        "rating",
        "handle_time",
        "deleted",
    ]
    tickets, events = [], []
    conn = db.conn

    def flush():
        conn.executemany(f"insert into tickets ({', '.join(cols)}) values ({', '.join('?' * len(cols))})", tickets)
        conn.executemany(
            "insert into events (portal, source, source_id, key, kind, at, actor_id, field,"
            " from_value, to_value) values (?,?,?,?,?,?,?,?,?,?)",
            events,
        )
        conn.commit()
        tickets.clear()
        events.clear()

    priorities = ["low", "normal", "normal", "normal", "high", "critical"]
    # Rows are written in creation order, as a sync writes them (ID order first, then as they come).
    created_times = sorted(start + int(rnd.random() * span) for _ in range(n))
    for i, created in enumerate(created_times):
        source = "task" if rnd.random() < 0.7 else "crm:2"
        sid = str(i)
        cust = f"c{rnd.randrange(customers)}"
        resp = rnd.choice(agents)
        evs = [("created", created, cust, None, None, None)]
        t = created
        if rnd.random() < 0.9:
            t += int(rnd.expovariate(1 / 1800)) + 1
            evs.append(("reply", t, resp, None, None, None))
        if rnd.random() < 0.3:
            t += int(rnd.expovariate(1 / 3600)) + 1
            evs.append(("customer_message" if rnd.random() < 0.5 else "comment", t, cust, None, None, None))
        if rnd.random() < 0.1:
            t += int(rnd.expovariate(1 / 3600)) + 1
            new = rnd.choice(agents)
            evs.append(("assigned", t, "1", "RESPONSIBLE_ID", resp, new))
            resp = new
        state, resolved_at, closed_at, rating = "open", None, None, None
        if rnd.random() > 0.01:  # 1 % are left open for good
            t += int(rnd.expovariate(1 / (2 * 86400))) + 60
            rounds = 2 if rnd.random() < 0.05 else 1
            for r in range(rounds):
                if t >= NOW:
                    break
                if source == "task":
                    evs.append(("status", t, resp, "STATUS", "3" if r == 0 else "2", "5"))
                evs.append(("resolved", t, resp, None, None, None))
                state, resolved_at, closed_at = "resolved", t, t
                if r + 1 < rounds:
                    t += int(rnd.expovariate(1 / 86400)) + 60
                    if t >= NOW:
                        break
                    if source == "task":
                        evs.append(("status", t, cust, "STATUS", "5", "2"))
                    evs.append(("reopened", t, cust, None, None, None))
                    state, resolved_at, closed_at = "open", None, None
                    t += int(rnd.expovariate(1 / 86400)) + 60
            if state == "resolved" and rnd.random() < 0.4:
                rating = rnd.choice([1, 3, 4, 5, 5, 5])
        deadline = created + 3 * 86400 if rnd.random() < 0.5 else None
        tickets.append(
            (
                PORTAL,
                source,
                sid,
                f"T{i}",
                rnd.choice(["bug", "question", "access"]),
                rnd.choice(priorities),
                cust,
                cust,
                resp,
                created,
                deadline,
                resolved_at,
                closed_at,
                state,
                rating,
                rnd.choice([None, 600, 1200]),
                0,
            )
        )
        for k, (kind, at, actor, fld, fv, tv) in enumerate(evs):
            events.append((PORTAL, source, sid, f"e{k}", kind, at, actor, fld, fv, tv))
        if len(tickets) >= 50_000:
            flush()
    flush()
    m_kpi_journal_001(db)
    facts_triggers(db)
    facts_placeholders(db)
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()


def baseline(db, date_from: str, date_to: str) -> dict:
    """The straightforward way: stream every ticket and event of the store, replay each in Python."""
    env = ReportEnv(db, PORTAL, CONFIG)
    period = env.period(date_from, date_to)
    prev = period.previous()
    history: dict = {}
    cur_facts, prev_facts = [], []
    ev_iter = db.conn.execute(
        "select source, source_id, at, key, kind, actor_id, field, from_value, to_value from events"
        " where portal = ? order by source, source_id",
        [PORTAL],
    )
    pending = next(ev_iter, None)
    rows = db.conn.execute(
        f"select {', '.join(TICKET_COLUMNS)}, deleted from tickets where portal = ? order by source, source_id",
        [PORTAL],
    )
    ctx = env.ctx
    for row in rows:
        t = dict(zip(TICKET_COLUMNS, row))
        key = (t["source"], t["source_id"])
        evs = []
        while pending is not None and (pending[0], pending[1]) <= key:
            if (pending[0], pending[1]) == key:
                evs.append((pending[2], pending[3]) + tuple(pending[4:]))
            pending = next(ev_iter, None)
        if row[-1]:
            continue
        evs.sort()
        evs = [(e[0],) + e[2:] for e in evs]
        if t["customer"] is not None and prev.start - env.repeat_window <= t["created_at"] < period.end:
            history.setdefault(t["customer"], []).append(t["created_at"])
        for p, out in ((period, cur_facts), (prev, prev_facts)):
            f = ticket_facts(t, evs, p.start, p.end, ctx)
            if f is not None:
                out.append(f)
    for v in history.values():
        v.sort()
    ctx.customer_history = history
    cur = aggregate(cur_facts, period.start, period.end, period.days, ctx, env.users)
    old = aggregate(prev_facts, prev.start, prev.end, prev.days, ctx, env.users)
    return {"value": {k: v.value for k, v in cur.items()}, "previous": {k: v.value for k, v in old.items()}}


def timed(fn, repeat: int = 3, fill: float = 0.0) -> tuple[float, float, object]:
    """Best wall-clock and best CPU seconds of ``repeat`` runs (CPU time is steadier on a busy box),
    or of as many as fill ``fill`` CPU seconds: the best of five 25 ms reports samples an eighth of
    a second, and one slow stretch of the machine moved a 5-vs-50-years ratio from 1.08x to 1.27x."""
    best, best_cpu, result = float("inf"), float("inf"), None
    runs, spent = 0, 0.0
    while runs < repeat or spent < fill:
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        best = min(best, time.perf_counter() - t0)
        cpu = time.process_time() - c0
        best_cpu, spent, runs = min(best_cpu, cpu), spent + cpu, runs + 1
    return best, best_cpu, result


def peak_mib(fn) -> float:
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def parse_shape(text: str) -> tuple[int, float]:
    n, _, years = text.lower().partition("x")
    return int(n.replace("_", "")), float(years or 5)


def candidates(db, date_from: str, date_to: str) -> int:
    """How many ticket rows the engine's loader reads one by one for the period and its previous
    one (the open tickets untouched since before them are counted in SQL: derived.dormant)."""
    from b24desk.kpi.derived import fingerprint
    from b24desk.kpi.load import candidate_query

    env = ReportEnv(db, PORTAL, CONFIG)
    p = env.period(date_from, date_to)
    prev = p.previous()
    sql, params = candidate_query(PORTAL, prev.start, p.end, dormant_ctx=fingerprint(env.ctx))
    return db.conn.execute(f"select count(*) from ({sql})", params).fetchone()[0]


def without_cells(db, date_from: str, date_to: str) -> dict:
    """``build_report`` as it was before the settled cells: every ticket of the periods read (and,
    the gaps nulled before, the customers' history too)."""
    from b24desk.kpi.report import ReportPass, paused_gc

    with paused_gc():
        return ReportPass(db, PORTAL, date_from, date_to, config=CONFIG).report(None)


def build_cells(db, date_from: str, date_to: str) -> int:
    """Every ticket's gap, then the settled cells of the period's and the previous period's pieces,
    their months' rollups and as-of cells (what the warmer keeps after its backfill, reports/warm.py;
    the first report kept the facts of their tickets). Returns the tickets the cells hold."""
    from b24desk.kpi import cells, derived

    while derived.fill_gaps(db, PORTAL, 50_000):
        pass
    env = ReportEnv(db, PORTAL, CONFIG)
    p = env.period(date_from, date_to)
    cells.build(db, PORTAL, env.ctx, p.previous().start, p.end)
    return db.conn.execute(
        "select coalesce(sum(n), 0) from settled_cells where stale = 0 and kind != 'rollup'"
    ).fetchone()[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", help="tickets per store over 5 years (= --shapes NxN5)")
    ap.add_argument(
        "--shapes",
        nargs="+",
        default=None,
        metavar="TICKETSxYEARS",
        help="stores as tickets x years of history (default 100000x5 1000000x5)",
    )
    ap.add_argument("--months", type=int, nargs="+", default=[1], help="period lengths in months")
    ap.add_argument("--mid", action="store_true", help="also a period in the middle of the history")
    ap.add_argument("--repeat", type=int, default=5, help="report runs per figure (best is kept)")
    ap.add_argument("--fill", type=float, default=2.0, help="... or as many as fill these CPU seconds")
    ap.add_argument("--rounds", type=int, default=8, help="turns over the stores in the interleaved table")
    ap.add_argument("--dir", default="/tmp", help="where the generated stores are kept between runs")
    ap.add_argument("--fresh", action="store_true", help="regenerate the stores")
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args(argv)
    shapes = (
        [parse_shape(x) for x in args.shapes]
        if args.shapes
        else [(n, 5.0) for n in (args.sizes or [100_000, 1_000_000])]
    )

    rows = []
    load0 = f"{os.getloadavg()[0]:.1f}"
    for n, years in shapes:
        path = store_path(args.dir, n, years)
        if args.fresh or not path.exists():
            path.unlink(missing_ok=True)
            t0 = time.perf_counter()
            generate(path, n, years=years)
            print(
                f"generated {n:,} tickets over {years:g} years in {time.perf_counter() - t0:.0f} s: {path}",
                file=sys.stderr,
            )
        db = open_db(path)
        for months in args.months:
            for date_from, date_to, what in periods(months, years)[: 2 if args.mid else 1]:
                # the first report after a write replays what changed and keeps each ticket's facts
                # (b24desk/kpi/derived.py): timed once from none kept, then the steady state
                db.conn.execute("update ticket_facts set ctx = null, ver = ver + 1 where portal = ?", [PORTAL])
                # and no gaps (derived.fill_gaps): the customers' history is read, as before them
                db.conn.execute("update ticket_facts set gap = null where portal = ?", [PORTAL])
                db.conn.commit()
                first_s, first_cpu, _ = timed(lambda: build_report(db, PORTAL, date_from, date_to, config=CONFIG), 1)
                # the same before the settled cells (b24desk/kpi/cells.py): every ticket read
                plain_s, plain_cpu, _ = timed(lambda: without_cells(db, date_from, date_to), args.repeat, args.fill)
                plain_mem = peak_mib(lambda: without_cells(db, date_from, date_to))
                # the warmer's cells of the two periods' pieces, then the steady state
                c0 = time.process_time()
                celled = build_cells(db, date_from, date_to)
                cells_cpu = time.process_time() - c0
                secs, cpu, report = timed(
                    lambda: build_report(db, PORTAL, date_from, date_to, config=CONFIG), args.repeat, args.fill
                )
                mem = peak_mib(lambda: build_report(db, PORTAL, date_from, date_to, config=CONFIG))
                k = report["kpis"]
                row = {
                    "tickets": n,
                    "years": years,
                    "period": f"{date_from[:7]} ({what})",
                    "created": k["tickets_total"]["value"],
                    "active": k["task_efficiency"]["n"],
                    "loaded": candidates(db, date_from, date_to),
                    "first_s": first_s,
                    "first_cpu_s": first_cpu,
                    "report_s": secs,
                    "report_cpu_s": cpu,
                    "report_mib": mem,
                    "plain_s": plain_s,
                    "plain_cpu_s": plain_cpu,
                    "plain_mib": plain_mem,
                    "celled": celled,
                    "cells_cpu_s": cells_cpu,
                }
                if not args.no_baseline:
                    bsecs, bcpu, base = timed(lambda: baseline(db, date_from, date_to), repeat=1)
                    row["baseline_s"], row["baseline_cpu_s"] = bsecs, bcpu
                    row["baseline_mib"] = peak_mib(lambda: baseline(db, date_from, date_to)) if n <= 100_000 else None
                    mine = {
                        "value": {key: e["value"] for key, e in k.items() if key != "ccei"},
                        "previous": {key: e["previous"] for key, e in k.items() if key != "ccei"},
                    }
                    same = json.dumps(mine, sort_keys=True, default=str) == json.dumps(
                        base, sort_keys=True, default=str
                    )
                    row["same_numbers"] = same
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
        db.conn.close()

    def show(table):
        widths = [max(len(str(x[i])) for x in table) for i in range(len(table[0]))]
        for line in table:
            print("  ".join(str(c).rjust(widths[i]) if i != 2 else str(c).ljust(widths[i]) for i, c in enumerate(line)))

    dash = "\u2014"
    head = [
        "tickets",
        "years",
        "period",
        "created",
        "active",
        "first report CPU s",
        "report s",
        "report CPU s",
        "report peak MiB",
        "no cells CPU s",
        "no cells MiB",
        "in cells",
        "baseline s",
        "baseline CPU s",
        "baseline peak MiB",
        "same numbers",
    ]
    table = [head]
    for r in rows:
        table.append(
            [
                f"{r['tickets']:,}",
                f"{r['years']:g}",
                r["period"],
                f"{r['created']:,}",
                f"{r['active']:,}",
                f"{r['first_cpu_s']:.3f}",
                f"{r['report_s']:.3f}",
                f"{r['report_cpu_s']:.3f}",
                f"{r['report_mib']:.1f}",
                f"{r['plain_cpu_s']:.3f}",
                f"{r['plain_mib']:.1f}",
                f"{r['celled']:,}",
                dash if r.get("baseline_s") is None else f"{r['baseline_s']:.2f}",
                dash if r.get("baseline_cpu_s") is None else f"{r['baseline_cpu_s']:.2f}",
                dash if r.get("baseline_mib") is None else f"{r['baseline_mib']:.1f}",
                dash if "same_numbers" not in r else ("yes" if r["same_numbers"] else "NO"),
            ]
        )
    show(table)
    print(
        "first report = the first build_report with no per-ticket facts kept (it replays every"
        " ticket it reads and keeps their facts, as after a full sync); report = the steady state:"
        " build_report for the period and its previous period, best of"
        f" {args.repeat} runs or of as many as fill {args.fill:g} CPU s, reading the kept cells"
        " (b24desk/kpi/cells.py) that hold 'in cells' of their"
        " tickets (settled ones, and a month's others as of its end); no cells = the same report"
        " reading every ticket (the engine before the cells), same"
        " run; baseline = a Python loop over every ticket and event of the store, same maths,"
        " one run. active = A, the tickets open at some moment of the period."
    )
    print(
        "Peak memory is tracemalloc's (Python heap), in a separate run; the baseline's is measured at"
        f" 100k only (tracing 5M events is slow). Load average during the run: {load0} -> {os.getloadavg()[0]:.1f}"
        f" on {os.cpu_count()} CPUs."
    )

    # growth: each figure as a multiple of the first row's
    print("\n== growth (x the first row): does the cost follow the period or the store?")
    first = rows[0]
    print("(CPU seconds: on a shared machine wall time swings with the load; the ratios use CPU time)")
    g = [
        [
            "tickets in store",
            "years",
            "period",
            "read for period+prev",
            "in period (A)",
            "report CPU s",
            "peak MiB",
            "baseline CPU s",
            "store x",
            "read x",
            "in period x",
            "report x",
            "MiB x",
            "baseline x",
        ]
    ]

    def x(a, b):
        return f"{a / b:.2f}" if a is not None and b else dash

    for r in rows:
        g.append(
            [
                f"{r['tickets']:,}",
                f"{r['years']:g}",
                r["period"],
                f"{r['loaded']:,}",
                f"{r['active']:,}",
                f"{r['report_cpu_s']:.3f}",
                f"{r['report_mib']:.1f}",
                dash if r.get("baseline_cpu_s") is None else f"{r['baseline_cpu_s']:.2f}",
                x(r["tickets"], first["tickets"]),
                x(r["loaded"], first["loaded"]),
                x(r["active"], first["active"]),
                x(r["report_cpu_s"], first["report_cpu_s"]),
                x(r["report_mib"], first["report_mib"]),
                x(r.get("baseline_cpu_s"), first.get("baseline_cpu_s")),
            ]
        )
    show(g)
    if len(shapes) > 1:
        print(
            f"\n== the same steady-state reports, the stores taken in turn ({args.rounds} rounds of best of"
            f" {args.repeat} each, one process): the rows above are timed one after the other, each after"
            " different work (earlier stores, baselines), which moves a 25 ms report by up to 15 %"
        )
        t = [["tickets in store", "years", "period", "report CPU s", "report x"]]
        for months in args.months:
            best = interleaved(args.dir, shapes, months, args.repeat, args.rounds)
            ref = best[0][2]
            for (n, years), (what, _, cpu) in zip(shapes, best):
                t.append([f"{n:,}", f"{years:g}", what, f"{cpu:.4f}", x(cpu, ref)])
        show(t)
    return 0 if all(r.get("same_numbers", True) for r in rows) else 1


def store_path(folder: str, n: int, years: float) -> Path:
    """Where ``--shapes`` N x YEARS is kept between runs (5 years: the older name)."""
    return Path(folder) / (f"b24desk-bench-kpi-{n}.db" if years == 5 else f"b24desk-bench-kpi-{n}x{years:g}y.db")


def interleaved(folder: str, shapes: list, months: int, repeat: int, rounds: int) -> list[tuple[str, str, float]]:
    """``(period, its dates, best CPU s)`` of each shape's latest ``months`` report, the stores
    taken in turn ``rounds`` times (best of ``repeat`` each turn), so every store's report runs
    after the same work as the others'."""
    dbs = [open_db(store_path(folder, n, years)) for n, years in shapes]
    spans = [periods(months, years)[0] for _n, years in shapes]
    best = [float("inf")] * len(dbs)
    try:
        for _ in range(rounds):
            for i, (db, (date_from, date_to, _what)) in enumerate(zip(dbs, spans)):
                _s, cpu, _r = timed(lambda: build_report(db, PORTAL, date_from, date_to, config=CONFIG), repeat)
                best[i] = min(best[i], cpu)
    finally:
        for db in dbs:
            db.conn.close()
    return [(f"{a[:7]} ({what})", f"{a} .. {b}", cpu) for (a, b, what), cpu in zip(spans, best)]


if __name__ == "__main__":
    sys.exit(main())
