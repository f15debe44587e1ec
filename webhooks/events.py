"""``POST /events``: verify, write to the inbox, answer 200 at once.

The portal gives a handler one try and no retry (DOCS api-reference/events/index.md), so the only
work on this path is the token check and one INSERT; the inbox worker does the rest, including
confirming an ``ONAPPUNINSTALL`` with the portal before it drops anything (the application token is
in every viewer's frame, so it proves only that the sender once saw the app). Forged or
broken requests get 4xx and change nothing: an unknown portal or a wrong ``application_token`` is
401 with no portal call, missing or malformed fields 400, a body over ``EVENTS_MAX_BYTES`` 413.
"""

from __future__ import annotations

import logging
import threading

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from b24desk import inbox
from b24desk.store import open_db

log = logging.getLogger(__name__)

bp = Blueprint("events", __name__)

EVENTS_MAX_BYTES = 64 * 1024  # an event form is well under 4 KiB

_local = threading.local()


def _db():
    """A connection per thread and store, kept open: the ack path must not pay for an open."""
    path = current_app.config["DB"]
    cache = getattr(_local, "dbs", None)
    if cache is None:
        cache = _local.dbs = {}
    db = cache.get(path)
    if db is None:
        db = cache[path] = open_db(path)
        # The WAL checkpoint (an fsync) would land on whichever commit crosses the threshold:
        # not on an ack. The inbox worker checkpoints instead (inbox.Worker.drain).
        db.execute("PRAGMA wal_autocheckpoint=0")
    return db


def forget_connections() -> None:
    """Close this thread's kept connections (after the store failed: the next request reopens it)."""
    for db in (getattr(_local, "dbs", None) or {}).values():
        try:
            db.conn.close()
        except Exception:
            pass
    _local.dbs = {}


@bp.before_request
def _limits():
    request.max_content_length = current_app.config.get("EVENTS_MAX_BYTES", EVENTS_MAX_BYTES)
    request.max_form_parts = inbox.MAX_PAIRS + 1


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return jsonify(error=exc.name, error_description=exc.description), exc.code


def _reject(status: int, reason: str):
    return jsonify(error="rejected", error_description=reason), status


@bp.post("/events")
def events():
    if request.mimetype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return _reject(400, "expected a form-encoded body (application/x-www-form-urlencoded)")
    pairs = [(k, v) for k, v in request.form.items(multi=True)]
    if request.files:
        return _reject(400, "files are not accepted")
    db = _db()
    try:
        portal, event, fields = inbox.authenticate(db, pairs)
    except inbox.Rejected as exc:
        if exc.status == 401:
            log.info("events: rejected %s", exc.reason)
        return _reject(exc.status, exc.reason)
    if event in inbox.IGNORED:
        return jsonify(ok=True)
    # ONAPPUNINSTALL is confirmed with the portal by the worker before anything is dropped
    # (inbox.confirm_uninstall); ONAPPINSTALL only re-binds: an event never changes endpoints,
    # tokens or the application token (those come from /install, vouched for by the OAuth server).
    inbox.enqueue(db, portal, event, pairs)
    worker = current_app.extensions.get("b24desk.worker")
    if worker is not None:
        worker.notify()
    return jsonify(ok=True)
