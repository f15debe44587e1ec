"""The store of the current request or CLI context: one connection per context, closed at its
end (the pattern of Flask's tutorial, flaskr's ``db.py``)."""

from __future__ import annotations

from flask import current_app, g

from b24desk.store import open_db


def get_db():
    """The store for this request/CLI context (opened on first use)."""
    if "db" not in g:
        g.db = open_db(current_app.config["DB"])
    return g.db


def close_db(exc=None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.conn.close()


def init_app(app) -> None:
    app.teardown_appcontext(close_db)
