"""The installation store: rows, atomic token rotation, uninstall, token URL, the refresh lock."""

from __future__ import annotations

import time

import pytest

from b24desk import installations as inst
from b24desk.client import B24Error
from b24desk.model import Bundle, Ticket
from b24desk.store import save_bundle


def _install(db, **over):
    fields = dict(
        member_id="m1",
        domain="portal.example",
        client_endpoint="https://portal.example/rest/",
        server_endpoint="https://oauth.bitrix.info/rest/",
        access_token="A1",
        refresh_token="R1",
        expires_in=3600,
        application_token="apptok",
        scope="crm,task",
        status="L",
        user_id=1,
    )
    fields.update(over)
    return inst.save_installation(db, **fields)


def test_save_and_update_keep_other_columns(db):
    before = int(time.time())
    row = _install(db, ignored_key="x")
    assert row["access_token"] == "A1" and row["user_id"] == "1" and row["active"] == 1
    assert before + 3600 <= row["expires_at"] <= int(time.time()) + 3600
    assert row["installed_at"] >= before
    row2 = inst.save_installation(db, member_id="m1", lang="ru")
    assert row2["lang"] == "ru" and row2["refresh_token"] == "R1" and row2["installed_at"] == row["installed_at"]
    assert inst.get_installation(db, "nope") is None
    with pytest.raises(ValueError):
        inst.save_installation(db, domain="x")


def test_rotate_tokens_writes_the_new_pair(db):
    _install(db)
    new = inst.rotate_tokens(
        db,
        "m1",
        {
            "access_token": "A2",
            "refresh_token": "R2",
            "expires": 2_000_000_000,
            "member_id": "m1",
            "client_endpoint": "https://new.example/rest/",
            "domain": "oauth.bitrix.info",
            "user_id": 7,
        },
    )
    assert (new["access_token"], new["refresh_token"], new["expires_at"]) == ("A2", "R2", 2_000_000_000)
    assert new["client_endpoint"] == "https://new.example/rest/"
    assert new["domain"] == "portal.example"  # the token answer's domain is the OAuth server's
    assert new["user_id"] == "7"


@pytest.mark.parametrize(
    "bad",
    [
        {"access_token": "A2"},  # no refresh token
        {"refresh_token": "R2"},
        {"access_token": "A2", "refresh_token": "R2", "member_id": "other"},
        "not a dict",
    ],
)
def test_rotate_tokens_refuses_bad_answers_and_keeps_the_old_pair(db, bad):
    _install(db)
    with pytest.raises(ValueError):
        inst.rotate_tokens(db, "m1", bad)
    row = inst.get_installation(db, "m1")
    assert (row["access_token"], row["refresh_token"]) == ("A1", "R1")


def test_rotate_tokens_unknown_portal(db):
    with pytest.raises(LookupError):
        inst.rotate_tokens(db, "ghost", {"access_token": "A", "refresh_token": "R"})


def _ticket(db, portal):
    save_bundle(
        db,
        Bundle(
            ticket=Ticket(portal=portal, source="task", source_id="1", created_at=1), events=[], snapshot={"id": "1"}
        ),
    )


def test_delete_installation_clean_and_keep(db):
    _install(db)
    _install(db, member_id="m2")
    _ticket(db, "m1")
    _ticket(db, "m2")
    inst.delete_installation(db, "m2", clean=False)
    kept = inst.get_installation(db, "m2")
    assert kept["active"] == 0 and kept["access_token"] is None and kept["refresh_token"] is None
    assert db.execute("select count(*) from tickets where portal='m2'").fetchone()[0] == 1
    inst.delete_installation(db, "m1", clean=True)
    assert inst.get_installation(db, "m1") is None
    assert db.execute("select count(*) from tickets where portal='m1'").fetchone()[0] == 0
    assert db.execute("select count(*) from snapshots where portal='m1'").fetchone()[0] == 0
    assert db.execute("select count(*) from tickets where portal='m2'").fetchone()[0] == 1


def test_token_url_is_fixed_by_configuration_never_by_the_portal(monkeypatch):
    monkeypatch.delenv("B24DESK_OAUTH_URL", raising=False)
    # whatever server_endpoint a portal (or a forged install) sent, the secret goes to the OAuth server
    for sent in ("https://oauth.bitrix.info/rest/", "http://127.0.0.1:9/evil/rest", "https://evil.example/"):
        assert (
            inst.token_url({"server_endpoint": sent})
            == inst.DEFAULT_TOKEN_URL
            == "https://oauth.bitrix.info/oauth/token/"
        )
    assert inst.token_url({}) == inst.DEFAULT_TOKEN_URL
    assert inst.token_url({"server_endpoint": "https://x/rest/"}, override="http://o/t/") == "http://o/t/"
    monkeypatch.setenv("B24DESK_OAUTH_URL", "http://env/token/")
    assert inst.token_url({"server_endpoint": "https://x/rest/"}) == "http://env/token/"


def test_is_expired():
    assert inst.is_expired({"expires_at": 100}, now=80)  # inside the 30 s margin
    assert not inst.is_expired({"expires_at": 1000}, now=80)
    assert not inst.is_expired({"expires_at": None}, now=80)


def test_refresh_lock_waits_for_a_live_lease_and_takes_an_expired_one(db):
    db["locks"].insert(
        {"name": "oauth-refresh:m1", "owner": "other-process", "expires_at": time.time() + 60}, pk="name"
    )
    db.conn.commit()
    with pytest.raises(B24Error) as e:
        with inst.refresh_lock(db, "m1", timeout=0.3):
            pass
    assert e.value.code == "REFRESH_LOCK_TIMEOUT"
    db.execute("update locks set expires_at = ? where name = 'oauth-refresh:m1'", [time.time() - 1])
    db.conn.commit()
    with inst.refresh_lock(db, "m1", timeout=1):
        owner = db.execute("select owner from locks where name = 'oauth-refresh:m1'").fetchone()[0]
        assert owner != "other-process"
    assert db.execute("select count(*) from locks").fetchone()[0] == 0  # released


def test_refresh_needs_credentials_and_an_installation(db):
    from b24desk.client import AuthError

    with pytest.raises(AuthError) as e:
        inst.refresh(db, "m1", None, None)
    assert e.value.code == "NO_CLIENT_CREDENTIALS"
    with pytest.raises(AuthError) as e:
        inst.refresh(db, "m1", "cid", "secret")
    assert e.value.code == "NO_INSTALLATION"
    _install(db, refresh_token=None)
    with pytest.raises(AuthError) as e:
        inst.refresh(db, "m1", "cid", "secret")
    assert e.value.code == "NO_REFRESH_TOKEN"


def test_refresh_skips_when_another_worker_already_rotated(db):
    _install(db, access_token="FRESH")
    row = inst.refresh(
        db, "m1", "cid", "secret", oauth_url="http://127.0.0.1:9/never-called/", stale_access_token="OLD"
    )
    assert row["access_token"] == "FRESH"
