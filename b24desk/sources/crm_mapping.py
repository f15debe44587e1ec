"""CRM deals and smart-process items -> the normalized ticket and its event log (kpi.md section 1).

Pure functions over documented payloads only:
- items of ``crm.item.list`` (camelCase, typed; DOCS api-reference/crm/universal/crm-item-list.md),
- ``crm.stagehistory.list`` rows ``{ID, TYPE_ID, OWNER_ID, CREATED_TIME, CATEGORY_ID, STAGE_SEMANTIC_ID,
  STAGE_ID}``; TYPE_ID 1 created, 2 intermediate stage, 3 final stage, 5 funnel changed
  (DOCS api-reference/crm/crm-stage-history-list.md),
- ``crm.activity.list`` rows (UPPERCASE strings; DIRECTION 1 incoming / 2 outgoing, TYPE_ID 2 call,
  4 e-mail; DOCS api-reference/crm/timeline/activities/activity-base/crm-activity-list.md,
  api-reference/crm/data-types.md#activity-enums),
- ``crm.timeline.comment.list`` rows ``{ID, CREATED, AUTHOR_ID}``
  (DOCS api-reference/crm/timeline/comments/crm-timeline-comment-list.md),
- stage semantics from ``crm.status.list`` ``SEMANTICS`` (S, F, else in progress) and category names
  from ``crm.category.list`` (DOCS api-reference/crm/status/crm-status-list.md,
  api-reference/crm/universal/category/crm-category-list.md).

CRM has no responsible-change history: transfers come from diffing stored snapshots
(``b24desk.sources.base.diff_events``), which the source applies, not this module.
"""

from __future__ import annotations

from ..model import (
    ASSIGNED,
    CALL_OUT,
    COMMENT,
    CREATED,
    CUSTOMER_MESSAGE,
    ESCALATED,
    FIELD_CHANGED,
    OPEN,
    REJECTED,
    REJECTED_EV,
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

STATE_OF = {"S": RESOLVED, "F": REJECTED}


def source_name(entity_type_id: int) -> str:
    return f"crm:{entity_type_id}"


def semantics_of(stage_id, stages: dict | None, item_semantic=None) -> str:
    """``P`` / ``S`` / ``F`` for a stage: the item's own ``stageSemanticId`` (deals), else the stage list."""
    sem = scalar(item_semantic)
    if sem in ("P", "S", "F"):
        return sem
    sem = (stages or {}).get(str(stage_id)) if stage_id is not None else None
    return sem if sem in ("S", "F") else "P"


def stage_semantics(status_rows) -> dict[str, str]:
    """``crm.status.list`` rows -> ``{STATUS_ID: "P"|"S"|"F"}`` (SEMANTICS null/"" = in progress)."""
    out = {}
    for r in status_rows or []:
        sid = r.get("STATUS_ID")
        if sid is None:
            continue
        sem = r.get("SEMANTICS") or ""
        if not sem and isinstance(r.get("EXTRA"), dict):
            sem = {"success": "S", "failure": "F", "apology": "F"}.get(r["EXTRA"].get("SEMANTICS"), "")
        out[str(sid)] = sem if sem in ("S", "F") else "P"
    return out


def _item_id(item: dict) -> str:
    return str(item.get("id", item.get("ID")))


def crm_events(
    portal: str,
    entity_type_id: int,
    item: dict,
    history,
    activities,
    comments,
    mapping: Mapping,
    stages: dict | None,
    categories: dict | None,
    bot_users: set[str],
) -> list[Event]:
    source, iid = source_name(entity_type_id), _item_id(item)
    author = as_id(item.get("createdBy"))
    created_at = parse_time(item.get("createdTime"), "createdTime") or 0

    ev = event_maker(portal, source, iid)

    events = [
        ev("created", CREATED, created_at, author),
        ev("assigned:0", ASSIGNED, created_at, author, None, None, as_id(item.get("assignedById"))),
    ]
    escalation = set(mapping.escalation_stages)
    rows = sorted((h for h in (history or []) if isinstance(h, dict)), key=lambda h: as_int(h.get("ID")) or 0)
    prev_stage, prev_sem, prev_cat = None, None, None
    for h in rows:
        at = parse_time(h.get("CREATED_TIME"), "CREATED_TIME")
        if at is None:
            continue
        stage = scalar(h.get("STAGE_ID", h.get("STATUS_ID")))
        sem = semantics_of(stage, stages, h.get("STAGE_SEMANTIC_ID", h.get("STATUS_SEMANTIC_ID")))
        cat = scalar(h.get("CATEGORY_ID"))
        key = f"s:{h.get('ID')}"
        if str(h.get("TYPE_ID")) == "1":  # creation: the first stage, not a change
            prev_stage, prev_sem, prev_cat = stage, sem, cat
            continue
        if str(h.get("TYPE_ID")) == "5" and cat is not None and str(cat) != str(prev_cat):
            # funnel change: with type = the funnel (default) it is a requalification
            field = "category" if mapping.type else "type"
            events.append(ev(key + ":" + field, FIELD_CHANGED, at, None, field, prev_cat, cat))
        events.append(ev(key, STATUS, at, None, "STAGE_ID", prev_stage, stage))
        if prev_sem in ("S", "F") and sem == "P":
            events.append(ev(key + ":reopened", REOPENED, at, None, None, prev_stage, stage))
        elif sem == "S" and prev_sem != "S":
            events.append(ev(key + ":resolved", RESOLVED_EV, at, None, None, prev_stage, stage))
        elif sem == "F" and prev_sem != "F":
            events.append(ev(key + ":rejected", REJECTED_EV, at, None, None, prev_stage, stage))
        if escalation and stage is not None and str(stage) in escalation and prev_stage not in escalation:
            events.append(ev(key + ":escalated", ESCALATED, at, None, "stage", prev_stage, stage))
        prev_stage, prev_sem, prev_cat = stage, sem, (cat if cat is not None else prev_cat)
    customer = customer_of(item)
    for a in activities or []:
        aid, direction, atype = a.get("ID"), str(a.get("DIRECTION") or ""), str(a.get("TYPE_ID") or "")
        at = parse_time(a.get("START_TIME"), "START_TIME") or parse_time(a.get("CREATED"), "CREATED")
        if aid is None or at is None:
            continue
        # calls (2), e-mails (4) and open-line dialogs (provider IMOPENLINES_SESSION) talk to the
        # customer; meetings, tasks and to-dos are internal planning (crm/data-types.md#activity-enums)
        if atype not in ("2", "4") and a.get("PROVIDER_ID") != "IMOPENLINES_SESSION":
            continue
        length = call_length(a)
        if length is not None:  # tracked work, at the call's time like its other events
            actor = as_id(a.get("RESPONSIBLE_ID")) or as_id(a.get("AUTHOR_ID"))
            events.append(ev(f"a:{aid}:w", WORKED, at, actor, None, None, length))
        if direction == "1":
            events.append(ev(f"a:{aid}", CUSTOMER_MESSAGE, at, customer))
        elif direction == "2" and (a.get("COMPLETED") in ("Y", None) or atype == "4"):
            actor = as_id(a.get("RESPONSIBLE_ID")) or as_id(a.get("AUTHOR_ID"))
            if actor in bot_users:
                continue
            events.append(ev(f"a:{aid}", REPLY, at, actor))
            if atype == "2":
                events.append(ev(f"a:{aid}:out", CALL_OUT, at, actor))
    for c in comments or []:
        at, actor = parse_time(c.get("CREATED"), "CREATED"), as_id(c.get("AUTHOR_ID"))
        if c.get("ID") is None or at is None or actor in bot_users:
            continue
        events.append(ev(f"t:{c['ID']}", COMMENT, at, actor))
    _reconcile_state(events, item, stages, ev)
    return dedupe_events(events)


def _reconcile_state(events, item, stages, ev) -> None:
    """End the log in the item's current state when the stage history has a gap (see task_mapping)."""
    sem = semantics_of(item.get("stageId"), stages, item.get("stageSemanticId"))
    marks = sorted((e for e in events if e.kind in (RESOLVED_EV, REJECTED_EV, REOPENED)), key=lambda e: e.at)
    last = marks[-1].kind if marks else None
    at = (
        parse_time(item.get("movedTime"), "movedTime")
        or parse_time(item.get("updatedTime"), "updatedTime")
        or parse_time(item.get("createdTime"), "createdTime")
        or 0
    )
    stage = scalar(item.get("stageId"))
    if sem == "S" and last != RESOLVED_EV:
        events.append(ev(f"x:resolved:{at}", RESOLVED_EV, at, as_id(item.get("movedBy")), None, None, stage))
    elif sem == "F" and last != REJECTED_EV:
        events.append(ev(f"x:rejected:{at}", REJECTED_EV, at, as_id(item.get("movedBy")), None, None, stage))
    elif sem == "P" and last in (RESOLVED_EV, REJECTED_EV):
        events.append(
            ev(f"x:reopened:{at}", REOPENED, max(at, marks[-1].at), as_id(item.get("movedBy")), None, None, stage)
        )


def customer_of(item: dict) -> str | None:
    """The customer key: ``C_<contactId>``, else ``CO_<companyId>`` (the prefixes Bitrix24 itself uses
    for CRM bindings, DOCS api-reference/tasks/fields.md ``ufCrmTask``)."""
    contact, company = as_id(item.get("contactId")), as_id(item.get("companyId"))
    return f"C_{contact}" if contact else (f"CO_{company}" if company else None)


def call_length(a: dict) -> int | None:
    """Seconds of a completed call (TYPE_ID 2): END_TIME - START_TIME; None for anything else."""
    if str(a.get("TYPE_ID")) != "2" or a.get("COMPLETED") != "Y":
        return None
    start, end = parse_time(a.get("START_TIME"), "START_TIME"), parse_time(a.get("END_TIME"), "END_TIME")
    return end - start if start is not None and end is not None and end >= start else None


def handle_time(activities) -> int | None:
    """Tracked working time of a CRM ticket now: the summed length of its completed calls (kpi.md AHT;
    the KPIs use the per-call ``worked`` events instead, as of ``to``)."""
    lengths = [n for n in (call_length(a) for a in activities or []) if n is not None]
    return sum(lengths) if lengths else None


def item_url(entity_type_id: int, iid: str) -> str:
    if entity_type_id == 2:
        return f"/crm/deal/details/{iid}/"
    return f"/crm/type/{entity_type_id}/details/{iid}/"


def map_item(
    portal: str,
    entity_type_id: int,
    item: dict,
    history,
    activities,
    comments,
    mapping: Mapping | None = None,
    stages: dict | None = None,
    categories: dict | None = None,
    bot_users: set[str] | None = None,
    selector: str | None = None,
) -> Bundle:
    mapping = mapping or Mapping()
    bots = {"0"} | set(bot_users or ())
    iid = _item_id(item)
    events = crm_events(portal, entity_type_id, item, history, activities, comments, mapping, stages, categories, bots)
    sem = semantics_of(item.get("stageId"), stages, item.get("stageSemanticId"))
    state = STATE_OF.get(sem, OPEN)
    closes = [e.at for e in events if e.kind in (RESOLVED_EV, REJECTED_EV)]
    resolves = [e.at for e in events if e.kind == RESOLVED_EV]
    closed_at = max(closes) if state != OPEN and closes else None
    resolved_at = max(resolves) if state == RESOLVED and resolves else None
    if mapping.priority:
        raw = scalar(field_value(item, mapping.priority))
        raw = None if raw is None else str(raw)
        priority = mapping.priority_values.get(raw, "normal") if raw is not None else "normal"
    else:
        raw, priority = None, "normal"
    if mapping.type:
        t = scalar(field_value(item, mapping.type))
    else:
        t = scalar(item.get("categoryId"))  # the funnel id; its name is in ``categories``
    customer = customer_of(item)
    ticket = Ticket(
        portal=portal,
        source=source_name(entity_type_id),
        source_id=iid,
        title=str(item.get("title") or ""),
        type=None if t is None else str(t),
        priority=priority,
        priority_raw=raw,
        author_id=as_id(item.get("createdBy")),
        customer=customer,
        responsible_id=as_id(item.get("assignedById")),
        created_at=parse_time(item.get("createdTime"), "createdTime") or 0,
        deadline=parse_time(scalar(field_value(item, mapping.deadline))) if mapping.deadline else None,
        resolved_at=resolved_at,
        closed_at=closed_at,
        state=state,
        rating=as_int(field_value(item, mapping.rating)) if mapping.rating else None,
        nps=as_int(field_value(item, mapping.nps)) if mapping.nps else None,
        ces=as_int(field_value(item, mapping.ces)) if mapping.ces else None,
        handle_time=handle_time(activities),
        selector=selector,
        url=item_url(entity_type_id, iid),
    )
    return Bundle(ticket=ticket, events=events, snapshot=dict(item))
