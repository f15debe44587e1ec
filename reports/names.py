"""Portal names for the keys a ticket carries: sources, types (funnels), stages, lines, channels.

What the portal calls things was read at sync time (smart-process titles, funnel and stage names,
open-line names: stored settings); the fixed vocabulary (tasks, deals, connectors, task statuses)
is b24desk/labels.py. A page never shows a key: an unknown one reads as "other" in words.
"""

from __future__ import annotations

import re

from b24desk import labels
from b24desk.kpi.report import crm_settings
from b24desk.store import get_setting

_DIALOG = re.compile(r"^Dialog #(\d+)(?: \(([^)]*)\))?$")


class Names:
    """Names of one portal's keys in one language (build once per request)."""

    def __init__(self, db, portal: str, lang: str):
        self.lang = lang
        self.crm = crm_settings(db, portal)
        self.lines = {str(k): str(v) for k, v in (get_setting(db, portal, "openlines.lines") or {}).items()}
        self.categories: dict[str, str] = {}
        for stored in self.crm.values():
            for cat, name in (stored.get("categories") or {}).items():
                known = self.categories.get(str(cat))
                self.categories[str(cat)] = name if known in (None, name) else f"{known} / {name}"
        self.stages: dict[str, str] = {}
        for stored in self.crm.values():
            self.stages.update({str(k): str(v) for k, v in (stored.get("stage_names") or {}).items()})

    def pick(self, pair) -> str:
        return labels.pick(pair, self.lang)

    def source(self, key) -> str:
        if key in (None, ""):
            return labels.empty_group("source", self.lang)
        key = str(key)
        if key in labels.SOURCE_NAMES:
            return self.pick(labels.SOURCE_NAMES[key])
        if key.startswith("crm:"):
            title = (self.crm.get(key[4:]) or {}).get("title")
            return title or self.pick(("Смарт-процесс", "Smart process"))
        return self.pick(("Другой источник", "Other source"))

    def type(self, key, source=None) -> str:
        if key in (None, ""):
            return labels.empty_group("type", self.lang)
        key = str(key)
        if source == "openlines" or (source is None and key in self.lines.values()):
            return key  # an open-line ticket's type is its line's name
        if key in self.categories:
            return self.categories[key]
        if not key.isdigit() and "_" not in key:
            return key  # already a name (a task group, a line)
        return self.pick(("Тип ", "Type ")) + key

    def channel(self, key) -> str:
        return labels.channel_name(key, self.lang)

    def line(self, key) -> str:
        if key in (None, ""):
            return labels.empty_group("line", self.lang)
        return self.lines.get(str(key)) or self.pick(("Линия ", "Line ")) + str(key)

    def stage(self, key) -> str:
        if key in (None, ""):
            return "—"
        key = str(key)
        return self.stages.get(key) or labels.pick(labels.TASK_STATUS_NAMES.get(key, (key, key)), self.lang)

    def group(self, dim: str, key, label=None) -> str:
        """A breakdown row's label: the portal's name, or "Без отдела" / "Не назначено"..."""
        if key is None:
            return labels.empty_group(dim, self.lang)
        if dim == "source":
            return self.source(key)
        if dim == "type":
            return self.type(key)
        if dim == "channel":
            return self.channel(key)
        if dim == "line":
            return self.line(key)
        if dim == "priority":
            return self.pick(labels.PRIORITY_NAMES.get(str(key), (str(key), str(key))))
        return label if label not in (None, "") else str(key)

    def title(self, source, title, source_id=None) -> str:
        """A ticket's title; an open-line dialog (stored as ``Dialog #N (connector)``) in words:
        ``Диалог №N · Telegram``."""
        m = _DIALOG.match(title or "") if source == "openlines" else None
        if m:
            head = self.pick(("Диалог №", "Dialog #")) + m.group(1)
            return head + (" · " + self.channel(m.group(2)) if m.group(2) and m.group(2) != "openlines" else "")
        return title or f"#{source_id}"
