"""Ground truth: every ticket of the portal as plain dicts with the field names of b24desk's model
(Ticket and Event), derived from the portal's own records by the default mappings of kpi.md, plus the
changes no API reveals (CRM responsible changes, the time a CRM rating was given).

Written independently of ``b24desk`` so tests can compute KPIs from it and compare. Mapping (kpi.md
"Default mappings", with the CRM field config of ``SOURCE_CONFIG``):

tasks
  created: createdDate by createdBy; assigned: initial (from None) at creation, then history
  RESPONSIBLE_ID; status: history STATUS; resolved: entering 4/5 from 2/3/6; reopened: leaving 4/5 for
  2/3/6 (4 -> 5 is neither); comment (old card) / task-chat message (new card) by the author ->
  customer_message, by any other user except 0 and bots -> reply; MARK -> rated (P=5, N=1);
  DEADLINE / PRIORITY / TITLE -> field_changed; each elapsed record -> worked "w:<id>" (at = its
  CREATED_DATE, actor = its user, to = seconds); handle_time = sum of elapsed records (None if none);
  customer = author id; type None; priority 0/1/2 -> low/normal/high.
CRM (deals, smart process)
  created: createdTime by createdBy; assigned: initial, then mutation-API reassignments only;
  stage history TYPE_ID 2/3 -> status (from previous stage); S -> resolved, F -> rejected, leaving S/F
  for P -> reopened; entering an escalation stage -> escalated; TYPE_ID 5 (funnel change) ->
  field_changed type + status; e-mail/call activity DIRECTION 1 -> customer_message (actor = the
  customer key), DIRECTION 2 -> reply (actor RESPONSIBLE_ID), an outgoing call also -> call_out;
  to-dos ignored; timeline comments -> comment; rating field change -> rated; type = str(categoryId);
  customer = "C_<contactId>" else "CO_<companyId>"; a completed call -> worked "a:<id>:w" (at = START_TIME,
  actor RESPONSIBLE_ID, to = END_TIME - START_TIME); handle_time = sum of call durations (None if no call).
resolved_at / closed_at: time of the last resolved / (resolved or rejected) event while the ticket is
in that state now, else None.
"""

from __future__ import annotations

from .state import COMPANY, CONTACT

OPEN_TASK = {2, 3, 6}
DONE_TASK = {4, 5}
TASK_PRIORITY = {0: "low", 1: "normal", 2: "high"}
ENUM_PRIORITY = {45: "low", 46: "normal", 47: "high", 48: "critical"}

# the b24desk source config the CRM part of the truth assumes (interfaces.md field mapping)
SOURCE_CONFIG = [
    {"select": "tasks"},
    {
        "select": "deals:category=3",
        "priority": "UF_CRM_PRIORITY",
        "priority_values": {"45": "low", "46": "normal", "47": "high", "48": "critical"},
        "rating": "UF_CRM_RATING",
        "deadline": "UF_CRM_DEADLINE",
        "escalation_stages": ["C3:UC_SECOND_LINE"],
    },
    {
        "select": "crm:1038",
        "priority": "UF_CRM_3_PRIORITY",
        "priority_values": {"45": "low", "46": "normal", "47": "high", "48": "critical"},
        "rating": "UF_CRM_3_RATING",
        "escalation_stages": ["DT1038_5:UC_SECOND_LINE", "DT1038_6:UC_SECOND_LINE"],
    },
]
ESCALATION = {"C3:UC_SECOND_LINE", "DT1038_5:UC_SECOND_LINE", "DT1038_6:UC_SECOND_LINE"}


class Truth:
    """A snapshot of the ground truth at the portal's current clock."""

    def __init__(self, portal):
        self.portal = portal
        self.now = portal.now
        self.tickets: list[dict] = []
        self.events: dict[tuple[str, str], list[dict]] = {}
        self.extra: dict[tuple[str, str], dict] = {}  # CRM category / task group per ticket
        self.config = SOURCE_CONFIG
        self.escalation_stages = sorted(ESCALATION)
        with portal.lock:
            hidden = {}
            for h in portal.hidden_log:
                if "entity_type_id" in h:
                    hidden.setdefault((h["entity_type_id"], h["id"]), []).append(h)
            for t in portal.task_list:
                self._task(t)
            for etid, lst in portal.item_lists.items():
                if etid in (CONTACT, COMPANY):
                    continue
                for it in lst:
                    self._item(etid, it, hidden.get((etid, it["id"]), []))
            if getattr(portal, "openlines", None) is not None and portal.openlines.sessions:
                from .openlines import truth_model  # the open-lines helper's sessions

                tickets, events = truth_model(portal)
                self.tickets.extend(tickets)
                self.events.update(events)
                for t in tickets:
                    self.extra[(t["source"], t["source_id"])] = {"category": None, "group_id": None}
        self._by_key = {(t["source"], t["source_id"]): t for t in self.tickets}
        self.deleted = [dict(h) for h in portal.hidden_log if h["kind"] == "deleted"]

    # -- access ---------------------------------------------------------------------------
    def ticket(self, source: str, source_id) -> dict:
        return self._by_key[(source, str(source_id))]

    def events_of(self, source: str, source_id) -> list[dict]:
        return self.events[(source, str(source_id))]

    def select(self, source: str | None = None, category: int | None = None, group_id: int | None = None) -> list[dict]:
        """Tickets of one source (``task``, ``crm:2``, ``crm:1038``), optionally one CRM category or
        task group (the selectors ``deals:category=3``, ``tasks:group=7``)."""
        out = []
        for t in self.tickets:
            x = self.extra[(t["source"], t["source_id"])]
            if source and t["source"] != source:
                continue
            if category is not None and x["category"] != category:
                continue
            if group_id is not None and x["group_id"] != group_id:
                continue
            out.append(t)
        return out

    # -- building -------------------------------------------------------------------------
    def _ev(self, evs, source, sid, key, kind, at, actor=None, field=None, frm=None, to=None):
        evs.append(
            {
                "portal": self.portal.member_id,
                "source": source,
                "source_id": sid,
                "key": key,
                "kind": kind,
                "at": int(at),
                "actor_id": None if actor is None else str(actor),
                "field": field,
                "from_value": None if frm is None else str(frm),
                "to_value": None if to is None else str(to),
            }
        )

    def _task(self, t: dict) -> None:
        p = self.portal
        sid = str(t["id"])
        src = "task"
        evs: list[dict] = []
        hist = p.task_history.get(t["id"], [])
        first_resp = next((int(h["from"]) for h in hist if h["field"] == "RESPONSIBLE_ID"), t["responsibleId"])
        self._ev(evs, src, sid, "created", "created", t["createdDate"], t["createdBy"])
        self._ev(evs, src, sid, "assigned0", "assigned", t["createdDate"], t["createdBy"], to=first_resp)
        last_resolved = None
        for h in hist:
            f = h["field"]
            k = f"h:{h['id']}"
            if f == "STATUS":
                old, new = int(h["from"]), int(h["to"])
                self._ev(evs, src, sid, k, "status", h["at"], h["user_id"], "STATUS", old, new)
                if old in OPEN_TASK and new in DONE_TASK:
                    self._ev(evs, src, sid, k + ":resolved", "resolved", h["at"], h["user_id"])
                    last_resolved = h["at"]
                elif old in DONE_TASK and new in OPEN_TASK:
                    self._ev(evs, src, sid, k + ":reopened", "reopened", h["at"], h["user_id"])
            elif f == "RESPONSIBLE_ID":
                self._ev(evs, src, sid, k, "assigned", h["at"], h["user_id"], None, h["from"], h["to"])
            elif f == "MARK":
                rating = {"P": 5, "N": 1}.get(h["to"] or "")
                self._ev(evs, src, sid, k, "rated", h["at"], h["user_id"], "MARK", h["from"] or None, rating)
            elif f in ("DEADLINE", "PRIORITY", "TITLE", "GROUP_ID"):
                self._ev(evs, src, sid, k, "field_changed", h["at"], h["user_id"], f.lower(), h["from"], h["to"])
        if t.get("chatId"):
            msgs = [(m["at"], m["id"], m["author_id"], f"m:{m['id']}") for m in p.chats[t["chatId"]]["messages"]]
        else:
            msgs = [(c["at"], c["id"], c["author_id"], f"c:{c['id']}") for c in p.task_comments.get(t["id"], [])]
        for at, _id, author, key in msgs:
            if author == 0 or (p.users.get(author) or {}).get("IS_BOT"):
                continue
            kind = "customer_message" if author == t["createdBy"] else "reply"
            self._ev(evs, src, sid, key, kind, at, author)
        elapsed = p.task_elapsed.get(t["id"], [])
        for e in elapsed:
            self._ev(evs, src, sid, f"w:{e['id']}", "worked", e["at"], e["user_id"], to=e["seconds"])
        evs.sort(key=lambda e: (e["at"], _order(e)))
        state = "resolved" if t["status"] in DONE_TASK else "open"
        ticket = {
            "portal": p.member_id,
            "source": src,
            "source_id": sid,
            "title": t["title"],
            "type": None,
            "priority": TASK_PRIORITY.get(t["priority"], "normal"),
            "priority_raw": str(t["priority"]),
            "author_id": str(t["createdBy"]),
            "customer": str(t["createdBy"]),
            "responsible_id": str(t["responsibleId"]),
            "created_at": t["createdDate"],
            "deadline": t["deadline"],
            "resolved_at": last_resolved if state == "resolved" else None,
            "closed_at": last_resolved if state == "resolved" else None,
            "state": state,
            "rating": {"P": 5, "N": 1}.get(t["mark"] or ""),
            "nps": None,
            "ces": None,
            "qa_score": None,
            "channel": None,
            "line": None,
            "handle_time": sum(e["seconds"] for e in elapsed) if elapsed else None,
            "selector": None,
            "url": None,
            "deleted": 0,
        }
        self.extra[(src, sid)] = {"category": None, "group_id": t["groupId"]}
        self.tickets.append(ticket)
        self.events[(src, sid)] = evs

    def _item(self, etid: int, it: dict, hidden: list[dict]) -> None:
        p = self.portal
        src = f"crm:{etid}"
        sid = str(it["id"])
        evs: list[dict] = []
        reassign = [h for h in hidden if h["kind"] == "assigned"]
        first_resp = reassign[0]["from"] if reassign else it["assignedById"]
        self._ev(evs, src, sid, "created", "created", it["createdTime"], it["createdBy"])
        self._ev(evs, src, sid, "assigned0", "assigned", it["createdTime"], it["createdBy"], to=first_resp)
        customer = (
            f"C_{it['contactId']}"
            if it.get("contactId")
            else (f"CO_{it['companyId']}" if it.get("companyId") else None)
        )
        rows = p.stage_history_by_owner.get((etid, it["id"]), [])
        prev_stage = None
        prev_cat = None
        last_res = last_close = None
        for r in sorted(rows, key=lambda r: r["ID"]):
            k = f"s:{r['ID']}"
            if r["TYPE_ID"] == 1:
                prev_stage, prev_cat = r["STAGE_ID"], r["CATEGORY_ID"]
                continue
            actor = None
            if r["TYPE_ID"] == 5:
                self._ev(
                    evs,
                    src,
                    sid,
                    k + ":type",
                    "field_changed",
                    r["CREATED_TIME"],
                    actor,
                    "type",
                    prev_cat,
                    r["CATEGORY_ID"],
                )
            self._ev(evs, src, sid, k, "status", r["CREATED_TIME"], actor, "STAGE_ID", prev_stage, r["STAGE_ID"])
            old_sem = p.stage_semantics(prev_stage) if prev_stage else "P"
            new_sem = p.stage_semantics(r["STAGE_ID"])
            if new_sem != old_sem:
                if new_sem == "S":
                    self._ev(evs, src, sid, k + ":resolved", "resolved", r["CREATED_TIME"], actor)
                    last_res = last_close = r["CREATED_TIME"]
                elif new_sem == "F":
                    self._ev(evs, src, sid, k + ":rejected", "rejected", r["CREATED_TIME"], actor)
                    last_close = r["CREATED_TIME"]
                elif old_sem in ("S", "F"):
                    self._ev(evs, src, sid, k + ":reopened", "reopened", r["CREATED_TIME"], actor)
            if r["STAGE_ID"] in ESCALATION and prev_stage not in ESCALATION:
                self._ev(
                    evs,
                    src,
                    sid,
                    k + ":escalated",
                    "escalated",
                    r["CREATED_TIME"],
                    actor,
                    None,
                    prev_stage,
                    r["STAGE_ID"],
                )
            prev_stage, prev_cat = r["STAGE_ID"], r["CATEGORY_ID"]
        for n, h in enumerate(hidden):
            if h["kind"] == "assigned":
                self._ev(evs, src, sid, f"x:{h['at']}:{n}", "assigned", h["at"], h["actor"], None, h["from"], h["to"])
            elif h["kind"] == "field" and h["field"].endswith("_RATING") and h["to"] is not None:
                self._ev(evs, src, sid, f"x:{h['at']}:{n}", "rated", h["at"], h["actor"], "rating", h["from"], h["to"])
        calls = 0
        any_call = False
        for a in p.activities_by_owner.get((etid, it["id"]), []):
            if a["TYPE_ID"] not in (2, 4):
                continue
            k = f"a:{a['ID']}"
            if a["TYPE_ID"] == 2 and a["COMPLETED"] == "Y":
                any_call = True
                calls += a["END_TIME"] - a["START_TIME"]
                self._ev(
                    evs,
                    src,
                    sid,
                    k + ":w",
                    "worked",
                    a["START_TIME"],
                    a["RESPONSIBLE_ID"],
                    to=a["END_TIME"] - a["START_TIME"],
                )
            if a["DIRECTION"] == 1:
                self._ev(evs, src, sid, k, "customer_message", a["START_TIME"], customer)
            elif a["DIRECTION"] == 2:
                self._ev(evs, src, sid, k, "reply", a["START_TIME"], a["RESPONSIBLE_ID"])
                if a["TYPE_ID"] == 2:
                    self._ev(evs, src, sid, k + ":out", "call_out", a["START_TIME"], a["RESPONSIBLE_ID"])
        for c in p.timeline_by_owner.get((etid, it["id"]), []):
            self._ev(evs, src, sid, f"t:{c['ID']}", "comment", c["CREATED"], c["AUTHOR_ID"])
        evs.sort(key=lambda e: (e["at"], _order(e)))
        sem = p.stage_semantics(it["stageId"])
        state = {"S": "resolved", "F": "rejected"}.get(sem, "open")
        ufs = p.uf_fields.get(etid, {})
        prio_key = next((k for k in ufs if k.endswith("_PRIORITY")), None)
        rating_key = next((k for k in ufs if k.endswith("_RATING")), None)
        deadline_key = next((k for k in ufs if k.endswith("_DEADLINE")), None)
        praw = it.get(prio_key) if prio_key else None
        ticket = {
            "portal": p.member_id,
            "source": src,
            "source_id": sid,
            "title": it["title"],
            "type": str(it["categoryId"]),
            "priority": ENUM_PRIORITY.get(praw, "normal"),
            "priority_raw": None if praw is None else str(praw),
            "author_id": str(it["createdBy"]),
            "customer": customer,
            "responsible_id": str(it["assignedById"]),
            "created_at": it["createdTime"],
            "deadline": it.get(deadline_key) if deadline_key else None,
            "resolved_at": last_res if state == "resolved" else None,
            "closed_at": last_close if state != "open" else None,
            "state": state,
            "rating": it.get(rating_key) if rating_key else None,
            "nps": None,
            "ces": None,
            "qa_score": None,
            "channel": None,
            "line": None,
            "handle_time": calls if any_call else None,
            "selector": None,
            "url": None,
            "deleted": 0,
        }
        self.extra[(src, sid)] = {"category": it["categoryId"], "group_id": None}
        self.tickets.append(ticket)
        self.events[(src, sid)] = evs


_KIND_ORDER = {"created": 0, "assigned": 1}


def _order(e: dict) -> int:
    return _KIND_ORDER.get(e["kind"], 5)
