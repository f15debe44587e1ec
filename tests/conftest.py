"""Shared fixtures (flaskr style): an app on a temporary store, its test client and CLI runner."""

from __future__ import annotations

import pytest

from app import create_app  # (pytest.ini puts the repository root on the path)
from b24desk.store import open_db


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
