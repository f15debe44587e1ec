"""kpi.md section 1: a CRM item's requester is its customer, so the internal user who created the deal
is an agent like any other. A deal pipeline where agents create the deals and then e-mail the customer
has first response times (before, the creator was excluded as the "author": none at all)."""

from __future__ import annotations

from openlines_support import END

from b24desk.client import B24Client
from b24desk.kpi.report import build_report
from b24desk.store import open_db
from b24desk.sync import run_sync
from portal_double import PortalDouble
from portal_double.truth import SOURCE_CONFIG

CONFIG = {"sources": SOURCE_CONFIG}


def test_the_creating_agent_replies_and_has_a_first_response():
    with PortalDouble(seed=3, tickets=60, drain_per_s=1e6, bucket_size=10**6, end=END) as d:
        p = d.portal
        agent = d.desk.agents[0]
        start = p.now
        made = []
        for k in range(4):  # the agent opens the deal, then answers by e-mail
            deal = p.create_item(
                2, creator=agent, assigned=agent, title=f"Request {k}", category_id=3, contactId=next(iter(p.items[3]))
            )
            d.advance(600 * (k + 1))
            p.add_activity(2, deal["id"], kind="email", direction=2, responsible=agent)
            made.append((deal, 600 * (k + 1)))
            d.advance(60)
        c = B24Client.from_webhook(d.webhook_url, rps=1e6, backoff_base=0.01, share_limiter=False)
        db = open_db(":memory:")
        assert all(r.error is None for r in run_sync(c, db, ["deals:category=3"], CONFIG))
        report = build_report(db, c.portal_id, start, p.now + 1, config=CONFIG)
        frt = report["kpis"]["first_response_time"]["value"]
        assert frt["count"] == 4
        assert frt["avg"] * 4 == sum(w for _, w in made)
        # tasks keep the author as the requester: the author's own comment is no first response
        t = p.create_task(creator=agent, responsible=agent, title="Own task")
        d.advance(300)
        p.add_task_comment(t["id"], agent, "note to self")
        d.advance(60)
        run_sync(c, db, ["tasks"], CONFIG)
        report = build_report(db, c.portal_id, p.now - 400, p.now + 1, config=CONFIG, filters={"source": "tasks"})
        assert report["kpis"]["tickets_total"]["value"] == 1
        assert report["kpis"]["first_response_time"]["value"] is None
