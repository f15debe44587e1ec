"""Shared set-up of the push tests (no tests here): a portal double with the app installed, synced
once into a template store that each test copies, and clients that talk to it over real HTTP."""

from __future__ import annotations

import shutil
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from b24desk.client import B24Client
from b24desk.config import load_config
from b24desk.installations import save_installation
from b24desk.store import open_db
from b24desk.sync import run_sync
from portal_double import PortalDouble
from portal_double.push_methods import PushState, push_state
from portal_double.truth import SOURCE_CONFIG

CONFIG = {**load_config(), "sources": SOURCE_CONFIG}
SELECTORS = ["tasks", "deals:category=3", "crm:1038"]
FAST = {"sleep": lambda s: None, "retries": 6}  # Deliverer options: no real back-off waits


class Setup:
    def __init__(self, double: PortalDouble, template: str):
        self.double, self.template = double, template

    @property
    def portal(self) -> str:
        return self.double.member_id

    def store(self, tmp_path) -> str:
        path = str(tmp_path / "push.db")
        shutil.copy(self.template, path)
        return path

    def clients(self, db_path: str) -> tuple[B24Client, B24Client]:
        d = self.double

        def mk(**opts):
            return B24Client.from_installation(
                db_path,
                d.member_id,
                d.client_id,
                d.client_secret,
                oauth_url=d.oauth_token_url,
                rps=1e6,
                share_limiter=False,
                backoff_base=0.001,
                **opts,
            )

        return mk(), mk(max_retries=0)

    def reset(self) -> PushState:
        """Forget what earlier tests pushed (chats stay: they are the portal's)."""
        p = self.double.portal
        p.push_state = None
        self.double.faults.clear()
        return push_state(p)

    def env(self, db_path: str) -> dict:
        d = self.double
        return {
            "B24DESK_CLIENT_ID": d.client_id,
            "B24DESK_CLIENT_SECRET": d.client_secret,
            "B24DESK_OAUTH_URL": d.oauth_token_url,
            "B24DESK_DB": db_path,
            "B24DESK_WEBHOOK": "",
        }


# The double's clock is pinned, so weeks and months hold the same tickets whatever day tests run.
END = datetime(2026, 10, 14, 15, 0, tzinfo=ZoneInfo("Europe/Moscow"))  # a Wednesday afternoon


def build_setup(tmp_path_factory, seed: int = 21, tickets: int = 320) -> Setup:
    d = PortalDouble(seed=seed, tickets=tickets, drain_per_s=1e6, end=END).start()
    path = str(tmp_path_factory.mktemp("push-template") / "template.db")
    db = open_db(path)
    save_installation(db, **d.issue_tokens(), lang="ru")
    reader = B24Client.from_installation(
        path, d.member_id, d.client_id, d.client_secret, oauth_url=d.oauth_token_url, rps=1e6, share_limiter=False
    )
    run_sync(reader, db, SELECTORS, CONFIG)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.conn.close()
    return Setup(d, path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    s = build_setup(tmp_path_factory)
    yield s
    s.double.stop()


def label(kind: str, ts: int, tz) -> str:
    from b24desk.push.data import last_complete

    return last_complete(kind, ts, tz).label


def local(ts: int, tz) -> datetime:
    return datetime.fromtimestamp(ts, tz)
