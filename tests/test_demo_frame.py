"""The demo portal's own pages (portal_double/frame.py): the ticket links the app shows open the
ticket's card on the app's tab, the agent's card is one of their own tickets, feed posts show
their text, and the app page answers at /marketplace/app/<id>/ (the digest's link)."""

from __future__ import annotations

import html
import json
import re

import pytest
import requests

from portal_double import PortalDouble
from portal_double.frame import viewer_ids


@pytest.fixture(scope="module")
def double():
    d = PortalDouble(seed=3, tickets=200, months=2, drain_per_s=1e6).start()
    d.app.handler_url = "http://127.0.0.1:9/app"  # the form's target; never followed here
    yield d
    d.stop()


def launch(page: str) -> dict:
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))
    return {"placement": fields["PLACEMENT"], "options": json.loads(html.unescape(fields["PLACEMENT_OPTIONS"]))}


def test_ticket_links_open_the_card_on_the_apps_tab(double):
    p = double.portal
    task = p.task_list[0]
    r = requests.get(f"{double.base_url}/company/personal/user/{task['responsibleId']}/tasks/task/view/{task['id']}/")
    assert r.status_code == 200
    assert launch(r.text) == {"placement": "TASK_VIEW_TAB", "options": {"taskId": str(task["id"])}}
    deal = next(iter(p.items[2].values()))
    r = requests.get(f"{double.base_url}/crm/deal/details/{deal['id']}/")
    assert launch(r.text) == {"placement": "CRM_DEAL_DETAIL_TAB", "options": {"ID": str(deal["id"])}}
    r = requests.get(f"{double.base_url}/crm/type/1038/details/7/")
    assert launch(r.text) == {"placement": "CRM_DYNAMIC_1038_DETAIL_TAB", "options": {"ID": "7"}}
    assert requests.get(f"{double.base_url}/marketplace/app/12/").status_code == 200
    assert requests.get(f"{double.base_url}/crm/deal/details/x/").status_code == 404


def test_the_agents_task_card_is_their_own_task(double):
    agent = viewer_ids(double)["agent"]
    r = requests.get(f"{double.base_url}/?as=agent&placement=TASK_VIEW_TAB")
    tid = launch(r.text)["options"]["taskId"]
    task = next(t for t in double.portal.task_list if str(t["id"]) == tid)
    assert task["responsibleId"] == agent


def test_feed_posts_show_their_title_and_text(double):
    from portal_double.push_methods import push_state

    push_state(double.portal).posts.append(
        {
            "ID": 1,
            "TITLE": "Еженедельный отчёт",
            "DETAIL_TEXT": "Решено: [B]12[/B]",
            "DEST": ["UA"],
            "AUTHOR_ID": 1,
            "at": double.portal.now,
        }
    )
    page = requests.get(f"{double.base_url}/?as=admin").text
    assert "Еженедельный отчёт" in page and "Решено: <b>12</b>" in page
