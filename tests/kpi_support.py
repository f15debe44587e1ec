"""Builders for the KPI tests: hand-written tickets and event logs written through the store."""

from __future__ import annotations

from datetime import datetime

from b24desk.model import Bundle, Event, Ticket
from b24desk.store import save_bundle

PORTAL = "p1"
CONFIG = {"calendar": {"timezone": "Europe/Moscow"}, "sla": {}}


def ts(s: str) -> int:
    """``"2026-10-02 10:00"`` (Moscow, +03:00) or a full ISO string -> unix seconds."""
    if "+" not in s[10:] and not s.endswith("Z"):
        s = s.replace(" ", "T") + "+03:00"
    return int(datetime.fromisoformat(s).timestamp())


def add_ticket(db, sid, created, author, responsible, events=(), source="task", **fields):
    """One ticket; ``events`` are ``(time, kind, actor[, field, from, to])`` tuples."""
    t = Ticket(
        portal=fields.pop("portal", PORTAL),
        source=source,
        source_id=str(sid),
        title=f"T{sid}",
        author_id=author,
        customer=fields.pop("customer", author),
        responsible_id=responsible,
        created_at=ts(created) if isinstance(created, str) else created,
        **fields,
    )
    evs = [Event(t.portal, source, str(sid), "e:0", "created", t.created_at, author)]
    for i, e in enumerate(events, 1):
        when, kind, actor, *rest = e
        fld, fv, tv = (rest + [None, None, None])[:3]
        evs.append(
            Event(
                t.portal,
                source,
                str(sid),
                f"e:{i:03d}",
                kind,
                ts(when) if isinstance(when, str) else when,
                actor,
                fld,
                None if fv is None else str(fv),
                None if tv is None else str(tv),
            )
        )
    save_bundle(db, Bundle(ticket=t, events=evs, snapshot={"sid": sid, "n": len(evs)}), observed_at=1)
    return t


def close(when, by, frm="3", to="5", with_status=True, with_event=True):
    """A task reaching a closed status: the status change and/or the adapter's ``resolved`` event."""
    out = []
    if with_status:
        out.append((when, "status", by, "STATUS", frm, to))
    if with_event:
        out.append((when, "resolved", by))
    return out


def reopen(when, by, frm="5", to="2", with_status=True, with_event=True):
    out = []
    if with_status:
        out.append((when, "status", by, "STATUS", frm, to))
    if with_event:
        out.append((when, "reopened", by))
    return out


def one_portal_statistics(db, stats: dict) -> None:
    """Make the planner see the store as ANALYZE sees a big store of one portal: ``stats`` is
    ``{table: {index: sqlite_stat1 text}}`` (every index on ``(portal, ...)`` then looks alike,
    which is when a query picks the wrong one)."""
    db.execute("ANALYZE")
    for tbl, rows in stats.items():
        db.execute("delete from sqlite_stat1 where tbl = ?", [tbl])
        for idx, stat in rows.items():
            db.execute("insert into sqlite_stat1 values (?, ?, ?)", [tbl, idx, stat])
    db.conn.commit()
    db.execute("ANALYZE sqlite_schema")  # load them
