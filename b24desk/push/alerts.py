"""KPI alerts: when a KPI of the portal, a department or an agent turns red, its head gets one
notification naming the KPI, its value, its target and the tickets behind it; nothing more while it
stays red; one "back to green" note when it recovers (the rules: ``states.py``).

Each run (after every reconcile sync) computes the scorecard over a rolling window (the last
``alerts.window_days`` days up to the current hour, in the portal's time zone) for the portal,
every agent (one ``group_by="agent"`` report) and every department with a head (sub-departments
included, like the department digests), feeds the statuses to the state machine, and writes the
new states *and* the notifications to send in one transaction (an outbox in the sent-log), so a
crash can neither lose an alert nor send it twice. Notifications use ``im.notify.system.add`` with
``TAG`` ``b24desk:alert:<level>:<subject>:<kpi>``: the green note replaces the red alert in the
head's list (DOCS api-reference/chats/notifications/im-notify-system-add.md).
"""

from __future__ import annotations

import copy
import time

from .. import bbcode
from ..installations import get_installation
from ..kpi.drilldown import Replay, kind_of
from ..kpi.filters import Filters, matcher
from ..kpi.periods import Period
from ..kpi.report import build_report
from . import data as dg
from . import render as R
from . import sentlog
from . import states as A
from .context import WEBHOOK_CLIENT_ID, Context, alert_recipients, held, link, make_context
from .delivery import Outcome

REPORT = "alert"
TICKETS_SHOWN = 5


def _item(key: str, entry: dict, direction: str | None) -> dict:
    return {
        "key": key,
        "value": entry.get("value"),
        "previous": entry.get("previous"),
        "target": entry.get("target"),
        "status": entry.get("status") or "grey",
        "direction": direction,
    }


def window(now: int, days: int, tz) -> Period:
    """The last ``days`` days up to the start of the current hour (stable within the hour)."""
    end = int(now) - int(now) % 3600
    return Period(end - days * 86400, end, tz)


def observe(ctx: Context, period: Period) -> dict:
    """{(level, subject, kpi): (status, item, name)} for every KPI that has a target."""
    env, settings = ctx.env, ctx.settings["alerts"]
    levels = set(settings.get("levels") or A.LEVELS)
    only = set(settings.get("kpis") or []) or None
    out = {}

    def take(level, subject, name, kpis, targets):
        for key, entry in (kpis or {}).items():
            if entry.get("target") is None or (only and key not in only):
                continue
            direction = (targets.get(key) or {}).get("direction")
            out[(level, str(subject), key)] = (entry.get("status") or "grey", _item(key, entry, direction), name)

    rep = build_report(ctx.db, ctx.portal, period.start, period.end, group_by="agent", env=env)
    if "portal" in levels:
        take("portal", ctx.portal, None, rep["kpis"], env.targets_for())
    if "agent" in levels:
        for g in rep.get("groups") or []:
            if g.get("key") is not None:
                take("agent", g["key"], g.get("label"), g["kpis"], env.targets_for(agent=g["key"]))
    if "department" in levels:
        deps = dg.departments(ctx.db, ctx.portal)
        for dep in dg.digest_departments(ctx.db, ctx.portal, ctx.settings):
            r = build_report(ctx.db, ctx.portal, period.start, period.end, filters={"department": dep}, env=env)
            take("department", dep, (deps.get(dep) or {}).get("name"), r["kpis"], env.targets_for(department=dep))
    return out


def load_states(db, portal: str) -> dict:
    return {
        (r["level"], r["subject"], r["kpi"]): A.State(r["status"], bool(r["alerted"]), r["episode"] or 0)
        for r in db.query("select * from alert_state where portal = ?", [portal])
    }


def recipients(ctx: Context, level: str, subject: str) -> list[str]:
    """Who hears about a subject: the department's head; an agent's head (the next one up when
    the agent heads the department); the alert recipients for the portal, or when no head exists."""
    deps = dg.departments(ctx.db, ctx.portal)
    head = None
    if level == "department":
        head = dg.head_of(deps, subject)
    elif level == "agent":
        dep = ctx.env.tree.department_of(subject)
        head = dg.head_of(deps, dep)
        if head == subject:
            head = dg.head_of(deps, (deps.get(dep) or {}).get("parent"))
    return [head] if head and head != subject else alert_recipients(ctx)


def tickets_behind(ctx: Context, item: dict, level: str, subject: str, period: Period) -> list[dict]:
    """The tickets that make the KPI red, worst first, from the KPI engine's own drill-down
    (``b24desk.kpi.drilldown.Replay.members``: the tickets the number counted, each one's value):
    the slowest for a duration, the failing ones for a share or a count, the furthest off for a
    plain number."""
    replay = ctx.cache.get("replay")
    if replay is None or replay.period != period:  # one load and replay per run, sliced below
        replay = ctx.cache["replay"] = Replay(ctx.db, ctx.portal, period.start, period.end, env=ctx.env)
    filters = {"department": subject} if level == "department" else {"agent": subject} if level == "agent" else None
    keep = matcher(Filters.of(filters), ctx.env.tree)
    if keep is not None:
        replay = copy.copy(replay)
        replay.facts = [f for f in replay.facts if keep(f)]
    rows = replay.members(item["key"])
    kind, higher = kind_of(item["key"]), item.get("direction") == "higher"
    if kind in ("count", "share"):
        bad = [r for r in rows if r["hit"] is not higher] if kind == "share" else [r for r in rows if r["hit"]]
        bad.sort(key=lambda r: r["created_at"])
    else:
        bad = [r for r in rows if r["value"] is not None]
        bad.sort(key=lambda r: r["value"], reverse=not higher)
    bad = bad[:TICKETS_SHOWN]
    inst = get_installation(ctx.db, ctx.portal) if "installations" in ctx.db.table_names() else None
    domain = (inst or {}).get("domain")
    out = []
    for r in bad:
        t = ctx.db.execute(
            "select title, url from tickets where portal = ? and source = ? and source_id = ?",
            [ctx.portal, r["source"], r["source_id"]],
        ).fetchone()
        title, url = (t[0], t[1]) if t else (None, None)
        if url and url.startswith("/") and domain:
            url = f"https://{domain}{url}"
        # only the portal's own pages are linked (a stored absolute URL on another host is dropped)
        out.append({"id": r["source_id"], "title": title, "url": bbcode.url(url, [domain]) if url else None})
    return out


def run_alerts(
    db,
    portal: str,
    *,
    reader,
    writer,
    config: dict | None = None,
    now: int | None = None,
    deliverer_opts: dict | None = None,
) -> list[Outcome]:
    ctx = make_context(db, portal, config=config, reader=reader, writer=writer, deliverer_opts=deliverer_opts)
    settings = ctx.settings.get("alerts") or {}
    if not settings.get("enabled", True):
        return []
    days = int(settings.get("window_days") or 7)
    period = window(int(now if now is not None else time.time()), days, ctx.env.tz)
    observed = observe(ctx, period)
    with held(db, portal):
        states = load_states(db, portal)
        # the portal's first evaluation is a silent baseline (states.py)
        new_states, actions = A.evaluate(states, {s: v[0] for s, v in observed.items()}, baseline=not states)
        planned = []
        for act in actions:
            level, subject, kpi = act.subject
            _, item, name = observed[act.subject]
            tickets = tickets_behind(ctx, item, level, subject, period) if act.kind == A.RED else []
            for uid in recipients(ctx, level, subject):
                key = sentlog.Key(
                    portal, REPORT, f"{level}:{subject}:{kpi}#{act.episode}", "notify", f"user:{uid}:{act.kind}"
                )
                url = link(
                    ctx,
                    {
                        "kind": "alert",
                        "period": period.label,
                        "scope": {"id": subject if level == "department" else None},
                    },
                    key,
                )
                payload = {
                    "USER_ID": int(uid),
                    "TAG": f"b24desk:alert:{level}:{subject}:{kpi}",
                    "MESSAGE": R.alert_text(
                        act.kind,
                        item,
                        level=level,
                        name=name,
                        lang=ctx.lang,
                        days=days,
                        to_iso=period.iso(period.end),
                        tickets=tickets,
                        dashboard=url,
                    ),
                }
                if ctx.is_webhook:
                    payload["CLIENT_ID"] = WEBHOOK_CLIENT_ID
                planned.append((key, "im.notify.system.add", payload))
        with db.conn:  # the new states and the notifications they cause: one commit
            for (level, subject, kpi), st in new_states.items():
                db.execute(
                    "insert or replace into alert_state (portal, level, subject, kpi, status, alerted,"
                    " episode, value, updated_at) values (?,?,?,?,?,?,?,?,?)",
                    [portal, level, subject, kpi, st.status, int(st.alerted), st.episode, None, time.time()],
                )
            for key, method, payload in planned:
                sentlog.begin(db, key, method, payload, commit=False)
        return ctx.deliverer.resume(portal, report=REPORT)
