"""Forged and broken requests to POST /events: always 4xx, never 5xx, nothing changes, and no call
reaches any portal. Includes hypothesis fuzzing of the form parser over real HTTP."""

from __future__ import annotations

import pytest
import requests
from events_harness import Harness, double, event_body, form
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from b24desk import inbox

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def h(tmp_path_factory):
    d = double(seed=5, tickets=20)
    h = Harness(tmp_path_factory.mktemp("forged"), d)
    assert h.install_api().status_code == 200
    yield h
    h.close()
    d.stop()


def _state(h):
    with h.db() as db:
        inst = dict(h.installation())
        return (
            db.execute("select count(*) from inbox").fetchone()[0],
            inst["application_token"],
            inst["access_token"],
            inst["active"],
            h.double.stats.requests,
        )


def _post(h, body, headers=FORM):
    return requests.post(h.url + "/events", data=body, headers=headers, timeout=10)


def test_forged_and_broken_events_get_4xx_and_change_nothing(h):
    d = h.double
    before = _state(h)
    task = {"FIELDS_BEFORE": {"ID": 1}, "FIELDS_AFTER": {"ID": 1}}
    good = h.installation()["application_token"]
    cases = {
        "wrong token": (event_body(h, "ONTASKUPDATE", task, token="0" * 32), 401),
        "empty token": (event_body(h, "ONTASKUPDATE", task, token=""), 400),
        "token of another length": (event_body(h, "ONTASKUPDATE", task, token=good[:-1]), 401),
        "unknown portal": (event_body(h, "ONTASKUPDATE", task, member_id="f" * 32), 401),
        "uninstall, wrong token": (event_body(h, "ONAPPUNINSTALL", {"CLEAN": 1}, token="x" * 32), 401),
        "no event": (form({"data": task, "auth": {"member_id": d.member_id, "application_token": good}}), 400),
        "no member_id": (form({"event": "ONTASKUPDATE", "auth": {"application_token": good}}), 400),
        "no auth at all": (form({"event": "ONTASKUPDATE", "data": task}), 400),
        "event twice": (event_body(h, "ONTASKUPDATE", task) + "&event=ONTASKDELETE", 400),
        "token twice": (event_body(h, "ONTASKUPDATE", task) + "&auth%5Bapplication_token%5D=x", 400),
        "malformed event": (event_body(h, "ON TASK UPDATE;drop", task), 400),
        "malformed member_id": (event_body(h, "ONTASKUPDATE", task, member_id="../../etc"), 400),
        "too many fields": ("&".join(f"f{i}=1" for i in range(300)) + "&" + event_body(h, "ONTASKUPDATE", task), 400),
        "a field too long": (event_body(h, "ONTASKUPDATE", {"X": "y" * 5000}), 400),
        "huge body": (event_body(h, "ONTASKUPDATE", task) + "&pad=" + "a" * (200 * 1024), 413),
        "not utf-8": (b"event=\xff\xfe&auth%5Bmember_id%5D=\xc3\x28", 400),
        "garbage": (b"\x00\x01\x02%%%&&&==[[]]", 400),
    }
    for name, (body, want) in cases.items():
        r = _post(h, body)
        assert r.status_code == want, (name, r.status_code, r.text[:200])
        assert r.headers["Content-Type"].startswith("application/json"), name
    r = requests.post(h.url + "/events", json={"event": "ONTASKUPDATE"}, timeout=10)
    assert r.status_code == 400
    r = requests.post(h.url + "/events", files={"f": ("a.txt", b"x")}, data={"event": "ONTASKUPDATE"}, timeout=10)
    assert r.status_code == 400
    assert requests.get(h.url + "/events", timeout=10).status_code == 405
    assert _state(h) == before


KEYS = st.sampled_from(
    [
        "event",
        "auth[member_id]",
        "auth[application_token]",
        "data[FIELDS][ID]",
        "data[FIELDS_AFTER][ID]",
        "data[CLEAN]",
        "auth[domain]",
        "ts",
        "data",
        "auth",
        "auth[]",
        "data[[",
        "event[]",
        "auth[member_id][x]",
    ]
) | st.text(max_size=30)
VALUES = st.sampled_from(
    ["ONTASKUPDATE", "ONAPPUNINSTALL", "ONAPPINSTALL", "", "1", "undefined", "d0ub1e0000000000000000000000f00d"]
) | st.text(max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(KEYS, VALUES), max_size=25))
def test_fuzzed_forms_without_the_token_never_pass_or_crash(h, pairs):
    from urllib.parse import urlencode

    before = _state(h)
    r = _post(h, urlencode(pairs))
    assert 400 <= r.status_code < 500, r.text[:200]
    assert _state(h) == before


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=2048))
def test_fuzzed_raw_bodies_never_crash(h, body):
    before = _state(h)
    r = _post(h, body)
    assert 400 <= r.status_code < 500
    assert _state(h) == before


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    event=st.sampled_from(sorted(inbox.OBJECT_EVENTS)) | st.from_regex(r"\AON[A-Z]{1,20}\Z"),
    data=st.recursive(
        st.text(max_size=12) | st.integers(-5, 10**12).map(str),
        lambda c: st.dictionaries(
            st.sampled_from(["ID", "FIELDS", "FIELDS_AFTER", "FIELDS_BEFORE", "TASK_ID", "ENTITY_TYPE_ID", "x"]),
            c,
            max_size=4,
        ),
        max_leaves=8,
    ),
)
def test_fuzzed_events_with_the_token_are_accepted_and_never_break_the_worker(h, event, data):
    if event in (inbox.UNINSTALL, inbox.INSTALL):
        return
    r = _post(h, event_body(h, event, {"FIELDS": data} if isinstance(data, str) else data))
    assert r.status_code == 200, r.text[:200]
    h.settle()
    with h.db() as db:
        c = inbox.counts(db)
    assert set(c) <= {inbox.DONE, inbox.FAILED}


@settings(max_examples=300, deadline=None)
@given(body=st.text(max_size=400), event=st.text(max_size=30))
def test_decoding_and_mapping_never_raise(body, event):
    payload = inbox.decode(body)
    assert isinstance(payload, dict)
    for ch in inbox.changes_of(event, payload.get("data")):
        assert ch.id.isdigit()
