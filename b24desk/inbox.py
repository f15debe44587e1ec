"""The event inbox: acknowledge at once, process later (bolt-python's ack-then-process).

``POST /events`` calls :func:`accept`: it checks ``auth[application_token]`` against the stored
one in constant time and writes the event in one INSERT (tokens stripped), with no portal call.
The :class:`Worker` drains the inbox per portal: it maps each event to the objects it names
(:func:`changes_of`), re-reads those objects in batches through the sync, and marks the rows
done. The re-read takes each object's *current* state, so a duplicate or an event that arrives
out of order changes nothing.

Bitrix24 never retries a failed delivery (DOCS api-reference/events/index.md, "no retries"): what
the inbox misses, the offline queue (:func:`pull_offline`) and the scheduler's reconcile sync bring
back. Every query here is scoped by portal (``member_id``).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable
from urllib.parse import urlencode

import qs_codec
from sqlite_utils import Database

from . import leases
from .batching import call_each
from .leases import owner_dead
from .proc import owner_id
from .proc import short as _short

log = logging.getLogger(__name__)

# Keys never written to the inbox: the triggering user's tokens (we always read with the stored
# install tokens, DOCS api-reference/events/index.md) and the shared secret itself.
SECRET_KEYS = frozenset({"auth[access_token]", "auth[refresh_token]", "auth[application_token]"})
MAX_PAIRS = 200  # an event form has ~15 fields; more is not Bitrix24
MAX_VALUE = 4096  # one field's length
_EVENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")
_MEMBER_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_DECODE = qs_codec.DecodeOptions(depth=6, parameter_limit=MAX_PAIRS, parse_lists=False, strict_depth=False)

# Events that do work in the app itself rather than name a changed object.
UNINSTALL, INSTALL, UPDATE, OFFLINE = "ONAPPUNINSTALL", "ONAPPINSTALL", "ONAPPUPDATE", "ONOFFLINEEVENT"
IGNORED = frozenset({"ONAPPTEST", "ONAPPPAYMENT", "ONAPPMETHODCONFIRM"})

NEW, WORKING, DONE, FAILED, SKIPPED = "new", "working", "done", "failed", "skipped"
MAX_ATTEMPTS = 5


class Rejected(Exception):
    """A request that must not be processed: ``status`` is the HTTP answer (400/401)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


# --- the ack path ------------------------------------------------------------------------------


def _fields(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    n = 0
    for k, v in pairs:
        n += 1
        if n > MAX_PAIRS:
            raise Rejected(400, f"more than {MAX_PAIRS} form fields")
        if len(k) > 200 or len(v) > MAX_VALUE:
            raise Rejected(400, "a form field is too long")
        out.setdefault(k, []).append(v)
    return out


def _single(fields: dict[str, list[str]], key: str) -> str:
    values = fields.get(key)
    if not values or not values[0].strip():
        raise Rejected(400, f"missing {key}")
    if len(values) > 1:
        raise Rejected(400, f"{key} given more than once")
    return values[0].strip()


def authenticate(db: Database, pairs: list[tuple[str, str]]) -> tuple[str, str, dict[str, list[str]]]:
    """Check an event form; returns ``(member_id, EVENT, fields)`` or raises :class:`Rejected`.

    DOCS api-reference/events/safe-event-handlers.md: ``auth[application_token]`` must equal the
    token stored for ``auth[member_id]``. Unknown and uninstalled portals get the same 401 as a
    wrong token, after the same constant-time comparison.
    """
    fields = _fields(pairs)
    event = _single(fields, "event")
    member_id = _single(fields, "auth[member_id]")
    token = _single(fields, "auth[application_token]")
    if not _EVENT_NAME.match(event):
        raise Rejected(400, "malformed event name")
    if not _MEMBER_ID.match(member_id):
        raise Rejected(400, "malformed member_id")
    if len(token) > 256:
        raise Rejected(400, "malformed application_token")
    row = db.execute("select application_token, active from installations where member_id = ?", [member_id]).fetchone()
    stored = row[0] if row and row[0] else None
    active = bool(row and row[1] != 0)
    same = hmac.compare_digest((stored or "\0" * 32).encode(), token.encode())
    if not (same and stored and active):
        raise Rejected(401, "unknown portal or wrong application_token")
    return member_id, event.upper(), fields


def enqueue(
    db: Database, portal: str, event: str, pairs: Iterable[tuple[str, str]], received_at: float | None = None
) -> int:
    """Write one event to the inbox (one INSERT, committed); secrets are left out."""
    body = urlencode([(k, v) for k, v in pairs if k not in SECRET_KEYS])
    cur = db.execute(
        "insert into inbox (portal, event, received_at, body, state, attempts) values (?, ?, ?, ?, ?, 0)",
        [portal, event, received_at if received_at is not None else time.time(), body, NEW],
    )
    db.conn.commit()
    return cur.lastrowid


def decode(body: str) -> dict:
    """An inbox body (a Bitrix24 form, ``data[FIELDS][ID]=5``) as nested dicts."""
    try:
        value = qs_codec.decode(body or "", _DECODE)
    except Exception:  # qs-codec raises on pathological input; treat as empty
        return {}
    return value if isinstance(value, dict) else {}


# --- what an event names -----------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One object an event says changed. ``source`` is a Ticket.source ("task", "crm:2",
    "crm:1038") or an indirection resolved by the worker: "activity", "timeline_comment"."""

    source: str
    id: str
    # the change may leave the object's row as it was (a comment edited or deleted): re-read its
    # details even when the row equals the stored snapshot
    details: bool = False


def _id(value) -> str | None:
    if isinstance(value, dict):
        value = value.get("ID", value.get("id"))
    if value in (None, "", "undefined", "0", 0):
        return None
    text = str(value).strip()
    return text if text.isdigit() else None


def _dig(data, *path):
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


_DYNAMIC = re.compile(r"^ONCRMDYNAMICITEM(?:ADD|UPDATE|DELETE)(?:_(\d+))?$")


def changes_of(event: str, data) -> list[Change]:
    """The objects an event names (DOCS tables in spec/bitrix24-rest.md section 2).

    Task events: ``FIELDS_AFTER[ID]`` / ``FIELDS_BEFORE[ID]`` (on-task-*.md); task comments name
    their task in ``FIELDS_AFTER[TASK_ID]`` (on-task-comment-add.md); CRM events ``FIELDS[ID]``
    (+ ``FIELDS[ENTITY_TYPE_ID]`` for smart processes, crm/universal/events); timeline comments
    ``data[ID]`` (on-Crm-Timeline-Comment-Add.md). Anything unparseable names nothing.
    """
    event = (event or "").upper()
    if not isinstance(data, dict):
        data = {}
    if event in ("ONTASKADD", "ONTASKUPDATE", "ONTASKDELETE"):
        tid = _id(_dig(data, "FIELDS_AFTER", "ID")) or _id(_dig(data, "FIELDS_BEFORE", "ID"))
        return [Change("task", tid)] if tid else []
    if event.startswith("ONTASKCOMMENT"):
        tid = _id(_dig(data, "FIELDS_AFTER", "TASK_ID")) or _id(_dig(data, "FIELDS_BEFORE", "TASK_ID"))
        return [Change("task", tid, details=True)] if tid else []
    if event.startswith("ONCRMDEAL") and event != "ONCRMDEALUSERFIELDADD":
        did = _id(_dig(data, "FIELDS", "ID"))
        return [Change("crm:2", did)] if did else []
    m = _DYNAMIC.match(event)
    if m:
        iid = _id(_dig(data, "FIELDS", "ID"))
        etid = m.group(1) or _id(_dig(data, "FIELDS", "ENTITY_TYPE_ID"))
        return [Change(f"crm:{int(etid)}", iid)] if iid and etid else []
    if event in ("ONCRMACTIVITYADD", "ONCRMACTIVITYUPDATE", "ONCRMACTIVITYDELETE"):
        aid = _id(_dig(data, "FIELDS", "ID"))
        return [Change("activity", aid)] if aid else []
    if event.startswith("ONCRMTIMELINECOMMENT"):
        cid = _id(data.get("ID")) or _id(_dig(data, "FIELDS", "ID"))
        return [Change("timeline_comment", cid)] if cid else []
    return []


# Events bound on install (online to /events, and offline as the safety net). DOCS: tasks
# api-reference/tasks/events-tasks/, deals api-reference/crm/deals/events/, smart processes
# api-reference/crm/universal/events/, activities crm/timeline/activities/events/, comments.
OBJECT_EVENTS = (
    "ONTASKADD",
    "ONTASKUPDATE",
    "ONTASKDELETE",
    "ONTASKCOMMENTADD",
    "ONTASKCOMMENTUPDATE",
    "ONTASKCOMMENTDELETE",
    "ONCRMDEALADD",
    "ONCRMDEALUPDATE",
    "ONCRMDEALDELETE",
    "ONCRMDEALMOVETOCATEGORY",
    "ONCRMDYNAMICITEMADD",
    "ONCRMDYNAMICITEMUPDATE",
    "ONCRMDYNAMICITEMDELETE",
    "ONCRMACTIVITYADD",
    "ONCRMACTIVITYUPDATE",
    "ONCRMACTIVITYDELETE",
    "ONCRMTIMELINECOMMENTADD",
    "ONCRMTIMELINECOMMENTUPDATE",
    "ONCRMTIMELINECOMMENTDELETE",
)
# ONOFFLINEEVENT is not bound: it reaches us only when online events do too, so it would only
# duplicate them; the offline queue is drained on the scheduler's clock and at start instead.
APP_EVENTS = (UNINSTALL, UPDATE)


# --- the worker --------------------------------------------------------------------------------


def recover_stale(db: Database, lease: float = 300.0, now: float | None = None) -> int:
    """Put back rows claimed by a dead process (or held past ``lease``): nothing is lost."""
    now = time.time() if now is None else now
    rows = db.execute("select id, claimed_by, claimed_at from inbox where state = ?", [WORKING]).fetchall()
    stale = [r[0] for r in rows if owner_dead(r[1]) or (r[2] or 0) < now - lease]
    if stale:
        with db.atomic():
            for i in range(0, len(stale), 500):
                part = stale[i : i + 500]
                db.execute(
                    f"update inbox set state = ?, claimed_by = null, claimed_at = null "
                    f"where state = ? and id in ({','.join('?' * len(part))})",
                    [NEW, WORKING, *part],
                )
    return len(stale)


def claim(db: Database, portal: str, owner: str, limit: int = 500, now: float | None = None) -> list[dict]:
    """Atomically take up to ``limit`` due rows of one portal (a retry waits until its
    ``claimed_at``, which holds the not-before time of a row put back after a failure)."""
    now = time.time() if now is None else now
    with db.atomic():
        db.execute(
            "update inbox set state = ?, claimed_by = ?, claimed_at = ?, attempts = attempts + 1 "
            "where id in (select id from inbox where state = ? and portal = ? "
            "and coalesce(claimed_at, 0) <= ? order by id limit ?)",
            [WORKING, owner, now, NEW, portal, now, limit],
        )
    return list(
        db.query(
            "select * from inbox where state = ? and claimed_by = ? and portal = ? order by id",
            [WORKING, owner, portal],
        )
    )


def finish(db: Database, ids: list[int], state: str = DONE, error: str | None = None) -> None:
    now = time.time()
    with db.atomic():
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            db.execute(
                f"update inbox set state = ?, done_at = ?, error = coalesce(?, error), claimed_by = null "
                f"where id in ({','.join('?' * len(part))})",
                [state, now, error, *part],
            )


def give_back(db: Database, rows: list[dict], error: str, backoff: float = 5.0) -> None:
    """A failed batch: rows with attempts left go back with a growing delay, the rest fail
    (the reconcile sync covers them)."""
    now = time.time()
    with db.atomic():
        for r in rows:
            attempts = int(r.get("attempts") or 1)
            if attempts >= MAX_ATTEMPTS:
                db.execute(
                    "update inbox set state = ?, error = ?, done_at = ?, claimed_by = null where id = ?",
                    [FAILED, error[:500], now, r["id"]],
                )
            else:
                db.execute(
                    "update inbox set state = ?, error = ?, claimed_by = null, claimed_at = ? where id = ?",
                    [NEW, error[:500], now + backoff * 2 ** (attempts - 1), r["id"]],
                )


def pending_portals(db: Database, now: float | None = None) -> list[str]:
    now = time.time() if now is None else now
    return [
        r[0]
        for r in db.execute(
            "select distinct portal from inbox where state = ? and coalesce(claimed_at, 0) <= ?", [NEW, now]
        ).fetchall()
    ]


def counts(db: Database, portal: str | None = None) -> dict[str, int]:
    sql = "select state, count(*) from inbox" + (" where portal = ?" if portal else "") + " group by state"
    return {s: n for s, n in db.execute(sql, [portal] if portal else []).fetchall()}


def prune(db: Database, older_than: float = 7 * 86400, now: float | None = None) -> int:
    """Forget processed rows after a while (failed ones too: the reconcile has covered them)."""
    now = time.time() if now is None else now
    cur = db.execute(
        "delete from inbox where state in (?, ?, ?) and done_at < ?", [DONE, SKIPPED, FAILED, now - older_than]
    )
    db.conn.commit()
    return cur.rowcount


Handler = Callable[[Database, str, list[dict]], None]


class Worker:
    """Drains the inbox in a background thread; :meth:`drain` does one pass synchronously.

    ``handler(db, portal, rows)`` processes one claimed batch of a portal; it runs under the
    portal's lease (``leases.portal``), so a sync of the same portal never interleaves
    with it, in this process or another. A handler exception puts the batch back (with backoff).
    """

    def __init__(
        self,
        db_path: str,
        handler: Handler,
        *,
        batch: int = 5000,
        poll: float = 1.0,
        lease: float = 300.0,
        lock_ttl: float = 120.0,
        backoff: float = 5.0,
        fill_rows: int = 500,
        fill_wait: float = 0.0,
    ):
        self.db_path, self.handler, self.backoff = db_path, handler, backoff
        self.batch, self.poll, self.lease, self.lock_ttl = batch, poll, lease, lock_ttl
        # Full requests: the background loop lets a portal's events gather until ``fill_rows`` are
        # due or the oldest has waited ``fill_wait`` seconds (0: at once), so a steady stream is
        # read 50 objects to a command instead of a few per pass (drain() called directly never waits)
        self.fill_rows, self.fill_wait = fill_rows, fill_wait
        self._hold: float | None = None
        self.owner = owner_id()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.processed = 0
        self.errors = 0

    def notify(self) -> None:
        """Something arrived: drain now rather than at the next poll."""
        self._wake.set()

    def _gathering(self, db: Database, portal: str, fill_wait: float) -> bool:
        """True while the portal's due rows are fewer than ``fill_rows`` and the oldest is younger
        than ``fill_wait`` (notes when to look again in ``_hold``)."""
        if fill_wait <= 0:
            return False
        now = time.time()
        n, oldest = db.execute(
            "select count(*), min(received_at) from inbox where state = ? and portal = ?"
            " and coalesce(claimed_at, 0) <= ?",
            [NEW, portal, now],
        ).fetchone()
        if not n or n >= self.fill_rows or oldest is None or oldest <= now - fill_wait:
            return False
        again = oldest + fill_wait - now
        self._hold = again if self._hold is None else min(self._hold, again)
        return True

    def drain(self, db: Database | None = None, fill_wait: float = 0.0) -> int:
        """One pass over every portal with due rows; returns how many rows it finished. With
        ``fill_wait``, a portal with fewer than ``fill_rows`` due rows, none older than that, waits."""
        from .store import open_db

        own = db is None
        db = db or open_db(self.db_path)
        total = 0
        try:
            recover_stale(db, self.lease)
            purge_pending(db, self.db_path, self.owner)
            for portal in pending_portals(db):
                if self._gathering(db, portal, fill_wait):
                    continue  # (before the lease: waiting costs no write)
                with leases.portal(self.db_path, portal, self.owner, ttl=self.lock_ttl) as got:
                    if not got:
                        continue  # a sync holds it; the rows wait for the next pass
                    while not self._stop.is_set():
                        if self._gathering(db, portal, fill_wait):
                            break
                        rows = claim(db, portal, self.owner, self.batch)
                        if not rows:
                            break
                        try:
                            self.handler(db, portal, rows)
                        except Skip as exc:
                            finish(db, [r["id"] for r in rows], SKIPPED, str(exc))
                            continue
                        except Exception as exc:  # the batch goes back; never lost
                            self.errors += 1
                            log.warning("inbox: %d events of %s failed: %s", len(rows), portal, _short(exc))
                            give_back(db, rows, _short(exc), self.backoff)
                            break
                        finish(db, [r["id"] for r in rows])
                        total += len(rows)
            if total:
                # the ack connections never checkpoint (webhooks/events.py): do it here, off that path
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            if own:
                db.conn.close()
        self.processed += total
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self._hold = None
            try:
                n = self.drain(fill_wait=self.fill_wait)
            except Exception as exc:  # e.g. database locked for too long: try again later
                log.warning("inbox worker pass failed: %s", _short(exc))
                n = 0
            if self._hold is not None:  # events are gathering: look again when the oldest is due
                time.sleep(max(0.01, min(self._hold, self.poll)))
            elif not n:
                self._wake.wait(self.poll)
                self._wake.clear()

    def start(self) -> "Worker":
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="b24desk-inbox", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)


# --- processing: events -> objects -> the sync ------------------------------------------------


def _batched_get(client, method: str, ids: list[str], param: str = "id") -> dict[str, object]:
    """``{id: result}`` through ``batch`` (``batching.call_each``: limits are waited out, transient
    failures retried); an object the portal refuses (deleted, not visible) maps to None."""
    return {
        x: a.result if a.error is None else None
        for x, a in zip(ids, call_each(client, method, [{param: x} for x in ids]))
    }


def _crm_source(entity_type) -> str | None:
    """``2`` / ``"deal"`` / ``"dynamic_1038"`` -> "crm:2" / "crm:1038"; leads, contacts... -> None."""
    text = str(entity_type or "").strip().lower()
    if text in ("2", "deal"):
        return "crm:2"
    if text.startswith("dynamic_"):
        text = text[len("dynamic_") :]
    if text.isdigit() and int(text) >= 128:
        return f"crm:{int(text)}"
    return None


def _known_owners(db: Database, portal: str, prefix: str, obj_id: str) -> set[tuple[str, str]]:
    """Tickets whose log holds an entry keyed ``{prefix}{id}`` (a deleted activity's owner)."""
    return {
        (r[0], r[1])
        for r in db.execute(
            "select distinct source, source_id from events where portal = ? and key = ?", [portal, f"{prefix}{obj_id}"]
        ).fetchall()
    }


def resolve(
    db: Database, client, portal: str, changes: Iterable[Change], details: dict[str, set[str]] | None = None
) -> dict[str, set[str]]:
    """Group changes by ticket source; activities and timeline comments become their owners.

    An activity (DOCS crm-activity-get.md: ``OWNER_TYPE_ID``/``OWNER_ID``) or a comment
    (crm.timeline.comment.get: ``ENTITY_TYPE``/``ENTITY_ID``) that is gone is looked up in the
    stored event log instead; failing that the reconcile sync picks the change up. ``details``,
    when given, receives the objects whose details must be re-read even if their row is as stored
    (their comments or activities changed, which the row may not show).
    """
    out: dict[str, set[str]] = {}
    forced = details if details is not None else {}
    activities, comments = set(), set()

    def owner(src, oid):
        out.setdefault(src, set()).add(oid)
        forced.setdefault(src, set()).add(oid)

    for ch in changes:
        if ch.source == "activity":
            activities.add(ch.id)
        elif ch.source == "timeline_comment":
            comments.add(ch.id)
        else:
            out.setdefault(ch.source, set()).add(ch.id)
            if ch.details:
                forced.setdefault(ch.source, set()).add(ch.id)
    if activities:
        for aid, row in _batched_get(client, "crm.activity.get", sorted(activities)).items():
            src = _crm_source(row.get("OWNER_TYPE_ID")) if isinstance(row, dict) else None
            if src and _id(row.get("OWNER_ID")):
                owner(src, _id(row.get("OWNER_ID")))
            for s, i in _known_owners(db, portal, "a:", aid):
                owner(s, i)
    if comments:
        for cid, row in _batched_get(client, "crm.timeline.comment.get", sorted(comments)).items():
            src = _crm_source(row.get("ENTITY_TYPE")) if isinstance(row, dict) else None
            if src and _id(row.get("ENTITY_ID")):
                owner(src, _id(row.get("ENTITY_ID")))
            for s, i in _known_owners(db, portal, "tc:", cid):
                owner(s, i)
    return out


@dataclass
class Plan:
    """What one batch of inbox rows asks for."""

    changes: list[Change]
    pull_offline: bool = False
    rebind: bool = False
    unparsed: int = 0
    uninstall: bool | None = None  # an ONAPPUNINSTALL to confirm: its CLEAN choice


def _clean_flag(data) -> bool:
    value = data.get("CLEAN") if isinstance(data, dict) else None
    return str(value if value is not None else "0").strip().upper() in ("1", "Y", "TRUE")


def plan(rows: list[dict]) -> Plan:
    p = Plan(changes=[])
    for r in rows:
        event = (r.get("event") or "").upper()
        if event == UNINSTALL:
            clean = _clean_flag(decode(r.get("body") or "").get("data"))
            p.uninstall = bool(p.uninstall) or clean
            continue
        if event == OFFLINE:
            p.pull_offline = True
            continue
        if event in (INSTALL, UPDATE):
            p.rebind = True
            continue
        payload = decode(r.get("body") or "")
        found = changes_of(event, payload.get("data"))
        if not found and event not in IGNORED:
            p.unparsed += 1
        p.changes.extend(found)
    return p


# --- the offline queue -------------------------------------------------------------------------

OFFLINE_CURSOR = ("_offline", "process_id")


def _offline_rows(events) -> list[dict]:
    return [e for e in (events or []) if isinstance(e, dict)]


def _enqueue_offline(db: Database, portal: str, events: list[dict]) -> tuple[int, int]:
    """Offline records -> inbox rows (``EVENT_DATA`` as the event's ``data``); returns
    (enqueued, records with no usable data). DOCS event-offline-get.md shows ``EVENT_DATA: false``
    in its example; whether it carries the ids is unconfirmed, so such records are counted and
    the caller reconciles."""
    n = blind = 0
    now = time.time()
    with db.atomic():
        for e in events:
            name = str(e.get("EVENT_NAME") or "").upper()
            data = e.get("EVENT_DATA")
            if isinstance(data, str):
                try:
                    data = json.loads(data)
                except ValueError:
                    data = None
            if not _EVENT_NAME.match(name) or not changes_of(name, data):
                blind += 1
                continue
            pairs = [
                ("event", name),
                ("ts", str(e.get("TIMESTAMP_X") or "")),
                ("offline_id", str(e.get("ID") or "")),
                ("message_id", str(e.get("MESSAGE_ID") or "")),
            ]
            body = urlencode(pairs) + "&" + qs_codec.encode({"data": data})
            db.execute(
                "insert into inbox (portal, event, received_at, body, state, attempts) values (?, ?, ?, ?, ?, 0)",
                [portal, name, now, body, NEW],
            )
            n += 1
    return n, blind


def pull_offline(db: Database, client, portal: str, limit: int = 50, max_rounds: int = 200) -> tuple[int, int]:
    """Move the portal's offline queue into the inbox; returns (enqueued, blind records).

    DOCS api-reference/events/offline-events.md: ``event.offline.get`` with ``clear=0`` reserves
    a batch under a ``process_id``; ``event.offline.clear`` deletes it once we hold it. The
    process id is written down first, so a crash between the two re-reads that batch with
    ``event.offline.list`` (filter ``PROCESS_ID``) on the next run: duplicates are harmless.
    """
    from .store import get_cursor, set_cursor

    enqueued = blind = 0
    pending = get_cursor(db, portal, *OFFLINE_CURSOR)
    if pending:
        rows = client.call("event.offline.list", {"filter": {"PROCESS_ID": pending}})
        rows = rows if isinstance(rows, list) else []
        a, b = _enqueue_offline(db, portal, _offline_rows(rows))
        enqueued, blind = enqueued + a, blind + b
        client.call("event.offline.clear", {"process_id": pending})
        set_cursor(db, portal, *OFFLINE_CURSOR, None)
    for _ in range(max_rounds):
        res = client.call("event.offline.get", {"clear": 0, "limit": limit})
        res = res if isinstance(res, dict) else {}
        events = _offline_rows(res.get("events"))
        pid = res.get("process_id")
        if not events:
            break
        if pid:
            set_cursor(db, portal, *OFFLINE_CURSOR, pid)
        a, b = _enqueue_offline(db, portal, events)
        enqueued, blind = enqueued + a, blind + b
        if pid:
            client.call("event.offline.clear", {"process_id": pid})
            set_cursor(db, portal, *OFFLINE_CURSOR, None)
        if len(events) < limit:
            break
    return enqueued, blind


# --- app lifecycle events ----------------------------------------------------------------------


def _auth_fields(fields: dict[str, list[str]]) -> dict[str, str]:
    return {k[5:-1]: v[0] for k, v in fields.items() if k.startswith("auth[") and k.endswith("]") and v and v[0] != ""}


def normalize_scope(scope: str | None) -> str | None:
    """Scopes come comma-separated (token answers) or space-separated (on-app-install.md)."""
    if scope is None:
        return None
    return ",".join(s for s in re.split(r"[\s,]+", scope) if s)


# Answers that say the app's tokens are dead on the portal: what an uninstall leaves (DOCS
# api-reference/common/events/on-app-uninstall.md: all API access of the app is removed;
# settings/oauth/error-codes.md). PAYMENT_REQUIRED, a missing client secret or a busy lock say
# nothing about an uninstall.
_GONE_CODES = frozenset(
    {
        "INVALID_CLIENT",
        "INVALID_GRANT",
        "INVALID_TOKEN",
        "EXPIRED_TOKEN",
        "NO_AUTH_FOUND",
        "NO_REFRESH_TOKEN",
        "WRONG_AUTH_TYPE",
        "APPLICATION_NOT_FOUND",
        "ERROR_APP_NOT_INSTALLED",
    }
)


def uninstall_confirmed(client) -> bool:
    """Does the portal confirm the app is gone? ``app.info`` with the stored install tokens (refreshed
    at the configured OAuth server if expired): an answer means the app is still installed, an auth
    error naming dead tokens means it is not; anything else (network, 5xx) raises, to be retried."""
    from .client import AuthError

    try:
        client.call("app.info")
    except AuthError as exc:
        return str(exc.code).upper() in _GONE_CODES
    return False


def confirm_uninstall(db: Database, client_for: Callable[[str], object], portal: str, clean: bool) -> bool:
    """An ONAPPUNINSTALL (token-checked, but the application token is in every viewer's frame) is
    carried out only once the portal confirms it; otherwise it is logged and ignored, and no data is
    touched. Returns True if the uninstall was carried out."""
    from .client import AuthError

    try:
        client = client_for(portal)
    except AuthError as exc:
        log.info("uninstall of %s: no usable installation (%s); nothing to do", portal, exc.code)
        return False
    try:
        gone = uninstall_confirmed(client)
    finally:
        client.close()
    if not gone:
        log.warning(
            "uninstall of %s NOT confirmed: the app still answers on the portal; event ignored, nothing changed", portal
        )
        return False
    uninstall(db, portal, clean)
    log.info("uninstall of %s confirmed by the portal (clean=%s)", portal, clean)
    return True


def _purge_rows(db: Database, portal: str) -> None:
    for table in db.table_names():
        if "portal" in db[table].columns_dict:
            db.execute(f"delete from [{table}] where portal = ?", [portal])


def uninstall(db: Database, portal: str, clean: bool) -> None:
    """ONAPPUNINSTALL (DOCS api-reference/common/events/on-app-uninstall.md): ``CLEAN=1`` deletes
    every row of the portal, in every table that has a ``portal`` column; ``0`` keeps the data,
    drops the tokens and skips the portal's pending events (no token can read them any more).

    A sync or an inbox batch of the portal may be running (the portal's lease is not waited for
    here: the portal does not retry a slow handler), so a clean uninstall also leaves a
    ``purge:<member_id>`` marker in ``locks``; :func:`purge_pending` repeats the delete under the
    portal's lease once that work has ended."""
    from .installations import delete_installation

    delete_installation(db, portal, clean)
    with db.atomic():
        if clean:
            _purge_rows(db, portal)
            leases.mark(db, f"purge:{portal}")
        else:
            db.execute(
                "update inbox set state = ?, done_at = ?, error = 'uninstalled', claimed_by = null "
                "where portal = ? and state in (?, ?)",
                [SKIPPED, time.time(), portal, NEW, WORKING],
            )


def purge_pending(db: Database, db_path: str, owner: str) -> int:
    """Finish clean uninstalls: delete the portal's rows again under its lease (whatever ran at
    uninstall time has ended), unless the portal was installed again since. Returns how many."""
    from .installations import get_installation

    done = 0
    for portal, at in leases.marks(db, "purge:"):
        with leases.portal(db_path, portal, owner) as got:
            if not got:
                continue
            inst = get_installation(db, portal)
            with db.atomic():
                if inst is None or int(inst.get("updated_at") or 0) < int(at):
                    _purge_rows(db, portal)
                leases.unmark(db, f"purge:{portal}")
            done += 1
    return done


# --- the default handler: events -> the sync's per-id refresh -----------------------------------


class Skip(Exception):
    """The batch cannot be processed and never will be (the app was uninstalled): mark it skipped."""


def refresh_objects(
    db: Database,
    client,
    portal: str,
    groups: dict[str, set[str]],
    config: dict,
    details: dict[str, set[str]] | None = None,
) -> dict:
    """Re-read the named objects through every configured selector of their source.

    ``sync.refresh_tickets`` saves what the portal still shows under a selector; an id that none
    of them returned (deleted, or moved out of every selector) is marked deleted, as a clean sync
    would leave it. Sources no selector covers are ignored. Returns ``{source: (saved, gone)}``.

    With ``details`` given (``{source: ids}``), an object outside it whose row comes back equal to
    the stored snapshot is not re-read further: the row is one command of a 50-command batch,
    its history, comments and activities three more each, so a burst of events about objects that
    a sync (or an earlier event) already brought in costs ceil(n/50) requests, not 4x that.
    """
    from .sources import configured_selectors, get_source
    from .sync import forget_tickets, refresh_tickets

    by_source: dict[str, list[str]] = {}
    for sel in configured_selectors(config) or ["tasks"]:
        by_source.setdefault(get_source(sel, config).source, []).append(sel)
    out = {}
    for source, ids in sorted(groups.items()):
        sels = by_source.get(source)
        if not sels or not ids:
            continue
        seen: set[str] = set()
        skip = () if details is None else set(ids) - set(details.get(source, ()))
        for sel in sels:
            refresh_tickets(client, db, sel, sorted(ids), config, saved=seen, skip_unchanged=skip)
        gone = sorted(set(ids) - seen)
        n = forget_tickets(db, portal, sels[0], gone, config) if gone else 0
        out[source] = (len(seen), n)
    return out


def make_handler(
    client_for: Callable[[str], object],
    config_for: Callable[[Database, str], dict],
    *,
    reconcile: Callable[[str], None] | None = None,
    rebind: Callable[[str, object], None] | None = None,
) -> Handler:
    """The worker's handler: plan the batch, read through the portal's stored install tokens."""

    def handle(db: Database, portal: str, rows: list[dict]) -> None:
        from .client import AuthError
        from .sync import portal_lease

        p = plan(rows)
        if p.uninstall is not None and confirm_uninstall(db, client_for, portal, p.uninstall):
            return  # gone: the rest of the batch has no portal to read
        if not (p.changes or p.pull_offline or p.rebind):
            if p.unparsed and reconcile:
                reconcile(portal)
            return
        try:
            client = client_for(portal)
        except AuthError as exc:
            if exc.code in ("NO_INSTALLATION", "NOT_INSTALLED", "NO_TOKENS"):
                raise Skip(exc.code) from None
            raise
        # `flask sync` in another process must not interleave (re-entered under the worker's lease)
        with contextlib.closing(client), portal_lease(db, portal):
            if p.rebind and rebind:
                rebind(portal, client)
            blind = 0
            if p.pull_offline:
                _, blind = pull_offline(db, client, portal)
            if p.changes:
                details: dict[str, set[str]] = {}
                groups = resolve(db, client, portal, p.changes, details)
                refresh_objects(db, client, portal, groups, config_for(db, portal), details)
        if (p.unparsed or blind) and reconcile:
            reconcile(portal)

    return handle
