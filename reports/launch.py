"""``POST /app``: every placement launch (the main page, CRM analytics, deal / smart-process / task tabs).

The launch is verified (``b24desk.viewer.verify_launch``: APPLICATION_TOKEN, then the viewer's
AUTH_ID against the *stored* portal endpoint), a signed viewer token is minted, and the frame is
sent on (303) to the page the placement shows, with the token in its URL: the dashboard for
``DEFAULT`` / ``CRM_ANALYTICS_MENU``, the ticket card for the detail tabs. Placement codes and
their ``PLACEMENT_OPTIONS``: DOCS api-reference/widgets/placements.md (deal tab ``{"ID"}``,
``CRM_DYNAMIC_{entityTypeId}_DETAIL_TAB`` the same, ``TASK_VIEW_TAB`` ``{"taskId"}``).
"""

from __future__ import annotations

import re
import time

from flask import current_app, g, redirect, request, url_for

from b24desk.client import B24Client
from b24desk.viewer import ADMIN, ViewerError, open_sessions, save_session, verify_launch

from .auth import sign
from .blueprint import bp, get_db

DASHBOARD_PLACEMENTS = ("DEFAULT", "CRM_ANALYTICS_MENU", "LEFT_MENU", "REST_APP_URI")
_DYNAMIC_TAB = re.compile(r"^CRM_DYNAMIC_(\d+)_DETAIL_TAB$")


def ticket_of_placement(placement: str, options: dict) -> tuple[str, str] | None:
    """``(source, source_id)`` a detail-tab placement points at, or None for dashboard placements."""
    placement = placement.upper()
    if placement == "CRM_DEAL_DETAIL_TAB":
        source = "crm:2"
        tid = options.get("ID") or options.get("id")
    elif _DYNAMIC_TAB.match(placement):
        source = f"crm:{_DYNAMIC_TAB.match(placement).group(1)}"
        tid = options.get("ID") or options.get("id")
    elif placement == "TASK_VIEW_TAB":
        source = "task"
        tid = options.get("taskId") or options.get("TASK_ID") or options.get("ID")
    else:
        return None
    tid = str(tid or "").strip()
    if not tid.isdigit():
        raise ViewerError(400, "bad_options", f"{placement} launch without a ticket id in PLACEMENT_OPTIONS")
    return source, tid


def portal_caller():
    """``call(endpoint, token, method, params)`` with one client per (endpoint, viewer token)."""
    # interactive: ahead of background sync traffic in the portal's request budget; a refusal for
    # the portal's request rate is retried a few times, briefly (a person waits)
    opts = dict(
        current_app.config.get("LAUNCH_CLIENT_OPTS")
        or {"max_retries": 4, "backoff_base": 0.25, "backoff_cap": 2.0, "timeout": 10, "interactive": True}
    )
    clients: dict = {}

    def call(endpoint, token, method, params):
        key = (endpoint, token)
        if key not in clients:
            clients[key] = B24Client.from_access_token(endpoint, token, **opts)
        return clients[key].call(method, params)

    return call, clients


@bp.route("/app", methods=["POST"])
def launch():
    call, clients = portal_caller()
    try:
        verified = verify_launch(get_db(), request.args, request.form, call=call)
    finally:
        for c in clients.values():
            c.close()
    if verified.viewer.role == ADMIN:  # its tokens, server side, for the admin right's re-checks
        refresh = request.form.get("REFRESH_ID")
        sessions = open_sessions(current_app.config["DB"])
        try:
            save_session(
                sessions,
                verified.viewer,
                request.form.get("AUTH_ID", "").strip(),
                refresh.strip() if isinstance(refresh, str) and refresh.isascii() and len(refresh) <= 256 else None,
                admin=True,
                now=time.time(),
            )
        finally:
            sessions.conn.close()
    g.viewer = verified.viewer
    g.viewer_token = token = sign(verified.viewer)
    target = ticket_of_placement(verified.placement, verified.options)
    if target is None:
        return redirect(url_for("reports.dashboard", t=token), code=303)
    return redirect(url_for("reports.ticket", source=target[0], id=target[1], t=token), code=303)
