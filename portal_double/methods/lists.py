"""The portal's own lists an admin picks from in the app's settings: ``crm.item.fields``,
``userfieldconfig.list`` (user fields with their list values), ``sonet_group.get``.

DOCS api-reference/crm/universal/crm-item-fields.md (``crm_rest_field_description`` of
api-reference/crm/data-types.md: the documented keys only; user fields carry their code as
``title`` and the admin's label in ``listLabel``/``formLabel``/``filterLabel``, and no list
values: those come from ``userfieldconfig.list``), api-reference/crm/universal/userfieldconfig/
userfieldconfig-list.md (``moduleId`` required; ``result.fields[]`` with ``enum`` for
``enumeration`` fields; labels as ``lang_map``), api-reference/sonet-group/sonet-group-get.md.
"""

from __future__ import annotations

from .. import query
from ..query import ApiError, Field
from ..registry import Call, Listed, method
from .common import _ci

# The standard item fields the double's items carry (title as the portal shows it in Russian).
_STANDARD = {
    "id": ("integer", "ID", True),
    "title": ("string", "Название", False),
    "createdTime": ("datetime", "Дата создания", True),
    "createdBy": ("user", "Кем создан", True),
    "assignedById": ("user", "Ответственный", False),
    "categoryId": ("crm_category", "Воронка", False),
    "stageId": ("crm_status", "Стадия", False),
    "sourceId": ("crm_status", "Источник", False),
    "typeId": ("crm_status", "Тип", False),
    "opportunity": ("double", "Сумма", False),
    "closedate": ("date", "Дата завершения", False),
    "companyId": ("crm_company", "Компания", False),
    "contactId": ("crm_contact", "Контакт", False),
}
# What the generator's user fields are, as an admin created them (label, type, list values).
_PRIORITY_VALUES = (("45", "Низкий"), ("46", "Обычный"), ("47", "Высокий"), ("48", "Критический"))
_UF_KIND = {
    "PRIORITY": ("Приоритет обращения", "enumeration"),
    "RATING": ("Оценка клиента", "integer"),
    "DEADLINE": ("Срок решения", "datetime"),
}


def _camel_upper(name: str) -> str:
    out = []
    for ch in name:
        if ch.isupper() and out:
            out.append("_")
        out.append(ch.upper())
    return "".join(out)


def _uf_kind(code: str) -> tuple[str, str]:
    return _UF_KIND.get(code.rsplit("_", 1)[-1], (code, "string"))


def _uf_entity(p, etid: int) -> str:
    if etid == 2:
        return "CRM_DEAL"
    t = p.crm_types.get(etid)
    return f"CRM_{t['id']}" if t else f"CRM_{etid}"


@method("crm.item.fields", "crm")
def item_fields(c: Call, params: dict):
    p = c.portal
    raw = _ci(params, "entityTypeId")
    try:
        etid = int(str(raw))
    except (TypeError, ValueError):
        raise ApiError(400, "NOT_FOUND", "SPA not found")
    if etid not in p.crm_types and etid not in (1, 2, 3, 4):
        raise ApiError(400, "NOT_FOUND", "SPA not found")
    original = str(_ci(params, "useOriginalUfNames", default="N")).upper() == "Y"
    out = {}
    for key, (typ, title, ro) in _STANDARD.items():
        d = {
            "type": typ,
            "isRequired": False,
            "isReadOnly": ro,
            "isImmutable": False,
            "isMultiple": False,
            "isDynamic": False,
            "title": title,
            "upperName": _camel_upper(key),
        }
        if key == "stageId":
            d["statusType"] = "DEAL_STAGE" if etid == 2 else f"DYNAMIC_{etid}_STAGE"
        out[key] = d
    for camel, (code, _t) in sorted(p.uf_fields.get(etid, {}).items()):
        label, typ = _uf_kind(code)
        out[code if original else camel] = {
            "type": typ,
            "isRequired": False,
            "isReadOnly": False,
            "isImmutable": False,
            "isMultiple": False,
            "isDynamic": True,
            "title": code,
            "upperName": code,
            "listLabel": label,
            "formLabel": label,
            "filterLabel": label,
            "settings": {},
        }
    return {"fields": out}


@method("userfieldconfig.list", "userfieldconfig")
def userfieldconfig_list(c: Call, params: dict):
    p = c.portal
    module = _ci(params, "moduleId")
    if not module:
        raise ApiError(400, "", "Module ID is not specified")
    if str(module) != "crm":
        raise ApiError(400, "", "No settings for UserFieldAccess")
    flt = _ci(params, "filter") or {}
    want_entity = _ci(flt, "entityId") if isinstance(flt, dict) else None
    want_name = _ci(flt, "fieldName") if isinstance(flt, dict) else None
    select = _ci(params, "select") or {}
    lang = (_ci(select, "language") if isinstance(select, dict) else None) or "ru"
    rows, n = [], 7000
    for etid in sorted(p.uf_fields):
        entity = _uf_entity(p, etid)
        for _camel, (code, _t) in sorted(p.uf_fields[etid].items()):
            n += 2
            if want_entity and str(want_entity) != entity or want_name and str(want_name) != code:
                continue
            label, typ = _uf_kind(code)
            r = {
                "id": str(n),
                "entityId": entity,
                "fieldName": code,
                "userTypeId": typ,
                "xmlId": None,
                "sort": "100",
                "multiple": "N",
                "mandatory": "N",
                "showFilter": "E",
                "showInList": "Y",
                "editInList": "Y",
                "isSearchable": "N",
                "settings": {},
                "languageId": {lang: lang},
                "editFormLabel": {lang: label},
                "listColumnLabel": {lang: label},
                "listFilterLabel": {lang: label},
                "errorMessage": None,
                "helpMessage": None,
            }
            if typ == "enumeration":
                r["enum"] = [
                    {"id": vid, "value": v, "def": "N", "sort": str((i + 1) * 10), "xmlId": f"P{vid}"}
                    for i, (vid, v) in enumerate(_PRIORITY_VALUES)
                ]
            rows.append(r)
    try:
        start = max(0, int(_ci(params, "start", default=0) or 0))
    except (TypeError, ValueError):
        start = 0
    page = rows[start : start + 50]
    return Listed({"fields": page}, len(rows), start + 50 if start + 50 < len(rows) else None)


GROUP_FIELDS = query.spec(
    {"ID": Field("ID", "int"), "NAME": Field("NAME"), "ACTIVE": Field("ACTIVE"), "PROJECT": Field("PROJECT")}
)


@method("sonet_group.get", "sonet_group")
def sonet_group_get(c: Call, params: dict):
    p = c.portal
    groups = [
        {"ID": g["ID"], "NAME": g["NAME"], "ACTIVE": "Y", "PROJECT": "N"}
        for g in sorted(getattr(p, "groups", {}).values(), key=lambda g: g["ID"])
    ]
    rows, total, nxt = query.run(
        groups,
        GROUP_FIELDS,
        p.tz,
        flt=_ci(params, "FILTER"),
        order=_ci(params, "ORDER"),
        start=_ci(params, "start"),
        id_key="ID",
        strict=False,
    )
    return Listed(
        [
            {
                "ID": str(g["ID"]),
                "SITE_ID": "s1",
                "NAME": g["NAME"],
                "DESCRIPTION": "",
                "ACTIVE": "Y",
                "VISIBLE": "Y",
                "OPENED": "N",
                "PROJECT": "N",
                "CLOSED": "N",
            }
            for g in rows
        ],
        total,
        nxt,
    )
