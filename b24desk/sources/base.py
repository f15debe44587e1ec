"""What every source adapter shares: selectors, per-source field mapping, the sync context, pages.

A source turns one selector (``tasks:group=7``, ``deals:category=3``, ``crm:1038`` ...) into
pages of :class:`~b24desk.model.Bundle`. The orchestrator (``b24desk.sync``) writes each page in one
transaction and owns the cursors; a source never writes to the store itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Iterable, Iterator

from ..model import Bundle, Event, snapshot_hash

PAGE_TICKETS = 200  # tickets per committed page (a multiple of 50: full batches)


class SelectorError(ValueError):
    """A ``--source`` / config selector that does not parse."""


@dataclass(frozen=True)
class Selector:
    """A parsed source selector (shared/spec/interfaces.md, "Source selectors")."""

    raw: str  # canonical text, also the cursor key in the store
    kind: str  # registry key: "tasks", "crm", "openlines", ...
    entity_type_id: int | None = None
    params: tuple[tuple[str, str], ...] = ()

    def param(self, name: str, default: str | None = None) -> str | None:
        return dict(self.params).get(name, default)


_PARAM = re.compile(r"^([a-z_]+)=([A-Za-z0-9_\-]+)$")


def parse_selector(text: str) -> Selector:
    """``tasks`` | ``tasks:group=7`` | ``deals[:category=3]`` | ``crm:1038[:category=5]`` | ``kind[:k=v]``.

    ``deals`` is CRM entity type 2 (DOCS api-reference/crm/data-types.md#object_type); smart
    processes have an entityTypeId >= 128 (1030+ on cloud portals), old invoices/leads are refused.
    """
    s = (text or "").strip()
    if not s:
        raise SelectorError("empty source selector")
    parts = s.split(":")
    head = parts[0].lower()
    rest = parts[1:]
    entity = None
    if head == "deals":
        kind, entity = "crm", 2
    elif head == "crm":
        if not rest or not rest[0].isdigit():
            raise SelectorError(f"{s!r}: expected crm:<entityTypeId>, e.g. crm:1038")
        entity = int(rest[0])
        rest = rest[1:]
        if entity != 2 and entity < 128:
            raise SelectorError(f"{s!r}: entity type {entity} is not a deal or a smart process")
        kind = "crm"
    elif re.fullmatch(r"[a-z_]+", head):
        kind = head
    else:
        raise SelectorError(f"{s!r}: unknown source kind {parts[0]!r}")
    params = []
    for p in rest:
        m = _PARAM.match(p.strip())
        if not m:
            raise SelectorError(f"{s!r}: bad parameter {p!r}, expected name=value")
        params.append((m.group(1), m.group(2)))
    allowed = {"tasks": {"group"}, "crm": {"category"}}.get(kind)
    if allowed is not None:
        bad = [k for k, _ in params if k not in allowed]
        if bad:
            raise SelectorError(f"{s!r}: unknown parameter {bad[0]!r} (allowed: {', '.join(sorted(allowed))})")
        for k, v in params:
            if not v.isdigit():
                raise SelectorError(f"{s!r}: {k} must be a number")
    base = ("deals" if entity == 2 else f"crm:{entity}") if kind == "crm" else head
    canon = base + "".join(f":{k}={v}" for k, v in params)
    return Selector(raw=canon, kind=kind, entity_type_id=entity, params=tuple(params))


@dataclass
class Mapping:
    """Field mapping of one ``[[sources]]`` table (interfaces.md); unset -> kpi.md defaults."""

    priority: str | None = None
    priority_values: dict[str, str] = field(default_factory=dict)
    rating: str | None = None
    nps: str | None = None
    ces: str | None = None
    deadline: str | None = None
    type: str | None = None
    escalation_stages: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, table: dict | None) -> "Mapping":
        t = dict(table or {})
        pv = {str(k): str(v).lower() for k, v in (t.get("priority_values") or {}).items()}
        return cls(
            priority=t.get("priority"),
            priority_values=pv,
            rating=t.get("rating"),
            nps=t.get("nps"),
            ces=t.get("ces"),
            deadline=t.get("deadline"),
            type=t.get("type"),
            escalation_stages=tuple(str(x) for x in (t.get("escalation_stages") or ())),
        )


def _norm_key(name: str) -> str:
    return name.replace("_", "").lower()


def field_value(row: dict, name: str | None) -> Any:
    """Value of a configured field in a payload, whatever its case convention.

    Bitrix24 returns user fields as ``UF_CRM_X`` or camelCase ``ufCrmX`` depending on the method
    (DOCS api-reference/crm/universal/crm-item-list.md, ``useOriginalUfNames``); tasks return
    camelCase (DOCS api-reference/tasks/fields.md). The config may use either spelling.
    """
    if not name:
        return None
    if name in row:
        return row[name]
    want = _norm_key(name)
    for k, v in row.items():
        if _norm_key(k) == want:
            return v
    return None


def scalar(value) -> Any:
    """First element of a multiple field; ``{id,...}`` objects reduce to their id/value."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("value", value.get("id", value.get("ID")))
    if value in ("", False):
        return None
    return value


def as_int(value) -> int | None:
    value = scalar(value)
    if value is None:
        return None
    try:
        return int(float(str(value).strip()))
    except ValueError:
        return None


def as_id(value) -> str | None:
    """User / entity ids arrive as strings or ints; ``0``/empty means none."""
    v = scalar(value)
    if v in (None, "", 0, "0"):
        return None
    return str(v)


@dataclass
class SyncContext:
    """What a source may read while it builds bundles: the portal, config, and stored state."""

    portal: str
    db: Any = None  # sqlite_utils.Database (read-only use by sources)
    config: dict = field(default_factory=dict)
    portal_now: int | None = None  # portal clock when the incremental listing began (server.time)
    # ids whose details need no re-read when their row equals the stored snapshot (an event named
    # them, but a duplicate or an already-synced change leaves the row as stored): ``fetch_ids`` of
    # tasks and CRM then reads only the row, 50 to a batch, and lists them in ``Page.unchanged``
    skip_unchanged: frozenset = frozenset()

    @property
    def bot_users(self) -> set[str]:
        return {str(u) for u in (self.config.get("bot_users") or [])} | {"0"}

    def previous(self, source: str, source_id: str) -> dict | None:
        if self.db is None:
            return None
        from ..store import get_ticket

        return get_ticket(self.db, self.portal, source, source_id)

    def previous_snapshot_hash(self, source: str, source_id: str) -> str | None:
        """Hash of the snapshot saved with the latest sync of this ticket (None if never seen)."""
        if self.db is None:
            return None
        rows = list(
            self.db.query(
                "select hash from snapshots where portal = ? and source = ? and source_id = ?"
                " order by observed_at desc, rowid desc limit 1",
                [self.portal, source, str(source_id)],
            )
        )
        return rows[0]["hash"] if rows else None

    def split_unchanged(self, source: str, rows: list[dict]) -> tuple[list[dict], list[str]]:
        """``rows`` -> (rows to map and save, ids in ``skip_unchanged`` whose row is as stored)."""
        if not self.skip_unchanged:
            return rows, []
        keep, same = [], []
        for r in rows:
            sid = str(r.get("id"))
            if sid in self.skip_unchanged and self.previous_snapshot_hash(source, sid) == snapshot_hash(r):
                same.append(sid)
            else:
                keep.append(r)
        return keep, same

    def setting(self, key: str, default=None):
        if self.db is None:
            return default
        from ..store import get_setting

        return get_setting(self.db, self.portal, key, default)

    def set_setting(self, key: str, value) -> None:
        if self.db is not None:
            from ..store import set_setting

            with self.db.atomic():
                set_setting(self.db, self.portal, key, value)


@dataclass
class Page:
    """One unit of work: bundles to commit together, and the resume key they complete."""

    bundles: list[Bundle]
    last_id: str | None = None  # highest source id listed so far (full sync resumes after it)
    unchanged: list[str] = field(default_factory=list)  # ids seen, row as stored (nothing to write)


class Source:
    """Base of every adapter. Subclasses set ``source`` and implement the three readers."""

    source: str = ""  # Ticket.source, e.g. "task", "crm:2"

    def __init__(self, selector: Selector, mapping: Mapping | None = None):
        self.selector = selector
        self.mapping = mapping or Mapping()

    # Full sync: every ticket of the selector, ascending id, resumable after ``after_id``.
    def full(self, client, ctx: SyncContext, after_id: str | None = None) -> Iterator[Page]:
        raise NotImplementedError

    # Incremental: tickets changed at or after ``since`` (unix seconds, overlap already applied).
    def incremental(self, client, ctx: SyncContext, since: int) -> Iterator[Page]:
        raise NotImplementedError

    # Every id the selector currently has on the portal (deletion detection).
    def list_ids(self, client) -> set[str]:
        raise NotImplementedError

    # Bundles for the given ids (self-healing after a count mismatch).
    def fetch_ids(self, client, ctx: SyncContext, ids: Iterable[str]) -> Iterator[Page]:
        raise NotImplementedError

    # Number of tickets the portal has for the selector now (cheap, one call), or None.
    def count(self, client) -> int | None:
        return None

    # Given the ids the store holds for the selector: (ids gone from the portal, ids the store lacks).
    def reconcile(self, client, stored: set[str]) -> tuple[set[str], set[str]]:
        ids = self.list_ids(client)
        return stored - ids, ids - stored


class KeysetSource(Source):
    """A source whose list method pages by an integer ID keyset (tasks, CRM items).

    Subclasses set ``list_method``, ``id_field`` (name in filter/order), ``items_key`` and
    implement ``_filter()`` (the selector's filter) and ``_base()`` (other fixed params).
    """

    list_method = ""
    id_field = "ID"
    items_key: str | None = None

    def _pages(self, client, ctx: "SyncContext", rows: Iterable[dict]) -> Iterator["Page"]:
        """Listed rows -> committed pages of ``PAGE_TICKETS``, each resumable after its last id."""
        for part in chunks(rows, PAGE_TICKETS):
            yield Page(self.bundles(client, ctx, part), last_id=str(part[-1]["id"]))

    def _filter(self) -> dict:
        return {}

    def _base(self) -> dict:
        return {}

    def _range_filter(self, lo: int | None, hi: int | None) -> dict:
        f = dict(self._filter())
        if lo is not None:
            f[f">={self.id_field}"] = lo
        if hi is not None:
            f[f"<{self.id_field}"] = hi
        return f

    def list_ids(self, client, lo: int | None = None, hi: int | None = None) -> set[str]:
        params = {**self._base(), "filter": self._range_filter(lo, hi), "select": [self.id_field]}
        rows = client.list_all(self.list_method, params, id_field=self.id_field, items_key=self.items_key)
        return {str(r.get(self.id_field, r.get(self.id_field.lower(), r.get(self.id_field.upper())))) for r in rows}

    def count(self, client) -> int | None:
        body = client.call_raw(
            self.list_method,
            {
                **self._base(),
                "filter": self._filter(),
                "select": [self.id_field],
                "order": {self.id_field: "ASC"},
                "start": 0,
            },
        )
        try:
            return int(body.get("total"))
        except (TypeError, ValueError):
            return None

    def reconcile(self, client, stored: set[str]) -> tuple[set[str], set[str]]:
        """Find deletions and gaps without listing every id: one batch counts the portal's rows in
        up to 50 id ranges holding equal shares of the stored ids (``start=0`` answers ``total``,
        DOCS settings/how-to-call-rest-api/list-methods-pecularities.md); only ranges whose count
        differs are listed."""
        ids = sorted(int(i) for i in stored if str(i).isdigit())
        if not ids:
            got = self.list_ids(client)
            return set(stored) - got, got - set(stored)
        per = -(-len(ids) // 50)
        lows = [ids[i] for i in range(0, len(ids), per)]
        lows[0] = None
        ranges = [(lows[i], lows[i + 1] if i + 1 < len(lows) else None) for i in range(len(lows))]
        cmds = {
            f"r{i}": (
                self.list_method,
                compact(
                    {
                        **self._base(),
                        "filter": self._range_filter(lo, hi),
                        "select": [self.id_field],
                        "order": {self.id_field: "ASC"},
                        "start": 0,
                    }
                ),
            )
            for i, (lo, hi) in enumerate(ranges)
        }
        res = client.batch(cmds)
        gone, missing = set(), set()
        for i, (lo, hi) in enumerate(ranges):
            mine = {str(x) for x in ids if (lo is None or x >= lo) and (hi is None or x < hi)}
            total = res.totals.get(f"r{i}")
            if f"r{i}" not in res.errors and total is not None and int(total) == len(mine):
                continue
            theirs = self.list_ids(client, lo, hi)
            gone |= mine - theirs
            missing |= theirs - mine
        return gone, missing


def compact(params: dict) -> dict:
    """Drop empty containers from batch command params: an empty dict would travel as ``filter[]=``
    (batch commands are query strings, DOCS settings/how-to-call-rest-api/batch.md), which a portal
    reads as a malformed filter."""
    return {k: v for k, v in params.items() if not (v is None or (isinstance(v, (dict, list)) and not v))}


def diff_events(
    prev: dict | None, ticket, snap_hash: str, at: int, actor: str | None, fields: Iterable[str]
) -> list[Event]:
    """Events for what changed between the stored ticket and the new one (sources without history).

    Keyed by the new snapshot's hash, so re-reading the same state adds nothing; the first
    observation (``prev`` None) yields no transfer (the initial assignment is not one), only a
    ``rated`` event when the ticket already carries a score (given at some time up to ``at``).
    ``fields`` picks what to diff: ``responsible_id`` -> ``assigned``, ``rating`` -> ``rated``,
    anything else -> ``field_changed``.
    """
    if not prev:
        if "rating" in fields and getattr(ticket, "rating", None) is not None:
            return [
                Event(
                    ticket.portal,
                    ticket.source,
                    ticket.source_id,
                    "rated:0",
                    "rated",
                    int(at),
                    None,
                    "rating",
                    None,
                    str(ticket.rating),
                )
            ]
        return []
    out = []
    h = snap_hash[:16]
    for f in fields:
        old, new = prev.get(f), getattr(ticket, f)
        if (None if old is None else str(old)) == (None if new is None else str(new)):
            continue
        old = None if old is None else str(old)
        new = None if new is None else str(new)
        if f == "responsible_id":
            out.append(
                Event(
                    ticket.portal,
                    ticket.source,
                    ticket.source_id,
                    f"d:{h}:resp",
                    "assigned",
                    int(at),
                    actor,
                    None,
                    old,
                    new,
                )
            )
        elif f == "rating":
            out.append(
                Event(
                    ticket.portal,
                    ticket.source,
                    ticket.source_id,
                    f"d:{h}:rating",
                    "rated",
                    int(at),
                    actor,
                    "rating",
                    old,
                    new,
                )
            )
        else:
            out.append(
                Event(
                    ticket.portal,
                    ticket.source,
                    ticket.source_id,
                    f"d:{h}:{f}",
                    "field_changed",
                    int(at),
                    actor,
                    f,
                    old,
                    new,
                )
            )
    return out


def dedupe_events(events: list[Event]) -> list[Event]:
    """Keep the first event of each key (keys are the idempotency unit of the log)."""
    seen: set[str] = set()
    out = []
    for e in events:
        if e.key not in seen:
            seen.add(e.key)
            out.append(e)
    return out


def chunks(seq: Iterable, n: int) -> Iterator[list]:
    """Lists of up to ``n`` items from any iterable (lazy: a keyset listing streams through)."""
    it = iter(seq)
    while part := list(islice(it, n)):
        yield part
