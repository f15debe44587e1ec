"""Shared harness of the install/event tests (no tests here): the app served over real HTTP on
127.0.0.1 beside a portal double, the inbox worker running, and a clean-sync comparator."""

from __future__ import annotations

import contextlib
import time

from app import create_app
from b24desk import inbox
from b24desk.client import B24Client
from b24desk.config import load_config
from b24desk.runtime import Runtime
from b24desk.store import open_db
from b24desk.sync import run_sync
from portal_double import PortalDouble, Served

SOURCES = ["tasks", "deals", "crm:1038"]


def double(seed: int = 1, tickets: int = 60, member_id: str | None = None, oauth=None) -> PortalDouble:
    d = PortalDouble(seed=seed, tickets=tickets, drain_per_s=1e6, oauth=oauth)
    if member_id:
        d.portal.member_id = member_id
    return d.start()


def app_config(sources=SOURCES) -> dict:
    return {**load_config(), "sources": list(sources)}


class Harness:
    """One b24desk app (its own store) serving /install and /events on 127.0.0.1."""

    def __init__(self, tmp_path, d: PortalDouble, *, sources=SOURCES, runtime: bool = True, name="b24desk.db"):
        self.double = d
        self.db_path = str(tmp_path / name)
        self.config = app_config(sources)
        self.app = create_app(
            {
                "TESTING": True,
                "DB": self.db_path,
                "SECRET_KEY": "test",
                "CLIENT_ID": d.client_id,
                "CLIENT_SECRET": d.client_secret,
                "OAUTH_URL": d.oauth_token_url,
                "B24DESK": self.config,
            }
        )
        self.served = Served(self.app, name="b24desk-app")
        self.url = self.served.url
        self.app.config["PUBLIC_URL"] = self.url
        self.runtime = Runtime(self.app, scheduler=False, poll=0.05, retry_backoff=0.2).start() if runtime else None

    # -- install flows, as the portal runs them --
    def install_api(self, d: PortalDouble | None = None):
        return (d or self.double).app.install_api(self.url + "/install")

    def install_ui(self, d: PortalDouble | None = None, finish: bool = True):
        d = d or self.double
        r = d.app.install_ui(self.url + "/install")
        if finish and r.status_code == 200 and "BX24.installFinish()" in r.text:
            d.app.install_finish()  # what the page's script does in the portal's frame
        return r

    @contextlib.contextmanager
    def db(self):
        db = open_db(self.db_path)
        try:
            yield db
        finally:
            db.conn.close()

    def installation(self, member_id: str | None = None) -> dict | None:
        with self.db() as db:
            rows = list(
                db.query("select * from installations where member_id = ?", [member_id or self.double.member_id])
            )
        return rows[0] if rows else None

    def settle(self, *doubles, timeout: float = 120.0) -> None:
        """Wait until the doubles delivered everything and the inbox is drained (not a timing
        assertion: a generous bound on waiting for work to finish)."""
        for d in doubles or (self.double,):
            assert d.app.wait_idle(timeout)
        deadline = time.monotonic() + timeout
        while True:
            with self.db() as db:
                c = inbox.counts(db)
            if not c.get(inbox.NEW) and not c.get(inbox.WORKING):
                return
            assert time.monotonic() < deadline, f"inbox not drained: {c}"
            if self.runtime is not None:
                self.runtime.worker.notify()
            time.sleep(0.05)

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.stop()
        self.served.stop()


def form(fields: dict) -> str:
    from portal_double.phpquery import build_query

    return build_query(fields)


def event_body(h: Harness, event: str, data: dict, member_id: str | None = None, token: str | None = None) -> str:
    inst = h.installation(member_id) or h.installation()  # a forged member_id reuses a real token
    auth = {
        "domain": h.double.domain,
        "client_endpoint": h.double.client_endpoint,
        "server_endpoint": h.double.server_endpoint,
        "member_id": member_id or h.double.member_id,
        "application_token": token if token is not None else inst["application_token"],
    }
    return form({"event": event, "data": data, "ts": str(h.double.now), "auth": auth})


# --- "the store equals a clean sync" ------------------------------------------------------------


def clean_sync(d: PortalDouble, path: str, sources=SOURCES):
    """A fresh store filled by one full sync of the double (the yardstick)."""
    db = open_db(path)
    tok = d.issue_tokens(1)
    client = B24Client.from_access_token(
        d.client_endpoint, tok["access_token"], portal_id=d.member_id, share_limiter=False
    )
    try:
        run_sync(client, db, None, app_config(sources), full=True)
    finally:
        client.close()
    return db


def live_state(db, portal: str) -> tuple[dict, set]:
    """Live tickets (minus the sync's own bookkeeping) and their event logs."""
    tickets = {}
    for r in db.query("select * from tickets where portal = ? and coalesce(deleted, 0) = 0", [portal]):
        r = dict(r)
        r.pop("synced_at", None)
        tickets[(r["source"], r["source_id"])] = r
    events = set()
    for r in db.query("select * from events where portal = ?", [portal]):
        if (r["source"], r["source_id"]) in tickets:
            events.add(tuple(sorted(r.items())))
    return tickets, events


def assert_equals_clean_sync(h: Harness, tmp_path, label: str = "clean") -> set:
    """Live tickets equal a clean sync's, and so do their event logs, up to what only a witness
    can know: a CRM responsible change has no history API, so the sync records it by comparing
    snapshots (``d:<hash>:resp``) and keeps the first assignee it saw as ``assigned:0``; a clean
    sync after the change sees neither. Returns those observed-only events' tickets."""
    clean = clean_sync(h.double, str(tmp_path / f"{label}.db"))
    try:
        want_t, want_e = live_state(clean, h.double.member_id)
    finally:
        clean.conn.close()
    with h.db() as db:
        got_t, got_e = live_state(db, h.double.member_id)
    assert set(got_t) == set(want_t), (sorted(set(got_t) ^ set(want_t)))[:10]
    diff = [k for k in want_t if got_t[k] != want_t[k]]
    assert not diff, [
        (k, {f: (got_t[k][f], want_t[k][f]) for f in want_t[k] if got_t[k][f] != want_t[k][f]}) for k in diff[:3]
    ]

    def key(e):
        d = dict(e)
        return d["source"], d["source_id"], d["key"]

    observed = {key(e)[:2] for e in got_e if key(e)[2].startswith("d:")}

    def comparable(events):
        return {
            e
            for e in events
            if not key(e)[2].startswith("d:") and not (key(e)[2] == "assigned:0" and key(e)[:2] in observed)
        }

    got_c, want_c = comparable(got_e), comparable(want_e)
    assert got_c == want_c, (sorted(got_c - want_c)[:5], sorted(want_c - got_c)[:5])
    return observed
