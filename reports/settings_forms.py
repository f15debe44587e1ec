"""The admin settings as forms: what each form shows (names from the portal, units people use) and
how a posted form becomes new setting values, checked field by field in the admin's language.

Each ``parse_*`` takes the posted form (a MultiDict) and returns ``(values, lines)``: the settings
keys to write (b24desk.settings_change.apply writes only those that differ) and one human line per
change for the history; or raises :class:`FormErrors` mapping a field name to its message, and then
nothing is written. Internal keys (selectors, stage ids, KPI keys) travel only as form values.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta
from zoneinfo import available_timezones

from babel.dates import format_date, parse_date

from b24desk.kpi import ccei as kccei
from b24desk.kpi import targets as ktargets
from b24desk.kpi.load import load_people
from b24desk.overrides import CONFIG_SETTING, effective_config
from b24desk.push import data as digest
from b24desk.settings_change import config_with
from b24desk.sources import SelectorError, configured_selectors, parse_selector
from b24desk.store import get_setting
from b24desk.text.i18n import kpi_label, lang_index
from b24desk.text.present import CARD_ORDER, kind

PRIOS = ("critical", "high", "normal", "low")
BUCKETS = ("work", "wait_customer", "wait_third_party", "done")
WEEKDAYS = (1, 2, 3, 4, 5, 6, 7)
TASK_STATUSES = (
    ("2", "Ждёт выполнения", "Pending"),
    ("3", "Выполняется", "In progress"),
    ("4", "Ждёт контроля", "Awaiting control"),
    ("5", "Завершена", "Completed"),
    ("6", "Отложена", "Deferred"),
)
# KPIs a target makes sense for (numbers with a direction), in the dashboard's order.
TARGET_KPIS = tuple(
    k for k in CARD_ORDER if k not in ("tickets_total", "resolved_count", "backlog", "overdue_count", "tickets_per_day")
)
HM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
TIMEZONES = sorted(
    z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/", "posix/", "right/"))
)

M = {  # (ru, en)
    "err_fix": ("Настройки не сохранены: исправьте отмеченные поля", "Nothing was saved: fix the marked fields"),
    "err_number": ("Введите число", "Enter a number"),
    "err_whole": ("Введите целое число", "Enter a whole number"),
    "err_range": ("Допустимо от {lo} до {hi}", "Allowed: {lo} to {hi}"),
    "err_minutes": ("Минуты — от 0 до 59", "Minutes must be 0 to 59"),
    "err_sla_zero": (
        "Срок должен быть больше нуля; оставьте оба поля пустыми, чтобы убрать срок",
        "The time must be above zero; leave both boxes empty to remove it",
    ),
    "err_time": ("Время в формате ЧЧ:ММ, например 09:00", "Time as HH:MM, e.g. 09:00"),
    "err_end": ("Конец дня должен быть позже начала", "The day must end after it starts"),
    "err_days": ("Отметьте хотя бы один рабочий день", "Tick at least one work day"),
    "err_date": ("Дата в формате ДД.ММ.ГГГГ, например 31.12.2026", "A date like 2026-12-31"),
    "err_tz": ("Выберите часовой пояс из списка", "Pick a time zone from the list"),
    "err_pick": ("Выберите значение из списка", "Pick a value from the list"),
    "err_source_none": ("Отметьте хотя бы один источник", "Tick at least one source"),
    "err_source_both": (
        "«{all}» уже включает «{one}»: отметьте что-то одно",
        "“{all}” already includes “{one}”: tick one of them",
    ),
    "err_pv_none": (
        "Сопоставьте хотя бы одно значение поля с приоритетом",
        "Map at least one value of the field to a priority",
    ),
    "err_person": ("Этого сотрудника нет среди пользователей портала", "Not a user of the portal"),
    "err_dep": ("Такого отдела нет в структуре компании", "Not a department of the company"),
    "err_who": ("Выберите отдел или сотрудника", "Pick a department or an employee"),
    "err_percent": ("Процент — от 0 до 100", "A percent from 0 to 100"),
    "err_period": ("Месяц в формате ГГГГ-ММ, например 2026-10", "A month like 2026-10"),
    "err_file": (
        "Выберите файл настроек (.json), выгруженный из b24desk",
        "Choose a settings file (.json) exported from b24desk",
    ),
    "err_chat": (
        "Чат — chatNNN или номер сотрудника; пусто — чат приложения",
        "A chat is chatNNN or an employee's number; empty = the app's own chat",
    ),
    "err_recipients": (
        "Выберите хотя бы одного получателя или выключите рассылку",
        "Pick at least one recipient or turn the pushes off",
    ),
}


class FormErrors(ValueError):
    """Field name -> message, in the admin's language; nothing was written."""

    def __init__(self, errors: dict):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def msg(key: str, lang: str, **kw) -> str:
    return M[key][lang_index(lang)].format(**kw)


def _l(lang: str, ru: str, en: str) -> str:
    return (ru, en)[lang_index(lang)]


def _getlist(form, name: str) -> list[str]:
    getlist = getattr(form, "getlist", None)
    if getlist:
        return [v for v in getlist(name) if v != ""]
    v = form.get(name)
    return [x for x in (v if isinstance(v, list) else [v]) if x not in (None, "")]


def prio_label(p: str, lang: str) -> str:
    return {
        "critical": _l(lang, "Критический", "Critical"),
        "high": _l(lang, "Высокий", "High"),
        "normal": _l(lang, "Обычный", "Normal"),
        "low": _l(lang, "Низкий", "Low"),
    }[p]


def bucket_label(b: str, lang: str) -> str:
    return {
        "work": _l(lang, "в работе (ждёт клиент)", "in progress (customer waits)"),
        "wait_customer": _l(lang, "ждём клиента", "waiting for the customer"),
        "wait_third_party": _l(lang, "ждём третью сторону", "waiting for a third party"),
        "done": _l(lang, "завершено", "done"),
        "": _l(lang, "по смыслу стадии", "by the stage's meaning"),
    }[b]


def weekday_label(d: int, lang: str) -> str:
    return (("Пн", "Вт", "Ср", "Чт", "Пт", "Сб", "Вс"), ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))[
        lang_index(lang)
    ][d - 1]


def fmt_hm(seconds, lang: str) -> str:
    if seconds is None:
        return "—"
    h, m = divmod(int(seconds) // 60, 60)
    return _l(lang, f"{h} ч {m:02d} мин", f"{h} h {m:02d} min")


# --- units of targets ----------------------------------------------------------------------------


def unit(kpi: str, lang: str) -> str:
    k = kind(kpi)
    if k == "duration":
        return _l(lang, "мин", "min")
    if k == "share":
        return "%"
    if kpi == "nps":
        return _l(lang, "пунктов", "points")
    if kpi in ("tickets_per_agent_day",):
        return _l(lang, "заявок в день", "tickets a day")
    if kpi in ("contacts_per_customer", "interactions_per_ticket", "transfers_per_ticket"):
        return (
            _l(lang, "на клиента", "per customer")
            if kpi == "contacts_per_customer"
            else _l(lang, "на заявку", "per ticket")
        )
    return ""


def to_display(kpi: str, value):
    if value is None:
        return ""
    k = kind(kpi)
    v = value / 60 if k == "duration" else value * 100 if k == "share" else value
    return f"{round(v, 2):g}"


def from_display(kpi: str, text: str):
    v = float(text.replace(",", ".").replace(" ", ""))
    if not math.isfinite(v) or abs(v) > 1e12:
        raise ValueError("not a usable number")
    k = kind(kpi)
    return round(v * 60) if k == "duration" else round(v / 100, 6) if k == "share" else v


def _number(text: str, field: str, errors: dict, lang: str, lo=None, hi=None, whole=False):
    raw = (text or "").strip().replace(",", ".").replace(" ", "")
    try:
        v = int(raw) if whole else float(raw)
        if not math.isfinite(v):
            raise ValueError("not finite")
    except ValueError:
        errors[field] = msg("err_whole" if whole else "err_number", lang)
        return None
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        errors[field] = msg("err_range", lang, lo=lo, hi=hi if hi is not None else "∞")
        return None
    return v


# --- the portal's people -------------------------------------------------------------------------


def people(db, portal: str) -> dict:
    users, deps = load_people(db, portal)
    user_rows = sorted(
        (
            {"id": u, "name": d["label"], "detail": ", ".join(deps[x]["name"] for x in d["departments"] if x in deps)}
            for u, d in users.items()
            if d["active"] in (None, 1) and d["departments"]
        ),
        key=lambda r: r["name"].lower(),
    )
    dep_rows = sorted(
        (
            {"id": k, "name": v["name"], "detail": deps[v["parent"]]["name"] if v["parent"] in deps else ""}
            for k, v in deps.items()
        ),
        key=lambda r: r["name"].lower(),
    )
    return {
        "users": user_rows,
        "departments": dep_rows,
        "user_names": {u: d["label"] for u, d in users.items()},
        "dep_names": {k: v["name"] for k, v in deps.items()},
    }


def search_people(db, portal: str, kind_: str, q: str, limit: int = 20) -> list[dict]:
    rows = people(db, portal)["departments" if kind_ == "department" else "users"]
    q = (q or "").strip().lower()
    return [r for r in rows if not q or q in r["name"].lower() or q in r["detail"].lower()][:limit]


# --- sources -------------------------------------------------------------------------------------


def source_options(catalog: dict, lang: str) -> list[dict]:
    """The sources an admin can tick, grouped; ``value`` is the selector (never shown)."""
    groups = [
        {
            "title": _l(lang, "Задачи", "Tasks"),
            "items": [{"value": "tasks", "label": _l(lang, "Все задачи", "All tasks")}]
            + [
                {
                    "value": f"tasks:group={g['id']}",
                    "label": _l(lang, "Группа «{}»", "Workgroup “{}”").format(g["name"]),
                }
                for g in catalog.get("groups") or []
            ],
        }
    ]
    crm = catalog.get("crm") or {}
    deal = crm.get("2") or {}
    groups.append(
        {
            "title": _l(lang, "Сделки", "Deals"),
            "items": [{"value": "deals", "label": _l(lang, "Все воронки сделок", "Every deal pipeline")}]
            + [
                {
                    "value": f"deals:category={c['id']}",
                    "label": _l(lang, "Воронка «{}»", "Pipeline “{}”").format(c["name"]),
                }
                for c in deal.get("categories") or []
            ],
        }
    )
    for t in catalog.get("types") or []:
        entry = crm.get(str(t["etid"])) or {}
        groups.append(
            {
                "title": t["name"],
                "items": [{"value": f"crm:{t['etid']}", "label": _l(lang, "Все воронки", "Every pipeline")}]
                + [
                    {
                        "value": f"crm:{t['etid']}:category={c['id']}",
                        "label": _l(lang, "Воронка «{}»", "Pipeline “{}”").format(c["name"]),
                    }
                    for c in entry.get("categories") or []
                ],
            }
        )
    groups.append(
        {
            "title": _l(lang, "Открытые линии", "Open lines"),
            "items": [{"value": "openlines", "label": _l(lang, "Все открытые линии", "Every open line")}]
            + [
                {"value": f"openlines:line={x['id']}", "label": _l(lang, "Линия «{}»", "Line “{}”").format(x["name"])}
                for x in catalog.get("lines") or []
            ],
        }
    )
    return groups


def source_label(selector: str, catalog: dict, lang: str) -> str:
    for g in source_options(catalog, lang):
        for it in g["items"]:
            if it["value"] == selector:
                return it["label"] if g["title"] in it["label"] else f"{g['title']}: {it['label']}"
    return _l(lang, "Источник", "Source") + f" {selector}"


def _covers(a: str, b: str) -> bool:
    """Selector ``a`` (every pipeline / line / task) already includes ``b``."""
    return b != a and b.startswith(a + ":")


def parse_sources(form, db, portal: str, base: dict, catalog: dict, lang: str):
    eff = effective_config(db, portal, base)
    current = eff.get("sources") or []
    offered = {it["value"] for g in source_options(catalog, lang) for it in g["items"]}
    picked, errors = [], {}
    for v in _getlist(form, "src"):
        try:
            canon = parse_selector(v).raw
        except SelectorError:
            errors["src"] = msg("err_pick", lang)
            continue
        if canon not in offered and canon not in configured_selectors(eff):
            errors["src"] = msg("err_pick", lang)
        elif canon not in picked:
            picked.append(canon)
    if not picked and not errors:
        errors["src"] = msg("err_source_none", lang)
    for a in picked:
        for b in picked:
            if _covers(a, b):
                errors["src"] = msg(
                    "err_source_both", lang, all=source_label(a, catalog, lang), one=source_label(b, catalog, lang)
                )
    if errors:
        raise FormErrors(errors)
    tables = {}
    for entry in current:
        sel = entry.get("select") if isinstance(entry, dict) else entry
        try:
            tables[parse_selector(str(sel)).raw] = entry
        except SelectorError:
            continue
    new = [tables.get(s, s) for s in picked]
    old_sel = list(tables)
    lines = [
        _l(lang, "Источник добавлен: ", "Source added: ") + source_label(s, catalog, lang)
        for s in picked
        if s not in old_sel
    ]
    lines += [
        _l(lang, "Источник убран: ", "Source removed: ") + source_label(s, catalog, lang)
        for s in old_sel
        if s not in picked
    ]
    return _config_values(db, portal, base, {"sources": new}), lines


def _config_values(db, portal, base, sections: dict) -> dict:
    """The ``config`` setting with these sections, or {} when each equals what is in force."""
    eff = effective_config(db, portal, base)
    changed = {k: v for k, v in sections.items() if eff.get(k) != v}
    if not changed:
        return {}
    return {CONFIG_SETTING: config_with(db, portal, changed)}


# --- field mapping, escalation and status buckets per source -------------------------------------


def crm_sources(eff: dict) -> list[tuple[str, int, str | None]]:
    out = []
    for s in configured_selectors(eff):
        try:
            sel = parse_selector(s)
        except SelectorError:
            continue
        if sel.kind == "crm":
            out.append((sel.raw, sel.entity_type_id, sel.param("category")))
    return out


def _stages(catalog: dict, etid: int, category: str | None) -> list[dict]:
    cats = ((catalog.get("crm") or {}).get(str(etid)) or {}).get("categories") or []
    out = []
    for c in cats:
        if category is None or c["id"] == str(category):
            out.extend(c["stages"])
    return out


def _fields(catalog: dict, etid: int) -> list[dict]:
    return ((catalog.get("crm") or {}).get(str(etid)) or {}).get("fields") or []


def mapping_view(db, portal: str, base: dict, catalog: dict, lang: str) -> list[dict]:
    eff = effective_config(db, portal, base)
    tables = {}
    for entry in eff.get("sources") or []:
        if isinstance(entry, dict) and entry.get("select"):
            try:
                tables[parse_selector(entry["select"]).raw] = entry
            except SelectorError:
                pass
    buckets = eff.get("status_buckets") or {}
    out = []
    for i, (sel, etid, cat) in enumerate(crm_sources(eff)):
        t = tables.get(sel) or {}
        fields = _fields(catalog, etid)
        key = f"crm:{etid}"
        stages = [
            {
                **s,
                "bucket": (buckets.get(key) or {}).get(s["id"], ""),
                "escalation": s["id"] in (t.get("escalation_stages") or []),
            }
            for s in _stages(catalog, etid, cat)
        ]
        out.append(
            {
                "i": i,
                "select": sel,
                "label": source_label(sel, catalog, lang),
                "fields": fields,
                "list_fields": [f for f in fields if f["values"]],
                "priority": t.get("priority") or "",
                "rating": t.get("rating") or "",
                "deadline": t.get("deadline") or "",
                "type": t.get("type") or "",
                "pv": {str(k): v for k, v in (t.get("priority_values") or {}).items()},
                "stages": stages,
                "bucket_key": key,
            }
        )
    return out


def task_buckets_view(eff: dict, lang: str) -> list[dict] | None:
    if not any(s.split(":")[0] == "tasks" for s in configured_selectors(eff)):
        return None
    from b24desk.kpi.engine import DEFAULT_STATUS_BUCKETS

    table = {**DEFAULT_STATUS_BUCKETS["task"], **((eff.get("status_buckets") or {}).get("task") or {})}
    return [{"id": sid, "name": _l(lang, ru, en), "bucket": table.get(sid, "")} for sid, ru, en in TASK_STATUSES]


def parse_mapping(form, db, portal: str, base: dict, catalog: dict, lang: str):
    eff = effective_config(db, portal, base)
    sources = list(eff.get("sources") or [])
    errors, lines = {}, []
    buckets = {k: dict(v) for k, v in (eff.get("status_buckets") or {}).items()}
    old_buckets = {k: dict(v) for k, v in buckets.items()}
    by_sel = {sel: (etid, cat) for sel, etid, cat in crm_sources(eff)}
    n = 0
    while f"m-{n}-select" in form:
        n += 1
    for i in range(n):
        sel = form.get(f"m-{i}-select") or ""
        if sel not in by_sel:
            errors[f"m-{i}-select"] = msg("err_pick", lang)
            continue
        etid, cat = by_sel[sel]
        fields = {f["code"]: f for f in _fields(catalog, etid)}
        entry = {"select": sel}
        for idx, s in enumerate(sources):
            s_sel = s.get("select") if isinstance(s, dict) else s
            try:
                if parse_selector(str(s_sel)).raw == sel:
                    entry = dict(s) if isinstance(s, dict) else {"select": sel}
                    pos = idx
                    break
            except SelectorError:
                continue
        else:
            pos = None
        old = dict(entry)
        for role in ("priority", "rating", "deadline", "type"):
            code = (form.get(f"m-{i}-{role}") or "").strip()
            if code and fields and code not in fields:
                errors[f"m-{i}-{role}"] = msg("err_pick", lang)
            elif code:
                entry[role] = code
            else:
                entry.pop(role, None)
        pv = {}
        if entry.get("priority") and entry["priority"] in fields:
            for v in fields[entry["priority"]]["values"]:
                p = form.get(f"m-{i}-pv-{entry['priority']}-{v['id']}") or ""
                if p and p not in PRIOS:
                    errors[f"m-{i}-priority"] = msg("err_pick", lang)
                elif p:
                    pv[v["id"]] = p
            if fields[entry["priority"]]["values"] and not pv:
                errors[f"m-{i}-priority"] = msg("err_pv_none", lang)
        if pv:
            entry["priority_values"] = pv
        else:
            entry.pop("priority_values", None)
        stage_ids = {s["id"]: s for s in _stages(catalog, etid, cat)}
        esc = _getlist(form, f"m-{i}-esc")
        if any(s not in stage_ids for s in esc):
            errors[f"m-{i}-esc"] = msg("err_pick", lang)
        elif esc or entry.get("escalation_stages"):
            entry["escalation_stages"] = esc
        if not entry.get("escalation_stages"):
            entry.pop("escalation_stages", None)
        key = f"crm:{etid}"
        for sid, st in stage_ids.items():
            b = form.get(f"b-{i}-{sid}")
            if b is None:
                continue
            if b and b not in BUCKETS:
                errors[f"b-{i}-{sid}"] = msg("err_pick", lang)
            elif b:
                buckets.setdefault(key, {})[sid] = b
            else:
                (buckets.get(key) or {}).pop(sid, None)
        label = source_label(sel, catalog, lang)
        names = {c: f["name"] for c, f in fields.items()}
        for role, ru, en in (
            ("priority", "поле приоритета", "priority field"),
            ("rating", "поле оценки", "rating field"),
            ("deadline", "поле срока", "deadline field"),
            ("type", "поле типа", "type field"),
        ):
            if old.get(role) != entry.get(role):
                lines.append(
                    f"{label}: {_l(lang, ru, en)}: {names.get(old.get(role), old.get(role) or '—')} → "
                    f"{names.get(entry.get(role), entry.get(role) or '—')}"
                )
        if old.get("priority_values") != entry.get("priority_values") and entry.get("priority") in fields:
            vals = {v["id"]: v["name"] for v in fields[entry["priority"]]["values"]}
            lines.append(
                f"{label}: "
                + _l(lang, "значения приоритета", "priority values")
                + " — "
                + ", ".join(
                    f"{vals.get(k, k)} = {prio_label(p, lang)}" for k, p in (entry.get("priority_values") or {}).items()
                )
            )
        if sorted(old.get("escalation_stages") or []) != sorted(entry.get("escalation_stages") or []):
            lines.append(
                f"{label}: "
                + _l(lang, "стадии эскалации", "escalation stages")
                + " — "
                + (", ".join(stage_ids[s]["name"] for s in entry.get("escalation_stages") or []) or "—")
            )
        new_entry = entry if set(entry) != {"select"} else sel
        if pos is None:
            sources.append(new_entry)
        else:
            sources[pos] = new_entry
    for sid, _ru, _en in TASK_STATUSES:
        b = form.get(f"tb-{sid}")
        if b is None:
            continue
        if b and b not in BUCKETS:
            errors[f"tb-{sid}"] = msg("err_pick", lang)
        elif b:
            buckets.setdefault("task", {})[sid] = b
        else:
            (buckets.get("task") or {}).pop(sid, None)
    if errors:
        raise FormErrors(errors)
    names = {sid: _l(lang, ru, en) for sid, ru, en in TASK_STATUSES}  # stage / status id -> its name
    for entry in (catalog.get("crm") or {}).values():
        for c in entry.get("categories") or []:
            names.update({st["id"]: st["name"] for st in c["stages"]})
    for key in sorted(set(buckets) | set(old_buckets)):
        new_t, old_t = buckets.get(key) or {}, old_buckets.get(key) or {}
        changed = [sid for sid in sorted(set(new_t) | set(old_t)) if new_t.get(sid) != old_t.get(sid)]
        if changed:
            lines.append(
                _l(lang, "Чьё время: ", "Whose time: ")
                + ", ".join(f"{names.get(sid, '?')} → {bucket_label(new_t.get(sid, ''), lang)}" for sid in changed)
            )
    buckets = {k: v for k, v in buckets.items() if v}
    return _config_values(db, portal, base, {"sources": sources, "status_buckets": buckets}), lines


# --- SLA -----------------------------------------------------------------------------------------

SLA_KEYS = {"frt": "first_response_business_seconds", "res": "resolution_business_seconds"}


def sla_view(eff: dict) -> dict:
    sla = eff.get("sla") or {}
    rows = []
    for p in PRIOS:
        row = {"p": p}
        for k, key in SLA_KEYS.items():
            secs = (sla.get(key) or {}).get(p)
            row[k] = None if secs is None else divmod(int(secs) // 60, 60)
        rows.append(row)
    return {"rows": rows, "mode": sla.get("mode") or "business"}


def parse_sla(form, db, portal: str, base: dict, lang: str):
    eff = effective_config(db, portal, base)
    old = eff.get("sla") or {}
    errors, new = {}, {"mode": form.get("sla-mode") or "business"}
    if new["mode"] not in ("business", "calendar"):
        errors["sla-mode"] = msg("err_pick", lang)
    for k, key in SLA_KEYS.items():
        table = {}
        for p in PRIOS:
            name = f"sla-{k}-{p}"
            h, m = (form.get(f"{name}-h") or "").strip(), (form.get(f"{name}-m") or "").strip()
            if not h and not m:
                continue
            hv = _number(h or "0", name, errors, lang, 0, 9999, whole=True)
            mv = _number(m or "0", name, errors, lang, 0, 59, whole=True)
            if name in errors:
                if mv is None and hv is not None:
                    errors[name] = msg("err_minutes", lang)
                continue
            if hv * 60 + mv <= 0:
                errors[name] = msg("err_sla_zero", lang)
                continue
            table[p] = (hv * 60 + mv) * 60
        new[key] = table
    if errors:
        raise FormErrors(errors)
    if new["mode"] == "business" and "mode" not in old:
        new.pop("mode")  # business time is the default: nothing to store
    merged = {**old, **new}
    if merged == old:
        return {}, []
    lines = []
    if (old.get("mode") or "business") != (new.get("mode") or "business"):
        lines.append(
            _l(lang, "SLA считается: ", "SLA runs on: ")
            + (
                _l(lang, "в рабочее время", "work hours")
                if new.get("mode", "business") == "business"
                else _l(lang, "круглосуточно", "round the clock")
            )
        )
    for k, key in SLA_KEYS.items():
        title = _l(lang, "Первый ответ", "First response") if k == "frt" else _l(lang, "Решение", "Resolution")
        for p in PRIOS:
            a, b = (old.get(key) or {}).get(p), new[key].get(p)
            if a != b:
                lines.append(f"SLA · {title} · {prio_label(p, lang)}: {fmt_hm(a, lang)} → {fmt_hm(b, lang)}")
    return _config_values(db, portal, base, {"sla": merged}), lines


# --- work calendar and time zone -----------------------------------------------------------------


def calendar_view(db, portal: str, eff: dict, tz_name: str) -> dict:
    cal = eff.get("calendar") or {}
    return {
        "days": [int(d) for d in cal.get("work_days") or [1, 2, 3, 4, 5]],
        "start": cal.get("work_start") or "09:00",
        "end": cal.get("work_end") or "18:00",
        "holidays": sorted(str(x) for x in cal.get("extra_holidays") or []),
        "workdays": sorted(str(x) for x in cal.get("extra_workdays") or []),
        "country": cal.get("holidays_country") or "",
        "use_portal": cal.get("use_portal_calendar", True),
        "timezone": tz_name,
        "timezones": TIMEZONES,
    }


# Dates are typed as text in the viewer's convention (31.12.2026 in Russian, 2026-12-31 in
# English), not <input type=date>, whose format follows the browser's locale, not the page's.
DATE_PATTERN = ("dd.MM.y", "y-MM-dd")
DATE_HINT = ("дд.мм.гггг", "yyyy-mm-dd")


def _locale(lang: str) -> str:
    return ("ru", "en")[lang_index(lang)]


def show_date(value, lang: str) -> str:
    """An ISO date (or a date) as the viewer writes it; anything else as it is."""
    try:
        d = value if isinstance(value, date) else date.fromisoformat(str(value))
    except ValueError:
        return str(value or "")
    return format_date(d, DATE_PATTERN[lang_index(lang)], locale=_locale(lang))


def read_date(text: str, lang: str) -> date:
    """A typed date: ISO, or the viewer's own convention (31.12.2026, 1.2.2026); ValueError if not."""
    text = (text or "").strip()
    if not re.fullmatch(r"\d{1,4}[.\-/]\d{1,2}[.\-/]\d{1,4}", text):
        raise ValueError(text)
    d = parse_date(text, locale=_locale(lang))
    if d.year < 1900:
        raise ValueError(text)
    return d


def iso_date(text: str, lang: str) -> str:
    """``read_date`` as ISO, or the text unchanged (the caller's own check then names the error)."""
    try:
        return read_date(text, lang).isoformat()
    except ValueError:
        return text


def month_options(chosen: str, lang: str, today: date | None = None, back: int = 24) -> list[tuple[str, str]]:
    """``(YYYY-MM, "октябрь 2026")`` for the last ``back`` months, newest first, and ``chosen``
    if it is older (a month picker in the viewer's language, whatever the browser's)."""
    d = (today or date.today()).replace(day=1)
    out = []
    for _ in range(back):
        out.append((d.strftime("%Y-%m"), format_date(d, "LLLL y", locale=_locale(lang))))
        d = (d.replace(day=1) - timedelta(days=1)).replace(day=1)
    if chosen and chosen not in {k for k, _ in out} and PERIOD.match(chosen):
        out.append((chosen, format_date(date.fromisoformat(chosen + "-01"), "LLLL y", locale=_locale(lang))))
    return out


def _date(text: str, field: str, errors: dict, lang: str) -> str | None:
    try:
        return read_date(text, lang).isoformat()
    except ValueError:
        errors[field] = msg("err_date", lang)
        return None


def parse_calendar(form, db, portal: str, base: dict, lang: str):
    eff = effective_config(db, portal, base)
    old = eff.get("calendar") or {}
    errors = {}
    days = []
    for d in _getlist(form, "cal-days"):
        if d.isdigit() and int(d) in WEEKDAYS:
            days.append(int(d))
        else:
            errors["cal-days"] = msg("err_pick", lang)
    if not days and "cal-days" not in errors:
        errors["cal-days"] = msg("err_days", lang)
    start, end = (form.get("cal-start") or "").strip(), (form.get("cal-end") or "").strip()
    if not HM.match(start):
        errors["cal-start"] = msg("err_time", lang)
    if not HM.match(end):
        errors["cal-end"] = msg("err_time", lang)
    elif HM.match(start) and end <= start:
        errors["cal-end"] = msg("err_end", lang)
    lists = {}
    for name, key in (("cal-hol", "extra_holidays"), ("cal-wd", "extra_workdays")):
        keep = [x for x in _getlist(form, f"{name}-keep") if _date(x, name, errors, lang)]
        add = (form.get(f"{name}-add") or "").strip()
        if add:
            d = _date(add, f"{name}-add", errors, lang)
            if d and d not in keep:
                keep.append(d)
        lists[key] = sorted(keep)
    country = form.get("cal-country") or ""
    if country not in ("", "RU"):
        errors["cal-country"] = msg("err_pick", lang)
    tz = form.get("cal-tz") or ""
    if tz not in TIMEZONES:
        errors["cal-tz"] = msg("err_tz", lang)
    if errors:
        raise FormErrors(errors)
    new = {
        **old,
        "work_days": sorted(days),
        "work_start": start,
        "work_end": end,
        **lists,
        "holidays_country": country,
        "use_portal_calendar": form.get("cal-portal") == "1",
        "timezone": tz,
    }
    lines = []
    if [int(d) for d in old.get("work_days") or []] != new["work_days"]:
        lines.append(
            _l(lang, "Рабочие дни: ", "Work days: ") + ", ".join(weekday_label(d, lang) for d in new["work_days"])
        )
    if (old.get("work_start"), old.get("work_end")) != (start, end):
        lines.append(_l(lang, "Рабочие часы: ", "Work hours: ") + f"{start}–{end}")
    for key, ru, en in (
        ("extra_holidays", "Праздничные дни", "Holidays"),
        ("extra_workdays", "Рабочие выходные", "Working weekend days"),
    ):
        if sorted(str(x) for x in old.get(key) or []) != new[key]:
            lines.append(f"{_l(lang, ru, en)}: " + (", ".join(show_date(d, lang) for d in new[key]) or "—"))
    if (old.get("holidays_country") or "") != country:
        lines.append(
            _l(lang, "Производственный календарь РФ: ", "Russian production calendar: ")
            + (_l(lang, "да", "yes") if country else _l(lang, "нет", "no"))
        )
    if old.get("use_portal_calendar", True) != new["use_portal_calendar"]:
        lines.append(
            _l(lang, "Календарь портала: ", "Portal calendar: ")
            + (_l(lang, "да", "yes") if new["use_portal_calendar"] else _l(lang, "нет", "no"))
        )
    if old.get("timezone") != tz:
        lines.append(_l(lang, "Часовой пояс: ", "Time zone: ") + tz)
    if not lines:
        return {}, []
    return _config_values(db, portal, base, {"calendar": new}), lines


# --- targets -------------------------------------------------------------------------------------


def targets_view(db, portal: str, base: dict, lang: str, ppl: dict) -> dict:
    stored = get_setting(db, portal, ktargets.TARGETS_SETTING) or {}
    eff = ktargets.resolve(base, stored)
    rows = []
    for k in TARGET_KPIS:
        spec = eff.get(k) or {}
        rows.append(
            {
                "kpi": k,
                "label": kpi_label(k, lang),
                "unit": unit(k, lang),
                "value": to_display(k, spec.get("target")),
                "direction": spec.get("direction") or "lower",
                "tolerance": f"{round((spec.get('tolerance', 0.1)) * 100, 1):g}" if spec else "10",
            }
        )
    scoped = []
    for scope, names in (("departments", ppl["dep_names"]), ("agents", ppl["user_names"])):
        for owner, table in (stored.get(scope) or {}).items():
            for k, spec in table.items():
                scoped.append(
                    {
                        "id": f"{scope}|{owner}|{k}",
                        "who": names.get(str(owner), owner),
                        "scope": _l(lang, "отдел", "department")
                        if scope == "departments"
                        else _l(lang, "сотрудник", "employee"),
                        "kpi": kpi_label(k, lang),
                        "value": to_display(k, spec.get("target")),
                        "unit": unit(k, lang),
                    }
                )
    return {"rows": rows, "scoped": scoped, "kpis": [(k, kpi_label(k, lang)) for k in TARGET_KPIS]}


def parse_targets(form, db, portal: str, base: dict, lang: str, ppl: dict):
    stored = get_setting(db, portal, ktargets.TARGETS_SETTING) or {}
    defaults = ktargets.resolve(base, {})
    eff = ktargets.resolve(base, stored)
    errors, lines = {}, []
    portal_t = dict(stored.get("portal") or {})
    for k in TARGET_KPIS:
        name = f"tg-{k}"
        if f"{name}-value" not in form:
            continue
        text = (form.get(f"{name}-value") or "").strip()
        spec = {}
        if text:
            try:
                spec["target"] = from_display(k, text)
            except ValueError:
                errors[f"{name}-value"] = msg("err_number", lang)
                continue
            if kind(k) == "share" and not 0 <= spec["target"] <= 1:
                errors[f"{name}-value"] = msg("err_percent", lang)
                continue
            if kind(k) == "duration" and spec["target"] < 0:
                errors[f"{name}-value"] = msg("err_range", lang, lo=0, hi="∞")
                continue
        else:
            spec["target"] = None
        d = form.get(f"{name}-dir") or "lower"
        if d not in ("higher", "lower"):
            errors[f"{name}-dir"] = msg("err_pick", lang)
            continue
        spec["direction"] = d
        tol = _number(form.get(f"{name}-tol") or "10", f"{name}-tol", errors, lang, 0, 100)
        if tol is None:
            continue
        spec["tolerance"] = round(tol / 100, 4)
        base_spec = defaults.get(k) or {"target": None, "direction": "lower", "tolerance": 0.1}
        diff = {
            f: v
            for f, v in spec.items()
            if base_spec.get(f) != v and not (f == "target" and v is None and k not in defaults)
        }
        before = {**base_spec, **(eff.get(k) or {})}
        if diff:
            portal_t[k] = diff
        else:
            portal_t.pop(k, None)
        no_target = before.get("target") is None and spec.get("target") is None  # nothing to judge by
        if not no_target and any(before.get(f) != spec.get(f) for f in spec):
            lines.append(
                f"{kpi_label(k, lang)}: {to_display(k, before.get('target')) or '—'} → "
                f"{to_display(k, spec.get('target')) or '—'} {unit(k, lang)}".rstrip()
                + ("" if before.get("direction") == d else f" ({'↑' if d == 'higher' else '↓'})")
            )
    scoped = {s: {o: dict(t) for o, t in (stored.get(s) or {}).items()} for s in ("departments", "agents")}
    for item in _getlist(form, "tg-del"):
        parts = item.split("|")
        if len(parts) == 3 and parts[0] in scoped and parts[2] in (scoped[parts[0]].get(parts[1]) or {}):
            scoped[parts[0]][parts[1]].pop(parts[2])
            if not scoped[parts[0]][parts[1]]:
                scoped[parts[0]].pop(parts[1])
            who = (ppl["dep_names"] if parts[0] == "departments" else ppl["user_names"]).get(parts[1], parts[1])
            lines.append(_l(lang, "Цель убрана: ", "Target removed: ") + f"{who} · {kpi_label(parts[2], lang)}")
    add_value = (form.get("tg-add-value") or "").strip()
    if add_value:
        scope = form.get("tg-add-scope") or "departments"
        who = (form.get("tg-add-dep") if scope == "departments" else form.get("tg-add-user")) or ""
        k = form.get("tg-add-kpi") or ""
        names = ppl["dep_names"] if scope == "departments" else ppl["user_names"]
        if scope not in ("departments", "agents") or who not in names:
            errors["tg-add-who"] = msg("err_who", lang)
        if k not in TARGET_KPIS:
            errors["tg-add-kpi"] = msg("err_pick", lang)
        else:
            try:
                v = from_display(k, add_value)
                if kind(k) == "share" and not 0 <= v <= 1:
                    errors["tg-add-value"] = msg("err_percent", lang)
            except ValueError:
                errors["tg-add-value"] = msg("err_number", lang)
        if not any(f.startswith("tg-add") for f in errors):
            scoped[scope].setdefault(who, {})[k] = {"target": v}
            lines.append(
                _l(lang, "Цель: ", "Target: ")
                + f"{names[who]} · {kpi_label(k, lang)} = {add_value} {unit(k, lang)}".rstrip()
            )
    if errors:
        raise FormErrors(errors)
    value = {"portal": portal_t, "departments": scoped["departments"], "agents": scoped["agents"]}
    value = {k: v for k, v in value.items() if v}
    ktargets.validate_stored(value)
    return {ktargets.TARGETS_SETTING: value or None}, lines


# --- people: bots, support departments, repeat window --------------------------------------------


def parse_people(form, db, portal: str, base: dict, lang: str, ppl: dict):
    eff = effective_config(db, portal, base)
    errors = {}
    bots = _getlist(form, "bots")
    if any(b not in ppl["user_names"] for b in bots):
        errors["bots"] = msg("err_person", lang)
    deps = _getlist(form, "deps")
    if any(d not in ppl["dep_names"] for d in deps):
        errors["deps"] = msg("err_dep", lang)
    window = _number(form.get("repeat-days") or "", "repeat-days", errors, lang, 1, 365, whole=True)
    if errors:
        raise FormErrors(errors)
    new = {
        "bot_users": sorted(set(bots), key=int),
        "support_departments": sorted(set(deps), key=int),
        "repeat_window_days": window,
    }
    lines = []
    if [str(x) for x in eff.get("bot_users") or []] != new["bot_users"]:
        lines.append(_l(lang, "Боты: ", "Bots: ") + (", ".join(ppl["user_names"][b] for b in new["bot_users"]) or "—"))
    if [str(x) for x in eff.get("support_departments") or []] != new["support_departments"]:
        lines.append(
            _l(lang, "Отделы поддержки: ", "Support departments: ")
            + (", ".join(ppl["dep_names"][d] for d in new["support_departments"]) or _l(lang, "все", "all"))
        )
    if int(eff.get("repeat_window_days", 30)) != window:
        lines.append(
            _l(lang, "Окно повторных обращений: ", "Repeat contact window: ")
            + _l(lang, f"{window} дн.", f"{window} days")
        )
    if not lines:
        return {}, []
    cur = {
        "bot_users": [str(x) for x in eff.get("bot_users") or []],
        "support_departments": [str(x) for x in eff.get("support_departments") or []],
        "repeat_window_days": int(eff.get("repeat_window_days", 30)),
    }
    return _config_values(db, portal, base, {k: v for k, v in new.items() if cur[k] != v}), lines


# --- pushes --------------------------------------------------------------------------------------


def parse_push(form, db, portal: str, lang: str, ppl: dict, kpi_keys):
    errors = {}
    for name, known, err in (
        ("push_recipients", ppl["user_names"], "err_person"),
        ("push_alert_recipients", ppl["user_names"], "err_person"),
        ("push_departments", ppl["dep_names"], "err_dep"),
    ):
        if any(x not in known for v in _getlist(form, name) for x in re.split(r"[\s,;]+", v) if x):
            errors[name] = msg(err, lang)
    for k in digest.KINDS:
        if not HM.match((form.get(f"push_{k}_time") or "").strip()):
            errors[f"push_{k}_time"] = msg("err_time", lang)
    for name, lo, hi in (("push_weekly_weekday", 1, 7), ("push_monthly_day", 1, 28)):
        _number(form.get(name) or "", name, errors, lang, lo, hi, whole=True)
    kpis = [x for v in _getlist(form, "push_alert_kpis") for x in re.split(r"[\s,;]+", v) if x]
    if any(k not in kpi_keys for k in kpis):
        errors["push_alert_kpis"] = msg("err_pick", lang)
    if errors:
        raise FormErrors(errors)
    from .portal_settings import push_from_form

    stored = get_setting(db, portal, digest.PUSH_SETTING) or {}
    before = digest.push_settings(db, portal)
    try:
        value = digest._merge(stored if isinstance(stored, dict) else {}, push_from_form(form, kpi_keys))
        digest.validate_push(value)
    except ValueError as exc:
        text = str(exc)
        field = "push_channels" if "channels" in text else "push_chat" if "dialog" in text else "push_enabled"
        raise FormErrors({field: msg("err_chat" if field == "push_chat" else "err_pick", lang)}) from None
    after = digest._merge(digest.DEFAULT_PUSH, value)
    lines = []
    if [str(x) for x in before.get("portal_recipients") or []] != [
        str(x) for x in after.get("portal_recipients") or []
    ]:
        lines.append(
            _l(lang, "Получатели сводки: ", "Digest recipients: ")
            + (", ".join(ppl["user_names"].get(str(r), str(r)) for r in after["portal_recipients"]) or "—")
        )
    if before.get("departments") != after.get("departments"):
        deps = after.get("departments")
        lines.append(
            _l(lang, "Сводки отделов: ", "Department digests: ")
            + (
                _l(lang, "все отделы с руководителем", "every department with a head")
                if deps == "all"
                else ", ".join(ppl["dep_names"].get(str(d), str(d)) for d in deps)
            )
        )
    if (before.get("alerts") or {}).get("recipients") != (after.get("alerts") or {}).get("recipients"):
        lines.append(
            _l(lang, "Получатели оповещений: ", "Alert recipients: ")
            + (
                ", ".join(ppl["user_names"].get(str(r), str(r)) for r in after["alerts"].get("recipients") or [])
                or _l(lang, "как у сводки", "as for the digest")
            )
        )
    if before.get("enabled") != after.get("enabled"):
        lines.append(
            _l(lang, "Рассылка: ", "Pushes: ")
            + (_l(lang, "вкл.", "on") if after["enabled"] else _l(lang, "выкл.", "off"))
        )
    if before.get("reports") != after.get("reports"):
        lines.append(_l(lang, "Расписание рассылки изменено", "Push schedule changed"))
    if before.get("channels") != after.get("channels"):
        lines.append(_l(lang, "Каналы рассылки изменены", "Push channels changed"))
    if before.get("alerts") != after.get("alerts"):
        lines.append(
            _l(lang, "Оповещения: ", "Alerts: ")
            + ", ".join(kpi_label(k, lang) for k in (after["alerts"].get("kpis") or []))
            if (after["alerts"].get("kpis"))
            else _l(lang, "Оповещения изменены", "Alerts changed")
        )
    if before.get("chat") != after.get("chat"):
        lines.append(_l(lang, "Чат рассылки изменён", "Push chat changed"))
    return {digest.PUSH_SETTING: value}, lines


# --- CCEI inputs ---------------------------------------------------------------------------------

CCEI_INPUTS = (
    (
        "retention_after_support",
        "Удержание клиентов, обращавшихся в поддержку",
        "Retention of customers who contacted support",
        "%",
    ),
    ("overall_retention", "Удержание всех клиентов", "Retention of all customers", "%"),
    ("feedback_quality", "Качество обратной связи (0–100)", "Feedback quality (0–100)", ""),
    ("enps", "eNPS команды (−100…100)", "Team eNPS (−100…100)", ""),
    ("turnover", "Текучесть персонала за месяц", "Staff turnover in the month", "%"),
)
PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def ccei_view(inputs: dict, lang: str) -> list[dict]:
    out = []
    for key, ru, en, u in CCEI_INPUTS:
        v = inputs.get(key)
        if key == "turnover" and isinstance(v, (int, float)):
            v = round(v * 100, 4)
        out.append(
            {
                "key": key,
                "label": _l(lang, ru, en),
                "unit": u,
                "value": "" if v in (None, "") else f"{v:g}" if isinstance(v, (int, float)) else str(v),
            }
        )
    return out


def parse_ccei(form, db, portal: str, lang: str):
    period = (form.get("period") or "").strip()
    errors = {}
    if not PERIOD.match(period):
        errors["period"] = msg("err_period", lang)
    inputs = {}
    limits = {
        "retention_after_support": (0, 1000),
        "overall_retention": (0.0001, 1000),
        "feedback_quality": (0, 100),
        "enps": (-100, 100),
        "turnover": (0, 100),
    }
    for key, ru, en, _u in CCEI_INPUTS:
        raw = (form.get(key) or "").strip()
        if raw:
            v = _number(raw, key, errors, lang, *limits[key])
            if v is not None:
                inputs[key] = round(v / 100, 6) if key == "turnover" else v
    if errors:
        raise FormErrors(errors)
    clean = kccei.validate_inputs(inputs)
    key = kccei.INPUTS_SETTING.format(period=period)
    old = get_setting(db, portal, key) or {}
    lines = [
        f"CCEI {period}: "
        + ", ".join(
            f"{_l(lang, ru, en)} = {(form.get(k) or '').strip() or '—'}"
            for k, ru, en, _u in CCEI_INPUTS
            if old.get(k) != clean.get(k)
        )
    ]
    return {key: clean}, lines if old != clean else []


def section_title(section: str, lang: str) -> str:
    return {
        "sources": _l(lang, "Источники", "Sources"),
        "mapping": _l(lang, "Поля и стадии", "Fields and stages"),
        "sla": "SLA",
        "calendar": _l(lang, "Рабочий календарь", "Work calendar"),
        "targets": _l(lang, "Цели", "Targets"),
        "people": _l(lang, "Сотрудники и отделы", "People and departments"),
        "push": _l(lang, "Рассылка", "Pushes"),
        "ccei": "CCEI",
        "import": _l(lang, "Импорт из файла", "Import from a file"),
    }.get(section, section)


def history_view(rows: list[dict], lang: str, tz) -> list[dict]:
    out = []
    for r in rows:
        when = datetime.fromtimestamp(r.get("at") or 0, tz)
        out.append(
            {
                "when": when.strftime("%d.%m.%Y %H:%M") if lang_index(lang) == 0 else when.strftime("%Y-%m-%d %H:%M"),
                "who": r.get("name") or r.get("user") or "—",
                "section": section_title(r.get("section") or "", lang),
                "changes": r.get("changes") or [],
            }
        )
    return out
