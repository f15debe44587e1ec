"""portal_double: a Bitrix24 portal double that speaks the documented REST wire format over real HTTP,
seeded with a realistic service desk whose ground truth tests can read.

    from portal_double import PortalDouble
    d = PortalDouble(seed=1, tickets=1000, drain_per_s=1e6)
    d.start(); url = d.webhook_url; ...; d.stop()

Independent of ``b24desk`` on purpose: it is the yardstick the client and adapters are checked against.
See STATUS.md for what is simulated and the choices made where the docs are silent.
"""

from __future__ import annotations

import threading
from datetime import datetime

from werkzeug.serving import WSGIRequestHandler, make_server

from .auth import ALL_SCOPES, Credentials
from .generator import generate
from .limits import Faults, LeakyBucket, OperatingTime, Stats
from .server import WireApp
from .state import Portal
from .truth import Truth

__all__ = ["PortalDouble", "Served", "ALL_SCOPES"]


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):  # no access log on stderr
        pass


class Served:
    """A WSGI app on 127.0.0.1 (``port`` 0: an ephemeral one) in a daemon thread.

    ``stop()`` returns in milliseconds: the loop polls for the shutdown request every 10 ms instead
    of socketserver's 0.5 s, which every test that starts a server would otherwise pay."""

    POLL = 0.01

    def __init__(self, app, port: int = 0, *, quiet: bool = True, name: str = "served"):
        self.server = make_server(
            "127.0.0.1", port, app, threaded=True, request_handler=_QuietHandler if quiet else None
        )
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": self.POLL}, name=name, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class PortalDouble:
    """One simulated portal: data, credentials, limits and an HTTP server on 127.0.0.1."""

    def __init__(
        self,
        seed: int = 1,
        tickets: int = 1000,
        months: int = 6,
        end: datetime | None = None,
        bucket_size: int = 50,
        drain_per_s: float = 2.0,
        new_task_card: bool = False,
        timezone: str = "Europe/Moscow",
        operating_limit: float = 480.0,
        call_cost: float = 0.002,
        port: int = 0,
        openlines: int = 0,
        oauth: "PortalDouble | None" = None,
        new_card_since: int | None = None,
    ):
        end_ts = int(end.timestamp()) if end is not None else None
        self.portal = Portal(now=end_ts, timezone=timezone, new_task_card=new_task_card, new_card_since=new_card_since)
        self.seed = seed
        self.desk = generate(self.portal, seed=seed, tickets=tickets, months=months, end=self.portal.now)
        if openlines:  # open-line sessions (portal_double/openlines.py, the open-lines helper's module)
            from . import openlines as _ol

            _ol.generate(self.portal, openlines, seed=seed, end=self.portal.now, months=months)
        self.creds = Credentials(lambda: self.portal.now)
        self._webhook = self.creds.add_webhook(1)
        # The OAuth server: its own (one portal, one local app), or another double's, as one
        # oauth.bitrix.info serves every portal of a market app (same client_id/secret).
        self.oauth_server = oauth if oauth is not None else self
        self.oauth_portals: list[PortalDouble] = [self]
        if oauth is not None:
            self.creds.client_id, self.creds.client_secret = oauth.creds.client_id, oauth.creds.client_secret
            oauth.oauth_portals.append(self)
        self.bucket = LeakyBucket(bucket_size, drain_per_s)
        self.operating = OperatingTime(operating_limit)
        self.call_cost = call_cost  # simulated seconds of work per method call (operating time)
        self.faults = Faults()
        self.stats = Stats()
        from .app_context import AppContext

        self.app = AppContext(self)
        self._port = port
        self._server = None

    # -- serving ---------------------------------------------------------------------------
    def start(self) -> "PortalDouble":
        if self._server is not None:
            return self
        self._server = Served(WireApp(self), self._port, name="portal-double")
        self._port = self._server.port
        self.portal.domain = f"127.0.0.1:{self._port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- addresses and identity ---------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("PortalDouble is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/rest/{self._webhook.user_id}/{self._webhook.secret}/"

    def add_webhook(self, user_id: int = 1, scopes=None) -> str:
        """Another inbound webhook (e.g. with fewer scopes); returns its URL."""
        wh = self.creds.add_webhook(user_id, scopes)
        return f"{self.base_url}/rest/{wh.user_id}/{wh.secret}/"

    @property
    def client_endpoint(self) -> str:
        return f"{self.base_url}/rest/"

    @property
    def server_endpoint(self) -> str:
        return f"{self.base_url}/rest/"

    @property
    def oauth_token_url(self) -> str:
        return f"{self.oauth_server.base_url}/oauth/token/"

    @property
    def member_id(self) -> str:
        return self.portal.member_id

    @property
    def domain(self) -> str:
        return self.portal.domain

    @property
    def client_id(self) -> str:
        return self.creds.client_id

    @property
    def client_secret(self) -> str:
        return self.creds.client_secret

    @property
    def application_token(self) -> str:
        return self.creds.application_token

    # -- tokens ------------------------------------------------------------------------------
    def token_payload(
        self, access: str, refresh: str, expires: int, scopes, user_id: int, oauth_domain: bool = False
    ) -> dict:
        """The token response shape of DOCS settings/oauth/auto-renewal.md (``domain`` is the OAuth
        server there; the portal's domain in install payloads)."""
        return {
            "access_token": access,
            "client_endpoint": self.client_endpoint,
            "domain": "oauth.bitrix.info" if oauth_domain else self.domain,
            "expires": expires,
            "expires_in": 3600,
            "member_id": self.member_id,
            "refresh_token": refresh,
            "scope": ",".join(sorted(scopes)),
            "server_endpoint": self.server_endpoint,
            "status": "L",
            "user_id": user_id,
        }

    def issue_tokens(self, user_id: int = 1, scopes=None) -> dict:
        """A fresh access/refresh pair for an app user, as an install gives it."""
        access, refresh, expires, sc = self.creds.issue(user_id, scopes)
        return {
            **self.token_payload(access, refresh, expires, sc, user_id),
            "application_token": self.application_token,
        }

    def expire_tokens(self) -> None:
        """Every access token issued so far now answers 401 expired_token."""
        self.creds.expire_all()

    # -- clock, data, truth ------------------------------------------------------------------
    @property
    def now(self) -> int:
        return self.portal.now

    def advance(self, seconds: int) -> int:
        return self.portal.advance(seconds)

    @property
    def truth(self) -> Truth:
        """Ground truth computed from the portal's current state (a fresh snapshot per access)."""
        return Truth(self.portal)
