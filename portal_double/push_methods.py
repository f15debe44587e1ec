"""The double's side of pushing results into Bitrix24: notifications, chat messages, chats, Live
Feed posts and the application's Disk storage -- each call recorded as received, so tests and the
demo's framing page can show and assert exactly what the portal got.

Sources (DOCS = bitrix24/b24restdocs):

- ``im.notify.system.add``: api-reference/chats/notifications/im-notify-system-add.md -- USER_ID*,
  MESSAGE* (trimmed), MESSAGE_OUT, TAG (a new notification with an existing TAG removes the others;
  the TAG is unique "within the application", and a webhook must pass CLIENT_ID with it), SUB_TAG,
  ATTACH (object or JSON string, at most 30 KB); errors USER_ID_EMPTY, MESSAGE_EMPTY,
  ATTACH_ERROR, ATTACH_OVERSIZE, WRONG_AUTH_TYPE (session authorization only: the double has none).
  The result is the notification id, or ``false`` when nothing was created (unknown user).
- ``im.message.add``: api-reference/chats/messages/im-message-add.md -- DIALOG_ID* (``chatN`` or a
  user id), MESSAGE* (or ATTACH), ATTACH, SYSTEM, URL_PREVIEW; errors CHAT_ID_EMPTY, USER_ID_EMPTY,
  ACCESS_ERROR, MESSAGE_EMPTY, ATTACH_ERROR, ATTACH_OVERSIZE. Messages land in ``portal.chats``, so
  ``im.dialog.messages.get`` (methods/im.py) reads them back.
- ``im.chat.add`` / ``im.chat.get``: api-reference/chats/im-chat-add.md, im-chat-get.md -- any
  (ENTITY_TYPE, ENTITY_ID) pair may be given on creation and ``im.chat.get`` finds the chat by it
  (``null`` when there is none).
- ``log.blogpost.add`` / ``log.blogpost.get``: api-reference/log/log-blogpost-add.md, -get.md,
  _includes/log-recepients.md -- POST_MESSAGE, POST_TITLE, DEST (``UA``, ``U<id>``, ``DR<id>``,
  ``SG<id>``; default ``["UA"]``), IMPORTANT; the add answers ``true`` as the page's example shows.
  The get lists the posts the caller may read, newest first, filtered by POST_ID / LOG_RIGHTS.
- ``disk.storage.getForApp``: api-reference/disk/storage/disk-storage-get-for-app.md -- no
  parameters, admin, application context only (``ACCESS_DENIED`` "Application context required",
  HTTP 400, for a webhook); creates the storage on first use.
- ``disk.folder.uploadfile`` / ``disk.folder.getchildren``: api-reference/disk/folder/
  disk-folder-upload-file.md, disk-folder-get-children.md -- id*, data {NAME}*, fileContent
  [name, base64], generateUniqueName; errors ERROR_ARGUMENT, ERROR_NOT_FOUND,
  DISK_BASE_SERVICE_22001, ERROR_COULD_NOT_SAVE_FILE.

Not documented, so the double's choice (marked "unconfirmed" where used): a TAG sent through a
webhook without CLIENT_ID is refused (``CLIENT_ID_EMPTY``) so a client's omission shows; an upload
whose NAME already exists in the folder without ``generateUniqueName`` is refused
(``DISK_OBJ_22000``); a post without POST_MESSAGE or with an unknown DEST code is refused
(``INVALID_ARG_VALUE``).

Test knobs on ``push_state(portal)``: ``drop_reply(method, n)`` runs the next n calls of a method
and then answers 500 (the answer is "lost": the portal did the work, the caller cannot know);
``on_received`` is called with each record after the work is done, before the answer goes out.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from dataclasses import dataclass, field
from typing import Callable

from . import timefmt
from .query import ApiError
from .registry import Call, Listed, method

ATTACH_MAX = 30000  # "The maximum allowable size of the ATTACH is exceeded -- 30 KB"
PAGE = 50


@dataclass
class PushState:
    records: list = field(default_factory=list)  # every push call received, in order
    notifications: list = field(default_factory=list)  # im.notify.system.add, incl. replaced ones
    posts: list = field(default_factory=list)  # log.blogpost.add
    storage: dict | None = None  # the app's Disk storage
    folders: dict = field(default_factory=dict)  # folder id -> {"ID", "NAME", "files": [ids]}
    files: dict = field(default_factory=dict)  # file id -> file object + "content" bytes
    on_received: Callable | None = None
    _drops: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- test knobs --
    def drop_reply(self, method_name: str, n: int = 1) -> None:
        with self._lock:
            self._drops[method_name.lower()] = self._drops.get(method_name.lower(), 0) + n

    def _take_drop(self, method_name: str) -> bool:
        with self._lock:
            left = self._drops.get(method_name, 0)
            if left > 0:
                self._drops[method_name] = left - 1
                return True
            return False

    # -- views for tests and the demo --
    def visible_notifications(self, user_id: int | None = None) -> list[dict]:
        """What users see now: notifications not replaced by a later one with the same TAG."""
        return [
            n for n in self.notifications if not n["replaced"] and (user_id is None or n["USER_ID"] == int(user_id))
        ]

    def calls(self, method_name: str | None = None) -> list[dict]:
        return [r for r in self.records if method_name is None or r["method"] == method_name.lower()]


def push_state(portal) -> PushState:
    """The push side of ``portal`` (created on first use); ``portal.pushes`` is its record list."""
    st = getattr(portal, "push_state", None)
    if st is None:
        st = PushState()
        portal.push_state = st
        portal.pushes = st.records
    return st


# --- helpers ----------------------------------------------------------------------------------


def _ci(params: dict, name: str, default=None):
    for k, v in params.items():
        if k.lower() == name.lower():
            return v
    return default


def _as_list(value) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):  # PHP-style form arrays arrive as {"0": .., "1": ..}
        try:
            return [value[k] for k in sorted(value, key=lambda k: int(k))]
        except ValueError:
            return list(value.values())
    return [value]


def _attach(params: dict) -> dict | list | None:
    """ATTACH as an object or a JSON string (DOCS .../messages/attachments/index.md): the full
    form ``{BLOCKS: [...]}`` or the short form ``[block, ...]``; each block an object."""
    raw = _ci(params, "ATTACH")
    if raw in (None, "", [], {}):
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ApiError(400, "ATTACH_ERROR", "Incorrect attach params")
    blocks = raw.get("BLOCKS") if isinstance(raw, dict) else raw
    if isinstance(blocks, dict):
        blocks = _as_list(blocks)
    if not isinstance(blocks, list) or not blocks or not all(isinstance(b, dict) and b for b in blocks):
        raise ApiError(400, "ATTACH_ERROR", "Incorrect attach params")
    if len(json.dumps(raw, ensure_ascii=False)) > ATTACH_MAX:
        raise ApiError(400, "ATTACH_OVERSIZE", "You have exceeded the maximum allowable size of attach")
    return raw


def _record(c: Call, name: str, params: dict, result) -> dict:
    st = push_state(c.portal)
    rec = {"method": name, "at": c.portal.now, "user_id": c.user_id, "auth": c.auth, "params": params, "result": result}
    st.records.append(rec)
    if st.on_received:
        st.on_received(rec)
    if st._take_drop(name):
        raise ApiError(500, "INTERNAL_SERVER_ERROR", "Internal server error")
    return rec


def _is_admin(c: Call) -> bool:
    return c.user_id == 1  # the double's administrator (methods/common.py profile)


# --- notifications ------------------------------------------------------------------------------


@method("im.notify.system.add", "im")
def notify_system_add(c: Call, params: dict):
    p, st = c.portal, push_state(c.portal)
    try:
        user_id = int(str(_ci(params, "USER_ID", 0) or 0))
    except ValueError:
        user_id = 0
    if user_id <= 0:
        raise ApiError(400, "USER_ID_EMPTY", "User ID can't be empty")
    message = str(_ci(params, "MESSAGE", "") or "").strip()
    if not message:
        raise ApiError(400, "MESSAGE_EMPTY", "Message can't be empty")
    attach = _attach(params)
    tag = _ci(params, "TAG")
    sub_tag = _ci(params, "SUB_TAG")
    client_id = _ci(params, "CLIENT_ID")
    if c.auth == "webhook":
        if (tag or sub_tag) and not client_id:
            # unconfirmed: the docs only say "pass it with CLIENT_ID when calling via webhook"
            raise ApiError(400, "CLIENT_ID_EMPTY", "CLIENT_ID is required with TAG/SUB_TAG via a webhook")
        namespace = f"webhook_{client_id}" if client_id else "webhook"
    else:
        namespace = c.double.creds.client_id if c.double is not None else "app"
    if user_id not in p.users:
        _record(c, "im.notify.system.add", params, False)
        return False
    nid = p.next_id("notify", 500)
    if tag:
        for n in st.notifications:
            if not n["replaced"] and n["namespace"] == namespace and n["TAG"] == str(tag):
                n["replaced"] = nid
    st.notifications.append(
        {
            "ID": nid,
            "USER_ID": user_id,
            "MESSAGE": message,
            "MESSAGE_OUT": _ci(params, "MESSAGE_OUT"),
            "TAG": None if tag is None else str(tag),
            "SUB_TAG": sub_tag,
            "ATTACH": attach,
            "namespace": namespace,
            "from_user": c.user_id,
            "at": p.now,
            "replaced": None,
        }
    )
    _record(c, "im.notify.system.add", params, nid)
    return nid


# --- chats ----------------------------------------------------------------------------------------


@method("im.chat.add", "im")
def chat_add(c: Call, params: dict):
    p = c.portal
    users = []
    for u in _as_list(_ci(params, "USERS")):
        try:
            users.append(int(str(u)))
        except ValueError:
            raise ApiError(400, "INVALID_ARG_VALUE", f"Wrong user id {u!r}")
    members = [c.user_id] + [u for u in users if u != c.user_id and u in p.users]
    entity_type, entity_id = _ci(params, "ENTITY_TYPE"), _ci(params, "ENTITY_ID")
    cid = p.next_id("chat", 100)
    title = str(_ci(params, "TITLE", "") or "") or f"Chat #{cid}"
    p.chats[cid] = {
        "id": cid,
        "entity": (str(entity_type), str(entity_id)) if entity_type else None,
        "messages": [],
        "title": title,
        "type": str(_ci(params, "TYPE", "CHAT") or "CHAT"),
        "description": _ci(params, "DESCRIPTION"),
        "color": _ci(params, "COLOR"),
        "users": members,
        "owner": c.user_id,
    }
    first = str(_ci(params, "MESSAGE", "") or "").strip()
    if first:
        p._chat_message(cid, p.now, c.user_id, first)
    _record(c, "im.chat.add", params, cid)
    return cid


@method("im.chat.get", "im")
def chat_get(c: Call, params: dict):
    entity_type, entity_id = _ci(params, "ENTITY_TYPE"), _ci(params, "ENTITY_ID")
    if not entity_type or entity_id in (None, ""):
        return None
    for chat in c.portal.chats.values():
        ent = chat.get("entity")
        if ent and str(ent[0]) == str(entity_type) and str(ent[1]) == str(entity_id):
            return {"ID": chat["id"]}
    return None


@method("im.message.add", "im")
def message_add(c: Call, params: dict):
    p = c.portal
    dialog = str(_ci(params, "DIALOG_ID", "") or "").strip()
    message = str(_ci(params, "MESSAGE", "") or "").strip()
    attach = _attach(params)
    if dialog.lower().startswith("chat"):
        if not dialog[4:].isdigit():
            raise ApiError(400, "CHAT_ID_EMPTY", "Chat ID can't be empty")
        chat = p.chats.get(int(dialog[4:]))
        if chat is None or (
            chat.get("users") is not None and c.user_id not in chat["users"] and chat.get("type") != "OPEN"
        ):
            raise ApiError(403, "ACCESS_ERROR", "You do not have access to the specified dialog")
    elif dialog.isdigit() and int(dialog) in p.users:
        chat = _private_chat(p, c.user_id, int(dialog))
    else:
        raise ApiError(400, "USER_ID_EMPTY", "User ID can't be empty")
    if not message and attach is None:
        raise ApiError(400, "MESSAGE_EMPTY", "Message can't be empty")
    msg = p._chat_message(chat["id"], p.now, c.user_id, message)
    msg["attach"] = attach
    msg["system"] = str(_ci(params, "SYSTEM", "N")).upper() == "Y"
    _record(c, "im.message.add", params, msg["id"])
    return msg["id"]


def _private_chat(p, a: int, b: int) -> dict:
    key = ("PRIVATE", "|".join(str(x) for x in sorted((a, b))))
    for chat in p.chats.values():
        if chat.get("entity") == key:
            return chat
    cid = p.next_id("chat", 100)
    p.chats[cid] = {
        "id": cid,
        "entity": key,
        "messages": [],
        "title": "",
        "type": "PRIVATE",
        "users": sorted({a, b}),
        "owner": a,
    }
    return p.chats[cid]


# --- Live Feed --------------------------------------------------------------------------------------


def _dest_ok(p, code: str) -> bool:
    if code == "UA":
        return True
    for prefix, ok in (
        ("DR", lambda i: any(d["ID"] == i for d in p.departments)),
        ("D", lambda i: any(d["ID"] == i for d in p.departments)),
        ("SG", lambda i: i in p.groups),
        ("U", lambda i: i in p.users),
    ):
        if code.startswith(prefix) and code[len(prefix) :].isdigit():
            return ok(int(code[len(prefix) :]))
    return False


@method("log.blogpost.add", "log")
def blogpost_add(c: Call, params: dict):
    p, st = c.portal, push_state(c.portal)
    message = str(_ci(params, "POST_MESSAGE", "") or "").strip()
    if not message:
        raise ApiError(400, "INVALID_ARG_VALUE", "POST_MESSAGE is empty")  # unconfirmed code
    dest = [str(x) for x in _as_list(_ci(params, "DEST"))] or ["UA"]
    bad = [d for d in dest if not _dest_ok(p, d)]
    if bad:
        raise ApiError(400, "INVALID_ARG_VALUE", f"Unknown recipients: {', '.join(bad)}")  # unconfirmed
    author = c.user_id
    if _ci(params, "USER_ID") not in (None, "") and _is_admin(c):
        author = int(str(_ci(params, "USER_ID")))
    post = {
        "ID": p.next_id("blogpost"),
        "TITLE": str(_ci(params, "POST_TITLE", "") or ""),
        "DETAIL_TEXT": message,
        "DEST": dest,
        "AUTHOR_ID": author,
        "at": p.now,
        "IMPORTANT": str(_ci(params, "IMPORTANT", "N")).upper() == "Y",
        "FILES": _ci(params, "FILES"),
    }
    st.posts.append(post)
    _record(c, "log.blogpost.add", params, True)
    return True


def _dept_chain(p, dept_id: int) -> set[int]:
    """A department and its parents (``DR<parent>`` covers sub-departments)."""
    out, by_id = set(), {d["ID"]: d for d in p.departments}
    while dept_id and dept_id not in out:
        out.add(dept_id)
        dept_id = (by_id.get(dept_id) or {}).get("PARENT") or 0
    return out


def _can_read(p, user_id: int, post: dict) -> bool:
    if post["AUTHOR_ID"] == user_id or user_id == 1:
        return True
    depts = set()
    for d in (p.users.get(user_id) or {}).get("UF_DEPARTMENT", []):
        depts |= _dept_chain(p, int(d))
    for code in post["DEST"]:
        if code == "UA" or code == f"U{user_id}":
            return True
        if code.startswith("DR") and code[2:].isdigit() and int(code[2:]) in depts:
            return True
        if (
            code.startswith("D")
            and code[1:].isdigit()
            and int(code[1:]) in {int(d) for d in (p.users.get(user_id) or {}).get("UF_DEPARTMENT", [])}
        ):
            return True
    return False


@method("log.blogpost.get", "log")
def blogpost_get(c: Call, params: dict):
    p, st = c.portal, push_state(c.portal)
    posts = [x for x in reversed(st.posts) if _can_read(p, c.user_id, x)]
    post_id = _ci(params, "POST_ID")
    if post_id not in (None, ""):
        posts = [x for x in posts if str(x["ID"]) == str(post_id)]
    rights = _ci(params, "LOG_RIGHTS")
    if rights not in (None, ""):
        want = {str(r) for r in _as_list(rights)}
        posts = [x for x in posts if want & set(x["DEST"])]
    try:
        start = max(0, int(str(_ci(params, "start", 0) or 0)))
    except ValueError:
        start = 0
    page = posts[start : start + PAGE]
    rows = [
        {
            "ID": str(x["ID"]),
            "BLOG_ID": "1",
            "PUBLISH_STATUS": "P",
            "TITLE": x["TITLE"],
            "AUTHOR_ID": str(x["AUTHOR_ID"]),
            "ENABLE_COMMENTS": "Y",
            "NUM_COMMENTS": "0",
            "CODE": None,
            "MICRO": "N" if x["TITLE"] else "Y",
            "DETAIL_TEXT": x["DETAIL_TEXT"],
            "DATE_PUBLISH": timefmt.dmy(x["at"], p.tz),
            "CATEGORY_ID": "",
            "HAS_SOCNET_ALL": "Y" if "UA" in x["DEST"] else "N",
            "HAS_TAGS": "N",
            "HAS_IMAGES": "N",
            "HAS_PROPS": "N",
            "HAS_COMMENT_IMAGES": None,
        }
        for x in page
    ]
    nxt = start + PAGE if start + PAGE < len(posts) else None
    return Listed(rows, len(posts), nxt)


# --- Disk ---------------------------------------------------------------------------------------------


@method("disk.storage.getforapp", "disk")
def storage_get_for_app(c: Call, params: dict):
    p, st = c.portal, push_state(c.portal)
    if c.auth != "oauth":
        raise ApiError(400, "ACCESS_DENIED", "Access denied! Application context required")
    if not _is_admin(c):
        raise ApiError(403, "ACCESS_DENIED", "Access denied")
    if st.storage is None:
        sid, root = p.next_id("disk_storage", 1366), p.next_id("disk_object", 8910)
        st.storage = {
            "ID": str(sid),
            "NAME": "b24desk",
            "CODE": None,
            "MODULE_ID": "disk",
            "ENTITY_TYPE": "restapp",
            "ENTITY_ID": "7",
            "ROOT_OBJECT_ID": str(root),
        }
        st.folders[root] = {"ID": root, "NAME": "b24desk", "STORAGE_ID": str(sid), "files": []}
    _record(c, "disk.storage.getforapp", params, dict(st.storage))
    return dict(st.storage)


def _file_view(p, f: dict) -> dict:
    return {k: v for k, v in f.items() if k != "content"}


def _folder(p, params: dict) -> dict:
    st = push_state(p)
    raw = _ci(params, "id")
    if raw in (None, ""):
        raise ApiError(400, "ERROR_ARGUMENT", "Invalid value of parameter {Parameter #0}")
    try:
        fid = int(str(raw))
    except ValueError:
        raise ApiError(400, "ERROR_ARGUMENT", "Invalid value of parameter {Parameter #0}")
    folder = st.folders.get(fid)
    if folder is None:
        raise ApiError(400, "ERROR_NOT_FOUND", f"Could not find entity with id `{fid}`")
    return folder


@method("disk.folder.uploadfile", "disk")
def folder_upload_file(c: Call, params: dict):
    p, st = c.portal, push_state(c.portal)
    folder = _folder(p, params)
    content = _as_list(_ci(params, "fileContent"))
    data = _ci(params, "data") or {}
    name = str((data.get("NAME") if isinstance(data, dict) else "") or "").strip()
    if not content:
        # the two-step upload (uploadUrl + multipart POST) is not simulated
        result = {"field": "file", "uploadUrl": f"https://{p.domain}/rest/upload.json?token=disk%7Cdouble"}
        _record(c, "disk.folder.uploadfile", params, result)
        return result
    if not name:
        raise ApiError(400, "DISK_BASE_SERVICE_22001", "Error: required parameter NAME (DISK_BASE_SERVICE_22001)")
    if len(content) != 2:
        raise ApiError(400, "ERROR_COULD_NOT_SAVE_FILE", "Could not save file")
    try:
        blob = base64.b64decode(str(content[1]), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "ERROR_COULD_NOT_SAVE_FILE", "Could not save file")
    taken = {st.files[i]["NAME"] for i in folder["files"]}
    if name in taken:
        unique = str(_ci(params, "generateUniqueName", "")).lower() in ("1", "true", "y")
        if not unique:
            raise ApiError(400, "DISK_OBJ_22000", "Can not add file with the same name")  # unconfirmed
        stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
        n = 1
        while f"{stem} ({n}){dot}{ext}" in taken:
            n += 1
        name = f"{stem} ({n}){dot}{ext}"
    fid = p.next_id("disk_object", 8910)
    ts = timefmt.iso(p.now, p.tz)
    f = {
        "ID": fid,
        "NAME": name,
        "CODE": None,
        "STORAGE_ID": folder["STORAGE_ID"],
        "TYPE": "file",
        "PARENT_ID": str(folder["ID"]),
        "DELETED_TYPE": 0,
        "GLOBAL_CONTENT_VERSION": 1,
        "FILE_ID": p.next_id("b_file", 32000),
        "SIZE": str(len(blob)),
        "CREATE_TIME": ts,
        "UPDATE_TIME": ts,
        "DELETE_TIME": None,
        "CREATED_BY": str(c.user_id),
        "UPDATED_BY": str(c.user_id),
        "DELETED_BY": None,
        "DOWNLOAD_URL": f"https://{p.domain}/rest/download.json?token=disk%7C{fid}",
        "DETAIL_URL": f"https://{p.domain}/docs/path/b24desk/{name}",
        "content": blob,
    }
    st.files[fid] = f
    folder["files"].append(fid)
    view = _file_view(p, f)
    _record(c, "disk.folder.uploadfile", params, view)
    return view


@method("disk.folder.getchildren", "disk")
def folder_get_children(c: Call, params: dict):
    p, st = c.portal, push_state(c.portal)
    folder = _folder(p, params)
    rows = [_file_view(p, st.files[i]) for i in folder["files"]]
    flt = _ci(params, "filter") or {}
    if isinstance(flt, dict):
        for k, v in flt.items():
            key = k.lstrip("=!<>%")
            rows = [r for r in rows if key not in r or str(r[key]) == str(v)]
    try:
        start = max(0, int(str(_ci(params, "start", 0) or 0)))
    except ValueError:
        start = 0
    nxt = start + PAGE if start + PAGE < len(rows) else None
    return Listed(rows[start : start + PAGE], len(rows), nxt)
