"""Per-portal overrides of the file config, set by an admin in the portal (settings key ``config``).

``config/b24desk.toml`` is the base; an admin may override some tables for their portal from the
settings page. Every consumer (pages, ``flask kpi``/``sync``/``push``, the scheduler) layers the
same overrides through ``effective_config``, so the page and the command line give the same numbers.
"""

from __future__ import annotations

import copy

from .kpi import calendar as kcal
from .store import get_setting

CONFIG_SETTING = "config"
# The config tables an admin may override from the portal, and the type each must have.
OVERRIDABLE = {
    "sources": list,
    "calendar": dict,
    "sla": dict,
    "status_buckets": dict,
    "support_departments": list,
    "bot_users": list,
    "repeat_window_days": int,
}


def overrides(db, portal: str) -> dict:
    value = get_setting(db, portal, CONFIG_SETTING, {}) or {}
    return value if isinstance(value, dict) else {}


def effective_config(db, portal: str, base: dict | None) -> dict:
    """``base`` (the file config) with this portal's overrides on top (whole tables replaced,
    except ``calendar`` and ``sla`` whose keys merge, so one changed hour keeps the rest)."""
    out = copy.deepcopy(base or {})
    for key, value in overrides(db, portal).items():
        if key in ("calendar", "sla") and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def validate_config(value: dict) -> dict:
    if not isinstance(value, dict):
        raise ValueError("settings must be an object")
    for key, v in value.items():
        want = OVERRIDABLE.get(key)
        if want is None:
            raise ValueError(f"{key}: not a setting the portal may override (one of {', '.join(OVERRIDABLE)})")
        if not isinstance(v, want) or isinstance(v, bool):
            raise ValueError(f"{key}: must be a {'list' if want is list else 'number' if want is int else 'table'}")
    if "calendar" in value:
        try:
            kcal.build_calendar(value["calendar"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"calendar: {exc}") from None
    if "sources" in value:
        for i, s in enumerate(value["sources"]):
            if isinstance(s, str):
                continue
            if not isinstance(s, dict) or not isinstance(s.get("select"), str) or not s["select"]:
                raise ValueError(f"sources[{i}]: a selector string, or a table with a 'select' selector")
    if "sla" in value:
        for k, table in value["sla"].items():
            if k == "mode":
                if table not in ("business", "calendar"):
                    raise ValueError("sla.mode: 'business' (work hours) or 'calendar' (round the clock)")
                continue
            if not isinstance(table, dict) or any(
                isinstance(x, bool) or not isinstance(x, (int, float)) or x < 0 for x in table.values()
            ):
                raise ValueError(f"sla.{k}: a table of priority = seconds")
    return value
