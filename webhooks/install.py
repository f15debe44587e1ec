"""``POST /install``: both local-app flavours (DOCS settings/app-installation/local-apps/*.md).

- **With UI**: the install wizard frame POSTs ``AUTH_ID``, ``REFRESH_ID``, ``AUTH_EXPIRES``,
  ``member_id``, ``APPLICATION_TOKEN``, ``PLACEMENT=DEFAULT`` (+ ``SERVER_ENDPOINT``,
  ``APPLICATION_SCOPE``, ``status``) with ``DOMAIN``, ``PROTOCOL``, ``LANG``, ``APP_SID`` in the query
  (settings/oauth/simple-way.md). We answer a page that calls ``BX24.installFinish()``; until it
  runs the portal delivers no events (settings/app-installation/installation-finish.md).
- **API only**: the portal POSTs the ONAPPINSTALL form with ``auth[...]`` server to server
  (api-reference/common/events/on-app-install.md); no page, no installFinish.

Anyone can POST here (the open internet, any employee with the tokens of their own launch
frame), so nothing the form *says* about the portal is believed (threat model: webhooks/README.md):

1. the refresh token is exchanged at the OAuth server fixed by configuration
   (:func:`b24desk.installations.token_url`), with our client_id/secret; only its answer names the
   portal (``member_id``, ``client_endpoint``, hence the domain) and the user. A token it did not
   issue for this app, or one of another portal than the form claims, is refused;
2. the portal is then asked, at the endpoint the OAuth server named, with the fresh token:
   ``user.admin`` (DOCS api-reference/common/users/user-admin.md), ``profile``, ``app.info``. Only a
   portal administrator installs, re-installs or re-points the app; anyone else gets a 403 page
   in their language and nothing changes;
3. then the installation is stored (a new epoch: every viewer session of the previous one ends)
   and events and placements are bound (:mod:`b24desk.bindings`). A reinstall or an app update
   comes through here again and re-binds.

No secret is ever sent to an address taken from the request.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import secrets
import threading
import time
from collections import deque
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, make_response, render_template, request

from b24desk import bindings, inbox
from b24desk.client import AuthError, B24Client, B24Error
from b24desk.installations import new_epoch, request_tokens, save_installation, token_url
from b24desk.store import open_db

log = logging.getLogger(__name__)

bp = Blueprint("install", __name__, template_folder="templates")

_DOMAIN = re.compile(r"^[A-Za-z0-9.\-]{1,253}(:\d{1,5})?$")
_TOKEN = re.compile(r"^[A-Za-z0-9._\-]{8,256}$")
_RU = ("ru", "ua", "by", "kz")

# (ru, en): what the installing person reads (the install frame speaks the portal's language)
MESSAGES = {
    "malformed": ("Запрос установки повреждён: {detail}.", "The install request is malformed: {detail}."),
    "widget": (
        "Это запуск виджета, а не установка: приложение открывается по адресу /app.",
        "This is a widget launch, not an install: the app opens at /app.",
    ),
    "no_credentials": (
        "На сервере b24desk не заданы B24DESK_CLIENT_ID и B24DESK_CLIENT_SECRET: установка не может быть проверена.",
        "The b24desk server has no B24DESK_CLIENT_ID/"
        "B24DESK_CLIENT_SECRET configured, so the install cannot be verified.",
    ),
    "oauth_refused": (
        "Сервер авторизации Bitrix24 не подтвердил токен установки ({code}). Откройте приложение в Битрикс24 ещё раз.",
        "The Bitrix24 OAuth server did not confirm the install token ({code}). Open the application in Bitrix24 again.",
    ),
    "oauth_unavailable": (
        "Сервер авторизации Bitrix24 недоступен; повторите установку позже.",
        "The Bitrix24 OAuth server could not be reached; retry the install later.",
    ),
    "other_portal": ("Токен установки выдан другому порталу.", "The install token belongs to another portal."),
    "not_allowed": (
        "Портал {domain} не входит в список разрешённых (B24DESK_PORTAL_DOMAINS).",
        "Portal {domain} is not in the allowed list (B24DESK_PORTAL_DOMAINS).",
    ),
    "portal_refused": (
        "Портал не принял токен установки ({code}).",
        "The portal did not accept the install token ({code}).",
    ),
    "too_many": (
        "Слишком много неудачных попыток установки; подождите минуту и повторите.",
        "Too many failed install attempts; wait a minute and retry.",
    ),
    "not_admin": (
        "Установить, переустановить или перенастроить приложение может только администратор "
        "Битрикс24. Попросите администратора открыть приложение.",
        "Only a Bitrix24 administrator can install, reinstall or re-point the application. "
        "Ask an administrator to open it.",
    ),
}


def _lang(value: str | None) -> str:
    return "ru" if (value or "").strip().lower()[:2] in _RU else "en"


class InstallError(Exception):
    def __init__(self, status: int, key: str, lang: str = "en", **kw):
        self.status, self.code, self.lang = status, key, lang
        ru, en = MESSAGES[key]
        self.messages = {"ru": ru.format(**kw), "en": en.format(**kw)}
        super().__init__(self.messages["en"])

    @property
    def reason(self) -> str:
        return self.messages[self.lang]


def _malformed(detail: str) -> InstallError:
    return InstallError(400, "malformed", detail=detail)


def _get(form, key: str, required: bool = True, max_len: int = 512) -> str | None:
    values = form.getlist(key) if hasattr(form, "getlist") else ([form[key]] if key in form else [])
    value = values[0].strip() if values else ""
    if len(values) > 1:
        raise _malformed(f"{key} given more than once")
    if not value:
        if required:
            raise _malformed(f"missing {key}")
        return None
    if len(value) > max_len:
        raise _malformed(f"{key} is too long")
    if not value.isprintable():
        raise _malformed(f"{key} holds control characters")
    return value


def _token(form, key: str) -> str:
    value = _get(form, key)
    if not _TOKEN.match(value) or not value.isascii():
        raise _malformed(f"malformed {key}")
    return value


def _member_id(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", value) or not value.isascii():
        raise _malformed("malformed member_id")
    return value


def _endpoint(value: str | None, what: str) -> str | None:
    """An http(s) URL with a plain host (an OAuth answer's client_endpoint), normalised to end in /."""
    if not value or not isinstance(value, str):
        return None
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or not _DOMAIN.match(parts.netloc)
        or parts.query
        or parts.fragment
        or not value.isascii()
    ):
        raise InstallError(401, "oauth_refused", code=f"bad {what}")
    return value if value.endswith("/") else value + "/"


def _int(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise _malformed(f"malformed {what}")
    return int(value)


def parse_ui_install(form, args) -> dict:
    """The install wizard's POST (simple-way.md) -> what it *claims* (checked by :func:`authorize`)."""
    placement = (_get(form, "PLACEMENT", required=False) or "DEFAULT").upper()
    if placement != "DEFAULT":
        raise InstallError(400, "widget")
    domain = _get(args, "DOMAIN", required=False) or _get(form, "DOMAIN", required=False)
    if not domain or not _DOMAIN.match(domain):
        raise _malformed("missing or malformed DOMAIN")
    lang = _get(args, "LANG", required=False, max_len=8) or _get(form, "LANG", required=False, max_len=8)
    _token(form, "AUTH_ID")  # sent by every real wizard; not used (the refresh is)
    return {
        "member_id": _member_id(_get(form, "member_id")),
        "refresh_token": _token(form, "REFRESH_ID"),
        "application_token": _token(form, "APPLICATION_TOKEN"),
        "claimed_domain": domain.lower(),
        "lang": lang,
    }


def parse_api_install(form) -> dict:
    """The ONAPPINSTALL form (on-app-install.md) -> what it *claims*."""
    domain = _get(form, "auth[domain]")
    if not _DOMAIN.match(domain):
        raise _malformed("malformed auth[domain]")
    _token(form, "auth[access_token]")
    _int(_get(form, "auth[expires_in]", required=False), "auth[expires_in]")
    return {
        "member_id": _member_id(_get(form, "auth[member_id]")),
        "refresh_token": _token(form, "auth[refresh_token]"),
        "application_token": _token(form, "auth[application_token]"),
        "claimed_domain": domain.lower(),
        "lang": _get(form, "data[LANGUAGE_ID]", required=False, max_len=8),
    }


def domain_allowed(domain: str, patterns: str | None = None) -> bool:
    """``B24DESK_PORTAL_DOMAINS`` (comma-separated shell patterns, e.g. ``*.bitrix24.ru,help.example.com``)
    limits which portals may install. Unset: any portal the OAuth server vouches for."""
    raw = os.environ.get("B24DESK_PORTAL_DOMAINS", "") if patterns is None else patterns
    pats = [p.strip().lower() for p in raw.split(",") if p.strip()]
    return not pats or any(fnmatch.fnmatchcase(domain.lower(), p) for p in pats)


def authorize(
    claims: dict, *, client_id: str | None, client_secret: str | None, oauth_url: str | None, timeout: float = 15.0
) -> dict:
    """Who is installing where, according to the OAuth server and the portal; or ``InstallError``.

    Returns the installation fields to store (tokens, endpoints, domain, member_id, user) plus
    ``admin`` and ``profile``. The form's ``member_id`` must match the OAuth server's answer."""
    lang = claims.get("lang_ui") or "en"
    if not domain_allowed(claims["claimed_domain"]):
        raise InstallError(403, "not_allowed", lang, domain=claims["claimed_domain"])
    if not client_id or not client_secret:
        raise InstallError(503, "no_credentials", lang)
    try:
        answer = request_tokens(
            token_url(None, oauth_url), client_id, client_secret, claims["refresh_token"], timeout=timeout, retries=1
        )
    except AuthError as exc:
        raise InstallError(401, "oauth_refused", lang, code=exc.code) from None
    except B24Error:
        raise InstallError(503, "oauth_unavailable", lang) from None
    access, refresh = answer.get("access_token"), answer.get("refresh_token")
    if not (isinstance(access, str) and isinstance(refresh, str) and access and refresh):
        raise InstallError(401, "oauth_refused", lang, code="no tokens")
    member_id = str(answer.get("member_id") or "")
    if member_id != claims["member_id"]:
        raise InstallError(403, "other_portal", lang)
    endpoint = _endpoint(answer.get("client_endpoint"), "client_endpoint")
    if endpoint is None:
        raise InstallError(401, "oauth_refused", lang, code="no client_endpoint")
    domain = urlsplit(endpoint).netloc.lower()
    if not domain_allowed(domain):
        raise InstallError(403, "not_allowed", lang, domain=domain)
    client = B24Client.from_access_token(
        endpoint, access, portal_id=member_id, max_retries=1, timeout=timeout, share_limiter=False
    )
    try:
        res = client.batch({"admin": ("user.admin", {}), "me": ("profile", {}), "app": ("app.info", {})})
    except AuthError as exc:
        raise InstallError(401, "portal_refused", lang, code=exc.code) from None
    except B24Error as exc:
        raise InstallError(401, "portal_refused", lang, code=exc.code) from None
    finally:
        client.close()
    err = res.errors.get("app") or res.errors.get("me")
    if err is not None:
        raise InstallError(401, "portal_refused", lang, code=err.code)
    me = res.results.get("me") if isinstance(res.results.get("me"), dict) else {}
    # user.admin (DOCS api-reference/common/users/user-admin.md); a portal without it: profile's ADMIN
    admin = res.results.get("admin") if "admin" not in res.errors else me.get("ADMIN")
    is_admin = admin is True or str(admin).lower() in ("true", "1", "y")
    if not is_admin:
        raise InstallError(403, "not_admin", lang)
    user_id = str(answer.get("user_id") or me.get("ID") or "")
    fields = {
        "member_id": member_id,
        "access_token": access,
        "refresh_token": refresh,
        "client_endpoint": endpoint,
        "domain": domain,
        "user_id": user_id or None,
        "scope": inbox.normalize_scope(answer.get("scope") if isinstance(answer.get("scope"), str) else None),
        "status": str(answer.get("status"))[:2] if answer.get("status") else None,
        "application_token": claims["application_token"],
        "lang": claims.get("lang"),
    }
    server = answer.get("server_endpoint")
    if isinstance(server, str) and len(server) < 512:
        fields["server_endpoint"] = server  # kept for reference; never followed
    for key in ("expires_in", "expires"):
        if str(answer.get(key) or "").isdigit():
            fields[key] = int(answer[key])
            break
    return fields


def install_portal(
    db_path: str,
    claims: dict,
    *,
    public_url: str,
    client_id: str | None,
    client_secret: str | None,
    oauth_url: str | None,
    config: dict | None = None,
) -> dict:
    """Authorize, store, bind. Returns ``{"member_id", "user_id", "admin", "bindings", "domain"}``."""
    fields = authorize(claims, client_id=client_id, client_secret=client_secret, oauth_url=oauth_url)
    db = open_db(db_path)
    try:
        save_installation(db, active=1, epoch=new_epoch(), **{k: v for k, v in fields.items() if v is not None})
    finally:
        db.conn.close()
    client = B24Client.from_installation(
        db_path, fields["member_id"], client_id, client_secret, oauth_url, max_retries=2
    )
    try:
        report = bindings.ensure_bindings(client, public_url, config=config, lang=fields.get("lang") or "en")
    except B24Error as exc:  # installed all the same; the hourly check binds later
        log.warning("install %s: binding failed: %s", fields["member_id"], exc)
        report = bindings.BindReport(errors={"event.get": str(exc)}, offline=False)
    finally:
        client.close()
    return {
        "member_id": fields["member_id"],
        "user_id": fields.get("user_id"),
        "admin": True,
        "domain": fields["domain"],
        "client_endpoint": fields["client_endpoint"],
        "bindings": report.as_dict(),
    }


# Every install attempt that passes the form checks costs a request to the OAuth server with our
# client_id/secret, and the OAuth server may block a client that refreshes too much (DOCS
# settings/oauth/auto-renewal.md): failed attempts are limited per sender (behind a proxy, the
# proxy's address: then the limit is global, which is the point).
FAILED_PER_MINUTE = 20


class _Failures:
    """Failed install attempts per sender over the last minute (one per app, in its extensions)."""

    def __init__(self):
        self.by_sender: dict[str, deque] = {}
        self.lock = threading.Lock()

    def too_many(self, sender: str, limit: int, now: float) -> bool:
        with self.lock:
            q = self.by_sender.get(sender)
            while q and q[0] < now - 60:
                q.popleft()
            if q is not None and not q:
                del self.by_sender[sender]
            return bool(q) and len(q) >= limit

    def add(self, sender: str, now: float) -> None:
        with self.lock:
            if len(self.by_sender) > 10000:  # a flood of senders: forget them rather than grow
                self.by_sender.clear()
            self.by_sender.setdefault(sender, deque()).append(now)


def _failures() -> _Failures:
    return current_app.extensions.setdefault("b24desk.install_failures", _Failures())


@bp.post("/install")
def install():
    form = request.form
    api_only = (form.get("event") or "").strip().upper() == inbox.INSTALL
    lang = _lang(request.args.get("LANG") or form.get("LANG") or form.get("data[LANGUAGE_ID]"))
    try:
        claims = parse_api_install(form) if api_only else parse_ui_install(form, request.args)
        claims["lang_ui"] = lang
        sender, now = request.remote_addr or "?", time.time()
        if _failures().too_many(
            sender, int(current_app.config.get("INSTALL_FAILED_PER_MINUTE", FAILED_PER_MINUTE)), now
        ):
            raise InstallError(429, "too_many", lang)
        try:
            result = install_portal(
                current_app.config["DB"],
                claims,
                public_url=current_app.config["PUBLIC_URL"],
                client_id=current_app.config.get("CLIENT_ID"),
                client_secret=current_app.config.get("CLIENT_SECRET"),
                oauth_url=current_app.config.get("OAUTH_URL"),
                config=current_app.config.get("B24DESK"),
            )
        except InstallError as exc:
            if exc.status in (401, 403):
                _failures().add(sender, now)
            raise
    except InstallError as exc:
        exc.lang = lang
        log.info("install rejected: %s", exc.messages["en"])
        if api_only:
            return jsonify(error="install_rejected", code=exc.code, error_description=exc.reason), exc.status
        resp = make_response(
            render_template("webhooks/install_failed.html", reason=exc.reason, lang=lang, status=exc.status), exc.status
        )
        resp.headers["Content-Security-Policy"] = "default-src 'none'; base-uri 'none'; form-action 'none'"
        resp.headers["Cache-Control"] = "no-store"
        return resp
    runtime = current_app.extensions.get("b24desk.runtime")
    if runtime is not None:
        runtime.portal_added(result["member_id"])
    log.info(
        "installed into %s (bound %d, errors %d)",
        result["member_id"],
        len(result["bindings"]["bound"]),
        len(result["bindings"]["errors"]),
    )
    if api_only:
        return jsonify(ok=True, **result)
    nonce = secrets.token_urlsafe(16)
    resp = make_response(render_template("webhooks/installed.html", result=result, nonce=nonce))
    # framed by the installing portal only (its address as the OAuth server named it)
    ancestors = " ".join(_origins(result)) or "'none'"
    resp.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}' {BX24_ORIGIN}; style-src 'self'; "
        f"base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}"
    )
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["Cache-Control"] = "no-store"
    return resp


BX24_ORIGIN = "https://api.bitrix24.com"


def _origins(fields: dict) -> list[str]:
    """The portal's own origins: its endpoint's, and https://DOMAIN."""
    out = []
    ep = urlsplit(fields.get("client_endpoint") or "")
    if ep.scheme and ep.netloc:
        out.append(f"{ep.scheme}://{ep.netloc}")
    if fields.get("domain") and f"https://{fields['domain']}" not in out:
        out.append(f"https://{fields['domain']}")
    return out
