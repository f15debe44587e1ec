"""System, user and department methods (DOCS api-reference/common/system/*.md, api-reference/user/*.md,
api-reference/departments/department-get.md, api-reference/calendar/calendar-settings-get.md)."""

from __future__ import annotations

from .. import query, timefmt
from ..query import ApiError, Field
from ..registry import Call, Listed, method

USER_FIELDS = query.spec(
    {
        "ID": Field("ID", "int"),
        "ACTIVE": Field("ACTIVE", "bool"),
        "NAME": Field("NAME"),
        "LAST_NAME": Field("LAST_NAME"),
        "EMAIL": Field("EMAIL"),
        "UF_DEPARTMENT": Field("UF_DEPARTMENT", "ints"),
        "USER_TYPE": Field("USER_TYPE"),
        "WORK_POSITION": Field("WORK_POSITION"),
        "DATE_REGISTER": Field("DATE_REGISTER", "time"),
        "LAST_LOGIN": Field("LAST_LOGIN", "time"),
        "IS_ONLINE": Field("IS_ONLINE", getter=lambda u: "N"),
    }
)


def render_user(p, u: dict) -> dict:
    return {
        "ID": str(u["ID"]),
        "XML_ID": "",
        "ACTIVE": u["ACTIVE"],
        "NAME": u["NAME"],
        "LAST_NAME": u["LAST_NAME"],
        "SECOND_NAME": u["SECOND_NAME"],
        "EMAIL": u["EMAIL"],
        "LAST_LOGIN": timefmt.iso(u["LAST_LOGIN"], p.tz),
        "DATE_REGISTER": timefmt.iso(u["DATE_REGISTER"], p.tz),
        "IS_ONLINE": "N",
        "TIMESTAMP_X": timefmt.dmy(u["DATE_REGISTER"], p.tz),
        "LAST_ACTIVITY_DATE": timefmt.ymd_hms(u["LAST_LOGIN"], p.tz),
        "PERSONAL_GENDER": u["PERSONAL_GENDER"],
        "PERSONAL_BIRTHDAY": "",
        "TIME_ZONE": u["TIME_ZONE"],
        "WORK_POSITION": u["WORK_POSITION"],
        "UF_EMPLOYMENT_DATE": "",
        "UF_DEPARTMENT": list(u["UF_DEPARTMENT"]),
        "USER_TYPE": u["USER_TYPE"],
    }


@method("server.time", "basic")
def server_time(c: Call, params: dict):
    return timefmt.iso(c.portal.now, c.portal.tz)


@method("user.current", "basic")
def user_current(c: Call, params: dict):
    u = c.portal.users.get(c.user_id)
    if u is None:
        raise ApiError(401, "NO_AUTH_FOUND", "Wrong authorization data")
    return render_user(c.portal, u)


@method("profile", "basic")
def profile(c: Call, params: dict):
    u = c.portal.users[c.user_id]
    return {
        "ID": str(u["ID"]),
        "ADMIN": c.user_id in (getattr(c.portal, "admins", None) or {1}),
        "NAME": u["NAME"],
        "LAST_NAME": u["LAST_NAME"],
        "PERSONAL_GENDER": u["PERSONAL_GENDER"],
        "TIME_ZONE": u["TIME_ZONE"],
    }


def _ci(params: dict, *names, default=None):
    """Bitrix reads many parameters case-insensitively (``FILTER`` / ``filter``)."""
    for n in names:
        for k, v in params.items():
            if k.lower() == n.lower():
                return v
    return default


@method("user.get", "user")
def user_get(c: Call, params: dict):
    p = c.portal
    flt = dict(_ci(params, "filter") or {})
    # legacy form: filter fields at the top level (user.get?ID=5)
    for k, v in params.items():
        op, name = query.split_key(k)
        if query.norm(name) in USER_FIELDS and k.lower() not in ("filter", "sort", "order", "start"):
            flt[k] = v
    if "ACTIVE" in flt and isinstance(flt["ACTIVE"], str):
        flt["ACTIVE"] = flt["ACTIVE"].lower() in ("y", "1", "true")
    sort = _ci(params, "sort")
    order = None
    if sort:
        order = {str(sort): str(_ci(params, "order", default="ASC"))}
    users = sorted(p.users.values(), key=lambda u: u["ID"])
    rows, total, nxt = query.run(
        users,
        USER_FIELDS,
        p.tz,
        flt=flt,
        order=order,
        start=_ci(params, "start"),
        id_key="ID",
        strict=False,
        ignore=("namesearch", "admin_mode"),
    )
    return Listed([render_user(p, u) for u in rows], total, nxt)


DEPT_FIELDS = query.spec(
    {
        "ID": Field("ID", "int"),
        "NAME": Field("NAME"),
        "SORT": Field("SORT", "int"),
        "PARENT": Field("PARENT", "int"),
        "UF_HEAD": Field("UF_HEAD", "int"),
    }
)


@method("department.get", "department")
def department_get(c: Call, params: dict):
    p = c.portal
    # lowercase sort/order/start are the sorting and paging parameters; UPPERCASE ones filter
    # (DOCS department-get.md lists both `sort` and `SORT`)
    flt = {
        k: v
        for k, v in params.items()
        if k not in ("sort", "order", "start") and query.norm(query.split_key(k)[1]) in DEPT_FIELDS
    }
    sort = params.get("sort")
    order = {str(sort): str(params.get("order") or "ASC")} if sort else None
    rows, total, nxt = query.run(
        sorted(p.departments, key=lambda d: d["ID"]),
        DEPT_FIELDS,
        p.tz,
        flt=flt,
        order=order,
        start=params.get("start", params.get("START")),
        id_key="ID",
        strict=False,
    )
    out = []
    for d in rows:
        r = {"ID": str(d["ID"]), "NAME": d["NAME"], "SORT": d["SORT"]}
        if d.get("PARENT"):
            r["PARENT"] = str(d["PARENT"])
        if d.get("UF_HEAD"):
            r["UF_HEAD"] = str(d["UF_HEAD"])
        out.append(r)
    return Listed(out, total, nxt)


@method("app.info", "basic")
def app_info(c: Call, params: dict):
    d = c.double
    installed = True if d is None else d.app.installed
    return {
        "ID": 7,
        "CODE": d.client_id if d else "local.double",
        "VERSION": 1,
        "STATUS": "L",
        "INSTALLED": installed,
        "PAYMENT_EXPIRED": "N",
        "DAYS": None,
        "LANGUAGE_ID": "ru",
        "LICENSE": "ru_basic",
        "LICENSE_TYPE": "basic",
        "LICENSE_FAMILY": "basic",
    }


@method("calendar.settings.get", "calendar")
def calendar_settings_get(c: Call, params: dict):
    return {
        "work_time_start": "9",
        "work_time_end": "18",
        "year_holidays": "1.01,2.01,3.01,4.01,5.01,6.01,7.01,8.01,23.02,8.03,1.05,9.05,12.06,4.11",
        "year_workdays": "",
        "week_holidays": ["SA", "SU"],
        "week_start": "MO",
        "user_name_template": "#NAME# #LAST_NAME#",
        "sync_by_push": False,
        "user_show_login": True,
        "path_to_user": "/company/personal/user/#user_id#/",
        "dep_manager_sub": True,
        "denied_superpose_types": [],
        "forum_id": "8",
    }
