"""The double's push methods over real HTTP behave as their doc pages say (errors included), so the
push tests assert against something faithful (portal_double/push_methods.py)."""

from __future__ import annotations

import base64
import json

import pytest

from b24desk.client import B24Client, B24Error
from portal_double import PortalDouble
from portal_double.push_methods import push_state


@pytest.fixture(scope="module")
def double():
    d = PortalDouble(seed=5, tickets=40, drain_per_s=1e6).start()
    yield d
    d.stop()


@pytest.fixture
def hook(double):
    return B24Client.from_webhook(double.webhook_url, rps=1e6, share_limiter=False, max_retries=0)


@pytest.fixture
def app(double):
    t = double.issue_tokens()
    return B24Client.from_access_token(
        double.client_endpoint, t["access_token"], rps=1e6, share_limiter=False, max_retries=0
    )


def err(fn, *a) -> tuple:
    with pytest.raises(B24Error) as e:
        fn(*a)
    return e.value.status, e.value.code


def test_notify_errors_and_tag_replacement(double, app, hook):
    st = push_state(double.portal)
    assert err(app.call, "im.notify.system.add", {"MESSAGE": "x"}) == (400, "USER_ID_EMPTY")
    assert err(app.call, "im.notify.system.add", {"USER_ID": 10, "MESSAGE": "  "}) == (400, "MESSAGE_EMPTY")
    assert err(app.call, "im.notify.system.add", {"USER_ID": 10, "MESSAGE": "x", "ATTACH": "{bad"}) == (
        400,
        "ATTACH_ERROR",
    )
    big = {"BLOCKS": [{"MESSAGE": "y" * 31000}]}
    assert err(app.call, "im.notify.system.add", {"USER_ID": 10, "MESSAGE": "x", "ATTACH": big}) == (
        400,
        "ATTACH_OVERSIZE",
    )
    assert app.call("im.notify.system.add", {"USER_ID": 999999, "MESSAGE": "x"}) is False  # nobody: false
    a = app.call("im.notify.system.add", {"USER_ID": 10, "MESSAGE": "old", "TAG": "T1"})
    b = app.call(
        "im.notify.system.add",
        {"USER_ID": 10, "MESSAGE": "new", "TAG": "T1", "ATTACH": json.dumps([{"MESSAGE": "block"}])},
    )
    assert a != b and [n["MESSAGE"] for n in st.visible_notifications(10) if n["TAG"] == "T1"] == ["new"]
    # a webhook scopes TAGs by CLIENT_ID (the docs: "pass it with CLIENT_ID when calling via webhook")
    assert err(hook.call, "im.notify.system.add", {"USER_ID": 10, "MESSAGE": "x", "TAG": "T1"})[1] == "CLIENT_ID_EMPTY"
    hook.call("im.notify.system.add", {"USER_ID": 10, "MESSAGE": "hook", "TAG": "T1", "CLIENT_ID": "c"})
    assert sorted(n["MESSAGE"] for n in st.visible_notifications(10) if n["TAG"] == "T1") == ["hook", "new"]


def test_chats_and_messages(double, app):
    assert app.call("im.chat.get", {"ENTITY_TYPE": "B24DESK", "ENTITY_ID": "x|1"}) is None
    cid = app.call("im.chat.add", {"TITLE": "Digest", "USERS": [10, 11], "ENTITY_TYPE": "B24DESK", "ENTITY_ID": "x|1"})
    assert app.call("im.chat.get", {"ENTITY_TYPE": "B24DESK", "ENTITY_ID": "x|1"}) == {"ID": cid}
    mid = app.call(
        "im.message.add",
        {
            "DIALOG_ID": f"chat{cid}",
            "MESSAGE": "hello [B]team[/B]",
            "ATTACH": {"BLOCKS": [{"GRID": [{"NAME": "a", "VALUE": "1", "DISPLAY": "ROW"}]}]},
        },
    )
    got = app.call("im.dialog.messages.get", {"DIALOG_ID": f"chat{cid}"})
    assert got["messages"][0]["id"] == mid and got["messages"][0]["text"] == "hello [B]team[/B]"
    assert err(app.call, "im.message.add", {"DIALOG_ID": "chat999999", "MESSAGE": "x"}) == (403, "ACCESS_ERROR")
    assert err(app.call, "im.message.add", {"DIALOG_ID": f"chat{cid}"}) == (400, "MESSAGE_EMPTY")
    assert err(app.call, "im.message.add", {"DIALOG_ID": "", "MESSAGE": "x"}) == (400, "USER_ID_EMPTY")
    assert isinstance(app.call("im.message.add", {"DIALOG_ID": "10", "MESSAGE": "private"}), int)


def test_feed_posts_and_who_reads_them(double, app):
    st = push_state(double.portal)
    assert app.call("log.blogpost.add", {"POST_TITLE": "T", "POST_MESSAGE": "to L1", "DEST": ["DR2"]}) is True
    assert err(app.call, "log.blogpost.add", {"POST_MESSAGE": "x", "DEST": ["DR999"]})[0] == 400
    assert err(app.call, "log.blogpost.add", {"POST_TITLE": "no text"})[0] == 400
    mine = app.call_raw("log.blogpost.get", {"LOG_RIGHTS": ["DR2"]})
    assert mine["result"][0]["DETAIL_TEXT"] == "to L1" and mine["total"] >= 1
    agent_l1 = next(u for u, x in double.portal.users.items() if x["UF_DEPARTMENT"] == [2])
    agent_l2 = next(u for u, x in double.portal.users.items() if x["UF_DEPARTMENT"] == [3])
    t1 = double.issue_tokens(user_id=agent_l1)["access_token"]
    t2 = double.issue_tokens(user_id=agent_l2)["access_token"]
    see = lambda tok: [
        p["DETAIL_TEXT"]
        for p in B24Client.from_access_token(  # noqa: E731
            double.client_endpoint, tok, rps=1e6, share_limiter=False
        ).call("log.blogpost.get")
    ]
    assert "to L1" in see(t1) and "to L1" not in see(t2)
    assert st.posts[-1]["DEST"] == ["DR2"]


def test_disk_is_the_apps_own_and_names_are_unique(double, app, hook):
    assert err(hook.call, "disk.storage.getForApp") == (400, "ACCESS_DENIED")
    storage = app.call("disk.storage.getForApp")
    assert app.call("disk.storage.getForApp") == storage  # created once
    folder = storage["ROOT_OBJECT_ID"]
    content = ["r.xlsx", base64.b64encode(b"PK\x03\x04data").decode()]
    f = app.call("disk.folder.uploadfile", {"id": folder, "data": {"NAME": "r.xlsx"}, "fileContent": content})
    assert f["NAME"] == "r.xlsx" and f["SIZE"] == "8" and f["DETAIL_URL"]
    assert err(
        app.call, "disk.folder.uploadfile", {"id": folder, "data": {"NAME": "r.xlsx"}, "fileContent": content}
    ) == (400, "DISK_OBJ_22000")
    g = app.call(
        "disk.folder.uploadfile",
        {"id": folder, "data": {"NAME": "r.xlsx"}, "fileContent": content, "generateUniqueName": True},
    )
    assert g["NAME"] == "r (1).xlsx"
    assert err(app.call, "disk.folder.uploadfile", {"data": {"NAME": "x"}}) == (400, "ERROR_ARGUMENT")
    assert err(app.call, "disk.folder.uploadfile", {"id": 1, "data": {"NAME": "x"}, "fileContent": content}) == (
        400,
        "ERROR_NOT_FOUND",
    )
    assert err(app.call, "disk.folder.uploadfile", {"id": folder, "fileContent": content}) == (
        400,
        "DISK_BASE_SERVICE_22001",
    )
    assert err(
        app.call, "disk.folder.uploadfile", {"id": folder, "data": {"NAME": "b"}, "fileContent": ["b", "%%%"]}
    ) == (400, "ERROR_COULD_NOT_SAVE_FILE")
    found = app.call("disk.folder.getchildren", {"id": folder, "filter": {"NAME": "r.xlsx"}})
    assert [x["ID"] for x in found] == [f["ID"]]


def test_a_dropped_reply_means_the_work_was_done(double, app):
    st = push_state(double.portal)
    st.drop_reply("log.blogpost.add")
    with pytest.raises(B24Error) as e:
        app.call("log.blogpost.add", {"POST_MESSAGE": "lost answer"})
    assert e.value.status == 500 and st.posts[-1]["DETAIL_TEXT"] == "lost answer"
