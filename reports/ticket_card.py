"""The ticket card of the detail tabs (deal, smart process, task): timeline, first response, SLA
clock, transfers, rating, for one ticket as of now.

The ticket is replayed by the engine (``engine.ticket_facts`` with the portal's context), so the
first response, transfers and the effective deadline (its own, else the SLA target for its
priority in business time) are exactly what the KPIs count.
"""

from __future__ import annotations

import time
from datetime import datetime

from b24desk.kpi.engine import ticket_facts
from b24desk.kpi.report import ReportEnv
from b24desk.model import OPEN
from b24desk.store import events_for, get_ticket
from b24desk.text.i18n import t
from b24desk.text.present import fmt_duration

from .names import Names

SOURCE_LABELS = {"task": ("Задача", "Task"), "crm:2": ("Сделка", "Deal"), "openlines": ("Открытая линия", "Open line")}
PRIORITY_FIELDS = ("priority",)


def source_label(source: str, lang: str) -> str:
    pair = SOURCE_LABELS.get(source)
    if pair:
        return pair[0 if lang == "ru" else 1]
    if source.startswith("crm:"):
        return ("Смарт-процесс " if lang == "ru" else "Smart process ") + source[4:]
    return source


def load(db, portal: str, source: str, source_id: str) -> tuple[dict | None, list[dict]]:
    row = get_ticket(db, portal, source, source_id)
    if row is None or row.get("deleted"):
        return None, []
    return row, events_for(db, portal, source, source_id)


def build(
    db,
    portal: str,
    row: dict,
    events: list[dict],
    lang: str,
    *,
    config: dict,
    origin: str | None,
    now: int | None = None,
) -> dict:
    now = int(now if now is not None else time.time())
    env = ReportEnv(db, portal, config)
    tz = env.tz
    evs = [(e["at"] or 0, e["kind"], e["actor_id"], e["field"], e["from_value"], e["to_value"]) for e in events]
    created = row["created_at"] or 0
    f = ticket_facts(row, evs, created, max(now, created) + 1, env.ctx)

    def name(uid):
        if uid in (None, "", "0"):
            return ""
        known = (env.users.get(str(uid)) or {}).get("label")
        if known:
            return known
        # a customer's key (C_5 contact, CO_3 company, an open-line user) or a user not synced
        return t("customer", lang) if not str(uid).isdigit() else f"{t('user', lang)} {uid}"

    def when(ts):
        return datetime.fromtimestamp(ts, tz).strftime("%d.%m.%Y %H:%M") if ts else "—"

    first = t("no_reply_yet", lang)
    transfers = 0
    deadline = row.get("deadline")
    state = row.get("state") or OPEN
    close_at = row.get("closed_at")
    if f is not None:
        transfers = f.transfers
        deadline = f.deadline
        state = f.state
        close_at = f.close_at
        if f.first_reply is not None:
            first = fmt_duration(max(0, f.first_reply - created), lang)
    sla = {"status": "grey", "text": t("sla_none", lang), "deadline": when(deadline) if deadline else None}
    if deadline:
        if state == OPEN:
            if now < deadline:
                left = deadline - now
                total = max(1, deadline - created)
                sla.update(
                    status="yellow" if left < 0.2 * total else "green",
                    text=f"{t('sla_left', lang)} {fmt_duration(left, lang)}",
                )
            else:
                sla.update(status="red", text=f"{t('sla_overdue', lang)} {fmt_duration(now - deadline, lang)}")
        elif close_at is not None:
            ok = close_at <= deadline
            sla.update(status="green" if ok else "red", text=t("sla_met" if ok else "sla_missed", lang))
    names = Names(db, portal, lang)
    timeline = []
    for e in events:
        kind = e["kind"]
        detail = ""
        if kind == "assigned":
            detail = f"{name(e['from_value']) or '—'} → {name(e['to_value']) or '—'}"
        elif kind in ("status", "field_changed"):
            detail = _change_in_words(e, kind, names, name, when, lang)
        label = t(f"ev_{kind}", lang)
        if label == f"ev_{kind}":
            label = t("ev_field_changed", lang)
        timeline.append(
            {"when": when(e["at"]), "kind": kind, "label": label, "actor": name(e["actor_id"]), "detail": detail}
        )
    rating = row.get("rating")
    return {
        "title": names.title(row["source"], row.get("title"), row["source_id"]),
        "source_id": row["source_id"],
        "source_label": (
            names.source(row["source"])
            if row["source"].startswith("crm:") and row["source"] != "crm:2"
            else source_label(row["source"], lang)
        ),
        "link": (origin + row["url"]) if origin and row.get("url") and str(row["url"]).startswith("/") else None,
        "state": t(f"state_{state}", lang),
        "priority": t(f"prio_{row.get('priority') or 'normal'}", lang),
        "responsible": name(row.get("responsible_id")) or "—",
        "created": when(created),
        "first_response": first,
        "sla": sla,
        "transfers": transfers,
        "rating": "—" if rating is None else f"{rating}/5",
        "timeline": timeline,
        "actors": sorted({str(e["to_value"]) for e in events if e["kind"] == "assigned" and e["to_value"]}),
    }


def _change_in_words(e: dict, kind: str, names: Names, person, when, lang: str) -> str:
    """ "Ждёт выполнения → Выполняется", "приоритет: Обычный → Высокий": a status or field change
    as the portal names it, never ``STATUS 2 → 3``."""
    field = (e.get("field") or "").lower()
    a, b = e.get("from_value"), e.get("to_value")
    if kind == "status" or field in ("status", "stage", "stage_id", "stageid", "real_status"):
        return f"{names.stage(a)} → {names.stage(b)}"
    if field in ("responsible", "responsible_id", "assigned_by_id"):
        return f"{t('field_responsible', lang)}: {person(a) or '—'} → {person(b) or '—'}"
    if field == "priority":

        def prio(x):
            named = t(f"prio_{x}", lang)
            return named if x and named != f"prio_{x}" else "—"

        return f"{t('field_priority', lang)}: {prio(a)} → {prio(b)}"
    if field in ("type", "category", "category_id", "categoryid", "group_id"):
        return f"{t('field_type', lang)}: {names.type(a) if a else '—'} → {names.type(b) if b else '—'}"
    if field == "deadline":

        def day(x):
            try:
                return when(int(x))
            except (TypeError, ValueError):
                return "—"

        return f"{t('field_deadline', lang)}: {day(a)} → {day(b)}"
    key = f"field_{field}"
    label = t(key, lang)
    return f"{label if label != key else t('field_other', lang)}: {a or '—'} → {b or '—'}"
