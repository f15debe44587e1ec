"""``POST /install``: both local-app flavours (DOCS settings/app-installation/local-apps/*.md).

- **With UI**: the install wizard frame POSTs ``AUTH_ID``, ``REFRESH_ID``, ``AUTH_EXPIRES``,
  ``member_id``, ``APPLICATION_TOKEN``, ``PLACEMENT=DEFAULT`` (+ ``SERVER_ENDPOINT``,
  ``APPLICATION_SCOPE``, ``status``) with ``DOMAIN``, ``PROTOCOL``, ``LANG``, ``APP_SID`` in the query
  (settings/oauth/simple-way.md). We answer a page that calls ``BX24.installFinish()``; until it
  runs the portal delivers no events (settings/app-installation/installation-finish.md).
- **API only**: the portal POSTs the ONAPPINSTALL form with ``auth[...]`` server to server
  (api-reference/common/events/on-app-install.md); no page, no installFinish.

Either way: verify the tokens with the portal, store the installation (keyed by ``member_id``),
bind events and placements (:mod:`b24desk.bindings`). A reinstall or an app update comes through
here again and re-binds. The one unauthenticated write of the app is guarded: the new token must
work on the portal, and for a portal we already know, on its *stored* address, so a forged
install cannot take over another portal's installation.
"""
from __future__ import annotations

import fnmatch
import logging
import os
import re
import secrets
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, make_response, render_template, request

from b24desk import bindings, inbox
from b24desk.client import AuthError, B24Client, B24Error
from b24desk.installations import get_installation, save_installation
from b24desk.store import open_db

log = logging.getLogger(__name__)

bp = Blueprint("install", __name__, template_folder="templates")

_DOMAIN = re.compile(r"^[A-Za-z0-9.\-]{1,253}(:\d{1,5})?$")
_TOKEN = re.compile(r"^[A-Za-z0-9._\-]{8,256}$")


class InstallError(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def _get(form, key: str, required: bool = True, max_len: int = 512) -> str | None:
    values = form.getlist(key) if hasattr(form, "getlist") else ([form[key]] if key in form else [])
    value = values[0].strip() if values else ""
    if len(values) > 1:
        raise InstallError(400, f"{key} given more than once")
    if not value:
        if required:
            raise InstallError(400, f"missing {key}")
        return None
    if len(value) > max_len:
        raise InstallError(400, f"{key} is too long")
    return value


def _token(form, key: str) -> str:
    value = _get(form, key)
    if not _TOKEN.match(value):
        raise InstallError(400, f"malformed {key}")
    return value


def _member_id(value: str) -> str:
    if not re.match(r"^[A-Za-z0-9_.\-]{1,64}$", value):
        raise InstallError(400, "malformed member_id")
    return value


def _endpoint(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or not _DOMAIN.match(parts.netloc):
        raise InstallError(400, f"malformed {what}")
    return value if value.endswith("/") else value + "/"


def _int(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 12:
        raise InstallError(400, f"malformed {what}")
    return int(value)


def parse_ui_install(form, args) -> dict:
    """The install wizard's POST (simple-way.md) -> installation fields."""
    placement = (_get(form, "PLACEMENT", required=False) or "DEFAULT").upper()
    if placement != "DEFAULT":
        raise InstallError(400, f"PLACEMENT={placement} is a widget launch, not an install (use /app)")
    domain = _get(args, "DOMAIN", required=False) or _get(form, "DOMAIN", required=False)
    if not domain or not _DOMAIN.match(domain):
        raise InstallError(400, "missing or malformed DOMAIN")
    protocol = _get(args, "PROTOCOL", required=False) or _get(form, "PROTOCOL", required=False) or "1"
    scheme = "http" if protocol == "0" else "https"
    lang = _get(args, "LANG", required=False, max_len=8) or _get(form, "LANG", required=False, max_len=8)
    return {
        "member_id": _member_id(_get(form, "member_id")),
        "access_token": _token(form, "AUTH_ID"),
        "refresh_token": _token(form, "REFRESH_ID"),
        "expires_in": _int(_get(form, "AUTH_EXPIRES", required=False), "AUTH_EXPIRES") or 3600,
        "application_token": _token(form, "APPLICATION_TOKEN"),
        "domain": domain.lower(),
        "client_endpoint": f"{scheme}://{domain.lower()}/rest/",
        "server_endpoint": _endpoint(_get(form, "SERVER_ENDPOINT", required=False), "SERVER_ENDPOINT"),
        "scope": inbox.normalize_scope(_get(form, "APPLICATION_SCOPE", required=False)),
        "status": _get(form, "status", required=False, max_len=2),
        "lang": lang,
    }


def parse_api_install(form) -> dict:
    """The ONAPPINSTALL form (on-app-install.md) -> installation fields."""
    domain = _get(form, "auth[domain]")
    if not _DOMAIN.match(domain):
        raise InstallError(400, "malformed auth[domain]")
    client_endpoint = _endpoint(_get(form, "auth[client_endpoint]", required=False), "auth[client_endpoint]")
    return {
        "member_id": _member_id(_get(form, "auth[member_id]")),
        "access_token": _token(form, "auth[access_token]"),
        "refresh_token": _token(form, "auth[refresh_token]"),
        "expires_in": _int(_get(form, "auth[expires_in]", required=False), "auth[expires_in]") or 3600,
        "application_token": _token(form, "auth[application_token]"),
        "domain": domain.lower(),
        "client_endpoint": client_endpoint or f"https://{domain.lower()}/rest/",
        "server_endpoint": _endpoint(_get(form, "auth[server_endpoint]", required=False), "auth[server_endpoint]"),
        "scope": inbox.normalize_scope(_get(form, "auth[scope]", required=False)),
        "status": _get(form, "auth[status]", required=False, max_len=2),
        "user_id": _get(form, "auth[user_id]", required=False, max_len=20),
        "lang": _get(form, "data[LANGUAGE_ID]", required=False, max_len=8),
    }


def domain_allowed(domain: str, patterns: str | None = None) -> bool:
    """``B24DESK_PORTAL_DOMAINS`` (comma-separated shell patterns, e.g. ``*.bitrix24.ru,help.example.com``)
    limits which new portals may install, so a forged install cannot make this server call an
    arbitrary host. Unset: any portal (a public app cannot know its customers' domains)."""
    raw = os.environ.get("B24DESK_PORTAL_DOMAINS", "") if patterns is None else patterns
    pats = [p.strip().lower() for p in raw.split(",") if p.strip()]
    return not pats or any(fnmatch.fnmatchcase(domain.lower(), p) for p in pats)


def verify(db, fields: dict, timeout: float = 15.0) -> dict:
    """Call ``app.info`` and ``profile`` with the new token; returns ``profile``.

    For a portal already stored, the call goes to the stored ``client_endpoint`` (a 302 there is
    followed: a renamed portal), so only the real portal's token passes.
    """
    existing = get_installation(db, fields["member_id"])
    if existing is None and not domain_allowed(fields["domain"]):
        # a new portal's endpoint comes from the request: call only the portals the admin allows
        raise InstallError(403, f"portal {fields['domain']} is not in B24DESK_PORTAL_DOMAINS")
    endpoint = (existing or {}).get("client_endpoint") or fields["client_endpoint"]
    client = B24Client.from_access_token(endpoint, fields["access_token"], portal_id=fields["member_id"],
                                         max_retries=1, timeout=timeout, share_limiter=False)
    try:
        res = client.batch({"app": ("app.info", {}), "me": ("profile", {})})
    except AuthError as exc:
        raise InstallError(401, f"the portal refused the install token ({exc.code})") from None
    except B24Error as exc:
        raise InstallError(400, f"could not verify the install with the portal ({exc.code})") from None
    finally:
        client.close()
    err = res.errors.get("app")
    if err is not None:
        raise InstallError(401 if isinstance(err, AuthError) else 400,
                           f"the portal refused the install token ({err.code})")
    me = res.results.get("me") if isinstance(res.results.get("me"), dict) else {}
    return me


def install_portal(db_path: str, fields: dict, *, public_url: str, client_id: str | None,
                   client_secret: str | None, oauth_url: str | None, config: dict | None = None) -> dict:
    """Verify, store, bind. Returns ``{"member_id", "user_id", "admin", "bindings"}``."""
    db = open_db(db_path)
    try:
        me = verify(db, fields)
        if me.get("ID") and not fields.get("user_id"):
            fields["user_id"] = str(me["ID"])
        values = {k: v for k, v in fields.items() if v is not None}
        save_installation(db, active=1, **values)
    finally:
        db.conn.close()
    report = None
    client = B24Client.from_installation(db_path, fields["member_id"], client_id, client_secret, oauth_url,
                                         max_retries=2)
    try:
        report = bindings.ensure_bindings(client, public_url, config=config, lang=fields.get("lang") or "en")
    except B24Error as exc:        # installed all the same; the hourly check binds later
        log.warning("install %s: binding failed: %s", fields["member_id"], exc)
        report = bindings.BindReport(errors={"event.get": str(exc)}, offline=False)
    finally:
        client.close()
    admin = me.get("ADMIN")
    return {"member_id": fields["member_id"], "user_id": fields.get("user_id"),
            "admin": bool(admin) if admin is not None else None, "bindings": report.as_dict()}


@bp.post("/install")
def install():
    form = request.form
    api_only = (form.get("event") or "").strip().upper() == inbox.INSTALL
    try:
        fields = parse_api_install(form) if api_only else parse_ui_install(form, request.args)
        result = install_portal(current_app.config["DB"], fields,
                                public_url=current_app.config["PUBLIC_URL"],
                                client_id=current_app.config.get("CLIENT_ID"),
                                client_secret=current_app.config.get("CLIENT_SECRET"),
                                oauth_url=current_app.config.get("OAUTH_URL"),
                                config=current_app.config.get("B24DESK"))
    except InstallError as exc:
        log.info("install rejected: %s", exc.reason)
        if api_only:
            return jsonify(error="install_rejected", error_description=exc.reason), exc.status
        return render_template("webhooks/install_failed.html", reason=exc.reason), exc.status
    runtime = current_app.extensions.get("b24desk.runtime")
    if runtime is not None:
        runtime.portal_added(result["member_id"])
    log.info("installed into %s (bound %d, errors %d)", result["member_id"],
             len(result["bindings"]["bound"]), len(result["bindings"]["errors"]))
    if api_only:
        return jsonify(ok=True, **result)
    nonce = secrets.token_urlsafe(16)
    resp = make_response(render_template("webhooks/installed.html", result=result, nonce=nonce))
    # framed by the installing portal only; the one inline script (installFinish) by nonce
    ancestors = " ".join(_origins(fields)) or "'none'"
    resp.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}' {BX24_ORIGIN}; style-src 'self'; "
        f"base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}")
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
