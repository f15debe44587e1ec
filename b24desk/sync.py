"""The sync: sources -> store, full then incremental, crash-safe (``flask sync`` is in ``web/cli.py``).

Per selector the store keeps these cursors (table ``cursors``), all on the *portal's* clock
(``server.time``, asked inside the listing batch), so our own clock's skew never matters:

- ``changed_since``: the portal time when the last completed sync started listing. An incremental
  sync reads what changed at or after ``changed_since - OVERLAP`` (the overlap covers rows the
  portal was still writing while the previous run listed);
- ``full_since`` / ``full_after`` / ``full_started``: an unfinished full sync (its portal start time,
  the highest id it committed, its start on our clock for ``synced_at`` comparisons). A re-run
  resumes after ``full_after``; ``changed_since`` is only set when the full sync ends.

Every page of bundles is written in one ``db.atomic()`` together with the cursor it completes, so a
process killed at any instant leaves a prefix of whole pages; events and snapshots are idempotent,
so the re-run converges on exactly the store a clean run gives.

Deletions: a full sync marks the selector's tickets it did not see (``synced_at`` older than its
start); an incremental one compares the portal's count for the selector (answered inside the
listing batch) with the store's, and only on a mismatch counts again per id range (one batch of
up to 50 ranges) and lists the ids of the ranges that differ, marking the missing ones deleted and
fetching any the store lacks (``Source.reconcile``).

Selectors for ``--source`` (shared/spec/interfaces.md): ``tasks`` (every task of the portal),
``tasks:group=7`` (one workgroup/project), ``deals`` (every funnel), ``deals:category=3`` (one
funnel), ``crm:1038`` (a smart process, every funnel), ``crm:1038:category=5``, and those of
pluggable sources (``openlines``, ``openlines:line=2``). Field mapping per selector comes from the
config's ``[[sources]]`` tables.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import config as b24config
from . import leases
from .client import AuthError, B24Error, ShapeError
from .directory import sync_directory
from .model import naive_zone, parse_time
from .sources import configured_selectors, get_source
from .sources.base import Source, SyncContext
from .store import get_cursor, get_setting, mark_deleted, save_bundles, set_cursor

log = logging.getLogger(__name__)

OVERLAP = 300  # seconds re-read before the cursor (clock skew, in-flight writes)
DIRECTORY_MAX_AGE = 24 * 3600  # users/departments/calendar are refreshed at most daily on incremental runs
SHAPE_RETRIES = 2  # a selector whose answer had an unexpected shape is read again this often
SHAPE_PAUSE = 1.0  # seconds before the first re-read (then 2, ...)


class SyncBusy(leases.Busy):
    """Another live process is syncing the same portal."""


@dataclass
class SourceReport:
    selector: str
    mode: str = ""  # "full", "resumed", "incremental"
    saved: int = 0  # tickets written
    new_snapshots: int = 0
    deleted: int = 0
    requests: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # why this selector stopped (its committed pages are kept)

    def line(self) -> str:
        if self.error:
            return (
                f"{self.selector}: FAILED after {self.saved} tickets saved, {self.requests} requests: "
                f"{self.error} (re-run to resume)"
            )
        extra = f" ({'; '.join(self.notes)})" if self.notes else ""
        return (
            f"{self.selector}: {self.mode}, {self.saved} tickets saved, {self.new_snapshots} new snapshots, "
            f"{self.deleted} deleted, {self.requests} requests, {self.seconds:.1f}s{extra}"
        )


# --- locking ------------------------------------------------------------------------------------


def portal_lease(db, portal: str):
    """The portal's one lease for sync-like work (``leases.portal``; re-entered when the caller
    holds it already), or ``SyncBusy`` when another live process holds it."""
    return leases.portal(db, portal, busy=lambda who: SyncBusy(f"another sync of this portal is running ({who})"))


# --- one source -----------------------------------------------------------------------------------


def _stored(db, portal: str, source: str, selector: str) -> set[str]:
    return {
        r["source_id"]
        for r in db.query(
            "select source_id from tickets where portal = ? and source = ? and selector = ?"
            " and coalesce(deleted, 0) = 0",
            [portal, source, selector],
        )
    }


def _save_page(db, page, cursor: tuple | None, report: SourceReport, bar) -> None:
    with db.atomic():
        report.new_snapshots += save_bundles(db, page.bundles)
        if cursor is not None:
            set_cursor(db, *cursor)
    report.saved += len(page.bundles)
    if bar is not None:
        bar.update(len(page.bundles))


def portal_now(client, db, portal: str) -> int:
    """The portal's clock (``server.time``, DOCS api-reference/common/system/server-time.md); our
    clock plus the last measured skew if the portal will not say."""
    try:
        ts = parse_time(client.call("server.time"))
        if ts is not None:
            return ts
    except B24Error as exc:
        log.info("server.time: %s (using our clock)", exc)
    return int(time.time()) + int(get_setting(db, portal, "clock_skew", 0) or 0)


def sync_source(
    client,
    db,
    portal: str,
    source: Source,
    config: dict | None = None,
    full: bool = False,
    overlap: int = OVERLAP,
    progress: bool = False,
) -> SourceReport:
    """Bring one selector up to date: full (or resumed full) when needed, else incremental."""
    sel = source.selector.raw
    report = SourceReport(sel)
    before, t0 = getattr(client, "requests_sent", 0), time.monotonic()
    ctx = SyncContext(portal=portal, db=db, config=config or {})
    changed_since = get_cursor(db, portal, sel, "changed_since")
    full_started = get_cursor(db, portal, sel, "full_started")
    full_since = get_cursor(db, portal, sel, "full_since")
    after = get_cursor(db, portal, sel, "full_after")
    bar = _bar(sel, progress)
    try:
        if full or changed_since is None or full_started is not None:
            if full or full_started is None or full_since is None:
                full_started, after = str(int(time.time())), None
                full_since = str(portal_now(client, db, portal))
                with db.atomic():
                    set_cursor(db, portal, sel, "full_started", full_started)
                    set_cursor(db, portal, sel, "full_since", full_since)
                    set_cursor(db, portal, sel, "full_after", None)
            report.mode = "resumed" if after else "full"
            for page in source.full(client, ctx, after_id=after):
                _save_page(db, page, (portal, sel, "full_after", page.last_id) if page.last_id else None, report, bar)
            with db.atomic():
                gone = [
                    r["source_id"]
                    for r in db.query(
                        "select source_id from tickets where portal = ? and source = ? and selector = ?"
                        " and coalesce(deleted, 0) = 0 and synced_at < ?",
                        [portal, source.source, sel, int(full_started)],
                    )
                ]
                report.deleted = mark_deleted(db, portal, source.source, gone)
                set_cursor(db, portal, sel, "changed_since", full_since)
                for name in ("full_started", "full_since", "full_after"):
                    set_cursor(db, portal, sel, name, None)
        else:
            report.mode = "incremental"
            since = int(changed_since) - overlap
            for page in source.incremental(client, ctx, since):
                _save_page(db, page, None, report, bar)
            started = ctx.portal_now
            if started is None:  # the source did not ask the portal's time while listing
                started = portal_now(client, db, portal) - int(time.monotonic() - t0) - 1
            total = source.count(client)
            stored = _stored(db, portal, source.source, sel)
            if total is not None and total != len(stored):
                gone, missing = source.reconcile(client, stored)
                report.notes.append(
                    f"portal has {total}, store {len(stored)}: {len(gone)} gone, {len(missing)} fetched"
                )
                report.deleted = mark_deleted(db, portal, source.source, gone)
                for page in source.fetch_ids(client, ctx, missing):
                    _save_page(db, page, None, report, bar)
            with db.atomic():
                set_cursor(db, portal, sel, "changed_since", started)
    finally:
        if bar is not None:
            bar.close()
        report.requests = getattr(client, "requests_sent", 0) - before
        report.seconds = time.monotonic() - t0
    return report


def _bar(selector: str, enabled: bool):
    """A tqdm bar on a terminal; nothing when stderr is piped or progress is off."""
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(desc=selector, unit=" tickets", file=sys.stderr, leave=True)


# --- many sources -----------------------------------------------------------------------------------


def run_sync(
    client,
    db,
    selectors=None,
    config: dict | None = None,
    full: bool = False,
    progress: bool = False,
    overlap: int = OVERLAP,
    directory: bool | None = None,
) -> list[SourceReport]:
    """Sync ``selectors`` (default: the config's ``sources``) of the client's portal into ``db``.

    ``directory``: refresh users/departments/clock/calendar (default: on a full sync, or when the
    last refresh is older than a day). Raises ``SelectorError`` for a bad selector before any call,
    ``SyncBusy`` when another process is syncing the same portal, ``AuthError`` when the portal
    refuses the credentials; any other API error stops only its selector (``report.error``).
    """
    config = config if config is not None else b24config.load_config()
    selectors = list(selectors or configured_selectors(config) or ["tasks"])
    sources = [get_source(s, config) for s in selectors]  # refuse bad selectors before any call
    portal = client.portal_id
    with portal_lease(db, portal):
        last = get_setting(db, portal, "directory_synced_at")
        if directory or (directory is None and (full or not last or time.time() - last > DIRECTORY_MAX_AGE)):
            sync_directory(client, db, portal, config)
        reports = []
        with naive_zone(api_zone(db, portal)):
            _run_sources(client, db, portal, sources, config, full, overlap, progress, reports)
        return reports


def api_zone(db, portal: str):
    """The zone a portal writes naive date strings in: its server's (DOCS api-reference/data-types.md),
    the zone the directory sync derived from ``server.time`` (setting ``portal_timezone``), else the
    bare ``server.time`` offset; None (UTC) before the first directory sync."""
    name = get_setting(db, portal, "portal_timezone")
    try:
        if isinstance(name, str) and name:
            return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        pass
    off = get_setting(db, portal, "portal_utc_offset")
    return dt_timezone(timedelta(seconds=int(off))) if isinstance(off, (int, float)) else None


def _run_sources(client, db, portal, sources, config, full, overlap, progress, reports) -> None:
    """Each selector in turn; a malformed answer (``ShapeError``) re-reads its selector."""
    for src in sources:
        for attempt in range(SHAPE_RETRIES + 1):
            try:
                reports.append(
                    sync_source(client, db, portal, src, config, full=full, overlap=overlap, progress=progress)
                )
            except AuthError:
                raise  # every other selector would fail the same way
            except ShapeError as exc:
                # a malformed 200: nothing of it was written and no cursor moved; the selector
                # is read again (a resumed full sync, or the same incremental window)
                log.warning("%s: %s (attempt %d of %d)", src.selector.raw, exc, attempt + 1, SHAPE_RETRIES + 1)
                if attempt < SHAPE_RETRIES:
                    time.sleep(SHAPE_PAUSE * (attempt + 1))
                    continue
                reports.append(SourceReport(src.selector.raw, mode="failed", error=str(exc)))
            except B24Error as exc:  # this selector stops; the others still run
                log.warning("%s: %s", src.selector.raw, exc)
                reports.append(SourceReport(src.selector.raw, mode="failed", error=str(exc)))
            break


def refresh_tickets(
    client, db, selector: str, ids, config: dict | None = None, saved: set[str] | None = None, skip_unchanged=()
) -> int:
    """Re-read the given tickets of ``selector`` now (an event said they changed); returns how many
    were saved. Ids the portal no longer shows under the selector are skipped; those saved (or seen
    unchanged) are added to ``saved`` when given. Ids in ``skip_unchanged`` whose row is as stored
    get no detail reads (where the source can tell: tasks, CRM)."""
    source = get_source(selector, config)
    ctx = SyncContext(
        portal=client.portal_id, db=db, config=config or {}, skip_unchanged=frozenset(str(i) for i in skip_unchanged)
    )
    report = SourceReport(selector)
    with naive_zone(api_zone(db, client.portal_id)):
        for page in source.fetch_ids(client, ctx, [str(i) for i in ids]):
            if page.bundles:
                _save_page(db, page, None, report, None)
            if saved is not None:
                saved.update(b.ticket.source_id for b in page.bundles)
                saved.update(page.unchanged)
    return report.saved


def forget_tickets(db, portal: str, selector: str, ids, config: dict | None = None) -> int:
    """Mark tickets deleted (an ``ON...DELETE`` event); returns how many were live."""
    return mark_deleted(db, portal, get_source(selector, config).source, [str(i) for i in ids])


if __name__ == "__main__":  # python -m b24desk.sync: the old alias of ``python -m web.cli sync`` (same options)
    import os

    os.execv(sys.executable, [sys.executable, "-m", "web.cli", "sync", *sys.argv[1:]])
