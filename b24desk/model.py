"""The normalized ticket and its event log (kpi.md section 1).

Every source (tasks, CRM deals, smart processes, open lines) maps its payloads onto these
two shapes; nothing downstream of a source adapter ever sees a raw Bitrix24 payload.

Times are integer unix seconds in UTC (``int``), so the KPI engine does plain arithmetic;
the portal's time zone is applied only when a period is parsed or a value is displayed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone, tzinfo

log = logging.getLogger("b24desk.model")

# Ticket states (kpi.md section 1).
OPEN, RESOLVED, REJECTED = "open", "resolved", "rejected"
STATES = (OPEN, RESOLVED, REJECTED)

PRIORITIES = ("low", "normal", "high", "critical")

# Event kinds of the append-only log (kpi.md section 1).
CREATED = "created"
ASSIGNED = "assigned"  # from_value -> to_value are user ids; the first one is not a transfer
STATUS = "status"  # from_value -> to_value are the source's raw status / stage ids
REPLY = "reply"  # agent message visible to the customer
CUSTOMER_MESSAGE = "customer_message"
COMMENT = "comment"  # internal
REOPENED = "reopened"
RESOLVED_EV = "resolved"
REJECTED_EV = "rejected"
FIELD_CHANGED = "field_changed"  # field, from_value, to_value (e.g. field="type" for requalification)
CALL_OUT = "call_out"
RATED = "rated"
ESCALATED = "escalated"  # moved into a configured escalation stage: counts as a transfer
WORKED = "worked"  # tracked work: to_value = seconds, at = when logged, actor = who (AHT as of ``to``)

EVENT_KINDS = (
    CREATED,
    ASSIGNED,
    STATUS,
    REPLY,
    CUSTOMER_MESSAGE,
    COMMENT,
    REOPENED,
    RESOLVED_EV,
    REJECTED_EV,
    FIELD_CHANGED,
    CALL_OUT,
    RATED,
    ESCALATED,
    WORKED,
)


@dataclass
class Ticket:
    """One ticket, as the portal shows it now (the current snapshot, normalized)."""

    portal: str
    source: str  # "task", "crm:2" (deals), "crm:1038" (smart process), "openlines"
    source_id: str
    title: str = ""
    type: str | None = None
    priority: str = "normal"
    priority_raw: str | None = None
    author_id: str | None = None
    customer: str | None = None
    responsible_id: str | None = None
    created_at: int = 0
    deadline: int | None = None
    resolved_at: int | None = None  # last resolution (current state), None if never resolved
    closed_at: int | None = None  # last close (resolved or rejected), None while open
    state: str = OPEN
    rating: int | None = None  # 1-5
    nps: int | None = None  # 0-10
    ces: int | None = None  # 1-5
    qa_score: int | None = None  # supervisor's 1-5 (open lines voteHead), kept apart from rating
    channel: str | None = None  # open-line connector; None for tasks/CRM
    line: str | None = None  # open line id
    handle_time: int | None = None  # current tracked total (seconds), None where the source tracks none;
    # the KPIs use the log's ``worked`` events (as of ``to``) instead
    selector: str | None = None  # the config selector that brought the ticket in
    url: str | None = None  # path of the ticket in the portal (for links)
    deleted: int = 0  # 1 once the portal no longer has it

    def row(self) -> dict:
        return asdict(self)


@dataclass
class Event:
    """One entry of a ticket's event log. ``key`` makes inserts idempotent per ticket."""

    portal: str
    source: str
    source_id: str
    key: str  # stable id from the source: "h:16359", "c:12", "s:35", "a:20", "d:<hash>:resp"
    kind: str
    at: int
    actor_id: str | None = None
    field: str | None = None
    from_value: str | None = None
    to_value: str | None = None

    def row(self) -> dict:
        return asdict(self)


def event_maker(portal: str, source: str, source_id: str):
    """``ev(key, kind, at, actor=None, field=None, frm=None, to=None)`` building one ticket's
    events, as every source adapter writes them: ``at`` as whole seconds, values as text."""

    def ev(key, kind, at, actor=None, field=None, frm=None, to=None) -> Event:
        return Event(
            portal,
            source,
            source_id,
            key,
            kind,
            int(at),
            actor,
            field,
            None if frm is None else str(frm),
            None if to is None else str(to),
        )

    return ev


@dataclass
class Bundle:
    """What a source yields per ticket: the normalized ticket, its events, and the raw snapshot."""

    ticket: Ticket
    events: list[Event] = field(default_factory=list)
    snapshot: dict = field(default_factory=dict)


# The zone naive date strings are written in: the portal's (server's) time zone, set for the
# duration of a sync (``naive_zone``). DOCS api-reference/data-types.md: "at the API level all dates
# and times are stored according to the server parameters"; the offset comes from ``server.time``.
_NAIVE_ZONE: ContextVar[tzinfo] = ContextVar("b24desk_naive_zone", default=timezone.utc)
_DOTTED = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


@contextmanager
def naive_zone(tz: tzinfo | None):
    """Read naive date strings in ``tz`` (the portal's time zone) inside the block."""
    token = _NAIVE_ZONE.set(tz or timezone.utc)
    try:
        yield
    finally:
        _NAIVE_ZONE.reset(token)


def parse_time(value, field: str | None = None, tz: tzinfo | None = None) -> int | None:
    """A Bitrix24 date -> unix seconds; None when empty or unreadable (logged with ``field``, never raised).

    Forms: ISO 8601 with offset (DOCS api-reference/data-types.md), unix seconds, and the naive
    forms a portal also writes -- ``YYYY-MM-DD HH:MM:SS`` (``user.get`` ``LAST_ACTIVITY_DATE``) and
    ``dd.mm.yyyy hh:mm:ss`` (``TIMESTAMP_X``; ``createdDate`` in an earlier version of
    tasks-task-history-list.md) -- read in ``tz``, else the portal's zone (``naive_zone``).
    """
    if value in (None, "", False, "undefined"):
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    s = str(value).strip()
    if s.isdigit():
        return int(s)
    zone = tz or _NAIVE_ZONE.get()
    try:
        m = _DOTTED.match(s)
        if m:
            d, mo, y, hh, mm, ss = m.groups()
            dt = datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0))
        else:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        log.warning("unreadable date %r%s: left empty", s[:40], f" in {field}" if field else "")
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone)
    return int(dt.timestamp())


def format_time(ts: int | None, tz=timezone.utc) -> str | None:
    """Unix seconds -> ISO 8601 with offset, in ``tz``."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz).isoformat()


def snapshot_hash(data: dict) -> str:
    """Stable content hash of a raw payload, so a re-read of an unchanged object adds nothing."""
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def parse_ids(value) -> list[str]:
    """Id lists (a user's departments, ``UF_DEPARTMENT``) as they arrive or are stored: a list, a
    number, a JSON list (``"[5, 7]"``) or a comma list (``"5,7"``)."""
    if value in (None, "", False):
        return []
    if isinstance(value, (int, float)):
        return [str(int(value))]
    if isinstance(value, str):
        s = value.strip()
        if s.startswith("["):
            try:
                return parse_ids(json.loads(s))
            except ValueError:
                pass
        return [p.strip() for p in s.strip("[]").split(",") if p.strip()]
    return [str(int(x)) if isinstance(x, float) else str(x) for x in value if x not in (None, "")]
