"""The tasks source: ``tasks`` (every task of the portal) and ``tasks:group=7`` (one workgroup/project).

Reads (DOCS api-reference/tasks/*): ``tasks.task.list`` by ID keyset; per task
``tasks.task.history.list`` (status, responsible, priority, deadline, mark) and the comments:
``task.commentitem.getlist`` on the classic card or, on portals with the new task card (tasks >=
25.700.0, where that method "does not work": api-reference/tasks/tasks-new.md), the task chat via
``tasks.task.get`` ``CHAT_ID`` + ``im.dialog.messages.get``. Which one a portal needs is detected
once and remembered in the store's settings (``tasks.comments_via``).

Per task also ``task.elapseditem.getlist`` (tracked time, one ``worked`` event per item, so AHT can be
counted as of ``to``). Cost of a full sync of N tasks: ceil(N/2500)+1 list requests + the three
detail reads (history, comments, elapsed time) packed 50 commands a batch (= N/50 per detail method;
a handful of tasks costs one batch; a task with more than 50 elapsed items pages on).
Incremental: one batch holding two list commands, ``>=CHANGED_DATE`` (field changes) and the
newest ``ACTIVITY_DATE`` page (comments move the activity date, not the change date; ACTIVITY_DATE
is documented for ``order`` only, not for ``filter``, so the newest page is read and the scan goes on
while it is newer than the cursor). That second command counts the selector (``start=0`` gives
``total``), which is how deletions are noticed without listing every ID. Tasks whose row is
byte-identical to the stored snapshot are not re-read.
"""
from __future__ import annotations

import logging
from typing import Iterable, Iterator

from ..client import B24Error
from ..model import format_time, parse_time, snapshot_hash
from . import register
from .base import (PAGE_TICKETS, KeysetSource, Mapping, Page, Selector, SyncContext, as_int, chunks, compact,
                   diff_events)
from .fetch import call_each, call_mixed, rows_of
from .task_mapping import ELAPSED_SELECT, SELECT, SOURCE, map_task, messages_from_chat, messages_from_comments

log = logging.getLogger(__name__)

COMMENTS_SETTING = "tasks.comments_via"
# Errors a single task's comment call may give on a classic portal (no access, task gone).
_PER_TASK_ERRORS = {"ACCESS_DENIED", "ERROR_CORE", "NOT_FOUND", "0"}


@register("tasks")
class TaskSource(KeysetSource):
    source = SOURCE
    list_method, id_field, items_key = "tasks.task.list", "ID", "tasks"

    def __init__(self, selector: Selector, mapping: Mapping | None = None):
        super().__init__(selector, mapping)
        self.group = selector.param("group")
        self._total: int | None = None

    # -- list parameters --

    def _filter(self) -> dict:
        return {"GROUP_ID": int(self.group)} if self.group else {}

    def _select(self, ctx: SyncContext | None = None) -> list[str]:
        sel = list(SELECT)
        for f in (self.mapping.type, self.mapping.deadline, self.mapping.rating, self.mapping.nps,
                  self.mapping.ces, self.mapping.priority):
            if f and f not in sel:
                sel.append(f)
        if ctx is not None and ctx.setting(COMMENTS_SETTING) == "chat":
            sel.append("CHAT_ID")           # a task field (DOCS tasks/fields.md ``chatId``)
        return sel

    # -- the three readers --

    def full(self, client, ctx: SyncContext, after_id: str | None = None) -> Iterator[Page]:
        flt = self._filter()
        if after_id:
            flt[">ID"] = int(after_id)
        rows = client.list_all("tasks.task.list", {"filter": flt, "select": self._select(ctx)},
                               id_field="ID", items_key="tasks")
        yield from self._pages(client, ctx, rows)

    def incremental(self, client, ctx: SyncContext, since: int) -> Iterator[Page]:
        changed = self._changed_rows(client, ctx, since)
        fresh = [r for r in changed
                 if ctx.previous_snapshot_hash(SOURCE, str(r["id"])) != snapshot_hash(r)]
        for part in chunks(fresh, PAGE_TICKETS):
            yield Page(self.bundles(client, ctx, part))

    def fetch_ids(self, client, ctx: SyncContext, ids: Iterable[str]) -> Iterator[Page]:
        ids = sorted({str(i) for i in ids if str(i).isdigit()}, key=int)
        for part in chunks(ids, PAGE_TICKETS):
            answers = call_each(client, "tasks.task.get",
                                [{"taskId": int(i), "select": self._select(ctx)} for i in part])
            rows = []
            for i, a in zip(part, answers):
                task = a.result.get("task") if isinstance(a.result, dict) else None
                if a.error is None and isinstance(task, dict) and task.get("id") is not None:
                    if self.group and str(task.get("groupId")) != str(self.group):
                        continue             # no longer under this selector
                    rows.append(task)
                elif a.error is not None:
                    log.warning("tasks.task.get %s: %s", i, a.error)
            rows, same = ctx.split_unchanged(SOURCE, rows)
            if rows or same:
                yield Page(self.bundles(client, ctx, rows) if rows else [], unchanged=same)

    def count(self, client) -> int | None:
        if self._total is not None:              # answered by the incremental listing batch
            total, self._total = self._total, None
            return total
        return super().count(client)

    # -- incremental listing --

    def _changed_rows(self, client, ctx: SyncContext, since: int) -> list[dict]:
        select = self._select(ctx)
        base = self._filter()
        changed_filter = {**base, ">=CHANGED_DATE": format_time(since)}
        res = client.batch({
            "now": ("server.time", {}),
            "changed": ("tasks.task.list", {"filter": changed_filter, "select": select,
                                            "order": {"ID": "ASC"}, "start": -1}),
            "active": ("tasks.task.list", compact({"filter": base, "select": select,
                                                   "order": {"ACTIVITY_DATE": "DESC"}, "start": 0})),
        })
        if "changed" in res.errors:
            raise res.errors["changed"]
        if "now" not in res.errors:
            ctx.portal_now = parse_time(res.results.get("now"))
        found: dict[str, dict] = {}
        rows = rows_of(res.results.get("changed"), "tasks")
        for r in rows:
            found[str(r["id"])] = r
        if len(rows) >= 50:                          # more than one page changed: keyset on
            more = client.list_all("tasks.task.list", {"filter": {**changed_filter, ">ID": int(rows[-1]["id"])},
                                                       "select": select}, id_field="ID", items_key="tasks")
            for r in more:
                found[str(r["id"])] = r
        if "active" in res.errors:                   # a portal refusing the order: changes only
            log.warning("tasks.task.list by ACTIVITY_DATE: %s", res.errors["active"])
            self._total = None
        else:
            self._total = _int(res.totals.get("active"))
            page = rows_of(res.results.get("active"), "tasks")
            start = 0
            while True:
                newer = [r for r in page if (parse_time(r.get("activityDate")) or 0) >= since]
                for r in newer:
                    found.setdefault(str(r["id"]), r)
                if len(page) < 50 or len(newer) < len(page):
                    break
                start += 50
                body = client.call_raw("tasks.task.list", compact({"filter": base, "select": select,
                                                                   "order": {"ACTIVITY_DATE": "DESC"},
                                                                   "start": start}))
                page = rows_of(body.get("result"), "tasks")
        return sorted(found.values(), key=lambda r: int(r["id"]))

    # -- details --

    def bundles(self, client, ctx: SyncContext, rows: list[dict]) -> list:
        ids = [str(r["id"]) for r in rows]
        chat_mode = ctx.setting(COMMENTS_SETTING) == "chat"
        calls, slots = [], []
        for n, (i, row) in enumerate(zip(ids, rows)):   # one task's detail reads, packed together
            calls.append(("tasks.task.history.list", {"taskId": int(i)}))
            slots.append((n, "history"))
            if not chat_mode:            # parameter order matters (DOCS task-comment-item-get-list.md)
                calls.append(("task.commentitem.getlist", {"TASKID": int(i), "ORDER": {"ID": "asc"}}))
                slots.append((n, "comments"))
            if _tracks_time(row):        # no tracked time, no elapsed items to read
                calls.append(("task.elapseditem.getlist", _elapsed_params(i, 1)))
                slots.append((n, "elapsed"))
        answer = dict(zip(slots, call_mixed(client, calls)))
        histories = []
        for n, i in enumerate(ids):
            a = answer[(n, "history")]
            if a.error is not None:
                log.warning("tasks.task.history.list %s: %s", i, a.error)
            histories.append(rows_of(a.result, "list"))
        elapsed = self._elapsed(client, ids, [answer.get((n, "elapsed")) for n in range(len(ids))])
        if chat_mode:
            messages = self._chat_messages(client, rows)[0]
        else:
            messages = self._messages(ctx, client, rows, histories,
                                      [answer[(n, "comments")] for n in range(len(ids))])
        out = []
        bots = ctx.bot_users
        diff_fields = [f for f, on in (("type", self.mapping.type), ("rating", self.mapping.rating),
                                       ("deadline", self.mapping.deadline), ("priority", self.mapping.priority))
                       if on]
        for row, hist, msgs, spent in zip(rows, histories, messages, elapsed):
            b = map_task(ctx.portal, row, hist, msgs, self.mapping, bots, self.selector.raw, spent)
            if diff_fields:
                prev = ctx.previous(SOURCE, b.ticket.source_id)
                at = parse_time(row.get("changedDate")) or b.ticket.created_at
                b.events.extend(diff_events(prev, b.ticket, snapshot_hash(b.snapshot), at,
                                            None, diff_fields))
            out.append(b)
        return out

    def _elapsed(self, client, ids: list[str], answers) -> list[list]:
        """Elapsed items per task; a full page of 50 reads the next (NAV_PARAMS.iNumPage) until short."""
        out: list[list] = []
        todo = []
        for n, (i, a) in enumerate(zip(ids, answers)):
            if a is None:                # not asked: the task tracks no time
                out.append([])
                continue
            if a.error is not None:
                log.warning("task.elapseditem.getlist %s: %s", i, a.error)
            got = rows_of(a.result) if a.error is None else []
            out.append(list(got))
            if len(got) >= 50:
                todo.append((n, 2))
        while todo:
            more = call_each(client, "task.elapseditem.getlist", [_elapsed_params(ids[n], page) for n, page in todo])
            again = []
            for (n, page), a in zip(todo, more):
                if a.error is not None:
                    log.warning("task.elapseditem.getlist %s page %d: %s", ids[n], page, a.error)
                    continue
                got = rows_of(a.result)
                out[n].extend(got)
                if len(got) >= 50:
                    again.append((n, page + 1))
            todo = again
        return out

    def _messages(self, ctx: SyncContext, client, rows, histories, comment_answers) -> list[list]:
        mode = ctx.setting(COMMENTS_SETTING)
        got = self._classic_comments(rows, histories, comment_answers)
        if got is not None:
            if mode is None and any(got) and _has_comment_history(histories):
                ctx.set_setting(COMMENTS_SETTING, "commentitem")
            return got
        msgs, chats = self._chat_messages(client, rows)
        if chats:       # the tasks have chats: a new-card portal, remembered from now on
            log.info("task.commentitem.getlist does not work here: reading task chats (new task card)")
            ctx.set_setting(COMMENTS_SETTING, "chat")
        return msgs

    def _classic_comments(self, rows, histories, answers) -> list[list] | None:
        """Comments per task, or None when the portal has the new task card.

        The new card is recognised by the method failing for tasks we can read, or by it
        answering nothing while the history lists COMMENT entries (the docs only say it
        "does not work" there; both forms are accepted).
        """
        out, failures, errors, silent = [], 0, 0, 0
        for r, hist, a in zip(rows, histories, answers):
            if a.error is not None:
                errors += 1
                if a.error.code.upper() in _PER_TASK_ERRORS and not _new_card_error(a.error):
                    log.warning("task.commentitem.getlist %s: %s", r["id"], a.error)
                else:
                    failures += 1
                out.append([])
                continue
            got = messages_from_comments(rows_of(a.result))
            if not got and any(h.get("field") == "COMMENT" for h in hist or []):
                silent += 1
            out.append(got)
        if failures or (errors and errors == len(rows)) or (silent and not any(out)):
            return None
        return out

    def _chat_messages(self, client, rows) -> tuple[list[list], int]:
        """Task-chat messages per task, and how many of the tasks have a chat at all."""
        chat_ids: list[int | None] = [_int(r.get("chatId")) for r in rows]
        need = [i for i, c in enumerate(chat_ids) if not c]
        if need:
            answers = call_each(client, "tasks.task.get",
                                [{"taskId": int(rows[i]["id"]), "select": ["ID", "CHAT_ID"]} for i in need])
            for i, a in zip(need, answers):
                task = a.result.get("task") if isinstance(a.result, dict) else None
                if isinstance(task, dict):
                    chat_ids[i] = _int(task.get("chatId"))
                elif a.error is not None:
                    log.warning("tasks.task.get %s: %s", rows[i]["id"], a.error)
        msgs: list[list] = [[] for _ in rows]
        todo = [(i, 0) for i, c in enumerate(chat_ids) if c]
        while todo:                                  # FIRST_ID paging, 50 a call (im-dialog-messages-get.md)
            answers = call_each(client, "im.dialog.messages.get",
                                [{"DIALOG_ID": f"chat{chat_ids[i]}", "FIRST_ID": first, "LIMIT": 50}
                                 for i, first in todo])
            again = []
            for (i, first), a in zip(todo, answers):
                if a.error is not None:
                    log.warning("im.dialog.messages.get chat%s: %s", chat_ids[i], a.error)
                    continue
                page = (a.result or {}).get("messages") if isinstance(a.result, dict) else None
                page = page or []
                msgs[i].extend(page)
                top = max((_int(m.get("id")) or 0 for m in page), default=0)
                if len(page) >= 50 and top > first:
                    again.append((i, top))
            todo = again
        return [messages_from_chat(m) for m in msgs], sum(1 for c in chat_ids if c)


def _tracks_time(row: dict) -> bool:
    """Whether a task may have elapsed items: ``timeSpentInLogs`` (selected with the list) above
    zero, or unknown."""
    spent = as_int(row.get("timeSpentInLogs"))
    return spent is None or spent > 0


def _elapsed_params(task_id: str, page: int) -> dict:
    """Positional parameters, in the documented order: TASKID, ORDER, FILTER, SELECT, PARAMS
    (DOCS api-reference/tasks/elapsed-item/task-elapsed-item-get-list.md; nPageSize <= 50). FILTER is
    ``>ID 0`` (every item), the docs' own form: an empty one would be sent as ``FILTER[]=``."""
    return {"TASKID": int(task_id), "ORDER": {"ID": "asc"}, "FILTER": {">ID": 0}, "SELECT": ELAPSED_SELECT,
            "PARAMS": {"NAV_PARAMS": {"nPageSize": 50, "iNumPage": page}}}


def _new_card_error(err: B24Error) -> bool:
    text = f"{err.code} {err.description}".lower()
    return "chat" in text or "new task card" in text or "not supported" in text or "deprecated" in text


def _has_comment_history(histories) -> bool:
    return any(h.get("field") == "COMMENT" for hist in histories for h in (hist or []))


def _int(v) -> int | None:
    try:
        return None if v in (None, "", False) else int(v)
    except (TypeError, ValueError):
        return None
