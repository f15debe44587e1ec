"""Task methods: tasks.task.list/get, tasks.task.history.list, task.commentitem.getlist,
task.elapseditem.getlist (DOCS api-reference/tasks/tasks-task-list.md, tasks-task-get.md, fields.md,
tasks-task-history-list.md, comment-item/task-comment-item-get-list.md,
elapsed-item/task-elapsed-item-get-list.md, tasks-new.md)."""

from __future__ import annotations

from .. import query, timefmt
from ..query import ApiError, Field
from ..registry import Call, Listed, method
from ..state import AWAITING_CONTROL, COMPLETED
from .common import _ci


def _sub_status(p, t) -> int:
    """subStatus: the real status, or -1 when overdue (deadline passed, not finished)."""
    if t["deadline"] and t["deadline"] < p.now and t["status"] not in (AWAITING_CONTROL, COMPLETED):
        return -1
    return t["status"]


# (UPPER select name, camelCase response key, stored key, type)
_TASK_COLS = [
    ("ID", "id", "id", "int"),
    ("PARENT_ID", "parentId", "parentId", "int"),
    ("TITLE", "title", "title", "str"),
    ("DESCRIPTION", "description", "description", "str"),
    ("MARK", "mark", "mark", "str"),
    ("PRIORITY", "priority", "priority", "int"),
    ("STATUS", "status", "status", "int"),
    ("REAL_STATUS", "status", "status", "int"),
    ("STAGE_ID", "stageId", "stageId", "int"),
    ("CREATED_BY", "createdBy", "createdBy", "int"),
    ("CREATED_DATE", "createdDate", "createdDate", "time"),
    ("RESPONSIBLE_ID", "responsibleId", "responsibleId", "int"),
    ("CHANGED_BY", "changedBy", "changedBy", "int"),
    ("CHANGED_DATE", "changedDate", "changedDate", "time"),
    ("STATUS_CHANGED_BY", "statusChangedBy", "statusChangedBy", "int"),
    ("STATUS_CHANGED_DATE", "statusChangedDate", "statusChangedDate", "time"),
    ("CLOSED_BY", "closedBy", "closedBy", "int"),
    ("CLOSED_DATE", "closedDate", "closedDate", "time"),
    ("ACTIVITY_DATE", "activityDate", "activityDate", "time"),
    ("DATE_START", "dateStart", "dateStart", "time"),
    ("DEADLINE", "deadline", "deadline", "time"),
    ("TIME_ESTIMATE", "timeEstimate", "timeEstimate", "int"),
    ("TIME_SPENT_IN_LOGS", "timeSpentInLogs", "timeSpentInLogs", "int"),
    ("COMMENTS_COUNT", "commentsCount", "commentsCount", "int"),
    ("GROUP_ID", "groupId", "groupId", "int"),
    ("AUDITORS", "auditors", "auditors", "ints"),
    ("ACCOMPLICES", "accomplices", "accomplices", "ints"),
    ("UF_CRM_TASK", "ufCrmTask", "ufCrmTask", "strs"),
    ("TASK_CONTROL", "taskControl", "taskControl", "str"),
    ("XML_ID", "xmlId", "xmlId", "str"),
]
_DEFAULT_SELECT = [c[0] for c in _TASK_COLS if c[0] not in ("REAL_STATUS",)]

TASK_FIELDS = query.spec(
    {
        **{c[0]: Field(c[2], "ints" if c[3] == "ints" else ("str" if c[3] == "strs" else c[3])) for c in _TASK_COLS},
        "ACCOMPLICE": Field("accomplices", "ints"),
        "AUDITOR": Field("auditors", "ints"),
        "CHAT_ID": Field("chatId", "int"),
        "FAVORITE": Field("favorite", getter=lambda t: "N"),
    }
)


def _val(ctype: str, v, tz):
    if ctype == "time":
        return timefmt.iso(v, tz)
    if ctype == "int":
        return None if v is None else str(v)
    if ctype == "ints":
        return [str(x) for x in v]
    if ctype == "strs":
        return list(v) if v else []
    return v


def _user_brief(p, uid) -> dict:
    return {
        "id": str(uid),
        "name": p.user_name(uid),
        "link": f"/company/personal/user/{uid}/",
        "icon": "/bitrix/images/tasks/default_avatar.png",
        "workPosition": (p.users.get(int(uid or 0)) or {}).get("WORK_POSITION", ""),
    }


def render_task(p, t: dict, select: list[str] | None, chat: bool = False) -> dict:
    """One task in the old response format. ``chatId`` only where ``chat`` (``tasks.task.get``): the
    docs name that method alone for the task chat id (tasks-new.md), so the list never gives it."""
    names = [s for s in (select or []) if s != "*"] or _DEFAULT_SELECT
    if select and "*" in select:
        names = _DEFAULT_SELECT
    want = {query.norm(n) for n in names}
    out: dict = {"id": str(t["id"])}
    for upper, camel, key, ctype in _TASK_COLS:
        if query.norm(upper) in want or query.norm(camel) in want:
            out[camel] = _val(ctype, t.get(key), p.tz)
    if "status" in out or "substatus" in want:
        out["subStatus"] = str(_sub_status(p, t))
    if chat and "chatid" in want:
        out["chatId"] = t["chatId"]
    out["favorite"] = "N"
    if "responsibleid" in want:
        out["responsible"] = _user_brief(p, t["responsibleId"])
    if "createdby" in want:
        out["creator"] = _user_brief(p, t["createdBy"])
    out["group"] = (
        {"id": str(t["groupId"]), "name": p.groups.get(t["groupId"], {}).get("NAME", ""), "opened": True}
        if t["groupId"]
        else []
    )
    out["action"] = {}
    return out


def _task_id(params) -> int:
    raw = _ci(params, "taskId", "id")
    if raw in (None, ""):
        raise ApiError(
            400, "100", "CTaskItem All parameters in the constructor must have real class type (internal error)"
        )
    try:
        return int(str(raw))
    except ValueError:
        raise ApiError(400, "0", "wrong task id (internal error)")


def _select(params):
    sel = _ci(params, "select")
    if sel is None:
        return None
    if isinstance(sel, str):
        return [sel]
    return [str(s) for s in query.as_list(sel)]


@method("tasks.task.list", "task")
def task_list(c: Call, params: dict):
    p = c.portal
    order = _ci(params, "order")
    if order and isinstance(order, dict):
        for k in order:
            if query.norm(k) not in TASK_FIELDS:
                raise ApiError(400, "0", "Invalid sorting key (internal error)")
    fields = dict(TASK_FIELDS)
    fields["substatus"] = Field("status", "int", getter=lambda t: _sub_status(p, t))
    rows, total, nxt = query.run(
        p.task_list,
        fields,
        p.tz,
        flt=_task_filter(p, _ci(params, "filter")),
        order=order,
        start=_ci(params, "start"),
        default_order=[(TASK_FIELDS["id"], True)],
        strict=False,
    )
    sel = _select(params)
    return Listed({"tasks": [render_task(p, t, sel) for t in rows]}, total, nxt)


def _task_filter(p, flt):
    """STATUS matches subStatus (meta status -1 = overdue); REAL_STATUS the stored status."""
    if not isinstance(flt, dict):
        return flt
    out = {}
    for k, v in flt.items():
        op, name = query.split_key(k)
        if query.norm(name) == "status":
            out[f"{op}SUB_STATUS"] = v
        else:
            out[k] = v
    return out


@method("tasks.task.get", "task")
def task_get(c: Call, params: dict):
    p = c.portal
    tid = _task_id(params)
    t = p.tasks.get(tid)
    if t is None:
        raise ApiError(400, "ERROR_CORE", "TASKS_ERROR_EXCEPTION_#8; Action failed; 8/TE/ACTION_FAILED_TO_BE_PROCESSED")
    return {"task": render_task(p, t, _select(params), chat=True)}


H_FIELDS = query.spec({"ID": Field("id", "int"), "CREATED_DATE": Field("at", "time"), "FIELD": Field("field")})


@method("tasks.task.history.list", "task")
def task_history_list(c: Call, params: dict):
    p = c.portal
    tid = _task_id(params)
    if tid not in p.tasks:
        return {"list": []}
    rows = p.task_history.get(tid, [])
    order = _ci(params, "order") or {"CREATED_DATE": "desc", "ID": "desc"}
    got, _, _ = query.run(
        rows, H_FIELDS, p.tz, flt=_ci(params, "filter"), order=order, start=None, strict=False, page=10**9
    )
    out = []
    for h in got:
        u = p.users.get(h["user_id"]) or {"NAME": "", "LAST_NAME": "", "EMAIL": ""}
        out.append(
            {
                "id": h["id"],
                "createdDate": timefmt.iso(h["at"], p.tz),
                "field": h["field"],
                "value": {"from": h["from"], "to": h["to"]},
                "user": {
                    "id": h["user_id"],
                    "name": u["NAME"],
                    "lastName": u["LAST_NAME"],
                    "secondName": "",
                    "login": u["EMAIL"],
                },
            }
        )
    return {"list": out}


def _positional(params: dict, names: list[str]) -> list:
    """Legacy task.* methods read their parameters by position, whatever the names (DOCS note
    "Pass parameters in the request according to the order in the table")."""
    vals = [v for k, v in params.items() if k.lower() != "auth"]
    return vals + [None] * (len(names) - len(vals))


C_ORDER = {"id", "authorid", "authorname", "authoremail", "postdate"}
C_FIELDS = query.spec(
    {
        "ID": Field("id", "int"),
        "AUTHOR_ID": Field("author_id", "int"),
        "AUTHOR_NAME": Field("author_name"),
        "POST_DATE": Field("at", "time"),
    }
)


def _core_error(n: int, name: str, method_name: str, key: str):
    return ApiError(
        400,
        "ERROR_CORE",
        f"TASKS_ERROR_EXCEPTION_#256; Param #{n} ({name}) for method {method_name}() must not "
        f'contain key "{key}".; 256/TE/WRONG_ARGUMENTS.<br>',
    )


@method("task.commentitem.getlist", "task")
def comment_getlist(c: Call, params: dict):
    p = c.portal
    task_id, order, flt = _positional(params, ["TASKID", "ORDER", "FILTER"])[:3]
    try:
        tid = int(str(task_id))
    except ValueError:
        raise ApiError(
            400,
            "ERROR_CORE",
            "TASKS_ERROR_EXCEPTION_#256; Param #0 (taskId) for method "
            'ctaskcommentitem::getlist() expected to be of type "integer", but given something else.; '
            "256/TE/WRONG_ARGUMENTS",
        )
    order = order or {}
    if not isinstance(order, dict):
        raise _core_error(1, "arOrder", "ctaskcommentitem::getlist", str(order))
    for k in order:
        if query.norm(k) not in C_ORDER:
            raise _core_error(1, "arOrder", "ctaskcommentitem::getlist", k)
    flt = flt or {}
    if isinstance(flt, dict):
        for k in flt:
            op, name = query.split_key(k)
            if query.norm(name) not in C_FIELDS or op not in ("", "!", "<", "<=", ">", ">="):
                raise _core_error(2, "arFilter", "ctaskcommentitem::getlist", k)
    if tid not in p.tasks:
        raise ApiError(400, "ERROR_CORE", "TASKS_ERROR_EXCEPTION_#8; Action failed; 8/TE/ACTION_FAILED_TO_BE_PROCESSED")
    if p.tasks[tid].get("chatId"):
        # DOCS tasks-new.md: the method "does not work" in the new task card; the hardest reading
        # is an empty list (no error to notice): the comments are in the task chat
        return []
    rows = [dict(cm, author_name=p.user_name(cm["author_id"])) for cm in p.task_comments.get(tid, [])]
    got, _, _ = query.run(rows, C_FIELDS, p.tz, flt=flt, order=order or {"ID": "desc"}, strict=False, page=10**9)
    out = []
    for cm in got:
        u = p.users.get(cm["author_id"]) or {}
        out.append(
            {
                "POST_MESSAGE_HTML": None,
                "ID": str(cm["id"]),
                "AUTHOR_ID": str(cm["author_id"]),
                "AUTHOR_NAME": cm["author_name"],
                "AUTHOR_EMAIL": u.get("EMAIL", ""),
                "POST_DATE": timefmt.iso(cm["at"], p.tz),
                "POST_MESSAGE": cm["text"],
            }
        )
    return out


E_FIELDS = query.spec(
    {
        "ID": Field("id", "int"),
        "USER_ID": Field("user_id", "int"),
        "CREATED_DATE": Field("at", "time"),
        "SECONDS": Field("seconds", "int"),
        "MINUTES": Field("minutes", "int", getter=lambda e: e["seconds"] // 60),
        "DATE_START": Field("start", "time"),
        "DATE_STOP": Field("stop", "time"),
    }
)


@method("task.elapseditem.getlist", "task")
def elapsed_getlist(c: Call, params: dict):
    p = c.portal
    vals = _positional(params, ["TASKID", "ORDER", "FILTER", "SELECT", "PARAMS"])
    task_id, order, flt, _select_, extra = vals[:5]
    try:
        tid = int(str(task_id))
    except ValueError:
        raise ApiError(
            400,
            "ERROR_CORE",
            "TASKS_ERROR_EXCEPTION_#256; Param #0 (taskId) for method "
            'ctaskelapseditem::getlist() expected to be of type "integer", but given something else.; '
            "256/TE/WRONG_ARGUMENTS",
        )
    if order and isinstance(order, dict):
        for k in order:
            if query.norm(k) not in E_FIELDS:
                raise _core_error(1, "arOrder", "ctaskelapseditem::getlist", k)
    if tid not in p.tasks:
        raise ApiError(400, "ERROR_CORE", "TASKS_ERROR_EXCEPTION_#8; Action failed; 8/TE/ACTION_FAILED_TO_BE_PROCESSED")
    nav = (extra or {}).get("NAV_PARAMS", {}) if isinstance(extra, dict) else {}
    size = min(50, max(1, int(nav.get("nPageSize", 50) or 50)))
    page_no = max(1, int(nav.get("iNumPage", 1) or 1))
    rows = p.task_elapsed.get(tid, [])
    got, total, _ = query.run(
        rows,
        E_FIELDS,
        p.tz,
        flt=flt or None,
        order=order or {"ID": "asc"},
        start=(page_no - 1) * size,
        strict=False,
        page=size,
    )
    out = [
        {
            "ID": str(e["id"]),
            "TASK_ID": str(e["task_id"]),
            "USER_ID": str(e["user_id"]),
            "COMMENT_TEXT": e["comment"],
            "SECONDS": str(e["seconds"]),
            "MINUTES": str(e["seconds"] // 60),
            "SOURCE": "2",
            "CREATED_DATE": timefmt.iso(e["at"], p.tz),
            "DATE_START": timefmt.iso(e["start"], p.tz),
            "DATE_STOP": timefmt.iso(e["stop"], p.tz),
        }
        for e in got
    ]
    nxt = page_no * size if page_no * size < total else None
    return Listed(out, total, nxt)
