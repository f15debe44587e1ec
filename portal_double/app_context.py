"""Application context of the double: install flows, event handlers, placements, offline queue.

What the real portal does for an installed local application (sources, all in bitrix24/b24restdocs):

- **Install** (settings/app-installation/local-apps/*.md, settings/oauth/simple-way.md): the UI
  flavour POSTs ``AUTH_ID``/``REFRESH_ID``/``AUTH_EXPIRES``/``member_id``/``APPLICATION_TOKEN``/
  ``PLACEMENT=DEFAULT``... with ``DOMAIN``, ``PROTOCOL``, ``LANG``, ``APP_SID`` in the query
  (:meth:`AppContext.install_ui`); events flow only after ``BX24.installFinish()``
  (:meth:`AppContext.install_finish`). The API-only flavour POSTs the ONAPPINSTALL form with
  ``auth[...]`` server to server and is installed at once (:meth:`AppContext.install_api`).
  An update drops the app's handlers (api-reference/events/event-bind.md) and runs the installer again.
- **Events** (api-reference/events/*.md): ``event.bind/unbind/get``; a change made through the
  portal's mutation API is POSTed form-encoded, exactly the documented payload, to each bound
  online handler by a background "queue server" thread, once, with no retry; changes are logged in
  the offline queue (one record per object and event, the latest change) for offline bindings,
  read with ``event.offline.get/clear/list/error``.
- **Placements** (api-reference/widgets/placement-*.md): ``placement.bind/unbind/get``.
- ``crm.activity.get`` and ``crm.timeline.comment.get``, which an event handler needs to find the
  owner of an activity or comment.

Where the docs are silent (error codes of a duplicate placement, EVENT_DATA of offline records:
shown as ``false`` in the docs' example) the choices are listed in STATUS.md.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import queue
import re
import secrets
import threading
import time

import requests

from . import timefmt
from .phpquery import build_query
from .query import ApiError
from .registry import Call, Listed, method

log = logging.getLogger(__name__)

# Events the double knows (event.bind refuses others with ERROR_EVENT_NOT_FOUND).
KNOWN_EVENTS = {
    "ONAPPINSTALL",
    "ONAPPUNINSTALL",
    "ONAPPUPDATE",
    "ONAPPTEST",
    "ONOFFLINEEVENT",
    "ONTASKADD",
    "ONTASKUPDATE",
    "ONTASKDELETE",
    "ONTASKCOMMENTADD",
    "ONTASKCOMMENTUPDATE",
    "ONTASKCOMMENTDELETE",
    "ONCRMDEALADD",
    "ONCRMDEALUPDATE",
    "ONCRMDEALDELETE",
    "ONCRMDEALMOVETOCATEGORY",
    "ONCRMDYNAMICITEMADD",
    "ONCRMDYNAMICITEMUPDATE",
    "ONCRMDYNAMICITEMDELETE",
    "ONCRMACTIVITYADD",
    "ONCRMACTIVITYUPDATE",
    "ONCRMACTIVITYDELETE",
    "ONCRMTIMELINECOMMENTADD",
    "ONCRMTIMELINECOMMENTUPDATE",
    "ONCRMTIMELINECOMMENTDELETE",
}
_PER_TYPE = re.compile(r"^ONCRMDYNAMICITEM(ADD|UPDATE|DELETE)_\d+$")
# Events that never go to the offline queue.
APP_EVENTS = {"ONAPPINSTALL", "ONAPPUNINSTALL", "ONAPPUPDATE", "ONAPPTEST", "ONOFFLINEEVENT"}


def _ci(params: dict, *names, default=None):
    for n in names:
        for k, v in params.items():
            if k.lower() == n.lower():
                return v
    return default


def _admin(c: Call) -> bool:
    found = getattr(c.portal, "admins", None)
    return int(c.user_id) in ({int(x) for x in found} if found else {1})


def _app(c: Call) -> "AppContext":
    if c.double is None:
        raise ApiError(403, "WRONG_AUTH_TYPE", "Current authorization type is denied for this method")
    return c.double.app


class AppContext:
    """The app's state on the portal. ``installed`` feeds ``app.info`` (True by default: a double
    built for sync tests behaves as an installed app)."""

    def __init__(self, double):
        self.double = double
        self.installed = True
        self.version = 1
        self.lock = threading.RLock()
        self.handlers: list[dict] = []  # {id, event, handler, auth_type, offline, options, connector}
        self.placements: list[dict] = []
        self.offline: list[dict] = []  # queue records, ID order
        self.deliveries: list[dict] = []  # what the queue server sent: {event, url, status|error, at}
        self.delivery_timeout = 10.0
        self._ids = itertools.count(1)
        self._offline_ids = itertools.count(1)
        self._user_tokens: dict[int, str] = {}
        self._queue: queue.Queue = queue.Queue()
        self._pending = 0
        self._idle = threading.Condition(self.lock)
        self._thread: threading.Thread | None = None
        self._session = requests.Session()
        self._hook_mutators()

    # -- install / update / uninstall (the portal's side of the flows) ----------------------
    def _auth_fields(self, user_id: int) -> dict:
        d = self.double
        return d.issue_tokens(user_id)

    def install_ui(self, url: str, user_id: int = 1, lang: str = "en") -> requests.Response:
        """The install wizard frame opens: POST to the app's initial-installation path as the
        docs show (simple-way.md), query ``DOMAIN PROTOCOL LANG APP_SID``, form ``AUTH_ID...``.
        Until the page calls ``BX24.installFinish()`` (:meth:`install_finish`) no event flows."""
        d = self.double
        tok = self._auth_fields(user_id)
        self.installed = False
        d.creds.revoked = False
        query = {
            "DOMAIN": d.domain,
            "PROTOCOL": "0" if d.base_url.startswith("http:") else "1",
            "LANG": lang,
            "APP_SID": secrets.token_hex(16),
        }
        form = {
            "AUTH_ID": tok["access_token"],
            "AUTH_EXPIRES": "3600",
            "REFRESH_ID": tok["refresh_token"],
            "SERVER_ENDPOINT": d.server_endpoint,
            "member_id": d.member_id,
            "status": "L",
            "PLACEMENT": "DEFAULT",
            "PLACEMENT_OPTIONS": "{}",
            "APPLICATION_TOKEN": d.application_token,
            "APPLICATION_SCOPE": tok["scope"],
        }
        return self._session.post(url, params=query, data=form, timeout=60)

    def install_finish(self) -> None:
        """What ``BX24.installFinish()`` does in the wizard page (installation-finish.md)."""
        self.installed = True

    def install_api(self, url: str, user_id: int = 1, lang: str = "en") -> requests.Response:
        """API-only app saved (installation-callback.md): the ONAPPINSTALL form, server to server
        (on-app-install.md), with ``auth[refresh_token]``. Installed at once."""
        d = self.double
        tok = self._auth_fields(user_id)
        d.creds.revoked = False
        self.installed = True
        payload = {
            "event": "ONAPPINSTALL",
            "data": {"VERSION": str(self.version), "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": lang},
            "ts": str(d.portal.now),
            "auth": {
                "access_token": tok["access_token"],
                "expires": str(tok["expires"]),
                "expires_in": "3600",
                "scope": tok["scope"],
                "domain": d.domain,
                "server_endpoint": d.server_endpoint,
                "status": "L",
                "client_endpoint": d.client_endpoint,
                "member_id": d.member_id,
                "user_id": str(user_id),
                "refresh_token": tok["refresh_token"],
                "application_token": d.application_token,
            },
        }
        return self._session.post(
            url, data=build_query(payload), headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=60
        )

    def update(self) -> None:
        """A new app version: the portal removes the app's event handlers (event-bind.md). The
        caller then runs the installer again (install_ui / install_api), as the portal does."""
        with self.lock:
            self.version += 1
            self.handlers = []

    def uninstall(self, clean: bool = True) -> None:
        """Deleting the app: its API access goes first (on-app-uninstall.md: "all access
        permissions for the application to the API are removed", the handler can no longer use
        the API), then ONAPPUNINSTALL reaches its handler (no tokens), then handlers and
        placements go."""
        d = self.double
        d.creds.revoked = True
        for t in d.creds.access.values():
            t.expires = 0
        d.creds.refresh.clear()
        self.installed = False
        data = {"LANGUAGE_ID": "en", "CLEAN": 1 if clean else 0}
        self._emit("ONAPPUNINSTALL", data, actor=None)
        self.wait_idle()
        with self.lock:
            self.handlers = []
            self.placements = []
            self.offline = []

    # -- event production ---------------------------------------------------------------------
    def _user_token(self, user_id: int) -> str:
        tok = self._user_tokens.get(user_id)
        t = self.double.creds.access.get(tok) if tok else None
        if t is None or t.expires <= self.double.portal.now:
            tok = self.double.issue_tokens(user_id)["access_token"]
            self._user_tokens[user_id] = tok
        return tok

    def _payload(self, event: str, data: dict, handler: dict, actor: int | None) -> str:
        d = self.double
        auth = {
            "domain": d.domain,
            "client_endpoint": d.client_endpoint,
            "server_endpoint": d.server_endpoint,
            "member_id": d.member_id,
            "application_token": d.application_token,
        }
        if actor and event not in ("ONAPPUNINSTALL",):
            uid = int(handler.get("auth_type") or 0) or int(actor)
            auth = {
                "access_token": self._user_token(uid),
                "expires_in": "3600",
                "scope": ",".join(sorted(d.creds.app_scopes)),
                **auth,
                "status": "L",
            }
        body = {
            "event": event,
            "event_handler_id": str(handler["id"]),
            "data": data,
            "ts": str(d.portal.now),
            "auth": auth,
        }
        return build_query(body)

    def _emit(self, event: str, data: dict, actor: int | None, key: str | None = None) -> None:
        """A change happened: queue it for online handlers, record it for offline ones."""
        with self.lock:
            online = [h for h in self.handlers if h["event"] == event and not h["offline"]]
            wants_offline = any(h["event"] == event and h["offline"] for h in self.handlers)
            if wants_offline and event not in APP_EVENTS:
                self._record_offline(event, data, key or event)
            if event == "ONAPPUNINSTALL":
                pass  # sent even though the app is being removed
            elif not self.installed:
                online = []  # installation-finish.md: nothing until finished
            for h in online:
                self._pending += 1
                self._queue.put((h["handler"], event, self._payload(event, data, h, actor)))
            if online:
                self._ensure_thread()
        if wants_offline and event not in APP_EVENTS:
            notice = [h for h in self.handlers if h["event"] == "ONOFFLINEEVENT" and not h["offline"]]
            for h in notice:
                self._notify_offline(h)

    def _notify_offline(self, h: dict) -> None:
        """ONOFFLINEEVENT (on-offline-event.md): empty data, at most once per ``minTimeout``."""
        opts = h.get("options") or {}
        try:
            gap = float(_ci(opts, "minTimeout", default=1) or 1)
        except (TypeError, ValueError):
            gap = 1.0
        now = time.monotonic()
        with self.lock:
            if now - h.get("_last_notice", -1e9) < gap or not self.installed:
                return
            h["_last_notice"] = now
            self._pending += 1
            self._queue.put((h["handler"], "ONOFFLINEEVENT", self._payload("ONOFFLINEEVENT", {}, h, None)))
            self._ensure_thread()

    def _record_offline(self, event: str, data: dict, key: str) -> None:
        now = self.double.portal.now
        message_id = hashlib.md5(f"{event}:{key}".encode()).hexdigest()
        for r in self.offline:
            if r["_key"] == (event, key) and r["PROCESS_ID"] is None and not r["ERROR"]:
                r["TIMESTAMP_X"], r["EVENT_DATA"] = now, data  # one record per object: the latest change
                return
        self.offline.append(
            {
                "ID": next(self._offline_ids),
                "TIMESTAMP_X": now,
                "EVENT_NAME": event,
                "EVENT_DATA": data,
                "EVENT_ADDITIONAL": False,
                "MESSAGE_ID": message_id,
                "PROCESS_ID": None,
                "ERROR": 0,
                "_key": (event, key),
            }
        )

    # -- the queue server -----------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._deliver_loop, name="double-events", daemon=True)
            self._thread.start()

    def _deliver_loop(self) -> None:
        while True:
            url, event, body = self._queue.get()
            rec = {"event": event, "url": url, "at": time.time()}
            try:
                r = self._session.post(
                    url,
                    data=body,
                    timeout=self.delivery_timeout,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
                rec["status"] = r.status_code
            except requests.RequestException as exc:  # no retry: the event is lost (events/index.md)
                rec["error"] = type(exc).__name__
            with self.lock:
                self.deliveries.append(rec)
                self._pending -= 1
                if self._pending == 0:
                    self._idle.notify_all()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until every queued event was sent (or failed); True if idle."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    # -- hooks on the portal's mutation API -----------------------------------------------------
    def _hook_mutators(self) -> None:
        p = self.double.portal

        def wrap(name, fire):
            orig = getattr(p, name)

            def wrapper(*args, **kwargs):
                result = orig(*args, **kwargs)
                try:
                    fire(result, *args, **kwargs)
                except Exception:  # event production must never break a mutation
                    log.exception("event for %s failed", name)
                return result

            wrapper.__wrapped__ = orig
            setattr(p, name, wrapper)

        def task_event(event):
            def fire(result, task_id=None, *a, actor=None, **kw):
                tid = int(result["id"]) if event == "ONTASKADD" else int(task_id)
                before = "undefined" if event == "ONTASKADD" else {"ID": tid}
                after = "undefined" if event == "ONTASKDELETE" else {"ID": tid}
                data = {
                    "FIELDS_BEFORE": before,
                    "FIELDS_AFTER": after,
                    "IS_ACCESSIBLE_BEFORE": "undefined",
                    "IS_ACCESSIBLE_AFTER": "undefined",
                }
                who = actor or kw.get("creator") or (result or {}).get("responsibleId") or 1
                self._emit(event, data, actor=int(who), key=f"task:{tid}")

            return fire

        def comment_fire(result, task_id, author_id, *a, **kw):
            # on-task-comment-add.md: the new card sends ID=0 and the chat MESSAGE_ID
            if "chat_id" in result:  # a task-chat message: the task has the new card
                after = {"ID": 0, "TASK_ID": int(task_id), "MESSAGE_ID": int(result.get("id", 0))}
            else:
                after = {"ID": int(result["id"]), "TASK_ID": int(task_id)}
            self._emit(
                "ONTASKCOMMENTADD",
                {"FIELDS_AFTER": after},
                actor=int(author_id),
                key=f"comment:{after['ID'] or after.get('MESSAGE_ID')}",
            )

        def crm_fire_factory(kind):
            def fire(result, entity_type_id, item_id=None, *a, actor=None, **kw):
                etid = int(entity_type_id)
                iid = int(result["id"]) if kind == "ADD" else int(item_id)
                who = actor or kw.get("creator") or (result or {}).get("assignedById") or 1
                fields = {"ID": iid} if etid == 2 else {"ID": iid, "ENTITY_TYPE_ID": etid}
                event = f"ONCRMDEAL{kind}" if etid == 2 else f"ONCRMDYNAMICITEM{kind}"
                self._emit(event, {"FIELDS": fields}, actor=int(who), key=f"crm:{etid}:{iid}")
                if etid != 2:
                    per = f"{event}_{etid}"
                    if any(h["event"] == per for h in self.handlers):
                        self._emit(per, {"FIELDS": fields}, actor=int(who), key=f"crm:{etid}:{iid}")
                if kind == "UPDATE" and etid == 2 and kw.get("_category"):
                    self._emit(
                        "ONCRMDEALMOVETOCATEGORY",
                        {
                            "FIELDS": {
                                "ID": iid,
                                "CATEGORY_ID": (result or {}).get("categoryId"),
                                "STAGE_ID": (result or {}).get("stageId"),
                            }
                        },
                        actor=int(who),
                        key=f"crm:{etid}:{iid}",
                    )

            return fire

        def category_fire(result, entity_type_id, item_id, category_id, actor=None, **kw):
            crm_fire_factory("UPDATE")(result, entity_type_id, item_id, actor=actor, _category=True)

        def activity_fire(result, entity_type_id, item_id, **kw):
            self._emit(
                "ONCRMACTIVITYADD",
                {"FIELDS": {"ID": int(result["ID"])}},
                actor=int(result.get("RESPONSIBLE_ID") or 1),
                key=f"activity:{result['ID']}",
            )

        def tl_fire(result, entity_type_id, item_id, author_id, *a, **kw):
            self._emit(
                "ONCRMTIMELINECOMMENTADD",
                {"ID": int(result["ID"])},
                actor=int(author_id),
                key=f"timeline:{result['ID']}",
            )

        wrap("create_task", task_event("ONTASKADD"))
        wrap("update_task", task_event("ONTASKUPDATE"))
        wrap("delete_task", task_event("ONTASKDELETE"))
        wrap("add_task_comment", comment_fire)
        wrap("create_item", crm_fire_factory("ADD"))
        for name in ("move_item", "reassign_item", "set_item_field"):
            wrap(name, crm_fire_factory("UPDATE"))
        wrap("change_item_category", category_fire)
        wrap("delete_item", crm_fire_factory("DELETE"))
        wrap("add_activity", activity_fire)
        wrap("add_timeline_comment", tl_fire)

    # -- method helpers -----------------------------------------------------------------------
    def bind(
        self,
        event: str,
        handler: str | None,
        *,
        offline: bool,
        auth_type: int = 0,
        options=None,
        connector: str | None = None,
    ) -> dict:
        with self.lock:
            for h in self.handlers:
                if (
                    h["event"] == event
                    and h["offline"] == offline
                    and h["handler"] == (handler or "")
                    and h["auth_type"] == auth_type
                    and h["connector"] == connector
                ):
                    raise ApiError(400, "ERROR_HANDLER_ALREADY_EXIST", "Handler already exists")
            h = {
                "id": next(self._ids),
                "event": event,
                "handler": handler or "",
                "auth_type": auth_type,
                "offline": offline,
                "options": options or {},
                "connector": connector,
            }
            self.handlers.append(h)
            return h


def _event_name(params: dict) -> str:
    name = str(_ci(params, "event", default="") or "").strip().upper()
    if name not in KNOWN_EVENTS and not _PER_TYPE.match(name):
        raise ApiError(400, "ERROR_EVENT_NOT_FOUND", "Event not found")
    return name


def _url(value) -> str | None:
    v = str(value or "").strip()
    return v if re.match(r"^https?://[^\s/]+", v) else None


# --- event.* (DOCS api-reference/events/event-bind.md, event-unbind.md, event-get.md) ------------


@method("event.bind", "basic", app_only=True)
def event_bind(c: Call, params: dict):
    app = _app(c)
    name = _event_name(params)
    offline = str(_ci(params, "event_type", default="online") or "online").lower() == "offline"
    auth_type = int(str(_ci(params, "auth_type", default=0) or 0) or 0)
    if (offline or (auth_type and auth_type != c.user_id)) and not _admin(c):
        raise ApiError(403, "ACCESS_DENIED", "Access denied! Admin permissions required")
    handler = _ci(params, "handler")
    if not offline:
        handler = _url(handler)
        if handler is None:
            raise ApiError(400, "ERROR_HANDLER_URL", "Handler URL is empty or invalid")
    options = _ci(params, "options") or {}
    app.bind(
        name,
        handler if not offline else "",
        offline=offline,
        auth_type=auth_type,
        options=options if isinstance(options, dict) else {},
        connector=_ci(params, "auth_connector"),
    )
    return True


@method("event.unbind", "basic", app_only=True)
def event_unbind(c: Call, params: dict):
    app = _app(c)
    name = _event_name(params)
    offline = str(_ci(params, "event_type", default="online") or "online").lower() == "offline"
    handler = "" if offline else str(_ci(params, "handler", default="") or "")
    if not offline and not handler:
        raise ApiError(400, "ERROR_HANDLER_URL", "Handler URL is empty or invalid")
    auth_type = int(str(_ci(params, "auth_type", default=0) or 0) or 0)
    with app.lock:
        keep, n = [], 0
        for h in app.handlers:
            if (
                h["event"] == name
                and h["offline"] == offline
                and h["handler"] == handler
                and h["auth_type"] == auth_type
            ):
                n += 1
            else:
                keep.append(h)
        app.handlers = keep
    return {"count": n}


@method("event.get", "basic", app_only=True)
def event_get(c: Call, params: dict):
    app = _app(c)
    with app.lock:
        return [
            {
                "event": h["event"],
                "handler": h["handler"],
                "auth_type": str(h["auth_type"]),
                "offline": 1 if h["offline"] else 0,
            }
            for h in app.handlers
        ]


# --- placement.* (DOCS api-reference/widgets/placement-bind.md, -unbind.md, -get.md) -------------


@method("placement.bind", "placement", app_only=True)
def placement_bind(c: Call, params: dict):
    app = _app(c)
    if not _admin(c):
        raise ApiError(403, "ACCESS_DENIED", "Access denied! Admin permissions required")
    code = str(_ci(params, "PLACEMENT", default="") or "").strip().upper()
    if not re.match(r"^[A-Z0-9_]+$", code):
        raise ApiError(400, "ERROR_PLACEMENT_NOT_FOUND", "Placement not found")
    handler = _url(_ci(params, "HANDLER"))
    if handler is None:
        raise ApiError(400, "ERROR_WRONG_HANDLER_URL", "Wrong handler URL")
    with app.lock:
        if any(p["placement"] == code and p["handler"] == handler for p in app.placements):
            raise ApiError(400, "ERROR_PLACEMENT_HANDLER_ALREADY_EXISTS", "Handler already binded")
        app.placements.append(
            {
                "placement": code,
                "userId": 0,
                "handler": handler,
                "options": _ci(params, "OPTIONS") or [],
                "title": _ci(params, "TITLE") or "",
                "description": _ci(params, "DESCRIPTION") or "",
                "langAll": _ci(params, "LANG_ALL") or {},
            }
        )
    return True


@method("placement.unbind", "placement", app_only=True)
def placement_unbind(c: Call, params: dict):
    app = _app(c)
    code = str(_ci(params, "PLACEMENT", default="") or "").strip().upper()
    handler = str(_ci(params, "HANDLER", default="") or "")
    with app.lock:
        keep = [p for p in app.placements if not (p["placement"] == code and (not handler or p["handler"] == handler))]
        n = len(app.placements) - len(keep)
        app.placements = keep
    return {"count": n}


@method("placement.get", "placement", app_only=True)
def placement_get(c: Call, params: dict):
    app = _app(c)
    with app.lock:
        return [dict(p) for p in app.placements]


# --- event.offline.* (DOCS api-reference/events/event-offline-*.md) -------------------------------

_OFFLINE_FIELDS = ("ID", "TIMESTAMP_X", "EVENT_NAME", "MESSAGE_ID", "PROCESS_ID", "ERROR")


def _render_offline(p, r: dict, with_process: bool = False) -> dict:
    out = {
        "ID": str(r["ID"]),
        "TIMESTAMP_X": timefmt.iso(r["TIMESTAMP_X"], p.tz),
        "EVENT_NAME": r["EVENT_NAME"],
        "EVENT_DATA": r["EVENT_DATA"],
        "EVENT_ADDITIONAL": r["EVENT_ADDITIONAL"],
        "MESSAGE_ID": r["MESSAGE_ID"],
    }
    if with_process:
        out["PROCESS_ID"] = r["PROCESS_ID"]
        out["ERROR"] = str(r["ERROR"])
    return out


def _offline_match(p, flt) -> callable:
    tests = []
    for key, value in (flt or {}).items():
        m = re.match(r"^(>=|<=|!=|>|<|=|!)?(.+)$", str(key))
        op, field = m.group(1) or "=", m.group(2).upper()
        if field not in _OFFLINE_FIELDS:
            raise ApiError(400, "ERROR_ARGUMENT", f"Unknown filter field {field}")

        def get(r, field=field):
            v = r[field]
            return v

        want = value
        if field in ("ID", "ERROR"):
            want = int(value)
        elif field == "TIMESTAMP_X":
            want = timefmt.parse(value, p.tz)
        elif field == "EVENT_NAME":
            want = str(value).upper()
        else:
            want = None if value in (None, "") else str(value)
        ops = {
            "=": lambda a, b: a == b,
            "!": lambda a, b: a != b,
            "!=": lambda a, b: a != b,
            ">": lambda a, b: a is not None and a > b,
            "<": lambda a, b: a is not None and a < b,
            ">=": lambda a, b: a is not None and a >= b,
            "<=": lambda a, b: a is not None and a <= b,
        }
        tests.append(lambda r, get=get, want=want, f=ops[op]: f(get(r), want))
    return lambda r: all(t(r) for t in tests)


def _offline_order(order) -> list[tuple[str, bool]]:
    out = []
    for k, v in (order or {}).items():
        if str(k).upper() not in _OFFLINE_FIELDS:
            raise ApiError(400, "ERROR_ARGUMENT", f"Unknown order field {k}")
        out.append((str(k).upper(), str(v).upper() == "DESC"))
    return out


def _sorted(records, order):
    rows = list(records)
    for field, desc in reversed(order):
        rows.sort(key=lambda r: (r[field] is None, r[field]), reverse=desc)
    return rows


@method("event.offline.get", "basic", app_only=True)
def offline_get(c: Call, params: dict):
    app = _app(c)
    if not _admin(c):
        raise ApiError(403, "ACCESS_DENIED", "Access denied! Admin permissions required")
    match = _offline_match(c.portal, _ci(params, "filter"))
    order = _offline_order(_ci(params, "order")) or [("TIMESTAMP_X", False), ("ID", False)]
    limit = max(1, min(1000, int(str(_ci(params, "limit", default=50) or 50))))
    clear = str(_ci(params, "clear", default=1)) not in ("0", "false", "N")
    errors = str(_ci(params, "error", default=0)) in ("1", "true", "Y")
    pid = _ci(params, "process_id") or None
    with app.lock:
        pool = [r for r in app.offline if r["PROCESS_ID"] is None and (errors or not r["ERROR"]) and match(r)]
        rows = _sorted(pool, order)[:limit]
        if not rows:
            return {"process_id": None, "events": []}
        out = [_render_offline(c.portal, r) for r in rows]
        if clear:
            ids = {r["ID"] for r in rows}
            app.offline = [r for r in app.offline if r["ID"] not in ids]
            return {"process_id": None, "events": out}
        pid = str(pid) if pid else secrets.token_hex(16)
        for r in rows:
            r["PROCESS_ID"] = pid
        return {"process_id": pid, "events": out}


@method("event.offline.clear", "basic", app_only=True)
def offline_clear(c: Call, params: dict):
    app = _app(c)
    if not _admin(c):
        raise ApiError(403, "ACCESS_DENIED", "Access denied! Admin permissions required")
    pid = _ci(params, "process_id")
    if not pid:
        raise ApiError(400, "ERROR_ARGUMENT", "process_id is required")
    ids = {int(x) for x in (_ci(params, "id") or [])} if _ci(params, "id") else None
    mids = {str(x) for x in (_ci(params, "message_id") or [])} if _ci(params, "message_id") else None
    with app.lock:

        def gone(r):
            if r["PROCESS_ID"] != str(pid):
                return False
            if ids is not None and r["ID"] not in ids:
                return False
            if mids is not None and r["MESSAGE_ID"] not in mids:
                return False
            return True

        app.offline = [r for r in app.offline if not gone(r)]
    return True


@method("event.offline.error", "basic", app_only=True)
def offline_error(c: Call, params: dict):
    app = _app(c)
    pid = _ci(params, "process_id")
    mids = {str(x) for x in (_ci(params, "message_id") or [])}
    if not pid:
        raise ApiError(400, "ERROR_ARGUMENT", "process_id is required")
    with app.lock:
        for r in app.offline:
            if r["PROCESS_ID"] == str(pid) and r["MESSAGE_ID"] in mids:
                r["ERROR"] = 1
    return True


@method("event.offline.list", "basic", app_only=True)
def offline_list(c: Call, params: dict):
    app = _app(c)
    if not _admin(c):
        raise ApiError(403, "ACCESS_DENIED", "Access denied! Admin permissions required")
    match = _offline_match(c.portal, _ci(params, "filter"))
    order = _offline_order(_ci(params, "order")) or [("ID", False)]
    start = int(str(_ci(params, "start", default=0) or 0))
    with app.lock:
        rows = _sorted([r for r in app.offline if match(r)], order)
    page = rows[start : start + 50]
    nxt = start + 50 if start + 50 < len(rows) else None
    return Listed([_render_offline(c.portal, r, with_process=True) for r in page], len(rows), nxt)


# --- owners of activities and comments --------------------------------------------------------------


@method("crm.activity.get", "crm")
def activity_get(c: Call, params: dict):
    """DOCS api-reference/crm/timeline/activities/activity-base/crm-activity-get.md."""
    from .methods.crm import render_activity

    try:
        aid = int(str(_ci(params, "id", default="")))
    except ValueError:
        raise ApiError(400, "ERROR_ARGUMENT", "ID is not defined or invalid")
    a = c.portal.activities_by_id.get(aid)
    if a is None:
        raise ApiError(400, "ERROR_NOT_FOUND", "Not found")
    return render_activity(c.portal, a, None)


@method("crm.timeline.comment.get", "crm")
def timeline_comment_get(c: Call, params: dict):
    """DOCS api-reference/crm/timeline/comments/crm-timeline-comment-get.md."""
    try:
        cid = int(str(_ci(params, "id", default="")))
    except ValueError:
        raise ApiError(400, "ERROR_ARGUMENT", "ID is not defined or invalid")
    for r in c.portal.timeline_comments:
        if r["ID"] == cid:
            etid = int(r["ENTITY_TYPE_ID"])
            name = {1: "lead", 2: "deal", 3: "contact", 4: "company"}.get(etid, f"dynamic_{etid}")
            return {
                "ID": str(r["ID"]),
                "ENTITY_ID": str(r["ENTITY_ID"]),
                "ENTITY_TYPE": name,
                "CREATED": timefmt.iso(r["CREATED"], c.portal.tz),
                "COMMENT": r["COMMENT"],
                "AUTHOR_ID": str(r["AUTHOR_ID"]),
                "FILES": {},
            }
    raise ApiError(400, "ERROR_NOT_FOUND", "Not found")
