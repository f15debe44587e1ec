"""What the app binds on a portal: event handlers (online and offline) and placements.

DOCS api-reference/events/event-bind.md: "when an application is deleted or updated, its actions
will be removed", so every install, reinstall and update runs :func:`ensure_bindings`, and the
scheduler runs it hourly as a check. It reads ``event.get`` and ``placement.get`` first and binds
only what is missing (one ``batch``), so it is idempotent and cheap; handlers of ours that point
at an old public URL are unbound. Offline binding needs an admin (``ACCESS_DENIED`` otherwise):
then the app lives on online events plus the reconcile sync, and the report says so.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from .inbox import APP_EVENTS, OBJECT_EVENTS

log = logging.getLogger(__name__)

# (placement code, title ru, title en), DOCS api-reference/widgets/placements.md: the KPI dashboard
# in CRM analytics; the ticket card as a tab of the deal and the task card.
DEFAULT_PLACEMENTS = (
    ("CRM_ANALYTICS_MENU", "Показатели сервис-деска", "Service desk KPI"),
    ("CRM_DEAL_DETAIL_TAB", "Сервис-деск", "Service desk"),
    ("TASK_VIEW_TAB", "Сервис-деск", "Service desk"),
)


def placements_for(config: dict | None) -> tuple:
    """The default placements plus a detail tab for each smart process among the configured
    sources (``crm:1038`` -> ``CRM_DYNAMIC_1038_DETAIL_TAB``)."""
    out = list(DEFAULT_PLACEMENTS)
    for entry in (config or {}).get("sources") or []:
        sel = str(entry.get("select") if isinstance(entry, dict) else entry)
        m = re.match(r"^crm:(\d+)", sel)
        if m and int(m.group(1)) != 2:
            code = f"CRM_DYNAMIC_{m.group(1)}_DETAIL_TAB"
            if all(code != p[0] for p in out):
                out.append((code, "Сервис-деск", "Service desk"))
    return tuple(out)


@dataclass
class BindReport:
    bound: list[str] = field(default_factory=list)
    unbound: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    offline: bool = True  # offline events are available (bound or already there)

    def as_dict(self) -> dict:
        return {"bound": self.bound, "unbound": self.unbound, "errors": self.errors, "offline": self.offline}


def urls(public_url: str) -> tuple[str, str]:
    """``(events handler, app page)`` under the public base URL."""
    base = (public_url or "").rstrip("/")
    return f"{base}/events", f"{base}/app"


def _list(value) -> list:
    if isinstance(value, dict):
        return list(value.values())
    return value if isinstance(value, list) else []


def ensure_bindings(
    client, public_url: str, *, offline: bool = True, placements=None, config: dict | None = None, lang: str = "en"
) -> BindReport:
    """Bind every event and placement the app needs that the portal does not have yet
    (``placements`` default: :func:`placements_for` the config's sources)."""
    if placements is None:
        placements = placements_for(config)
    events_url, app_url = urls(public_url)
    report = BindReport()
    got = client.batch({"events": ("event.get", {}), "placements": ("placement.get", {})})
    if "events" in got.errors:
        raise got.errors["events"]
    have_online: dict[str, set[str]] = {}
    have_offline: set[str] = set()
    for h in _list(got.results.get("events")):
        if not isinstance(h, dict):
            continue
        name = str(h.get("event") or "").upper()
        if str(h.get("offline") or "0") in ("1", "true", "True"):
            have_offline.add(name)
        else:
            have_online.setdefault(name, set()).add(str(h.get("handler") or ""))
    have_placements: dict[str, set[str]] = {}
    for p in _list(got.results.get("placements")):
        if isinstance(p, dict):
            code = str(p.get("placement") or p.get("PLACEMENT") or "").upper()
            have_placements.setdefault(code, set()).add(str(p.get("handler") or p.get("HANDLER") or ""))

    cmds: dict[str, tuple[str, dict]] = {}
    for ev in OBJECT_EVENTS + APP_EVENTS:
        handlers = have_online.get(ev, set())
        for stale in sorted(handlers - {events_url}):
            cmds[f"unbind {ev} {stale}"] = ("event.unbind", {"event": ev, "handler": stale})
        if events_url not in handlers:
            cmds[f"bind {ev}"] = ("event.bind", {"event": ev, "handler": events_url})
    if offline:
        for ev in OBJECT_EVENTS:
            if ev not in have_offline:
                cmds[f"offline {ev}"] = ("event.bind", {"event": ev, "event_type": "offline"})
    if "placements" not in got.errors:
        for code, title_ru, title_en in placements:
            if app_url not in have_placements.get(code, set()):
                cmds[f"placement {code}"] = (
                    "placement.bind",
                    {
                        "PLACEMENT": code,
                        "HANDLER": app_url,
                        "TITLE": title_ru if lang == "ru" else title_en,
                        "LANG_ALL": {"ru": {"TITLE": title_ru}, "en": {"TITLE": title_en}},
                    },
                )
    else:
        report.errors["placement.get"] = str(got.errors["placements"])

    names = list(cmds)
    for start in range(0, len(names), 50):
        part = {n: cmds[n] for n in names[start : start + 50]}
        res = client.batch(part)
        for n in part:
            err = res.errors.get(n)
            if err is None:
                (report.unbound if n.startswith("unbind") else report.bound).append(n)
            elif err.code.upper() in ("ERROR_HANDLER_ALREADY_EXIST", "HANDLER_ALREADY_EXIST"):
                continue
            else:
                report.errors[n] = f"{err.code}: {err.description}".strip(": ")
                if n.startswith("offline"):
                    report.offline = False
    if report.errors:
        log.warning("bindings: %d not bound (%s)", len(report.errors), ", ".join(sorted(report.errors)[:5]))
    return report
