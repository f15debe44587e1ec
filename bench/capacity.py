"""Benchmark: the capacity report over a year of history, on generated stores of 100k and 1M tickets.

    python bench/capacity.py [--sizes 100000 1000000] [--dir /tmp] [--fresh]

The store is written directly with SQLite: a year of tickets up to 2026-11-02 (70 % tasks and
deals, 30 % open-line dialogs) with a weekly and daily pattern and a rising trend, and per ticket a
reply, a status change, a resolution and, on some tasks, tracked time, by 60 agents. For each size
it times ``build_capacity`` over the whole year (52 weeks, 4 weeks ahead; best of 3) and, in the
same run, a straightforward baseline: read every ticket and event of the year into Python, place
each in its local weekday and hour with ``datetime.fromtimestamp``, count agents per hour with
sets, then the same forecasts and Erlang C. The two must give the same arrivals and agents.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from b24desk.capacity import build_capacity  # noqa: E402
from b24desk.capacity import forecast as fc  # noqa: E402
from b24desk.capacity.erlang import agents_needed  # noqa: E402
from b24desk.capacity.report import AGENT_KINDS  # noqa: E402
from b24desk.capacity.slots import weekly_counts  # noqa: E402
from b24desk.store import open_db  # noqa: E402

PORTAL = "bench"
TZ = ZoneInfo("Europe/Moscow")
END = int(datetime(2026, 11, 2, tzinfo=TZ).timestamp())  # a Monday
START = int(datetime(2025, 11, 3, tzinfo=TZ).timestamp())  # 52 weeks before
FROM, TO = "2025-11-03", "2026-11-02"
CONFIG = {"calendar": {"timezone": "Europe/Moscow"}, "targets": {"first_response_time": {"target": 600}}}
DAY = (1.0, 1.0, 0.95, 0.95, 0.85, 0.3, 0.2)
HOUR = [0.05] * 7 + [0.3, 0.6] + [1.0] * 4 + [0.8] + [0.95] * 4 + [0.5, 0.3, 0.2, 0.1, 0.08, 0.05]


def _times(rnd, n):
    """``n`` creation times with the weekly/daily pattern and a 30 % rise over the year."""
    out = []
    span = END - START
    while len(out) < n:
        ts = START + int(rnd.random() * span)
        dt = datetime.fromtimestamp(ts, TZ)
        w = DAY[dt.weekday()] * HOUR[dt.hour] * (0.77 + 0.23 * (ts - START) / span)
        if rnd.random() < w:
            out.append(ts)
    out.sort()
    return out


def generate(path: Path, n: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    db = open_db(path)
    db.execute("PRAGMA synchronous=OFF")
    agents = [str(i) for i in range(10, 70)]
    db["departments"].insert_all(
        [{"portal": PORTAL, "id": str(d), "name": f"Dept {d}", "parent": None if d == 1 else "1"} for d in range(1, 4)],
        pk=("portal", "id"),
    )
    db["users"].insert_all(
        [
            {"portal": PORTAL, "id": a, "name": f"Agent {a}", "departments": f"[{int(a) % 2 + 2}]", "is_bot": 0}
            for a in agents
        ],
        pk=("portal", "id"),
    )
    conn = db.conn
    cols = [
        "portal",
        "source",
        "source_id",
        "title",
        "priority",
        "author_id",
        "customer",
        "responsible_id",
        "created_at",
        "resolved_at",
        "closed_at",
        "state",
        "line",
        "deleted",
    ]
    tickets, events = [], []

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

    for i, created in enumerate(_times(rnd, n)):
        r = rnd.random()
        source = "openlines" if r < 0.3 else "task" if r < 0.75 else "crm:2"
        sid = str(i)
        cust = f"c{rnd.randrange(max(n // 3, 1))}"
        resp = rnd.choice(agents)
        t = created + int(rnd.expovariate(1 / (300 if source == "openlines" else 3600))) + 1
        evs = [("created", created, cust, None, None, None), ("reply", t, resp, None, None, None)]
        if source != "openlines":
            t2 = t + int(rnd.expovariate(1 / 1800)) + 1
            evs.append(("status", t2, resp, "STATUS", "2", "3"))
            if source == "task" and rnd.random() < 0.3:
                evs.append(("worked", t2, resp, None, None, str(rnd.randrange(300, 3600))))
        closed = t + int(rnd.expovariate(1 / (900 if source == "openlines" else 86400))) + 60
        state = "resolved" if closed < END + 86400 * 30 else "open"
        if state == "resolved":
            evs.append(("resolved", closed, resp, None, None, None))
        tickets.append(
            (
                PORTAL,
                source,
                sid,
                f"T{i}",
                "normal",
                cust,
                cust,
                resp,
                created,
                closed if state == "resolved" else None,
                closed if state == "resolved" else None,
                state,
                "1" if source == "openlines" else None,
                0,
            )
        )
        for k, e in enumerate(evs):
            events.append((PORTAL, source, sid, f"e{k}", *e))
        if len(tickets) >= 50_000:
            flush()
    flush()
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()


def baseline(db) -> dict:
    """The straightforward way: every ticket and event of the year through Python objects."""
    created_slot, per_hour, per_date, daily = defaultdict(int), defaultdict(set), defaultdict(set), defaultdict(int)
    chat_slot = defaultdict(int)
    authors = {}
    for source, sid, created, author in db.conn.execute(
        "select source, source_id, created_at, author_id from tickets where portal = ?", [PORTAL]
    ):
        authors[(source, sid)] = author
        if START <= created < END:
            dt = datetime.fromtimestamp(created, TZ)
            created_slot[(dt.isoweekday(), dt.hour)] += 1
            daily[dt.date().toordinal()] += 1
            if source == "openlines":
                chat_slot[(dt.isoweekday(), dt.hour)] += 1
    for source, sid, kind, at, actor in db.conn.execute(
        "select source, source_id, kind, at, actor_id from events where portal = ?", [PORTAL]
    ):
        if kind in AGENT_KINDS and START <= at < END and actor and actor != authors.get((source, sid)):
            dt = datetime.fromtimestamp(at, TZ)
            per_hour[(dt.date(), dt.hour)].add(actor)
            per_date[dt.date()].add(actor)
    weeks = 52
    arrivals = {k: v / weeks for k, v in created_slot.items()}
    active = defaultdict(float)
    for (d, h), s in per_hour.items():
        active[(d.isoweekday(), h)] += len(s) / weeks
    series = [n for _w, n in weekly_counts(dict(daily))]
    fc.weekly(series, 4)
    fc.daily([daily[d] for d in sorted(daily)][-84:], 28)
    for slot, n in chat_slot.items():
        agents_needed(n / weeks, 300, 600, 0.8)
    return {"arrivals": arrivals, "active": dict(active)}


def best_of(fn, n=3):
    """Best wall and CPU seconds of ``n`` runs (the CPU figure is the one to read on a shared machine)."""
    best, cpu, out = math.inf, math.inf, None
    for _ in range(n):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        best, cpu = min(best, time.perf_counter() - t), min(cpu, time.process_time() - c)
    return (best, cpu), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args()
    print(f"{'tickets':>9} {'events':>9} {'capacity s (cpu)':>17} {'baseline s (cpu)':>17} {'speed-up':>9}  same")
    for n in args.sizes:
        path = Path(args.dir) / f"b24desk-capacity-bench-{n}.db"
        if args.fresh or not path.exists():
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            t = time.perf_counter()
            generate(path, n)
            print(f"  (generated {n} tickets in {time.perf_counter() - t:.0f} s)", file=sys.stderr)
        db = open_db(path)
        events = db.execute("select count(*) from events").fetchone()[0]
        build_capacity(db, PORTAL, FROM, TO, config=CONFIG)  # warm: imports, page cache
        ours_s, rep = best_of(lambda: build_capacity(db, PORTAL, FROM, TO, config=CONFIG))
        base_s, base = best_of(lambda: baseline(db))
        same = all(
            abs(r["created_per_hour"] - base["arrivals"].get((r["weekday"], r["hour"]), 0)) < 0.0051
            and abs(r["agents_active"] - base["active"].get((r["weekday"], r["hour"]), 0)) < 0.051
            for r in rep["arrivals"]
        )
        print(
            f"{n:>9} {events:>9} {ours_s[0]:>9.2f} ({ours_s[1]:5.2f}) {base_s[0]:>9.2f} ({base_s[1]:5.2f})"
            f" {base_s[1] / ours_s[1]:>8.1f}x  {same}"
        )
        db.conn.close()


if __name__ == "__main__":
    main()
