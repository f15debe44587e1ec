"""The double's open-line methods answer like the docs say (DOCS api-reference/imopenlines/statistics/
index.md, data-types.md and the page of each method): shapes, limits, filters and error codes."""

from __future__ import annotations

import pytest
from openlines_support import client_for, make_double

from b24desk.client import B24Error
from b24desk.model import parse_time
from portal_double import openlines as dol

SESSION_FIELDS = {
    "id",
    "configId",
    "source",
    "operatorId",
    "userId",
    "userCode",
    "chatId",
    "dateCreate",
    "dateClose",
    "dateFirstAnswer",
    "dateOperatorAnswer",
    "status",
    "closeReason",
    "vote",
    "voteHead",
    "commentHead",
    "crmEntityType",
    "crmEntityId",
    "queueTransfers",
    "waitAnswer",
    "waitClose",
    "kpiFirstAnswer",
    "messageCount",
}
STAT_FIELDS = {
    "totalSessions",
    "closedSessions",
    "spamSessions",
    "avgWaitAnswer",
    "avgSessionDuration",
    "likeCount",
    "dislikeCount",
    "votedSessions",
    "positiveRate",
    "kpiFirstAnswerOk",
    "kpiFirstAnswerFail",
    "sessionsBySource",
    "sessionsByHour",
    "sessionsByOperator",
}
PERIOD = {"dateCreateFrom": "2026-09-01T00:00:00+03:00", "dateCreateTo": "2026-09-30T23:59:59+03:00"}


@pytest.fixture(scope="module")
def d():
    dd = make_double(300, seed=4)
    dd.start()
    yield dd
    dd.stop()


@pytest.fixture(scope="module")
def c(d):
    return client_for(d)


def err(c, method, params):
    with pytest.raises(B24Error) as e:
        c.call(method, params)
    return e.value.status, e.value.code


def test_session_list_shape_defaults_and_order(d, c):
    res = c.call("imopenlines.v2.Session.list", {})
    assert set(res) == {"sessions", "hasNextPage"} and res["hasNextPage"] is True
    assert len(res["sessions"]) == 50  # default limit
    assert set(res["sessions"][0]) == SESSION_FIELDS
    created = [parse_time(s["dateCreate"]) for s in res["sessions"]]
    assert created == sorted(created, reverse=True)  # default: dateCreate desc
    assert res["sessions"][0]["dateCreate"].endswith("+03:00")  # the portal's zone
    # dateClose order needs a full period; without one the list stays in creation order
    by_close = c.call("imopenlines.v2.Session.list", {"order": "dateClose", "orderDirection": "asc", "limit": 200})
    assert [s["id"] for s in by_close["sessions"]] == sorted(s["id"] for s in by_close["sessions"])
    with_period = c.call(
        "imopenlines.v2.Session.list",
        {**PERIOD, "order": "waitClose", "orderDirection": "asc", "status": "closed", "limit": 200},
    )["sessions"]
    waits = [s["waitClose"] for s in with_period]
    assert waits == sorted(waits) and len(with_period) > 20
    last = c.call("imopenlines.v2.Session.list", {"offset": 250, "limit": 200})
    assert len(last["sessions"]) == 50 and last["hasNextPage"] is False


def test_session_list_filters(d, c):
    sessions = dol.state(d.portal).sessions
    one = c.call("imopenlines.v2.Session.list", {"configId": 2, "configIdList": [3], "limit": 200})["sessions"]
    assert {s["configId"] for s in one} == {3}  # the list wins over the single id
    liked = c.call("imopenlines.v2.Session.list", {"vote": "like", "limit": 200})["sessions"]
    assert len(liked) == sum(1 for s in sessions if s["vote"] == "like") and all(s["vote"] == "like" for s in liked)
    anyvote = c.call("imopenlines.v2.Session.list", {"vote": "any", "limit": 200})["sessions"]
    assert len(anyvote) == sum(1 for s in sessions if s["vote"] != "none")
    spam = c.call("imopenlines.v2.Session.list", {"closeReason": "spam", "limit": 200})["sessions"]
    assert all(s["status"] == "spam" for s in spam)
    fast = c.call("imopenlines.v2.Session.list", {"waitAnswerTo": 10, "limit": 200})["sessions"]
    assert fast and all(s["waitAnswer"] is not None and s["waitAnswer"] <= 10 for s in fast)
    kpi = c.call("imopenlines.v2.Session.list", {**PERIOD, "kpiFirstAnswer": "N", "limit": 200})["sessions"]
    assert all(s["kpiFirstAnswer"] is False for s in kpi)
    crm = c.call("imopenlines.v2.Session.list", {"hasCrm": True, "limit": 200})["sessions"]
    assert all(s["crmEntityId"] for s in crm)


@pytest.mark.parametrize(
    "params, code",
    [
        ({"limit": 201}, "INVALID_FILTER"),
        ({"limit": 0}, "INVALID_FILTER"),
        ({"offset": 10001}, "OFFSET_TOO_LARGE"),
        ({"status": "closed", "closeReason": "spam"}, "INVALID_FILTER"),
        ({"status": "open"}, "INVALID_FILTER"),
        (
            {"dateCreateFrom": "2025-01-01T00:00:00+03:00", "dateCreateTo": "2026-06-01T00:00:00+03:00"},
            "PERIOD_TOO_LARGE",
        ),
        ({"dateCloseFrom": "2026-09-02T00:00:00+03:00", "dateCloseTo": "2026-09-01T00:00:00+03:00"}, "INVALID_FILTER"),
        ({"dateCreateFrom": "yesterday"}, "INVALID_FILTER"),
        ({"kpiFirstAnswer": "Y"}, "INVALID_FILTER"),
        ({"configIdList": list(range(1001))}, "INVALID_FILTER"),
        ({"vote": "maybe"}, "INVALID_FILTER"),
    ],
)
def test_session_list_errors(c, params, code):
    assert err(c, "imopenlines.v2.Session.list", params) == (400, code)


def test_offset_10000_is_still_allowed(c):
    assert c.call("imopenlines.v2.Session.list", {"offset": 10000, "limit": 200}) == {
        "sessions": [],
        "hasNextPage": False,
    }


def test_transfer_list(d, c):
    state = dol.state(d.portal)
    sid = next(s["id"] for s in state.sessions if len(state.transfers[s["id"]]) >= 2)
    rows = c.call("imopenlines.v2.Session.Transfer.list", {"sessionId": [sid, sid, 999999]})["transfers"]
    assert len(rows) == len(state.transfers[sid]) and {r["sessionId"] for r in rows} == {sid}
    assert set(rows[0]) == {
        "sessionId",
        "date",
        "fromOperatorId",
        "toOperatorId",
        "fromConfigId",
        "toConfigId",
        "reason",
        "mode",
        "type",
        "initiatorId",
    }
    assert rows[0]["fromOperatorId"] is None and rows[0]["mode"] in ("AUTO", "BOT")  # the first distribution
    ids = [s["id"] for s in state.sessions[:50]]
    assert c.call("imopenlines.v2.Session.Transfer.list", {"sessionId": ids + ids[:5]})  # duplicates removed
    assert err(c, "imopenlines.v2.Session.Transfer.list", {"sessionId": [s["id"] for s in state.sessions[:51]]}) == (
        400,
        "BATCH_LIMIT_EXCEEDED",
    )
    assert err(c, "imopenlines.v2.Session.Transfer.list", {}) == (400, "100")
    assert err(c, "imopenlines.v2.Session.Transfer.list", {"sessionId": 5}) == (400, "100")


def test_session_stat_get(d, c):
    state = dol.state(d.portal)
    s = next(x for x in state.sessions if x["dateOperatorAnswer"])
    rows = c.call("imopenlines.v2.Session.Stat.get", {"sessionId": [s["id"], 999999]})["sessions"]
    assert rows[0]["sessionId"] == s["id"] and rows[0]["messagesOperatorCount"] == s["msgOperator"]
    assert rows[0]["transfersCount"] == sum(1 for r in state.transfers[s["id"]] if r["fromOperatorId"] is not None)
    assert rows[1] == {
        "sessionId": 999999,
        "waitAnswer": None,
        "waitClose": None,
        "messagesCount": None,
        "messagesOperatorCount": None,
        "messagesClientCount": None,
        "transfersCount": None,
        "kpiFirstAnswer": None,
        "vote": None,
        "voteHead": None,
    }
    too_many = {"sessionId": list(range(1, 102))}
    assert err(c, "imopenlines.v2.Session.Stat.get", too_many) == (400, "BATCH_LIMIT_EXCEEDED")


def test_rating_list(d, c):
    state = dol.state(d.portal)
    period = {"dateVoteFrom": "2026-05-01T00:00:00+03:00", "dateVoteTo": "2026-10-31T00:00:00+03:00"}
    rows = c.call("imopenlines.v2.Session.Rating.list", {**period, "limit": 200})
    voted = [s for s in state.sessions if s["vote"] != "none"]
    assert rows["hasNextPage"] is (len(voted) > 200)
    assert all(r["vote"] in ("like", "dislike") for r in rows["ratings"])
    assert set(rows["ratings"][0]) == {
        "sessionId",
        "configId",
        "operatorId",
        "source",
        "vote",
        "voteHead",
        "commentHead",
        "dateVote",
        "dateSessionClose",
    }
    assert err(c, "imopenlines.v2.Session.Rating.list", {}) == (400, "PERIOD_REQUIRED")
    assert err(c, "imopenlines.v2.Session.Rating.list", {**period, "vote": "none"}) == (400, "INVALID_FILTER")
    assert err(c, "imopenlines.v2.Session.Rating.list", {**period, "offset": 10200}) == (400, "OFFSET_TOO_LARGE")


def test_stat_get(d, c):
    res = c.call("imopenlines.v2.Stat.get", {"dateFrom": PERIOD["dateCreateFrom"], "dateTo": PERIOD["dateCreateTo"]})
    assert set(res) == STAT_FIELDS and len(res["sessionsByHour"]) == 24
    listed = c.call("imopenlines.v2.Session.list", {**PERIOD, "limit": 200})["sessions"]
    assert res["totalSessions"] == len(listed) == sum(res["sessionsByHour"])
    assert res["votedSessions"] == res["likeCount"] + res["dislikeCount"]
    assert res["positiveRate"] == round(res["likeCount"] / res["votedSessions"], 4)
    empty = c.call(
        "imopenlines.v2.Stat.get", {"dateFrom": "2020-01-01T00:00:00+03:00", "dateTo": "2020-02-01T00:00:00+03:00"}
    )
    assert empty["totalSessions"] == 0 and empty["avgWaitAnswer"] == 0 and empty["positiveRate"] == 0
    assert err(c, "imopenlines.v2.Stat.get", {"dateFrom": PERIOD["dateCreateFrom"]}) == (400, "PERIOD_REQUIRED")
    year_and_more = {"dateFrom": "2025-01-01", "dateTo": "2026-09-01"}
    assert err(c, "imopenlines.v2.Stat.get", year_and_more) == (400, "PERIOD_TOO_LARGE")


def test_operator_list_and_config_list(d, c):
    ops = c.call("imopenlines.v2.Operator.list", {"configId": 1})
    assert ops["operators"] and all(o["configId"] == 1 for o in ops["operators"])
    assert set(ops["operators"][0]) == {
        "userId",
        "configId",
        "status",
        "activeSessions",
        "maxChat",
        "freeSlots",
        "lastActivityDate",
    }
    assert err(c, "imopenlines.v2.Operator.list", {"status": "busy"}) == (400, "INVALID_FILTER")
    lines = c.call("imopenlines.config.list.get", {"PARAMS": {"select": ["ID", "LINE_NAME"]}})
    assert lines == [
        {"ID": "1", "LINE_NAME": "Поддержка"},
        {"ID": "2", "LINE_NAME": "Продажи"},
        {"ID": "3", "LINE_NAME": "VIP-клиенты"},
    ]


def test_plan_permissions_and_scope(d, c):
    state = dol.state(d.portal)
    period = {"dateFrom": PERIOD["dateCreateFrom"], "dateTo": PERIOD["dateCreateTo"]}
    try:
        state.head_votes_visible = False
        rows = c.call("imopenlines.v2.Session.list", {"hasVoteHead": "Y", "limit": 200})["sessions"]
        assert rows and all(s["voteHead"] is None and s["commentHead"] is None for s in rows)
        state.plan_allows = False
        for m, p in (
            ("imopenlines.v2.Session.list", {}),
            ("imopenlines.v2.Stat.get", period),
            ("imopenlines.v2.Session.Transfer.list", {"sessionId": [1]}),
            ("imopenlines.v2.Session.Stat.get", {"sessionId": [1]}),
            ("imopenlines.v2.Session.Rating.list", {"dateVoteFrom": "2026-09-01", "dateVoteTo": "2026-09-02"}),
            ("imopenlines.v2.Operator.list", {}),
        ):
            assert err(c, m, p) == (400, "TARIFF_RESTRICTION")
        assert c.call("imopenlines.config.list.get", {})  # not a report: still allowed
        state.plan_allows = True
        state.report_users = {1}
        assert err(client_for(d, d.add_webhook(10)), "imopenlines.v2.Stat.get", period) == (403, "ACCESS_DENIED")
        assert c.call("imopenlines.v2.Stat.get", period)["totalSessions"] >= 0
    finally:
        state.head_votes_visible, state.plan_allows, state.report_users = True, True, None
    narrow = client_for(d, d.add_webhook(1, scopes={"basic", "task"}))
    assert err(narrow, "imopenlines.v2.Session.list", {}) == (403, "insufficient_scope")
