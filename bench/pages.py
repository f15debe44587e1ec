"""p50/p95 latency of the dashboard page and ``GET /api/kpi`` on a 100k-ticket store (issue 5).

    python bench/pages.py [--tickets 100000] [--runs 30] [--base-runs 5] [--db PATH] [--keep]

Builds (or reuses, with --db) a store of N tickets spread over two years, each with a short
event log (created, assigned, replies, a transfer now and then, resolution, rating), 60 agents in
six departments; then times, through the real Flask app (test client, no network), the last full
month's dashboard and ``/api/kpi`` as an admin and as an agent: the uncached computation
(baseline: nothing memoized, no engine pass kept), the first call (cold), the first call after a
write to the store (stale-served for pages, recomputed for the exact ``/api/kpi``; reports/cache.py),
calls with no write between (warm) and, for ``/api/kpi``, the call after a write inside the period
(the kept engine pass re-reads the written ticket: reports/data.py). Prints a table beside the
target: p95 < 200 ms (warm, and stale-served for pages).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_store import NOW, PORTAL, admin_viewer, prepare_store, remove_store  # noqa: E402

from b24desk.store import open_db  # noqa: E402

TARGET_MS = 200.0


def pct(values, p):
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickets", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--base-runs", type=int, default=5, help="uncached runs per case (about a second each)")
    ap.add_argument("--db", help="store to build or reuse")
    ap.add_argument("--keep", action="store_true", help="keep the temporary store")
    args = ap.parse_args(argv)

    from app import create_app
    from b24desk.viewer import AGENT, Viewer, dump_token

    now = NOW
    path, tmp = prepare_store(args.db, args.tickets, "b24desk-bench-")
    db = open_db(path)
    events = db.execute("select count(*) from events where portal = ?", [PORTAL]).fetchone()[0]
    db.conn.close()
    admin_v = admin_viewer(path)
    agent_v = Viewer(portal=PORTAL, user_id="210", role=AGENT, departments=("3",), epoch=admin_v.epoch)

    app = create_app({"DB": str(path), "SECRET_KEY": "bench", "TESTING": True})
    client = app.test_client()
    admin = dump_token("bench", admin_v)
    agent = dump_token("bench", agent_v)
    q = "from=2026-10-01&to=2026-11-01"
    cases = [
        ("dashboard, admin", f"/reports/dashboard?{q}&t={admin}", None),
        ("dashboard, agent", f"/reports/dashboard?{q}&t={agent}", None),
        ("/api/kpi, admin", f"/api/kpi?{q}", admin),
        ("/api/kpi group_by=agent", f"/api/kpi?{q}&group_by=agent", admin),
        ("/api/kpi, agent", f"/api/kpi?{q}", agent),
    ]
    from reports import data

    def timed(url, headers):
        t0 = time.perf_counter()
        r = client.get(url, headers=headers)
        ms = (time.perf_counter() - t0) * 1000
        if r.status_code != 200:
            raise SystemExit(f"{url}: HTTP {r.status_code} {r.get_data(as_text=True)[:200]}")
        return ms, r

    touches = iter(range(10**9))
    run_id = time.time_ns()  # a reused --db keeps earlier runs' events: keys must not repeat them

    def write():
        """What the inbox worker writes on an event about a live ticket: one of this month's
        tickets (after the reported period) re-saved with a new event. It changes no figure of
        the reported month; reports/cache.py can tell (its change journal) and keeps the entry."""
        n = next(touches)
        conn = sqlite3.connect(str(path))
        with conn:
            conn.execute(
                "insert or replace into tickets (portal, source, source_id, title, priority, author_id,"
                " customer, responsible_id, created_at, state, selector, synced_at)"
                " values (?, 'task', 'live-1', 'Live ticket', 'normal', 'c1', 'c1', '201', ?, 'open',"
                " 'tasks', ?)",
                [PORTAL, now - 3600, now + n],
            )
            added = conn.execute(
                "insert or ignore into events (portal, source, source_id, key, kind, at, actor_id)"
                " values (?, 'task', 'live-1', ?, 'comment', ?, '201')",
                [PORTAL, f"c:{run_id}:{n}", now + n],
            ).rowcount
        if added != 1:
            raise SystemExit("the write outside the period wrote nothing")
        conn.close()

    inside_at = int(datetime(2026, 10, 20, tzinfo=timezone.utc).timestamp())

    def write_inside():
        """A write that does touch the period: a comment on a ticket created in it (exact callers
        must recompute)."""
        n = next(touches)
        conn = sqlite3.connect(str(path))
        with conn:
            row = conn.execute(
                "select source_id from tickets where portal = ? and created_at >= ? limit 1", [PORTAL, inside_at]
            ).fetchone()
            added = conn.execute(
                "insert or ignore into events (portal, source, source_id, key, kind, at, actor_id)"
                " values (?, 'task', ?, ?, 'comment', ?, '201')",
                [PORTAL, row[0], f"w:{run_id}:{n}", inside_at + n],
            ).rowcount
        if added != 1:
            raise SystemExit("the write inside the period wrote nothing")
        conn.close()

    def stats(times):
        return f"{statistics.median(times):8.1f} {pct(times, 95):8.1f}"

    print(
        f"store: {args.tickets} tickets, {events} events; period 2026-10; baseline {args.base_runs} runs, "
        f"stale and warm {args.runs} runs each"
    )
    print(
        "baseline = the uncached computation (memo cleared before each request); cold = first request;\n"
        "stale = first request after a write to a ticket of the current month (outside the period: the\n"
        "memo's change journal keeps the entry, exact; a write inside would recompute /api/kpi and\n"
        "serve pages stale while recomputing); warm = no write since the last computation"
    )
    print(
        f"{'case':26} {'base p50':>8} {'base p95':>8} {'cold':>8} {'stl p50':>8} {'stl p95':>8} "
        f"{'warm p50':>8} {'warm p95':>8}  target p95 < {TARGET_MS:.0f} ms"
    )

    # the first dashboard with no per-ticket facts kept (b24desk/kpi/derived.py): what the warm-up
    # after a full sync pays once; every figure below runs with them kept, as after that warm-up
    def forget_facts():
        conn = sqlite3.connect(str(path))
        with conn:
            conn.execute("update ticket_facts set ctx = null, ver = ver + 1 where portal = ?", [PORTAL])
        conn.close()

    def uncached():
        """Nothing memoized and no engine pass kept (reports/data.py's PASSES)."""
        data.MEMO.clear()
        data.PASSES.clear()

    # an older month (June) opened first with no facts kept, and after the warmer's backfill
    june = f"/reports/dashboard?from=2026-06-01&to=2026-07-01&t={admin}"
    forget_facts()
    uncached()
    june_cold = timed(june, {})[0]
    forget_facts()
    uncached()
    first_ms = timed(cases[0][1], {})[0]
    print(f"first dashboard (admin) with no per-ticket facts kept: {first_ms:.0f} ms; they are kept after it")
    from reports.warm import backfill_facts

    t0, c0 = time.perf_counter(), time.process_time()
    kept = backfill_facts(app, PORTAL, pause=0)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    uncached()
    june_warm = timed(june, {})[0]
    conn = sqlite3.connect(str(path))
    celled, n_cells, n_rollups = conn.execute(
        "select coalesce(sum(n), 0), count(*), (select count(*) from settled_cells where portal = ?1 and stale = 0"
        " and kind = 'rollup') from settled_cells where portal = ?1 and stale = 0 and kind != 'rollup'",
        [PORTAL],
    ).fetchone()
    conn.close()
    print(
        f"backfill after it (reports/warm.py): {kept:,} tickets' facts kept and {celled:,} settled tickets in"
        f" {n_cells:,} cells and {n_rollups:,} months' rollups (b24desk/kpi/cells.py) in {cpu:.1f} CPU s"
        f" ({wall:.1f} s wall); June's dashboard"
        f" opened first: {june_cold:.0f} ms with no facts kept, {june_warm:.0f} ms after the backfill"
    )
    # the baseline of the cells, same run: the uncached dashboards read every ticket of the period
    real = data._with_cells
    data._with_cells = lambda *a: False
    for name, url, _bearer in cases[:2]:
        base = []
        for _ in range(args.base_runs):
            uncached()
            base.append(timed(url, {})[0])
        print(f"{name + ', no cells':26} {stats(base)}  (baseline: every ticket of the period read)")
    data._with_cells = real
    worst = 0.0
    for name, url, bearer in cases:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        base = []
        for _ in range(args.base_runs):
            uncached()
            base.append(timed(url, headers)[0])
        uncached()
        cold = timed(url, headers)[0]
        stale, served_stale = [], 0
        for _ in range(args.runs):
            write()
            ms, r = timed(url, headers)
            stale.append(ms)
            served_stale += "X-B24desk-Stale" in r.headers
            data.MEMO.wait_idle(120)
        warm = [timed(url, headers)[0] for _ in range(args.runs)]
        exact = name.startswith("/api")
        if exact:  # a write inside the period: the exact answer is recomputed from the kept pass
            inside = []
            for _ in range(args.runs):
                write_inside()
                inside.append(timed(url, headers)[0])
            inside_note = (
                f"  after a write inside the period (kept pass refreshed): p50/p95"
                f" {statistics.median(inside):.0f}/{pct(inside, 95):.0f} ms"
            )
        else:  # a write inside the period: the page is served stale, recomputed in the background
            inside = []
            for _ in range(args.runs):
                write_inside()
                t0 = time.perf_counter()
                timed(url, headers)
                data.MEMO.wait_idle(120)
                inside.append((time.perf_counter() - t0) * 1000)
            inside_note = (
                f"  after a write inside the period, served stale then recomputed in the background in:"
                f" p50/p95 {statistics.median(inside):.0f}/{pct(inside, 95):.0f} ms"
            )
        worst = max(worst, pct(warm, 95), 0 if exact else pct(stale, 95))
        print(
            f"{name:26} {stats(base)} {cold:8.1f} {stats(stale)} {stats(warm)}  "
            f"{'ok' if pct(warm, 95) < TARGET_MS and (exact or pct(stale, 95) < TARGET_MS) else 'OVER'}"
            f"  ({served_stale}/{args.runs} stale-served){inside_note}"
        )
    remove_store(tmp, args.keep)
    return 0 if worst < TARGET_MS else 2


if __name__ == "__main__":
    sys.exit(main())
