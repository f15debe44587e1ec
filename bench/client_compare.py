"""fast-bitrix24 vs b24desk.client against the portal double: requests per full list, 429, 401.

    python bench/client_compare.py [--tasks 10000]

Prints the figures the README's design notes quote. The double runs with an effectively
unlimited leaky bucket so that request *counts* are compared, not the throttles.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fast_bitrix24 import Bitrix  # noqa: E402

from b24desk import installations  # noqa: E402
from b24desk.client import B24Client, mask  # noqa: E402
from b24desk.store import open_db  # noqa: E402
from portal_double import PortalDouble  # noqa: E402

logging.getLogger("fast_bitrix24").setLevel(logging.ERROR)
logging.getLogger("b24desk.client").setLevel(logging.ERROR)
SELECT = {"select": ["ID", "TITLE", "STATUS", "CREATED_DATE", "CHANGED_DATE"]}


def _count_subcalls(d, start_filter):
    return sum(1 for m, p in d.stats.log if m == "tasks.task.list" and start_filter(str(p.get("start", "0"))))


def bench_lists(d, n_tasks):
    out = {}
    d.stats.reset()
    t = time.perf_counter()
    fb = Bitrix(d.webhook_url, verbose=False)
    rows = fb.get_all("tasks.task.list", SELECT)
    out["fast-bitrix24 get_all"] = dict(
        seconds=time.perf_counter() - t,
        requests=d.stats.requests,
        rows=len(rows),
        unique=len({int(r["id"]) for r in rows}),
        sub_calls=d.stats.by_method["tasks.task.list"],
        count_queries=_count_subcalls(d, lambda s: s != "-1"),
    )
    d.stats.reset()
    t = time.perf_counter()
    cl = B24Client.from_webhook(d.webhook_url, rps=0)
    rows = list(cl.list_all("tasks.task.list", SELECT))
    out["b24desk list_all"] = dict(
        seconds=time.perf_counter() - t,
        requests=d.stats.requests,
        rows=len(rows),
        unique=len({int(r["id"]) for r in rows}),
        sub_calls=d.stats.by_method["tasks.task.list"],
        count_queries=_count_subcalls(d, lambda s: s != "-1"),
    )
    print(f"\n== full list of tasks.task.list, {n_tasks} tasks (ceil(N/2500)+1 = {math.ceil(n_tasks / 2500) + 1})")
    print(f"{'client':24} {'HTTP req':>8} {'sub-calls':>9} {'COUNT q.':>8} {'rows':>6} {'unique':>6} {'seconds':>8}")
    for k, v in out.items():
        print(
            f"{k:24} {v['requests']:>8} {v['sub_calls']:>9} {v['count_queries']:>8} {v['rows']:>6} "
            f"{v['unique']:>6} {v['seconds']:>8.2f}"
        )
    return out


def bench_429(d):
    print("\n== 429 OPERATION_TIME_LIMIT on tasks.task.list (one injected refusal)")
    d.faults.clear()
    d.stats.reset()
    d.faults.fail_next(1, 429, "OPERATION_TIME_LIMIT", method="tasks.task.list")
    fb = Bitrix(d.webhook_url, verbose=False)
    try:
        fb.call("tasks.task.list", {"select": ["ID"]}, raw=True)
        print("fast-bitrix24: succeeded")
    except Exception as exc:  # what the user would see
        print(
            f"fast-bitrix24: raised {type(exc).__module__}.{type(exc).__name__}: {mask(str(exc))[:90]!r} "
            f"after {d.stats.requests} request(s); no wait, no retry"
            f"{'; its message carries the webhook secret' if d.webhook_url.split('/')[-2] in str(exc) else ''}"
        )
    d.faults.clear()
    sleeps = []
    cl = B24Client.from_webhook(d.webhook_url, rps=0, sleep=sleeps.append)
    reset_at = cl.call_raw("tasks.task.list", {"select": ["ID"]})["time"]["operating_reset_at"]
    d.stats.reset()
    d.faults.fail_next(1, 429, "OPERATION_TIME_LIMIT", method="tasks.task.list")
    cl.call("tasks.task.list", {"select": ["ID"]})
    print(
        f"b24desk: waited {sleeps[-1]:.0f}s (operating_reset_at - now = {reset_at - time.time():.0f}s) "
        f"for that method only, then succeeded; {d.stats.requests} requests"
    )


def bench_401(d):
    print("\n== 401 expired_token in OAuth mode")
    d.faults.clear()
    stale = d.issue_tokens(1)["access_token"]
    d.expire_tokens()
    calls = {"n": 0}

    async def stale_token():
        calls["n"] += 1
        if calls["n"] >= 25:
            raise RuntimeError("bench stop: token_func keeps being called")
        return stale

    d.stats.reset()
    fb = Bitrix(d.client_endpoint, token_func=stale_token, verbose=False)
    t = time.perf_counter()
    try:
        fb.call("server.time", {}, raw=True)
        outcome = "succeeded"
    except RuntimeError as exc:
        outcome = f"still looping ({exc})"
    print(
        f"fast-bitrix24, token_func returning a rejected token: {outcome}; token_func called {calls['n']} times, "
        f"{d.stats.requests} requests in {time.perf_counter() - t:.2f}s; it never gives up on its own"
    )

    fresh = d.issue_tokens(1)
    d.expire_tokens()

    async def refreshing():
        # what a user must write: refresh, AND persist the rotated refresh token themselves
        return installations.request_tokens(d.oauth_token_url, d.client_id, d.client_secret, fresh["refresh_token"])[
            "access_token"
        ]

    d.stats.reset()
    fb = Bitrix(d.client_endpoint, token_func=refreshing, verbose=False)
    fb.call("server.time", {}, raw=True)
    print(
        f"fast-bitrix24, token_func that refreshes: works, {d.stats.by_method['oauth.token']} refresh(es); "
        f"the rotated refresh token is dropped unless token_func stores it (blocking I/O inside async)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "b.db")
        db = open_db(path)
        installations.save_installation(db, **d.issue_tokens(1))
        old = installations.get_installation(db, d.member_id)["refresh_token"]
        db.conn.close()
        d.expire_tokens()
        d.stats.reset()
        cl = B24Client.from_installation(
            path, d.member_id, d.client_id, d.client_secret, oauth_url=d.oauth_token_url, rps=0
        )
        cl.call("server.time")
        db = open_db(path)
        new = installations.get_installation(db, d.member_id)["refresh_token"]
        db.conn.close()
        print(
            f"b24desk: {d.stats.by_method['oauth.token']} refresh under the lock, {d.stats.requests} REST requests, "
            f"rotated pair persisted: {new != old}"
        )


def bench_event_loop(d):
    print("\n== called from inside a running event loop")
    fb = Bitrix(d.webhook_url, verbose=False)
    cl = B24Client.from_webhook(d.webhook_url, rps=0)

    async def inside():
        a = fb.call("server.time", {}, raw=True)
        b = cl.call("server.time")
        if asyncio.isfuture(a) or asyncio.iscoroutine(a):
            a.cancel() if asyncio.isfuture(a) else a.close()
        return type(a).__name__, type(b).__name__

    a, b = asyncio.run(inside())
    print(f"fast-bitrix24 returned a {a}; b24desk returned a {b}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=10000)
    args = ap.parse_args()
    d = PortalDouble(seed=1, tickets=args.tasks * 2, drain_per_s=1e6).start()
    try:
        n = len(d.portal.task_list)
        bench_lists(d, n)
        bench_429(d)
        bench_401(d)
        bench_event_loop(d)
    finally:
        d.stop()


if __name__ == "__main__":
    main()
