"""Source adapters: a selector (shared/spec/interfaces.md) -> a Source yielding normalized bundles.

The registry is pluggable: a module ``b24desk.sources.<kind>`` registers its factory with
``@register("<kind>")`` and is imported the first time a selector of that kind is asked for, so a
new source (open lines, ...) needs no edit here.

    src = get_source("deals:category=3", config)      # config: the loaded b24desk.toml
    for page in src.full(client, ctx): ...
"""

from __future__ import annotations

import importlib
from typing import Callable

from .base import Mapping, Page, Selector, SelectorError, Source, SyncContext, parse_selector

_REGISTRY: dict[str, Callable[[Selector, Mapping], Source]] = {}
_MODULES = {"tasks": "tasks", "crm": "crm"}


def register(kind: str):
    def deco(factory):
        _REGISTRY[kind] = factory
        return factory

    return deco


def mapping_for(selector: Selector, config: dict | None) -> Mapping:
    """The ``[[sources]]`` table whose ``select`` names this selector, as a Mapping (or defaults)."""
    for entry in (config or {}).get("sources") or []:
        if isinstance(entry, dict) and entry.get("select"):
            try:
                if parse_selector(entry["select"]).raw == selector.raw:
                    return Mapping.from_config(entry)
            except SelectorError:
                continue
    return Mapping()


def configured_selectors(config: dict | None) -> list[str]:
    """Selectors listed in the config's ``sources`` (plain strings or ``[[sources]]`` tables)."""
    out = []
    for entry in (config or {}).get("sources") or []:
        sel = entry.get("select") if isinstance(entry, dict) else entry
        if sel:
            out.append(str(sel))
    return out


def get_source(text: str, config: dict | None = None) -> Source:
    sel = parse_selector(text)
    if sel.kind not in _REGISTRY:
        try:
            importlib.import_module(f"{__name__}.{_MODULES.get(sel.kind, sel.kind)}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(__name__):
                raise SelectorError(f"{text!r}: no source adapter for {sel.kind!r}") from None
            raise
    factory = _REGISTRY.get(sel.kind)
    if factory is None:
        raise SelectorError(f"{text!r}: no source adapter for {sel.kind!r}")
    return factory(sel, mapping_for(sel, config))


__all__ = [
    "Mapping",
    "Page",
    "Selector",
    "SelectorError",
    "Source",
    "SyncContext",
    "get_source",
    "mapping_for",
    "configured_selectors",
    "parse_selector",
    "register",
]
