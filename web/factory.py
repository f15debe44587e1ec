"""The Flask app factory (``flask --app app`` finds it through the top-level ``app.py``).

Web code is a thin layer: blueprints in ``webhooks/`` (install, events) and ``reports/`` (pages,
API) call into the ``b24desk`` core, which knows nothing of Flask. Nothing here starts a
scheduler or a network client: that happens only in the server entry point (``web/server.py``).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask

from b24desk import config as b24config

from . import db as web_db


def _secret_key(instance_path: str) -> str:
    """B24DESK_SECRET_KEY, else a random key kept in the instance folder (stable across restarts)."""
    key = os.environ.get("B24DESK_SECRET_KEY")
    if key:
        return key
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.from_mapping(
        DB=b24config.db_path(),
        B24DESK=b24config.load_config(),
        PUBLIC_URL=b24config.env("B24DESK_PUBLIC_URL", "http://127.0.0.1:5000"),
        CLIENT_ID=b24config.env("B24DESK_CLIENT_ID"),
        CLIENT_SECRET=b24config.env("B24DESK_CLIENT_SECRET"),
        OAUTH_URL=b24config.env("B24DESK_OAUTH_URL"),
        MAX_CONTENT_LENGTH=1024 * 1024,  # events and launches are small; a huge body gets 413
    )
    if test_config:
        app.config.update(test_config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(app.instance_path)

    web_db.init_app(app)

    import reports
    import webhooks

    from . import cli, unavailable

    webhooks.init_app(app)
    reports.init_app(app)
    cli.init_app(app)
    unavailable.init_app(app)
    return app
