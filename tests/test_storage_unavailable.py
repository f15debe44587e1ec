"""A store that cannot be written (a read-only or full disk): events get the JSON 503 with
Retry-After, pages a localized "temporarily unavailable" page (never a 500); nothing is lost, and
the server recovers by itself once the disk does -- no restart.

Read-only is real SQLite: every new connection is opened with ``PRAGMA query_only`` (writes then
fail with "attempt to write a readonly database", as on a read-only mount). A full disk is SQLite's
"database or disk is full", raised for the writes of those connections."""

from __future__ import annotations

import sqlite3

import pytest
import requests
from events_harness import Harness, double, event_body
from pages_support import build_desk

from app import create_app
from b24desk import inbox
from b24desk.store import open_db, storage_unavailable


class _FullDisk(sqlite3.Connection):
    def execute(self, sql, *a):
        if sql.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE", "REPLACE", "BEGIN"):
            raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, *a)


@pytest.fixture
def broken_disk(monkeypatch):
    """``broken_disk("readonly" | "full")`` breaks every connection opened from now on;
    ``broken_disk(None)`` mends the disk."""
    real = sqlite3.connect

    def set_state(state):
        if state is None:
            monkeypatch.setattr(sqlite3, "connect", real)
            return

        def connect(*a, **k):
            if state == "full":
                k["factory"] = _FullDisk
            conn = real(*a, **k)
            if state == "readonly":
                conn.execute("PRAGMA query_only = ON")
            return conn

        monkeypatch.setattr(sqlite3, "connect", connect)

    return set_state


@pytest.mark.parametrize("state", ["readonly", "full"])
def test_events_get_a_json_503_and_land_once_the_disk_recovers(tmp_path, broken_disk, state):
    d = double(seed=2, tickets=30)
    h = Harness(tmp_path, d, runtime=False)
    try:
        assert h.install_api().status_code == 200
        hdr = {"Content-Type": "application/x-www-form-urlencoded"}
        tid = d.portal.task_list[0]["id"]
        body = event_body(h, "ONTASKUPDATE", {"FIELDS_BEFORE": {"ID": tid}, "FIELDS_AFTER": {"ID": tid}})
        broken_disk(state)
        r = requests.post(h.url + "/events", data=body, headers=hdr, timeout=10)
        assert r.status_code == 503 and r.headers["Retry-After"] == "60"
        assert r.json()["error"] == "TEMPORARILY_UNAVAILABLE"
        broken_disk(None)
        # the portal (or the offline queue the reconcile reads) delivers it again: it lands now
        r = requests.post(h.url + "/events", data=body, headers=hdr, timeout=10)
        assert r.status_code == 200, r.text
        with h.db() as db:
            assert inbox.counts(db).get(inbox.NEW) == 1
    finally:
        h.close()
        d.stop()


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    desk = build_desk(tmp_path_factory.mktemp("unavailable"), tickets=60)
    yield desk
    desk.double.stop()


@pytest.mark.parametrize("state", ["readonly", "full"])
@pytest.mark.parametrize("lang, text", [("ru", "временно недоступен"), ("en", "temporarily unavailable")])
def test_a_launch_on_a_broken_disk_shows_a_localized_page_then_recovers(desk, broken_disk, state, lang, text):
    app = create_app({"TESTING": True, "DB": desk.db_path, "SECRET_KEY": "t"})
    client = app.test_client()

    def launch():
        return client.post(f"/app?DOMAIN=x&PROTOCOL=1&LANG={lang}&APP_SID=x", data=desk.launch_form(desk.admin))

    broken_disk(state)
    r = launch()
    assert r.status_code == 503, r.status_code
    page = r.get_data(as_text=True)
    assert text in page and "Traceback" not in page and r.headers["Retry-After"] == "60"
    broken_disk(None)
    r = launch()
    assert r.status_code == 303
    assert client.get(r.headers["Location"]).status_code == 200


def test_what_counts_as_unavailable(tmp_path):
    db = open_db(tmp_path / "s.db")
    db.execute("PRAGMA query_only = ON")
    with pytest.raises(sqlite3.OperationalError) as exc:
        db.execute("insert into settings (portal, key, value) values ('p', 'k', '1')")
    assert storage_unavailable(exc.value)
    assert storage_unavailable(sqlite3.OperationalError("database or disk is full"))
    assert storage_unavailable(OSError(28, "No space left on device"))
    assert not storage_unavailable(sqlite3.OperationalError("no such table: x"))
    assert not storage_unavailable(ValueError("database is locked"))
