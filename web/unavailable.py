"""The answer while the store cannot be written (a full or read-only disk, an I/O error): 503,
never 500. Events get the JSON 503 with ``Retry-After`` (the portal, or its offline queue that the
reconcile reads, delivers them again: nothing is lost); pages a short "temporarily unavailable"
page in the viewer's language. The per-thread connections the events path keeps are dropped, so
the next request opens the store afresh and the server recovers by itself once the disk does."""

from __future__ import annotations

import logging
import sqlite3

from flask import jsonify, render_template, request

from b24desk.store import storage_unavailable
from b24desk.text.i18n import t

log = logging.getLogger(__name__)

RETRY_AFTER = 60  # seconds


def _lang() -> str:
    lang = (
        request.values.get("LANG")
        or request.values.get("lang")
        or request.accept_languages.best_match(["ru", "en"])
        or "ru"
    )
    return "ru" if str(lang).lower()[:2] in ("ru", "ua", "by", "kz") else "en"


def _wants_json() -> bool:
    return (
        request.path in ("/events", "/install")
        or request.path.startswith("/api/")
        or request.accept_mimetypes.best == "application/json"
    )


def unavailable(exc: Exception):
    if not storage_unavailable(exc):
        raise exc  # any other error: Flask's own 500 handling
    log.warning("store unavailable on %s %s: %s", request.method, request.path, exc)
    from webhooks.events import forget_connections

    forget_connections()
    lang = _lang()
    if _wants_json():
        resp = jsonify(error="TEMPORARILY_UNAVAILABLE", error_description=t("err_unavailable", lang))
    else:
        resp = render_template(
            "reports/error.html",
            lang=lang,
            status=503,
            hint=t("err_unavailable", lang),
            message=t("err_unavailable_detail", lang),
            t=lambda k: t(k, lang),
        )
    return resp, 503, {"Retry-After": str(RETRY_AFTER)}


def init_app(app) -> None:
    app.register_error_handler(sqlite3.OperationalError, unavailable)
    app.register_error_handler(OSError, unavailable)
