"""Read what one report needs from the store, and only that (cost grows with the period).

A ticket can matter to ``[start, end)`` only if it was created before ``end`` and was not already
closed for good before ``start``: ``created_at < end and (closed_at is null or closed_at >= start)``
(its *current* last close is never earlier than any close or reopen inside the period). That set is
read as three index ranges: created inside the window (``portal, created_at``), created before it
and closed since its start, and still open (both ``portal, closed_at, created_at``, a covering
index added by the ``m_kpi_001`` migration), so the store's history before the window is never
scanned. Events come by primary key for those tickets only; the customers' earlier tickets for
repeat contacts are one more ``created_at`` range, read from the index alone (``m_kpi_002``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..model import parse_ids
from ..store import get_setting

# What the maths reads of a ticket row (the state comes from the event log, not from ``state``).
TICKET_COLUMNS = (
    "source",
    "source_id",
    "type",
    "priority",
    "author_id",
    "customer",
    "responsible_id",
    "created_at",
    "deadline",
    "closed_at",
    "rating",
    "nps",
    "ces",
    "channel",
    "line",
    "handle_time",
)
EVENT_COLUMNS = ("at", "kind", "actor_id", "field", "from_value", "to_value")

# Source selectors (shared/spec/interfaces.md) -> the ticket's ``source`` column.
SELECTOR_SOURCES = {"tasks": "task", "deals": "crm:2", "openlines": "openlines"}


@dataclass
class Loaded:
    tickets: list = field(default_factory=list)  # dict rows
    events: dict = field(default_factory=dict)  # (source, source_id) -> [event tuple]
    customer_history: dict = field(default_factory=dict)  # customer -> sorted created_at


def source_clause(sources) -> tuple[str, list]:
    """SQL condition for ``--source`` selectors: ``tasks`` means every task, ``tasks:group=7`` only
    the tickets that selector brought in; a raw source (``task``, ``crm:1038``) matches that source."""
    if not sources:
        return "", []
    if isinstance(sources, str):
        sources = [sources]
    by_source, by_selector = [], []
    for sel in sources:
        sel = str(sel).strip()
        if not sel:
            continue
        if "=" in sel:  # a narrowed selector: only what it brought in
            by_selector.append(sel)
        elif sel in SELECTOR_SOURCES:
            by_source.append(SELECTOR_SOURCES[sel])
        else:  # crm:1038, task, crm:2, openlines
            by_source.append(sel)
    parts, params = [], []
    if by_source:
        parts.append(f"source in ({','.join('?' * len(by_source))})")
        params += by_source
    if by_selector:
        parts.append(f"selector in ({','.join('?' * len(by_selector))})")
        params += by_selector
    return (" and (" + " or ".join(parts) + ")") if parts else "", params


def candidate_query(portal: str, start: int, end: int, sources=None) -> tuple[str, list]:
    """SQL + params for the tickets that can matter to ``[start, end)`` (three index ranges)."""
    src_sql, src_params = source_clause(sources)
    cols = ", ".join(TICKET_COLUMNS)
    live = "coalesce(deleted, 0) = 0"
    sql = (
        f"select {cols} from tickets where portal = ? and created_at >= ? and created_at < ?"
        f" and {live}{src_sql}"
        f" union all select {cols} from tickets where portal = ? and closed_at >= ? and created_at < ?"
        f" and {live}{src_sql}"
        f" union all select {cols} from tickets where portal = ? and closed_at is null and created_at < ?"
        f" and {live}{src_sql}"
    )
    params = [portal, start, end] + src_params + [portal, start, start] + src_params + [portal, start] + src_params
    return sql, params


def history_query(portal: str, start: int, end: int, sources=None) -> tuple[str, list]:
    """SQL + params for (customer, created_at) of the tickets created in ``[start, end)``."""
    src_sql, src_params = source_clause(sources)
    return (
        f"select customer, created_at from tickets where portal = ? and created_at >= ?"
        f" and created_at < ? and customer is not null and coalesce(deleted, 0) = 0{src_sql}",
        [portal, start, end] + src_params,
    )


def load(db, portal: str, start: int, end: int, *, sources=None, repeat_window: int = 30 * 86400) -> Loaded:
    """Tickets relevant to ``[start, end)`` with their events, and their customers' recent tickets."""
    sql, params = candidate_query(portal, start, end, sources)
    conn = db.conn
    out = Loaded()
    cur = conn.execute(sql, params)
    out.tickets = [dict(zip(TICKET_COLUMNS, row)) for row in cur]

    if out.tickets:
        # Events of these tickets only, by primary key, in replay order; one query per source with
        # the ids as a JSON array. ``created`` (the ticket row has it) and ``rated`` (scores are on
        # the ticket row) are not needed by the maths.
        ev_sql = (
            "select j.key, e.at, e.kind, e.actor_id, e.field, e.from_value, e.to_value"
            " from json_each(?) j join events e on e.portal = ? and e.source = ? and e.source_id = j.value"
            " where e.kind not in ('created', 'rated') and e.at is not null order by j.key, e.at, e.key"
        )
        by_source: dict = {}
        for t in out.tickets:
            by_source.setdefault(t["source"], []).append(t["source_id"])
        events: dict = {}
        for source, ids in by_source.items():
            current, bucket = None, None
            for row in conn.execute(ev_sql, [json.dumps(ids), portal, source]):
                if row[0] != current:
                    current = row[0]
                    bucket = events[(source, ids[current])] = []
                bucket.append(row[1:])
        out.events = events

    history: dict = {}
    for cust, created in conn.execute(*history_query(portal, start - repeat_window, end, sources)):
        history.setdefault(cust, []).append(created)
    for v in history.values():
        v.sort()
    out.customer_history = history
    return out


def load_people(db, portal: str) -> tuple[dict, dict]:
    """Users (id -> {label, departments, is_bot, active}) and departments (id -> {name, parent})."""
    users, deps = {}, {}
    if "users" in db.table_names():
        for r in db.query(
            "select id, name, last_name, departments, is_bot, active from users where portal = ?", [portal]
        ):
            label = " ".join(x for x in (r["name"], r["last_name"]) if x) or str(r["id"])
            users[str(r["id"])] = {
                "label": label,
                "departments": parse_ids(r["departments"]),
                "is_bot": bool(r["is_bot"]),
                "active": r["active"],
            }
    if "departments" in db.table_names():
        for r in db.query("select id, name, parent from departments where portal = ?", [portal]):
            deps[str(r["id"])] = {
                "name": r["name"] or str(r["id"]),
                "parent": str(r["parent"]) if r["parent"] not in (None, "", "0") else None,
            }
    return users, deps


def portal_zone(db, portal: str, config: dict | None = None) -> str:
    """The one time-zone rule (reports, pages, pushes, the open-lines cross-check): the zone an
    admin picked in the settings (:func:`admin_timezone`), else the portal's own
    (:func:`portal_timezone`), else the config's ``[calendar] timezone``, else Moscow."""
    return (
        admin_timezone(db, portal)
        or portal_timezone(db, portal)
        or ((config or {}).get("calendar") or {}).get("timezone")
        or "Europe/Moscow"
    )


def admin_timezone(db, portal: str) -> str | None:
    """The time zone an admin picked on the settings page (``calendar.timezone`` of the portal's
    ``config`` overrides, b24desk/overrides.py): it wins over the portal's own and the config
    file's, since the admin chose it for the reports."""
    over = get_setting(db, portal, "config") or {}
    tz = (over.get("calendar") or {}).get("timezone") if isinstance(over, dict) else None
    try:
        return tz if isinstance(tz, str) and tz and ZoneInfo(tz) else None
    except (ValueError, ZoneInfoNotFoundError):
        return None


def portal_timezone(db, portal: str) -> str | None:
    """The portal's time zone, which the KPI day boundaries follow: the admin's ``[calendar]
    timezone`` set for this portal in its settings, else the one saved with the installation
    (``installations.timezone``), else the portal-wide one the sync derived from ``server.time``
    (setting ``portal_timezone``, see ``directory.portal_zone_name``); None: the file config decides."""
    override = (
        ((get_setting(db, portal, "config") or {}).get("calendar") or {})
        if isinstance(get_setting(db, portal, "config"), dict)
        else {}
    )
    candidates = [override.get("timezone") if isinstance(override, dict) else None]
    if "installations" in db.table_names():
        row = db.execute("select timezone from installations where member_id = ?", [portal]).fetchone()
        candidates.append(row[0] if row else None)
    candidates.append(get_setting(db, portal, "portal_timezone"))
    for tz in candidates:
        try:
            if isinstance(tz, str) and tz and ZoneInfo(tz):
                return tz
        except (ValueError, ZoneInfoNotFoundError):
            continue
    return None
