"""im.dialog.messages.get: task chats of the new task card (DOCS api-reference/chats/messages/
im-dialog-messages-get.md; api-reference/tasks/tasks-new.md)."""

from __future__ import annotations

from .. import timefmt
from ..query import ApiError
from ..registry import Call, method
from .common import _ci


def _int_param(params, name: str, code: str):
    raw = _ci(params, name)
    if raw in (None, ""):
        return None
    try:
        return int(str(raw))
    except ValueError:
        raise ApiError(400, code, f"{name.title().replace('_', ' ')} can't be string")


@method("im.dialog.messages.get", "im")
def dialog_messages_get(c: Call, params: dict):
    p = c.portal
    dialog = str(_ci(params, "DIALOG_ID", default="") or "")
    if not dialog.startswith("chat") or not dialog[4:].isdigit():
        raise ApiError(400, "DIALOG_ID_EMPTY", "Dialog ID can't be empty")
    chat = p.chats.get(int(dialog[4:]))
    if chat is None:
        raise ApiError(403, "ACCESS_ERROR", "You do not have access to the specified dialog")
    last_id = _int_param(params, "LAST_ID", "LAST_ID_STRING")
    first_id = _int_param(params, "FIRST_ID", "FIRST_ID_STRING")
    limit = _int_param(params, "LIMIT", "LIMIT_STRING") or 20
    limit = max(1, min(50, limit))
    msgs = chat["messages"]  # ascending ids
    # 0 counts as "not given" (the hardest reading of the docs' FIRST_ID=0 "first messages"): the
    # latest messages come back; history is read backwards with LAST_ID = the smallest id received
    if first_id:
        picked = [m for m in msgs if m["id"] > first_id][:limit]
    elif last_id:
        picked = [m for m in msgs if m["id"] < last_id][-limit:]
    else:
        picked = msgs[-limit:]
    picked = sorted(picked, key=lambda m: m["id"], reverse=True)  # newest first, as in the docs' example
    users = []
    for uid in sorted({m["author_id"] for m in picked if m["author_id"]}):
        u = p.users.get(uid) or {}
        users.append(
            {
                "id": uid,
                "active": u.get("ACTIVE", True),
                "name": p.user_name(uid),
                "first_name": u.get("NAME", ""),
                "last_name": u.get("LAST_NAME", ""),
                "work_position": u.get("WORK_POSITION", ""),
                "extranet": u.get("USER_TYPE") == "extranet",
                "bot": bool(u.get("IS_BOT")),
                "connector": False,
                "type": "bot" if u.get("IS_BOT") else "user",
                "departments": list(u.get("UF_DEPARTMENT", [])),
                "email": u.get("EMAIL", ""),
            }
        )
    out = [
        {
            "id": m["id"],
            "chat_id": m["chat_id"],
            "author_id": m["author_id"],
            "date": timefmt.iso(m["at"], p.tz),
            "text": m["text"],
            "unread": False,
            "uuid": None if m["author_id"] == 0 else f"00000000-0000-4000-8000-{m['id']:012d}",
            "replaces": [],
            "params": {"CODE": ["TASK_SYSTEM"], "NOTIFY": "N"} if m["author_id"] == 0 else [],
            "disappearing_date": None,
        }
        for m in picked
    ]
    return {"chat_id": chat["id"], "messages": out, "users": users, "files": []}
