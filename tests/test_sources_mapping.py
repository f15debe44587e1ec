"""Pure mappers: documented payloads -> normalized tickets and event logs (kpi.md section 1).

Payloads are shaped exactly like the examples of the official docs (bitrix24/b24restdocs), the file
named beside each fixture.
"""

import dataclasses

import pytest

from b24desk.model import parse_time
from b24desk.sources import get_source
from b24desk.sources.base import Mapping, SelectorError, diff_events, field_value, parse_selector
from b24desk.sources.crm_mapping import map_item, stage_semantics
from b24desk.sources.task_mapping import map_task, messages_from_chat, messages_from_comments

P = "member-1"


def kinds(bundle):
    return [(e.kind, e.from_value, e.to_value) for e in sorted(bundle.events, key=lambda e: (e.at, e.key))]


# --- tasks -------------------------------------------------------------------------------------


def task_row(**over):
    # api-reference/tasks/tasks-task-list.md: result.tasks[] (camelCase, string values)
    row = {
        "id": "8017",
        "title": "Printer jam",
        "status": "5",
        "priority": "2",
        "mark": "P",
        "responsibleId": "18",
        "createdBy": "503",
        "createdDate": "2026-10-05T09:00:00+03:00",
        "changedDate": "2026-10-08T16:00:00+03:00",
        "closedDate": "2026-10-08T15:00:00+03:00",
        "statusChangedDate": "2026-10-08T15:00:00+03:00",
        "deadline": None,
        "groupId": "0",
        "timeSpentInLogs": "1800",
    }
    row.update(over)
    return row


def hist(i, at, field, frm=None, to=None, user=503):
    # api-reference/tasks/tasks-task-history-list.md: result.list[]
    return {
        "id": i,
        "createdDate": at,
        "field": field,
        "value": {"from": frm, "to": to},
        "user": {
            "id": user,
            "name": "Danielle",
            "lastName": "Foster",
            "secondName": "",
            "login": "danielle@mysite.com",
        },
    }


T2_HISTORY = [  # kpi-examples.md ticket T2, newest first as the docs' default order
    hist(9, "2026-10-08T16:00:00+03:00", "MARK", None, "N", 503),
    hist(8, "2026-10-08T15:00:00+03:00", "STATUS", "2", "5", 18),
    hist(7, "2026-10-08T09:00:00+03:00", "STATUS", "5", "2", 503),
    hist(6, "2026-10-07T09:00:00+03:00", "STATUS", "3", "5", 18),
    hist(5, "2026-10-05T12:00:00+03:00", "RESPONSIBLE_ID", "10", "18", 1),
    hist(4, "2026-10-05T11:00:00+03:00", "COMMENT", None, "3409", 10),
    hist(2, "2026-10-05T09:00:00+03:00", "STATUS", "2", "3", 10),
    hist(1, "2026-10-05T09:00:00+03:00", "NEW", None, None, 503),
]
T2_COMMENTS = [  # api-reference/tasks/comment-item/task-comment-item-get-list.md
    {
        "POST_MESSAGE_HTML": None,
        "ID": "3411",
        "AUTHOR_ID": "18",
        "AUTHOR_NAME": "Ivan",
        "AUTHOR_EMAIL": "",
        "POST_DATE": "2026-10-06T09:00:00+03:00",
        "POST_MESSAGE": "Done?",
        "ATTACHED_OBJECTS": {},
    },
    {
        "POST_MESSAGE_HTML": None,
        "ID": "3409",
        "AUTHOR_ID": "10",
        "AUTHOR_NAME": "John Smith",
        "AUTHOR_EMAIL": "",
        "POST_DATE": "2026-10-05T11:00:00+03:00",
        "POST_MESSAGE": "Looking",
        "ATTACHED_OBJECTS": {},
    },
    {"ID": "3413", "AUTHOR_ID": "503", "POST_DATE": "2026-10-06T10:00:00+03:00", "POST_MESSAGE": "No"},
]


def test_task_t2_full_log():
    b = map_task(P, task_row(mark="N"), T2_HISTORY, messages_from_comments(T2_COMMENTS))
    t = b.ticket
    assert (t.source, t.source_id, t.state, t.priority, t.priority_raw) == ("task", "8017", "resolved", "high", "2")
    assert t.rating == 1 and t.customer == "503" and t.author_id == "503" and t.handle_time == 1800
    assert t.resolved_at == t.closed_at == parse_time("2026-10-08T15:00:00+03:00")
    got = kinds(b)
    assert ("assigned", None, "10") in got  # initial responsible, from the first change
    assert ("assigned", "10", "18") in got  # the transfer
    assert [k for k in got if k[0] == "resolved"] == [("resolved", "3", "5"), ("resolved", "2", "5")]
    assert [k for k in got if k[0] == "reopened"] == [("reopened", "5", "2")]
    assert [k[0] for k in got].count("reply") == 2  # by 10 and 18
    assert [k[0] for k in got].count("customer_message") == 1  # by the author
    assert ("rated", None, "1") in got
    keys = [e.key for e in b.events]
    assert len(keys) == len(set(keys))
    assert "c:3409" in keys and "h:8:resolved" in keys and "created" in keys


ELAPSED = [  # api-reference/tasks/elapsed-item/task-elapsed-item-get-list.md (strings)
    {
        "ID": "1",
        "TASK_ID": "8017",
        "USER_ID": "18",
        "COMMENT_TEXT": "1",
        "SECONDS": "1200",
        "MINUTES": "20",
        "SOURCE": "2",
        "CREATED_DATE": "2026-10-06T10:33:00+03:00",
        "DATE_START": "2026-10-06T10:13:00+03:00",
        "DATE_STOP": "2026-10-06T10:33:00+03:00",
    },
    {
        "ID": "2",
        "TASK_ID": "8017",
        "USER_ID": "10",
        "COMMENT_TEXT": "",
        "SECONDS": "600",
        "MINUTES": "10",
        "SOURCE": "2",
        "CREATED_DATE": "2026-10-09T12:00:00+03:00",
        "DATE_START": None,
        "DATE_STOP": None,
    },
    {"ID": "3", "SECONDS": "", "CREATED_DATE": "2026-10-09T12:00:00+03:00"},  # no seconds: skipped
]


def test_task_elapsed_items_are_worked_events_stamped_when_logged():
    b = map_task(P, task_row(), T2_HISTORY, messages_from_comments(T2_COMMENTS), elapsed=ELAPSED)
    worked = [(e.key, e.at, e.actor_id, e.to_value) for e in b.events if e.kind == "worked"]
    assert worked == [
        ("w:1", parse_time("2026-10-06T10:33:00+03:00"), "18", "1200"),
        ("w:2", parse_time("2026-10-09T12:00:00+03:00"), "10", "600"),
    ]
    assert b.ticket.handle_time == 1800  # the current total stays on the ticket
    assert not [e for e in map_task(P, task_row(), T2_HISTORY, []).events if e.kind == "worked"]


def test_task_4_to_5_is_not_a_second_resolution_and_leaving_4_is_a_reopen():
    h = [
        hist(1, "2026-10-01T10:00:00+03:00", "STATUS", "3", "4"),
        hist(2, "2026-10-01T11:00:00+03:00", "STATUS", "4", "5"),
        hist(3, "2026-10-02T11:00:00+03:00", "STATUS", "5", "6"),
        hist(4, "2026-10-03T11:00:00+03:00", "STATUS", "6", "4"),
    ]
    b = map_task(P, task_row(status="4", mark=None), h, [])
    got = [k for k in kinds(b) if k[0] in ("resolved", "reopened")]
    assert got == [("resolved", "3", "4"), ("reopened", "5", "6"), ("resolved", "6", "4")]
    assert b.ticket.state == "resolved" and b.ticket.rating is None


def test_task_without_status_history_gets_a_consistent_log():
    b = map_task(P, task_row(status="5"), [], [])  # history empty (e.g. an imported task)
    res = [e for e in b.events if e.kind == "resolved"]
    assert len(res) == 1 and res[0].at == parse_time("2026-10-08T15:00:00+03:00")
    b2 = map_task(
        P,
        task_row(status="2", closedDate=None, statusChangedDate="2026-10-09T10:00:00+03:00"),
        [hist(1, "2026-10-01T10:00:00+03:00", "STATUS", "3", "5")],
        [],
    )
    assert [e.kind for e in sorted(b2.events, key=lambda e: e.at) if e.kind in ("resolved", "reopened")] == [
        "resolved",
        "reopened",
    ]
    assert b2.ticket.state == "open" and b2.ticket.resolved_at is None


def test_task_system_and_bot_messages_are_not_replies():
    # api-reference/chats/messages/im-dialog-messages-get.md: author_id 0 = system message
    chat = [
        {
            "id": 28561624,
            "chat_id": 29,
            "author_id": 1,
            "date": "2026-10-05T10:00:00+03:00",
            "text": "hi",
            "params": {"IS_EDITED": "Y"},
        },
        {
            "id": 28561618,
            "chat_id": 29,
            "author_id": 0,
            "date": "2026-10-05T09:30:00+03:00",
            "text": "Status changed",
            "params": None,
        },
        {"id": 28561630, "chat_id": 29, "author_id": 77, "date": "2026-10-05T10:30:00+03:00", "text": "bot"},
    ]
    b = map_task(P, task_row(status="2", mark=None), [], messages_from_chat(chat), bot_users={"77"})
    msgs = [(e.kind, e.key, e.actor_id) for e in b.events if e.kind in ("reply", "customer_message", "comment")]
    assert msgs == [("reply", "m:28561624", "1")]


def test_task_priority_deadline_and_type_mapping():
    m = Mapping(type="UF_AUTO_TYPE", deadline="UF_DUE", rating="UF_SCORE")
    row = task_row(priority="0", ufAutoType="Hardware", ufDue="2026-10-31T18:00:00+03:00", ufScore="4")
    t = map_task(P, row, [], [], m).ticket
    assert (t.priority, t.type, t.rating) == ("low", "Hardware", 4)
    assert t.deadline == parse_time("2026-10-31T18:00:00+03:00")
    assert field_value({"ufCrm_1721244707107": 3}, "UF_CRM_1721244707107") == 3


# --- CRM ---------------------------------------------------------------------------------------

DEAL = {  # api-reference/crm/universal/crm-item-list.md, deal item fields
    "id": 342,
    "title": "No internet",
    "createdTime": "2024-07-18T14:00:14+02:00",
    "updatedTime": "2024-07-20T10:00:00+02:00",
    "createdBy": 1,
    "updatedBy": 1,
    "assignedById": 6,
    "opened": "N",
    "categoryId": 9,
    "stageId": "C9:WON",
    "stageSemanticId": "S",
    "closed": "Y",
    "isNew": "N",
    "begindate": "2024-06-18T02:00:00+02:00",
    "closedate": "2024-07-30T02:00:00+02:00",
    "movedBy": 6,
    "movedTime": "2024-07-20T10:00:00+02:00",
    "companyId": 5,
    "contactId": 4,
    "contactIds": [4, 5],
    "observers": [2, 3],
    "sourceId": "WEB",
    "typeId": "SERVICE",
    "ufCrm_1721244707107": 1111.1,
    "entityTypeId": 2,
}


def stage(i, at, type_id, stage_id, sem, cat=9):
    # api-reference/crm/crm-stage-history-list.md: result.items[]
    return {
        "ID": i,
        "TYPE_ID": type_id,
        "OWNER_ID": 342,
        "CREATED_TIME": at,
        "CATEGORY_ID": cat,
        "STAGE_SEMANTIC_ID": sem,
        "STAGE_ID": stage_id,
    }


DEAL_HISTORY = [
    stage(35, "2024-07-18T14:00:14+02:00", 1, "C9:NEW", "P"),
    stage(36, "2024-07-18T16:00:00+02:00", 3, "C9:WON", "S"),
    stage(37, "2024-07-19T09:00:00+02:00", 2, "C9:UC_SECOND", "P"),
    stage(38, "2024-07-20T10:00:00+02:00", 3, "C9:WON", "S"),
]
ACTIVITIES = [  # crm-activity-list.md / crm-activity-fields.md (UPPERCASE strings)
    {
        "ID": "20",
        "OWNER_ID": "342",
        "OWNER_TYPE_ID": "2",
        "TYPE_ID": "4",
        "PROVIDER_ID": "CRM_EMAIL",
        "CREATED": "2024-07-18T14:05:00+02:00",
        "COMPLETED": "N",
        "DIRECTION": "1",
        "AUTHOR_ID": "1",
        "RESPONSIBLE_ID": "6",
    },
    {
        "ID": "21",
        "OWNER_ID": "342",
        "OWNER_TYPE_ID": "2",
        "TYPE_ID": "2",
        "PROVIDER_ID": "VOXIMPLANT_CALL",
        "PROVIDER_TYPE_ID": "CALL",
        "CREATED": "2024-07-18T14:20:00+02:00",
        "START_TIME": "2024-07-18T14:10:00+02:00",
        "END_TIME": "2024-07-18T14:15:00+02:00",
        "COMPLETED": "Y",
        "STATUS": "2",
        "DIRECTION": "2",
        "RESPONSIBLE_ID": "6",
        "AUTHOR_ID": "6",
    },
    {
        "ID": "22",
        "OWNER_ID": "342",
        "OWNER_TYPE_ID": "2",
        "TYPE_ID": "2",
        "CREATED": "2024-07-25T10:00:00+02:00",
        "START_TIME": "2024-07-26T10:00:00+02:00",
        "COMPLETED": "N",
        "DIRECTION": "2",
        "AUTHOR_ID": "6",
    },
]
TIMELINE = [
    {
        "ID": "999",
        "ENTITY_ID": "342",
        "ENTITY_TYPE": "deal",
        "CREATED": "2024-07-18T15:00:00+02:00",
        "COMMENT": "internal note",
        "AUTHOR_ID": "6",
        "FILES": {},
    }
]
STATUSES = [  # api-reference/crm/status/crm-status-list.md
    {
        "ID": "111",
        "ENTITY_ID": "DEAL_STAGE_9",
        "STATUS_ID": "C9:WON",
        "NAME": "Deal successful",
        "SORT": "60",
        "SYSTEM": "Y",
        "CATEGORY_ID": "9",
        "COLOR": "#7BD500",
        "SEMANTICS": "S",
        "EXTRA": {"SEMANTICS": "success", "COLOR": "#7BD500"},
    },
    {"ID": "112", "ENTITY_ID": "DEAL_STAGE_9", "STATUS_ID": "C9:LOSE", "SEMANTICS": "F"},
    {"ID": "113", "ENTITY_ID": "DEAL_STAGE_9", "STATUS_ID": "C9:NEW", "SEMANTICS": None},
    {"ID": "114", "ENTITY_ID": "DEAL_STAGE_9", "STATUS_ID": "C9:UC_SECOND", "SEMANTICS": ""},
]


def test_deal_log_from_stage_history_activities_and_comments():
    m = Mapping(escalation_stages=("C9:UC_SECOND",))
    b = map_item(
        P,
        2,
        DEAL,
        DEAL_HISTORY,
        ACTIVITIES,
        TIMELINE,
        m,
        stage_semantics(STATUSES),
        {"9": "Support"},
        selector="deals:category=9",
    )
    t = b.ticket
    assert (t.source, t.source_id, t.state, t.type, t.customer) == ("crm:2", "342", "resolved", "9", "C_4")
    assert t.responsible_id == "6" and t.author_id == "1" and t.url == "/crm/deal/details/342/"
    assert t.resolved_at == t.closed_at == parse_time("2024-07-20T10:00:00+02:00")
    assert t.handle_time == 300  # one completed 5-minute call
    got = kinds(b)
    assert [k[0] for k in got if k[0] in ("resolved", "reopened")] == ["resolved", "reopened", "resolved"]
    assert ("escalated", "C9:WON", "C9:UC_SECOND") in got
    assert [k[0] for k in got].count("customer_message") == 1
    assert [k[0] for k in got].count("reply") == 1  # the planned call (COMPLETED N) is not one
    assert [k[0] for k in got].count("call_out") == 1
    assert [k[0] for k in got].count("comment") == 1
    # the completed call is tracked work at its start, by its responsible; the planned one (22) is not
    worked = [(e.key, e.at, e.actor_id, e.to_value) for e in b.events if e.kind == "worked"]
    assert worked == [("a:21:w", parse_time(ACTIVITIES[1]["START_TIME"]), "6", "300")]


def test_smart_process_semantics_from_status_list_and_lost_item():
    # SPA items carry no stageSemanticId (crm-item-list.md); semantics come from crm.status.list
    item = {
        "id": 5,
        "title": "Claim",
        "createdTime": "2024-07-18T14:00:14+02:00",
        "createdBy": 3,
        "assignedById": 7,
        "categoryId": 37,
        "stageId": "DT1038_37:FAIL",
        "movedTime": "2024-07-19T14:00:00+02:00",
        "companyId": 12,
        "contactId": 0,
    }
    stages = stage_semantics(
        [{"STATUS_ID": "DT1038_37:FAIL", "SEMANTICS": "F"}, {"STATUS_ID": "DT1038_37:NEW", "SEMANTICS": None}]
    )
    b = map_item(P, 1038, item, [], [], [], None, stages, None)
    t = b.ticket
    assert (t.source, t.state, t.customer, t.type) == ("crm:1038", "rejected", "CO_12", "37")
    assert t.closed_at == parse_time("2024-07-19T14:00:00+02:00") and t.resolved_at is None
    assert [e.kind for e in b.events if e.kind == "rejected"] == ["rejected"]
    assert t.url == "/crm/type/1038/details/5/"


def test_crm_priority_and_category_change_is_requalification():
    m = Mapping(priority="UF_CRM_PRIORITY", priority_values={"45": "low", "47": "high"})
    item = dict(DEAL, ufCrmPriority="47", stageId="C3:NEW", stageSemanticId="P", categoryId=3)
    h = [
        stage(1, "2024-07-18T14:00:14+02:00", 1, "C9:NEW", "P", 9),
        stage(2, "2024-07-18T15:00:00+02:00", 5, "C3:NEW", "P", 3),
    ]
    b = map_item(P, 2, item, h, [], [], m, None, {"9": "Support", "3": "Sales"})
    assert (b.ticket.priority, b.ticket.priority_raw, b.ticket.type) == ("high", "47", "3")
    assert ("field_changed", "9", "3") in kinds(b)  # type = the funnel: requalified
    assert [k for k in kinds(b) if k[0] == "status"] == [("status", "C9:NEW", "C3:NEW")]


def test_responsible_change_from_snapshot_diff():
    b = map_item(P, 2, DEAL, DEAL_HISTORY, [], [], None, None, None)
    assert diff_events(None, b.ticket, "abc", 1, None, ["responsible_id"]) == []  # first sight: no transfer
    rated = dataclasses.replace(b.ticket, rating=4)
    assert [(e.kind, e.to_value) for e in diff_events(None, rated, "abc", 1, None, ["responsible_id", "rating"])] == [
        ("rated", "4")
    ]  # a score already given counts once
    prev = dict(b.ticket.row(), responsible_id="4")
    ev = diff_events(prev, b.ticket, "abcdef0123456789ff", 100, "1", ["responsible_id", "type"])
    assert [(e.kind, e.from_value, e.to_value, e.key) for e in ev] == [
        ("assigned", "4", "6", "d:abcdef0123456789:resp")
    ]


# --- selectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,raw,kind,entity,params",
    [
        ("tasks", "tasks", "tasks", None, ()),
        ("tasks:group=7", "tasks:group=7", "tasks", None, (("group", "7"),)),
        ("deals", "deals", "crm", 2, ()),
        ("deals:category=3", "deals:category=3", "crm", 2, (("category", "3"),)),
        ("crm:1038", "crm:1038", "crm", 1038, ()),
        ("crm:2", "deals", "crm", 2, ()),
        ("crm:1038:category=5", "crm:1038:category=5", "crm", 1038, (("category", "5"),)),
        ("openlines:line=2", "openlines:line=2", "openlines", None, (("line", "2"),)),
    ],
)
def test_selectors_parse(text, raw, kind, entity, params):
    s = parse_selector(text)
    assert (s.raw, s.kind, s.entity_type_id, s.params) == (raw, kind, entity, params)


@pytest.mark.parametrize(
    "text",
    ["", "crm", "crm:abc", "crm:1", "tasks:group=x", "tasks:category=1", "deals:group=3", "Tasks!", "tasks:group"],
)
def test_bad_selectors_are_refused_clearly(text):
    with pytest.raises(SelectorError):
        parse_selector(text)


def test_registry_builds_sources_with_their_mapping():
    src = get_source("deals:category=3", {"sources": [{"select": "deals:category=3", "rating": "UF_CRM_RATING"}]})
    assert src.source == "crm:2" and src.mapping.rating == "UF_CRM_RATING"
    assert get_source("tasks:group=7").source == "task"
    with pytest.raises(SelectorError):
        get_source("nosuchkind")


# --- one customer across sources ---------------------------------------------------------------


def test_an_open_line_customer_has_the_crm_and_task_key():
    """A contact writing in a chat and in a deal, or a user in a chat and as a task's author, is one
    customer (repeat contacts, contacts per customer): the open-lines adapter uses the same keys."""
    from b24desk.sources.crm_mapping import customer_of as crm_customer
    from b24desk.sources.openlines import customer_of as chat_customer

    assert (
        chat_customer({"crmEntityType": "contact", "crmEntityId": 5, "userId": 77})
        == crm_customer({"contactId": 5})
        == "C_5"
    )
    assert (
        chat_customer({"crmEntityType": "company", "crmEntityId": "3", "userId": 77})
        == crm_customer({"companyId": 3})
        == "CO_3"
    )
    task = map_task(P, task_row(createdBy="77"), [], [])
    assert chat_customer({"crmEntityType": None, "crmEntityId": None, "userId": 77}) == task.ticket.customer == "77"
    assert chat_customer({"crmEntityType": "lead", "crmEntityId": 9, "userId": 0}) is None


def test_open_line_customers_stored_before_take_the_shared_keys(tmp_path):
    from b24desk.model import Ticket
    from b24desk.store import m_openlines_001, open_db

    db = open_db(tmp_path / "s.db")
    rows = [
        ("1", "openlines", "contact:5"),
        ("2", "openlines", "company:3"),
        ("3", "openlines", "user:77"),
        ("4", "openlines", None),
        ("5", "crm:2", "C_5"),
        ("6", "task", "77"),
    ]
    db["tickets"].insert_all(
        [Ticket(portal=P, source=s, source_id=i, customer=c).row() for i, s, c in rows],
        pk=("portal", "source", "source_id"),
    )
    m_openlines_001(db)
    got = dict(db.execute("select source_id, customer from tickets").fetchall())
    assert got == {"1": "C_5", "2": "CO_3", "3": "77", "4": None, "5": "C_5", "6": "77"}
