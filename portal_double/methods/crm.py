"""CRM methods: crm.item.list/get, crm.type.list, crm.category.list, crm.status.list,
crm.stagehistory.list, crm.activity.list, crm.timeline.comment.list (DOCS api-reference/crm/universal/
crm-item-list.md, crm-item-get.md, object-fields.md, category/crm-category-list.md,
user-defined-object-types/crm-type-list.md, status/crm-status-list.md, crm-stage-history-list.md,
timeline/activities/activity-base/crm-activity-list.md, timeline/comments/crm-timeline-comment-list.md)."""

from __future__ import annotations

from .. import query, timefmt
from ..query import ApiError, Field
from ..registry import Call, Listed, method
from .common import _ci

_ITEM_TYPES = {
    "id": "int",
    "title": "str",
    "createdTime": "time",
    "updatedTime": "time",
    "createdBy": "int",
    "updatedBy": "int",
    "assignedById": "int",
    "opened": "str",
    "categoryId": "int",
    "stageId": "str",
    "previousStageId": "str",
    "stageSemanticId": "str",
    "closed": "str",
    "isNew": "str",
    "begindate": "time",
    "closedate": "time",
    "movedBy": "int",
    "movedTime": "time",
    "lastActivityBy": "int",
    "lastActivityTime": "time",
    "companyId": "int",
    "contactId": "int",
    "contactIds": "ints",
    "observers": "ints",
    "sourceId": "str",
    "typeId": "str",
    "opportunity": "float",
    "currencyId": "str",
    "entityTypeId": "int",
    "xmlId": "str",
    "name": "str",
    "lastName": "str",
}


def _etid(params) -> int:
    raw = _ci(params, "entityTypeId")
    try:
        return int(str(raw))
    except (TypeError, ValueError):
        raise ApiError(400, "NOT_FOUND", "SPA not found")


def _item_fields(p, etid: int) -> dict[str, Field]:
    types = dict(_ITEM_TYPES)
    for key, (_orig, utype) in p.uf_fields.get(etid, {}).items():
        types[key] = utype
    return query.spec({k: Field(k, t) for k, t in types.items()})


def _render_value(t: str, v, tz):
    if t == "time":
        return timefmt.iso(v, tz)
    if t == "ints":
        return list(v or [])
    return v


def render_item(p, etid: int, item: dict, select, original_uf: bool) -> dict:
    ufs = p.uf_fields.get(etid, {})
    keys = [k for k in item if k in _ITEM_TYPES or k in ufs]
    if select and "*" not in select:
        want = {query.norm(s) for s in select}
        keys = [k for k in keys if query.norm(k) in want or k == "id"]
    out = {}
    for k in keys:
        t = ufs[k][1] if k in ufs else _ITEM_TYPES[k]
        name = ufs[k][0] if (k in ufs and original_uf) else k
        out[name] = _render_value(t, item[k], p.tz)
    return out


def _known_type(p, etid: int) -> None:
    if etid not in p.items and etid not in p.crm_types and etid not in (1, 2, 3, 4):
        raise ApiError(400, "NOT_FOUND", "SPA not found")


def _select(params):
    sel = _ci(params, "select")
    if sel is None or sel == "":
        return None
    return [str(s) for s in query.as_list(sel)] if not isinstance(sel, str) else [sel]


@method("crm.item.list", "crm")
def item_list(c: Call, params: dict):
    p = c.portal
    etid = _etid(params)
    _known_type(p, etid)
    original = str(_ci(params, "useOriginalUfNames", default="N")).upper() == "Y"
    fields = _item_fields(p, etid)
    rows, total, nxt = query.run(
        p.item_lists.get(etid, []),
        fields,
        p.tz,
        flt=_ci(params, "filter"),
        order=_ci(params, "order"),
        start=_ci(params, "start"),
        default_order=None,
        strict=True,
    )
    sel = _select(params)
    return Listed({"items": [render_item(p, etid, it, sel, original) for it in rows]}, total, nxt)


@method("crm.item.get", "crm")
def item_get(c: Call, params: dict):
    p = c.portal
    etid = _etid(params)
    _known_type(p, etid)
    try:
        iid = int(str(_ci(params, "id")))
    except (TypeError, ValueError):
        raise ApiError(400, "NOT_FOUND", "Item not found")
    item = p.items.get(etid, {}).get(iid)
    if item is None:
        raise ApiError(400, "NOT_FOUND", "Item not found")
    original = str(_ci(params, "useOriginalUfNames", default="N")).upper() == "Y"
    return {"item": render_item(p, etid, item, None, original)}


TYPE_FIELDS = query.spec(
    {
        "id": Field("id", "int"),
        "entityTypeId": Field("entityTypeId", "int"),
        "title": Field("title"),
        "code": Field("code"),
    }
)


@method("crm.type.list", "crm")
def type_list(c: Call, params: dict):
    p = c.portal
    types = sorted(p.crm_types.values(), key=lambda t: t["id"])
    rows, total, nxt = query.run(
        types,
        TYPE_FIELDS,
        p.tz,
        flt=_ci(params, "filter"),
        order=_ci(params, "order"),
        start=_ci(params, "start"),
        strict=True,
    )
    out = []
    for t in rows:
        r = dict(t)
        r["createdTime"] = timefmt.iso(t["createdTime"], p.tz)
        r["updatedTime"] = timefmt.iso(t["updatedTime"], p.tz)
        out.append(r)
    return Listed({"types": out}, total, nxt)


@method("crm.category.list", "crm")
def category_list(c: Call, params: dict):
    p = c.portal
    etid = _etid(params)
    _known_type(p, etid)
    cats = p.categories.get(etid, [])
    return Listed({"categories": [dict(cat) for cat in cats]}, len(cats), None)


STATUS_FIELDS = query.spec(
    {
        "ID": Field("ID", "int"),
        "ENTITY_ID": Field("ENTITY_ID"),
        "STATUS_ID": Field("STATUS_ID"),
        "NAME": Field("NAME"),
        "SORT": Field("SORT", "int"),
        "CATEGORY_ID": Field("CATEGORY_ID", "int"),
        "SEMANTICS": Field("SEMANTICS"),
        "SYSTEM": Field("SYSTEM"),
    }
)


@method("crm.status.list", "crm")
def status_list(c: Call, params: dict):
    p = c.portal
    stages = sorted((s for lst in p.stage_lists.values() for s in lst), key=lambda s: s["ID"])
    rows, total, nxt = query.run(
        stages,
        STATUS_FIELDS,
        p.tz,
        flt=_ci(params, "filter"),
        order=_ci(params, "order") or {"SORT": "ASC"},
        start=_ci(params, "start"),
        id_key="ID",
        strict=False,
    )
    out = []
    for s in rows:
        out.append(
            {
                "ID": str(s["ID"]),
                "ENTITY_ID": s["ENTITY_ID"],
                "STATUS_ID": s["STATUS_ID"],
                "NAME": s["NAME"],
                "NAME_INIT": s["NAME"] if s["SYSTEM"] == "Y" else "",
                "SORT": str(s["SORT"]),
                "SYSTEM": s["SYSTEM"],
                "CATEGORY_ID": None if s["CATEGORY_ID"] is None else str(s["CATEGORY_ID"]),
                "COLOR": s["COLOR"],
                "SEMANTICS": s["SEMANTICS"],
                "EXTRA": {"SEMANTICS": s["EXTRA_SEMANTICS"], "COLOR": s["COLOR"]},
            }
        )
    return Listed(out, total, nxt)


SH_COLS = ("ID", "TYPE_ID", "OWNER_ID", "CREATED_TIME", "CATEGORY_ID", "STAGE_SEMANTIC_ID", "STAGE_ID")
SH_FIELDS = query.spec(
    {
        "ID": Field("ID", "int"),
        "TYPE_ID": Field("TYPE_ID", "int"),
        "OWNER_ID": Field("OWNER_ID", "int"),
        "CREATED_TIME": Field("CREATED_TIME", "time"),
        "CATEGORY_ID": Field("CATEGORY_ID", "int"),
        "STAGE_SEMANTIC_ID": Field("STAGE_SEMANTIC_ID"),
        "STAGE_ID": Field("STAGE_ID"),
    }
)


def _owner_scalar(flt, name: str):
    """A plain ``OWNER_ID: 5`` (no prefix, one value) lets us use the per-owner index."""
    if not isinstance(flt, dict) or str(flt.get("logic", "AND")).upper() == "OR":
        return None
    for k, v in flt.items():
        if query.norm(k) == query.norm(name) and not isinstance(v, (list, dict)):
            try:
                return int(str(v))
            except ValueError:
                return None
    return None


@method("crm.stagehistory.list", "crm")
def stagehistory_list(c: Call, params: dict):
    p = c.portal
    raw = _ci(params, "entityTypeId", default=1)
    try:
        etid = int(str(raw))
    except ValueError:
        raise ApiError(400, "ENTITY_TYPE_NOT_SUPPORTED", f"Entity type {raw} is not supported")
    if etid not in (1, 2, 5, 31) and etid not in p.crm_types:
        raise ApiError(400, "ENTITY_TYPE_NOT_SUPPORTED", f"Entity type {raw} is not supported")
    flt = _ci(params, "filter")
    owner = _owner_scalar(flt, "OWNER_ID")
    records = p.stage_history_by_owner.get((etid, owner), []) if owner is not None else p.stage_history.get(etid, [])
    rows, total, nxt = query.run(
        records,
        SH_FIELDS,
        p.tz,
        flt=flt,
        order=_ci(params, "order"),
        start=_ci(params, "start"),
        id_key="ID",
        strict=True,
    )
    sel = _select(params)
    cols = [col for col in SH_COLS if not sel or "*" in sel or query.norm(col) in {query.norm(s) for s in sel}]
    out = []
    for r in rows:
        out.append({col: (timefmt.iso(r[col], p.tz) if col == "CREATED_TIME" else r[col]) for col in cols})
    return Listed({"items": out}, total, nxt)


_ACT_TYPES = {
    "ID": "int",
    "OWNER_ID": "int",
    "OWNER_TYPE_ID": "int",
    "TYPE_ID": "int",
    "PROVIDER_ID": "str",
    "PROVIDER_TYPE_ID": "str",
    "DIRECTION": "int",
    "SUBJECT": "str",
    "DESCRIPTION": "str",
    "CREATED": "time",
    "LAST_UPDATED": "time",
    "START_TIME": "time",
    "END_TIME": "time",
    "DEADLINE": "time",
    "COMPLETED": "str",
    "STATUS": "int",
    "RESPONSIBLE_ID": "int",
    "AUTHOR_ID": "int",
    "EDITOR_ID": "int",
    "PRIORITY": "int",
    "ASSOCIATED_ENTITY_ID": "int",
}
ACT_FIELDS = query.spec({k: Field(k, t) for k, t in _ACT_TYPES.items()})
_ACT_DEFAULT = [k for k in _ACT_TYPES]


def render_activity(p, a: dict, select) -> dict:
    cols = _ACT_DEFAULT
    if select and "*" not in select:
        want = {query.norm(s) for s in select}
        cols = [k for k in _ACT_DEFAULT if query.norm(k) in want or k == "ID"]
    out = {}
    for k in cols:
        v = a[k]
        t = _ACT_TYPES[k]
        out[k] = timefmt.iso(v, p.tz) if t == "time" else (None if v is None else str(v))
    out.setdefault("DESCRIPTION_TYPE", "1") if not select or "*" in select else None
    if select and any(query.norm(s) == "communications" for s in select):
        out["COMMUNICATIONS"] = [
            {
                "ID": str(a["ID"]),
                "TYPE": "EMAIL" if a["TYPE_ID"] == 4 else "PHONE",
                "VALUE": a.get("COMMUNICATION", ""),
                "ENTITY_ID": str(a["OWNER_ID"]),
                "ENTITY_TYPE_ID": str(a["OWNER_TYPE_ID"]),
            }
        ]
    return out


@method("crm.activity.list", "crm")
def activity_list(c: Call, params: dict):
    p = c.portal
    flt = _ci(params, "filter")
    owner = _owner_scalar(flt, "OWNER_ID")
    otype = _owner_scalar(flt, "OWNER_TYPE_ID")
    if owner is not None and otype is not None:
        records = p.activities_by_owner.get((otype, owner), [])
    else:
        records = p.activities
    if isinstance(flt, dict):
        bkey = next((k for k in flt if query.norm(k) == "bindings"), None)
        if bkey is not None:
            # BINDINGS: [{OWNER_TYPE_ID, OWNER_ID}, ...] -- every generated activity has one binding, its owner
            pairs = set()
            for b in query.as_list(flt[bkey]):
                if isinstance(b, dict):
                    try:
                        pairs.add((int(str(b.get("OWNER_TYPE_ID"))), int(str(b.get("OWNER_ID")))))
                    except ValueError:
                        raise ApiError(400, "INVALID_ARG_VALUE", "Invalid filter: field 'BINDINGS' has invalid value")
            records = [a for a in records if (a["OWNER_TYPE_ID"], a["OWNER_ID"]) in pairs]
            flt = {k: v for k, v in flt.items() if k != bkey}
    rows, total, nxt = query.run(
        records,
        ACT_FIELDS,
        p.tz,
        flt=flt,
        order=_ci(params, "order"),
        start=_ci(params, "start"),
        id_key="ID",
        strict=False,
    )
    sel = _select(params)
    return Listed([render_activity(p, a, sel) for a in rows], total, nxt)


def _entity_type_id(name: str) -> int | None:
    n = str(name).strip().lower()
    fixed = {"lead": 1, "deal": 2, "contact": 3, "company": 4, "invoice": 5, "quote": 7}
    if n in fixed:
        return fixed[n]
    if n.startswith("dynamic_"):
        try:
            return int(n.split("_", 1)[1])
        except ValueError:
            return None
    return None


TL_FIELDS = query.spec(
    {
        "ID": Field("ID", "int"),
        "CREATED": Field("CREATED", "time"),
        "AUTHOR_ID": Field("AUTHOR_ID", "int"),
        "ENTITY_ID": Field("ENTITY_ID", "int"),
    }
)


@method("crm.timeline.comment.list", "crm")
def timeline_comment_list(c: Call, params: dict):
    p = c.portal
    flt = dict(_ci(params, "filter") or {})
    ent_id = next((v for k, v in flt.items() if query.norm(k) == "entityid"), None)
    ent_type = next((v for k, v in flt.items() if query.norm(k) == "entitytype"), None)
    if ent_id in (None, "") or ent_type in (None, ""):
        # the filter requires both (DOCS crm-timeline-comment-list.md)
        raise ApiError(400, "INVALID_ARG_VALUE", "ENTITY_ID and ENTITY_TYPE are required in filter")
    etid = _entity_type_id(ent_type)
    try:
        owner = int(str(ent_id))
    except ValueError:
        raise ApiError(400, "INVALID_ARG_VALUE", "Invalid filter: field 'ENTITY_ID' has invalid value")
    records = p.timeline_by_owner.get((etid, owner), [])
    rest = {k: v for k, v in flt.items() if query.norm(k) not in ("entityid", "entitytype")}
    order = _ci(params, "order")
    if order:
        for k in order:
            if query.norm(k) not in ("id", "created", "authorid"):
                raise ApiError(400, "INVALID_ARG_VALUE", f"Invalid order: field '{k}' is not allowed in order")
    rows, total, nxt = query.run(
        records, TL_FIELDS, p.tz, flt=rest, order=order, start=_ci(params, "start"), id_key="ID", strict=False
    )
    ent_name = str(ent_type).lower()
    out = [
        {
            "ID": str(r["ID"]),
            "ENTITY_ID": str(r["ENTITY_ID"]),
            "ENTITY_TYPE": ent_name,
            "CREATED": timefmt.iso(r["CREATED"], p.tz),
            "COMMENT": r["COMMENT"],
            "AUTHOR_ID": str(r["AUTHOR_ID"]),
            "FILES": {},
        }
        for r in rows
    ]
    return Listed(out, total, nxt)
