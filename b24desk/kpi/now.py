"""The dashboard's "now" panel: the tickets open at this minute, split into what needs attention.

Each open ticket's facts as of the next minute, as the KPIs see them (the effective deadline, own
or the SLA target's; the first reply): from ticket_facts alone for those kept as open and untouched
since before the minute (derived.open_now), read off or replayed from their events for the others.
"""

from __future__ import annotations

from . import derived
from .filters import Filters, matcher
from .load import Loaded, load, read_snapshot, source_clause
from .report import ReportEnv

NOW_ITEMS = ("open", "unassigned", "no_reply", "at_risk", "oldest")
RISK_WINDOW = 2 * 3600  # "at risk": the effective deadline falls within the next 2 hours


def now_items(own, portal: str, filters: dict, cfg: dict, minute: int) -> dict:
    """The "now" panel as of ``minute`` (the open tickets split into its items, each a ticket row
    with ``value``: age, or time left before the deadline); ``cfg`` the portal's config."""
    env = ReportEnv(own, portal, cfg)
    f = Filters.of(filters)
    keep = matcher(f, env.tree)
    end = minute + 60
    items = {k: [] for k in NOW_ITEMS}

    def add(source, source_id, created_at, resp_end, priority, first_reply, deadline) -> None:
        r = {
            "source": source,
            "source_id": source_id,
            "responsible": resp_end,
            "priority": priority,
            "created_at": created_at,
            "state": "open",
            "hit": None,
        }
        age = max(0, minute - (created_at or minute))
        items["open"].append(dict(r, value=age))
        if not resp_end:
            items["unassigned"].append(dict(r, value=age))
        if first_reply is None:
            items["no_reply"].append(dict(r, value=age))
        if deadline is not None and minute <= deadline < minute + RISK_WINDOW:
            items["at_risk"].append(dict(r, value=deadline - minute))

    sources = f.sources()
    if f.source and not sources:
        tickets, loaded = [], None  # contradictory source filters
    elif derived.open_rows_complete(own.conn, portal):
        # the open tickets kept as open and untouched since before ``end - 1``: their kept facts
        # as they are (kpi/derived.py open_now); the others read off or replayed as before
        src_sql, src_params = source_clause(sources, "f.")
        fp = derived.fingerprint(env.ctx)
        with read_snapshot(own.conn):
            kept, others = derived.open_now(own.conn, portal, fp, end - 1, end, src_sql, src_params)
            loaded = Loaded(db=own, portal=portal)
            tickets, missing = loaded.reload({k: end - 1 for k in others}, end - 1, end, sources, env.ctx, 0)
        if missing:
            derived.save(own, portal, fp, missing)
        for row in kept:
            if keep is None or keep(_Kept(row)):
                add(row[0], row[1], row[2], row[3], row[4], row[8], row[9])
    else:
        # the open tickets as of ``end``, each from its kept facts where they tell; the loader's
        # window [end - 1, end) also brings those closed in that second: left out below
        loaded = load(own, portal, end - 1, end, sources=sources, repeat_window=0, ctx=env.ctx, ends=(end,))
        tickets = loaded.tickets
    for t in tickets:
        if t["closed_at"] is not None:
            continue
        fact = loaded.facts(t, end - 1, end, env.ctx)
        if fact is None or not fact.open_at_end or (keep is not None and not keep(fact)):
            continue
        add(t["source"], t["source_id"], t["created_at"], fact.resp_end, fact.priority, fact.first_reply, fact.deadline)
    for k in ("open", "unassigned", "no_reply"):  # the oldest first (ties by key: one order)
        items[k].sort(key=lambda r: (-(r["value"] or 0), r["source"], r["source_id"]))
    items["at_risk"].sort(key=lambda r: (r["value"], r["source"], r["source_id"]))
    items["oldest"] = items["open"][:1]
    return {"items": items, "now": minute}


class _Kept:
    """What the filters read of a ticket (kpi/filters.py matcher), from a derived.open_now row."""

    __slots__ = ("resp_end", "priority", "type", "t")

    def __init__(self, row):
        self.resp_end, self.priority, self.type = row[3], row[4], row[5]
        self.t = {"channel": row[6], "line": row[7]}
