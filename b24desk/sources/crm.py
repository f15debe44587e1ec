"""The CRM source: ``deals``, ``deals:category=3``, ``crm:1038``, ``crm:1038:category=5``.

Reads (DOCS api-reference/crm/*): ``crm.item.list`` by ``id`` keyset (``result.items``); the funnels
(``crm.category.list``) and their stages' semantics (``crm.status.list``, ENTITY_ID ``DEAL_STAGE``,
``DEAL_STAGE_<cat>`` or ``DYNAMIC_<type>_STAGE_<cat>``); per item ``crm.stagehistory.list``
(resolution, rejection, reopen), ``crm.activity.list`` by the item as owner (incoming/outgoing
messages, calls) and ``crm.timeline.comment.list`` (internal comments). Responsible changes have
no history API: they come from diffing the stored ticket (``diff_events``).

Cost of a full sync of N items: ceil(N/2500)+1 list + 2 (funnels, stages) + 3 x N/50 details
(the three detail reads of an item travel in the same batch; lists longer than 50 rows page on).
Incremental: one batch with ``>=updatedTime`` (field and stage changes), ``>=lastActivityTime``
(new activities/comments) and a ``start=0`` count of the selector (deletions), then details
for the items whose row differs from the stored snapshot.
"""

from __future__ import annotations

import logging
from typing import Iterable, Iterator

from ..model import format_time, parse_time, snapshot_hash
from . import register
from .base import PAGE_TICKETS, KeysetSource, Mapping, Page, Selector, SyncContext, as_id, chunks, compact, diff_events
from .crm_mapping import map_item, source_name, stage_semantics
from .fetch import call_each, pages_each, pages_mixed, rows_of

log = logging.getLogger(__name__)

ACTIVITY_SELECT = [
    "ID",
    "OWNER_ID",
    "OWNER_TYPE_ID",
    "TYPE_ID",
    "PROVIDER_ID",
    "PROVIDER_TYPE_ID",
    "DIRECTION",
    "COMPLETED",
    "STATUS",
    "CREATED",
    "START_TIME",
    "END_TIME",
    "AUTHOR_ID",
    "RESPONSIBLE_ID",
]


@register("crm")
class CrmSource(KeysetSource):
    list_method, id_field, items_key = "crm.item.list", "id", "items"

    def __init__(self, selector: Selector, mapping: Mapping | None = None):
        super().__init__(selector, mapping)
        self.entity = int(selector.entity_type_id)
        self.category = selector.param("category")
        self.source = source_name(self.entity)
        self._stages: dict | None = None
        self._categories: dict | None = None
        self._total: int | None = None

    # -- parameters --

    def _filter(self) -> dict:
        return {"categoryId": int(self.category)} if self.category is not None else {}

    def _base(self) -> dict:
        return {"entityTypeId": self.entity}

    def _select(self) -> list[str]:
        sel = ["*"]
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
        return sel

    def _list_params(self, flt: dict, select=None) -> dict:
        return compact({"entityTypeId": self.entity, "filter": flt, "select": select or self._select()})

    @property
    def _timeline_type(self) -> str:
        # crm-timeline-comment-list.md: ENTITY_TYPE "deal", "lead", ... and "dynamic_<id>" for SPAs
        return "deal" if self.entity == 2 else f"dynamic_{self.entity}"

    # -- funnels and stages --

    def _load_stages(self, client, ctx: SyncContext, refresh: bool = False) -> None:
        key = f"crm.{self.entity}.stages"
        cached = None if refresh else ctx.setting(key)
        if cached and self._stages is None:
            self._stages, self._categories = cached.get("stages") or {}, cached.get("categories") or {}
            return
        if self._stages is not None and not refresh:
            return
        cats: dict[str, str] = {}
        try:
            res = client.call("crm.category.list", {"entityTypeId": self.entity})
            for c in rows_of(res, "categories", "crm.category.list"):
                cats[str(c.get("id"))] = str(c.get("name") or c.get("id"))
        except Exception as exc:  # SPA without funnels, or no right to read them
            log.warning("crm.category.list %s: %s", self.entity, exc)
        ids = sorted(cats) or ["0"]
        if self.category is not None and self.category not in ids:
            ids.append(self.category)

        def entity_id(cat: str) -> str:
            if self.entity == 2:
                return "DEAL_STAGE" if cat == "0" else f"DEAL_STAGE_{cat}"
            return f"DYNAMIC_{self.entity}_STAGE_{cat}"

        statuses = pages_each(
            client,
            "crm.status.list",
            [{"filter": {"ENTITY_ID": entity_id(c)}, "order": {"SORT": "ASC"}} for c in ids],
            what="funnel {i}",
        )
        self._stages = {}
        stage_names: dict[str, str] = {}
        for rows in statuses:
            self._stages.update(stage_semantics(rows))
            stage_names.update(
                {
                    str(r["STATUS_ID"]): str(r.get("NAME") or r["STATUS_ID"])
                    for r in rows or []
                    if r.get("STATUS_ID") is not None
                }
            )
        self._categories = cats
        stored = {"stages": self._stages, "categories": cats, "stage_names": stage_names}
        title = self._type_title(client)
        if title:
            stored["title"] = title
        ctx.set_setting(key, stored)

    def _type_title(self, client) -> str | None:
        """A smart process's own title (crm.type.list), so pages name the source as the portal does."""
        if self.entity < 128:
            return None
        try:
            res = client.call("crm.type.list", {"filter": {"entityTypeId": self.entity}})
            for t in rows_of(res, "types"):
                if str(t.get("entityTypeId")) == str(self.entity) and t.get("title"):
                    return str(t["title"])
        except Exception as exc:  # no right to read types: the page says "smart process"
            log.warning("crm.type.list %s: %s", self.entity, exc)
        return None

    def _stages_known(self, items) -> bool:
        return all(
            i.get("stageSemanticId") in ("P", "S", "F") or str(i.get("stageId")) in (self._stages or {})
            for i in items
            if i.get("stageId") is not None
        )

    # -- the readers --

    def full(self, client, ctx: SyncContext, after_id: str | None = None) -> Iterator[Page]:
        self._load_stages(client, ctx, refresh=True)
        flt = self._filter()
        if after_id:
            flt[">id"] = int(after_id)
        rows = client.list_all("crm.item.list", self._list_params(flt), id_field="id", items_key="items")
        yield from self._pages(client, ctx, rows)

    def incremental(self, client, ctx: SyncContext, since: int) -> Iterator[Page]:
        self._load_stages(client, ctx)
        changed = self._changed_rows(client, ctx, since)
        fresh = [r for r in changed if ctx.previous_snapshot_hash(self.source, str(r["id"])) != snapshot_hash(r)]
        if fresh and not self._stages_known(fresh):
            self._load_stages(client, ctx, refresh=True)
        for part in chunks(fresh, PAGE_TICKETS):
            yield Page(self.bundles(client, ctx, part))

    def fetch_ids(self, client, ctx: SyncContext, ids: Iterable[str]) -> Iterator[Page]:
        self._load_stages(client, ctx)
        ids = sorted({str(i) for i in ids if str(i).isdigit()}, key=int)
        for part in chunks(ids, PAGE_TICKETS):
            answers = call_each(
                client,
                "crm.item.list",
                [self._list_params({**self._filter(), "@id": [int(i) for i in sub]}) for sub in chunks(part, 50)],
            )
            rows = []
            for a in answers:
                if a.error is not None:
                    log.warning("crm.item.list by id: %s", a.error)
                    continue
                rows.extend(rows_of(a.result, "items", "crm.item.list"))
            rows, same = ctx.split_unchanged(self.source, rows)
            if rows or same:
                rows = sorted(rows, key=lambda r: int(r["id"]))
                yield Page(self.bundles(client, ctx, rows) if rows else [], unchanged=same)

    def count(self, client) -> int | None:
        if self._total is not None:  # answered by the incremental listing batch
            total, self._total = self._total, None
            return total
        return super().count(client)

    def _changed_rows(self, client, ctx: SyncContext, since: int) -> list[dict]:
        base = self._filter()
        when = format_time(since)
        cmds = {
            "now": ("server.time", {}),
            "updated": (
                "crm.item.list",
                {**self._list_params({**base, ">=updatedTime": when}), "order": {"id": "ASC"}, "start": -1},
            ),
            "activity": (
                "crm.item.list",
                {**self._list_params({**base, ">=lastActivityTime": when}), "order": {"id": "ASC"}, "start": -1},
            ),
            "count": ("crm.item.list", {**self._list_params(base, ["id"]), "order": {"id": "ASC"}, "start": 0}),
        }
        res = client.batch(cmds)
        if "updated" in res.errors:
            raise res.errors["updated"]
        if "now" not in res.errors:
            ctx.portal_now = parse_time(res.results.get("now"))
        self._total = None if "count" in res.errors else _int(res.totals.get("count"))
        found: dict[str, dict] = {}
        for name, field in (("updated", "updatedTime"), ("activity", "lastActivityTime")):
            if name in res.errors:
                log.warning("crm.item.list >=%s: %s", field, res.errors[name])
                continue
            rows = rows_of(res.results.get(name), "items", "crm.item.list")
            for r in rows:
                found[str(r["id"])] = r
            if len(rows) >= 50:
                more = client.list_all(
                    "crm.item.list",
                    self._list_params({**base, f">={field}": when, ">id": int(rows[-1]["id"])}),
                    id_field="id",
                    items_key="items",
                )
                for r in more:
                    found[str(r["id"])] = r
        return sorted(found.values(), key=lambda r: int(r["id"]))

    # -- details --

    def bundles(self, client, ctx: SyncContext, rows: list[dict]) -> list:
        ids = [int(r["id"]) for r in rows]
        reads = []
        for i in ids:  # the three detail lists of one item, packed together
            reads.append(
                (
                    "crm.stagehistory.list",
                    {"entityTypeId": self.entity, "filter": {"OWNER_ID": i}, "order": {"ID": "ASC"}},
                    "items",
                )
            )
            reads.append(
                (
                    "crm.activity.list",
                    {
                        "filter": {"OWNER_TYPE_ID": self.entity, "OWNER_ID": i},
                        "order": {"ID": "ASC"},
                        "select": ACTIVITY_SELECT,
                    },
                    None,
                )
            )
            reads.append(
                (
                    "crm.timeline.comment.list",
                    {"filter": {"ENTITY_ID": i, "ENTITY_TYPE": self._timeline_type}, "order": {"ID": "ASC"}},
                    None,
                )
            )
        got = pages_mixed(client, reads, what="item detail #{i}")
        history, activities, comments = got[0::3], got[1::3], got[2::3]
        diff_fields = ["responsible_id"] + [
            f
            for f, on in (
                ("type", self.mapping.type),
                ("rating", self.mapping.rating),
                ("deadline", self.mapping.deadline),
                ("priority", self.mapping.priority),
            )
            if on
        ]
        out = []
        for row, h, a, c in zip(rows, history, activities, comments):
            b = map_item(
                ctx.portal,
                self.entity,
                row,
                h,
                a,
                c,
                self.mapping,
                self._stages,
                self._categories,
                ctx.bot_users,
                self.selector.raw,
            )
            prev = ctx.previous(self.source, b.ticket.source_id)
            at = parse_time(row.get("updatedTime"), "updatedTime") or b.ticket.created_at
            b.events.extend(
                diff_events(prev, b.ticket, snapshot_hash(b.snapshot), at, as_id(row.get("updatedBy")), diff_fields)
            )
            out.append(b)
        return out


def _int(v) -> int | None:
    try:
        return None if v in (None, "", False) else int(v)
    except (TypeError, ValueError):
        return None
