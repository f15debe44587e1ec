"""Shared fixtures (flaskr style): an app on a temporary store, its test client and CLI runner."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from b24desk.store import open_db  # noqa: E402


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "b24desk.db")


@pytest.fixture
def db(db_path):
    d = open_db(db_path)
    yield d
    d.conn.close()


@pytest.fixture
def app(db_path, tmp_path):
    return create_app({"TESTING": True, "DB": db_path, "SECRET_KEY": "test-secret"})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()
