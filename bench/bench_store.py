"""The benchmark store shared by bench/pages.py, bench/saved_reports.py and the tests that need a big
store (no benchmark here): N synthetic tickets over two years, an installation, an admin with a session."""

from __future__ import annotations

import os
import random
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from b24desk.model import Event, Ticket
from b24desk.store import open_db

PORTAL = "bench0000000000000000000000000001"
NOW = int(datetime(2026, 11, 15, tzinfo=timezone.utc).timestamp())


def seed_store(db, n: int, *, now: int, seed: int = 7) -> None:
    """N synthetic tickets over the two years before ``now`` (bulk inserts, one transaction)."""
    rnd = random.Random(seed)
    deps = [
        {"portal": PORTAL, "id": str(i), "name": f"Line {i}", "parent": "1" if i > 1 else None, "head": str(100 + i)}
        for i in range(1, 7)
    ]
    users = [
        {
            "portal": PORTAL,
            "id": str(100 + i),
            "name": f"Head{i}",
            "last_name": "",
            "departments": f"[{i}]",
            "active": 1,
            "is_bot": 0,
        }
        for i in range(1, 7)
    ]
    agents = [str(200 + i) for i in range(60)]
    users += [
        {
            "portal": PORTAL,
            "id": a,
            "name": f"Agent{a}",
            "last_name": "",
            "active": 1,
            "is_bot": 0,
            "departments": f"[{2 + i % 5}]",
        }
        for i, a in enumerate(agents)
    ]
    span = 730 * 86400
    tickets, events = [], []
    prios = ["low", "normal", "normal", "normal", "high", "critical"]
    for i in range(n):
        sid = str(i + 1)
        created = now - span + int(i * span / n) + rnd.randint(0, 3600)
        agent = rnd.choice(agents)
        author = f"c{rnd.randint(1, n // 3)}"
        t = Ticket(
            portal=PORTAL,
            source="task",
            source_id=sid,
            title=f"Ticket {sid}",
            priority=rnd.choice(prios),
            author_id=author,
            customer=author,
            responsible_id=agent,
            created_at=created,
            url=f"/company/personal/user/0/tasks/task/view/{sid}/",
            selector="tasks",
        )
        ev = [Event(PORTAL, "task", sid, "h:c", "created", created, author)]
        ev.append(Event(PORTAL, "task", sid, "h:a", "assigned", created, author, None, None, agent))
        at = created + rnd.randint(60, 7200)
        for k in range(rnd.randint(0, 3)):
            if at < now:
                ev.append(Event(PORTAL, "task", sid, f"c:{k}", "reply", at, agent))
            at += rnd.randint(600, 20000)
        if rnd.random() < 0.15 and at < now:
            other = rnd.choice(agents)
            ev.append(Event(PORTAL, "task", sid, "h:t", "assigned", at, agent, None, agent, other))
            t.responsible_id = other
            at += rnd.randint(600, 20000)
        # A real desk closes nearly everything: a backlog of old tickets is the exception.
        p_close = 0.995 if created < now - 30 * 86400 else 0.6
        if rnd.random() < p_close and at < now:
            ev.append(Event(PORTAL, "task", sid, "h:s", "status", at, t.responsible_id, "STATUS", "3", "5"))
            t.state, t.resolved_at, t.closed_at = "resolved", at, at
            if rnd.random() < 0.4:
                t.rating = rnd.choice([1, 5, 5, 5])
        tickets.append(t.row() | {"synced_at": now})
        events += [e.row() for e in ev]
    with db.atomic():
        db["departments"].insert_all(deps, pk=("portal", "id"), replace=True)
        db["users"].insert_all(users, pk=("portal", "id"), replace=True)
        db["tickets"].insert_all(tickets, pk=("portal", "source", "source_id"), replace=True, batch_size=2000)
        db["events"].insert_all(events, pk=("portal", "source", "source_id", "key"), replace=True, batch_size=5000)
        db["installations"].insert(
            {
                "member_id": PORTAL,
                "domain": "bench.bitrix24.example",
                "client_endpoint": "https://bench.bitrix24.example/rest/",
                "application_token": "bench",
                "timezone": "Europe/Moscow",
                "active": 1,
            },
            pk="member_id",
            replace=True,
        )
    db.execute("analyze")


def prepare_store(db_arg: str | None, tickets: int, prefix: str) -> tuple[Path, str | None]:
    """The store at ``db_arg`` (or a new temporary one, also returned), seeded unless it already
    holds exactly ``tickets`` tickets of the benchmark portal."""
    tmp = None
    if db_arg:
        path = Path(db_arg)
    else:
        tmp = tempfile.mkdtemp(prefix=prefix)
        path = Path(tmp) / "bench.db"
    db = open_db(path)
    # (bench/pages.py adds one live ticket, "live-1", to write to: not part of the seeded store)
    have = db.execute("select count(*) from tickets where portal = ? and source_id != 'live-1'", [PORTAL]).fetchone()[0]
    if have != tickets:
        t0 = time.perf_counter()
        db.execute("delete from tickets where portal = ?", [PORTAL])
        db.execute("delete from events where portal = ?", [PORTAL])
        seed_store(db, tickets, now=NOW)
        print(f"seeded {tickets} tickets in {time.perf_counter() - t0:.1f} s -> {path}")
    db.conn.close()
    return path, tmp


def admin_viewer(path):
    """The benchmark admin: viewer tokens are bound to an installation's epoch, an admin's to a
    server-side session; both are made here."""
    from b24desk.installations import ensure_epoch, get_installation, save_installation
    from b24desk.viewer import ADMIN, Viewer, open_sessions, save_session

    db = open_db(path)
    get_installation(db, PORTAL) or save_installation(
        db, member_id=PORTAL, client_endpoint="http://127.0.0.1:9/rest/", domain="127.0.0.1:9", active=1
    )
    admin_v = Viewer(portal=PORTAL, user_id="101", role=ADMIN, name="Admin", epoch=ensure_epoch(db, PORTAL))
    sessions = open_sessions(str(path))
    save_session(sessions, admin_v, "0" * 32, None, admin=True, now=time.time())
    sessions.conn.close()
    db.conn.close()
    return admin_v


def remove_store(tmp: str | None, keep: bool) -> None:
    """Delete a temporary store made by prepare_store (unless ``keep``)."""
    if tmp and not keep:
        for f in Path(tmp).iterdir():
            f.unlink()
        os.rmdir(tmp)
