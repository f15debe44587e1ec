"""Writing an admin's settings change: only what changed, recorded (who, when, what), all or nothing.

The settings page parses a form into *new values* of a few settings keys (``config`` sections,
``targets``, ``push``, ``ccei_inputs:<period>``); :func:`apply` compares each with what is stored,
writes only the keys whose value differs, and appends one history entry naming the changes in the
admin's words. The whole configuration can also be exported to a file and imported back
(:func:`export_all` / :func:`import_all`): an import is validated whole before anything is written.
"""

from __future__ import annotations

import re
import time

from .kpi import ccei as kccei
from .kpi import targets as ktargets
from .overrides import CONFIG_SETTING, OVERRIDABLE, overrides, validate_config
from .push import data as digest
from .store import get_setting, set_setting

HISTORY_SETTING = "settings.history"
HISTORY_KEEP = 200
EXPORT_SCHEMA = "b24desk.settings/1"
PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def history(db, portal: str, limit: int = 20) -> list[dict]:
    rows = get_setting(db, portal, HISTORY_SETTING) or []
    return list(reversed(rows[-limit:])) if isinstance(rows, list) else []


def record(db, portal: str, who: dict, section: str, lines: list[str], now: float | None = None) -> dict:
    entry = {
        "at": int(now if now is not None else time.time()),
        "user": str(who.get("id") or ""),
        "name": who.get("name") or "",
        "section": section,
        "changes": list(lines),
    }
    rows = get_setting(db, portal, HISTORY_SETTING) or []
    rows = (rows if isinstance(rows, list) else []) + [entry]
    set_setting(db, portal, HISTORY_SETTING, rows[-HISTORY_KEEP:])
    return entry


def apply(db, portal: str, new_values: dict, who: dict, section: str, lines: list[str]) -> bool:
    """Store each ``{setting key: value}`` that differs from the stored one (``None`` removes the key)
    and record ``lines``; in one transaction. False when nothing differed (nothing is written)."""
    changed = {k: v for k, v in new_values.items() if get_setting(db, portal, k) != v}
    if not changed:
        return False
    with db.atomic():
        for key, value in changed.items():
            if value is None:
                db.execute("delete from settings where portal = ? and key = ?", [portal, key])
            else:
                set_setting(db, portal, key, value)
        record(db, portal, who, section, lines or [section])
    return True


def config_with(db, portal: str, section_values: dict) -> dict | None:
    """The ``config`` overrides with ``section_values`` replacing sections (``None`` drops one),
    validated; None when no section remains."""
    current = dict(overrides(db, portal))
    for name, value in section_values.items():
        if name not in OVERRIDABLE:
            raise ValueError(f"unknown section {name!r}")
        if value is None:
            current.pop(name, None)
        else:
            current[name] = value
    validate_config(current)
    return current or None


# --- the whole configuration as a file ----------------------------------------------------------


def export_all(db, portal: str) -> dict:
    ccei = {}
    for row in db.execute(
        "select key, value from settings where portal = ? and key like 'ccei_inputs:%'", [portal]
    ).fetchall():
        ccei[row[0].split(":", 1)[1]] = get_setting(db, portal, row[0])
    return {
        "schema": EXPORT_SCHEMA,
        "exported_at": int(time.time()),
        "config": overrides(db, portal),
        "targets": get_setting(db, portal, ktargets.TARGETS_SETTING) or {},
        "push": get_setting(db, portal, digest.PUSH_SETTING) or {},
        "ccei_inputs": ccei,
    }


def import_values(data) -> dict:
    """The settings keys an exported file sets, each validated; ValueError names the first problem."""
    if not isinstance(data, dict) or data.get("schema") != EXPORT_SCHEMA:
        raise ValueError(f"not a b24desk settings file (schema {EXPORT_SCHEMA})")
    out: dict = {}
    cfg = data.get("config") or {}
    validate_config(cfg)
    out[CONFIG_SETTING] = cfg or None
    targets = data.get("targets") or {}
    ktargets.validate_stored(targets)
    out[ktargets.TARGETS_SETTING] = targets or None
    push = data.get("push") or {}
    if not isinstance(push, dict):
        raise ValueError("push must be an object")
    if push:
        digest.validate_push(digest._merge(digest.DEFAULT_PUSH, push))
    out[digest.PUSH_SETTING] = push or None
    ccei = data.get("ccei_inputs") or {}
    if not isinstance(ccei, dict):
        raise ValueError("ccei_inputs must be an object of period -> inputs")
    for period, inputs in ccei.items():
        if not PERIOD.match(str(period)):
            raise ValueError(f"ccei_inputs: {period!r} is not a month like 2026-10")
        out[kccei.INPUTS_SETTING.format(period=period)] = kccei.validate_inputs(inputs)
    return out
