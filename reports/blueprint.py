"""The ``reports`` blueprint (pages, API, exports share it, its templates and its static files)."""
from __future__ import annotations

from flask import Blueprint, current_app

bp = Blueprint("reports", __name__, template_folder="templates", static_folder="static",
               static_url_path="/reports/static")


def get_db():
    from app import get_db as app_get_db   # the app's per-context store (flaskr's g.db pattern)
    return app_get_db()


def config() -> dict:
    return current_app.config.get("B24DESK") or {}
