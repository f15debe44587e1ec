"""b24desk's sync vs a naive client vs the floor, for N tasks with history, comments and elapsed time.

    python bench/sync.py [--tasks 10000] [--seed 1] [--naive-limit 0]

- **floor**: ceil(N/2500) list requests (50 chained keyset pages per batch) + one batched request
  per 50 tasks per detail method (history, comments, elapsed time): the issue's yardstick. b24desk
  goes under it by reading elapsed items only for tasks whose ``timeSpentInLogs`` is above zero.
- **b24desk**: ``run_sync`` of the ``tasks`` selector into a fresh store (directory and portal
  clock included), then one incremental sync after 5 changes.
- **naive**: one call per list page (``start=0,50,...``) and one call per task per detail method,
  mapped and stored the same way (the shape of a straightforward integration).

``--new-card``: the portal has the new task card (tasks >= 25.700.0, DOCS api-reference/tasks/tasks-new.md):
``task.commentitem.getlist`` answers an empty list, comments are task-chat messages. Its floor adds
one batched request per 50 tasks for the chat ids (``tasks.task.get``, the only method the docs name
for them) and reads each chat (``im.dialog.messages.get``, 50 chats a batch; a chat longer than 50
messages needs more) in place of the comment list; the naive client there reads one chat per task.

Both run in the same process against the same portal double (leaky bucket effectively off, so the
*counts* are compared); seconds are measured here, and projected at the cloud limit of 2 requests
per second after a burst of 50 (DOCS limits.md), which is what the counts cost on a real portal.
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from b24desk.client import B24Client  # noqa: E402
from b24desk.sources.base import Page  # noqa: E402
from b24desk.sources.task_mapping import SELECT, map_task, messages_from_chat, messages_from_comments  # noqa: E402
from b24desk.store import open_db, save_bundles  # noqa: E402
from b24desk.sync import run_sync  # noqa: E402
from portal_double import PortalDouble  # noqa: E402

logging.getLogger("b24desk").setLevel(logging.ERROR)


def at_cloud_limit(requests: int, burst: int = 50, rps: float = 2.0) -> float:
    return max(0, requests - burst) / rps


def naive_sync(d: PortalDouble, db, limit: int = 0, new_card: bool = False) -> dict:
    """Page by page with ``start``, then history, comments and elapsed time one call per task."""
    c = B24Client.from_webhook(d.webhook_url, rps=0, share_limiter=False)
    portal = c.portal_id
    d.stats.reset()
    t0 = time.perf_counter()
    start, done = 0, 0
    while True:
        body = c.call_raw("tasks.task.list", {"select": SELECT, "order": {"ID": "ASC"}, "start": start})
        rows = body["result"]["tasks"]
        bundles = []
        for r in rows:
            hist = c.call("tasks.task.history.list", {"taskId": int(r["id"])})["list"]
            if new_card:  # the chat id, then the chat's latest messages
                chat = c.call("tasks.task.get", {"taskId": int(r["id"]), "select": ["ID", "CHAT_ID"]})["task"]
                msgs = c.call("im.dialog.messages.get", {"DIALOG_ID": f"chat{chat['chatId']}", "LIMIT": 50})
                com = messages_from_chat(msgs["messages"])
            else:
                com = messages_from_comments(
                    c.call("task.commentitem.getlist", {"TASKID": int(r["id"]), "ORDER": {"ID": "asc"}})
                )
            spent = c.call("task.elapseditem.getlist", {"TASKID": int(r["id"]), "ORDER": {"ID": "asc"}})
            bundles.append(map_task(portal, r, hist, com, selector="tasks", elapsed=spent))
        with db.atomic():
            save_bundles(db, Page(bundles).bundles)
        done += len(rows)
        if "next" not in body or (limit and done >= limit):
            break
        start = body["next"]
    return {"requests": d.stats.requests, "seconds": time.perf_counter() - t0, "tickets": done}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--new-card", action="store_true", help="a portal with the new task card (task chats)")
    ap.add_argument(
        "--naive-limit",
        type=int,
        default=0,
        help="stop the naive client after this many tasks and extrapolate (0 = all)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary stores (default: removed)")
    a = ap.parse_args(argv)
    n = a.tasks
    t = time.perf_counter()
    d = PortalDouble(
        seed=a.seed,
        tickets=2 * n,
        drain_per_s=1e6,  # half the tickets are tasks
        new_task_card=a.new_card,
    ).start()
    n = len(d.portal.task_list)
    card = "new task card: comments in task chats" if a.new_card else "classic card"
    print(
        f"portal double: {n} tasks with history and comments, {card} (seed {a.seed}), "
        f"generated in {time.perf_counter() - t:.1f}s"
    )
    tmp = Path(tempfile.mkdtemp(prefix="b24desk-bench-"))
    try:
        floor = math.ceil(n / 2500) + 3 * math.ceil(n / 50)
        if a.new_card:  # + chat ids; the chats in place of the comment lists, each page of 50 a command
            pages = sum(max(1, math.ceil(len(ch["messages"]) / 50)) for ch in d.portal.chats.values())
            floor = math.ceil(n / 2500) + 3 * math.ceil(n / 50) + math.ceil(pages / 50)

        db = open_db(tmp / "ours.db")
        c = B24Client.from_webhook(d.webhook_url, rps=0, share_limiter=False)
        d.stats.reset()
        t = time.perf_counter()
        rep = run_sync(c, db, ["tasks"], {})[0]
        ours_s = time.perf_counter() - t
        ours_req = d.stats.requests
        tickets = db.execute("select count(*) from tickets").fetchone()[0]
        events = db.execute("select count(*) from events").fetchone()[0]
        assert tickets == n, (tickets, n)

        p = d.portal
        d.advance(3600)
        open_ids = [x["id"] for x in p.task_list if x["status"] in (2, 3)]
        ids = open_ids[:: max(1, len(open_ids) // 4)][:4]
        p.update_task(ids[0], status=5)
        p.add_task_comment(ids[1], p.task(ids[1])["createdBy"], "any news?")
        p.update_task(ids[2], responsible_id=p.task(ids[3])["responsibleId"])
        p.update_task(ids[3], status=6)
        p.create_task(creator=p.task(ids[0])["createdBy"], responsible=p.task(ids[0])["responsibleId"])
        d.advance(60)
        d.stats.reset()
        inc = run_sync(c, db, ["tasks"], {})[0]
        inc_req = d.stats.requests
        db.conn.close()

        ndb = open_db(tmp / "naive.db")
        naive = naive_sync(d, ndb, a.naive_limit, a.new_card)
        ndb.conn.close()
        scale = n / naive["tickets"] if a.naive_limit else 1.0
        naive_req, naive_s = round(naive["requests"] * scale), naive["seconds"] * scale
        note = "" if scale == 1 else f"  (measured on {naive['tickets']} tasks, scaled x{scale:.1f})"

        print(f"\n== full sync of {n} tasks ({events} events stored)")
        print(f"{'':28} {'HTTP requests':>13} {'seconds here':>13} {'s at 2 req/s':>13}")
        print(
            f"{'floor' + (' (new card)' if a.new_card else ''):28} {floor:>13} {'':>13} {at_cloud_limit(floor):>13.0f}"
        )
        print(f"{'b24desk sync':28} {ours_req:>13} {ours_s:>13.1f} {at_cloud_limit(ours_req):>13.0f}")
        print(f"{'naive client':28} {naive_req:>13} {naive_s:>13.1f} {at_cloud_limit(naive_req):>13.0f}{note}")
        print(
            f"\nb24desk / floor = {ours_req / floor:.3f}  (target <= 1.1); "
            f"naive / b24desk = {naive_req / ours_req:.0f}x"
        )
        print(f"   of which: tasks selector {rep.requests}, users/departments/clock/calendar {ours_req - rep.requests}")
        print(
            f"\n== incremental sync after 5 changes (2 status, 1 comment, 1 transfer, 1 new task): "
            f"{inc_req} HTTP requests, {inc.saved} tickets re-read"
        )
    finally:
        d.stop()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
