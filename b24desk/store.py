"""The SQLite store (sqlite-utils 4): tickets, the event log, snapshots, cursors, installations.

Every table is keyed by ``portal`` (the portal's ``member_id``). Writes that belong together
go through one ``db.atomic()`` block, so a process killed at any point leaves either all of a
page or none of it; event and snapshot inserts are idempotent (primary keys + ``ignore``), so a
re-run after a crash converges on exactly the store a clean run gives.

Open one ``Database`` per thread (sqlite3 connections are bound to their thread): ``open_db``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from .model import Bundle, Event, Ticket, snapshot_hash

migrations = Migrations("b24desk")


@migrations()
def m001_core(db: Database) -> None:
    db["installations"].create(
        {
            "member_id": str,
            "domain": str,
            "client_endpoint": str,
            "server_endpoint": str,
            "access_token": str,
            "refresh_token": str,
            "expires_at": int,
            "application_token": str,
            "scope": str,
            "status": str,
            "user_id": str,
            "webhook_url": str,
            "timezone": str,
            "lang": str,
            "active": int,
            "installed_at": int,
            "updated_at": int,
        },
        pk="member_id",
    )
    db["tickets"].create(
        {
            "portal": str,
            "source": str,
            "source_id": str,
            "title": str,
            "type": str,
            "priority": str,
            "priority_raw": str,
            "author_id": str,
            "customer": str,
            "responsible_id": str,
            "created_at": int,
            "deadline": int,
            "resolved_at": int,
            "closed_at": int,
            "state": str,
            "rating": int,
            "nps": int,
            "ces": int,
            "qa_score": int,
            "channel": str,
            "line": str,
            "handle_time": int,
            "selector": str,
            "url": str,
            "deleted": int,
            "synced_at": int,
        },
        pk=("portal", "source", "source_id"),
    )
    db["tickets"].create_index(["portal", "created_at"])
    db["tickets"].create_index(["portal", "closed_at"])
    db["tickets"].create_index(["portal", "responsible_id"])
    db["events"].create(
        {
            "portal": str,
            "source": str,
            "source_id": str,
            "key": str,
            "kind": str,
            "at": int,
            "actor_id": str,
            "field": str,
            "from_value": str,
            "to_value": str,
        },
        pk=("portal", "source", "source_id", "key"),
    )
    db["events"].create_index(["portal", "at"])
    db["snapshots"].create(
        {
            "portal": str,
            "source": str,
            "source_id": str,
            "hash": str,
            "observed_at": int,
            "data": str,
        },
        pk=("portal", "source", "source_id", "hash"),
    )
    db["cursors"].create(
        {
            "portal": str,
            "selector": str,
            "name": str,
            "value": str,
            "updated_at": int,
        },
        pk=("portal", "selector", "name"),
    )
    db["users"].create(
        {
            "portal": str,
            "id": str,
            "name": str,
            "last_name": str,
            "email": str,
            "active": int,
            "departments": str,
            "user_type": str,
            "is_bot": int,
            "is_admin": int,
        },
        pk=("portal", "id"),
    )
    db["departments"].create(
        {
            "portal": str,
            "id": str,
            "name": str,
            "parent": str,
            "head": str,
            "sort": int,
        },
        pk=("portal", "id"),
    )
    db["settings"].create({"portal": str, "key": str, "value": str, "updated_at": int}, pk=("portal", "key"))
    db["locks"].create({"name": str, "owner": str, "expires_at": float}, pk="name")


class Store(Database):
    """A ``Database`` whose ``atomic()`` takes the write lock up front (``BEGIN IMMEDIATE``).

    sqlite-utils begins deferred transactions: a block that reads, then writes, asks for the write
    lock half way, and when another connection wrote meanwhile SQLite answers ``database is locked``
    at once, whatever the busy timeout (a deferred reader cannot be upgraded in WAL mode). Taken at
    ``BEGIN``, the lock is waited for (the busy timeout applies), so the worker, the scheduler, an
    install and a sync may all write to one store. Nested blocks stay savepoints.
    """

    @contextmanager
    def atomic(self):
        if self.conn.in_transaction:
            with super().atomic():
                yield self
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                self.rollback()
                raise


# What SQLite (or the OS) says when the store cannot be written for now: a read-only file system or
# file, a full disk, an I/O error, or a write lock still held after the busy timeout.
_UNAVAILABLE = (
    "readonly database",
    "read-only",
    "disk is full",
    "disk i/o error",
    "unable to open database",
    "database is locked",
    "no space left",
)
_UNAVAILABLE_ERRNO = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO}


def storage_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the store cannot be written *for now* (full or read-only disk, I/O
    error, a lock held past the busy timeout): the caller answers "retry later" and loses nothing,
    and the store works again once the disk does."""
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return any(k in text for k in _UNAVAILABLE)
    if isinstance(exc, OSError):
        return exc.errno in _UNAVAILABLE_ERRNO or "no space left" in str(exc).lower()
    return False


def open_db(path: str | Path, migrate: bool = True) -> Database:
    """Open the store at ``path`` (WAL, 30 s busy timeout, write lock taken at ``BEGIN``) and
    bring its schema up to date."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30)
    db = Store(conn)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    if migrate and migrations.pending(db):
        # Two processes opening a fresh store at once (server + worker child, CLI beside a server)
        # would race on the same CREATE TABLEs: one applies, the other waits, then finds none pending.
        with open(f"{path}.migrate-lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                migrations.apply(db)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    return db


# --- tickets, events, snapshots -------------------------------------------------------------


def get_ticket(db: Database, portal: str, source: str, source_id: str) -> dict | None:
    rows = list(
        db.query(
            "select * from tickets where portal = ? and source = ? and source_id = ?", [portal, source, str(source_id)]
        )
    )
    return rows[0] if rows else None


_TICKET_COLS = [f.name for f in fields(Ticket)] + ["synced_at"]
_EVENT_COLS = [f.name for f in fields(Event)]
_UPSERT_TICKET = (
    f"insert into tickets ({', '.join(_TICKET_COLS)}) values ({', '.join('?' * len(_TICKET_COLS))}) "
    "on conflict(portal, source, source_id) do update set "
    + ", ".join(f"{c} = excluded.{c}" for c in _TICKET_COLS if c not in ("portal", "source", "source_id"))
)
_INSERT_EVENT = f"insert or ignore into events ({', '.join(_EVENT_COLS)}) values ({', '.join('?' * len(_EVENT_COLS))})"
_INSERT_SNAPSHOT = (
    "insert or ignore into snapshots (portal, source, source_id, hash, observed_at, data) values (?, ?, ?, ?, ?, ?)"
)


def save_bundles(db: Database, bundles, observed_at: int | None = None) -> int:
    """Write tickets with their events and snapshots, one statement per table (the sync's write
    path, a page at a time). The ticket row is upserted, events and snapshots are insert-or-ignore
    on their keys. Call inside ``db.atomic()``. Returns how many snapshots were new."""
    now = int(observed_at if observed_at is not None else time.time())
    conn = db.conn
    conn.executemany(_UPSERT_TICKET, [[getattr(b.ticket, c) for c in _TICKET_COLS[:-1]] + [now] for b in bundles])
    conn.executemany(_INSERT_EVENT, [[getattr(e, c) for c in _EVENT_COLS] for b in bundles for e in b.events])
    before = conn.total_changes
    conn.executemany(
        _INSERT_SNAPSHOT,
        [
            (
                b.ticket.portal,
                b.ticket.source,
                b.ticket.source_id,
                snapshot_hash(b.snapshot),
                now,
                json.dumps(b.snapshot, sort_keys=True, ensure_ascii=False, default=str),
            )
            for b in bundles
        ],
    )
    return conn.total_changes - before


def save_bundle(db: Database, bundle: Bundle, observed_at: int | None = None) -> bool:
    """One ticket through :func:`save_bundles`, in its own atomic block (a savepoint when nested).
    Returns True when its snapshot is new."""
    with db.atomic():
        return save_bundles(db, [bundle], observed_at) == 1


def mark_deleted(db: Database, portal: str, source: str, source_ids) -> int:
    ids = [str(i) for i in source_ids]
    n = 0
    with db.atomic():
        for i in ids:
            cur = db.execute(
                "update tickets set deleted = 1 where portal = ? and source = ? and source_id = ?"
                " and coalesce(deleted, 0) = 0",
                [portal, source, i],
            )
            n += cur.rowcount
    return n


def events_for(db: Database, portal: str, source: str, source_id: str) -> list[dict]:
    return list(
        db.query(
            "select * from events where portal = ? and source = ? and source_id = ? order by at, key",
            [portal, source, str(source_id)],
        )
    )


# --- cursors and settings ------------------------------------------------------------------


def get_cursor(db: Database, portal: str, selector: str, name: str) -> str | None:
    rows = list(
        db.query("select value from cursors where portal = ? and selector = ? and name = ?", [portal, selector, name])
    )
    return rows[0]["value"] if rows else None


def set_cursor(db: Database, portal: str, selector: str, name: str, value) -> None:
    db["cursors"].upsert(
        {
            "portal": portal,
            "selector": selector,
            "name": name,
            "value": None if value is None else str(value),
            "updated_at": int(time.time()),
        },
        pk=("portal", "selector", "name"),
    )


def get_setting(db: Database, portal: str, key: str, default=None):
    rows = list(db.query("select value from settings where portal = ? and key = ?", [portal, key]))
    return json.loads(rows[0]["value"]) if rows else default


def set_setting(db: Database, portal: str, key: str, value) -> None:
    db["settings"].upsert(
        {"portal": portal, "key": key, "value": json.dumps(value, ensure_ascii=False), "updated_at": int(time.time())},
        pk=("portal", "key"),
    )


def portals(db: Database) -> list[str]:
    """Every portal the store knows, from installations and tickets."""
    found = {r["member_id"] for r in db.query("select member_id from installations")}
    found |= {r["portal"] for r in db.query("select distinct portal from tickets")}
    return sorted(found)


def ticket_from_row(row: dict) -> Ticket:
    fields = Ticket.__dataclass_fields__
    return Ticket(**{k: v for k, v in row.items() if k in fields})


@migrations()
def m_inbox_001(db: Database) -> None:
    """The event inbox (b24desk/inbox.py): ``POST /events`` writes one row and answers; the worker
    claims rows (``state`` new -> working -> done/failed) and re-reads the changed objects."""
    db["inbox"].create(
        {
            "id": int,
            "portal": str,
            "event": str,
            "received_at": float,
            "body": str,
            "state": str,
            "attempts": int,
            "claimed_by": str,
            "claimed_at": float,
            "error": str,
            "done_at": float,
        },
        pk="id",
    )
    db["inbox"].create_index(["state", "portal", "id"])


@migrations()
def m_push_001(db: Database) -> None:
    """Pushes (b24desk/push/sentlog.py, b24desk/push/states.py): ``push_log`` is the exactly-once sent-log,
    one row per (portal, report, period, channel, target) written *before* the call (``pending``)
    and marked ``sent`` after it; ``alert_state`` is the last status each alert subject was seen in."""
    db["push_log"].create(
        {
            "portal": str,
            "report": str,
            "period": str,
            "channel": str,
            "target": str,
            "state": str,
            "marker": str,
            "method": str,
            "payload": str,
            "result": str,
            "attempts": int,
            "error": str,
            "created_at": float,
            "updated_at": float,
            "sent_at": float,
        },
        pk=("portal", "report", "period", "channel", "target"),
    )
    db["push_log"].create_index(["portal", "state"])
    db["alert_state"].create(
        {
            "portal": str,
            "level": str,
            "subject": str,
            "kpi": str,
            "status": str,
            "alerted": int,
            "episode": int,
            "value": str,
            "updated_at": float,
        },
        pk=("portal", "level", "subject", "kpi"),
    )


@migrations()
def m_kpi_001(db: Database) -> None:
    """KPI loader (b24desk/kpi/load.py): tickets still open at a period's start are found through
    ``closed_at`` without reading rows, so a report never scans the history before its window."""
    db["tickets"].create_index(["portal", "closed_at", "created_at"], if_not_exists=True)


@migrations()
def m_kpi_002(db: Database) -> None:
    """KPI loader: repeat contacts read (created_at, customer) of a date range from the index alone."""
    db["tickets"].create_index(["portal", "created_at", "customer", "deleted"], if_not_exists=True)


@migrations()
def m_openlines_001(db: Database) -> None:
    """Open-line customers take the CRM and task adapters' keys (``contact:5`` -> ``C_5``,
    ``company:3`` -> ``CO_3``, ``user:7`` -> ``7``), so closed dialogs synced before keep counting as
    the same customer as that contact's deals (repeat contacts)."""
    if "tickets" not in db.table_names():
        return
    for old, new in (("contact:", "C_"), ("company:", "CO_"), ("user:", "")):
        db.execute(
            "update tickets set customer = ? || substr(customer, ?) where source = 'openlines' and customer like ?",
            [new, len(old) + 1, old + "%"],
        )


@migrations()
def m_trust_001(db: Database) -> None:
    """Installation trust (issue 11): ``installations.epoch`` changes on every install and
    uninstall, and viewer tokens carry it, so an uninstall or a re-install ends every viewer
    session (b24desk/viewer.py)."""
    if "epoch" not in db["installations"].columns_dict:
        db["installations"].add_column("epoch", str)
    db.execute("update installations set epoch = lower(hex(randomblob(8))) where epoch is null")


@migrations()
def m_reports_001(db: Database) -> None:
    """Saved reports (b24desk/saved_reports.py): one row per portal and report; the definition is
    JSON, the owner's role and departments at save time bound whom a head's report reaches;
    ``pinned`` puts it on its audience's dashboard, ``digest`` (daily/weekly/monthly) sends it with
    the built-in digests of that kind."""
    db["saved_reports"].create(
        {
            "portal": str,
            "id": str,
            "owner": str,
            "owner_role": str,
            "owner_tree": str,
            "name": str,
            "definition": str,
            "pinned": int,
            "digest": str,
            "created_at": float,
            "updated_at": float,
        },
        pk=("portal", "id"),
        if_not_exists=True,
    )


# --- the change journal: which writes can touch which report periods (reports/cache.py) ----------

JOURNAL_KEEP = 500_000  # rows kept; a memo entry older than the oldest kept recomputes
_WHOLE = -(2**62)  # lo of a change that touches every period of the portal
# settings written by syncs and pushes that no report reads (every other key counts as a change)
JOURNAL_QUIET_SETTINGS = (
    "directory_synced_at",
    "clock_skew",
    "portal_utc_offset",
    "alerts_checked_at",
    "tasks.comments_via",
    "app_id",
    "openlines.crosscheck",
    "openlines.status",
)


_PRUNE = f"DELETE FROM kpi_journal WHERE seq <= (SELECT max(seq) FROM kpi_journal) - {JOURNAL_KEEP};"


def _journal_ticket_sql(portal: str, lo: str, hi: str, key: str = "NEW") -> str:
    return (
        f"INSERT INTO kpi_journal (portal, lo, hi, source, source_id) SELECT {portal}, coalesce({lo}, {_WHOLE}),"
        f" {hi}, {key}.source, {key}.source_id;"
    )


@migrations()
def m_kpi_journal_001(db: Database) -> None:
    """The change journal: every write that can change a report appends ``(portal, lo, hi)``, the
    span of ticket lives it touches (a ticket row: ``created_at`` .. ``closed_at``, open = null;
    an event: its ticket's span; people, settings that reports read, the portal's time zone: the
    whole portal). Triggers write it, so every writer in every process is covered. A report of
    ``[from, to)`` depends only on tickets whose span meets ``[previous from - repeat window, to)``
    (the loader's own condition, b24desk/kpi/load.py), so a cached report stays exact while no
    later journal row meets that window (reports/cache.py). Cost: bulk writes of tickets and
    events take about 4x the CPU (20k tickets + 100k events: 0.45 -> 2.1 s here), invisible beside
    a sync's pace at the portal's 2 requests/s."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS kpi_journal (seq INTEGER PRIMARY KEY, portal TEXT, lo INTEGER, hi INTEGER,"
        " source TEXT, source_id TEXT)"
    )
    journal_triggers(db)


@migrations()
def m_kpi_journal_002(db: Database) -> None:
    """Journal rows of a ticket or event write name the ticket (``source``, ``source_id``; null on
    whole-portal rows), so a kept report pass can re-read just those tickets (ReportPass.refresh, reports/data.py)."""
    cols = {r[1] for r in db.execute("PRAGMA table_info(kpi_journal)").fetchall()}
    for c in ("source", "source_id"):
        if c not in cols:
            db.execute(f"ALTER TABLE kpi_journal ADD COLUMN {c} TEXT")
    journal_triggers(db)


def _add_column(db: Database, table: str, column: str, decl: str) -> None:
    """Add ``column`` (``decl``: its type and constraints) to ``table`` unless it has it (a migration
    run on a store that already has it, or run again)."""
    if column not in db[table].columns_dict:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")


def _create_triggers(db: Database, trig: dict) -> None:
    """(Re)create each trigger of ``trig`` (name -> body)."""
    for name, body in trig.items():
        db.execute(f"DROP TRIGGER IF EXISTS {name}")
        db.execute(f"CREATE TRIGGER {name} {body}")


def journal_triggers(db: Database) -> None:
    """(Re)create the triggers that write the change journal (m_kpi_journal_001)."""
    ev = (
        "SELECT t.portal, coalesce(t.created_at, {w}), t.closed_at, t.source, t.source_id FROM tickets t"
        " WHERE t.portal = {r}.portal AND t.source = {r}.source AND t.source_id = {r}.source_id"
    )
    trig = {
        "kpi_j_tickets_ins": "AFTER INSERT ON tickets BEGIN "
        + _journal_ticket_sql("NEW.portal", "NEW.created_at", "NEW.closed_at")
        + " END",
        "kpi_j_tickets_del": "AFTER DELETE ON tickets BEGIN "
        + _journal_ticket_sql("OLD.portal", "OLD.created_at", "OLD.closed_at", "OLD")
        + " END",
        "kpi_j_tickets_upd": "AFTER UPDATE ON tickets BEGIN "
        + _journal_ticket_sql(
            "NEW.portal",
            "min(coalesce(OLD.created_at, NEW.created_at), coalesce(NEW.created_at, OLD.created_at))",
            "CASE WHEN OLD.closed_at IS NULL OR NEW.closed_at IS NULL THEN NULL"
            " ELSE max(OLD.closed_at, NEW.closed_at) END",
        )
        # a ticket that changes its key (never done by the app): the old key is a change too
        + " INSERT INTO kpi_journal (portal, lo, hi, source, source_id) SELECT OLD.portal,"
        f" coalesce(OLD.created_at, {_WHOLE}), NULL, OLD.source, OLD.source_id"
        " WHERE OLD.source IS NOT NEW.source OR OLD.source_id IS NOT NEW.source_id OR OLD.portal IS NOT NEW.portal;"
        " END",
    }
    for name, row in (("kpi_j_events_ins", "NEW"), ("kpi_j_events_del", "OLD"), ("kpi_j_events_upd", "NEW")):
        op = {"ins": "INSERT", "del": "DELETE", "upd": "UPDATE"}[name[-3:]]
        trig[name] = (
            f"AFTER {op} ON events BEGIN INSERT INTO kpi_journal (portal, lo, hi, source, source_id) "
            + ev.format(w=_WHOLE, r=row)
            + "; END"
        )
    whole = "INSERT INTO kpi_journal (portal, lo, hi) VALUES ({p}, " + str(_WHOLE) + ", NULL);"
    people = {
        "users": ("name", "last_name", "email", "active", "departments", "user_type", "is_bot", "is_admin"),
        "departments": ("name", "parent", "head", "sort"),
    }
    for table, cols in people.items():
        changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in cols)
        trig[f"kpi_j_{table}_ins"] = f"AFTER INSERT ON {table} BEGIN {whole.format(p='NEW.portal')} END"
        trig[f"kpi_j_{table}_del"] = f"AFTER DELETE ON {table} BEGIN {whole.format(p='OLD.portal')} END"
        trig[f"kpi_j_{table}_upd"] = f"AFTER UPDATE ON {table} WHEN {changed} BEGIN {whole.format(p='NEW.portal')} END"
    quiet = ", ".join("'" + k + "'" for k in JOURNAL_QUIET_SETTINGS)
    trig["kpi_j_settings_ins"] = (
        f"AFTER INSERT ON settings WHEN NEW.key NOT IN ({quiet}) BEGIN {whole.format(p='NEW.portal')} END"
    )
    trig["kpi_j_settings_del"] = (
        f"AFTER DELETE ON settings WHEN OLD.key NOT IN ({quiet}) BEGIN {whole.format(p='OLD.portal')} END"
    )
    trig["kpi_j_settings_upd"] = (
        f"AFTER UPDATE ON settings WHEN NEW.key NOT IN ({quiet})"
        f" AND (OLD.value IS NOT NEW.value OR OLD.key IS NOT NEW.key) BEGIN "
        f"{whole.format(p='NEW.portal')} END"
    )
    trig["kpi_j_inst_ins"] = f"AFTER INSERT ON installations BEGIN {whole.format(p='NEW.member_id')} END"
    trig["kpi_j_inst_upd"] = (
        f"AFTER UPDATE ON installations WHEN OLD.timezone IS NOT NEW.timezone BEGIN "
        f"{whole.format(p='NEW.member_id')} END"
    )
    # pruning once every 4096 rows keeps the journal near JOURNAL_KEEP at no cost per write
    trig["kpi_j_prune"] = f"AFTER INSERT ON kpi_journal WHEN NEW.seq % 4096 = 0 BEGIN {_PRUNE} END"
    _create_triggers(db, trig)


def journal_state(
    conn, portal: str | None = None, since: int | None = None, lo: int | None = None, hi: int | None = None
) -> tuple[int, bool] | None:
    """``(last seq, touched)`` in one read: whether a journal row after ``since`` meets the
    portal's ``[lo, hi)`` (or the oldest kept row is newer than ``since``: unknown, so touched).
    None when the store has no journal (not migrated)."""
    try:
        if since is None:
            row = conn.execute("SELECT coalesce(max(seq), 0) FROM kpi_journal").fetchone()
            return int(row[0]), False
        row = conn.execute(
            "SELECT coalesce((SELECT max(seq) FROM kpi_journal), 0), (SELECT min(seq) FROM kpi_journal),"
            " EXISTS (SELECT 1 FROM kpi_journal WHERE seq > ? AND portal = ? AND lo < ?"
            " AND (hi IS NULL OR hi >= ? OR lo >= ?))",
            [since, portal, hi, lo, lo],
        ).fetchone()
    except sqlite3.OperationalError:
        return None
    last, first, touched = int(row[0]), row[1], bool(row[2])
    if (first is not None and first > since + 1 and last > since) or last < since:
        touched = True  # rows after ``since`` pruned, or the journal emptied: cannot tell
    return last, touched


def journal_changes(conn, portal: str, since: int, lo: int, hi: int, limit: int = 2000):
    """``(last seq, changed)``: ``changed`` maps ``(source, source_id)`` of each ticket whose writes
    after ``since`` meet the portal's ``[lo, hi)`` (journal_state's condition) to the lowest ``lo``
    of those rows (how early its life may have begun); None when that cannot be told ticket by
    ticket: a whole-portal change, rows pruned, more than ``limit`` tickets. None instead of the
    pair when the store has no keyed journal."""
    try:
        last, first = conn.execute(  # two subqueries: each an index end (one select of both scans)
            "SELECT coalesce((SELECT max(seq) FROM kpi_journal), 0), (SELECT min(seq) FROM kpi_journal)"
        ).fetchone()
        rows = conn.execute(
            "SELECT source, source_id, min(lo) FROM kpi_journal WHERE seq > ? AND seq <= ? AND portal = ?"
            " AND lo < ? AND (hi IS NULL OR hi >= ? OR lo >= ?) GROUP BY source, source_id LIMIT ?",
            [since, last, portal, hi, lo, lo, limit + 1],
        ).fetchall()
    except sqlite3.OperationalError:
        return None
    if (first is not None and first > since + 1 and last > since) or last < since:
        return last, None  # rows after ``since`` pruned, or the journal emptied
    if len(rows) > limit or any(src is None or sid is None for src, sid, _lo in rows):
        return last, None
    return last, {(src, sid): low for src, sid, low in rows}


@migrations()
def m_capacity_001(db: Database) -> None:
    """Capacity planning (b24desk/capacity/report.py): who acted in which hour is read from this
    index alone (no table rows), a year of a million tickets in one range scan; the users who also
    author tickets (whose own tickets do not count as work) from the second."""
    db["events"].create_index(
        ["portal", "at", "kind", "actor_id", "source", "source_id"], index_name="events_capacity", if_not_exists=True
    )
    db["tickets"].create_index(["portal", "author_id"], index_name="tickets_author", if_not_exists=True)


# --- per-ticket facts kept for reports (b24desk/kpi/derived.py) ---------------------------------

# the ticket columns a whole-log replay reads (b24desk/kpi/engine.py): a change to any of them or to
# one of the ticket's events makes the ticket's kept facts stale
_FACT_TICKET_COLS = (
    "source",
    "author_id",
    "responsible_id",
    "created_at",
    "type",
    "priority",
    "deadline",
    "handle_time",
)
# ticket columns copied beside the facts, so that the open tickets of a portal are read from one
# partial index of ticket_facts alone (derived.dormant, load.candidate_query)
FACT_COPIED_COLS = ("created_at", "closed_at", "deleted", "selector", "channel", "line")
_FACT_KEY = "portal = {r}.portal AND source = {r}.source AND source_id = {r}.source_id"


def facts_triggers(db: Database) -> None:
    """(Re)create the triggers that keep one ``ticket_facts`` row per ticket: a placeholder (``ctx``
    null: no facts kept) when a ticket is inserted, ``ctx`` nulled and ``ver`` bumped when the
    ticket or one of its events is written (so a report that computed facts from an older read
    cannot keep them: derived.save checks ``ver``), the copied columns kept equal to the ticket's,
    the row removed with its ticket. Every writer in every process is covered."""
    copied = ", ".join(FACT_COPIED_COLS)
    new_vals = ", ".join(f"NEW.{c}" for c in FACT_COPIED_COLS)
    sets = ", ".join(f"{c} = NEW.{c}" for c in FACT_COPIED_COLS)
    stale = "UPDATE ticket_facts SET ctx = NULL, ver = ver + 1 WHERE " + _FACT_KEY + ";"
    watched = _FACT_TICKET_COLS + FACT_COPIED_COLS + ("portal", "source_id")
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in dict.fromkeys(watched))
    # no OR REPLACE / OR IGNORE here: the policy of the statement that fires a trigger overrides
    # its body's (an upsert of a ticket would fail), so every statement below is conflict-free
    upsert = (
        "UPDATE ticket_facts SET ctx = NULL, ver = ver + 1, {sets} WHERE {key}; "
        "INSERT INTO ticket_facts (portal, source, source_id, ver, {copied}) SELECT NEW.portal, NEW.source,"
        " NEW.source_id, 0, {new_vals} WHERE NOT EXISTS (SELECT 1 FROM ticket_facts WHERE {key});"
    ).format(sets=sets, key=_FACT_KEY.format(r="NEW"), copied=copied, new_vals=new_vals)
    trig = {
        "kpi_f_tickets_ins": f"AFTER INSERT ON tickets BEGIN {upsert} END",
        "kpi_f_tickets_upd": f"AFTER UPDATE ON tickets WHEN {changed} BEGIN "
        f"DELETE FROM ticket_facts WHERE {_FACT_KEY.format(r='OLD')} AND (OLD.portal IS NOT NEW.portal"
        f" OR OLD.source IS NOT NEW.source OR OLD.source_id IS NOT NEW.source_id); {upsert} END",
        "kpi_f_tickets_del": "AFTER DELETE ON tickets BEGIN DELETE FROM ticket_facts WHERE "
        + _FACT_KEY.format(r="OLD")
        + "; END",
        "kpi_f_events_ins": f"AFTER INSERT ON events BEGIN {stale.format(r='NEW')} END",
        "kpi_f_events_del": f"AFTER DELETE ON events BEGIN {stale.format(r='OLD')} END",
        "kpi_f_events_upd": f"AFTER UPDATE ON events BEGIN {stale.format(r='OLD')} {stale.format(r='NEW')} END",
    }
    _create_triggers(db, trig)


def facts_placeholders(db: Database, portal: str | None = None) -> int:
    """Give every ticket without one its placeholder row (a store written with the triggers off,
    like the benches' generated ones, or older than them). Returns the rows added."""
    copied = ", ".join(FACT_COPIED_COLS)
    where = "" if portal is None else " AND t.portal = ?"
    cur = db.conn.execute(
        f"INSERT INTO ticket_facts (portal, source, source_id, ver, {copied})"
        f" SELECT t.portal, t.source, t.source_id, 0, {', '.join('t.' + c for c in FACT_COPIED_COLS)}"
        " FROM tickets t WHERE NOT EXISTS (SELECT 1 FROM ticket_facts f WHERE f.portal = t.portal"
        f" AND f.source = t.source AND f.source_id = t.source_id){where}",
        [] if portal is None else [portal],
    )
    return cur.rowcount


@migrations()
def m_kpi_facts_001(db: Database) -> None:
    """Per-ticket facts of the whole log (b24desk/kpi/derived.py: a report reads these instead of
    replaying every ticket's events), one row per ticket, keyed by the maths context (``ctx``)
    they were computed under, null while none are kept. Two partial indexes over the open tickets
    (``closed_at`` null) let a report skip, and count in SQL, the open tickets untouched since
    before its period, however many years of them there are."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS ticket_facts (portal TEXT NOT NULL, source TEXT NOT NULL,"
        " source_id TEXT NOT NULL, ctx TEXT, ver INTEGER NOT NULL DEFAULT 0,"
        " created_at INTEGER, closed_at INTEGER, deleted INTEGER, selector TEXT, channel TEXT, line TEXT,"
        " own INTEGER, dkey TEXT, state TEXT, close_at INTEGER, resolution_at INTEGER, n_trans INTEGER,"
        " last_trans_at INTEGER,"
        " last_at INTEGER, first_reply INTEGER, replies INTEGER, interactions INTEGER, transfers INTEGER,"
        " reopens INTEGER, requalified INTEGER, callback INTEGER, resp_created TEXT, resp_end TEXT, type TEXT,"
        " priority TEXT, deadline INTEGER, handle INTEGER, work INTEGER, wait_customer INTEGER, work_b INTEGER,"
        " wait_customer_b INTEGER, frt_b INTEGER, res_b INTEGER, frt_sla_b INTEGER,"
        " PRIMARY KEY (portal, source, source_id)) WITHOUT ROWID"
    )
    # the open tickets: which ones changed since a moment (candidates) ... (both cover their queries,
    # closed_at included, or SQLite reads the table to check the partial index's own condition)
    db.execute(
        "CREATE INDEX IF NOT EXISTS ticket_facts_open ON ticket_facts"
        " (portal, ctx, state, last_at, created_at, deleted, closed_at) WHERE closed_at IS NULL"
    )
    # ... and the untouched ones counted by what filters and groups read (derived.dormant: ``dkey``
    # holds those values as one JSON array, so a group is one comparison)
    db.execute(
        "CREATE INDEX IF NOT EXISTS ticket_facts_dormant ON ticket_facts"
        " (portal, ctx, state, dkey, deadline, last_at, created_at, deleted, selector, closed_at)"
        " WHERE closed_at IS NULL"
    )
    facts_triggers(db)
    facts_placeholders(db)


# what the report filters offer (reports/data.py distinct): these columns' distinct combinations
VALUE_COLUMNS = ("source", "type", "channel", "line")
_VALUE_EXPRS = tuple(f"coalesce({c}, '')" for c in VALUE_COLUMNS)


@migrations()
def m_tickets_values_001(db: Database) -> None:
    """The distinct (source, type, channel, line) of a portal's live tickets, read by skipping
    from one to the next in this index (:func:`distinct_values`): a few dozen seeks instead of a
    scan of every ticket (0.3 s at 1M tickets, on every filter bar after a write)."""
    if "tickets" not in db.table_names():
        return
    db.execute(
        f"CREATE INDEX IF NOT EXISTS tickets_values ON tickets (portal, {', '.join(_VALUE_EXPRS)})"
        " WHERE coalesce(deleted, 0) = 0"
    )


def distinct_values(conn, portal: str) -> list[tuple]:
    """Each distinct ``VALUE_COLUMNS`` combination of the portal's live tickets (None as ''), in
    order: from one combination to the next by an index seek (tickets_values), the last column
    first, then the one before it... (a loose index scan SQLite does not do by itself)."""
    live = "portal = ? and coalesce(deleted, 0) = 0"
    every = ", ".join(_VALUE_EXPRS)
    row = conn.execute(f"select {every} from tickets where {live} order by {every} limit 1", [portal]).fetchone()
    out = []
    while row is not None:
        out.append(row)
        cur, row = row, None
        for k in range(len(_VALUE_EXPRS) - 1, -1, -1):  # the next value of column k, those before equal
            same = "".join(f" and {e} = ?" for e in _VALUE_EXPRS[:k])
            rest = ", ".join(_VALUE_EXPRS[k:])
            row = conn.execute(
                f"select {every} from tickets where {live}{same} and {_VALUE_EXPRS[k]} > ? order by {rest} limit 1",
                [portal, *cur[:k], cur[k]],
            ).fetchone()
            if row is not None:
                break
    return out


# --- settled cells: kept tallies of settled tickets (b24desk/kpi/cells.py) ------------------------

# the ticket columns a kept tally reads besides its facts (engine.Tally): a change to one of them
# (they leave the facts row as it is) makes the ticket's cell stale too
_CELL_TICKET_COLS = ("customer", "rating", "nps", "ces")


def cells_triggers(db: Database) -> None:
    """(Re)create the triggers that keep ``settled_cells`` exact: a member whose facts row is made
    stale (``ver`` bumped: the ticket or an event written) or removed, or whose customer or score
    changes, makes its cell stale and leaves it (kpi/cells.py reads no stale cell)."""
    key = _FACT_KEY.format(r="NEW")
    leave = f"UPDATE ticket_facts SET cell = NULL WHERE {key} AND cell IS NOT NULL;"
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _CELL_TICKET_COLS)
    trig = {
        "kpi_c_facts_upd": "AFTER UPDATE OF ver ON ticket_facts WHEN OLD.cell IS NOT NULL BEGIN"
        f" UPDATE settled_cells SET stale = 1 WHERE id = OLD.cell; {leave} END",
        "kpi_c_facts_del": "AFTER DELETE ON ticket_facts WHEN OLD.cell IS NOT NULL BEGIN"
        " UPDATE settled_cells SET stale = 1 WHERE id = OLD.cell; END",
        "kpi_c_tickets_upd": f"AFTER UPDATE OF {', '.join(_CELL_TICKET_COLS)} ON tickets WHEN {changed} BEGIN"
        f" UPDATE settled_cells SET stale = 1 WHERE id = (SELECT cell FROM ticket_facts WHERE {key}); {leave} END",
    }
    _create_triggers(db, trig)


@migrations()
def m_settled_cells_001(db: Database) -> None:
    """Kept tallies of settled tickets per piece of a week, source and responsible (kpi/cells.py:
    a report of whole pieces merges them instead of reading those tickets), each ticket's cell in
    ``ticket_facts.cell``. Ids are never reused (AUTOINCREMENT): a ticket still naming a cell that
    was made anew never counts as one of the new cell's members."""
    if "ticket_facts" not in db.table_names():
        return
    _add_column(db, "ticket_facts", "cell", "INTEGER")
    db.execute(
        "CREATE TABLE IF NOT EXISTS settled_cells (id INTEGER PRIMARY KEY AUTOINCREMENT, portal TEXT NOT NULL,"
        " fp TEXT NOT NULL, layout INTEGER NOT NULL, piece INTEGER NOT NULL, piece_end INTEGER NOT NULL,"
        " source TEXT, agent TEXT, n INTEGER NOT NULL, tally BLOB NOT NULL, stale INTEGER NOT NULL DEFAULT 0)"
    )
    db.execute("CREATE INDEX IF NOT EXISTS settled_cells_piece ON settled_cells (portal, fp, piece)")
    cells_triggers(db)


@migrations()
def m_settled_cells_002(db: Database) -> None:
    """Cells of a whole month (kpi/cells.py ``kind`` = ``month``): the month's settled tickets that
    are not settled in their piece, for reports that draw no weekly series."""
    if "settled_cells" in db.table_names():
        _add_column(db, "settled_cells", "kind", "TEXT NOT NULL DEFAULT 'piece'")


@migrations()
def m_facts_open_002(db: Database) -> None:
    """``ticket_facts_open`` also holds what the dashboard's "now" panel reads of each open ticket
    (derived.open_now: responsible, priority, type, channel, line, first reply, deadline, selector),
    so the panel reads the index alone instead of one table seek per open ticket (21k at 1M
    tickets: 70 -> 33 ms). Its leading columns, and so the other queries' seeks, are unchanged."""
    if "ticket_facts" not in db.table_names():
        return
    db.execute("DROP INDEX IF EXISTS ticket_facts_open")
    db.execute(
        "CREATE INDEX ticket_facts_open ON ticket_facts (portal, ctx, state, last_at, created_at, deleted,"
        " closed_at, resp_end, priority, type, channel, line, first_reply, deadline, selector)"
        " WHERE closed_at IS NULL"
    )


@migrations()
def m_settled_cells_003(db: Database) -> None:
    """``ticket_facts_created``: every facts row by portal and creation, with its cell. A report
    that reads settled cells walks its window here and steps over each member in the index
    (load.candidate_query), instead of reading each member's ticket and facts rows (1.7 us a
    member). Queries that must not take it say so (``indexed by``, ``+created_at``)."""
    if "ticket_facts" not in db.table_names():
        return
    db.execute("CREATE INDEX IF NOT EXISTS ticket_facts_created ON ticket_facts (portal, created_at, cell, deleted)")


# --- repeat contacts: each ticket's gap to its customer's previous ticket (kpi/derived.py) -------

# the tickets of customer {c} whose gap a ticket at {x} (added there, or gone from there) may change:
# those created at {x} itself (same-second tickets) up to the customer's next live ticket after it
_GAP_SPAN = (
    "SELECT source, source_id FROM tickets WHERE portal = {p} AND customer = {c} AND coalesce(deleted, 0) = 0"
    " AND created_at >= {x} AND created_at <= coalesce((SELECT min(created_at) FROM tickets WHERE portal = {p}"
    " AND customer = {c} AND coalesce(deleted, 0) = 0 AND created_at > {x}), {x})"
)
_GAP_FORGET = (
    "UPDATE ticket_facts SET gap = NULL WHERE portal = {p} AND gap IS NOT NULL"
    " AND (source, source_id) IN (" + _GAP_SPAN + ");"
)


def gaps_triggers(db: Database) -> None:
    """(Re)create the triggers that forget (``gap`` null) the kept gap of every ticket whose
    customer's previous ticket a write may change: a ticket inserted, deleted, or whose customer,
    creation or deletion changes, at its old place and at its new one. A member of a settled cell
    whose gap is forgotten makes its cell stale and leaves it, as a written member does (the
    cell's repeat contacts were counted with it). Every writer in every process is covered."""
    new = _GAP_FORGET.format(p="NEW.portal", c="NEW.customer", x="NEW.created_at")
    old = _GAP_FORGET.format(p="OLD.portal", c="OLD.customer", x="OLD.created_at")
    moved = (
        " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in ("portal", "source", "source_id", "customer", "created_at"))
        + " OR coalesce(OLD.deleted, 0) IS NOT coalesce(NEW.deleted, 0)"
    )
    key = _FACT_KEY.format(r="NEW")
    trig = {
        "kpi_g_tickets_ins": f"AFTER INSERT ON tickets BEGIN {new} END",
        "kpi_g_tickets_del": f"AFTER DELETE ON tickets BEGIN {old} END",
        "kpi_g_tickets_upd": f"AFTER UPDATE ON tickets WHEN {moved} BEGIN {old} {new} END",
        "kpi_g_facts_upd": "AFTER UPDATE OF gap ON ticket_facts WHEN NEW.gap IS NULL AND OLD.gap IS NOT NULL"
        " AND OLD.cell IS NOT NULL BEGIN UPDATE settled_cells SET stale = 1 WHERE id = OLD.cell;"
        f" UPDATE ticket_facts SET cell = NULL WHERE {key}; END",
    }
    _create_triggers(db, trig)


@migrations()
def m_repeat_gaps_001(db: Database) -> None:
    """``ticket_facts.gap``: how long before a ticket its customer's previous live ticket was
    created (0: the same second; -1: none; null: not known yet, the warmer fills it in,
    derived.fill_gaps). A ticket is a repeat contact when its gap is within the repeat window
    (kpi.md), so a report whose tickets all have their gap reads no customer history (a
    month's report at 3M tickets read 375k history rows for it). ``tickets_customer`` finds a
    customer's tickets around a moment (the triggers, the fill); ``ticket_facts_nogap`` the rows
    still to fill."""
    if "ticket_facts" not in db.table_names() or "tickets" not in db.table_names():
        return
    _add_column(db, "ticket_facts", "gap", "INTEGER")
    db.execute(
        "CREATE INDEX IF NOT EXISTS tickets_customer ON tickets (portal, customer, created_at)"
        " WHERE coalesce(deleted, 0) = 0"
    )
    db.execute("CREATE INDEX IF NOT EXISTS ticket_facts_nogap ON ticket_facts (portal) WHERE gap IS NULL")
    gaps_triggers(db)


# the columns of a kept facts row (b24desk/kpi/derived.py COLUMNS, in its order)
FACT_COLUMNS = (
    "state", "close_at", "resolution_at", "first_reply", "replies", "interactions", "transfers", "reopens",
    "requalified", "callback", "resp_created", "resp_end", "type", "priority", "deadline", "work", "wait_customer",
    "work_b", "wait_customer_b", "handle", "frt_b", "res_b", "frt_sla_b", "n_trans", "last_trans_at", "last_at",
)  # fmt: skip


@migrations()
def m_facts_month_001(db: Database) -> None:
    """``ticket_facts_month``: a ticket's facts as of the end of its creation month, for the
    tickets whose log goes on past it (derived.month_row), kept beside its whole-log row with the
    same ``ctx`` and ``ver`` and read only while its facts row has that ``ver``; removed with it.
    The row is one marshal blob (FACT_COLUMNS' values): read for some 17k tickets of a month's
    report at 3M, one column costs a third of 26 (11 µs a row)."""
    if "ticket_facts" not in db.table_names():
        return
    db.execute(
        "CREATE TABLE IF NOT EXISTS ticket_facts_month (portal TEXT NOT NULL, source TEXT NOT NULL,"
        " source_id TEXT NOT NULL, ctx TEXT, ver INTEGER, month_end INTEGER, facts BLOB,"
        " PRIMARY KEY (portal, source, source_id)) WITHOUT ROWID"
    )
    db.execute("DROP TRIGGER IF EXISTS kpi_m_facts_del")
    db.execute(
        "CREATE TRIGGER kpi_m_facts_del AFTER DELETE ON ticket_facts BEGIN DELETE FROM ticket_facts_month"
        " WHERE portal = OLD.portal AND source = OLD.source AND source_id = OLD.source_id; END"
    )


def rollup_triggers(db: Database) -> None:
    """(Re)create the triggers that make a month's rollups (kpi/cells.py build_rollups) stale when
    one of its piece or month cells is added, removed or made stale: a valid rollup holds exactly
    the month's valid cells, whose tickets the loader leaves out for it."""
    stale = (
        "UPDATE settled_cells SET stale = 1 WHERE portal = {r}.portal AND kind = 'rollup' AND stale = 0"
        " AND piece <= {r}.piece AND piece_end > {r}.piece;"
    )
    parts = "IN ('piece', 'month')"  # not 'rollup', nor 'asof' (cells.py: no rollup holds them)
    trig = {
        "kpi_r_cells_ins": f"AFTER INSERT ON settled_cells WHEN NEW.kind {parts} BEGIN {stale.format(r='NEW')} END",
        "kpi_r_cells_del": f"AFTER DELETE ON settled_cells WHEN OLD.kind {parts} BEGIN {stale.format(r='OLD')} END",
        "kpi_r_cells_upd": f"AFTER UPDATE OF stale ON settled_cells WHEN NEW.kind {parts} AND NEW.stale != 0"
        f" AND OLD.stale = 0 BEGIN {stale.format(r='NEW')} END",
    }
    _create_triggers(db, trig)


@migrations()
def m_settled_cells_004(db: Database) -> None:
    """Rollups (kpi/cells.py ``kind`` = ``rollup``): a whole month's cells merged per source and
    responsible, ``parts`` naming them; found by ``settled_cells_kind`` (the triggers' seek)."""
    if "settled_cells" not in db.table_names():
        return
    _add_column(db, "settled_cells", "parts", "TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS settled_cells_kind ON settled_cells (portal, kind, piece)")
    rollup_triggers(db)


@migrations()
def m_settled_cells_005(db: Database) -> None:
    """As-of cells (kpi/cells.py ``kind`` = ``asof``: a whole month's tickets whose log goes on
    past its end, tallied as of that end) are in no rollup: their adding, removal or staleness
    leaves the month's rollups valid."""
    if "settled_cells" in db.table_names():
        rollup_triggers(db)


# --- dormant counts kept per window start (b24desk/kpi/derived.py keep_dormant) -----------------

# the ticket_facts columns derived.dormant reads: a write to another column leaves its counts as they are
_DORMANT_COLS = ("portal", "source", "source_id", "ctx", "state", "dkey", "deadline", "last_at", "created_at",
                 "deleted", "selector", "closed_at")  # fmt: skip
_NEVER = 1 << 62  # later than any window start


def dormant_triggers(db: Database) -> None:
    """(Re)create the triggers that keep ``dormant_kept`` exact: a kept count of the open tickets
    untouched since before ``before`` goes when a facts row it may count (open, created and last
    touched before ``before``) is written, before or after the write, so a write to a ticket worked
    this month leaves the past months' counts alone. A facts row of an open ticket removed takes
    every count of its portal: a kept count also stands for "every open ticket has its row"
    (derived.open_rows_complete). Inserts need none: a row is inserted as a placeholder (no
    ``ctx``: never counted), and the update that keeps its facts is a write like the others."""
    last = "max(coalesce({r}.last_at, -1), coalesce({r}.created_at, -1))"  # counted for a later before
    # one statement, from the earlier of the row's two states that may be counted
    either = (
        f"min(CASE WHEN OLD.closed_at IS NULL THEN {last.format(r='OLD')} ELSE {_NEVER} END,"
        f" CASE WHEN NEW.closed_at IS NULL THEN {last.format(r='NEW')} ELSE {_NEVER} END)"
    )
    trig = {
        "kpi_d_facts_upd": f"AFTER UPDATE OF {', '.join(_DORMANT_COLS)} ON ticket_facts"
        " WHEN OLD.closed_at IS NULL OR NEW.closed_at IS NULL BEGIN"
        f" DELETE FROM dormant_kept WHERE portal = OLD.portal AND before > {either}; END",
        "kpi_d_facts_del": "AFTER DELETE ON ticket_facts WHEN OLD.closed_at IS NULL BEGIN"
        " DELETE FROM dormant_kept WHERE portal = OLD.portal; END",
    }
    _create_triggers(db, trig)


@migrations()
def m_dormant_kept_001(db: Database) -> None:
    """Dormant counts kept per window start (derived.keep_dormant): a report of a month reads the
    count of every open ticket untouched since before it (a thousand groups for 50 years of
    never-closed tickets) from one row instead of scanning them on every report."""
    if "ticket_facts" not in db.table_names():
        return
    db.execute(
        "CREATE TABLE IF NOT EXISTS dormant_kept (portal TEXT NOT NULL, before INTEGER NOT NULL,"
        " fp TEXT NOT NULL, counts BLOB NOT NULL, PRIMARY KEY (portal, before, fp)) WITHOUT ROWID"
    )
    dormant_triggers(db)
