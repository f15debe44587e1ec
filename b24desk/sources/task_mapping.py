"""Bitrix24 task payloads -> the normalized ticket and its event log (kpi.md section 1, tasks column).

Pure functions over documented payloads only:
- the task row of ``tasks.task.list`` (camelCase, mostly strings; DOCS api-reference/tasks/tasks-task-list.md,
  fields.md),
- ``tasks.task.history.list`` rows ``{id, createdDate, field, value{from,to}, user{id}}``
  (DOCS api-reference/tasks/tasks-task-history-list.md),
- comments from ``task.commentitem.getlist`` ``{ID, AUTHOR_ID, POST_DATE}``
  (DOCS api-reference/tasks/comment-item/task-comment-item-get-list.md) or, in the new task card,
  task-chat messages of ``im.dialog.messages.get`` ``{id, author_id, date}`` (author 0 = system;
  DOCS api-reference/chats/messages/im-dialog-messages-get.md, api-reference/tasks/tasks-new.md),
- elapsed-time items of ``task.elapseditem.getlist`` ``{ID, USER_ID, SECONDS, CREATED_DATE, DATE_START,
  DATE_STOP}`` (DOCS api-reference/tasks/elapsed-item/task-elapsed-item-get-list.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model import (
    ASSIGNED,
    CREATED,
    CUSTOMER_MESSAGE,
    ESCALATED,
    FIELD_CHANGED,
    OPEN,
    RATED,
    REOPENED,
    REPLY,
    RESOLVED,
    RESOLVED_EV,
    STATUS,
    WORKED,
    Bundle,
    Event,
    Ticket,
    event_maker,
    parse_time,
)
from .base import Mapping, as_id, as_int, dedupe_events, field_value, scalar

SOURCE = "task"
CLOSED_STATUSES = {"4", "5"}  # 4 awaiting control, 5 completed (kpi.md: both count as resolved)
PRIORITY = {"0": "low", "1": "normal", "2": "high"}
MARK_RATING = {"P": 5, "N": 1}

# What the tasks source selects: always pass select (DOCS tasks-task-list.md: "the default set may change").
SELECT = [
    "ID",
    "TITLE",
    "STATUS",
    "PRIORITY",
    "MARK",
    "RESPONSIBLE_ID",
    "CREATED_BY",
    "CREATED_DATE",
    "CHANGED_DATE",
    "CLOSED_DATE",
    "STATUS_CHANGED_DATE",
    "ACTIVITY_DATE",
    "DEADLINE",
    "GROUP_ID",
    "TIME_SPENT_IN_LOGS",
]


@dataclass
class Message:
    """A task comment or task-chat message, reduced to what the KPIs need."""

    key: str  # "c:<comment id>" or "m:<chat message id>"
    author_id: str | None
    at: int


def messages_from_comments(rows) -> list[Message]:
    out = []
    for r in rows or []:
        at = parse_time(r.get("POST_DATE"), "POST_DATE")
        if at is None or r.get("ID") in (None, ""):
            continue
        out.append(Message(f"c:{r['ID']}", as_id(r.get("AUTHOR_ID")), at))
    return out


def messages_from_chat(rows) -> list[Message]:
    out = []
    for r in rows or []:
        at = parse_time(r.get("date"), "date")
        if at is None or r.get("id") in (None, ""):
            continue
        out.append(Message(f"m:{r['id']}", as_id(r.get("author_id")), at))
    return out


ELAPSED_SELECT = ["ID", "USER_ID", "SECONDS", "CREATED_DATE", "DATE_START", "DATE_STOP"]


def worked_events(portal: str, tid: str, elapsed) -> list[Event]:
    """One ``worked`` event per elapsed-time item, stamped when it was logged (``CREATED_DATE``, else
    its stop/start), so AHT as of ``to`` counts only the time logged before ``to``."""
    out = []
    for r in elapsed or []:
        if not isinstance(r, dict) or r.get("ID") in (None, ""):
            continue
        secs = as_int(r.get("SECONDS"))
        at = (
            parse_time(r.get("CREATED_DATE"), "CREATED_DATE")
            or parse_time(r.get("DATE_STOP"), "DATE_STOP")
            or parse_time(r.get("DATE_START"), "DATE_START")
        )
        if secs is None or secs < 0 or at is None:
            continue
        out.append(
            Event(portal, SOURCE, tid, f"w:{r['ID']}", WORKED, at, as_id(r.get("USER_ID")), None, None, str(secs))
        )
    return out


def _status(value) -> str | None:
    v = scalar(value)
    if v is None:
        return None
    s = str(v).strip()
    return str(int(s)) if s.lstrip("-").isdigit() else s


def _history_sorted(history) -> list[dict]:
    rows = [h for h in (history or []) if isinstance(h, dict)]
    return sorted(rows, key=lambda h: (parse_time(h.get("createdDate"), "createdDate") or 0, as_int(h.get("id")) or 0))


def _hval(h: dict, end: str):
    v = h.get("value") or {}
    return v.get(end) if isinstance(v, dict) else None


def _user(h: dict) -> str | None:
    u = h.get("user")
    return as_id(u.get("id")) if isinstance(u, dict) else as_id(u)


def initial_responsible(task: dict, history) -> str | None:
    """Responsible at creation: the ``from`` of the first RESPONSIBLE_ID change, else the current one."""
    for h in _history_sorted(history):
        if h.get("field") == "RESPONSIBLE_ID":
            frm = as_id(_hval(h, "from"))
            if frm:
                return frm
            break
    return as_id(task.get("responsibleId"))


def priority_of(task: dict, mapping: Mapping) -> tuple[str, str | None]:
    if mapping.priority:
        raw = scalar(field_value(task, mapping.priority))
        raw = None if raw is None else str(raw)
        return mapping.priority_values.get(raw or "", "normal") if raw is not None else "normal", raw
    raw = _status(task.get("priority"))
    return PRIORITY.get(raw or "", "normal"), raw


def task_events(
    portal: str, task: dict, history, messages: list[Message], mapping: Mapping, bot_users: set[str], elapsed=None
) -> list[Event]:
    """The event log of one task, from its history, comments and elapsed time (kpi.md section 1)."""
    tid = str(task.get("id"))
    author = as_id(task.get("createdBy"))
    created_at = parse_time(task.get("createdDate"), "createdDate") or 0

    ev = event_maker(portal, SOURCE, tid)

    events = [
        ev("created", CREATED, created_at, author),
        ev("assigned:0", ASSIGNED, created_at, author, None, None, initial_responsible(task, history)),
    ]
    rows = _history_sorted(history)
    status_field = "STATUS" if any(h.get("field") == "STATUS" for h in rows) else "REAL_STATUS"
    closed = None  # tracked state while walking the history
    escalation = set(mapping.escalation_stages)
    for h in rows:
        f, at, actor = h.get("field"), parse_time(h.get("createdDate"), "createdDate"), _user(h)
        if at is None:
            continue
        key = f"h:{h.get('id')}"
        if f == status_field:
            frm, to = _status(_hval(h, "from")), _status(_hval(h, "to"))
            events.append(ev(key, STATUS, at, actor, "STATUS", frm, to))
            was_closed = (frm in CLOSED_STATUSES) if frm is not None else bool(closed)
            now_closed = to in CLOSED_STATUSES
            if now_closed and not was_closed:
                events.append(ev(key + ":resolved", RESOLVED_EV, at, actor, None, frm, to))
            elif was_closed and not now_closed and to is not None:
                events.append(ev(key + ":reopened", REOPENED, at, actor, None, frm, to))
            closed = now_closed
        elif f == "RENEW" and closed:
            events.append(ev(key + ":reopened", REOPENED, at, actor))
            closed = False
        elif f == "RESPONSIBLE_ID":
            events.append(ev(key, ASSIGNED, at, actor, None, as_id(_hval(h, "from")), as_id(_hval(h, "to"))))
        elif f in ("PRIORITY", "DEADLINE", "TITLE", "GROUP_ID") and not (
            (f == "PRIORITY" and mapping.priority) or (f == "DEADLINE" and mapping.deadline)
        ):
            events.append(
                ev(key, FIELD_CHANGED, at, actor, f.lower(), scalar(_hval(h, "from")), scalar(_hval(h, "to")))
            )
        elif f == "MARK" and not mapping.rating:
            frm, to = scalar(_hval(h, "from")), scalar(_hval(h, "to"))
            events.append(ev(key, RATED, at, actor, "MARK", frm, MARK_RATING.get(str(to or ""))))
        elif f == "STAGE_ID" and escalation:
            to = scalar(_hval(h, "to"))
            if to is not None and str(to) in escalation:
                events.append(ev(key, ESCALATED, at, actor, "stage", scalar(_hval(h, "from")), to))
    for m in messages:
        if m.author_id is None or m.author_id in bot_users:
            continue  # system notices and bots are nobody's reply
        kind = CUSTOMER_MESSAGE if m.author_id == author else REPLY
        events.append(ev(m.key, kind, m.at, m.author_id))
    events.extend(worked_events(portal, tid, elapsed))
    _reconcile_state(events, task, ev)
    return dedupe_events(events)


def _resolution_time(task: dict) -> int | None:
    return (
        parse_time(task.get("closedDate"), "closedDate")
        or parse_time(task.get("statusChangedDate"), "statusChangedDate")
        or parse_time(task.get("changedDate"), "changedDate")
    )


def _reconcile_state(events: list[Event], task: dict, ev) -> None:
    """Make the log end in the task's current state when the history has a gap.

    A task completed or renewed without a STATUS history row (imports, old portals) would
    otherwise be resolved on the ticket but open in the log, and "as of" reports would disagree.
    """
    status = _status(task.get("status"))
    if status is None:
        return
    marks = [e for e in events if e.kind in (RESOLVED_EV, REOPENED)]
    marks.sort(key=lambda e: e.at)
    log_closed = bool(marks) and marks[-1].kind == RESOLVED_EV
    if status in CLOSED_STATUSES and not log_closed:
        at = _resolution_time(task) or (parse_time(task.get("createdDate"), "createdDate") or 0)
        events.append(ev(f"x:resolved:{at}", RESOLVED_EV, at, as_id(task.get("closedBy")), None, None, status))
    elif status not in CLOSED_STATUSES and log_closed:
        at = (
            parse_time(task.get("statusChangedDate"), "statusChangedDate")
            or parse_time(task.get("changedDate"), "changedDate")
            or marks[-1].at
        )
        events.append(ev(f"x:reopened:{at}", REOPENED, max(at, marks[-1].at), None, None, None, status))


def map_task(
    portal: str,
    task: dict,
    history,
    messages: list[Message],
    mapping: Mapping | None = None,
    bot_users: set[str] | None = None,
    selector: str | None = None,
    elapsed=None,
) -> Bundle:
    """One task row (+ its history, messages and elapsed items) -> a Bundle; the row is the snapshot."""
    mapping = mapping or Mapping()
    bots = {"0"} | set(bot_users or ())
    tid = str(task.get("id"))
    events = task_events(portal, task, history, messages, mapping, bots, elapsed)
    status = _status(task.get("status"))
    state = RESOLVED if status in CLOSED_STATUSES else OPEN
    resolved_at = None
    if state == RESOLVED:
        res = [e.at for e in events if e.kind == RESOLVED_EV]
        resolved_at = max(res) if res else _resolution_time(task)
    priority, priority_raw = priority_of(task, mapping)
    if mapping.rating:
        rating = as_int(field_value(task, mapping.rating))
    else:
        rating = MARK_RATING.get(str(scalar(task.get("mark")) or ""))
    deadline = (
        parse_time(scalar(field_value(task, mapping.deadline)))
        if mapping.deadline
        else parse_time(task.get("deadline"), "deadline")
    )
    type_ = scalar(field_value(task, mapping.type)) if mapping.type else None
    spent = as_int(task.get("timeSpentInLogs"))
    author = as_id(task.get("createdBy"))
    responsible = as_id(task.get("responsibleId"))
    ticket = Ticket(
        portal=portal,
        source=SOURCE,
        source_id=tid,
        title=str(task.get("title") or ""),
        type=None if type_ is None else str(type_),
        priority=priority,
        priority_raw=priority_raw,
        author_id=author,
        customer=author,
        responsible_id=responsible,
        created_at=parse_time(task.get("createdDate"), "createdDate") or 0,
        deadline=deadline,
        resolved_at=resolved_at,
        closed_at=resolved_at,
        state=state,
        rating=rating,
        nps=as_int(field_value(task, mapping.nps)) if mapping.nps else None,
        ces=as_int(field_value(task, mapping.ces)) if mapping.ces else None,
        handle_time=spent if spent else None,
        selector=selector,
        url=f"/company/personal/user/{responsible or 0}/tasks/task/view/{tid}/",
    )
    return Bundle(ticket=ticket, events=events, snapshot=dict(task))
