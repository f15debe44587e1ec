"""What the admin settings page reads and writes: per-portal overrides in the store's settings table.

- ``config`` (key ``config``): a partial config table layered over ``config/b24desk.toml``
  (``sources`` with their field mapping, ``[calendar]``, ``[sla]``, ``[status_buckets]``,
  ``support_departments``, ``bot_users``), as b24desk/config.py says callers do.
- ``targets``: the engine's own key and format (b24desk/kpi/targets.py).
- ``ccei_inputs:<period>``: the engine's own key and validation (b24desk/kpi/ccei.py).

Every value is validated with the engine's own validators before it is stored; a bad value is
refused with a message naming the field, and nothing is written.
"""
from __future__ import annotations

import copy
import json
import re

from b24desk.kpi import calendar as kcal
from b24desk.kpi import ccei as kccei
from b24desk.kpi import targets as ktargets
from b24desk.store import get_setting, set_setting

CONFIG_SETTING = "config"
# The config tables an admin may override from the portal, and the type each must have.
OVERRIDABLE = {"sources": list, "calendar": dict, "sla": dict, "status_buckets": dict,
               "support_departments": list, "bot_users": list, "repeat_window_days": int}
PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


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
            raise ValueError(f"{key}: not a setting the portal may override "
                             f"(one of {', '.join(OVERRIDABLE)})")
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
            if not isinstance(table, dict) or any(isinstance(x, bool) or not isinstance(x, (int, float)) or x < 0
                                                  for x in table.values()):
                raise ValueError(f"sla.{k}: a table of priority = seconds")
    return value


def save_config(db, portal: str, section: str, raw: str) -> None:
    """Store one section (``sources``, ``calendar``...) from its JSON text; empty text removes it."""
    if section not in OVERRIDABLE:
        raise ValueError(f"unknown section {section!r}")
    current = dict(overrides(db, portal))
    text = (raw or "").strip()
    if not text:
        current.pop(section, None)
    else:
        try:
            current[section] = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{section}: not valid JSON ({exc})") from None
        validate_config({section: current[section]})
    set_setting(db, portal, CONFIG_SETTING, current)


def get_targets(db, portal: str) -> dict:
    return get_setting(db, portal, ktargets.TARGETS_SETTING, {}) or {}


def save_targets(db, portal: str, raw: str) -> dict:
    text = (raw or "").strip()
    try:
        value = json.loads(text) if text else {}
    except ValueError as exc:
        raise ValueError(f"targets: not valid JSON ({exc})") from None
    clean = ktargets.validate_stored(value)
    set_setting(db, portal, ktargets.TARGETS_SETTING, clean)
    return clean


def save_ccei(db, portal: str, period: str, fields: dict) -> dict:
    if not PERIOD.match(period or ""):
        raise ValueError("CCEI period must look like 2026-10")
    inputs = {}
    for key in kccei.INPUT_KEYS:
        raw = (fields.get(key) or "").strip().replace(",", ".")
        if raw:
            try:
                inputs[key] = float(raw)
            except ValueError:
                raise ValueError(f"CCEI input {key} must be a number") from None
    return kccei.set_inputs(db, portal, period, inputs)


def get_ccei(db, portal: str, period: str) -> dict:
    return kccei.get_inputs(db, portal, period)
