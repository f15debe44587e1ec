"""Warm the memo after a sync, so the first viewer after it is served fresh figures at once.

A reconcile rewrites the store, which makes every memoized figure stale (reports/cache.py). The
view most likely to come next is a portal admin's default dashboard (default period, no
filters): :class:`Warmer` builds exactly that page's data in a background thread, through the
same code the page runs (``dashboard.build``), so the memo keys are the page's own. The server
entry hands it to the core as ``Runtime.after_sync`` (the core knows nothing of Flask).
"""

from __future__ import annotations

import logging
import threading
import time

from b24desk.store import open_db
from b24desk.viewer import ADMIN, Viewer

log = logging.getLogger(__name__)


def warm_dashboard(app, portal: str) -> None:
    """Compute the admin's default dashboard of ``portal`` into this process's memo."""
    from . import dashboard, data

    with app.test_request_context("/reports/dashboard"):
        db = open_db(app.config["DB"], migrate=False)
        try:
            dashboard.build(db, Viewer(portal=portal, user_id="", role=ADMIN), {}, "")
        finally:
            db.conn.close()
    data.MEMO.wait_idle()  # a stale entry is refreshed in the memo's own thread


# how far back the settled cells are kept up to date after a sync: a year of months and the
# current one (a month's report, its previous month, last year's same month, a year of trends)
CELL_DAYS = 400


# portal -> (maths context, change-journal position) of the last cells build that went through
# every month it had to: the next one looks only at the months written since (_cell_months)
_CELLS_SEEN: dict = {}


def _cell_months(db, portal: str, fp: str, kept: int, start: int, end: int, tz, now: int):
    """``(journal position, months)`` for the next cells build: the months of the tickets written
    since the last complete build (the change journal says which; a written ticket's cell is stale
    and its month's cells are made anew), with this month and the one before (tickets settle as
    time passes); None, every month, when that cannot be told: no build yet under this context, the
    journal pruned or too many writes, or more facts kept now than tickets written (facts dropped
    some other way). A month left out only keeps its cells as they are: a stale cell is never read."""
    from b24desk.kpi.cells import month_of
    from b24desk.store import journal_changes, journal_state

    state = journal_state(db.conn)
    seq = state[0] if state else None  # read before the build: conservative
    seen = _CELLS_SEEN.get(portal)
    if seq is None or seen is None or seen[0] != fp:
        return seq, None
    got = journal_changes(db.conn, portal, seen[1], start, end)
    if got is None or got[1] is None or kept > len(got[1]):
        return seq, None
    recent = month_of(now, tz)
    months = {month_of(lo, tz) for lo in got[1].values()} | {recent, month_of(recent - 1, tz)}
    return seq, months


def backfill_facts(app, portal: str, stop=None, batch: int = 1000, pause: float = 0.02) -> int:
    """Keep the per-ticket facts of every ticket of ``portal`` that has none under the portal's
    current config (b24desk.kpi.load.backfill), a batch at a time with a pause between so requests
    come first, until none is left or ``stop()`` says a newer sync wants its dashboard warmed.
    Then the first report of any period reads kept facts (no replay of its tickets). Then each
    ticket's gap to its customer's previous one is filled in (derived.fill_gaps: repeat contacts
    without the customers' history). Then the settled cells of the last ``CELL_DAYS``
    (b24desk.kpi.cells: a month's report merges them instead of reading most of its tickets) are
    made anew where a write, newly kept facts or gaps left them behind, a month at a time.
    Returns the facts kept."""
    from b24desk.kpi import cells, derived
    from b24desk.kpi.load import backfill
    from b24desk.kpi.report import ReportEnv

    from . import data

    kept, after = 0, ("", "")
    with app.app_context():
        db = open_db(app.config["DB"], migrate=False)
        try:
            ctx = ReportEnv(db, portal, data.portal_config(db, portal)).ctx
            while after is not None and not (stop and stop()):
                n, after = backfill(db, portal, ctx, after, batch)
                kept += n
                if after is not None and pause:
                    time.sleep(pause)
            if after is None:  # every ticket's facts kept: their gaps, then the settled tickets' cells
                filled: set = set()  # created_at of the tickets whose gap was filled in now
                while not (stop and stop()) and derived.fill_gaps(db, portal, batch * 5, filled):
                    if pause:
                        time.sleep(pause)
                now = int(time.time())
                start, end = now - CELL_DAYS * 86400, now + 86400
                fp = cells.cell_fp(ctx)
                tz = cells.zone_of(ctx)
                seq, only = _cell_months(db, portal, fp, kept, start, end, tz, now)
                if only is not None:  # a ticket left out of its cell until its gap was known
                    only |= {cells.month_of(at, tz) for at in filled if start <= at < end}
                if cells.build(db, portal, ctx, start, end, stop=stop, pause=pause, only=only):
                    data.cells_built(app.config["DB"], portal)  # kept passes may read them now
                if seq is not None and not (stop and stop()):
                    _CELLS_SEEN[portal] = (fp, seq)
        finally:
            db.conn.close()
    return kept


class Warmer:
    """``warmer(portal)``: warm that portal's dashboard in the background, then keep the facts of
    its tickets that have none (``backfill``), one thread per portal at a time (a sync that ends
    while one is running warms once more after it; the backfill yields to that warm)."""

    def __init__(self, app, warm=warm_dashboard, backfill=backfill_facts):
        self.app, self.warm, self.backfill = app, warm, backfill
        self._lock = threading.Lock()
        self._running: dict[str, threading.Thread] = {}
        self._again: set[str] = set()
        self.done = 0
        self.backfilled = 0

    def __call__(self, portal: str) -> None:
        with self._lock:
            if portal in self._running:
                self._again.add(portal)
                return
            th = self._running[portal] = threading.Thread(
                target=self._run, args=(portal,), name=f"reports-warm-{portal[:8]}", daemon=True
            )
        th.start()

    def _run(self, portal: str) -> None:
        while True:
            try:
                self.warm(self.app, portal)
                self.done += 1
            except Exception:  # a failed warm only means a cold first view
                log.exception("warming the dashboard of %s failed", portal)
            if self.backfill is not None:
                try:
                    self.backfilled += self.backfill(self.app, portal, stop=lambda: portal in self._again)
                except Exception:  # facts not kept now are computed by the first report needing them
                    log.exception("keeping the facts of %s failed", portal)
            with self._lock:
                if portal not in self._again:
                    self._running.pop(portal, None)
                    return
                self._again.discard(portal)

    def join(self, timeout: float = 60.0) -> None:
        """Wait for the warms under way (tests)."""
        with self._lock:
            threads = list(self._running.values())
        for th in threads:
            th.join(timeout)
