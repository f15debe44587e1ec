"""Shared helpers of the open-lines tests (no tests here): a double with open lines, a client, and
the comparison of the store with the double's ground truth (``portal_double.openlines.truth_model``)."""

from __future__ import annotations

import inspect
from collections import Counter
from datetime import datetime, timezone

from b24desk.client import B24Client
from portal_double import PortalDouble
from portal_double import openlines as dol

END = datetime(2026, 10, 15, 9, 0, tzinfo=timezone.utc)
FIELDS = (
    "type",
    "author_id",
    "customer",
    "responsible_id",
    "created_at",
    "resolved_at",
    "closed_at",
    "state",
    "rating",
    "qa_score",
    "channel",
    "line",
)


def make_double(n: int, seed: int = 7, tickets: int = 0, **gen) -> PortalDouble:
    """A started-later double with ``n`` open-line sessions (``PortalDouble(openlines=n)`` when the
    double offers it, else the generator is run on its portal)."""
    kw = dict(seed=seed, tickets=tickets, drain_per_s=1e6, bucket_size=10**6, end=END)
    if "openlines" in inspect.signature(PortalDouble.__init__).parameters and not gen:
        d = PortalDouble(openlines=n, **kw)
    else:
        d = PortalDouble(**kw)
        dol.generate(d.portal, n, seed=seed, **gen)
    return d


def client_for(d: PortalDouble, url: str | None = None) -> B24Client:
    return B24Client.from_webhook(url or d.webhook_url, rps=1e6, backoff_base=0.01, share_limiter=False)


def _summary(events) -> tuple:
    """What the KPIs read from one log: transfers, first reply, replies, customer messages,
    requalifications, rating, close kind."""
    ev = sorted(events, key=lambda e: e["at"])
    transfers = sum(
        1
        for e in ev
        if e["kind"] == "assigned" and e["from_value"] not in (None, "", "0") and e["from_value"] != e["to_value"]
    )
    first = min((e["at"] for e in ev if e["kind"] == "reply"), default=None)
    kinds = Counter(e["kind"] for e in ev)
    requal = sum(1 for e in ev if e["kind"] == "field_changed" and e["field"] == "type")
    closes = [(e["kind"], e["at"]) for e in ev if e["kind"] in ("resolved", "rejected")]
    rated = [e["to_value"] for e in ev if e["kind"] == "rated"]
    return (transfers, first, kinds["reply"], kinds["customer_message"], requal, closes, rated)


def _truth_key(customer):
    """Our customer keys are truth.py's spelling (``C_5``, ``CO_3``, ``7``) since the open-lines
    adapter uses the CRM and task adapters' keys."""
    return customer


def mismatches(db, portal: str, d: PortalDouble, line: str | None = None, limit: int = 10) -> list:
    """Differences between the stored open-line tickets and the truth (empty when they agree)."""
    tickets, events = dol.truth_model(d.portal, portal)
    if line is not None:
        tickets = [t for t in tickets if t["line"] == line]
    stored = {
        r["source_id"]: r
        for r in db.query(
            "select * from tickets where portal = ? and source = 'openlines' and coalesce(deleted, 0) = 0", [portal]
        )
    }
    logs: dict = {}
    for e in db.query("select * from events where portal = ? and source = 'openlines'", [portal]):
        logs.setdefault(e["source_id"], []).append(e)
    out = []
    if set(stored) != {t["source_id"] for t in tickets}:
        out.append(("ids", sorted(set(stored) ^ {t["source_id"] for t in tickets})[:limit]))
    for t in tickets:
        s = stored.get(t["source_id"])
        if s is None:
            continue
        for f in FIELDS:
            if (_truth_key(s[f]) if f == "customer" else s[f]) != t[f]:
                out.append((t["source_id"], f, s[f], t[f]))
        ours, theirs = _summary(logs.get(t["source_id"], [])), _summary(events[("openlines", t["source_id"])])
        if ours != theirs:
            out.append((t["source_id"], "events", ours, theirs))
        if len(out) >= limit:
            break
    return out
