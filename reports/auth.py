"""The viewer of a request: the signed token from ``Authorization: Bearer``, ``?t=`` or a form's ``t``.

Thin Flask glue over ``b24desk.viewer``: pages, ``GET /api/kpi`` and exports all go through
``viewer_required``, so a role's slice is enforced on the server whatever the page's script asks.
Refusals become JSON for the API and exports, and an escaped error page for pages.
"""

from __future__ import annotations

import time
from functools import wraps
from urllib.parse import urlencode

from flask import current_app, g, jsonify, render_template, request

from b24desk.text.i18n import MESSAGES, t
from b24desk.viewer import (
    ADMIN_RECHECK,
    TOKEN_MAX_AGE,
    Viewer,
    ViewerError,
    check_installation,
    dump_token,
    load_token,
    open_sessions,
    recheck_admin,
)

JSON_PREFIXES = ("/api/", "/reports/export")


def token_from_request() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.args.get("t") or request.form.get("t") or None


def current_viewer() -> Viewer:
    if "viewer" not in g:
        token = token_from_request()
        viewer = load_token(
            current_app.config["SECRET_KEY"], token, current_app.config.get("VIEWER_TOKEN_MAX_AGE", TOKEN_MAX_AGE)
        )
        g.error_lang = viewer.lang
        _still_valid(viewer)
        g.viewer = viewer
        g.viewer_token = token
    return g.viewer


def _still_valid(viewer: Viewer) -> None:
    """A signed token is not enough: its installation must still be the one it was minted for, and
    an admin's right is re-asked of the portal every few minutes (b24desk.viewer)."""
    from .blueprint import get_db
    from .launch import portal_caller

    db = get_db()
    inst = check_installation(db, viewer)
    if viewer.is_admin:
        call, clients = portal_caller()
        sessions = open_sessions(current_app.config["DB"])
        try:
            recheck_admin(
                sessions,
                viewer,
                inst,
                call=call,
                now=time.time(),
                every=float(current_app.config.get("ADMIN_RECHECK_SECONDS", ADMIN_RECHECK)),
            )
        finally:
            sessions.conn.close()
            for c in clients.values():
                c.close()


def sign(viewer: Viewer) -> str:
    return dump_token(current_app.config["SECRET_KEY"], viewer)


def viewer_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        current_viewer()
        return view(*args, **kwargs)

    return wrapped


def link(endpoint_path: str, **params) -> str:
    """A same-app URL carrying the viewer token and ``params`` (empty values dropped)."""
    q = {k: v for k, v in params.items() if v not in (None, "")}
    q["t"] = g.get("viewer_token")
    return endpoint_path + "?" + urlencode(q)


def wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES) or request.accept_mimetypes.best == "application/json"


_HINTS = {
    "no_token": "err_no_token",
    "bad_token": "err_no_token",
    "expired": "err_expired",
    "revoked": "err_revoked",
    "demoted": "err_demoted",
}


def error_response(err: ViewerError):
    """JSON for the API and exports (``error``, ``message``, ``hint`` in the viewer's language and
    ``field`` where one is named); for pages, the message in words with a way back to the dashboard."""
    from flask import url_for

    lang = (
        (g.get("viewer").lang if g.get("viewer") else None) or g.get("error_lang") or request.args.get("LANG") or "en"
    )
    lang = "ru" if str(lang).lower()[:2] in ("ru", "ua", "by", "kz") else "en"
    generic = _HINTS.get(err.code) or (
        "err_forbidden" if err.status == 403 else "err_bad_request" if err.status == 400 else None
    )
    if wants_json():
        body = {"error": err.code, "message": err.message}
        if getattr(err, "field", None):
            body["field"] = err.field
        if generic:
            body["hint"] = t(generic, lang)  # the same refusal, in the viewer's language
        return jsonify(body), err.status
    # a page says what exactly to fix where it can (a period the wrong way round, a bad preset)
    hint = _HINTS.get(err.code) or getattr(err, "hint", None)
    if not hint and f"err_{err.code}" in MESSAGES:
        hint = f"err_{err.code}"
    specific = hint is not None
    hint = hint or generic
    # the technical message (English, may name parameters) only for English readers without a
    # message in words
    message = "" if specific or lang == "ru" else err.message
    back = None
    if g.get("viewer") is not None and g.get("viewer_token"):
        back = url_for("reports.dashboard", t=g.viewer_token)
    return render_template(
        "reports/error.html",
        lang=lang,
        status=err.status,
        message=message,
        hint=t(hint, lang) if hint else "",
        back=back,
        t=lambda k: t(k, lang),
    ), err.status


def init_app(app) -> None:
    app.register_error_handler(ViewerError, error_response)
