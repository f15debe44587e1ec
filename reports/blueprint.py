"""The ``reports`` blueprint (pages, API, exports share it, its templates and its static files)."""

from __future__ import annotations

from flask import Blueprint, current_app

from web.db import get_db  # noqa: F401  (the request's store, for the blueprint's modules)

bp = Blueprint(
    "reports", __name__, template_folder="templates", static_folder="static", static_url_path="/reports/static"
)


def config() -> dict:
    return current_app.config.get("B24DESK") or {}
