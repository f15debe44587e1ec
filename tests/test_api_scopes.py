"""b24desk.viewer: roles, scopes, signed tokens, CSRF and launch verification (core, no Flask)."""

from __future__ import annotations

import json

import pytest

from b24desk import viewer as V
from b24desk.installations import save_installation

SECRET = "s3cret"


def seed_org(db, portal="P1"):
    """Departments: 1 root > 2 support > 3 line-2 ; 4 sales. Users: 1 admin, 5 head of 2, 10/11 in 2, 12 in 3, 20 in 4."""
    db["departments"].insert_all(
        [
            {"portal": portal, "id": "1", "name": "Company", "parent": None, "head": "1"},
            {"portal": portal, "id": "2", "name": "Support", "parent": "1", "head": "5"},
            {"portal": portal, "id": "3", "name": "Line 2", "parent": "2", "head": None},
            {"portal": portal, "id": "4", "name": "Sales", "parent": "1", "head": "21"},
        ],
        pk=("portal", "id"),
        replace=True,
    )
    db["users"].insert_all(
        [
            {"portal": portal, "id": "1", "name": "Ada", "departments": "[1]"},
            {"portal": portal, "id": "5", "name": "Hank", "departments": "[2]"},
            {"portal": portal, "id": "10", "name": "Ann", "departments": "[2]"},
            {"portal": portal, "id": "11", "name": "Bob", "departments": "2"},
            {"portal": portal, "id": "12", "name": "Cid", "departments": json.dumps([3])},
            {"portal": portal, "id": "20", "name": "Sam", "departments": "[4]"},
        ],
        pk=("portal", "id"),
        replace=True,
    )


def agent(**kw):
    base = dict(portal="P1", user_id="10", role=V.AGENT, departments=("2",))
    base.update(kw)
    return V.Viewer(**base)


def head(**kw):
    base = dict(portal="P1", user_id="5", role=V.HEAD, departments=("2",), headed=("2",), tree=("2", "3"))
    base.update(kw)
    return V.Viewer(**base)


# --- tokens ------------------------------------------------------------------------------------


def test_token_round_trip_and_tampering():
    v = head(name="Hank", lang="ru")
    tok = V.dump_token(SECRET, v)
    assert V.load_token(SECRET, tok) == v
    with pytest.raises(V.ViewerError) as e:
        V.load_token("other-secret", tok)
    assert e.value.status == 401 and e.value.code == "bad_token"
    with pytest.raises(V.ViewerError) as e:
        V.load_token(SECRET, tok[:-3] + ("AAA" if not tok.endswith("AAA") else "BBB"))
    assert e.value.status == 401
    with pytest.raises(V.ViewerError) as e:
        V.load_token(SECRET, None)
    assert e.value.code == "no_token"


def test_token_expires():
    tok = V.dump_token(SECRET, agent())
    with pytest.raises(V.ViewerError) as e:
        V.load_token(SECRET, tok, max_age=-1)
    assert e.value.code == "expired"


def test_csrf_bound_to_the_token():
    a, b = agent(), agent()  # same user, two sessions: different nonces
    tok = V.csrf_token(SECRET, a)
    V.check_csrf(SECRET, a, tok)
    for bad in (None, "", "x" * 64, V.csrf_token(SECRET, b)):
        with pytest.raises(V.ViewerError) as e:
            V.check_csrf(SECRET, a, bad)
        assert e.value.status == 403


# --- scopes ------------------------------------------------------------------------------------


def test_admin_sees_anything():
    v = V.Viewer(portal="P1", user_id="1", role=V.ADMIN)
    s = V.scope_query(v, {"department": "4", "agent": "20"}, "agent")
    assert s.slice == "all" and s.filters["department"] == "4" and s.group_by == "agent"


def test_agent_own_numbers_forced_and_others_refused(db):
    seed_org(db)
    s = V.scope_query(agent(), {}, None, db=db)
    assert s.slice == "own" and s.filters["agent"] == "10"
    s = V.scope_query(agent(), {"priority": "high"}, "priority", db=db)
    assert s.filters == {
        "source": None,
        "department": None,
        "agent": "10",
        "priority": "high",
        "type": None,
        "channel": None,
        "line": None,
    }
    with pytest.raises(V.ViewerError) as e:
        V.scope_query(agent(), {"agent": "11"}, None, db=db)
    assert e.value.status == 403 and e.value.code == "forbidden_agent"
    with pytest.raises(V.ViewerError) as e:
        V.scope_query(agent(), {"department": "4"}, None, db=db)
    assert e.value.status == 403 and e.value.code == "forbidden_department"


def test_agent_team_totals_never_split_by_colleague(db):
    seed_org(db)
    s = V.scope_query(agent(), {}, None, want="team", db=db)
    assert s.slice == "team" and s.filters["department"] == "2" and s.filters["agent"] is None
    assert not V.can_drill(agent(), s)
    s = V.scope_query(agent(), {"department": "2"}, "priority", db=db)
    assert s.slice == "team"
    for dim in ("agent", "department"):
        with pytest.raises(V.ViewerError) as e:
            V.scope_query(agent(), {"department": "2"}, dim, db=db)
        assert e.value.status == 403
    with pytest.raises(V.ViewerError):
        V.scope_query(agent(departments=()), {}, None, want="team", db=db)


def test_head_sees_their_tree_only(db):
    seed_org(db)
    s = V.scope_query(head(), {}, "agent", db=db)
    assert s.slice == "tree" and s.filters["department"] == "2"
    assert V.scope_query(head(), {"department": "3"}, None, db=db).filters["department"] == "3"
    assert V.scope_query(head(), {"agent": "12"}, None, db=db).filters["agent"] == "12"
    with pytest.raises(V.ViewerError) as e:
        V.scope_query(head(), {"department": "4"}, None, db=db)
    assert e.value.code == "forbidden_department"
    with pytest.raises(V.ViewerError) as e:
        V.scope_query(head(), {"agent": "20"}, None, db=db)
    assert e.value.code == "forbidden_agent"


def test_bad_input_is_a_clear_400():
    for f, g in (({"colour": "red"}, None), ({}, "moon")):
        with pytest.raises(V.ViewerError) as e:
            V.scope_query(agent(), f, g)
        assert e.value.status == 400


def test_subtree_and_members(db):
    seed_org(db)
    parents = V.department_parents(db, "P1")
    assert V.subtree(parents, ["2"]) == ["2", "3"]
    assert V.subtree(parents, ["1"]) == ["1", "2", "3", "4"]
    assert V.subtree({"a": "b", "b": "a"}, ["a"]) == ["a", "b"]  # a cycle ends
    assert V.members(db, "P1", ["2", "3"]) == {"5", "10", "11", "12"}


def test_ticket_visibility(db):
    seed_org(db)
    t = {"portal": "P1", "responsible_id": "12", "author_id": "99"}
    assert V.can_see_ticket(V.Viewer(portal="P1", user_id="1", role=V.ADMIN), t)
    assert V.can_see_ticket(head(), t, db=db)
    assert V.can_see_ticket(agent(user_id="12"), t, db=db)
    assert not V.can_see_ticket(agent(), t, db=db)
    assert V.can_see_ticket(agent(), t, db=db, actors=["10"])  # once assigned to them
    assert not V.can_see_ticket(V.Viewer(portal="P2", user_id="1", role=V.ADMIN), t)


# --- launch verification -----------------------------------------------------------------------


class FakePortal:
    """Answers the three launch calls for known tokens; anything else is refused like a 401."""

    def __init__(self, endpoint, users):
        self.endpoint, self.users, self.calls = endpoint, users, []

    def __call__(self, endpoint, token, method, params):
        self.calls.append((endpoint, method, dict(params)))
        if endpoint != self.endpoint or token not in self.users:
            raise RuntimeError("401 invalid_token")
        u = self.users[token]
        if method == "user.current":
            return {"ID": u["id"], "NAME": u["name"], "UF_DEPARTMENT": u["deps"]}
        if method == "user.admin":
            return u.get("admin", False)
        if method == "department.get":
            return [{"ID": d, "NAME": "D", "UF_HEAD": u["id"]} for d in u.get("heads", [])]
        raise AssertionError(method)


@pytest.fixture
def installed(db):
    save_installation(
        db,
        member_id="P1",
        domain="p1.example",
        client_endpoint="https://p1.example/rest/",
        application_token="apptok",
        lang="ru",
    )
    save_installation(
        db, member_id="P2", domain="p2.example", client_endpoint="https://p2.example/rest/", application_token="apptok2"
    )
    seed_org(db)
    return FakePortal(
        "https://p1.example/rest/",
        {
            "tok-admin": {"id": 1, "name": "Ada", "deps": [1], "admin": True},
            "tok-head": {"id": 5, "name": "Hank", "deps": [2], "heads": ["2"]},
            "tok-agent": {"id": 10, "name": "Ann", "deps": [2]},
        },
    )


def form(token, member="P1", app="apptok", **kw):
    f = {
        "AUTH_ID": token,
        "member_id": member,
        "APPLICATION_TOKEN": app,
        "PLACEMENT": "DEFAULT",
        "PLACEMENT_OPTIONS": "undefined",
    }
    f.update(kw)
    return f


def test_launch_roles(db, installed):
    la = V.verify_launch(db, {"LANG": "en", "DOMAIN": "evil.example"}, form("tok-admin"), call=installed)
    assert la.viewer.role == V.ADMIN and la.viewer.user_id == "1" and la.viewer.lang == "en"
    assert la.viewer.domain == "p1.example"  # stored, never the request's DOMAIN
    lh = V.verify_launch(db, {}, form("tok-head"), call=installed)
    assert lh.viewer.role == V.HEAD and lh.viewer.tree == ("2", "3") and lh.viewer.lang == "ru"
    lg = V.verify_launch(
        db,
        {},
        form("tok-agent", PLACEMENT="TASK_VIEW_TAB", PLACEMENT_OPTIONS=json.dumps({"taskId": "42"})),
        call=installed,
    )
    assert lg.viewer.role == V.AGENT and lg.viewer.departments == ("2",)
    assert lg.placement == "TASK_VIEW_TAB" and lg.options == {"taskId": "42"}
    # every call went to the stored endpoint
    assert {c[0] for c in installed.calls} == {"https://p1.example/rest/"}
    assert ("https://p1.example/rest/", "department.get", {"UF_HEAD": "5"}) in installed.calls


@pytest.mark.parametrize(
    "f, status, code",
    [
        (form("tok-admin", app="wrong"), 403, "bad_application_token"),
        (form("tok-admin", app=""), 403, "bad_application_token"),
        (form("tok-admin", member="P2", app="apptok"), 403, "bad_application_token"),
        (form("tok-of-p2", member="P2", app="apptok2"), 403, "portal_refused"),  # P2's endpoint refuses
        (form("forged"), 403, "portal_refused"),
        (form("tok-admin", member="NOPE"), 403, "unknown_portal"),
        (form("", member="P1"), 400, "bad_launch"),
        (form("tok-admin", PLACEMENT_OPTIONS="{not json"), 400, "bad_options"),
    ],
)
def test_forged_launches_refused(db, installed, f, status, code):
    with pytest.raises(V.ViewerError) as e:
        V.verify_launch(db, {}, f, call=installed)
    assert (e.value.status, e.value.code) == (status, code)


def test_uninstalled_portal_refused(db, installed):
    db.execute("update installations set active = 0 where member_id = 'P1'")
    with pytest.raises(V.ViewerError) as e:
        V.verify_launch(db, {}, form("tok-admin"), call=installed)
    assert e.value.code == "inactive"


def test_head_tree_from_portal_when_store_has_no_departments(db, installed):
    db.execute("delete from departments")
    lh = V.verify_launch(
        db,
        {},
        form("tok-head"),
        call=installed,
        portal_departments=lambda: [{"ID": "2", "PARENT": "1"}, {"ID": "7", "PARENT": "2"}],
    )
    assert lh.viewer.tree == ("2", "7")


def test_lang_and_options_parsing():
    assert V.lang_of("ru") == "ru" and V.lang_of("ua") == "ru" and V.lang_of("de") == "en"
    assert V.lang_of(None, "ru") == "ru"
    assert V.parse_options("") == {} and V.parse_options('{"ID":"8"}') == {"ID": "8"}
    assert V.parse_ids("1,2") == ["1", "2"] and V.parse_ids("[3, 4]") == ["3", "4"] and V.parse_ids(None) == []
