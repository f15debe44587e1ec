"""Test helper (no tests here): a viewer token as a verified launch would leave it, for tests that
skip the launch: bound to the installation's epoch (a minimal installation row is made for a store
seeded without one) and, for an admin, with the server-side session the admin re-check reads."""

from __future__ import annotations

import time
from dataclasses import replace

from b24desk.installations import ensure_epoch, get_installation, save_installation
from b24desk.store import open_db
from b24desk.viewer import ADMIN, Viewer, dump_token, open_sessions, save_session


def trusted_token(db_path: str, viewer: Viewer, secret: str = "test") -> str:
    db = open_db(db_path)
    try:
        inst = get_installation(db, viewer.portal)
        if inst is None:
            inst = save_installation(
                db, member_id=viewer.portal, client_endpoint="http://127.0.0.1:9/rest/", domain="127.0.0.1:9", active=1
            )
        v = replace(viewer, epoch=ensure_epoch(db, viewer.portal))
        if v.role == ADMIN:
            sessions = open_sessions(db_path)
            save_session(sessions, v, "0" * 32, None, admin=True, now=time.time())
            sessions.conn.close()
        return dump_token(secret, v)
    finally:
        db.conn.close()
