"""The Bitrix24 client: pure parts here; end-to-end against the portal double below."""

from __future__ import annotations

import logging

import pytest

from b24desk import client as c
from b24desk.client import AuthError, B24Client, B24Error

# --- pure parts -------------------------------------------------------------------------------


def test_encode_params_php_style():
    q = c.encode_params(
        {
            "filter": {">ID": 5, "STATUS": [2, 3]},
            "select": ["ID", "TITLE"],
            "order": {"ID": "ASC"},
            "start": -1,
            "flag": True,
            "off": False,
            "none": None,
            "empty": [],
            "text": "a&b=c d/é",
        }
    )
    assert q == (
        "filter[%3EID]=5&filter[STATUS][0]=2&filter[STATUS][1]=3&select[0]=ID&select[1]=TITLE"
        "&order[ID]=ASC&start=-1&flag=1&off=0&none=&empty[]=&text=a%26b%3Dc+d%2F%C3%A9"
    )


def test_encode_params_keeps_batch_references_readable():
    q = c.encode_params({"filter": {">ID": "$result[p0][tasks][49][id]"}, "x": "$notaref"})
    assert q == "filter[%3EID]=$result[p0][tasks][49][id]&x=%24notaref"


def test_encode_params_round_trips_through_a_php_parser():
    from urllib.parse import parse_qsl

    params = {"filter": {">=DATE": "2025-01-01T00:00:00+03:00", "!ID": [1, 2]}, "select": ["*", "UF_*"]}
    pairs = dict(parse_qsl(c.encode_params(params)))
    assert pairs == {
        "filter[>=DATE]": "2025-01-01T00:00:00+03:00",
        "filter[!ID][0]": "1",
        "filter[!ID][1]": "2",
        "select[0]": "*",
        "select[1]": "UF_*",
    }


def test_encode_params_rejects_scalars():
    with pytest.raises(TypeError):
        c.encode_params("x")


def test_mask_hides_secrets():
    text = (
        "https://p.bitrix24.ru/rest/1/s3cr3tkey/crm.deal.list?auth=tok123&x=1 "
        "grant_type=refresh_token&client_secret=cs&refresh_token=rt {'auth': 'tok456'}"
    )
    out = c.mask(text)
    for secret in ("s3cr3tkey", "tok123", "=cs", "=rt", "tok456"):
        assert secret not in out
    assert "crm.deal.list" in out and "x=1" in out


def test_error_message_is_masked_and_hints_wrong_auth_type():
    e = B24Error(403, "WRONG_AUTH_TYPE", "Current authorization type is denied", "event.bind")
    assert "needs an installed application" in str(e) and e.status == 403 and e.method == "event.bind"
    assert "k3y" not in str(B24Error(None, "X", "see http://h/rest/1/k3y/m", "m"))


@pytest.mark.parametrize(
    "url",
    ["", "   ", "ftp://h/rest/1/x/", "https:///rest/1/x/", "https://h/", "https://h/rest/abc/x/", "https://h/rest/1/"],
)
def test_from_webhook_rejects_bad_urls(url):
    with pytest.raises(ValueError):
        B24Client.from_webhook(url)


def test_from_webhook_normalizes():
    cl = B24Client.from_webhook("https://Portal.bitrix24.ru/rest/1/abc/profile.json")
    assert cl.is_webhook and cl.portal_id == "portal.bitrix24.ru"
    assert cl._base == "https://Portal.bitrix24.ru/rest/1/abc/"
    assert "abc" not in repr(cl)


def test_rows_shapes():
    assert c._rows([{"ID": 1}], None, "m") == ([{"ID": 1}], None)
    assert c._rows({"tasks": [{"id": 1}]}, None, "m") == ([{"id": 1}], "tasks")
    assert c._rows({"items": []}, "items", "m") == ([], "items")
    # where the docs wrap the rows ({items: [...]}) the key is always there, even when empty: a bare
    # [] or null is a malformed answer, never "no rows" (issue 12)
    for bad in ([], {}, None, {"items": None}):
        with pytest.raises(c.ShapeError):
            c._rows(bad, "items", "m")
    assert c._rows({"0": {"ID": 1}, "1": {"ID": 2}}, None, "m")[0] == [{"ID": 1}, {"ID": 2}]
    with pytest.raises(B24Error):
        c._rows({"a": [], "b": []}, None, "m")
    with pytest.raises(B24Error):
        c._rows({"tasks": []}, "items", "m")


def test_leaky_bucket_allows_a_burst_then_paces():
    now = [0.0]
    lim = c._Limiter(rps=2.0, burst=3, clock=lambda: now[0])
    waits = [lim.reserve() for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, 0.5, 1.0]
    now[0] = 10.0  # drained
    assert lim.reserve() == 0.0
    lim.drain()  # the portal said QUERY_LIMIT_EXCEEDED: bucket full
    assert lim.reserve() > 0


def test_background_traffic_leaves_room_for_interactive_requests():
    now = [0.0]
    lim = c._Limiter(rps=2.0, burst=50, clock=lambda: now[0])
    waits = []
    for _ in range(80):  # a sync: reserve, sleep the wait, send; again
        waits.append(lim.reserve())
        now[0] += waits[-1]
    assert waits[:45] == [0.0] * 45 and waits[45] == 0.5  # it stops 5 short of the burst
    assert lim.reserve(interactive=True) == 0.0  # a launch still goes at once


def test_method_blocks_are_per_method():
    lim = c._Limiter(rps=0, burst=1, clock=lambda: 0.0)
    lim.block("tasks.task.list", 200.0)
    assert lim.pending(["crm.item.list"], 100.0) is None
    assert lim.pending(["Tasks.Task.List", "x"], 100.0) == ("tasks.task.list", 200.0)
    assert lim.pending(["tasks.task.list"], 201.0) is None  # expired blocks vanish


def test_batch_validates_before_sending():
    cl = B24Client.from_webhook("http://127.0.0.1:9/rest/1/x/")
    with pytest.raises(ValueError):
        cl.batch({f"c{i}": ("user.get", {}) for i in range(51)})
    with pytest.raises(ValueError):
        cl.batch({"a": ("batch", {})})
    assert cl.batch({}).results == {}
    assert cl.requests_sent == 0


# --- end to end, against the portal double over HTTP ----------------------------------------

import asyncio
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

from b24desk import installations
from b24desk.client import B24Unavailable
from b24desk.store import open_db
from portal_double import PortalDouble

ROOT = Path(__file__).resolve().parent.parent


class Sleeps(list):
    """A fake ``sleep`` that records the waits instead of taking them."""

    def __call__(self, seconds):
        self.append(seconds)

    def big(self, over=5.0):
        return [s for s in self if s > over]


@pytest.fixture(scope="module")
def double():
    d = PortalDouble(seed=7, tickets=6000, drain_per_s=1e6).start()
    yield d
    d.stop()


@pytest.fixture
def dbl(double):
    double.faults.clear()
    double.stats.reset()
    double.bucket.reset()
    double.operating.reset()
    yield double
    double.faults.clear()


def _wh(d, sleeps=None, **opts):
    opts.setdefault("rps", 0)
    return B24Client.from_webhook(d.webhook_url, sleep=sleeps if sleeps is not None else Sleeps(), **opts)


def _expected_requests(n: int) -> int:
    """First plain page, then 50 chained pages per batch until the first short page."""
    if n < PAGE_:
        return 1
    later_pages = (n - PAGE_) // PAGE_ + 1
    return 1 + math.ceil(later_pages / 50)


PAGE_ = 50


def test_list_all_tasks_costs_one_request_per_2500_rows(dbl):
    cl = _wh(dbl)
    rows = list(cl.list_all("tasks.task.list", {"select": ["ID", "TITLE", "STATUS"]}))
    truth = [t["id"] for t in dbl.portal.task_list]
    n = len(truth)
    assert n > 2500
    assert [int(r["id"]) for r in rows] == sorted(truth)  # every task once, in ID order
    assert cl.requests_sent == dbl.stats.requests == _expected_requests(n)
    assert cl.requests_sent <= math.ceil(n / 2500) + 1
    sent = [p for m, p in dbl.stats.log if m == "tasks.task.list"]
    assert all(str(p["start"]) == "-1" and p["order"] == {"ID": "ASC"} for p in sent)
    assert any(">ID" in p.get("filter", {}) for p in sent)
    assert "total" not in rows[0]


def test_list_all_crm_items_lowercase_id_and_resume(dbl):
    cl = _wh(dbl)
    all_rows = list(
        cl.list_all("crm.item.list", {"entityTypeId": 2, "select": ["id", "title"]}, id_field="id", items_key="items")
    )
    ids = [r["id"] for r in all_rows]
    assert ids == sorted(r["id"] for r in dbl.portal.item_lists[2]) and len(ids) > 50
    mid = ids[len(ids) // 2]
    before = cl.requests_sent
    rest = list(
        cl.list_all("crm.item.list", {"entityTypeId": 2, "filter": {">id": mid}, "select": ["title"]}, id_field="id")
    )
    assert [r["id"] for r in rest] == [i for i in ids if i > mid]  # id added to select by the client
    assert cl.requests_sent - before == _expected_requests(len(rest))


def test_list_all_small_and_empty_sets_cost_one_request(dbl):
    cl = _wh(dbl)
    last = max(t["id"] for t in dbl.portal.task_list)
    rows = list(cl.list_all("tasks.task.list", {"filter": {">ID": last - 3}, "select": ["ID"]}))
    assert len(rows) == 3 and cl.requests_sent == 1
    assert list(cl.list_all("tasks.task.list", {"filter": {">ID": last}})) == []
    assert cl.requests_sent == 2


def test_list_paged_matches_list_all(dbl):
    cl = _wh(dbl)
    paged = list(cl.list_paged("crm.item.list", {"entityTypeId": 2, "select": ["id"], "order": {"id": "ASC"}}))
    keyset = list(cl.list_all("crm.item.list", {"entityTypeId": 2, "select": ["id"]}, id_field="id"))
    assert [r["id"] for r in paged] == [r["id"] for r in keyset]


def test_batch_references_and_per_command_errors(dbl):
    cl = _wh(dbl)
    res = cl.batch(
        {
            "me": ("user.current", {}),
            "dept": ("department.get", {"ID": "$result[me][UF_DEPARTMENT][0]"}),
            "bad": ("no.such.method", {"x": 1}),
            "tasks": (
                "tasks.task.list",
                {"filter": {"RESPONSIBLE_ID": "$result[me][ID]"}, "select": ["ID", "RESPONSIBLE_ID"]},
            ),
        }
    )
    assert cl.requests_sent == 1
    me = res.results["me"]
    assert res.results["dept"][0]["ID"] == str(me["UF_DEPARTMENT"][0])
    assert all(t["responsibleId"] == str(me["ID"]) for t in res.results["tasks"]["tasks"])
    assert res.errors["bad"].code == "ERROR_METHOD_NOT_FOUND" and "bad" not in res.results
    assert res.totals["tasks"] >= len(res.results["tasks"]["tasks"])
    with pytest.raises(B24Error):
        res.raise_for_errors()


def test_call_many_keeps_input_order(dbl):
    cl = _wh(dbl)
    ids = [t["id"] for t in dbl.portal.task_list[:120]][::-1]
    got = cl.call_many("tasks.task.get", [{"taskId": i, "select": ["ID"]} for i in ids])
    assert [int(g["task"]["id"]) for g in got] == ids
    assert cl.requests_sent == 3
    with pytest.raises(B24Error) as e:
        cl.call_many("tasks.task.get", [{"taskId": ids[0]}, {"taskId": 10**9}])
    assert "input #1" in str(e.value)


def test_a_burst_of_503_and_5xx_is_absorbed(dbl):
    sleeps = Sleeps()
    cl = _wh(dbl, sleeps)
    dbl.faults.fail_next(4, 503, "QUERY_LIMIT_EXCEEDED")
    dbl.faults.fail_next(2, 500, "INTERNAL_SERVER_ERROR")
    assert cl.call("server.time")
    assert cl.requests_sent == 7 and len(sleeps) == 6
    for i, s in enumerate(sleeps):  # exponential with jitter: in [d/2, d], d = base * 2**i
        d = min(cl.backoff_cap, cl.backoff_base * 2**i)
        assert d / 2 <= s <= d
    # a 503 on a method inside a batch chain is retried too
    dbl.faults.fail_next(3, 503, "QUERY_LIMIT_EXCEEDED", method="tasks.task.get")
    ids = [t["id"] for t in dbl.portal.task_list[:5]]
    assert len(cl.call_many("tasks.task.get", [{"taskId": i} for i in ids])) == 5


def test_retries_are_bounded(dbl):
    sleeps = Sleeps()
    cl = _wh(dbl, sleeps, max_retries=3)
    dbl.faults.fail_next(10, 503, "QUERY_LIMIT_EXCEEDED")
    with pytest.raises(B24Unavailable) as e:
        cl.call("server.time")
    assert e.value.code == "QUERY_LIMIT_EXCEEDED" and cl.requests_sent == 4 and len(sleeps) == 3
    dead = B24Client.from_webhook("http://127.0.0.1:9/rest/1/s3cret/", sleep=Sleeps(), max_retries=2, rps=0)
    with pytest.raises(B24Unavailable) as e:
        dead.call("server.time")
    assert e.value.code == "CONNECTION_ERROR" and "s3cret" not in str(e.value)


def test_the_real_leaky_bucket_of_the_double_is_survived():
    with PortalDouble(seed=3, tickets=50, bucket_size=5, drain_per_s=50) as d:
        cl = B24Client.from_webhook(d.webhook_url, rps=0, backoff_base=0.02, backoff_cap=0.2, max_retries=20)
        results = [cl.call("server.time") for _ in range(30)]
        assert all(results) and d.stats.refused["QUERY_LIMIT_EXCEEDED"] > 0


def test_429_pauses_only_that_method_until_operating_reset_at(dbl):
    other_calls = []

    class Probe(Sleeps):
        def __call__(self, seconds):
            super().__call__(seconds)
            if seconds > 5 and not other_calls:
                # while tasks.task.list waits, another method goes through at once
                mark = len(self)
                other_calls.append(cl.call("server.time"))
                assert self.big()[-1] == seconds and len(self) == mark

    sleeps = Probe()
    cl = _wh(dbl, sleeps)
    body = cl.call_raw("tasks.task.list", {"select": ["ID"]})
    reset_at = body["time"]["operating_reset_at"]
    dbl.faults.fail_next(1, 429, "OPERATION_TIME_LIMIT", method="tasks.task.list")
    assert cl.call("tasks.task.list", {"select": ["ID"]})["tasks"]
    assert other_calls
    [wait] = sleeps.big()
    assert abs(wait - (reset_at - time.time())) < 5
    n = len(sleeps)
    cl.call("tasks.task.list", {"select": ["ID"]})  # the pause is over: no new wait
    assert len(sleeps) == n


def test_429_inside_a_keyset_chain_resumes_without_loss(dbl):
    sleeps = Sleeps()
    cl = _wh(dbl, sleeps, default_pause=30)
    it = cl.list_all("tasks.task.list", {"select": ["ID"]})
    first = [next(it) for _ in range(50)]
    dbl.faults.fail_next(1, 429, "OPERATION_TIME_LIMIT", method="tasks.task.list")
    rows = first + list(it)
    assert [int(r["id"]) for r in rows] == [t["id"] for t in dbl.portal.task_list]
    assert len(sleeps.big()) == 1


def test_webhook_on_an_app_only_method_is_a_clear_error(dbl):
    cl = _wh(dbl)
    with pytest.raises(B24Error) as e:
        cl.call("event.bind", {"event": "ONTASKUPDATE", "handler": "https://example.org/events"})
    assert e.value.code == "WRONG_AUTH_TYPE" and e.value.status == 403
    assert "installed application" in str(e.value) and cl.requests_sent == 1


def test_unknown_method_and_bad_webhook(dbl):
    cl = _wh(dbl)
    with pytest.raises(B24Error) as e:
        cl.call("no.such.method")
    assert (e.value.status, e.value.code, cl.requests_sent) == (404, "ERROR_METHOD_NOT_FOUND", 1)
    bad = B24Client.from_webhook(dbl.base_url + "/rest/1/wrongsecret/", rps=0, sleep=Sleeps())
    with pytest.raises(AuthError) as e:
        bad.call("server.time")
    assert e.value.code == "NO_AUTH_FOUND" and "wrongsecret" not in str(e.value)


def test_no_event_loop_trap(dbl):
    cl = _wh(dbl)

    async def inside_a_loop():
        return cl.call("server.time")

    assert isinstance(asyncio.run(inside_a_loop()), str)


def test_redirect_is_followed_with_a_re_post(dbl):
    from werkzeug.wrappers import Request, Response

    from portal_double import Served

    def moved(environ, start_response):
        req = Request(environ)
        return Response(status=302, headers={"Location": dbl.base_url + req.path})(environ, start_response)

    srv = Served(moved)
    try:
        old = dbl.webhook_url.replace(dbl.base_url, srv.url)
        cl = B24Client.from_webhook(old, rps=0, sleep=Sleeps())
        res = cl.call("tasks.task.list", {"select": ["ID"], "filter": {"ID": dbl.portal.task_list[0]["id"]}})
        assert len(res["tasks"]) == 1  # the POST body survived the move
        cl.call("server.time")
        assert cl.requests_sent == 3  # 302 once, then straight to the new address
    finally:
        srv.stop()


# --- OAuth: installed app ---------------------------------------------------------------------


@pytest.fixture
def app_db(dbl, tmp_path):
    path = str(tmp_path / "b24.db")
    db = open_db(path)
    installations.save_installation(db, **dbl.issue_tokens(1))
    db.conn.close()
    return path


def _app(d, path, sleeps=None, **opts):
    return B24Client.from_installation(
        path,
        d.member_id,
        d.client_id,
        d.client_secret,
        oauth_url=d.oauth_token_url,
        rps=0,
        sleep=sleeps if sleeps is not None else Sleeps(),
        **opts,
    )


def _stored(path, member_id):
    db = open_db(path)
    try:
        return installations.get_installation(db, member_id)
    finally:
        db.conn.close()


def test_expired_token_is_refreshed_once_and_the_rotation_persisted(dbl, app_db):
    cl = _app(dbl, app_db)
    assert not cl.is_webhook and cl.portal_id == dbl.member_id
    assert cl.call("user.current")["ID"] == "1"
    old = _stored(app_db, dbl.member_id)
    dbl.expire_tokens()
    assert cl.call("user.current")["ID"] == "1"
    assert dbl.stats.by_method["oauth.token"] == 1 and cl.refreshes == 1
    new = _stored(app_db, dbl.member_id)
    assert new["refresh_token"] != old["refresh_token"] and new["access_token"] != old["access_token"]
    with pytest.raises(AuthError) as e:  # the old refresh token is dead at the double
        installations.request_tokens(dbl.oauth_token_url, dbl.client_id, dbl.client_secret, old["refresh_token"])
    assert e.value.code == "invalid_grant"
    # a new client on the same store picks up the rotated pair without refreshing again
    n = dbl.stats.by_method["oauth.token"]
    assert _app(dbl, app_db).call("server.time") and dbl.stats.by_method["oauth.token"] == n


def test_a_known_expiry_refreshes_before_the_call(dbl, app_db):
    db = open_db(app_db)
    installations.save_installation(db, member_id=dbl.member_id, expires_at=int(time.time()) - 5)
    db.conn.close()
    cl = _app(dbl, app_db)
    assert cl.call("server.time")
    assert dbl.stats.by_method["oauth.token"] == 1 and cl.requests_sent == 1


def test_a_dead_refresh_token_is_an_auth_error_and_loses_nothing(dbl, app_db):
    db = open_db(app_db)
    installations.save_installation(db, member_id=dbl.member_id, refresh_token="dead")
    db.conn.close()
    before = _stored(app_db, dbl.member_id)
    dbl.expire_tokens()
    cl = _app(dbl, app_db)
    with pytest.raises(AuthError) as e:
        cl.call("server.time")
    assert e.value.code == "invalid_grant"
    assert _stored(app_db, dbl.member_id) == before


def test_a_401_the_refresh_does_not_cure_is_not_retried_forever(dbl, app_db):
    cl = _app(dbl, app_db)
    dbl.faults.fail_next(5, 401, "expired_token")
    with pytest.raises(AuthError) as e:
        cl.call("server.time")
    assert e.value.code == "expired_token" and cl.requests_sent == 2 and cl.refreshes == 1


def test_threads_share_one_refresh(dbl, app_db):
    clients = [_app(dbl, app_db) for _ in range(8)]
    dbl.expire_tokens()
    barrier, errors = threading.Barrier(8), []

    def run(c):
        try:
            barrier.wait()
            c.call("server.time")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and dbl.stats.by_method["oauth.token"] == 1


_CHILD = """
import sys
sys.path.insert(0, {root!r})
from b24desk.client import B24Client
cl = B24Client.from_installation({db!r}, {mid!r}, {cid!r}, {cs!r}, oauth_url={url!r}, rps=0)
print(cl.call("server.time"))
"""


def test_processes_share_one_refresh(dbl, app_db):
    dbl.expire_tokens()
    code = _CHILD.format(
        root=str(ROOT), db=app_db, mid=dbl.member_id, cid=dbl.client_id, cs=dbl.client_secret, url=dbl.oauth_token_url
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert dbl.stats.by_method["oauth.token"] == 1


def test_a_bare_access_token_never_refreshes(dbl):
    tok = dbl.issue_tokens(1)
    cl = B24Client.from_access_token(
        dbl.client_endpoint, tok["access_token"], portal_id=dbl.member_id, rps=0, sleep=Sleeps()
    )
    assert cl.call("user.current")["ID"] == "1"
    dbl.expire_tokens()
    with pytest.raises(AuthError) as e:
        cl.call("user.current")
    assert e.value.code == "expired_token" and dbl.stats.by_method["oauth.token"] == 0
    with pytest.raises(ValueError):
        B24Client.from_access_token("not a url", "x")


def test_uninstalled_or_missing_installation(dbl, app_db):
    with pytest.raises(AuthError):
        _app(dbl, app_db).__class__.from_installation(app_db, "ghost", "c", "s")
    db = open_db(app_db)
    installations.delete_installation(db, dbl.member_id, clean=False)
    db.conn.close()
    with pytest.raises(AuthError) as e:
        _app(dbl, app_db)
    assert e.value.code == "NOT_INSTALLED"


def test_logs_never_carry_tokens_or_secrets(dbl, app_db, caplog):
    caplog.set_level(logging.DEBUG)
    secret_path = dbl.webhook_url.split("/rest/")[1]
    cl = _app(dbl, app_db)
    cl.call("server.time")
    first = _stored(app_db, dbl.member_id)
    dbl.expire_tokens()
    dbl.faults.fail_next(1, 503, "QUERY_LIMIT_EXCEEDED")
    cl.call("user.current")
    second = _stored(app_db, dbl.member_id)
    wh = _wh(dbl)
    wh.call("server.time")
    list(wh.list_all("tasks.task.list", {"select": ["ID"], "filter": {">ID": dbl.portal.task_list[-60]["id"]}}))
    with pytest.raises(B24Error):
        wh.call("no.such.method")
    dead = B24Client.from_webhook(
        dbl.webhook_url.replace(dbl.base_url, "http://127.0.0.1:9"), rps=0, sleep=Sleeps(), max_retries=1
    )
    with pytest.raises(B24Unavailable):
        dead.call("server.time")
    text = caplog.text
    assert "retry" in text and "refresh" in text  # the log is not simply empty
    assert "server.time" in text
    for secret in (
        first["access_token"],
        first["refresh_token"],
        second["access_token"],
        second["refresh_token"],
        dbl.client_secret,
        secret_path.split("/")[1],
    ):
        assert secret not in text
    assert logging.getLogger("fast_bitrix24").level == logging.WARNING
