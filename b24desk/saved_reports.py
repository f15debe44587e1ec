"""Saved reports (interfaces.md "Saved reports"): validation, sharing rules and the per-portal store.

Core module (no Flask). A definition is plain JSON; ``validate`` checks every field and raises
``ReportError`` naming the field, with a message in the viewer's language, so the API answers
``{"error", "field"}`` and a page can put the message beside the input. Who may do what:

- create: admins, and heads whose filters and sharing stay inside the departments they head;
  agents never;
- open: the owner, admins, users named in ``share.users``, viewers whose role is in
  ``share.roles`` and members (or heads) of a department in ``share.departments`` (sub-departments
  included). A head's report reaches by role only viewers inside that head's departments;
- change or delete: the owner or an admin.

What a viewer sees *inside* a report is still cut to their role when the data is computed
(``data_filters``), never trusted to the definition.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from datetime import date

from .kpi.engine import KPI_KEYS
from .kpi.filters import GROUP_BY
from .kpi.presets import COMPARE, PRESETS
from .model import PRIORITIES
from .viewer import ADMIN, AGENT, HEAD, ROLES, Viewer, department_parents, members, subtree

CHARTS = ("table", "bar", "line", "heatmap")
FILTER_KEYS = ("source", "department", "agent", "priority", "type", "channel", "line")
FIELDS = ("id", "name", "kpis", "group_by", "filters", "period", "compare", "chart", "share", "owner")
NAME_MAX = 200
MAX_REPORTS = 500  # per portal: a runaway script cannot fill the store
_ID = re.compile(r"^[A-Za-z0-9_:=.\-]{1,100}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

MESSAGES = {
    "not_object": ("Отчёт должен быть JSON-объектом", "The report must be a JSON object"),
    "unknown_field": ("Неизвестное поле", "Unknown field"),
    "name": ("Укажите название (до 200 символов)", "Give a name (up to 200 characters)"),
    "kpis": ("Выберите хотя бы один показатель из списка", "Pick at least one KPI from the list"),
    "kpi_unknown": ("Неизвестный показатель", "Unknown KPI"),
    "group_by": (
        "Разбивка: одна из agent, department, priority, type, source, channel, line, week, "
        "month, weekday, hour или пусто",
        "Breakdown: one of agent, department, priority, type, source, channel, line, week, month, "
        "weekday, hour, or none",
    ),
    "filters": ("Фильтры должны быть объектом", "Filters must be an object"),
    "filter_value": ("Недопустимое значение фильтра", "Invalid filter value"),
    "priority": ("Приоритет: low, normal, high или critical", "Priority: low, normal, high or critical"),
    "period": (
        'Период: {"preset": ...} или {"from": "ГГГГ-ММ-ДД", "to": "ГГГГ-ММ-ДД"}, «по» позже «с», не длиннее 3 лет',
        'Period: {"preset": ...} or {"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}, \'to\' after \'from\', at most 3 years',
    ),
    "preset": ("Неизвестный период", "Unknown period preset"),
    "compare": ("Сравнение: previous, last_year или пусто", "Comparison: previous, last_year or none"),
    "chart": ("Вид: table, bar, line или heatmap", "Chart: table, bar, line or heatmap"),
    "share": ("Доступ: объект с roles, departments, users", "Sharing: an object with roles, departments, users"),
    "share_roles": ("Роли: admin, head, agent", "Roles: admin, head, agent"),
    "share_ids": ("Недопустимый идентификатор", "Invalid id"),
    "forbidden_create": ("Сотрудники не могут создавать отчёты", "Agents cannot create reports"),
    "no_departments": ("Вы не руководите ни одним отделом", "You head no department"),
    "outside_departments": ("Можно выбирать только свои отделы", "Only the departments you head are allowed"),
    "outside_users": (
        "Можно делиться только с сотрудниками своих отделов",
        "You can share only with people of the departments you head",
    ),
    "not_found": ("Отчёт не найден", "Report not found"),
    "forbidden_edit": (
        "Изменять и удалять отчёт может только его автор или администратор",
        "Only the report's owner or an admin can change or delete it",
    ),
    "too_many": ("Слишком много отчётов на портале", "Too many reports on this portal"),
    "no_slice": ("В этом отчёте нет ваших данных", "This report holds none of your data"),
    "digest": ("Рассылка: daily, weekly, monthly или пусто", "Digest: daily, weekly, monthly or none"),
}


class ReportError(Exception):
    """A refused definition or request: HTTP ``status``, machine ``code``, the ``field`` at fault."""

    def __init__(self, status: int, code: str, field: str | None, lang: str = "en", detail: str = ""):
        ru, en = MESSAGES.get(code, (code, code))
        msg = ru if lang == "ru" else en
        super().__init__(msg + (f": {detail}" if detail else ""))
        self.status, self.code, self.field = status, code, field
        self.message = str(self)

    def as_json(self) -> dict:
        return {"error": self.message, "field": self.field, "code": self.code}


def _ids(value, field: str, lang: str) -> list[str]:
    """A string or a list of strings/ints -> sorted distinct safe ids."""
    if value in (None, "", []):
        return []
    vals = value if isinstance(value, list) else [value]
    out = []
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            code = "share_ids" if field.startswith("share") else "filter_value"
            raise ReportError(400, code, field, lang, repr(v)[:40])
        s = str(v).strip()
        if not _ID.match(s):
            raise ReportError(400, "share_ids" if field.startswith("share") else "filter_value", field, lang, s[:40])
        out.append(s)
    return sorted(set(out), key=lambda x: (0, int(x), "") if x.isdigit() else (1, 0, x))


def _one_or_list(vals: list):
    return None if not vals else vals[0] if len(vals) == 1 else vals


def validate(raw, lang: str = "en") -> dict:
    """A clean definition (every field present, ``id``/``owner`` left to the caller), or ReportError."""
    if not isinstance(raw, dict):
        raise ReportError(400, "not_object", None, lang)
    for k in raw:
        if k not in FIELDS:
            raise ReportError(400, "unknown_field", str(k)[:60], lang, str(k)[:60])
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > NAME_MAX:
        raise ReportError(400, "name", "name", lang)
    kpis = raw.get("kpis")
    if not isinstance(kpis, list) or not kpis or not all(isinstance(k, str) for k in kpis):
        raise ReportError(400, "kpis", "kpis", lang)
    for k in kpis:
        if k not in KPI_KEYS:
            raise ReportError(400, "kpi_unknown", "kpis", lang, k[:60])
    kpis = list(dict.fromkeys(kpis))
    group_by = raw.get("group_by")
    if group_by in ("",):
        group_by = None
    if group_by is not None and group_by not in GROUP_BY:
        raise ReportError(400, "group_by", "group_by", lang)
    filters_in = raw.get("filters")
    if filters_in is None:
        filters_in = {}
    if not isinstance(filters_in, dict):
        raise ReportError(400, "filters", "filters", lang)
    filters = {}
    for k, v in filters_in.items():
        if k not in FILTER_KEYS:
            raise ReportError(400, "unknown_field", f"filters.{str(k)[:40]}", lang, str(k)[:40])
        vals = _ids(v, f"filters.{k}", lang)
        if k == "priority" and any(p not in PRIORITIES for p in vals):
            raise ReportError(400, "priority", "filters.priority", lang)
        if vals:
            filters[k] = _one_or_list(vals)
    period = _period(raw.get("period"), lang)
    compare = raw.get("compare")
    if compare in ("",):
        compare = None
    if compare is not None and compare not in COMPARE:
        raise ReportError(400, "compare", "compare", lang)
    chart = raw.get("chart", "table")
    if chart in (None, ""):
        chart = "table"
    if chart not in CHARTS:
        raise ReportError(400, "chart", "chart", lang)
    share = _share(raw.get("share"), lang)
    return {
        "name": name.strip(),
        "kpis": kpis,
        "group_by": group_by,
        "filters": filters,
        "period": period,
        "compare": compare,
        "chart": chart,
        "share": share,
    }


def _period(p, lang: str) -> dict:
    if p is None:
        return {"preset": "last_month"}
    if not isinstance(p, dict):
        raise ReportError(400, "period", "period", lang)
    if "preset" in p:
        if set(p) != {"preset"}:
            raise ReportError(400, "period", "period", lang)
        if p["preset"] not in PRESETS:
            raise ReportError(400, "preset", "period.preset", lang, str(p["preset"])[:40])
        return {"preset": p["preset"]}
    if set(p) != {"from", "to"}:
        raise ReportError(400, "period", "period", lang)
    try:
        a = date.fromisoformat(p["from"]) if isinstance(p["from"], str) and _DATE.match(p["from"]) else None
        b = date.fromisoformat(p["to"]) if isinstance(p["to"], str) and _DATE.match(p["to"]) else None
    except ValueError:
        a = b = None
    if a is None:
        raise ReportError(400, "period", "period.from", lang)
    if b is None:
        raise ReportError(400, "period", "period.to", lang)
    if b <= a or (b - a).days > 3 * 366:
        raise ReportError(400, "period", "period.to", lang)
    return {"from": a.isoformat(), "to": b.isoformat()}


def _share(s, lang: str) -> dict:
    if s is None:
        s = {}
    if not isinstance(s, dict):
        raise ReportError(400, "share", "share", lang)
    for k in s:
        if k not in ("roles", "departments", "users"):
            raise ReportError(400, "unknown_field", f"share.{str(k)[:40]}", lang, str(k)[:40])
    roles = s.get("roles") or []
    if not isinstance(roles, list) or any(r not in ROLES for r in roles):
        raise ReportError(400, "share_roles", "share.roles", lang)
    return {
        "roles": [r for r in ROLES if r in roles],
        "departments": _ids(s.get("departments"), "share.departments", lang),
        "users": _ids(s.get("users"), "share.users", lang),
    }


def _vals(v) -> list:
    return [] if v is None else list(v) if isinstance(v, list) else [v]


def check_author(db, viewer: Viewer, definition: dict) -> None:
    """May ``viewer`` save this definition? Admins: anything; heads: filters and sharing inside their
    departments; agents: never."""
    lang = viewer.lang
    if viewer.role == ADMIN:
        return
    if viewer.role != HEAD:
        raise ReportError(403, "forbidden_create", None, lang)
    if not viewer.tree:
        raise ReportError(403, "no_departments", None, lang)
    tree = set(viewer.tree)
    f, s = definition["filters"], definition["share"]
    if any(d not in tree for d in _vals(f.get("department"))):
        raise ReportError(403, "outside_departments", "filters.department", lang)
    if any(d not in tree for d in s["departments"]):
        raise ReportError(403, "outside_departments", "share.departments", lang)
    people = members(db, viewer.portal, viewer.tree) | {viewer.user_id}
    if any(a not in people for a in _vals(f.get("agent"))):
        raise ReportError(403, "outside_users", "filters.agent", lang)
    if any(u not in people for u in s["users"]):
        raise ReportError(403, "outside_users", "share.users", lang)


def pin_scope(viewer: Viewer, definition: dict) -> dict:
    """A head's report without a department filter covers the departments they head (so an admin
    opening it sees what its author meant, not the whole portal)."""
    if viewer.role == HEAD and not definition["filters"].get("department"):
        roots = list(viewer.headed or viewer.tree[:1])
        definition = dict(definition, filters=dict(definition["filters"], department=_one_or_list(roots)))
    return definition


# --- the store ---------------------------------------------------------------------------------


def _row_to_def(row: dict) -> dict:
    d = json.loads(row["definition"])
    d["id"], d["owner"] = row["id"], row["owner"]
    return {k: d.get(k) for k in FIELDS}


def _rows(db, portal: str) -> list[dict]:
    return list(db.query("select * from saved_reports where portal = ? order by name collate nocase, id", [portal]))


def _get_row(db, portal: str, report_id: str) -> dict | None:
    if not isinstance(report_id, str) or not _ID.match(report_id):
        return None
    rows = list(db.query("select * from saved_reports where portal = ? and id = ?", [portal, report_id]))
    return rows[0] if rows else None


def can_open(db, viewer: Viewer, row: dict, _parents: dict | None = None) -> bool:
    if row["portal"] != viewer.portal:
        return False
    if viewer.role == ADMIN or row["owner"] == viewer.user_id:
        return True
    share = json.loads(row["definition"]).get("share") or {}
    if viewer.user_id in (share.get("users") or []):
        return True
    mine = set(viewer.departments) | set(viewer.tree)
    reach = set(json.loads(row["owner_tree"] or "[]")) if row["owner_role"] == HEAD else None
    if viewer.role in (share.get("roles") or []) and (reach is None or mine & reach):
        return True
    deps = share.get("departments") or []
    if deps and mine:
        parents = _parents if _parents is not None else department_parents(db, viewer.portal)
        if mine & set(subtree(parents, deps)):
            return True
    return False


def list_for(db, viewer: Viewer) -> list[dict]:
    parents = department_parents(db, viewer.portal)
    return [_row_to_def(r) for r in _rows(db, viewer.portal) if can_open(db, viewer, r, parents)]


def get_for(db, viewer: Viewer, report_id: str) -> dict:
    """The definition, or 404 for a report that does not exist *or* that this viewer may not open
    (so ids of other people's reports reveal nothing)."""
    row = _get_row(db, viewer.portal, report_id)
    if row is None or not can_open(db, viewer, row):
        raise ReportError(404, "not_found", "id", viewer.lang)
    return _row_to_def(row)


def create(db, viewer: Viewer, raw) -> dict:
    d = validate(raw, viewer.lang)
    check_author(db, viewer, d)
    d = pin_scope(viewer, d)
    count = db.execute("select count(*) from saved_reports where portal = ?", [viewer.portal]).fetchone()[0]
    if count >= MAX_REPORTS:
        raise ReportError(409, "too_many", None, viewer.lang)
    rid = "r" + secrets.token_hex(6)
    now = time.time()
    with db.conn:
        db["saved_reports"].insert(
            {
                "portal": viewer.portal,
                "id": rid,
                "owner": viewer.user_id,
                "owner_role": viewer.role,
                "owner_tree": json.dumps(list(viewer.tree)),
                "name": d["name"],
                "definition": json.dumps(d, ensure_ascii=False),
                "created_at": now,
                "updated_at": now,
            }
        )
    return dict({k: d.get(k) for k in FIELDS}, id=rid, owner=viewer.user_id)


def _editable(db, viewer: Viewer, report_id: str) -> dict:
    row = _get_row(db, viewer.portal, report_id)
    if row is None or not can_open(db, viewer, row):
        raise ReportError(404, "not_found", "id", viewer.lang)
    if viewer.role != ADMIN and row["owner"] != viewer.user_id:
        raise ReportError(403, "forbidden_edit", None, viewer.lang)
    return row


def update(db, viewer: Viewer, report_id: str, raw) -> dict:
    row = _editable(db, viewer, report_id)
    if isinstance(raw, dict):
        raw = {k: v for k, v in raw.items() if k not in ("id", "owner")}
    d = validate(raw, viewer.lang)
    if row["owner"] == viewer.user_id:
        check_author(db, viewer, d)
        d = pin_scope(viewer, d)
    # an admin editing someone's report: the admin's rights apply (admins may share with anyone);
    # the owner editing: their role and departments now bound whom it reaches
    role, tree = row["owner_role"], row["owner_tree"]
    if row["owner"] == viewer.user_id:
        role, tree = viewer.role, json.dumps(list(viewer.tree))
    with db.conn:
        db.execute(
            "update saved_reports set name = ?, definition = ?, owner_role = ?, owner_tree = ?, updated_at = ?"
            " where portal = ? and id = ?",
            [d["name"], json.dumps(d, ensure_ascii=False), role, tree, time.time(), viewer.portal, report_id],
        )
    return dict({k: d.get(k) for k in FIELDS}, id=report_id, owner=row["owner"])


def delete(db, viewer: Viewer, report_id: str) -> None:
    _editable(db, viewer, report_id)
    with db.conn:
        db.execute("delete from saved_reports where portal = ? and id = ?", [viewer.portal, report_id])


def owner_of(db, portal: str, report_id: str) -> dict | None:
    """The stored row (portal, id, owner, owner_role, ...) for the web layer's pages; no access check."""
    return _get_row(db, portal, report_id)


def data_scope(db, viewer: Viewer, definition: dict):
    """The filters and grouping to compute a saved report with for this viewer: the definition's,
    cut to the viewer's role by ``viewer.scope_query`` (admins: as saved; heads: the part inside
    their departments; agents: their own tickets only). ``ReportError(403, "no_slice")`` when
    nothing of the report is theirs to see."""
    from .viewer import ViewerError, scope_query

    lang = viewer.lang
    f = dict(definition.get("filters") or {})
    group_by = definition.get("group_by")
    if viewer.role == HEAD:
        tree = set(viewer.tree)
        deps = _vals(f.get("department"))
        if deps:
            parents = department_parents(db, viewer.portal)
            keep = [d for d in deps if d in tree]
            for d in deps:
                if d not in tree:
                    below = set(subtree(parents, [d]))
                    keep += [r for r in (viewer.headed or viewer.tree[:1]) if r in below]
            keep = sorted(set(keep))
            if not keep:
                raise ReportError(403, "no_slice", "filters.department", lang)
            f["department"] = _one_or_list(keep)
        agents = _vals(f.get("agent"))
        if agents:
            people = members(db, viewer.portal, viewer.tree) | {viewer.user_id}
            keep = [a for a in agents if a in people]
            if not keep:
                raise ReportError(403, "no_slice", "filters.agent", lang)
            f["agent"] = _one_or_list(keep)
    elif viewer.role == AGENT:
        agents = _vals(f.get("agent"))
        if agents and viewer.user_id not in agents:
            raise ReportError(403, "no_slice", "filters.agent", lang)
        deps = _vals(f.get("department"))
        if deps:
            first = viewer.departments[0] if viewer.departments else None
            if first is None or first not in set(subtree(department_parents(db, viewer.portal), deps)):
                raise ReportError(403, "no_slice", "filters.department", lang)
        f["department"], f["agent"] = None, viewer.user_id
    try:
        return scope_query(viewer, f, group_by, db=db)
    except ViewerError as exc:
        raise ReportError(exc.status, "no_slice", None, lang, exc.message) from None


# --- pinning and digests (kept beside the definition, not in it) -------------------------------

DIGEST_KINDS = ("daily", "weekly", "monthly")


def set_pinned(db, viewer: Viewer, report_id: str, pinned: bool) -> None:
    _editable(db, viewer, report_id)
    with db.conn:
        db.execute(
            "update saved_reports set pinned = ? where portal = ? and id = ?",
            [1 if pinned else 0, viewer.portal, report_id],
        )


def set_digest(db, viewer: Viewer, report_id: str, kind: str | None) -> None:
    if kind in ("", None):
        kind = None
    elif kind not in DIGEST_KINDS:
        raise ReportError(400, "digest", "digest", viewer.lang)
    _editable(db, viewer, report_id)
    with db.conn:
        db.execute("update saved_reports set digest = ? where portal = ? and id = ?", [kind, viewer.portal, report_id])


def extras(db, portal: str, report_id: str) -> dict:
    """``{"pinned": bool, "digest": kind or None}`` of a report."""
    row = _get_row(db, portal, report_id)
    return {"pinned": bool(row and row.get("pinned")), "digest": (row or {}).get("digest")}


def pinned_for(db, viewer: Viewer) -> list[dict]:
    """Pinned reports this viewer may open (the dashboard shows them)."""
    parents = department_parents(db, viewer.portal)
    rows = db.query(
        "select * from saved_reports where portal = ? and pinned = 1 order by name collate nocase, id", [viewer.portal]
    )
    return [_row_to_def(r) for r in rows if can_open(db, viewer, r, parents)]


def digest_reports(db, portal: str, kind: str) -> list[dict]:
    """Saved reports sent with the ``kind`` digests, as ``(definition, owner_role)`` rows."""
    return [
        dict(_row_to_def(r), owner_role=r["owner_role"], owner_tree=json.loads(r["owner_tree"] or "[]"))
        for r in db.query(
            "select * from saved_reports where portal = ? and digest = ? order by name, id", [portal, kind]
        )
    ]


def digest_sections(env, kind: str, period) -> list[dict]:
    """The saved reports sent with the portal's ``kind`` digest, each as its totals for the digest's
    period (the definition's KPIs and filters; the digest's period replaces the saved one):
    ``[{"id", "name", "kpis": [{"key", "value", "previous", "delta"}]}]``."""
    from .kpi.report import build_report

    if "saved_reports" not in env.db.table_names():
        return []
    out = []
    for d in digest_reports(env.db, env.portal, kind):
        try:
            rep = build_report(env.db, env.portal, period.start, period.end, filters=d["filters"] or None, env=env)
        except ValueError:
            continue  # a filter the store no longer knows: skip, never break the digest
        out.append(
            {
                "id": d["id"],
                "name": d["name"],
                "kpis": [
                    {
                        "key": k,
                        "value": rep["kpis"][k]["value"],
                        "previous": rep["kpis"][k]["previous"],
                        "delta": rep["kpis"][k]["delta"],
                    }
                    for k in d["kpis"]
                    if k not in ("top_agents", "resolved_by_priority")
                ],
            }
        )
    return out
