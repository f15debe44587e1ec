"""Open lines (Открытые линии) in the double: lines, sessions, transfers, votes, and the
``imopenlines.v2.*`` statistics methods (DOCS api-reference/imopenlines/statistics/index.md,
data-types.md and one page per method), plus ``imopenlines.config.list.get``
(api-reference/imopenlines/openlines/imopenlines-config-list-get.md).

State lives in ``portal.openlines`` (an :class:`OpenLines`); it is optional: a portal without it
answers the methods as a portal with no sessions. Every change goes through a recorder that writes
both what the API serves (session fields, transfer rows) and the ground truth in KPI terms
(``truth[sid]``: live first answer, human transfers, state, rating...), so the two always agree
and a test can compute the KPIs independently of our source's mapping.

Wire choices where the docs are silent (each marked "unconfirmed" below): a user without report
access gets 403 ``ACCESS_DENIED``; ``limit`` outside 1..200 is ``INVALID_FILTER``; Rating.list
returns rows by session id; ``waitAnswer`` counts the first answer of anyone (bot included), as
``dateFirstAnswer`` does; ``queueTransfers`` counts transfer rows that have a ``fromOperatorId``;
``messagesOperatorCount`` counts live operators' messages only.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import timefmt
from .query import ApiError
from .registry import Call, method

SCOPE = "imopenlines"
LIMIT_MAX = 200
OFFSET_MAX = 10000
LIST_MAX = 1000
PERIOD_MAX = 366 * 86400
TRANSFER_IDS = 50
STAT_IDS = 100
KPI_FIRST_ANSWER = 300  # a line's "first response KPI" in seconds (line setting; ours is fixed)

STATUSES = ("new", "answered", "closed", "spam", "paused")
CLOSE_REASONS = ("operator", "auto", "spam", "client", "replyLimit")
VOTES = ("like", "dislike", "none")
ORDERS = ("dateCreate", "dateClose", "waitAnswer", "waitClose")


# --- state ---------------------------------------------------------------------------------------


@dataclass
class OpenLines:
    """Open-line state of one portal."""

    plan_allows: bool = True  # False: every v2 method answers TARIFF_RESTRICTION
    head_votes_visible: bool = True  # False: voteHead/commentHead come back null
    report_users: set | None = None  # user ids with access to Open Channels reports (None: all)
    lines: dict = field(default_factory=dict)  # id -> {"ID", "LINE_NAME", "ACTIVE", "queue": [...]}
    bots: dict = field(default_factory=dict)  # bot user id -> name (never in user.get)
    sessions: list = field(default_factory=list)  # sorted by id
    by_id: dict = field(default_factory=dict)
    transfers: dict = field(default_factory=dict)  # session id -> [row]
    truth: dict = field(default_factory=dict)  # session id -> KPI-terms record
    operator_status: dict = field(default_factory=dict)  # user id -> online/offline/pause
    next_session: int = 1000
    next_chat: int = 5000
    next_customer: int = 200000
    version: int = 0  # bumped by every recorder (list caches key on it)
    cache: dict = field(default_factory=dict)


def state(p) -> OpenLines:
    ol = getattr(p, "openlines", None)
    if ol is None:
        ol = OpenLines()
        p.openlines = ol
    return ol


def add_line(p, line_id: int, name: str, queue, active: bool = True) -> dict:
    ol = state(p)
    ol.lines[int(line_id)] = {
        "ID": int(line_id),
        "LINE_NAME": name,
        "ACTIVE": "Y" if active else "N",
        "queue": [int(u) for u in queue],
    }
    for u in queue:
        ol.operator_status.setdefault(int(u), "online")
    return ol.lines[int(line_id)]


def add_bot(p, bot_id: int, name: str = "Чат-бот") -> None:
    state(p).bots[int(bot_id)] = name


# --- recorders (at = when, the portal clock for the public API) ------------------------------------


def _customer_key(s: dict) -> str:
    if s["crmEntityType"] in ("contact", "company") and s["crmEntityId"]:
        return f"{s['crmEntityType']}:{s['crmEntityId']}"
    return f"user:{s['userId']}"


def _start(p, at: int, line: int, channel: str, *, user_id: int | None = None, crm: tuple | None = None) -> dict:
    state(p).version += 1
    ol = state(p)
    if line not in ol.lines:
        raise ValueError(f"no open line {line}")
    ol.next_session += 1
    ol.next_chat += 1
    if user_id is None:
        ol.next_customer += 1
        user_id = ol.next_customer
    s = {
        "id": ol.next_session,
        "configId": line,
        "source": channel,
        "operatorId": None,
        "userId": user_id,
        "userCode": f"{channel}|{user_id}",
        "chatId": ol.next_chat,
        "dateCreate": at,
        "dateClose": None,
        "dateFirstAnswer": None,
        "dateOperatorAnswer": None,
        "status": "new",
        "closeReason": None,
        "vote": "none",
        "dateVote": None,
        "voteHead": None,
        "commentHead": None,
        "crmEntityType": crm[0] if crm else None,
        "crmEntityId": crm[1] if crm else None,
        "msgOperator": 0,
        "msgClient": 1,
        "msgBot": 0,
        "msgSystem": 1,
    }
    ol.sessions.append(s)
    if len(ol.sessions) > 1 and ol.sessions[-2]["id"] > s["id"]:
        ol.sessions.sort(key=lambda r: r["id"])
    ol.by_id[s["id"]] = s
    ol.transfers[s["id"]] = []
    ol.truth[s["id"]] = {
        "id": s["id"],
        "created": at,
        "first_live": None,
        "closed": None,
        "state": "open",
        "responsible": None,
        "first_human": None,
        "transfers": 0,
        "rating": None,
        "rated_at": None,
        "qa": None,
        "line": str(line),
        "type": ol.lines[line]["LINE_NAME"],
        "requalified": False,
        "channel": channel,
        "replies": 0,
        "customer_messages": 1,
        "customer": _customer_key(s),
        "author": str(user_id),
        "log": [
            ("created", at, str(user_id), None, None, None),
            ("customer_message", at, str(user_id), None, None, None),
        ],
    }
    return s


def _row(
    p, s: dict, at: int, frm, to, *, reason: str, mode: str, kind: str = "USER", to_line=None, initiator=None
) -> dict:
    row = {
        "sessionId": s["id"],
        "date": at,
        "fromOperatorId": frm,
        "toOperatorId": to,
        "fromConfigId": s["configId"],
        "toConfigId": to_line,
        "reason": reason,
        "mode": mode,
        "type": kind,
        "initiatorId": initiator,
    }
    state(p).transfers[s["id"]].append(row)
    return row


def _assign(p, s: dict, at: int, to: int, *, reason: str = "auto", mode: str = "AUTO", initiator=None) -> None:
    """Distribution or a transfer to operator ``to`` (a bot or a human)."""
    state(p).version += 1
    ol = state(p)
    frm = s["operatorId"]
    if frm == to:
        return
    _row(p, s, at, frm, to, reason=reason, mode=mode, initiator=initiator)
    s["operatorId"] = to
    if s["status"] == "new" and s["dateFirstAnswer"] is not None:
        s["status"] = "answered"
    t = ol.truth[s["id"]]
    human_to = to not in ol.bots
    human_from = frm is not None and frm not in ol.bots
    if human_to:
        if t["responsible"] is not None:
            t["transfers"] += 1  # a human lets go of the dialog (a bot's hand-over is none)
        t["log"].append(("assigned", at, initiator, None, t["responsible"], to))
        t["responsible"] = to
        if t["first_human"] is None:
            t["first_human"] = to
    elif human_from and t["responsible"] is not None:
        t["transfers"] += 1
        t["log"].append(("assigned", at, initiator, None, t["responsible"], None))
        t["responsible"] = None


def _to_queue(p, s: dict, at: int, *, reason: str = "queue", to_line: int | None = None, initiator=None) -> None:
    """The dialog leaves its operator for a queue (same line on timeout, or another line)."""
    state(p).version += 1
    ol = state(p)
    frm = s["operatorId"]
    _row(
        p,
        s,
        at,
        frm,
        None,
        reason="line" if to_line else reason,
        mode="MANUAL" if initiator else "AUTO",
        kind="QUEUE",
        to_line=to_line,
        initiator=initiator,
    )
    s["operatorId"] = None
    t = ol.truth[s["id"]]
    if frm is not None and frm not in ol.bots and t["responsible"] is not None:
        t["transfers"] += 1
        t["log"].append(("assigned", at, initiator, None, t["responsible"], None))
    t["responsible"] = None
    if to_line and to_line != s["configId"]:
        s["configId"] = to_line
        t["log"].append(("field_changed", at, initiator, "type", t["type"], ol.lines[to_line]["LINE_NAME"]))
        t["line"] = str(to_line)
        t["type"] = ol.lines[to_line]["LINE_NAME"]
        t["requalified"] = True


def _answer(p, s: dict, at: int, messages: int = 1) -> None:
    """The current operator writes ``messages`` messages (the first one may be the first answer)."""
    state(p).version += 1
    ol = state(p)
    op = s["operatorId"]
    if op is None:
        raise ValueError(f"session {s['id']} has no operator to answer")
    if s["dateFirstAnswer"] is None:
        s["dateFirstAnswer"] = at
    t = ol.truth[s["id"]]
    if op in ol.bots:
        s["msgBot"] += messages
    else:
        if s["dateOperatorAnswer"] is None:
            s["dateOperatorAnswer"] = at
            t["first_live"] = at
        s["msgOperator"] += messages
        t["replies"] += messages
        t["log"].extend(("reply", at, op, None, None, None) for _ in range(messages))
    if s["status"] in ("new", "paused"):
        s["status"] = "answered"


def _client_says(p, s: dict, at: int, messages: int = 1) -> None:
    state(p).version += 1
    s["msgClient"] += messages
    t = state(p).truth[s["id"]]
    t["customer_messages"] += messages
    t["log"].extend(("customer_message", at, t["author"], None, None, None) for _ in range(messages))


def _close(p, s: dict, at: int, reason: str = "operator") -> None:
    state(p).version += 1
    ol = state(p)
    if s["dateClose"] is not None:
        return
    s["dateClose"] = at
    s["closeReason"] = reason
    s["status"] = "spam" if reason == "spam" else "closed"
    s["msgSystem"] += 1
    t = ol.truth[s["id"]]
    t["closed"] = at
    # missed: closed by timeout while waiting for a human who never answered (a bot's own dialog is not)
    missed = (
        reason in ("auto", "client", "replyLimit")
        and s["dateOperatorAnswer"] is None
        and s["operatorId"] not in ol.bots
    )
    t["state"] = "rejected" if reason == "spam" or missed else "resolved"
    t["log"].append((t["state"], at, t["responsible"], None, None, reason))


def _vote(p, s: dict, at: int, vote: str) -> None:
    state(p).version += 1
    s["vote"] = vote
    s["dateVote"] = at
    t = state(p).truth[s["id"]]
    t["rating"] = {"like": 5, "dislike": 1}.get(vote)
    t["rated_at"] = at
    t["log"].append(("rated", at, t["author"], "rating", None, t["rating"]))


def _head_vote(p, s: dict, score: int, comment: str = "") -> None:
    state(p).version += 1
    s["voteHead"] = int(score)
    s["commentHead"] = comment or None
    state(p).truth[s["id"]]["qa"] = int(score)


# --- public mutation API (the portal clock) ----------------------------------------------------------


def session(p, sid: int) -> dict:
    s = state(p).by_id.get(int(sid))
    if s is None:
        raise KeyError(f"no open-line session {sid}")
    return s


def start_session(p, line: int, channel: str = "livechat", operator: int | None = None, **kw) -> dict:
    with p.lock:
        s = _start(p, p.now, int(line), channel, **kw)
        if operator is not None:
            _assign(p, s, p.now, int(operator))
        return s


def answer(p, sid: int, messages: int = 1) -> dict:
    with p.lock:
        s = session(p, sid)
        _answer(p, s, p.now, messages)
        return s


def transfer(
    p, sid: int, to_operator: int | None = None, to_line: int | None = None, initiator: int | None = None
) -> dict:
    """To an operator (manual, type USER) or to another line's queue (reason ``line``, type QUEUE)."""
    with p.lock:
        s = session(p, sid)
        if to_line is not None:
            _to_queue(p, s, p.now, to_line=int(to_line), initiator=initiator or s["operatorId"])
        if to_operator is not None:
            manual = to_line is None
            _assign(
                p,
                s,
                p.now,
                int(to_operator),
                reason="manual" if manual else "auto",
                mode="MANUAL" if manual else "AUTO",
                initiator=(initiator or s["operatorId"]) if manual else None,
            )
        return s


def client_message(p, sid: int, messages: int = 1) -> dict:
    with p.lock:
        s = session(p, sid)
        _client_says(p, s, p.now, messages)
        return s


def close_session(p, sid: int, reason: str = "operator") -> dict:
    with p.lock:
        s = session(p, sid)
        _close(p, s, p.now, reason)
        return s


def vote(p, sid: int, value: str) -> dict:
    with p.lock:
        s = session(p, sid)
        _vote(p, s, p.now, value)
        return s


def head_vote(p, sid: int, score: int, comment: str = "") -> dict:
    with p.lock:
        s = session(p, sid)
        _head_vote(p, s, score, comment)
        return s


# --- generator -------------------------------------------------------------------------------------

DEFAULT_LINES = (
    (1, "Поддержка", ("livechat", "telegrambot", "whatsappbyedna")),
    (2, "Продажи", ("livechat", "vkgroup", "avito")),
    (3, "VIP-клиенты", ("telegrambot", "whatsappbyedna")),
)
BOT_ID = 190001
_HEAD_COMMENTS = ("", "Хорошо", "Долго отвечал", "Отлично", "Нужно вежливее")


def _lognormal(rng: random.Random, median: float, sigma: float = 0.9) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _busy(p, ts: int) -> float:
    d = datetime.fromtimestamp(ts, p.tz)
    day = (1.0, 1.0, 0.95, 0.95, 0.9, 0.45, 0.35)[d.weekday()]
    h = d.hour
    return day * (0.1 if h < 8 else 1.0 if h < 20 else 0.4 if h < 23 else 0.1)


def _operators(p, rng) -> list[int]:
    """The portal's support employees, or a small team of our own on an empty portal."""
    ops = [
        u["ID"]
        for u in sorted(p.users.values(), key=lambda u: u["ID"])
        if u.get("USER_TYPE") == "employee" and u.get("ACTIVE") and u["ID"] != 1 and u.get("UF_DEPARTMENT")
    ]
    if len(ops) >= 3:
        return ops
    names = [
        ("Ольга", "Операторова"),
        ("Игорь", "Чатов"),
        ("Дарья", "Линейная"),
        ("Павел", "Ответов"),
        ("Вера", "Сообщенцева"),
        ("Тимур", "Диалогов"),
    ]
    base = max([u for u in p.users] + [99]) + 1
    out = []
    for i, (first, last) in enumerate(names):
        p.add_user(base + i, first, last, departments=[2], position="Оператор открытых линий")
        out.append(base + i)
    return out


def generate(
    p,
    n: int,
    *,
    seed: int = 1,
    end: int | None = None,
    months: float = 3.0,
    lines=DEFAULT_LINES,
    bot_share: float = 0.35,
    vote_share: float = 0.45,
    start: int | None = None,
) -> OpenLines:
    """``n`` sessions created over ``months`` before ``end`` (default: the portal clock).

    Each session's life is planned (distribution, a chatbot answering first on line 1, first live
    answer, transfers between operators and lines, returns to the queue, close, spam, missed chats,
    customer like/dislike, supervisor 1-5), then applied in time order; what would happen after
    ``end`` has not happened yet, so recent sessions are still open.
    """
    rng = random.Random(seed)
    end = int(end if end is not None else p.now)
    if start is None:
        start = int((datetime.fromtimestamp(end, p.tz) - timedelta(days=round(months * 30.44))).timestamp())
    with p.lock:
        ol = state(p)
        ops = _operators(p, rng)
        for i, (lid, name, _channels) in enumerate(lines):
            queue = [u for j, u in enumerate(ops) if j % len(lines) == i or j % len(lines) == (i + 1) % len(lines)]
            add_line(p, lid, name, queue or ops)
        add_bot(p, BOT_ID)
        bot_lines = {lines[0][0]}
        contacts = sorted(p.items.get(3, {}))
        speed = {u: rng.choice((0.5, 0.8, 1.0, 1.0, 1.4, 2.2)) for u in ops}
        times = []
        while len(times) < n:
            t = start + int(rng.random() * (end - start))
            if rng.random() < _busy(p, t):
                times.append(t)
        times.sort()
        plans = []
        for t0 in times:
            lid, _name, channels = lines[rng.randrange(len(lines))]
            plans.append(
                _plan(
                    rng,
                    ol,
                    t0,
                    lid,
                    rng.choice(channels),
                    lid in bot_lines and rng.random() < bot_share,
                    speed,
                    contacts,
                    [x[0] for x in lines],
                    vote_share,
                )
            )
        actions = []
        for k, (t0, line, channel, crm, steps) in enumerate(plans):
            actions.append((t0, k, 0, ("start", line, channel, crm)))
            for j, (t, step) in enumerate(steps, 1):
                actions.append((t, k, j, step))
        actions.sort(key=lambda a: (a[0], a[1], a[2]))
        live: dict[int, dict] = {}
        for t, k, _j, step in actions:
            if t > end:
                continue
            if step[0] == "start":
                live[k] = _start(p, t, step[1], step[2], crm=step[3])
                continue
            s = live.get(k)
            if s is None or (s["dateClose"] is not None and step[0] not in ("vote", "head")):
                continue
            kind = step[0]
            if kind == "assign":
                _assign(p, s, t, step[1], reason=step[2], mode=step[3], initiator=step[4])
            elif kind == "queue":
                _to_queue(p, s, t, reason="queue", to_line=step[1], initiator=step[2])
            elif kind == "answer":
                if s["operatorId"] is not None:
                    _answer(p, s, t, step[1])
            elif kind == "client":
                _client_says(p, s, t, step[1])
            elif kind == "close":
                _close(p, s, t, step[1])
            elif kind == "vote":
                if s["dateClose"] is not None:
                    _vote(p, s, t, step[1])
            elif kind == "head":
                if s["dateClose"] is not None:
                    _head_vote(p, s, step[1], step[2])
        return ol


def _pick(rng, ol, line: int, speed, avoid=None) -> int:
    queue = [u for u in ol.lines[line]["queue"] if u != avoid] or ol.lines[line]["queue"]
    return rng.choice(queue)


def _plan(rng, ol, t0, line, channel, with_bot, speed, contacts, line_ids, vote_share):
    steps = []
    t = t0
    crm = ("contact", rng.choice(contacts)) if contacts and rng.random() < 0.3 else None
    roll = rng.random()
    if roll < 0.02:  # spam: closed as such, no answer
        steps.append((t + int(_lognormal(rng, 120)), ("close", "spam")))
        return t0, line, channel, crm, steps
    if with_bot:
        t += rng.randint(1, 4)
        steps.append((t, ("assign", BOT_ID, "auto", "AUTO", None)))
        t += rng.randint(1, 5)
        steps.append((t, ("answer", rng.randint(1, 3))))
        steps.append((t + 20, ("client", rng.randint(1, 2))))
        if rng.random() < 0.3:  # the bot solved it alone
            t += int(_lognormal(rng, 300))
            steps.append((t, ("close", "operator" if rng.random() < 0.5 else "client")))
            _after_close(rng, steps, t, False, vote_share)
            return t0, line, channel, crm, steps
        t += int(_lognormal(rng, 90))
        op = _pick(rng, ol, line, speed)
        steps.append((t, ("assign", op, "queue", "BOT", BOT_ID)))
    else:
        t += rng.randint(1, 8)
        op = _pick(rng, ol, line, speed)
        steps.append((t, ("assign", op, "auto", "AUTO", None)))
    if roll < 0.09:  # missed: nobody answers, closed by timeout
        t += int(_lognormal(rng, 6 * 3600, 0.5))
        steps.append((t, ("close", rng.choice(("auto", "replyLimit")))))
        return t0, line, channel, crm, steps
    if rng.random() < 0.05:  # the operator lets it time out: back to the queue
        t += 180
        steps.append((t, ("queue", None, None)))
        t += rng.randint(5, 60)
        op = _pick(rng, ol, line, speed, avoid=op)
        steps.append((t, ("assign", op, "auto", "AUTO", None)))
    t += max(5, int(_lognormal(rng, 75 * speed[op])))
    steps.append((t, ("answer", 1)))
    if rng.random() < 0.15:  # handed to a colleague
        t += int(_lognormal(rng, 240))
        new = _pick(rng, ol, line, speed, avoid=op)
        steps.append((t, ("assign", new, "manual", "MANUAL", op)))
        op = new
        t += int(_lognormal(rng, 60))
        steps.append((t, ("answer", 1)))
    if rng.random() < 0.06:  # wrong line: sent to another one
        other = rng.choice([x for x in line_ids if x != line])
        t += int(_lognormal(rng, 200))
        steps.append((t, ("queue", other, op)))
        t += rng.randint(5, 40)
        op = _pick(rng, ol, other, speed)
        steps.append((t, ("assign", op, "auto", "AUTO", None)))
        t += int(_lognormal(rng, 60))
        steps.append((t, ("answer", 1)))
    for _ in range(rng.randint(0, 6)):
        t += int(_lognormal(rng, 120))
        steps.append((t, ("client", 1)))
        t += int(_lognormal(rng, 60 * speed[op]))
        steps.append((t, ("answer", 1)))
    t += int(_lognormal(rng, 600))
    steps.append((t, ("close", "operator" if rng.random() < 0.8 else "client")))
    _after_close(rng, steps, t, True, vote_share)
    return t0, line, channel, crm, steps


def _after_close(rng, steps, t, answered: bool, vote_share: float) -> None:
    if rng.random() < vote_share:
        steps.append((t + int(_lognormal(rng, 120)), ("vote", "like" if rng.random() < 0.82 else "dislike")))
    if answered and rng.random() < 0.2:
        steps.append((t + int(_lognormal(rng, 86400)), ("head", rng.randint(1, 5), rng.choice(_HEAD_COMMENTS))))


# --- ground truth --------------------------------------------------------------------------------------


def truth_tickets(p) -> list[dict]:
    """Per session, in KPI terms (kpi.md section 1), as of the portal clock: ``source``
    ``openlines``, ``source_id``, ``created_at``, ``first_reply`` (live operators only),
    ``closed_at``, ``state``, ``responsible`` (human), ``transfers`` (human ones; the first
    assignment and a bot's hand-over are none), ``rating`` (5/1), ``qa_score``, ``line``, ``type``,
    ``requalified``, ``channel``, ``replies``, ``customer_messages``, ``customer``, ``author``."""
    out = []
    for s in state(p).sessions:
        t = state(p).truth[s["id"]]
        out.append(
            {
                "source": "openlines",
                "source_id": str(t["id"]),
                "created_at": t["created"],
                "first_reply": t["first_live"],
                "closed_at": t["closed"],
                "state": t["state"],
                "resolved_at": t["closed"] if t["state"] == "resolved" else None,
                "responsible": None if t["responsible"] is None else str(t["responsible"]),
                "first_responsible": None if t["first_human"] is None else str(t["first_human"]),
                "transfers": t["transfers"],
                "rating": t["rating"],
                "qa_score": t["qa"],
                "line": t["line"],
                "type": t["type"],
                "requalified": t["requalified"],
                "channel": t["channel"],
                "replies": t["replies"],
                "customer_messages": t["customer_messages"],
                "customer": t["customer"],
                "author": t["author"],
            }
        )
    return out


def truth_model(p, portal_key: str | None = None) -> tuple[list[dict], dict]:
    """The sessions as b24desk-model ticket rows and event logs (``{(source, id): [event]}``), from
    what happened (not from the API rows), in the key conventions of ``truth.py`` (customers
    ``C_<contact>`` / ``CO_<company>`` / the chat user's id)."""
    member = portal_key or p.member_id
    tickets, events = [], {}
    for s in state(p).sessions:
        t = state(p).truth[s["id"]]
        sid = str(t["id"])
        c = t["customer"]
        customer = (
            ("C_" + c[8:])
            if c.startswith("contact:")
            else ("CO_" + c[8:])
            if c.startswith("company:")
            else c.split(":", 1)[1]
        )
        evs = []
        for n, (kind, at, actor, fld, frm, to) in enumerate(t["log"]):
            evs.append(
                {
                    "portal": member,
                    "source": "openlines",
                    "source_id": sid,
                    "key": f"x:{n}",
                    "kind": kind,
                    "at": int(at),
                    "actor_id": None if actor is None else str(actor),
                    "field": fld,
                    "from_value": None if frm is None else str(frm),
                    "to_value": None if to is None else str(to),
                }
            )
        evs.sort(key=lambda e: (e["at"], 0 if e["kind"] == "created" else 1 if e["kind"] == "assigned" else 5))
        closed = t["closed"]
        tickets.append(
            {
                "portal": member,
                "source": "openlines",
                "source_id": sid,
                "title": f"Dialog #{sid}",
                "type": t["type"],
                "priority": "normal",
                "priority_raw": None,
                "author_id": t["author"],
                "customer": customer,
                "responsible_id": None if t["responsible"] is None else str(t["responsible"]),
                "created_at": t["created"],
                "deadline": None,
                "resolved_at": closed if t["state"] == "resolved" else None,
                "closed_at": closed if t["state"] != "open" else None,
                "state": t["state"],
                "rating": t["rating"],
                "nps": None,
                "ces": None,
                "qa_score": t["qa"],
                "channel": t["channel"],
                "line": t["line"],
                "handle_time": None,
                "selector": None,
                "url": None,
                "deleted": 0,
            }
        )
        events[("openlines", sid)] = evs
    return tickets, events


# --- the methods: shared parameter handling ----------------------------------------------------------------


def _guard(c: Call) -> OpenLines:
    ol = state(c.portal)
    if not ol.plan_allows:
        raise ApiError(400, "TARIFF_RESTRICTION", "Statistics reports are not available on the current tariff plan")
    if ol.report_users is not None and c.user_id not in ol.report_users:
        # unconfirmed: the docs say only "a user with access to Open Channels reports"
        raise ApiError(403, "ACCESS_DENIED", "Access denied! You don't have access to this action")
    return ol


def _invalid(what: str) -> ApiError:
    return ApiError(400, "INVALID_FILTER", f"Invalid {what} filter value")


def _int(params: dict, name: str, default=None):
    v = params.get(name)
    if v is None or v == "":
        return default
    try:
        return int(str(v).strip())
    except ValueError:
        raise _invalid(name)


def _bool(params: dict, name: str):
    v = params.get(name)
    if v is None or v == "":
        return None
    s = str(v).strip().lower()
    if s in ("true", "y", "1"):
        return True
    if s in ("false", "n", "0"):
        return False
    raise _invalid(name)


def _id_set(params: dict, one: str, many: str, as_int: bool = True):
    """``xList`` wins over ``x`` (each page: "If both ... are passed, ...List is used"); <= 1000 items."""
    if params.get(many) not in (None, "", []):
        vals = params[many]
        if isinstance(vals, dict):
            vals = list(vals.values())
        if not isinstance(vals, list):
            raise _invalid(many)
        if len(vals) > LIST_MAX:
            raise _invalid(many)
    elif params.get(one) not in (None, ""):
        vals = [params[one]]
    else:
        return None
    try:
        return {int(str(v).strip()) for v in vals} if as_int else {str(v) for v in vals}
    except ValueError:
        raise _invalid(many)


def _time(p, params: dict, name: str):
    v = params.get(name)
    if v is None or v == "":
        return None
    try:
        return timefmt.parse(v, p.tz)
    except (TypeError, ValueError):
        raise _invalid(name)


def _period(p, params: dict, a: str, b: str, required: str | None = None):
    lo, hi = _time(p, params, a), _time(p, params, b)
    if required and (lo is None or hi is None):
        raise ApiError(400, "PERIOD_REQUIRED", f"{a} and {b} are required")
    if lo is not None and hi is not None:
        if lo > hi:
            raise ApiError(400, "INVALID_FILTER", "Invalid date order")
        if hi - lo > PERIOD_MAX:
            raise ApiError(400, "PERIOD_TOO_LARGE", "The requested period exceeds the maximum of 1 year")
    return lo, hi


def _paging(params: dict) -> tuple[int, int]:
    offset = _int(params, "offset", 0)
    limit = _int(params, "limit", 50)
    if offset < 0:
        raise _invalid("offset")
    if offset > OFFSET_MAX:
        raise ApiError(400, "OFFSET_TOO_LARGE", "Offset is too large")
    if not 1 <= limit <= LIMIT_MAX:
        raise _invalid("limit")  # unconfirmed: the docs only give the range
    return offset, limit


def _session_ids(params: dict, cap: int) -> list[int]:
    if "sessionId" not in params or params["sessionId"] in (None, ""):
        raise ApiError(400, "100", "Could not find value for parameter {sessionId}")
    v = params["sessionId"]
    if isinstance(v, dict):
        v = list(v.values())
    if not isinstance(v, list):
        raise ApiError(
            400, "100", f"Invalid value {v} to match with parameter {{sessionId}}. Should be value of type array."
        )
    ids = []
    for x in v:
        try:
            i = int(str(x).strip())
        except ValueError:
            raise ApiError(400, "100", f"Invalid value {x} to match with parameter {{sessionId}}.")
        if i not in ids:
            ids.append(i)  # "Duplicates in sessionId are removed"
    if len(ids) > cap:
        raise ApiError(400, "BATCH_LIMIT_EXCEEDED", f"sessionId batch must not exceed {cap} items")
    return ids


# --- rendering --------------------------------------------------------------------------------------


def _wait_answer(s):
    return None if s["dateFirstAnswer"] is None else s["dateFirstAnswer"] - s["dateCreate"]


def _wait_close(s):
    return None if s["dateClose"] is None else s["dateClose"] - s["dateCreate"]


def _kpi(s):
    w = _wait_answer(s)
    return None if w is None else w <= KPI_FIRST_ANSWER


def _queue_transfers(ol, s) -> int:
    return sum(1 for r in ol.transfers.get(s["id"], []) if r["fromOperatorId"] is not None)


def render_session(p, ol: OpenLines, s: dict) -> dict:
    iso = lambda ts: timefmt.iso(ts, p.tz)  # noqa: E731
    head = ol.head_votes_visible
    return {
        "id": s["id"],
        "configId": s["configId"],
        "source": s["source"],
        "operatorId": s["operatorId"],
        "userId": s["userId"],
        "userCode": s["userCode"],
        "chatId": s["chatId"],
        "dateCreate": iso(s["dateCreate"]),
        "dateClose": iso(s["dateClose"]),
        "dateFirstAnswer": iso(s["dateFirstAnswer"]),
        "dateOperatorAnswer": iso(s["dateOperatorAnswer"]),
        "status": s["status"],
        "closeReason": s["closeReason"],
        "vote": s["vote"],
        "voteHead": s["voteHead"] if head else None,
        "commentHead": s["commentHead"] if head else None,
        "crmEntityType": s["crmEntityType"],
        "crmEntityId": s["crmEntityId"],
        "queueTransfers": _queue_transfers(ol, s),
        "waitAnswer": _wait_answer(s),
        "waitClose": _wait_close(s),
        "kpiFirstAnswer": _kpi(s),
        "messageCount": s["msgOperator"] + s["msgBot"] + s["msgClient"] + s["msgSystem"],
    }


# --- the methods -------------------------------------------------------------------------------------


def _common_filters(ol, params):
    lines = _id_set(params, "configId", "configIdList")
    ops = _id_set(params, "operatorId", "operatorIdList")
    sources = _id_set(params, "source", "sourceList", as_int=False)
    return lines, ops, sources


@method("imopenlines.v2.session.list", SCOPE)
def session_list(c: Call, params: dict):
    """DOCS api-reference/imopenlines/statistics/imopenlines-v2-session-list.md"""
    p = c.portal
    ol = _guard(c)
    lines, ops, sources = _common_filters(ol, params)
    status = params.get("status") or None
    reason = params.get("closeReason") or None
    if status is not None and status not in STATUSES:
        raise _invalid("status")
    if reason is not None and reason not in CLOSE_REASONS:
        raise _invalid("closeReason")
    if status is not None and reason is not None:
        raise ApiError(400, "INVALID_FILTER", "status and closeReason cannot be combined")
    c_lo, c_hi = _period(p, params, "dateCreateFrom", "dateCreateTo")
    d_lo, d_hi = _period(p, params, "dateCloseFrom", "dateCloseTo")
    full_period = (c_lo is not None and c_hi is not None) or (d_lo is not None and d_hi is not None)
    vote_f = params.get("vote") or None
    if vote_f is not None and vote_f not in ("like", "dislike", "none", "any"):
        raise _invalid("vote")
    has_head, kpi_f, has_crm = _bool(params, "hasVoteHead"), _bool(params, "kpiFirstAnswer"), _bool(params, "hasCrm")
    if kpi_f is not None and not full_period:
        raise ApiError(400, "INVALID_FILTER", "kpiFirstAnswer requires a full period")
    wa_lo, wa_hi = _int(params, "waitAnswerFrom"), _int(params, "waitAnswerTo")
    wc_lo, wc_hi = _int(params, "waitCloseFrom"), _int(params, "waitCloseTo")
    order = params.get("order") or "dateCreate"
    if order not in ORDERS:
        raise _invalid("order")
    direction = str(params.get("orderDirection") or "desc").lower()
    if direction not in ("asc", "desc"):
        raise _invalid("orderDirection")
    offset, limit = _paging(params)
    if not full_period:
        order = "dateCreate"  # "applied only when a full creation or close period is specified"

    def keep(s) -> bool:
        if lines is not None and s["configId"] not in lines:
            return False
        if ops is not None and s["operatorId"] not in ops:
            return False
        if sources is not None and s["source"] not in sources:
            return False
        if status is not None and s["status"] != status:
            return False
        if reason is not None and s["closeReason"] != reason:
            return False
        if c_lo is not None and s["dateCreate"] < c_lo or c_hi is not None and s["dateCreate"] > c_hi:
            return False
        if d_lo is not None or d_hi is not None:
            if s["dateClose"] is None:
                return False
            if d_lo is not None and s["dateClose"] < d_lo or d_hi is not None and s["dateClose"] > d_hi:
                return False
        if vote_f == "any" and s["vote"] == "none" or vote_f not in (None, "any") and s["vote"] != vote_f:
            return False
        if has_head is not None and ol.head_votes_visible and (s["voteHead"] is not None) != has_head:
            return False
        if kpi_f is not None and _kpi(s) is not kpi_f:
            return False
        if has_crm is not None and bool(s["crmEntityId"]) != has_crm:
            return False
        wa, wc = _wait_answer(s), _wait_close(s)
        if (wa_lo is not None or wa_hi is not None) and (
            wa is None or wa_lo is not None and wa < wa_lo or wa_hi is not None and wa > wa_hi
        ):
            return False
        if (wc_lo is not None or wc_hi is not None) and (
            wc is None or wc_lo is not None and wc < wc_lo or wc_hi is not None and wc > wc_hi
        ):
            return False
        return True

    # the pages of one listing arrive 50 to a batch: filter and sort once per state version
    ck = (
        "sessions",
        ol.version,
        ol.head_votes_visible,
        repr(sorted((k, repr(v)) for k, v in params.items() if k not in ("offset", "limit"))),
    )
    rows = ol.cache.get(ck)
    if rows is None:
        rows = [s for s in ol.sessions if keep(s)]
        key = {
            "dateCreate": lambda s: s["dateCreate"],
            "dateClose": lambda s: s["dateClose"],
            "waitAnswer": _wait_answer,
            "waitClose": _wait_close,
        }[order]
        # NULLs first ascending (MySQL), ties by id
        rows.sort(key=lambda s: ((0, 0) if key(s) is None else (1, key(s)), s["id"]), reverse=direction == "desc")
        if len(ol.cache) > 16:
            ol.cache.clear()
        ol.cache[ck] = rows
    page = rows[offset : offset + limit]
    return {"sessions": [render_session(p, ol, s) for s in page], "hasNextPage": offset + limit < len(rows)}


@method("imopenlines.v2.session.transfer.list", SCOPE)
def session_transfer_list(c: Call, params: dict):
    """DOCS .../imopenlines-v2-session-transfer-list.md"""
    p = c.portal
    ol = _guard(c)
    out = []
    for sid in _session_ids(params, TRANSFER_IDS):
        for r in ol.transfers.get(sid, []):
            out.append({**r, "date": timefmt.iso(r["date"], p.tz)})
    return {"transfers": out}


@method("imopenlines.v2.session.stat.get", SCOPE)
def session_stat_get(c: Call, params: dict):
    """DOCS .../imopenlines-v2-session-stat-get.md (result key ``sessions``, as the method page shows)."""
    ol = _guard(c)
    out = []
    for sid in _session_ids(params, STAT_IDS):
        s = ol.by_id.get(sid)
        if s is None:
            out.append(
                {
                    "sessionId": sid,
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
            )
            continue
        out.append(
            {
                "sessionId": sid,
                "waitAnswer": _wait_answer(s),
                "waitClose": _wait_close(s),
                "messagesCount": s["msgOperator"] + s["msgBot"] + s["msgClient"] + s["msgSystem"],
                "messagesOperatorCount": s["msgOperator"],
                "messagesClientCount": s["msgClient"],
                "transfersCount": _queue_transfers(ol, s),
                "kpiFirstAnswer": _kpi(s),
                "vote": s["vote"],
                "voteHead": s["voteHead"] if ol.head_votes_visible else None,
            }
        )
    return {"sessions": out}


@method("imopenlines.v2.session.rating.list", SCOPE)
def session_rating_list(c: Call, params: dict):
    """DOCS .../imopenlines-v2-session-rating-list.md (rows by session id: the order is unspecified)."""
    p = c.portal
    ol = _guard(c)
    lo, hi = _period(p, params, "dateVoteFrom", "dateVoteTo", required="dateVote")
    lines, ops, sources = _common_filters(ol, params)
    vote_f = params.get("vote") or None
    if vote_f is not None and vote_f not in ("like", "dislike"):
        raise ApiError(400, "INVALID_FILTER", "Invalid vote filter value")
    has_head = _bool(params, "hasVoteHead")
    offset, limit = _paging(params)
    rows = [
        s
        for s in ol.sessions
        if s["vote"] != "none"
        and s["dateVote"] is not None
        and lo <= s["dateVote"] <= hi
        and (lines is None or s["configId"] in lines)
        and (ops is None or s["operatorId"] in ops)
        and (sources is None or s["source"] in sources)
        and (vote_f is None or s["vote"] == vote_f)
        and (has_head is None or not ol.head_votes_visible or (s["voteHead"] is not None) == has_head)
    ]
    page = rows[offset : offset + limit]
    head = ol.head_votes_visible
    iso = lambda ts: timefmt.iso(ts, p.tz)  # noqa: E731
    return {
        "ratings": [
            {
                "sessionId": s["id"],
                "configId": s["configId"],
                "operatorId": s["operatorId"],
                "source": s["source"],
                "vote": s["vote"],
                "voteHead": s["voteHead"] if head else None,
                "commentHead": s["commentHead"] if head else None,
                "dateVote": iso(s["dateVote"]),
                "dateSessionClose": iso(s["dateClose"]),
            }
            for s in page
        ],
        "hasNextPage": offset + limit < len(rows),
    }


def _period_required(p, params, a, b):
    if params.get(a) in (None, "") or params.get(b) in (None, ""):
        raise ApiError(400, "PERIOD_REQUIRED", f"{a} and {b} are required")
    return _period(p, params, a, b)


@method("imopenlines.v2.stat.get", SCOPE)
def stat_get(c: Call, params: dict):
    """DOCS .../imopenlines-v2-stat-get.md: sessions created in ``[dateFrom, dateTo]``."""
    p = c.portal
    ol = _guard(c)
    lo, hi = _period_required(p, params, "dateFrom", "dateTo")
    lines, ops, sources = _common_filters(ol, params)
    rows = [
        s
        for s in ol.sessions
        if lo <= s["dateCreate"] <= hi
        and (lines is None or s["configId"] in lines)
        and (ops is None or s["operatorId"] in ops)
        and (sources is None or s["source"] in sources)
    ]

    def avg(values):
        values = [v for v in values if v is not None]
        return round(sum(values) / len(values), 1) if values else 0

    def rate(group):
        likes = sum(1 for s in group if s["vote"] == "like")
        voted = sum(1 for s in group if s["vote"] in ("like", "dislike"))
        return round(likes / voted, 4) if voted else 0

    by_source: dict[str, int] = {}
    by_hour = [0] * 24
    by_op: dict[int, list] = {}
    for s in rows:
        by_source[s["source"]] = by_source.get(s["source"], 0) + 1
        by_hour[datetime.fromtimestamp(s["dateCreate"], p.tz).hour] += 1
        if s["operatorId"] is not None:
            by_op.setdefault(s["operatorId"], []).append(s)
    kpis = [_kpi(s) for s in rows]
    return {
        "totalSessions": len(rows),
        "closedSessions": sum(1 for s in rows if s["status"] == "closed"),
        "spamSessions": sum(1 for s in rows if s["status"] == "spam"),
        "avgWaitAnswer": avg(_wait_answer(s) for s in rows),
        "avgSessionDuration": avg(_wait_close(s) for s in rows),
        "likeCount": sum(1 for s in rows if s["vote"] == "like"),
        "dislikeCount": sum(1 for s in rows if s["vote"] == "dislike"),
        "votedSessions": sum(1 for s in rows if s["vote"] in ("like", "dislike")),
        "positiveRate": rate(rows),
        "kpiFirstAnswerOk": sum(1 for k in kpis if k is True),
        "kpiFirstAnswerFail": sum(1 for k in kpis if k is False),
        "sessionsBySource": [{"source": k, "count": v} for k, v in sorted(by_source.items())],
        "sessionsByHour": by_hour,
        "sessionsByOperator": [
            {
                "operatorId": op,
                "count": len(g),
                "avgWaitAnswer": avg(_wait_answer(s) for s in g),
                "positiveRate": rate(g),
            }
            for op, g in sorted(by_op.items())
        ],
    }


@method("imopenlines.v2.operator.list", SCOPE)
def operator_list(c: Call, params: dict):
    """DOCS .../imopenlines-v2-operator-list.md (maxChat fixed at 5)."""
    p = c.portal
    ol = _guard(c)
    lines = _id_set(params, "configId", "configIdList")
    users = _id_set(params, "userId", "userIdList")
    status = params.get("status") or None
    if status is not None and status not in ("online", "offline", "pause"):
        raise ApiError(400, "INVALID_FILTER", "Invalid status filter value")
    free = _bool(params, "hasFreeSlots")
    offset, limit = _paging(params)
    rows = []
    for lid, line in sorted(ol.lines.items()):
        if lines is not None and lid not in lines:
            continue
        for u in line["queue"]:
            st = ol.operator_status.get(u, "offline")
            active = sum(
                1
                for s in ol.sessions
                if s["operatorId"] == u and s["configId"] == lid and s["status"] in ("new", "answered", "paused")
            )
            slots = max(0, 5 - active)
            if (
                users is not None
                and u not in users
                or status is not None
                and st != status
                or free is not None
                and (slots > 0) != free
            ):
                continue
            last = max((s["dateCreate"] for s in ol.sessions if s["operatorId"] == u), default=None)
            rows.append(
                {
                    "userId": u,
                    "configId": lid,
                    "status": st,
                    "activeSessions": active,
                    "maxChat": 5,
                    "freeSlots": slots,
                    "lastActivityDate": timefmt.iso(last, p.tz),
                }
            )
    return {"operators": rows[offset : offset + limit], "hasNextPage": offset + limit < len(rows)}


@method("imopenlines.config.list.get", SCOPE)
def config_list_get(c: Call, params: dict):
    """DOCS api-reference/imopenlines/openlines/imopenlines-config-list-get.md (any user)."""
    ol = state(c.portal)
    opts = params.get("PARAMS") or {}
    options = params.get("OPTIONS") or {}
    try:
        limit = int(opts.get("limit", 50))
        offset = int(opts.get("offset", 0))
    except (TypeError, ValueError):
        raise ApiError(400, "INVALID_ARG_VALUE", "Invalid limit or offset")
    limit = max(1, min(LIMIT_MAX, limit))
    select = opts.get("select") or None
    rows = []
    for lid, line in sorted(ol.lines.items()):
        r = {"ID": str(lid), "LINE_NAME": line["LINE_NAME"], "ACTIVE": line["ACTIVE"]}
        if select:
            r = {k: v for k, v in r.items() if k in select}
        if str(options.get("QUEUE", "N")).upper() == "Y":
            r["QUEUE"] = list(line["queue"])
        rows.append(r)
    return rows[offset : offset + limit]
