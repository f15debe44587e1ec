"""The viewer of a request: the signed token from ``Authorization: Bearer``, ``?t=`` or a form's ``t``.

Thin Flask glue over ``b24desk.viewer``: pages, ``GET /api/kpi`` and exports all go through
``viewer_required``, so a role's slice is enforced on the server whatever the page's script asks.
Refusals become JSON for the API and exports, and an escaped error page for pages.
"""
from __future__ import annotations

from functools import wraps
from urllib.parse import urlencode

from flask import current_app, g, jsonify, render_template, request

from b24desk.viewer import TOKEN_MAX_AGE, Viewer, ViewerError, dump_token, load_token

from b24desk.text.i18n import t

JSON_PREFIXES = ("/api/", "/reports/export")


def token_from_request() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.args.get("t") or request.form.get("t") or None


def current_viewer() -> Viewer:
    if "viewer" not in g:
        token = token_from_request()
        g.viewer = load_token(current_app.config["SECRET_KEY"], token,
                              current_app.config.get("VIEWER_TOKEN_MAX_AGE", TOKEN_MAX_AGE))
        g.viewer_token = token
    return g.viewer


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


def error_response(err: ViewerError):
    if wants_json():
        return jsonify({"error": err.code, "message": err.message}), err.status
    lang = (g.get("viewer").lang if g.get("viewer") else None) or request.args.get("LANG") or "en"
    hint = {"no_token": "err_no_token", "expired": "err_expired"}.get(err.code)
    if err.status == 403 and not hint:
        hint = "err_forbidden"
    return render_template("reports/error.html", lang=lang, status=err.status, message=err.message,
                           hint=t(hint, lang) if hint else "", t=lambda k: t(k, lang)), err.status


def init_app(app) -> None:
    app.register_error_handler(ViewerError, error_response)
