"""Credentials of the double: inbound webhooks and OAuth tokens of the local application.

DOCS settings/oauth/auto-renewal.md: an access token lives 3600 s; ``grant_type=refresh_token``
returns a new pair and the old refresh token stops working; errors are ``invalid_grant`` /
``invalid_client`` / ``invalid_request`` (settings/oauth/error-codes.md). Expiry is measured on the
portal clock, so ``portal.advance(3601)`` expires every access token like an hour passing would.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field

ALL_SCOPES = frozenset(
    {
        "basic",
        "user",
        "user_brief",
        "user_basic",
        "department",
        "task",
        "tasks",
        "crm",
        "im",
        "imopenlines",
        "calendar",
        "placement",
        "log",
        "disk",
        "timeman",
        "app",
        "entity",
        "sonet_group",
        "userfieldconfig",
    }
)

ACCESS_TTL = 3600
REFRESH_TTL = 180 * 86400


@dataclass
class Webhook:
    user_id: int
    secret: str
    scopes: set = field(default_factory=lambda: set(ALL_SCOPES))


@dataclass
class Token:
    user_id: int
    expires: int
    scopes: set
    refresh: str


class Credentials:
    def __init__(self, clock):
        self._clock = clock  # -> portal now (int)
        self.webhooks: dict[tuple[int, str], Webhook] = {}
        self.access: dict[str, Token] = {}
        self.refresh: dict[str, dict] = {}
        self.client_id = "local." + secrets.token_hex(7) + "." + secrets.token_hex(4)
        self.client_secret = secrets.token_urlsafe(32)
        self.application_token = secrets.token_hex(16)
        self.app_scopes: set = set(ALL_SCOPES)
        self.revoked = False  # app uninstalled: refresh -> invalid_client
        self._lock = threading.Lock()

    def add_webhook(self, user_id: int = 1, scopes=None) -> Webhook:
        wh = Webhook(int(user_id), secrets.token_hex(8), set(scopes) if scopes else set(ALL_SCOPES))
        self.webhooks[(wh.user_id, wh.secret)] = wh
        return wh

    def issue(self, user_id: int = 1, scopes=None) -> tuple[str, str, int, set]:
        with self._lock:
            access, refresh = secrets.token_hex(16), secrets.token_hex(16)
            expires = self._clock() + ACCESS_TTL
            sc = set(scopes) if scopes else set(self.app_scopes)
            self.access[access] = Token(int(user_id), expires, sc, refresh)
            self.refresh[refresh] = {"user_id": int(user_id), "expires": self._clock() + REFRESH_TTL, "scopes": sc}
            return access, refresh, expires, sc

    def rotate(self, refresh_token: str):
        """Exchange a refresh token for a new pair; None when it is unknown, used or expired."""
        with self._lock:
            info = self.refresh.pop(refresh_token, None)
        if info is None or info["expires"] < self._clock():
            return None
        return self.issue(info["user_id"], info["scopes"])

    def expire_all(self) -> None:
        with self._lock:
            for t in self.access.values():
                t.expires = 0

    def check_access(self, token: str) -> tuple[Token | None, str | None]:
        t = self.access.get(token)
        if t is None:
            return None, "invalid_token"
        if t.expires <= self._clock():
            return None, "expired_token"
        return t, None
