"""The tasks source: ``tasks`` (every task of the portal) and ``tasks:group=7`` (one workgroup/project).

Reads (DOCS api-reference/tasks/*): ``tasks.task.list`` by ID keyset; per task
``tasks.task.history.list`` (status, responsible, priority, deadline, mark) and the comments:
``task.commentitem.getlist`` on the classic card or, for tasks with the new task card (tasks >=
25.700.0, where that method "does not work" -- it may answer an empty list --:
api-reference/tasks/tasks-new.md), the task chat: its id from ``tasks.task.get`` ``CHAT_ID`` (the only
method the docs name for it; one command per task without comment items = at most one extra batched
request per 50 tasks) and its messages read backwards from the latest with ``im.dialog.messages.get`` ``LAST_ID``.
A task with comment items is classic; a task without any but with a chat is a new-card task; a
portal may have both. What the portal showed is remembered in the store's settings
(``tasks.comments_via``: ``commentitem``, ``mixed``, or ``chat`` after a whole full sync found chats
and no comment item -- the comment list is then no longer asked). Chat ids are asked only for tasks
without comment items, so a classic portal pays the probe for its comment-less tasks only.

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

from ..model import format_time, parse_time, snapshot_hash
from . import register
from .base import PAGE_TICKETS, KeysetSource, Mapping, Page, Selector, SyncContext, as_int, chunks, compact, diff_events
from .fetch import ShapeError, _brief, call_each, call_mixed, expect_rows, rows_of
from .task_mapping import ELAPSED_SELECT, SELECT, SOURCE, map_task, messages_from_chat, messages_from_comments

log = logging.getLogger(__name__)

COMMENTS_SETTING = "tasks.comments_via"  # None | commentitem | mixed | chat
CHAT_PAGE = 50  # im.dialog.messages.get LIMIT maximum


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
        for f in (
            self.mapping.type,
            self.mapping.deadline,
            self.mapping.rating,
            self.mapping.nps,
            self.mapping.ces,
            self.mapping.priority,
        ):
            if f and f not in sel:
                sel.append(f)
        if ctx is not None and ctx.setting(COMMENTS_SETTING) in ("chat", "mixed"):
            sel.append("CHAT_ID")  # the docs promise it from tasks.task.get only; a list that has it saves a probe
        return sel

    # -- the three readers --

    def full(self, client, ctx: SyncContext, after_id: str | None = None) -> Iterator[Page]:
        flt = self._filter()
        if after_id:
            flt[">ID"] = int(after_id)
        rows = client.list_all(
            "tasks.task.list", {"filter": flt, "select": self._select(ctx)}, id_field="ID", items_key="tasks"
        )
        self._seen_items = self._seen_chats = False
        self._in_full, self._chats_from_here = True, False
        try:
            yield from self._pages(client, ctx, rows)
        finally:
            self._in_full = self._chats_from_here = False
        self._full_done(ctx, whole=not after_id)

    def incremental(self, client, ctx: SyncContext, since: int) -> Iterator[Page]:
        changed = self._changed_rows(client, ctx, since)
        fresh = [r for r in changed if ctx.previous_snapshot_hash(SOURCE, str(r["id"])) != snapshot_hash(r)]
        for part in chunks(fresh, PAGE_TICKETS):
            yield Page(self.bundles(client, ctx, part))

    def fetch_ids(self, client, ctx: SyncContext, ids: Iterable[str]) -> Iterator[Page]:
        ids = sorted({str(i) for i in ids if str(i).isdigit()}, key=int)
        for part in chunks(ids, PAGE_TICKETS):
            answers = call_each(
                client, "tasks.task.get", [{"taskId": int(i), "select": self._select(ctx)} for i in part]
            )
            rows = []
            for i, a in zip(part, answers):
                task = a.result.get("task") if isinstance(a.result, dict) else None
                if a.error is None and isinstance(task, dict) and task.get("id") is not None:
                    if self.group and str(task.get("groupId")) != str(self.group):
                        continue  # no longer under this selector
                    rows.append(task)
                elif a.error is not None:
                    log.warning("tasks.task.get %s: %s", i, a.error)
            rows, same = ctx.split_unchanged(SOURCE, rows)
            if rows or same:
                yield Page(self.bundles(client, ctx, rows) if rows else [], unchanged=same)

    def count(self, client) -> int | None:
        if self._total is not None:  # answered by the incremental listing batch
            total, self._total = self._total, None
            return total
        return super().count(client)

    # -- incremental listing --

    def _changed_rows(self, client, ctx: SyncContext, since: int) -> list[dict]:
        select = self._select(ctx)
        base = self._filter()
        changed_filter = {**base, ">=CHANGED_DATE": format_time(since)}
        res = client.batch(
            {
                "now": ("server.time", {}),
                "changed": (
                    "tasks.task.list",
                    {"filter": changed_filter, "select": select, "order": {"ID": "ASC"}, "start": -1},
                ),
                "active": (
                    "tasks.task.list",
                    compact({"filter": base, "select": select, "order": {"ACTIVITY_DATE": "DESC"}, "start": 0}),
                ),
            }
        )
        if "changed" in res.errors:
            raise res.errors["changed"]
        if "now" not in res.errors:
            ctx.portal_now = parse_time(res.results.get("now"), field="server.time")
        found: dict[str, dict] = {}
        rows = rows_of(res.results.get("changed"), "tasks", "tasks.task.list")
        for r in rows:
            found[str(r["id"])] = r
        if len(rows) >= 50:  # more than one page changed: keyset on
            more = client.list_all(
                "tasks.task.list",
                {"filter": {**changed_filter, ">ID": int(rows[-1]["id"])}, "select": select},
                id_field="ID",
                items_key="tasks",
            )
            for r in more:
                found[str(r["id"])] = r
        if "active" in res.errors:  # a portal refusing the order: changes only
            log.warning("tasks.task.list by ACTIVITY_DATE: %s", res.errors["active"])
            self._total = None
        else:
            self._total = _int(res.totals.get("active"))
            page = rows_of(res.results.get("active"), "tasks", "tasks.task.list")
            start = 0
            while True:
                newer = [r for r in page if (parse_time(r.get("activityDate"), "activityDate") or 0) >= since]
                for r in newer:
                    found.setdefault(str(r["id"]), r)
                if len(page) < 50 or len(newer) < len(page):
                    break
                start += 50
                body = client.call_raw(
                    "tasks.task.list",
                    compact({"filter": base, "select": select, "order": {"ACTIVITY_DATE": "DESC"}, "start": start}),
                )
                page = rows_of(body.get("result"), "tasks", "tasks.task.list")
        return sorted(found.values(), key=lambda r: int(r["id"]))

    # -- details --

    def bundles(self, client, ctx: SyncContext, rows: list[dict]) -> list:
        ids = [str(r["id"]) for r in rows]
        mode = ctx.setting(COMMENTS_SETTING)
        # not on a new-card-only portal (the method "does not work" there), nor for the rest of a
        # full sync once a page held only new-card tasks: ids ascend with creation, and a portal
        # does not go back to the classic card
        ask_items = mode != "chat" and not getattr(self, "_chats_from_here", False)
        probe_now = not ask_items  # chat ids in the same batch (1 command a task)
        calls, slots = [], []
        for n, (i, row) in enumerate(zip(ids, rows)):  # one task's detail reads, packed together
            calls.append(("tasks.task.history.list", {"taskId": int(i)}))
            slots.append((n, "history"))
            if ask_items:  # parameter order matters (DOCS task-comment-item-get-list.md)
                calls.append(("task.commentitem.getlist", {"TASKID": int(i), "ORDER": {"ID": "asc"}}))
                slots.append((n, "comments"))
            if probe_now and not _int(row.get("chatId")):
                calls.append(("tasks.task.get", {"taskId": int(i), "select": ["ID", "CHAT_ID"]}))
                slots.append((n, "chat"))
            if _tracks_time(row):  # no tracked time, no elapsed items to read
                calls.append(("task.elapseditem.getlist", _elapsed_params(i, 1)))
                slots.append((n, "elapsed"))
        answer = dict(zip(slots, call_mixed(client, calls)))
        histories = []
        for n, i in enumerate(ids):
            a = answer[(n, "history")]
            if a.error is not None:
                log.warning("tasks.task.history.list %s: %s", i, a.error)
            histories.append(expect_rows(a, "tasks.task.history.list", "list"))
        elapsed = self._elapsed(client, ids, [answer.get((n, "elapsed")) for n in range(len(ids))])
        messages = self._comments(client, ctx, rows, mode, answer, probed=probe_now)
        out = []
        bots = ctx.bot_users
        diff_fields = [
            f
            for f, on in (
                ("type", self.mapping.type),
                ("rating", self.mapping.rating),
                ("deadline", self.mapping.deadline),
                ("priority", self.mapping.priority),
            )
            if on
        ]
        for row, hist, msgs, spent in zip(rows, histories, messages, elapsed):
            b = map_task(ctx.portal, row, hist, msgs, self.mapping, bots, self.selector.raw, spent)
            if diff_fields:
                prev = ctx.previous(SOURCE, b.ticket.source_id)
                at = parse_time(row.get("changedDate"), "changedDate") or b.ticket.created_at
                b.events.extend(diff_events(prev, b.ticket, snapshot_hash(b.snapshot), at, None, diff_fields))
            out.append(b)
        return out

    def _elapsed(self, client, ids: list[str], answers) -> list[list]:
        """Elapsed items per task; a full page of 50 reads the next (NAV_PARAMS.iNumPage) until short."""
        out: list[list] = []
        todo = []
        for n, (i, a) in enumerate(zip(ids, answers)):
            if a is None:  # not asked: the task tracks no time
                out.append([])
                continue
            if a.error is not None:
                log.warning("task.elapseditem.getlist %s: %s", i, a.error)
            got = expect_rows(a, "task.elapseditem.getlist")
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
                got = expect_rows(a, "task.elapseditem.getlist")
                out[n].extend(got)
                if len(got) >= 50:
                    again.append((n, page + 1))
            todo = again
        return out

    # -- comments: classic comment items or the task chat (new card), decided per task --

    def _comments(
        self, client, ctx: SyncContext, rows: list[dict], mode: str | None, answer: dict, probed: bool
    ) -> list[list]:
        """Messages per task. A task whose comment items are empty and that has a chat id (from
        ``tasks.task.get``, DOCS tasks-new.md) is a new-card task: its chat is read. Classic and
        new-card tasks are kept apart on portals that have both (a portal moved to the new card
        keeps its older tasks' forum comments)."""
        items: list[list] = []
        for n, r in enumerate(rows):
            a = answer.get((n, "comments"))
            if a is None:
                items.append([])
            elif a.error is not None:
                log.warning("task.commentitem.getlist %s: %s", r["id"], a.error)
                items.append([])
            else:
                items.append(messages_from_comments(expect_rows(a, "task.commentitem.getlist")))
        chat_ids: list[int | None] = []
        for n, r in enumerate(rows):
            cid = _int(r.get("chatId"))
            a = answer.get((n, "chat"))
            if cid is None and a is not None:
                cid = self._chat_id(r, a)
            chat_ids.append(cid)
        if not probed:  # chat ids only for the tasks with no comment items
            need = [n for n, (got, cid) in enumerate(zip(items, chat_ids)) if not got and cid is None]
            if need:
                probes = call_each(
                    client,
                    "tasks.task.get",
                    [{"taskId": int(rows[n]["id"]), "select": ["ID", "CHAT_ID"]} for n in need],
                )
                for n, a in zip(need, probes):
                    chat_ids[n] = self._chat_id(rows[n], a)
        if getattr(self, "_in_full", False) and rows and all(chat_ids) and not any(items):
            self._chats_from_here = True
        read = {n: cid for n, cid in enumerate(chat_ids) if cid and not items[n]}
        chats = read_chats(client, read)
        out = [chats.get(n) if n in read else got for n, got in enumerate(items)]
        self._learn(ctx, mode, any(items), bool(read))
        return out

    @staticmethod
    def _chat_id(row: dict, a) -> int | None:
        if a.error is not None:
            log.warning("tasks.task.get %s (chat id): %s", row["id"], a.error)
            return None
        res = a.result
        if not isinstance(res, dict) or not isinstance(res.get("task"), dict):
            raise ShapeError("tasks.task.get", f"expected {{task: {{...}}}}, got {_brief(res)}")
        return _int(res["task"].get("chatId"))

    def _learn(self, ctx: SyncContext, mode: str | None, saw_items: bool, saw_chats: bool) -> None:
        """Remember where this portal's comments live. ``commentitem`` (only comment items so far)
        and ``mixed`` (both seen) are safe at once (comment items are still asked);
        ``chat`` (comment items skipped) only after a whole full sync found chats and no item."""
        self._seen_items = getattr(self, "_seen_items", False) or saw_items
        self._seen_chats = getattr(self, "_seen_chats", False) or saw_chats
        new = mode
        if mode in (None, "commentitem") and saw_chats and (saw_items or mode == "commentitem"):
            new = "mixed"
        elif mode is None and saw_items:
            new = "commentitem"
        if new != mode:
            if new == "mixed":
                log.info("tasks: both classic comments and task chats (new task card) on this portal")
            ctx.set_setting(COMMENTS_SETTING, new)

    def _full_done(self, ctx: SyncContext, whole: bool) -> None:
        if (
            whole
            and ctx.setting(COMMENTS_SETTING) is None
            and getattr(self, "_seen_chats", False)
            and not getattr(self, "_seen_items", False)
        ):
            log.info("task.commentitem.getlist answers nothing here: reading task chats (new task card)")
            ctx.set_setting(COMMENTS_SETTING, "chat")


def read_chats(client, chats: dict) -> dict:
    """Messages of each task chat ``{key: chat_id}``, oldest to newest, read backwards as the docs
    describe (DOCS api-reference/chats/messages/im-dialog-messages-get.md): the first call without
    ``FIRST_ID``/``LAST_ID`` gives the latest messages, then ``LAST_ID`` = the smallest id received
    gives the ones before, until a page shorter than ``LIMIT``. One batch serves 50 chats a round."""
    got: dict = {k: {} for k in chats}
    todo = [(k, None) for k in chats]
    while todo:
        answers = call_each(
            client,
            "im.dialog.messages.get",
            [
                {"DIALOG_ID": f"chat{chats[k]}", "LIMIT": CHAT_PAGE, **({"LAST_ID": last} if last else {})}
                for k, last in todo
            ],
        )
        again = []
        for (k, last), a in zip(todo, answers):
            if a.error is not None:
                log.warning("im.dialog.messages.get chat%s: %s", chats[k], a.error)
                continue
            res = a.result
            page = res.get("messages") if isinstance(res, dict) else None
            if not isinstance(page, list) or not all(isinstance(m, dict) for m in page):
                raise ShapeError("im.dialog.messages.get", f"expected {{messages: [...]}}, got {_brief(res)}")
            ids = []
            for m in page:
                mid = _int(m.get("id"))
                if mid is not None:
                    got[k][mid] = m
                    ids.append(mid)
            low = min(ids, default=None)
            if len(page) >= CHAT_PAGE and low is not None and (last is None or low < last):
                again.append((k, low))
        todo = again
    return {k: messages_from_chat([msgs[i] for i in sorted(msgs)]) for k, msgs in got.items()}


def _tracks_time(row: dict) -> bool:
    """Whether a task may have elapsed items: ``timeSpentInLogs`` (selected with the list) above
    zero, or unknown."""
    spent = as_int(row.get("timeSpentInLogs"))
    return spent is None or spent > 0


def _elapsed_params(task_id: str, page: int) -> dict:
    """Positional parameters, in the documented order: TASKID, ORDER, FILTER, SELECT, PARAMS
    (DOCS api-reference/tasks/elapsed-item/task-elapsed-item-get-list.md; nPageSize <= 50). FILTER is
    ``>ID 0`` (every item), the docs' own form: an empty one would be sent as ``FILTER[]=``."""
    return {
        "TASKID": int(task_id),
        "ORDER": {"ID": "asc"},
        "FILTER": {">ID": 0},
        "SELECT": ELAPSED_SELECT,
        "PARAMS": {"NAV_PARAMS": {"nPageSize": 50, "iNumPage": page}},
    }


def _int(v) -> int | None:
    try:
        return None if v in (None, "", False) else int(v)
    except (TypeError, ValueError):
        return None
