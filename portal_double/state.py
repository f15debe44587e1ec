"""The portal's data: users, tasks with history/comments/chat/elapsed time, CRM items with stage
history, activities and timeline comments, plus the portal clock and the mutation API.

Records are stored typed (ints for ids and unix times) and rendered to the wire format by the
method modules. Every change goes through one of the ``_``-prefixed recorders, which also write
what the real portal would log (task history rows, stage-history rows), so the API and the ground
truth (``truth.py``) always agree. Public mutators stamp changes with the portal clock ``now``.
"""

from __future__ import annotations

import threading
import time
from zoneinfo import ZoneInfo

# Task statuses (DOCS api-reference/tasks/fields.md)
PENDING, IN_PROGRESS, AWAITING_CONTROL, COMPLETED, DEFERRED = 2, 3, 4, 5, 6

DEAL = 2
CONTACT = 3
COMPANY = 4


class Portal:
    """In-memory Bitrix24 portal state. Not thread-safe by itself: the server holds ``lock``."""

    def __init__(
        self,
        *,
        now: int | None = None,
        timezone: str = "Europe/Moscow",
        new_task_card: bool = False,
        domain: str = "b24-double.bitrix24.ru",
        member_id: str = "d0ub1e0000000000000000000000f00d",
        new_card_since: int | None = None,
    ):
        self.lock = threading.RLock()
        self.tz = ZoneInfo(timezone)
        self.timezone = timezone
        self.now = int(now if now is not None else time.time())
        self.new_task_card = new_task_card
        # a portal that moved to the new card at this time: tasks created before it stay classic
        self.new_card_since = new_card_since
        self.domain = domain
        self.member_id = member_id
        self._ids: dict[str, int] = {}
        # directory
        self.users: dict[int, dict] = {}
        self.departments: list[dict] = []
        self.groups: dict[int, dict] = {}
        # tasks
        self.tasks: dict[int, dict] = {}
        self.task_list: list[dict] = []  # sorted by id (deleted ones removed)
        self.task_history: dict[int, list[dict]] = {}
        self.task_comments: dict[int, list[dict]] = {}
        self.task_elapsed: dict[int, list[dict]] = {}
        self.chats: dict[int, dict] = {}  # chat id -> {id, entity, messages[]}
        # crm
        self.crm_types: dict[int, dict] = {}  # entityTypeId -> type
        self.categories: dict[int, list[dict]] = {}
        self.stages: dict[str, dict] = {}  # STATUS_ID -> stage (ENTITY_ID, SEMANTICS, ...)
        self.stage_lists: dict[str, list[dict]] = {}  # ENTITY_ID -> stages in sort order
        self.items: dict[int, dict[int, dict]] = {}  # entityTypeId -> id -> item
        self.uf_fields: dict[int, dict[str, tuple[str, str]]] = {}  # etid -> camelKey -> (UF_CRM_..., type)
        self.item_lists: dict[int, list[dict]] = {}
        self.stage_history: dict[int, list[dict]] = {}  # entityTypeId -> rows sorted by ID
        self.stage_history_by_owner: dict[tuple[int, int], list[dict]] = {}
        self.activities: list[dict] = []
        self.activities_by_id: dict[int, dict] = {}
        self.activities_by_owner: dict[tuple[int, int], list[dict]] = {}
        self.timeline_comments: list[dict] = []
        self.timeline_by_owner: dict[tuple[int, int], list[dict]] = {}
        # changes no API reveals, kept for the ground truth
        self.hidden_log: list[dict] = []
        self.admins: set[int] = {1}

    # -- ids and clock -------------------------------------------------------------------
    def next_id(self, kind: str, start: int = 1) -> int:
        n = self._ids.get(kind, start - 1) + 1
        self._ids[kind] = n
        return n

    def advance(self, seconds: int) -> int:
        """Move the portal clock forward (tests simulate time passing between syncs)."""
        with self.lock:
            self.now += int(seconds)
            return self.now

    # -- directory -------------------------------------------------------------------------
    def add_user(
        self,
        uid: int,
        name: str,
        last_name: str,
        *,
        departments=(),
        user_type="employee",
        position="",
        email=None,
        active=True,
        registered: int | None = None,
        is_bot=False,
    ):
        self.users[uid] = {
            "ID": uid,
            "ACTIVE": active,
            "NAME": name,
            "LAST_NAME": last_name,
            "SECOND_NAME": "",
            "EMAIL": email or f"user{uid}@{self.domain}",
            "UF_DEPARTMENT": list(departments),
            "USER_TYPE": user_type,
            "WORK_POSITION": position,
            "TIME_ZONE": "",
            "DATE_REGISTER": registered or self.now - 400 * 86400,
            "IS_BOT": is_bot,
            "LAST_LOGIN": self.now - 3600,
            "PERSONAL_GENDER": "",
        }
        return self.users[uid]

    def user_name(self, uid) -> str:
        u = self.users.get(int(uid or 0))
        return f"{u['NAME']} {u['LAST_NAME']}".strip() if u else ""

    # -- tasks: recorders (at = when it happened, actor = who did it) -------------------------
    def _history(self, task: dict, at: int, actor: int, field: str, old, new) -> dict:
        row = {
            "id": self.next_id("task_history"),
            "at": at,
            "field": field,
            "from": None if old is None else str(old),
            "to": None if new is None else str(new),
            "user_id": actor,
        }
        self.task_history.setdefault(task["id"], []).append(row)
        return row

    def _touch_task(self, task: dict, at: int, actor: int) -> None:
        task["changedDate"] = max(task.get("changedDate") or 0, at)
        task["changedBy"] = actor
        task["activityDate"] = max(task.get("activityDate") or 0, at)

    def _task_create(
        self,
        at: int,
        creator: int,
        responsible: int,
        title: str,
        *,
        priority: int = 1,
        deadline: int | None = None,
        group_id: int = 0,
        description: str = "",
        task_control: bool = False,
        auditors=(),
        task_id: int | None = None,
    ) -> dict:
        tid = task_id or self.next_id("task")
        task = {
            "id": tid,
            "title": title,
            "description": description,
            "status": PENDING,
            "priority": priority,
            "responsibleId": responsible,
            "createdBy": creator,
            "createdDate": at,
            "changedDate": at,
            "changedBy": creator,
            "statusChangedDate": at,
            "statusChangedBy": creator,
            "closedDate": None,
            "closedBy": None,
            "activityDate": at,
            "deadline": deadline,
            "groupId": group_id,
            "mark": None,
            "timeEstimate": 0,
            "timeSpentInLogs": 0,
            "ufCrmTask": [],
            "auditors": list(auditors),
            "accomplices": [],
            "commentsCount": 0,
            "taskControl": "Y" if task_control else "N",
            "chatId": None,
            "parentId": None,
            "stageId": 0,
            "dateStart": None,
            "xmlId": None,
        }
        self.tasks[tid] = task
        self.task_list.append(task)
        if len(self.task_list) > 1 and self.task_list[-2]["id"] > tid:
            self.task_list.sort(key=lambda t: t["id"])
        self.task_history[tid] = []
        self.task_comments[tid] = []
        self.task_elapsed[tid] = []
        self._history(task, at, creator, "NEW", None, None)
        if self.new_task_card or (self.new_card_since is not None and at >= self.new_card_since):
            cid = self.next_id("chat", 100)
            task["chatId"] = cid
            self.chats[cid] = {"id": cid, "entity": ("TASKS_TASK", tid), "messages": []}
            self._chat_message(cid, at, 0, f"[USER={creator}]{self.user_name(creator)}[/USER] created the task")
        return task

    def _task_status(self, task: dict, at: int, actor: int, status: int) -> None:
        old = task["status"]
        if old == status:
            return
        task["status"] = status
        task["statusChangedDate"] = at
        task["statusChangedBy"] = actor
        if status == COMPLETED:
            task["closedDate"] = at
            task["closedBy"] = actor
        elif old == COMPLETED:
            task["closedDate"] = None
            task["closedBy"] = None
        if status == IN_PROGRESS and not task.get("dateStart"):
            task["dateStart"] = at
        self._history(task, at, actor, "STATUS", old, status)
        self._touch_task(task, at, actor)

    def _task_responsible(self, task: dict, at: int, actor: int, responsible: int) -> None:
        old = task["responsibleId"]
        if old == responsible:
            return
        task["responsibleId"] = responsible
        self._history(task, at, actor, "RESPONSIBLE_ID", old, responsible)
        self._touch_task(task, at, actor)

    def _task_deadline(self, task: dict, at: int, actor: int, deadline: int | None) -> None:
        old = task["deadline"]
        if old == deadline:
            return
        task["deadline"] = deadline
        self._history(task, at, actor, "DEADLINE", old, deadline)
        self._touch_task(task, at, actor)

    def _task_mark(self, task: dict, at: int, actor: int, mark: str | None) -> None:
        old = task["mark"]
        if old == mark:
            return
        task["mark"] = mark
        self._history(task, at, actor, "MARK", old or "", mark or "")
        self._touch_task(task, at, actor)

    def _task_field(self, task: dict, at: int, actor: int, key: str, history_field: str, value) -> None:
        old = task.get(key)
        if old == value:
            return
        task[key] = value
        self._history(task, at, actor, history_field, old, value)
        self._touch_task(task, at, actor)

    def _chat_message(self, chat_id: int, at: int, author: int, text: str) -> dict:
        msg = {"id": self.next_id("message", 1000), "chat_id": chat_id, "author_id": author, "at": at, "text": text}
        self.chats[chat_id]["messages"].append(msg)
        return msg

    def _task_comment(self, task: dict, at: int, author: int, text: str) -> dict:
        """Old card: a forum comment + a COMMENT history row; new card (the task has a chat): a
        task-chat message. A portal switched to the new card keeps its older tasks classic."""
        if task.get("chatId"):
            msg = self._chat_message(task["chatId"], at, author, text)
            task["commentsCount"] += 1
            self._touch_task(task, at, author)
            return msg
        c = {"id": self.next_id("comment", 3000), "task_id": task["id"], "author_id": author, "at": at, "text": text}
        self.task_comments[task["id"]].append(c)
        task["commentsCount"] += 1
        self._history(task, at, author, "COMMENT", None, c["id"])
        task["activityDate"] = max(task["activityDate"], at)
        return c

    def _task_elapsed(self, task: dict, at: int, user: int, seconds: int, comment: str = "") -> dict:
        e = {
            "id": self.next_id("elapsed"),
            "task_id": task["id"],
            "user_id": user,
            "seconds": int(seconds),
            "at": at,
            "start": at - int(seconds),
            "stop": at,
            "comment": comment,
        }
        self.task_elapsed[task["id"]].append(e)
        old = task["timeSpentInLogs"]
        task["timeSpentInLogs"] = old + int(seconds)
        self._history(task, at, user, "TIME_SPENT_IN_LOGS", old, task["timeSpentInLogs"])
        return e

    # -- crm: recorders --------------------------------------------------------------------
    def stage_semantics(self, stage_id: str) -> str:
        s = self.stages.get(stage_id)
        return (s or {}).get("SEMANTICS") or "P"

    def stage_entity(self, entity_type_id: int, category_id: int) -> str:
        if entity_type_id == DEAL:
            return "DEAL_STAGE" if category_id == 0 else f"DEAL_STAGE_{category_id}"
        return f"DYNAMIC_{entity_type_id}_STAGE_{category_id}"

    def _stage_row(self, etid: int, item: dict, at: int, type_id: int) -> dict:
        row = {
            "ID": self.next_id("stagehistory"),
            "TYPE_ID": type_id,
            "OWNER_ID": item["id"],
            "CREATED_TIME": at,
            "CATEGORY_ID": item.get("categoryId", 0),
            "STAGE_SEMANTIC_ID": self.stage_semantics(item["stageId"]),
            "STAGE_ID": item["stageId"],
            "_entity_type_id": etid,
        }
        self.stage_history.setdefault(etid, []).append(row)
        self.stage_history_by_owner.setdefault((etid, item["id"]), []).append(row)
        return row

    def _item_create(
        self,
        etid: int,
        at: int,
        creator: int,
        assigned: int,
        *,
        title: str,
        category_id: int = 0,
        stage_id: str | None = None,
        fields: dict | None = None,
        item_id: int | None = None,
    ) -> dict:
        iid = item_id or self.next_id(f"item{etid}")
        item = {
            "id": iid,
            "title": title,
            "createdTime": at,
            "updatedTime": at,
            "createdBy": creator,
            "updatedBy": creator,
            "assignedById": assigned,
            "opened": "Y",
            "entityTypeId": etid,
        }
        if etid not in (CONTACT, COMPANY):
            stage_id = stage_id or self.stage_lists[self.stage_entity(etid, category_id)][0]["STATUS_ID"]
            item.update(
                {
                    "categoryId": category_id,
                    "stageId": stage_id,
                    "previousStageId": "",
                    "movedBy": creator,
                    "movedTime": at,
                    "begindate": _day(at, self.tz),
                    "closedate": _day(at + 7 * 86400, self.tz),
                    "lastActivityBy": creator,
                    "lastActivityTime": at,
                    "contactId": None,
                    "contactIds": [],
                    "companyId": None,
                    "observers": [],
                    "sourceId": "EMAIL",
                    "opportunity": 0,
                    "currencyId": "RUB",
                }
            )
            if etid == DEAL:
                item.update(
                    {
                        "stageSemanticId": self.stage_semantics(stage_id),
                        "closed": "N",
                        "isNew": "Y",
                        "typeId": "SERVICE",
                    }
                )
            else:
                item["xmlId"] = ""
        if fields:
            item.update(fields)
        self.items.setdefault(etid, {})[iid] = item
        lst = self.item_lists.setdefault(etid, [])
        lst.append(item)
        if len(lst) > 1 and lst[-2]["id"] > iid:
            lst.sort(key=lambda r: r["id"])
        if etid not in (CONTACT, COMPANY):
            self._stage_row(etid, item, at, 1)
        return item

    def _item_touch(self, item: dict, at: int, actor: int) -> None:
        item["updatedTime"] = max(item["updatedTime"], at)
        item["updatedBy"] = actor

    def _item_move(self, etid: int, item: dict, at: int, actor: int, stage_id: str) -> None:
        if stage_id not in self.stages:
            raise ValueError(f"unknown stage {stage_id}")
        if self.stages[stage_id]["ENTITY_ID"] != self.stage_entity(etid, item.get("categoryId", 0)):
            raise ValueError(f"stage {stage_id} is not in the item's funnel {item.get('categoryId')}")
        if item["stageId"] == stage_id:
            return
        item["previousStageId"] = item["stageId"]
        item["stageId"] = stage_id
        item["movedTime"] = at
        item["movedBy"] = actor
        sem = self.stage_semantics(stage_id)
        if etid == DEAL:
            item["stageSemanticId"] = sem
            item["closed"] = "N" if sem == "P" else "Y"
            item["isNew"] = "N"
        self._item_touch(item, at, actor)
        self._stage_row(etid, item, at, 2 if sem == "P" else 3)

    def _item_category(
        self, etid: int, item: dict, at: int, actor: int, category_id: int, stage_id: str | None = None
    ) -> None:
        """Funnel change: the item lands on the new funnel's first stage (stage history TYPE_ID 5)."""
        stages = self.stage_lists[self.stage_entity(etid, category_id)]
        new_stage = stage_id or stages[0]["STATUS_ID"]
        item["previousStageId"] = item["stageId"]
        item["categoryId"] = category_id
        item["stageId"] = new_stage
        item["movedTime"] = at
        item["movedBy"] = actor
        if etid == DEAL:
            sem = self.stage_semantics(new_stage)
            item["stageSemanticId"] = sem
            item["closed"] = "N" if sem == "P" else "Y"
        self._item_touch(item, at, actor)
        self._stage_row(etid, item, at, 5)

    def _item_reassign(self, etid: int, item: dict, at: int, actor: int, assigned: int) -> None:
        """No Bitrix24 API keeps a responsible history for CRM items: only the hidden log sees it."""
        old = item["assignedById"]
        if old == assigned:
            return
        item["assignedById"] = assigned
        self._item_touch(item, at, actor)
        self.hidden_log.append(
            {
                "kind": "assigned",
                "entity_type_id": etid,
                "id": item["id"],
                "at": at,
                "actor": actor,
                "from": old,
                "to": assigned,
            }
        )

    def _item_set(self, etid: int, item: dict, at: int, actor: int, key: str, value) -> None:
        old = item.get(key)
        if old == value:
            return
        item[key] = value
        self._item_touch(item, at, actor)
        self.hidden_log.append(
            {
                "kind": "field",
                "entity_type_id": etid,
                "id": item["id"],
                "at": at,
                "actor": actor,
                "field": key,
                "from": old,
                "to": value,
            }
        )

    def _activity(
        self,
        owner_type: int,
        owner_id: int,
        at: int,
        *,
        type_id: int,
        direction: int,
        responsible: int,
        subject: str,
        provider_id: str,
        provider_type_id: str,
        duration: int = 0,
        completed: bool = True,
        description: str = "",
        communication: str = "",
    ) -> dict:
        a = {
            "ID": self.next_id("activity"),
            "OWNER_ID": owner_id,
            "OWNER_TYPE_ID": owner_type,
            "TYPE_ID": type_id,
            "PROVIDER_ID": provider_id,
            "PROVIDER_TYPE_ID": provider_type_id,
            "DIRECTION": direction,
            "SUBJECT": subject,
            "DESCRIPTION": description,
            "CREATED": at,
            "LAST_UPDATED": at + duration,
            "START_TIME": at,
            "END_TIME": at + duration,
            "DEADLINE": at + duration,
            "COMPLETED": "Y" if completed else "N",
            "STATUS": 2 if completed else 1,
            "RESPONSIBLE_ID": responsible,
            "AUTHOR_ID": responsible,
            "EDITOR_ID": responsible,
            "PRIORITY": 2,
            "ASSOCIATED_ENTITY_ID": 0,
            "COMMUNICATION": communication,
        }
        self.activities.append(a)
        self.activities_by_id[a["ID"]] = a
        self.activities_by_owner.setdefault((owner_type, owner_id), []).append(a)
        item = self.items.get(owner_type, {}).get(owner_id)
        if item is not None and "lastActivityTime" in item:
            item["lastActivityTime"] = max(item["lastActivityTime"], at)
            item["lastActivityBy"] = responsible
        return a

    def _timeline_comment(self, etid: int, owner_id: int, at: int, author: int, text: str) -> dict:
        c = {
            "ID": self.next_id("timeline"),
            "ENTITY_ID": owner_id,
            "ENTITY_TYPE_ID": etid,
            "CREATED": at,
            "COMMENT": text,
            "AUTHOR_ID": author,
        }
        self.timeline_comments.append(c)
        self.timeline_by_owner.setdefault((etid, owner_id), []).append(c)
        return c

    # -- public mutation API (stamps changes with the portal clock) --------------------------

    def task(self, task_id: int) -> dict:
        t = self.tasks.get(int(task_id))
        if t is None:
            raise KeyError(f"no task {task_id}")
        return t

    def item(self, entity_type_id: int, item_id: int) -> dict:
        it = self.items.get(int(entity_type_id), {}).get(int(item_id))
        if it is None:
            raise KeyError(f"no item {entity_type_id}/{item_id}")
        return it

    def create_task(
        self,
        *,
        creator: int,
        responsible: int,
        title: str = "New request",
        priority: int = 1,
        deadline: int | None = None,
        group_id: int = 0,
        at: int | None = None,
    ) -> dict:
        with self.lock:
            return self._task_create(
                self.now if at is None else at,
                creator,
                responsible,
                title,
                priority=priority,
                deadline=deadline,
                group_id=group_id,
            )

    def update_task(self, task_id: int, actor: int | None = None, **fields) -> dict:
        """Change task fields as a user would: status, responsible_id/responsibleId, deadline, mark,
        priority, title. Each change writes its history row at ``now``."""
        with self.lock:
            t = self.task(task_id)
            actor = actor if actor is not None else t["responsibleId"]
            at = self.now
            for key, value in fields.items():
                k = key.replace("_", "").lower()
                if k == "status":
                    if int(value) not in (PENDING, IN_PROGRESS, AWAITING_CONTROL, COMPLETED, DEFERRED):
                        raise ValueError(f"task status {value} is not one of 2..6")
                    self._task_status(t, at, actor, int(value))
                elif k == "responsibleid":
                    self._task_responsible(t, at, actor, int(value))
                elif k == "deadline":
                    self._task_deadline(t, at, actor, None if value is None else int(value))
                elif k == "mark":
                    self._task_mark(t, at, actor, value or None)
                elif k == "priority":
                    self._task_field(t, at, actor, "priority", "PRIORITY", int(value))
                elif k == "title":
                    self._task_field(t, at, actor, "title", "TITLE", str(value))
                elif k == "groupid":
                    self._task_field(t, at, actor, "groupId", "GROUP_ID", int(value))
                else:
                    raise KeyError(f"update_task: unsupported field {key}")
            return t

    def switch_to_new_card(self) -> None:
        """The portal moves to the new task card (tasks >= 25.700.0): tasks created from now on have
        a chat and their comments are chat messages; older tasks keep their forum comments."""
        with self.lock:
            self.new_task_card = True

    def add_task_comment(self, task_id: int, author_id: int, text: str) -> dict:
        with self.lock:
            t = self.task(task_id)
            return self._task_comment(t, self.now, int(author_id), text)

    def add_elapsed(self, task_id: int, user_id: int, seconds: int, comment: str = "") -> dict:
        with self.lock:
            return self._task_elapsed(self.task(task_id), self.now, int(user_id), seconds, comment)

    def delete_task(self, task_id: int, actor: int = 1) -> None:
        with self.lock:
            t = self.tasks.pop(int(task_id))
            self.task_list.remove(t)
            self.hidden_log.append({"kind": "deleted", "source": "task", "id": t["id"], "at": self.now, "actor": actor})

    def create_item(
        self,
        entity_type_id: int,
        *,
        creator: int,
        assigned: int,
        title: str = "New request",
        category_id: int = 0,
        stage_id: str | None = None,
        **fields,
    ) -> dict:
        with self.lock:
            it = self._item_create(
                int(entity_type_id),
                self.now,
                creator,
                assigned,
                title=title,
                category_id=category_id,
                stage_id=stage_id,
                fields=fields,
            )
            return it

    def move_item(self, entity_type_id: int, item_id: int, stage_id: str, actor: int | None = None) -> dict:
        with self.lock:
            it = self.item(entity_type_id, item_id)
            self._item_move(int(entity_type_id), it, self.now, actor or it["assignedById"], stage_id)
            return it

    def change_item_category(
        self, entity_type_id: int, item_id: int, category_id: int, actor: int | None = None
    ) -> dict:
        with self.lock:
            it = self.item(entity_type_id, item_id)
            self._item_category(int(entity_type_id), it, self.now, actor or it["assignedById"], int(category_id))
            return it

    def reassign_item(self, entity_type_id: int, item_id: int, assigned_by_id: int, actor: int = 1) -> dict:
        with self.lock:
            it = self.item(entity_type_id, item_id)
            self._item_reassign(int(entity_type_id), it, self.now, actor, int(assigned_by_id))
            return it

    def set_item_field(self, entity_type_id: int, item_id: int, field: str, value, actor: int = 1) -> dict:
        with self.lock:
            it = self.item(entity_type_id, item_id)
            self._item_set(int(entity_type_id), it, self.now, actor, field, value)
            return it

    def add_activity(
        self,
        entity_type_id: int,
        item_id: int,
        *,
        kind: str,
        direction: int,
        responsible: int | None = None,
        duration: int = 0,
        subject: str = "",
    ) -> dict:
        """kind: "email" | "call" | "todo"; direction 1 incoming, 2 outgoing."""
        with self.lock:
            it = self.item(entity_type_id, item_id)
            type_id, prov, ptype = {
                "email": (4, "CRM_EMAIL", "EMAIL"),
                "call": (2, "VOXIMPLANT_CALL", "CALL"),
                "todo": (6, "CRM_TODO", "TODO"),
            }[kind]
            a = self._activity(
                int(entity_type_id),
                it["id"],
                self.now,
                type_id=type_id,
                direction=direction,
                responsible=responsible or it["assignedById"],
                subject=subject or kind,
                provider_id=prov,
                provider_type_id=ptype,
                duration=duration,
            )
            return a

    def add_timeline_comment(self, entity_type_id: int, item_id: int, author_id: int, text: str) -> dict:
        with self.lock:
            self.item(entity_type_id, item_id)
            c = self._timeline_comment(int(entity_type_id), int(item_id), self.now, int(author_id), text)
            return c

    def delete_item(self, entity_type_id: int, item_id: int, actor: int = 1) -> None:
        with self.lock:
            etid = int(entity_type_id)
            it = self.items[etid].pop(int(item_id))
            self.item_lists[etid].remove(it)
            # the portal drops the stage history and the bindings of a deleted item
            rows = self.stage_history_by_owner.pop((etid, it["id"]), [])
            if rows:
                ids = {r["ID"] for r in rows}
                self.stage_history[etid] = [r for r in self.stage_history[etid] if r["ID"] not in ids]
            acts = self.activities_by_owner.pop((etid, it["id"]), [])
            if acts:
                ids = {a["ID"] for a in acts}
                self.activities = [a for a in self.activities if a["ID"] not in ids]
                for i in ids:
                    self.activities_by_id.pop(i, None)
            com = self.timeline_by_owner.pop((etid, it["id"]), [])
            if com:
                ids = {c["ID"] for c in com}
                self.timeline_comments = [c for c in self.timeline_comments if c["ID"] not in ids]
            self.hidden_log.append(
                {"kind": "deleted", "source": f"crm:{etid}", "id": it["id"], "at": self.now, "actor": actor}
            )


def _day(ts: int, tz) -> int:
    """Date-only CRM fields come back as local midnight (DOCS bitrix24-rest.md section 7)."""
    from datetime import datetime

    d = datetime.fromtimestamp(ts, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(d.timestamp())
