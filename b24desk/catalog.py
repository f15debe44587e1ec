"""The portal's own lists the settings page offers: workgroups, pipelines, smart processes, stages,
fields with their list values, open lines. Read from the portal, kept in the store for a while.

An admin picks names, never ids: each list is read with the documented method and kept as
``{"id", "name", ...}`` rows under the setting ``catalog`` (``fetched_at`` says how fresh):

- task workgroups: ``sonet_group.get`` (DOCS api-reference/sonet-group/sonet-group-get.md);
- deal pipelines and smart-process funnels: ``crm.category.list`` (crm/universal/category/crm-category-list.md);
- smart processes: ``crm.type.list`` (crm/universal/user-defined-object-types/crm-type-list.md);
- stages with name, colour and semantics: ``crm.status.list`` by ``ENTITY_ID`` (crm/status/crm-status-list.md);
- fields: ``crm.item.fields`` with original UF names (crm/universal/crm-item-fields.md); list values of
  user fields: ``userfieldconfig.list`` (crm/universal/userfieldconfig/userfieldconfig-list.md), or an
  ``items`` list where a portal puts one into the field description;
- open lines: ``imopenlines.config.list.get`` (imopenlines/openlines/imopenlines-config-list-get.md).

Every list is optional: a refused method (scope, plan, rights) leaves that list empty and is named
in ``errors``, so the page still offers everything else.
"""

from __future__ import annotations

import logging
import time

from .store import get_setting, set_setting

log = logging.getLogger("b24desk.catalog")

CATALOG_SETTING = "catalog"
MAX_AGE = 600  # seconds a stored catalog is shown before the page reads it again
DEAL = 2
# Fields worth mapping: types that can hold a priority, a rating, a deadline or a type.
MAPPABLE_TYPES = {
    "enumeration",
    "integer",
    "double",
    "string",
    "crm_status",
    "date",
    "datetime",
    "boolean",
    "iblock_element",
}


def stored(db, portal: str) -> dict | None:
    value = get_setting(db, portal, CATALOG_SETTING)
    return value if isinstance(value, dict) else None


def is_fresh(catalog: dict | None, now: float | None = None) -> bool:
    return bool(catalog) and (now or time.time()) - (catalog.get("fetched_at") or 0) < MAX_AGE


def _rows(value, key=None) -> list:
    if isinstance(value, dict) and key:
        value = value.get(key)
    return value if isinstance(value, list) else []


def _lang_label(value, lang: str) -> str | None:
    if isinstance(value, dict):
        return value.get(lang) or value.get("ru") or value.get("en") or next(iter(value.values()), None)
    return value or None


def read(client, lang: str = "ru") -> dict:
    """Every list, read now; what the portal refuses is named in ``errors`` and left empty."""
    out: dict = {"groups": [], "types": [], "crm": {}, "lines": [], "errors": [], "fetched_at": int(time.time())}

    def attempt(what, fn):
        try:
            return fn()
        except Exception as exc:  # a refusal (scope, plan, rights) or a network fault
            log.warning("catalog %s: %s", what, exc)
            out["errors"].append(what)
            return None

    groups = attempt("sonet_group.get", lambda: list(client.list_paged("sonet_group.get", {"ORDER": {"NAME": "ASC"}})))
    out["groups"] = [
        {"id": str(g["ID"]), "name": g.get("NAME") or str(g["ID"])}
        for g in groups or []
        if isinstance(g, dict) and g.get("ID") is not None
    ]
    types = attempt("crm.type.list", lambda: _rows(client.call("crm.type.list", {}), "types"))
    out["types"] = [
        {"etid": int(t["entityTypeId"]), "type_id": int(t["id"]), "name": t.get("title") or str(t["id"])}
        for t in types or []
        if isinstance(t, dict) and t.get("entityTypeId") is not None
    ]
    stages = attempt("crm.status.list", lambda: list(client.list_paged("crm.status.list", {"order": {"SORT": "ASC"}})))
    by_entity: dict[str, list] = {}
    for s in stages or []:
        if isinstance(s, dict) and s.get("ENTITY_ID") and s.get("STATUS_ID"):
            by_entity.setdefault(s["ENTITY_ID"], []).append(
                {
                    "id": s["STATUS_ID"],
                    "name": s.get("NAME") or s["STATUS_ID"],
                    "color": s.get("COLOR") or (s.get("EXTRA") or {}).get("COLOR") or "",
                    "semantics": s.get("SEMANTICS") or "P",
                }
            )
    for etid, type_id in [(DEAL, None)] + [(t["etid"], t["type_id"]) for t in out["types"]]:
        entry = {"categories": [], "fields": []}
        cats = attempt(
            f"crm.category.list:{etid}",
            lambda: _rows(client.call("crm.category.list", {"entityTypeId": etid}), "categories"),
        )
        for cat in cats or []:
            cid = int(cat.get("id", 0))
            if etid == DEAL:
                entity = "DEAL_STAGE" if cid == 0 else f"DEAL_STAGE_{cid}"
            else:
                entity = f"DYNAMIC_{etid}_STAGE_{cid}"
            entry["categories"].append(
                {"id": str(cid), "name": cat.get("name") or str(cid), "stages": by_entity.get(entity, [])}
            )
        fields = attempt(
            f"crm.item.fields:{etid}",
            lambda: (
                (client.call("crm.item.fields", {"entityTypeId": etid, "useOriginalUfNames": "Y"}) or {}).get("fields")
                or {}
            ),
        )
        enums = {}
        if fields and any(isinstance(d, dict) and d.get("isDynamic") for d in fields.values()):
            entity = "CRM_DEAL" if etid == DEAL else f"CRM_{type_id}"
            ufs = attempt(
                f"userfieldconfig.list:{etid}",
                lambda: _rows(
                    client.call(
                        "userfieldconfig.list",
                        {"moduleId": "crm", "filter": {"entityId": entity}, "select": {"0": "*", "language": lang}},
                    ),
                    "fields",
                ),
            )
            for uf in ufs or []:
                if isinstance(uf, dict) and uf.get("fieldName"):
                    enums[uf["fieldName"]] = {
                        "label": _lang_label(uf.get("editFormLabel"), lang)
                        or _lang_label(uf.get("listColumnLabel"), lang),
                        "values": [
                            {"id": str(e.get("id")), "name": e.get("value") or str(e.get("id"))}
                            for e in uf.get("enum") or []
                            if isinstance(e, dict)
                        ],
                    }
        for code, d in (fields or {}).items():
            if not isinstance(d, dict) or d.get("type") not in MAPPABLE_TYPES or d.get("isReadOnly"):
                continue
            upper = d.get("upperName") or code
            extra = enums.get(upper) or enums.get(code) or {}
            values = extra.get("values") or [
                {"id": str(i.get("ID")), "name": i.get("VALUE") or str(i.get("ID"))}
                for i in d.get("items") or []
                if isinstance(i, dict)
            ]
            name = d.get("formLabel") or d.get("listLabel") or extra.get("label") or d.get("title") or code
            entry["fields"].append(
                {
                    "code": upper,
                    "name": name,
                    "type": d.get("type"),
                    "custom": bool(d.get("isDynamic")),
                    "values": values,
                }
            )
        entry["fields"].sort(key=lambda f: (not f["custom"], f["name"].lower()))
        out["crm"][str(etid)] = entry
    lines = attempt(
        "imopenlines.config.list.get", lambda: client.call("imopenlines.config.list.get", {"PARAMS": {"limit": 200}})
    )
    out["lines"] = [
        {"id": str(x["ID"]), "name": x.get("LINE_NAME") or str(x["ID"])}
        for x in lines or []
        if isinstance(x, dict) and x.get("ID") is not None
    ]
    return out


def refresh(db, portal: str, client, lang: str = "ru") -> dict:
    value = read(client, lang)
    with db.atomic():
        set_setting(db, portal, CATALOG_SETTING, value)
    return value


def fallback(db, portal: str) -> dict:
    """What the store already knows (the sync's stages and categories, open lines), when the portal
    cannot be asked: names without fields, so the page still shows something useful."""
    from .kpi.report import crm_settings

    out: dict = {"groups": [], "types": [], "crm": {}, "lines": [], "errors": ["portal"], "fetched_at": 0}
    for etid, s in crm_settings(db, portal).items():
        cats = [{"id": str(c), "name": n, "stages": []} for c, n in (s.get("categories") or {}).items()]
        out["crm"][str(etid)] = {"categories": cats, "fields": []}
    lines = get_setting(db, portal, "openlines.lines") or {}
    out["lines"] = [{"id": str(k), "name": v} for k, v in lines.items()]
    return out
