"""Method registry: name -> handler, scope, and whether it needs an application (OAuth) context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class Method:
    name: str
    handler: Callable
    scope: str
    app_only: bool = False
    cost: float = 0.0  # extra simulated seconds per call on top of the base cost


@dataclass
class Listed:
    """A list method's answer: the result plus ``total`` / ``next`` for the envelope."""

    result: Any
    total: int | None = None
    next: int | None = None


@dataclass
class Call:
    """What a handler sees: the portal, the caller and how they authenticated."""

    portal: Any
    user_id: int
    auth: str  # "webhook" | "oauth"
    double: Any = None  # the PortalDouble (app-context state lives there)


METHODS: dict[str, Method] = {}


def method(name: str, scope: str, *, app_only: bool = False, cost: float = 0.0):
    def deco(fn):
        METHODS[name.lower()] = Method(name.lower(), fn, scope, app_only, cost)
        return fn

    return deco
