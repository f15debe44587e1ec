"""Open-line dialogs (Открытые линии) as a ticket source: ``openlines`` / ``openlines:line=2``.

Reads the statistics API (DOCS api-reference/imopenlines/statistics/index.md, ``data-types.md``):

* ``imopenlines.v2.Session.list`` - sessions; ``offset``/``limit`` paging, ``limit`` 1..200, an
  ``offset`` above 10000 is refused (``OFFSET_TOO_LARGE``), a date period is at most 366 days
  (``PERIOD_TOO_LARGE``), no id filter (imopenlines-v2-session-list.md). So every listing is cut
  into date windows: a window is read in ascending date order, pages chained in ``batch`` calls,
  and when it reaches the offset cap it restarts at the last date read (duplicates dropped by id).
* ``imopenlines.v2.Session.Transfer.list`` - transfer rows for at most 50 session ids
  (imopenlines-v2-session-transfer-list.md); the first row (``fromOperatorId`` null) is the
  initial distribution, not a transfer.
* ``imopenlines.v2.Session.Rating.list`` - customer votes by ``dateVote`` period (no ``order``
  parameter, so an over-full window is halved instead) (imopenlines-v2-session-rating-list.md).
* ``imopenlines.v2.Session.Stat.get`` - per-session message counts, 100 ids a call
  (imopenlines-v2-session-stat-get.md).
* ``imopenlines.v2.Stat.get`` - the portal's own aggregates, for :func:`crosscheck`.

Mapping (kpi.md section 1): ``dateCreate`` -> created, ``dateOperatorAnswer`` (first *live*
operator answer, so bots are excluded) -> first reply, ``dateClose`` -> resolved, ``operatorId`` ->
responsible, transfer rows -> ``assigned`` events, ``vote`` like/dislike -> rating 5/1,
``voteHead`` 1-5 -> ``qa_score`` (kept apart), the line -> ``line`` and ``type`` (its name), the
connector (``source``) -> ``channel``. Choices where kpi.md and the docs are silent:
spam sessions, and sessions closed by timeout without any live answer (missed), are *rejected*;
bots (configured ``bot_users``, users flagged as bots, and whoever hands a dialog over with
transfer ``mode`` BOT) are never responsible, and a bot's hand-over is the first assignment, not
a transfer; message counts become ``reply`` / ``customer_message`` events stamped at the first
live answer / the creation (the API gives counts, not times).

The methods are optional per portal: a plan without Open Channels reports answers 400
``TARIFF_RESTRICTION``; that, a missing scope or missing report access is recorded in the setting
``openlines.status`` and the source yields nothing instead of failing the sync.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import Iterable, Iterator

from ..client import B24Error
from ..model import (
    ASSIGNED,
    CREATED,
    CUSTOMER_MESSAGE,
    FIELD_CHANGED,
    OPEN,
    RATED,
    REJECTED,
    REJECTED_EV,
    REPLY,
    RESOLVED,
    RESOLVED_EV,
    Bundle,
    Ticket,
    event_maker,
    parse_time,
)
from . import register
from .base import Mapping, Page, Selector, SelectorError, Source, SyncContext, as_id, as_int, chunks
from .fetch import call_each, call_mixed

log = logging.getLogger(__name__)

SOURCE = "openlines"
M_SESSIONS = "imopenlines.v2.Session.list"
M_TRANSFERS = "imopenlines.v2.Session.Transfer.list"
M_RATINGS = "imopenlines.v2.Session.Rating.list"
M_SESSION_STAT = "imopenlines.v2.Session.Stat.get"
M_STAT = "imopenlines.v2.Stat.get"
M_LINES = "imopenlines.config.list.get"

LIMIT = 200  # rows per page, the maximum (statistics/index.md)
OFFSET_CAP = 10000  # an offset above this is OFFSET_TOO_LARGE (session-list, rating-list)
MAX_SPAN = 365 * 86400  # a period may span at most 366 days; inclusive ends, so stay a day under
RATING_SPAN = MAX_SPAN  # rating windows start as long as allowed and are halved when one overflows
TRANSFER_IDS = 50  # Session.Transfer.list: at most 50 unique ids
STAT_IDS = 100  # Session.Stat.get: at most 100 unique ids
PAGE_SESSIONS = 1000  # sessions per Page handed to the orchestrator
_GROWTH = (3, 12, 35)  # pages per batch after the first page (1 + 3 + 12 + 35 = 51 = offsets 0..10000)

VOTE_RATING = {"like": 5, "dislike": 1}
CLOSED_OK = {"closed"}
OPEN_STATUSES = ("new", "answered", "paused")
MISSED_REASONS = {"auto", "client", "replyLimit"}

# Error codes that mean "this portal does not offer the statistics API to us": recorded, not raised.
UNAVAILABLE = {
    "TARIFF_RESTRICTION": "The Bitrix24 plan does not include Open Channels reports "
    "(imopenlines.v2.* answer TARIFF_RESTRICTION); open-line dialogs are not synced.",
    "ACCESS_DENIED": "The user behind the app or webhook has no access to Open Channels reports; "
    "grant it in the Contact Center permissions to sync open-line dialogs.",
    "INVALID_CREDENTIALS": "The user behind the app or webhook lacks the permissions the Open Channels "
    "statistics need.",
    "INSUFFICIENT_SCOPE": "The app or webhook has no 'imopenlines' scope; add it to sync open-line dialogs.",
    "ERROR_METHOD_NOT_FOUND": "This portal has no imopenlines.v2 statistics methods (an older on-premise "
    "version?); open-line dialogs are not synced.",
}
STATUS_KEY = "openlines.status"
LINES_KEY = "openlines.lines"
CROSSCHECK_KEY = "openlines.crosscheck"
BOTS_KEY = "openlines.bots"


class OpenLinesUnavailable(Exception):
    """The portal refuses the statistics methods (plan, scope or access): a state, not a failure."""

    def __init__(self, err: B24Error):
        self.error = err
        self.code = err.code.upper()
        super().__init__(UNAVAILABLE.get(self.code, str(err)))


def _check(err: B24Error) -> None:
    """Re-raise ``err`` as :class:`OpenLinesUnavailable` when it is a plan/scope/access refusal."""
    if err.code.upper() in UNAVAILABLE:
        raise OpenLinesUnavailable(err) from err
    raise err


# --- time on the wire ---------------------------------------------------------------------------


def iso(ts: int) -> str:
    """Unix seconds -> ISO 8601 with offset, the only date format the v2 methods take (index.md)."""
    return datetime.fromtimestamp(int(ts), timezone.utc).isoformat(timespec="seconds")


def _to_ts(value) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return int(value.timestamp())
    ts = parse_time(value)
    if ts is None:
        raise ValueError(f"not a time: {value!r}")
    return ts


def windows(date_from: int, date_to: int, span: int = MAX_SPAN) -> Iterator[tuple[int, int]]:
    """Inclusive ``[a, b]`` windows covering ``[date_from, date_to]``, none longer than ``span``."""
    a = int(date_from)
    while a <= date_to:
        b = min(int(date_to), a + span - 1)
        yield a, b
        a = b + 1


# --- reading one filter window --------------------------------------------------------------------


def _result(body) -> dict:
    r = body.get("result") if isinstance(body, dict) and "result" in body else body
    return r if isinstance(r, dict) else {}


def read_window(client, method: str, params: dict, items_key: str) -> tuple[list[dict], bool]:
    """Every row one filter reaches through ``offset`` paging: ``(rows, exhausted)``.

    Offsets go 0, 200, ... 10000 (the cap); after the first page the next ones are requested in
    growing ``batch`` chunks, so a full window of 10,200 rows costs 4 HTTP requests, a small
    one 1. ``exhausted`` is False when the last reachable page still says ``hasNextPage``.
    """
    try:
        first = _result(client.call_raw(method, {**params, "offset": 0, "limit": LIMIT}))
    except B24Error as err:
        _check(err)
    rows = list(first.get(items_key) or [])
    if not first.get("hasNextPage"):
        return rows, True
    offsets = list(range(LIMIT, OFFSET_CAP + 1, LIMIT))
    pos = 0
    for n in _GROWTH:
        todo = offsets[pos : pos + n]
        pos += n
        if not todo:
            break
        answers = call_each(client, method, [{**params, "offset": o, "limit": LIMIT} for o in todo])
        for a in answers:
            if a.error is not None:
                _check(a.error)
            page = a.result if isinstance(a.result, dict) else {}
            rows.extend(page.get(items_key) or [])
            if not page.get("hasNextPage"):
                return rows, True
    return rows, False


def list_sessions(
    client, params: dict, date_from: int, date_to: int, by: str = "Create", seen: set | None = None
) -> Iterator[dict]:
    """Sessions with ``date{by}`` in ``[date_from, date_to]``, each once, ascending by that date.

    ``by`` is ``Create`` or ``Close``. Windows span at most 365 days; a window that reaches the
    offset cap is continued from the last date read (ascending order makes that a keyset), so
    any number of sessions is read with no page skipped. ``seen`` (session ids) is shared by
    callers that combine several listings.
    """
    seen = set() if seen is None else seen
    field = f"date{by}"
    for a, b in windows(date_from, date_to):
        start = a
        while True:
            p = {**params, f"{field}From": iso(start), f"{field}To": iso(b), "order": field, "orderDirection": "asc"}
            rows, exhausted = read_window(client, M_SESSIONS, p, "sessions")
            for r in rows:
                sid = as_id(r.get("id"))
                if sid is not None and sid not in seen:
                    seen.add(sid)
                    yield r
            if exhausted or not rows:
                break
            last = parse_time(rows[-1].get(field))
            if last is None or last <= start:
                raise B24Error(
                    None,
                    "SLICE_TOO_DENSE",
                    f"more than {OFFSET_CAP + LIMIT} sessions share {field} {iso(start)}; "
                    "narrow the selector (openlines:line=N)",
                    M_SESSIONS,
                )
            start = last


def list_ratings(client, params: dict, date_from: int, date_to: int) -> dict[str, dict]:
    """``{sessionId: rating}`` for votes given in ``[date_from, date_to]``.

    Rating.list has no sort parameter, so a window that reaches the offset cap is halved and both
    halves are read again (rows already read are kept).
    """
    out: dict[str, dict] = {}
    todo = list(windows(date_from, date_to, RATING_SPAN))
    while todo:
        a, b = todo.pop(0)
        p = {**params, "dateVoteFrom": iso(a), "dateVoteTo": iso(b)}
        rows, exhausted = read_window(client, M_RATINGS, p, "ratings")
        for r in rows:
            sid = as_id(r.get("sessionId"))
            if sid is not None:
                out[sid] = r
        if not exhausted:
            if a >= b:
                raise B24Error(None, "SLICE_TOO_DENSE", f"more than {OFFSET_CAP + LIMIT} votes at {iso(a)}", M_RATINGS)
            mid = a + (b - a) // 2
            todo[:0] = [(a, mid), (mid + 1, b)]
    return out


def details_for(client, transfer_ids: list[str], stat_ids: list[str]) -> tuple[dict, dict]:
    """Transfer rows (50 ids a call) and ``sessionStat`` rows (100 ids a call) for sessions, all the
    calls packed 50 to a ``batch`` whatever the method: ``({id: [transfer]}, {id: sessionStat})``."""
    calls = [(M_TRANSFERS, {"sessionId": g}) for g in chunks([int(x) for x in transfer_ids], TRANSFER_IDS)]
    calls += [(M_SESSION_STAT, {"sessionId": g}) for g in chunks([int(x) for x in stat_ids], STAT_IDS)]
    transfers: dict[str, list[dict]] = {sid: [] for sid in transfer_ids}
    stats: dict[str, dict] = {}
    for (method, _), ans in zip(calls, call_mixed(client, calls)):
        if ans.error is not None:
            _check(ans.error)
        res = ans.result if isinstance(ans.result, dict) else {}
        if method == M_TRANSFERS:
            for row in res.get("transfers") or []:
                sid = as_id(row.get("sessionId"))
                if sid in transfers:
                    transfers[sid].append(row)
        else:
            # the method page names the list ``sessions``, data-types.md ``stats``: take either
            for row in res.get("sessions") or res.get("stats") or []:
                sid = as_id(row.get("sessionId"))
                if sid is not None:
                    stats[sid] = row
    return transfers, stats


def line_names(client) -> dict[str, str]:
    """``{line id: LINE_NAME}`` from ``imopenlines.config.list.get`` (PARAMS limit/offset, max 200).

    DOCS api-reference/imopenlines/openlines/imopenlines-config-list-get.md.
    """
    out: dict[str, str] = {}
    offset = 0
    while True:
        rows = client.call(
            M_LINES,
            {"PARAMS": {"select": ["ID", "LINE_NAME"], "order": {"ID": "ASC"}, "limit": LIMIT, "offset": offset}},
        )
        rows = rows if isinstance(rows, list) else []
        for r in rows:
            if r.get("ID") is not None:
                out[str(r["ID"])] = str(r.get("LINE_NAME") or "")
        if len(rows) < LIMIT:
            return out
        offset += LIMIT


# --- mapping (pure) -------------------------------------------------------------------------------


def bots_in(transfers: Iterable[dict]) -> set[str]:
    """Operators who handed a dialog over as a bot (transfer ``mode`` BOT, data-types.md#transfer)."""
    return {
        as_id(t.get("fromOperatorId"))
        for t in transfers
        if str(t.get("mode") or "").upper() == "BOT" and as_id(t.get("fromOperatorId"))
    }


def infer_bots(sessions: Iterable[dict], transfers: dict[str, list[dict]]) -> set[str]:
    """Bots among the operators: who handed a dialog over with ``mode`` BOT, and the sole operator of
    a dialog that has an answer (``dateFirstAnswer``) but no live one (``dateOperatorAnswer``)."""
    out: set[str] = set()
    for rows in transfers.values():
        out |= bots_in(rows)
    for s in sessions:
        op = as_id(s.get("operatorId"))
        if (
            op
            and not (as_int(s.get("queueTransfers")) or 0)
            and parse_time(s.get("dateFirstAnswer"), "dateFirstAnswer")
            and not parse_time(s.get("dateOperatorAnswer"), "dateOperatorAnswer")
        ):
            out.add(op)
    return out


def session_state(s: dict, bot_operator: bool = False) -> str:
    """``closed`` -> resolved; spam, and a missed dialog (closed by timeout while waiting for a live
    operator who never answered; a bot's own dialog is not missed) -> rejected;
    ``new``/``answered``/``paused`` -> open (data-types.md#session-status, #close-reason)."""
    status = str(s.get("status") or "").lower()
    reason = s.get("closeReason")
    if status == "spam" or reason == "spam":
        return REJECTED
    if status in CLOSED_OK or parse_time(s.get("dateClose"), "dateClose"):
        if (
            reason in MISSED_REASONS
            and not parse_time(s.get("dateOperatorAnswer"), "dateOperatorAnswer")
            and not bot_operator
        ):
            return REJECTED
        return RESOLVED
    return OPEN


def customer_of(s: dict) -> str | None:
    """A linked CRM contact/company when readable, else the chat user -- in the keys the other
    adapters use (``C_5`` / ``CO_5`` as crm_mapping.customer_of, a user id as a task's author), so
    one customer writing in a chat and in a deal or a task is one customer for repeat contacts and
    contacts per customer (kpi.md section 3)."""
    kind, cid = s.get("crmEntityType"), as_id(s.get("crmEntityId"))
    if kind in ("contact", "company") and cid:
        return ("C_" if kind == "contact" else "CO_") + cid
    return as_id(s.get("userId"))


def map_session(
    portal: str,
    s: dict,
    transfers: list[dict] | None = None,
    stat: dict | None = None,
    rating: dict | None = None,
    lines: dict | None = None,
    bots: set[str] | None = None,
    selector: str | None = None,
) -> Bundle:
    """One ``session`` (+ its transfer rows, ``sessionStat`` and ``rating``) -> a Bundle."""
    lines = lines or {}
    transfers = sorted(transfers or [], key=lambda t: parse_time(t.get("date"), "date") or 0)
    bots = {"0"} | set(bots or ()) | bots_in(transfers)
    sid = str(s.get("id"))
    created = parse_time(s.get("dateCreate"), "dateCreate") or 0
    first_live = parse_time(s.get("dateOperatorAnswer"), "dateOperatorAnswer")
    first_any = parse_time(s.get("dateFirstAnswer"), "dateFirstAnswer")
    closed = parse_time(s.get("dateClose"), "dateClose")
    operator = as_id(s.get("operatorId"))
    customer_uid = as_id(s.get("userId"))
    if operator and not transfers and first_any and not first_live:
        bots.add(operator)  # answered, but never by a live operator: a bot did it
    line = as_id(s.get("configId"))

    def name(line_id) -> str | None:
        lid = as_id(line_id)
        return None if lid is None else (lines.get(lid) or f"Line {lid}")

    ev = event_maker(portal, SOURCE, sid)

    events = [ev("created", CREATED, created, customer_uid)]
    holder = None  # the (human) responsible as the rows replay
    answered_by = None
    for t in transfers:
        at = parse_time(t.get("date"), "date") or created
        frm, to = as_id(t.get("fromOperatorId")), as_id(t.get("toOperatorId"))
        frm = None if frm in bots else frm
        to = None if to in bots else to
        from_line, to_line = as_id(t.get("fromConfigId")), as_id(t.get("toConfigId"))
        if to_line and from_line and to_line != from_line:
            events.append(
                ev(
                    f"l:{at}:{to_line}",
                    FIELD_CHANGED,
                    at,
                    as_id(t.get("initiatorId")),
                    "type",
                    name(from_line),
                    name(to_line),
                )
            )
        if frm == to:
            continue
        # a bot's hand-over, and a queue's pick-up, assign from nobody: not a transfer (kpi.md)
        events.append(
            ev(
                f"t:{at}:{frm or 0}:{to or 0}",
                ASSIGNED,
                at,
                as_id(t.get("initiatorId")),
                None,
                frm if frm else None,
                to,
            )
        )
        holder = to
        if first_live and at <= first_live:
            answered_by = to
    responsible = None if operator in bots else operator
    if not transfers and responsible:
        events.append(ev("assigned:0", ASSIGNED, created, None, None, None, responsible))
    if first_live:
        actor = answered_by or responsible or holder
        replies = max(1, as_int((stat or {}).get("messagesOperatorCount")) or 0)
        for n in range(1, replies + 1):
            events.append(ev(f"r:{n}", REPLY, first_live, actor))
    for n in range(1, (as_int((stat or {}).get("messagesClientCount")) or 0) + 1):
        events.append(ev(f"c:{n}", CUSTOMER_MESSAGE, created, customer_uid))
    state = session_state(s, bot_operator=operator is not None and operator in bots)
    if state != OPEN:
        at = closed or first_live or created
        events.append(
            ev(
                "closed",
                RESOLVED_EV if state == RESOLVED else REJECTED_EV,
                at,
                responsible,
                None,
                None,
                s.get("closeReason") or s.get("status"),
            )
        )
    vote = str((rating or {}).get("vote") or s.get("vote") or "none").lower()
    score = VOTE_RATING.get(vote)
    if score is not None:
        at = parse_time((rating or {}).get("dateVote"), "dateVote") or closed or created
        events.append(ev("rated", RATED, at, customer_uid, "rating", None, score))
    head = s.get("voteHead")
    if head is None and rating:
        head = rating.get("voteHead")
    qa = as_int(head)
    ticket = Ticket(
        portal=portal,
        source=SOURCE,
        source_id=sid,
        title=f"Dialog #{sid} ({s.get('source') or 'openlines'})",
        type=name(line),
        author_id=customer_uid,
        customer=customer_of(s),
        responsible_id=responsible,
        created_at=created,
        resolved_at=(closed or first_live or created) if state == RESOLVED else None,
        closed_at=(closed or first_live or created) if state != OPEN else None,
        state=state,
        rating=score,
        qa_score=qa if qa is not None and 1 <= qa <= 5 else None,
        channel=str(s.get("source")) if s.get("source") else None,
        line=line,
        selector=selector,
        url=f"/online/?IM_HISTORY=imol|{sid}",
    )
    snapshot = {"session": s, "transfers": transfers, "stat": stat or {}, "rating": rating or {}}
    return Bundle(ticket=ticket, events=events, snapshot=snapshot)


# --- the source ------------------------------------------------------------------------------------


class OpenLinesSource(Source):
    """Open-line sessions of every line, or of one (``openlines:line=2``)."""

    source = SOURCE

    def __init__(self, selector: Selector, mapping: Mapping | None = None):
        super().__init__(selector, mapping)
        line = selector.param("line")
        self.line = int(line) if line is not None else None
        self.params = {"configId": self.line} if self.line is not None else {}

    # -- availability --

    def _record(self, ctx: SyncContext, exc: OpenLinesUnavailable | None, now: int) -> None:
        """Write ``openlines.status``: the portal-wide verdict for the settings page, and per
        selector whether its last run could read (a selector refused until now re-reads all)."""
        selectors = dict((ctx.setting(STATUS_KEY) or {}).get("selectors") or {})
        selectors[self.selector.raw] = exc is None
        if exc is None:
            value = {"available": True, "code": None, "message": None, "checked_at": now}
        else:
            value = {
                "available": False,
                "code": exc.code,
                "message": str(exc),
                "detail": exc.error.description,
                "checked_at": now,
            }
            log.warning("open lines unavailable for %s: %s", ctx.portal, exc)
        ctx.set_setting(STATUS_KEY, {**value, "selectors": selectors})

    def _guard(self, ctx: SyncContext, gen: Iterator[Page], keep_stored: bool = False) -> Iterator[Page]:
        """Run a reader; a plan/scope/access refusal ends it quietly with the status recorded.

        ``keep_stored`` (full sync): the orchestrator marks deleted whatever a full sync did not
        see, so after a refusal the stored sessions of the selector are handed back unchanged.
        """
        now = int(time.time())
        try:
            yield from gen
        except OpenLinesUnavailable as exc:
            self._record(ctx, exc, now)
            if keep_stored:
                yield from self._stored_pages(ctx)
            return
        self._record(ctx, None, now)

    def _stored_pages(self, ctx: SyncContext) -> Iterator[Page]:
        """The selector's stored tickets with their latest snapshot: re-saving them changes nothing."""
        if ctx.db is None:
            return
        from ..store import ticket_from_row

        rows = ctx.db.query(
            "select t.*, (select data from snapshots s where s.portal = t.portal and s.source = t.source"
            " and s.source_id = t.source_id order by observed_at desc, rowid desc limit 1) as _snap"
            " from tickets t where t.portal = ? and t.source = ? and t.selector = ?"
            " and coalesce(t.deleted, 0) = 0",
            [ctx.portal, SOURCE, self.selector.raw],
        )
        for group in _grouped(rows, PAGE_SESSIONS):
            yield Page(
                bundles=[
                    Bundle(ticket=ticket_from_row(r), events=[], snapshot=json.loads(r["_snap"]) if r["_snap"] else {})
                    for r in group
                ]
            )

    # -- helpers --

    def _portal_now(self, client) -> int:
        """The portal's clock (``server.time``, DOCS api-reference/common/system/server-time.md)."""
        try:
            return _to_ts(client.call("server.time"))
        except (B24Error, ValueError, TypeError):
            return int(time.time())

    def _lines(self, client, ctx: SyncContext) -> dict[str, str]:
        cached = ctx.setting(LINES_KEY, {}) or {}
        try:
            names = line_names(client)
        except B24Error as err:
            log.info("line names unavailable (%s); using %d cached", err, len(cached))
            return cached
        if names and names != cached:
            ctx.set_setting(LINES_KEY, {**cached, **names})
        return {**cached, **names}

    def _bots(self, ctx: SyncContext) -> set[str]:
        """Configured bots, users flagged as bots, and the bots earlier syncs recognised."""
        bots = set(ctx.bot_users) | {str(b) for b in ctx.setting(BOTS_KEY, []) or []}
        if ctx.db is not None and "users" in ctx.db.table_names():
            bots |= {
                str(r["id"]) for r in ctx.db.query("select id from users where portal = ? and is_bot = 1", [ctx.portal])
            }
        return bots

    def _bundle_pages(
        self, client, ctx: SyncContext, sessions: Iterable[dict], ratings: dict[str, dict] | None = None
    ) -> Iterator[Page]:
        lines = self._lines(client, ctx)
        bots = self._bots(ctx)
        for group in _grouped(sessions, PAGE_SESSIONS):
            ids = [str(s["id"]) for s in group]
            need = [str(s["id"]) for s in group if (as_int(s.get("queueTransfers")) or 0) > 0]
            trs, sts = details_for(client, need, ids)
            seen = infer_bots(group, trs) - bots
            if seen:  # remembered, so a bot still busy with a dialog is known
                bots |= seen
                ctx.set_setting(BOTS_KEY, sorted(bots - ctx.bot_users - {"0"}))
            bundles = [
                map_session(
                    ctx.portal,
                    s,
                    trs.get(str(s["id"])),
                    sts.get(str(s["id"])),
                    (ratings or {}).get(str(s["id"])),
                    lines,
                    bots,
                    self.selector.raw,
                )
                for s in group
            ]
            yield Page(bundles=bundles, last_id=ids[-1])

    def _earliest(self, client) -> int | None:
        try:
            body = _result(
                client.call_raw(M_SESSIONS, {**self.params, "order": "dateCreate", "orderDirection": "asc", "limit": 1})
            )
        except B24Error as err:
            _check(err)
        rows = body.get("sessions") or []
        return parse_time(rows[0].get("dateCreate")) if rows else None

    # -- the readers --

    def full(self, client, ctx: SyncContext, after_id: str | None = None) -> Iterator[Page]:
        return self._guard(ctx, self._full(client, ctx, after_id), keep_stored=True)

    def _full(self, client, ctx, after_id):
        start = self._earliest(client)
        if start is None:
            return
        if after_id is not None:
            prev = ctx.previous(SOURCE, after_id)
            if prev and prev.get("created_at"):
                start = max(start, int(prev["created_at"]))
        since = ctx.config.get("openlines_since")
        if since:
            start = max(start, _to_ts(since))
        now = self._portal_now(client) + 3600
        ratings = list_ratings(client, self.params, start, now)
        yield from self._bundle_pages(client, ctx, list_sessions(client, self.params, start, now), ratings)

    def incremental(self, client, ctx: SyncContext, since: int) -> Iterator[Page]:
        last = (ctx.setting(STATUS_KEY) or {}).get("selectors") or {}
        if not last.get(self.selector.raw):
            # refused until now (plan upgraded, access granted?): read everything, not just changes
            ctx.portal_now = self._portal_now(client)
            return self._guard(ctx, self._full(client, ctx, None))
        return self._guard(ctx, self._incremental(client, ctx, int(since)))

    def _incremental(self, client, ctx, since):
        started = self._portal_now(client)
        ctx.portal_now = started
        now = started + 3600
        ratings = list_ratings(client, self.params, since, now)
        seen: set = set()

        def sessions():
            yield from list_sessions(client, self.params, since, now, "Create", seen)
            yield from list_sessions(client, self.params, since, now, "Close", seen)
            # sessions still open in the store: transfers and answers happen without a date filter
            oldest = self._oldest_open(ctx)
            if oldest is not None and oldest < since:
                for status in OPEN_STATUSES:
                    yield from list_sessions(client, {**self.params, "status": status}, oldest, since, "Create", seen)
            # votes on sessions closed before ``since``: found by their close second
            late = sorted(
                {
                    parse_time(r.get("dateSessionClose"), "dateSessionClose")
                    for sid, r in ratings.items()
                    if sid not in seen and parse_time(r.get("dateSessionClose"), "dateSessionClose")
                }
            )
            for a, b in _merge_times(late, 3600):
                for s in list_sessions(client, self.params, a, b, "Close", seen):
                    if str(s.get("id")) in ratings:
                        yield s

        yield from self._bundle_pages(client, ctx, sessions(), ratings)

    def _oldest_open(self, ctx: SyncContext) -> int | None:
        if ctx.db is None:
            return None
        # an open session's row has no closed_at (map_session): the open tickets through that index,
        # not every session of the portal (0.23 s at 1M tickets, whatever the statistics)
        sql = (
            "select min(created_at) as m from tickets where portal = ? and closed_at is null and source = ?"
            " and state = ? and coalesce(deleted, 0) = 0"
        )
        args = [ctx.portal, SOURCE, OPEN]
        if self.line is not None:
            sql += " and line = ?"
            args.append(str(self.line))
        rows = list(ctx.db.query(sql, args))
        return rows[0]["m"] if rows and rows[0]["m"] is not None else None

    def fetch_ids(self, client, ctx: SyncContext, ids: Iterable[str]) -> Iterator[Page]:
        return self._guard(ctx, self._fetch_ids(client, ctx, {str(i) for i in ids}))

    def _fetch_ids(self, client, ctx, wanted):
        """Sessions by id: the API has no id filter, so each is found by its stored creation time."""
        times = []
        for sid in wanted:
            prev = ctx.previous(SOURCE, sid)
            if prev and prev.get("created_at"):
                times.append(int(prev["created_at"]))
            else:
                log.info("session %s is not in the store: a full sync will find it", sid)
        found = (
            s
            for a, b in _merge_times(sorted(times), 3600)
            for s in list_sessions(client, self.params, a, b)
            if str(s.get("id")) in wanted
        )
        yield from self._bundle_pages(client, ctx, found)

    def list_ids(self, client) -> set[str]:
        start = self._earliest(client)
        if start is None:
            return set()
        now = self._portal_now(client) + 3600
        return {str(s["id"]) for s in list_sessions(client, self.params, start, now)}


def _grouped(items: Iterable, n: int) -> Iterator[list]:
    buf = []
    for x in items:
        buf.append(x)
        if len(buf) >= n:
            yield buf
            buf = []
    if buf:
        yield buf


def _merge_times(times: list[int], gap: int) -> list[tuple[int, int]]:
    """Sorted instants -> inclusive windows joining instants less than ``gap`` apart."""
    out: list[tuple[int, int]] = []
    for t in times:
        if out and t - out[-1][1] < gap and t - out[-1][0] < MAX_SPAN:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out


@register("openlines")
def _factory(selector: Selector, mapping: Mapping) -> Source:
    for k, v in selector.params:
        if k != "line":
            raise SelectorError(f"{selector.raw!r}: unknown parameter {k!r} (allowed: line)")
        if not v.isdigit():
            raise SelectorError(f"{selector.raw!r}: line must be a number")
    return OpenLinesSource(selector, mapping)


# --- the cross-check against the portal's own figures ---------------------------------------------


def our_figures(tickets: list[dict], first_replies: dict[str, int]) -> dict:
    """FRT average (bots excluded) and positive-vote share over the given open-line tickets (pure)."""
    waits = [
        first_replies[t["source_id"]] - t["created_at"]
        for t in tickets
        if first_replies.get(t["source_id"]) is not None
    ]
    votes = [t["rating"] for t in tickets if t.get("rating") in (1, 5)]
    return {
        "sessions": len(tickets),
        "answered": len(waits),
        "frt_avg": (sum(waits) / len(waits)) if waits else None,
        "voted": len(votes),
        "positive_rate": (sum(1 for v in votes if v == 5) / len(votes)) if votes else None,
    }


def compare(
    ours: dict, theirs: dict, frt_tolerance: float = 0.05, frt_floor: float = 5.0, rate_tolerance: float = 0.01
) -> dict:
    """Which figures differ beyond the tolerance (pure). ``theirs`` is a ``statResult``."""
    out = {}
    t_frt = theirs.get("avgWaitAnswer")
    if ours["frt_avg"] is not None or ours["answered"] or (theirs.get("totalSessions") or 0):
        o = ours["frt_avg"] or 0.0
        t = float(t_frt or 0.0)
        out["frt_avg"] = abs(o - t) > max(frt_floor, frt_tolerance * max(abs(o), abs(t)))
    o_rate = ours["positive_rate"]
    t_rate = float(theirs.get("positiveRate") or 0.0)
    if ours["voted"] or (theirs.get("votedSessions") or 0):
        out["positive_rate"] = abs((o_rate or 0.0) - t_rate) > rate_tolerance
    return out


def crosscheck(
    db, client, portal: str, date_from, date_to, line: int | None = None, config: dict | None = None
) -> dict:
    """Our FRT average and positive rate for ``[date_from, date_to)`` against ``imopenlines.v2.Stat.get``.

    ``date_from``/``date_to``: unix seconds, datetimes, ISO datetimes, or ``YYYY-MM-DD`` (midnight in
    the portal's time zone, as ``flask kpi`` reads them). The period is the sessions' creation time
    (Stat.get's ``dateFrom``/``dateTo``, both inclusive, so ``dateTo`` is sent as ``date_to`` - 1 s).
    The result is stored in the setting ``openlines.crosscheck`` and returned: ``{"available",
    "period", "ours", "portal", "differs", "differences", "notes", "checked_at"}``. ``differs`` is
    what the admin page shows; the usual cause is that Bitrix24 counts a bot's answer as the first
    response and we do not.
    """
    from ..kpi.load import portal_zone
    from ..kpi.periods import parse_point, zone
    from ..store import set_setting

    tz = zone(portal_zone(db, portal, config))  # the zone build_report uses
    a, b = parse_point(date_from, tz), parse_point(date_to, tz)
    if b <= a:
        raise ValueError("date_to must be after date_from")
    if b - a > 366 * 86400:
        raise ValueError("the period may span at most 366 days (imopenlines.v2.Stat.get)")
    period = {"from": iso(a), "to": iso(b)}
    params = {"dateFrom": iso(a), "dateTo": iso(b - 1)}
    if line is not None:
        params["configId"] = int(line)
    now = int(time.time())
    try:
        try:
            theirs = client.call(M_STAT, params) or {}
        except B24Error as err:
            _check(err)
    except OpenLinesUnavailable as exc:
        result = {
            "available": False,
            "code": exc.code,
            "message": str(exc),
            "period": period,
            "line": line,
            "checked_at": now,
            "differs": False,
        }
        with db.atomic():
            set_setting(db, portal, CROSSCHECK_KEY, result)
        return result
    sql = (
        "select source_id, created_at, rating from tickets where portal = ? and source = ?"
        " and created_at >= ? and created_at < ? and coalesce(deleted, 0) = 0"
    )
    args = [portal, SOURCE, a, b]
    if line is not None:
        sql += " and line = ?"
        args.append(str(line))
    tickets = list(db.query(sql, args))
    firsts = {
        r["source_id"]: r["m"]
        for r in db.query(
            "select e.source_id, min(e.at) as m from events e join tickets t on t.portal = e.portal"
            " and t.source = e.source and t.source_id = e.source_id where e.portal = ? and e.source = ?"
            " and e.kind = ? and t.created_at >= ? and t.created_at < ? group by e.source_id",
            [portal, SOURCE, REPLY, a, b],
        )
    }
    ours = our_figures(tickets, firsts)
    portal_fig = {
        "total_sessions": theirs.get("totalSessions"),
        "frt_avg": theirs.get("avgWaitAnswer"),
        "voted": theirs.get("votedSessions"),
        "positive_rate": theirs.get("positiveRate"),
    }
    diffs = compare(ours, theirs)
    notes = []
    if ours["sessions"] != (theirs.get("totalSessions") or 0):
        notes.append(
            f"sessions: {ours['sessions']} synced, {theirs.get('totalSessions') or 0} on the portal"
            " (sync not finished, or lines hidden from the syncing user)"
        )
    if diffs.get("frt_avg"):
        notes.append(
            "first response: Bitrix24 counts a chatbot's answer as the first response; "
            "b24desk counts only live operators (kpi.md)"
        )
    if diffs.get("positive_rate"):
        notes.append("positive rate: votes given after the last sync are not counted yet")
    result = {
        "available": True,
        "period": period,
        "line": line,
        "ours": ours,
        "portal": portal_fig,
        "differences": diffs,
        "differs": any(diffs.values()),
        "notes": notes,
        "checked_at": now,
    }
    with db.atomic():
        set_setting(db, portal, CROSSCHECK_KEY, result)
    return result


def status(db, portal: str) -> dict | None:
    """The recorded availability (``{"available", "code", "message", "checked_at"}``) or None."""
    from ..store import get_setting

    return get_setting(db, portal, STATUS_KEY)
