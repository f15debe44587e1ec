"""The double's ground truth agrees with what its API serves, and the generated desk is realistic.

``read_over_http`` is a small independent reader: it pulls every ticket over HTTP and applies the
default mappings of kpi.md itself, so a rendering bug in the double or a mapping bug in truth.py
shows up as a mismatch.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

import pytest
import requests

from portal_double import PortalDouble
from portal_double.phpquery import build_query

END = datetime(2026, 10, 15, 12, 0, tzinfo=timezone.utc)


def ts(s):
    return None if s in (None, "") else int(datetime.fromisoformat(s).timestamp())


class Reader:
    def __init__(self, d):
        self.d = d
        self.s = requests.Session()

    def call(self, method, params=None):
        r = self.s.post(self.d.webhook_url + method, json=params or {}, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def keyset(self, method, params, wrap=None, id_key="ID", resp_key=None):
        rows, last = [], 0
        while True:
            p = dict(params, order={id_key: "ASC"}, start=-1)
            p["filter"] = dict(params.get("filter", {}), **{f">{id_key}": last})
            res = self.call(method, p)["result"]
            page = res[wrap] if wrap else res
            rows += page
            if len(page) < 50:
                return rows
            last = page[-1][resp_key or id_key]

    def batch(self, cmds: dict) -> dict:
        out = {}
        keys = list(cmds)
        for i in range(0, len(keys), 50):
            part = {k: cmds[k] for k in keys[i : i + 50]}
            res = self.call("batch", {"cmd": part})["result"]
            assert res["result_error"] == [], res["result_error"]
            out.update(res["result"])
        return out


def read_tasks(r: Reader) -> dict:
    tasks = r.keyset(
        "tasks.task.list",
        {
            "select": [
                "ID",
                "STATUS",
                "CREATED_BY",
                "CREATED_DATE",
                "RESPONSIBLE_ID",
                "DEADLINE",
                "PRIORITY",
                "MARK",
                "GROUP_ID",
            ]
        },
        wrap="tasks",
        id_key="ID",
        resp_key="id",
    )
    cmds = {}
    for t in tasks:
        cmds[f"h{t['id']}"] = f"tasks.task.history.list?taskId={t['id']}&order[ID]=asc"
        cmds[f"c{t['id']}"] = f"task.commentitem.getlist?TASKID={t['id']}&ORDER[ID]=asc"
        cmds[f"e{t['id']}"] = f"task.elapseditem.getlist?TASKID={t['id']}"
    got = r.batch(cmds)
    out = {}
    for t in tasks:
        tid, author = t["id"], t["createdBy"]
        kinds = Counter({"created": 1})
        resolved_at = None
        first_resp = t["responsibleId"]
        for h in got[f"h{tid}"]["list"]:
            if h["field"] == "STATUS":
                kinds["status"] += 1
                a, b = int(h["value"]["from"]), int(h["value"]["to"])
                if a in (2, 3, 6) and b in (4, 5):
                    kinds["resolved"] += 1
                    resolved_at = ts(h["createdDate"])
                elif a in (4, 5) and b in (2, 3, 6):
                    kinds["reopened"] += 1
            elif h["field"] == "RESPONSIBLE_ID":
                if kinds["assigned"] == 0:
                    first_resp = h["value"]["from"]
                kinds["assigned"] += 1
            elif h["field"] == "MARK":
                kinds["rated"] += 1
            elif h["field"] in ("DEADLINE", "PRIORITY", "TITLE", "GROUP_ID"):
                kinds["field_changed"] += 1
        for c in got[f"c{tid}"]:
            kinds["customer_message" if c["AUTHOR_ID"] == author else "reply"] += 1
        kinds["assigned"] += 1  # the initial assignment
        state = "resolved" if t["status"] in ("4", "5") else "open"
        secs = [int(e["SECONDS"]) for e in got[f"e{tid}"]]
        if secs:
            kinds["worked"] += len(secs)  # one per elapsed record
        out[("task", tid)] = {
            "state": state,
            "created_at": ts(t["createdDate"]),
            "responsible_id": t["responsibleId"],
            "author_id": author,
            "customer": author,
            "deadline": ts(t["deadline"]),
            "priority": {"0": "low", "1": "normal", "2": "high"}[t["priority"]],
            "rating": {"P": 5, "N": 1}.get(t["mark"] or ""),
            "resolved_at": resolved_at if state == "resolved" else None,
            "handle_time": sum(secs) if secs else None,
            "kinds": kinds,
            "first_resp": first_resp,
        }
    return out


def read_crm(r: Reader, etid: int) -> dict:
    sems = {}
    for s in r.call("crm.status.list")["result"]:
        sems[s["STATUS_ID"]] = s["SEMANTICS"] or "P"
    items = r.keyset("crm.item.list", {"entityTypeId": etid, "select": ["*"]}, wrap="items", id_key="id")
    hist = r.keyset("crm.stagehistory.list", {"entityTypeId": etid}, wrap="items", id_key="ID")
    acts = r.keyset("crm.activity.list", {"filter": {"OWNER_TYPE_ID": etid}})
    ent = "deal" if etid == 2 else f"dynamic_{etid}"
    tl = r.batch(
        {
            f"t{it['id']}": "crm.timeline.comment.list?"
            + build_query({"filter": {"ENTITY_ID": it["id"], "ENTITY_TYPE": ent}})
            for it in items
        }
    )
    by_owner, acts_by = {}, {}
    for h in hist:
        by_owner.setdefault(h["OWNER_ID"], []).append(h)
    for a in acts:
        acts_by.setdefault(int(a["OWNER_ID"]), []).append(a)
    esc = {"C3:UC_SECOND_LINE", "DT1038_5:UC_SECOND_LINE", "DT1038_6:UC_SECOND_LINE"}
    out = {}
    for it in items:
        kinds = Counter({"created": 1, "assigned": 1})
        prev = None
        res_at = close_at = None
        for h in by_owner.get(it["id"], []):
            if h["TYPE_ID"] == 1:
                prev = h["STAGE_ID"]
                continue
            kinds["status"] += 1
            if h["TYPE_ID"] == 5:
                kinds["field_changed"] += 1
            a, b = sems.get(prev, "P"), sems[h["STAGE_ID"]]
            if a != b:
                if b == "S":
                    kinds["resolved"] += 1
                    res_at = close_at = ts(h["CREATED_TIME"])
                elif b == "F":
                    kinds["rejected"] += 1
                    close_at = ts(h["CREATED_TIME"])
                elif a in ("S", "F"):
                    kinds["reopened"] += 1
            if h["STAGE_ID"] in esc and prev not in esc:
                kinds["escalated"] += 1
            prev = h["STAGE_ID"]
        calls, any_call = 0, False
        for a in acts_by.get(it["id"], []):
            if a["TYPE_ID"] not in ("2", "4"):
                continue
            if a["TYPE_ID"] == "2" and a["COMPLETED"] == "Y":
                any_call = True
                calls += ts(a["END_TIME"]) - ts(a["START_TIME"])
                kinds["worked"] += 1  # a call's length is tracked work
            if a["DIRECTION"] == "1":
                kinds["customer_message"] += 1
            elif a["DIRECTION"] == "2":
                kinds["reply"] += 1
                if a["TYPE_ID"] == "2":
                    kinds["call_out"] += 1
        if tl[f"t{it['id']}"]:
            kinds["comment"] += len(tl[f"t{it['id']}"])
        rating_key = "ufCrm_RATING" if etid == 2 else "ufCrm3_RATING"
        if it.get(rating_key) is not None:
            kinds["rated"] += 1
        sem = sems[it["stageId"]]
        state = {"S": "resolved", "F": "rejected"}.get(sem, "open")
        out[(f"crm:{etid}", str(it["id"]))] = {
            "state": state,
            "created_at": ts(it["createdTime"]),
            "responsible_id": str(it["assignedById"]),
            "author_id": str(it["createdBy"]),
            "type": str(it["categoryId"]),
            "customer": f"C_{it['contactId']}"
            if it.get("contactId")
            else (f"CO_{it['companyId']}" if it.get("companyId") else None),
            "rating": it.get(rating_key),
            "resolved_at": res_at if state == "resolved" else None,
            "closed_at": close_at if state != "open" else None,
            "handle_time": calls if any_call else None,
            "kinds": kinds,
        }
    return out


@pytest.fixture(scope="module")
def d():
    dbl = PortalDouble(seed=11, tickets=240, end=END, drain_per_s=1e6).start()
    yield dbl
    dbl.stop()


def _compare(api: dict, truth, keys):
    for key, a in api.items():
        t = truth.ticket(*key)
        for k in keys:
            if k in a:
                assert t[k] == a[k], (key, k, t[k], a[k])
        kinds = Counter(e["kind"] for e in truth.events_of(*key))
        assert kinds == a["kinds"], (key, kinds, a["kinds"])
        worked = [int(e["to_value"]) for e in truth.events_of(*key) if e["kind"] == "worked"]
        assert (sum(worked) if worked else None) == t["handle_time"], key


def test_tasks_truth_matches_the_api(d):
    api = read_tasks(Reader(d))
    truth = d.truth
    assert set(api) == {(t["source"], t["source_id"]) for t in truth.select("task")}
    _compare(
        api,
        truth,
        (
            "state",
            "created_at",
            "responsible_id",
            "author_id",
            "customer",
            "deadline",
            "priority",
            "rating",
            "resolved_at",
            "handle_time",
        ),
    )
    for key, a in api.items():
        first = next(e for e in truth.events_of(*key) if e["kind"] == "assigned")
        assert first["from_value"] is None and first["to_value"] == a["first_resp"]


@pytest.mark.parametrize("etid", [2, 1038])
def test_crm_truth_matches_the_api(d, etid):
    api = read_crm(Reader(d), etid)
    truth = d.truth
    assert set(api) == {(t["source"], t["source_id"]) for t in truth.select(f"crm:{etid}")}
    _compare(
        api,
        truth,
        (
            "state",
            "created_at",
            "responsible_id",
            "author_id",
            "type",
            "customer",
            "rating",
            "resolved_at",
            "closed_at",
            "handle_time",
        ),
    )


def test_truth_rows_have_the_model_fields(d):
    t = d.truth
    ticket_fields = {
        "portal",
        "source",
        "source_id",
        "title",
        "type",
        "priority",
        "priority_raw",
        "author_id",
        "customer",
        "responsible_id",
        "created_at",
        "deadline",
        "resolved_at",
        "closed_at",
        "state",
        "rating",
        "nps",
        "ces",
        "qa_score",
        "channel",
        "line",
        "handle_time",
        "selector",
        "url",
        "deleted",
    }
    event_fields = {"portal", "source", "source_id", "key", "kind", "at", "actor_id", "field", "from_value", "to_value"}
    kinds = {
        "created",
        "assigned",
        "status",
        "reply",
        "customer_message",
        "comment",
        "reopened",
        "resolved",
        "rejected",
        "field_changed",
        "call_out",
        "rated",
        "escalated",
        "worked",
    }
    for tk in t.tickets:
        assert set(tk) == ticket_fields
        assert isinstance(tk["created_at"], int) and tk["state"] in ("open", "resolved", "rejected")
        evs = t.events[(tk["source"], tk["source_id"])]
        assert evs[0]["kind"] == "created" and [e["at"] for e in evs] == sorted(e["at"] for e in evs)
        assert len({e["key"] for e in evs}) == len(evs)
        for e in evs:
            assert set(e) == event_fields and e["kind"] in kinds and isinstance(e["at"], int)
            assert e["at"] <= t.now


def test_generation_is_deterministic():
    a = PortalDouble(seed=4, tickets=120, end=END).truth
    b = PortalDouble(seed=4, tickets=120, end=END).truth
    c = PortalDouble(seed=5, tickets=120, end=END).truth
    strip = lambda t: [{k: v for k, v in x.items() if k != "portal"} for x in t.tickets]  # noqa: E731
    assert strip(a) == strip(b) and a.events == b.events
    assert strip(a) != strip(c)


def test_desk_is_realistic():
    d = PortalDouble(seed=1, tickets=2000, end=END)
    t = d.truth
    tickets = t.select("task") + t.select("crm:2", category=3) + t.select("crm:1038")
    n = len(tickets)
    state = Counter(x["state"] for x in tickets)
    assert 0.01 < state["open"] / n < 0.2 and state["rejected"] > 0
    ev = {
        (x["source"], x["source_id"]): Counter(e["kind"] for e in t.events[(x["source"], x["source_id"])])
        for x in tickets
    }
    share = lambda kind: sum(1 for c in ev.values() if c[kind]) / n  # noqa: E731
    assert 0.03 < share("reopened") < 0.15
    assert 0.04 < share("escalated") + sum(1 for c in ev.values() if c["assigned"] > 1) / n < 0.3
    assert (
        0 < sum(1 for k, c in ev.items() if k[0] == "crm:1038" and c["field_changed"]) < 0.2 * len(t.select("crm:1038"))
    )
    assert share("call_out") > 0.1 and share("comment") > 0.05
    unanswered = sum(1 for c in ev.values() if not c["reply"]) / n
    assert 0.01 < unanswered < 0.1
    rated = [x["rating"] for x in tickets if x["rating"] is not None]
    assert 0.3 < len(rated) / n < 0.7 and 0.6 < sum(r >= 4 for r in rated) / len(rated) < 0.9
    # seasonality: working hours and weekdays are busier
    local = [datetime.fromtimestamp(x["created_at"], d.portal.tz) for x in tickets]
    assert sum(9 <= x.hour < 18 for x in local) / n > 0.6
    assert sum(x.weekday() < 5 for x in local) / n > 0.85
    # groups, repeat customers, departments with heads
    tasks = t.select("task")
    assert len(t.select("task", group_id=7)) / len(tasks) > 0.6
    per_customer = Counter(x["customer"] for x in tickets)
    assert max(per_customer.values()) >= 5
    heads = {dep["ID"]: dep["UF_HEAD"] for dep in d.portal.departments}
    assert all(heads.values()) and sum(1 for dep in d.portal.departments if dep["PARENT"] == 1) == 3
    # a KPI in the red: mean first response time over the 600 s target
    frt = []
    for x in tickets:
        first = next((e["at"] for e in t.events[(x["source"], x["source_id"])] if e["kind"] == "reply"), None)
        if first is not None:
            frt.append(first - x["created_at"])
    assert sum(frt) / len(frt) > 600


def test_mutations_keep_api_and_truth_consistent():
    d = PortalDouble(seed=8, tickets=80, end=END, drain_per_s=1e6).start()
    try:
        r = Reader(d)
        p = d.portal
        agent, other = d.desk.agents[0], d.desk.agents[1]
        client = d.desk.requesters[0]
        d.advance(3600)
        task = p.create_task(creator=client, responsible=agent, title="Принтер не печатает", priority=2)
        tid = task["id"]
        d.advance(600)
        p.add_task_comment(tid, agent, "Смотрим")
        p.add_task_comment(tid, client, "Спасибо")
        p.update_task(tid, status=3)
        p.update_task(tid, responsible_id=other, actor=agent)
        d.advance(900)
        p.update_task(tid, status=5)
        p.update_task(tid, mark="P", actor=client)
        tt = d.truth.ticket("task", tid)
        assert tt["state"] == "resolved" and tt["resolved_at"] == d.now and tt["rating"] == 5
        assert tt["responsible_id"] == str(other)
        kinds = Counter(e["kind"] for e in d.truth.events_of("task", tid))
        assert kinds == Counter(
            {"created": 1, "assigned": 2, "reply": 1, "customer_message": 1, "status": 2, "resolved": 1, "rated": 1}
        )
        assert read_tasks(r)[("task", str(tid))]["kinds"] == kinds
        # CRM: a reassignment no API can see, a stage move everyone can
        deal = next(it for it in p.item_lists[2] if it["categoryId"] == 3 and it["stageId"] == "C3:WON")
        d.advance(60)
        p.reassign_item(2, deal["id"], other)
        p.move_item(2, deal["id"], "C3:PREPARATION")
        ev = d.truth.events_of("crm:2", deal["id"])
        assert [e["kind"] for e in ev if e["at"] == d.now] == ["status", "reopened", "assigned"] or Counter(
            e["kind"] for e in ev if e["at"] == d.now
        ) == Counter({"assigned": 1, "status": 1, "reopened": 1})
        got = r.call("crm.item.get", {"entityTypeId": 2, "id": deal["id"]})["result"]["item"]
        assert got["assignedById"] == other and got["stageId"] == "C3:PREPARATION" and got["closed"] == "N"
        rows = r.call(
            "crm.stagehistory.list", {"entityTypeId": 2, "filter": {"OWNER_ID": deal["id"]}, "order": {"ID": "ASC"}}
        )["result"]["items"]
        assert rows[-1]["STAGE_ID"] == "C3:PREPARATION" and rows[-1]["TYPE_ID"] == 2
        assert d.truth.ticket("crm:2", deal["id"])["state"] == "open"
        # deletions disappear from the API and the truth
        p.delete_task(tid)
        p.delete_item(2, deal["id"])
        assert r.call("tasks.task.list", {"filter": {"ID": tid}})["total"] == 0
        assert r.call("crm.stagehistory.list", {"entityTypeId": 2, "filter": {"OWNER_ID": deal["id"]}})["total"] == 0
        t = d.truth
        assert ("task", str(tid)) not in {(x["source"], x["source_id"]) for x in t.tickets}
        assert {(x["source"], x["id"]) for x in t.deleted} == {("task", tid), ("crm:2", deal["id"])}
        assert r.call("server.time")["result"] == datetime.fromtimestamp(d.now, p.tz).isoformat()
    finally:
        d.stop()


def test_bad_mutations_are_refused_and_change_nothing():
    d = PortalDouble(seed=9, tickets=40, end=END)
    p = d.portal
    deal = next(it for it in p.item_lists[2] if it["categoryId"] == 3)
    before = (deal["stageId"], len(p.stage_history_by_owner[(2, deal["id"])]))
    with pytest.raises(ValueError):
        p.move_item(2, deal["id"], "WON")  # a stage of funnel 0, not 3
    with pytest.raises(ValueError):
        p.move_item(2, deal["id"], "C3:NO_SUCH_STAGE")
    assert (deal["stageId"], len(p.stage_history_by_owner[(2, deal["id"])])) == before
    task = p.task_list[0]
    rows = len(p.task_history[task["id"]])
    with pytest.raises(ValueError):
        p.update_task(task["id"], status=9)
    with pytest.raises(KeyError):
        p.update_task(10**7, status=3)
    assert len(p.task_history[task["id"]]) == rows
