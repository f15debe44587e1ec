"""The installation store: one row per portal (``member_id``) with its OAuth tokens.

Modelled on bolt-python's installation store, over the store's ``installations`` table
(``store.m001_core``). Bitrix24 rotates the refresh token on every refresh
(DOCS ``settings/oauth/auto-renewal.md``): the old one dies as soon as the new pair is issued,
so a refresh must (1) run in one place at a time, across threads *and* processes, and
(2) write the new pair in one statement, or the portal is lost until a reinstall.
``refresh`` does both: the portal's refresh lease (``b24desk/leases.py``: threads queue, other
processes are waited for), then ``rotate_tokens`` inside one transaction.
"""

from __future__ import annotations

import logging
import os
import random
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import requests
from sqlite_utils import Database

from . import leases
from .errors import AuthError, B24Error

log = logging.getLogger(__name__)

DEFAULT_TOKEN_URL = "https://oauth.bitrix.info/oauth/token/"
COLUMNS = (
    "member_id",
    "domain",
    "client_endpoint",
    "server_endpoint",
    "access_token",
    "refresh_token",
    "expires_at",
    "application_token",
    "scope",
    "status",
    "user_id",
    "webhook_url",
    "timezone",
    "lang",
    "active",
    "installed_at",
    "updated_at",
    "epoch",
)
# Fields a token response may update (DOCS settings/oauth/auto-renewal.md, response example).
_ROTATED = (
    "access_token",
    "refresh_token",
    "expires_at",
    "client_endpoint",
    "server_endpoint",
    "scope",
    "status",
    "user_id",
)
# The permissions (scopes) the local app must be given in the portal's form (webhooks/README.md):
# tickets (task, crm, imopenlines), people (user, department), the settings page's lists
# (userfieldconfig: a user field's list values, e.g. the priorities; sonet_group: workgroups),
# pushes (im, log), the embedded pages (placement), work calendar (calendar), exports (disk).
SCOPES = (
    "crm",
    "task",
    "user",
    "department",
    "imopenlines",
    "im",
    "calendar",
    "placement",
    "log",
    "disk",
    "userfieldconfig",
    "sonet_group",
)


def missing_scopes(granted: str | None) -> list[str]:
    """Of :data:`SCOPES`, those an installation's ``scope`` (comma- or space-separated) lacks;
    [] when the portal never told us (a webhook, an old row)."""
    if not granted:
        return []
    have = set(granted.replace(",", " ").split())
    return [s for s in SCOPES if s not in have]


EXPIRY_MARGIN = 30  # seconds: a token this close to its expiry counts as expired
LOCK_TTL = 60.0  # seconds a refresh lease lives if its holder dies mid-refresh


# --- rows -------------------------------------------------------------------------------------


def _expires_at(fields: dict, now: float) -> int | None:
    """``expires_in`` (seconds, measured on our clock) wins over ``expires`` (the portal's unix
    time), so a skewed portal clock cannot make every token look expired; both are optional."""
    for key, base in (("expires_at", 0), ("expires_in", int(now)), ("expires", 0)):
        value = fields.get(key)
        if value not in (None, ""):
            try:
                return base + int(value)
            except (TypeError, ValueError):
                raise ValueError(f"{key} must be an integer, got {value!r}") from None
    return None


def save_installation(db: Database, **fields) -> dict:
    """Insert or update the installation of ``member_id``; columns not given keep their values.

    Accepts a token/install payload as is: ``expires``/``expires_in`` become ``expires_at``,
    keys that are not columns (``domain`` of the OAuth server aside) are ignored.
    """
    member_id = str(fields.get("member_id") or "").strip()
    if not member_id:
        raise ValueError("save_installation needs a member_id")
    now = time.time()
    row = {k: fields[k] for k in COLUMNS if k in fields}
    row["member_id"] = member_id
    exp = _expires_at(fields, now)
    if exp is not None:
        row["expires_at"] = exp
    if row.get("user_id") is not None:
        row["user_id"] = str(row["user_id"])
    row["updated_at"] = int(now)
    with db.atomic():
        existing = get_installation(db, member_id)
        if existing is None:
            row.setdefault("installed_at", int(now))
            row.setdefault("epoch", new_epoch())
            row.setdefault("active", 1)
            db["installations"].insert(row, pk="member_id")
        else:
            db["installations"].update(member_id, row)
    return get_installation(db, member_id)


def new_epoch() -> str:
    """A fresh installation epoch: random, so a row deleted and created again never repeats one
    (a counter would restart and revive the viewer tokens of the previous installation)."""
    return uuid.uuid4().hex[:16]


def ensure_epoch(db: Database, member_id: str) -> str | None:
    """The installation's epoch, given one first if a row was written without (older code)."""
    with db.atomic():
        db.execute(
            "update installations set epoch = ? where member_id = ? and epoch is null", [new_epoch(), str(member_id)]
        )
    row = db.execute("select epoch from installations where member_id = ?", [str(member_id)]).fetchone()
    return row[0] if row else None


def get_installation(db: Database, member_id: str) -> dict | None:
    rows = list(db.query("select * from installations where member_id = ?", [str(member_id)]))
    return rows[0] if rows else None


def rotate_tokens(db: Database, member_id: str, token_response: dict) -> dict:
    """Write a refreshed token pair (and what came with it) in one UPDATE; returns the new row.

    A response without both tokens, or for another portal, is refused before anything is
    written, so the stored refresh token is never replaced by garbage.
    """
    if not isinstance(token_response, dict):
        raise ValueError("token response must be a JSON object")
    if not token_response.get("access_token") or not token_response.get("refresh_token"):
        raise ValueError("token response lacks access_token/refresh_token")
    other = token_response.get("member_id")
    if other and str(other) != str(member_id):
        raise ValueError("token response is for another portal (member_id mismatch)")
    now = time.time()
    values: dict[str, Any] = {k: token_response[k] for k in _ROTATED if token_response.get(k) not in (None, "")}
    exp = _expires_at(token_response, now)
    if exp is not None:
        values["expires_at"] = exp
    if "user_id" in values:
        values["user_id"] = str(values["user_id"])
    values["updated_at"] = int(now)
    sets = ", ".join(f"{k} = ?" for k in values)
    with db.atomic():
        cur = db.execute(f"update installations set {sets} where member_id = ?", [*values.values(), str(member_id)])
        if cur.rowcount != 1:
            raise LookupError(f"no installation for member_id {member_id!r}")
    return get_installation(db, member_id)


def delete_installation(db: Database, member_id: str, clean: bool) -> None:
    """Handle an uninstall (DOCS ``api-reference/common/events/on-app-uninstall.md``).

    ``clean`` is the admin's "delete app data" choice: True removes the installation and every
    row of the portal; False keeps the data, marks the installation inactive and drops the
    tokens (the portal has revoked them anyway).
    """
    member_id = str(member_id)
    with db.atomic():
        if clean:
            for table in ("tickets", "events", "snapshots", "cursors", "users", "departments", "settings"):
                if table in db.table_names():
                    db.execute(f"delete from [{table}] where portal = ?", [member_id])
            db.execute("delete from installations where member_id = ?", [member_id])
        else:
            db.execute(
                "update installations set active = 0, access_token = null, "
                "refresh_token = null, expires_at = null, updated_at = ?, epoch = ? "
                "where member_id = ?",
                [int(time.time()), new_epoch(), member_id],
            )


def token_url(installation: dict | None = None, override: str | None = None) -> str:
    """The OAuth token endpoint: ``override`` (the server's configuration), else
    ``B24DESK_OAUTH_URL`` from the server's environment, else the Bitrix24 OAuth server.

    Never derived from anything a portal, a request or an event sent (``server_endpoint`` is
    stored, not followed): the refresh carries our ``client_secret``, and a forged endpoint would
    hand it to whoever named it (DOCS settings/oauth/index.md: operations with the secret go
    exclusively to oauth.bitrix.info). ``installation`` is accepted for the callers' sake only."""
    if override:
        return override
    env = os.environ.get("B24DESK_OAUTH_URL")
    if env:
        return env
    return DEFAULT_TOKEN_URL


def is_expired(installation: dict, now: float | None = None, margin: float = EXPIRY_MARGIN) -> bool:
    exp = installation.get("expires_at")
    if exp in (None, ""):
        return False
    return (now if now is not None else time.time()) >= int(exp) - margin


# --- the refresh, under a two-level lock ------------------------------------------------------


@contextmanager
def open_store(db_path_or_factory: str | Path | Callable[[], Database] | Database):
    """Yield a ``Database``: a path is opened and closed here; a factory's result (or a
    ``Database`` passed directly) belongs to the caller and is left open."""
    if isinstance(db_path_or_factory, Database):
        yield db_path_or_factory
    elif callable(db_path_or_factory):
        yield db_path_or_factory()
    else:
        from .store import open_db

        db = open_db(db_path_or_factory)
        try:
            yield db
        finally:
            db.conn.close()


@contextmanager
def refresh_lock(db: Database, member_id: str, timeout: float = 90.0, ttl: float = LOCK_TTL):
    """Hold the refresh lease of one portal (``oauth-refresh:<member_id>``, ``b24desk/leases.py``)."""

    def busy(who):
        return B24Error(None, "REFRESH_LOCK_TIMEOUT", f"another thread or process holds the token refresh lock ({who})")

    with leases.hold(
        db,
        f"oauth-refresh:{member_id}",
        ttl=ttl,
        wait=timeout,
        poll=0.05 + random.random() * 0.1,
        heartbeat=False,
        busy=busy,
    ):
        yield


def request_tokens(
    url: str,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    session: requests.Session | None = None,
    timeout: float = 30,
    retries: int = 3,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """GET the token endpoint with ``grant_type=refresh_token`` (DOCS ``settings/oauth/auto-renewal.md``).

    Connection errors and 5xx are retried a few times (the server did not rotate anything);
    an ``error`` answer (``invalid_grant``, ``invalid_client``, ``PAYMENT_REQUIRED``...) raises
    ``AuthError`` at once. Nothing here ever logs the secret or the tokens.
    """
    http = session or requests
    params = {
        "grant_type": "refresh_token",
        "client_id": client_id,
        "client_secret": client_secret,
        "refresh_token": refresh_token,
    }
    last = "no answer"
    for attempt in range(retries + 1):
        if attempt:
            sleep(min(8.0, 0.5 * 2**attempt) * (0.5 + random.random() / 2))
        try:
            resp = http.get(url, params=params, timeout=timeout, allow_redirects=False)
        except (requests.ConnectionError, requests.Timeout) as exc:
            last = type(exc).__name__
            log.warning("token refresh: %s, retrying", last)
            continue
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status_code >= 500:
            last = f"HTTP {resp.status_code}"
            log.warning("token refresh: %s, retrying", last)
            continue
        if not isinstance(data, dict):
            raise AuthError(
                resp.status_code,
                "INVALID_TOKEN_RESPONSE",
                "the OAuth server answered with no JSON object",
                "oauth/token",
            )
        if data.get("error") or resp.status_code >= 400:
            raise AuthError(
                resp.status_code,
                str(data.get("error") or f"HTTP_{resp.status_code}"),
                str(data.get("error_description") or ""),
                "oauth/token",
            )
        return data
    raise B24Error(None, "OAUTH_UNAVAILABLE", f"token refresh failed: {last}", "oauth/token")


def refresh(
    db_factory,
    member_id: str,
    client_id: str,
    client_secret: str,
    oauth_url: str | None = None,
    session: requests.Session | None = None,
    *,
    stale_access_token: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Refresh the tokens of ``member_id`` once, under the lock, and return the stored row.

    ``stale_access_token`` is the token the caller saw rejected (or about to expire): if the
    store already holds a different, unexpired one, another thread or process has refreshed
    in the meantime and no second rotation happens.
    """
    if not client_id or not client_secret:
        raise AuthError(
            None, "NO_CLIENT_CREDENTIALS", "client_id/client_secret are needed to refresh tokens", "oauth/token"
        )
    with open_store(db_factory) as db:
        with refresh_lock(db, str(member_id)):
            inst = get_installation(db, member_id)
            if inst is None:
                raise AuthError(None, "NO_INSTALLATION", f"no installation for {member_id!r}", "oauth/token")
            if (
                stale_access_token is not None
                and inst.get("access_token")
                and inst["access_token"] != stale_access_token
                and not is_expired(inst)
            ):
                log.debug("token refresh: already done elsewhere for %s", member_id)
                return inst
            if not inst.get("refresh_token"):
                raise AuthError(
                    None, "NO_REFRESH_TOKEN", "the installation has no refresh token; reinstall the app", "oauth/token"
                )
            data = request_tokens(
                token_url(inst, oauth_url),
                client_id,
                client_secret,
                inst["refresh_token"],
                session=session,
                sleep=sleep,
            )
            try:
                new = rotate_tokens(db, member_id, data)
            except ValueError as exc:
                raise AuthError(None, "INVALID_TOKEN_RESPONSE", str(exc), "oauth/token") from None
            log.info("token refresh: new token pair stored for %s", member_id)
            return new
