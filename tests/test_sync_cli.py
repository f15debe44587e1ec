"""``flask sync``: options, environment, clear errors; the per-portal lock; the progress bar."""

from __future__ import annotations

import io
import json
import os
import socket
import time

import pytest

from app import create_app
from b24desk import sync as sync_mod
from b24desk.installations import save_installation
from b24desk.store import get_cursor, open_db
from portal_double import PortalDouble


@pytest.fixture(scope="module")
def double():
    d = PortalDouble(seed=3, tickets=120, drain_per_s=1e6).start()
    yield d
    d.stop()


def tickets(db_path, source="task") -> int:
    db = open_db(db_path)
    try:
        return db.execute(
            "select count(*) from tickets where source = ? and coalesce(deleted, 0) = 0", [source]
        ).fetchone()[0]
    finally:
        db.conn.close()


def test_flask_sync_full_then_incremental(runner, double, db_path):
    args = ["sync", "--webhook", double.webhook_url, "--db", db_path, "--source", "tasks", "--rps", "100"]
    res = runner.invoke(args=args)
    assert res.exit_code == 0, res.output
    assert "tasks: full, " in res.output and "tickets saved" in res.output
    assert tickets(db_path) == len(double.truth.select("task"))
    res = runner.invoke(args=args)
    assert res.exit_code == 0 and "tasks: incremental, 0 tickets saved" in res.output


def test_webhook_and_db_from_the_environment(double, tmp_path, monkeypatch):
    path = str(tmp_path / "env.db")
    monkeypatch.setenv("B24DESK_DB", path)  # read by the app, as `flask` creates it
    runner = create_app({"TESTING": True, "SECRET_KEY": "test"}).test_cli_runner()
    res = runner.invoke(
        args=["sync", "--source", "tasks:group=7", "--quiet"], env={"B24DESK_WEBHOOK": double.webhook_url}
    )
    assert res.exit_code == 0, res.output
    assert res.output == ""  # --quiet
    assert tickets(path) == len(double.truth.select("task", group_id=7)) > 0


def test_sync_uses_the_apps_store_and_config_like_kpi(double, tmp_path, monkeypatch):
    """Without --db, `flask sync` writes where `flask kpi` reads (the app's DB), with the app's
    config (its sources), not a store or a config file of its own."""
    app_db, elsewhere = str(tmp_path / "app.db"), str(tmp_path / "elsewhere.db")
    monkeypatch.setenv("B24DESK_DB", elsewhere)
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "DB": app_db, "B24DESK": {"sources": ["tasks:group=7"]}})
    res = app.test_cli_runner().invoke(args=["sync", "--webhook", double.webhook_url, "--rps", "100"])
    assert res.exit_code == 0, res.output
    assert "tasks:group=7: full" in res.output and "deals" not in res.output
    assert not os.path.exists(elsewhere)
    assert tickets(app_db) == len(double.truth.select("task", group_id=7)) > 0
    res = app.test_cli_runner().invoke(args=["kpi", "--from", "2000-01-01", "--to", "2100-01-01", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["kpis"]["tickets_total"]["value"] == tickets(app_db)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--source", "crm:12"], "not a deal or a smart process"),
        (["--source", "tasks:groop=7"], "unknown parameter"),
        (["--source", "nosuch"], "no source adapter"),
    ],
)
def test_bad_selectors_are_refused_before_any_call(runner, double, db_path, args, message):
    double.stats.reset()
    res = runner.invoke(args=["sync", "--webhook", double.webhook_url, "--db", db_path, *args])
    assert res.exit_code == 2 and message in res.output and "--source" in res.output
    assert double.stats.requests == 0


def test_missing_or_malformed_credentials(runner, db_path, tmp_path):
    res = runner.invoke(args=["sync", "--db", db_path], env={"B24DESK_WEBHOOK": ""})
    assert res.exit_code == 2 and "--webhook" in res.output
    res = runner.invoke(args=["sync", "--db", db_path, "--webhook", "https://example.com/not-a-webhook"])
    assert res.exit_code == 2 and "https://PORTAL/rest/USER_ID/SECRET/" in res.output
    res = runner.invoke(args=["sync", "--db", db_path, "--portal", "nobody"])
    assert res.exit_code == 1 and "no installation" in res.output


def test_wrong_webhook_secret_is_a_clear_auth_error(runner, double, db_path):
    bad = double.webhook_url.rsplit("/", 2)[0] + "/wrongsecret/"
    res = runner.invoke(args=["sync", "--webhook", bad, "--db", db_path, "--source", "tasks"])
    assert res.exit_code == 1 and "refused our credentials" in res.output and "wrongsecret" not in res.output
    assert tickets(db_path) == 0


def test_installed_portal_by_member_id_and_by_default(runner, double, db_path):
    db = open_db(db_path)
    save_installation(db, **double.issue_tokens())
    db.conn.close()
    env = {
        "B24DESK_CLIENT_ID": double.client_id,
        "B24DESK_CLIENT_SECRET": double.client_secret,
        "B24DESK_OAUTH_URL": double.oauth_token_url,
        "B24DESK_WEBHOOK": "",
    }
    res = runner.invoke(args=["sync", "--portal", double.member_id, "--db", db_path, "--source", "tasks"], env=env)
    assert res.exit_code == 0, res.output
    assert tickets(db_path) == len(double.truth.select("task"))
    res = runner.invoke(args=["sync", "--db", db_path, "--source", "tasks"], env=env)  # the only portal
    assert res.exit_code == 0 and "incremental" in res.output


def test_a_selector_the_portal_refuses_fails_alone(runner, double, db_path):
    url = double.add_webhook(1, scopes={"task", "user", "department", "basic"})
    res = runner.invoke(args=["sync", "--webhook", url, "--db", db_path, "--source", "deals", "--source", "tasks"])
    assert res.exit_code == 1
    assert "deals: FAILED" in res.output and "insufficient_scope" in res.output
    assert "tasks: full" in res.output
    assert tickets(db_path) == len(double.truth.select("task"))
    db = open_db(db_path)
    assert get_cursor(db, double.base_url.split("//")[1], "tasks", "changed_since")  # webhook portal id = host
    db.conn.close()


def test_one_sync_per_portal_at_a_time(db):
    with sync_mod.portal_lease(db, "p"):
        with sync_mod.portal_lease(db, "p"):  # re-entrant on its thread
            pass
        assert db.execute("select count(*) from locks where name = 'portal:p'").fetchone()[0] == 1
    assert db.execute("select count(*) from locks where name = 'portal:p'").fetchone()[0] == 0
    host = socket.gethostname()
    db["locks"].upsert(
        {"name": "portal:q", "owner": f"{host}:{os.getppid()}", "expires_at": time.time() + 60}, pk="name"
    )
    with pytest.raises(sync_mod.SyncBusy, match=f"{host}:{os.getppid()}"):
        with sync_mod.portal_lease(db, "q"):  # a live process holds it
            pass
    dead = 2**22 + 12345
    db["locks"].upsert({"name": "portal:r", "owner": f"{host}:{dead}", "expires_at": time.time() + 60}, pk="name")
    with sync_mod.portal_lease(db, "r"):  # a killed sync's lease is taken over
        assert db.execute("select owner from locks where name = 'portal:r'").fetchone()[0] != f"{host}:{dead}"
    db["locks"].upsert({"name": "portal:s", "owner": "elsewhere:1", "expires_at": time.time() - 1}, pk="name")
    with sync_mod.portal_lease(db, "s"):  # an expired one too
        assert db.execute("select owner from locks where name = 'portal:s'").fetchone()[0] != "elsewhere:1"


def test_progress_bar_only_on_a_terminal(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert sync_mod._bar("tasks", True) is None  # piped: quiet
    monkeypatch.setattr("sys.stderr", Tty())
    assert sync_mod._bar("tasks", False) is None  # --quiet
    bar = sync_mod._bar("tasks", True)
    bar.update(3)
    bar.close()
    assert "tasks" in __import__("sys").stderr.getvalue()
