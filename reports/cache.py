"""An in-process memo for report computations: exact on request, else stale-while-revalidate.

The engine recomputes a month from the event log on every call (about a second on a
100k-ticket store, bench/pages.py), and the store changes all the time (the inbox worker writes on
every portal event, the scheduler syncs every 15 minutes), so a memo invalidated by any write
would leave most views cold. Dashboards elsewhere (Zendesk Explore, Jira dashboards) refresh on a
schedule; ours is seconds-to-minutes fresh:

* An entry remembers the store version it was computed from: the SQLite file's and its WAL's
  (mtime, size), which every commit by any process changes.
* Same version: served (a hit).
* **Exact** callers (``/api/kpi``, exports: they must equal ``flask kpi``) never get an entry of an
  older version: they compute (once per key and version; concurrent callers wait for it).
* Other callers (the dashboard, the drilldown behind its numbers) get an entry of an older version
  at once, marked stale, while **one** background thread per key recomputes it, as long as the
  entry was last known current no more than ``max_stale`` seconds ago (default 10 minutes:
  ``known`` is when its computation started, or when a later lookup saw the store unchanged).
  Beyond that the request computes synchronously, so nobody is shown figures older than that bound.

Computations must not use the request's connection (a background one outlives the request):
``compute`` opens its own.

**By what changed.** A caller that passes ``scope=(portal, lo, hi)`` (a report of ``[from, to)``:
``lo`` = the previous period's start minus the repeat-contact window, ``hi`` = ``to``) keeps its
entry across store writes that cannot touch it: the entry remembers the store's change-journal
position (``kpi_journal``, written by triggers: b24desk/store.py) and, when the store's version
moved, one indexed read tells whether any later write met that portal's window. None did: the
entry is still exact and served as a hit, ``/api/kpi`` included. A write to another portal, to
tickets whose lives lie outside the window, or to settings no report reads invalidates nothing.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAX_ENTRIES = 64
MAX_STALE_SECONDS = 600.0


def store_version(path: str) -> tuple:
    """(mtime, size) of the file and of a non-empty WAL: an empty WAL is re-created by every
    first connection, so only its content counts."""
    out = []
    for p in (path, path + "-wal"):
        try:
            st = os.stat(p)
        except OSError:
            out.append(None)
            continue
        out.append((st.st_mtime_ns, st.st_size) if st.st_size else None)
    return tuple(out)


def _journal(db_path: str, scope=None, since: int | None = None):
    """``store.journal_state`` on a short read-only connection; None when it cannot say."""
    from b24desk.store import journal_state

    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        if scope is None:
            return journal_state(conn)
        portal, lo, hi = scope
        return journal_state(conn, portal, since, lo, hi)
    except sqlite3.Error:
        return None
    finally:
        conn.close()


@dataclass
class _Entry:
    value: object
    version: tuple
    known: float  # when the value was last known to match the store (monotonic clock)
    seq: int | None = None  # the change journal's position when the value was computed (or re-checked)
    computed: float = 0.0  # when its computation started (for ``ttl``)


@dataclass(frozen=True)
class Served:
    value: object
    stale: bool = False
    age: float = 0.0  # seconds since a stale value was last known current


class Memo:
    def __init__(self, max_entries: int = MAX_ENTRIES, max_stale: float = MAX_STALE_SECONDS, clock=time.monotonic):
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._busy: dict = {}  # (key, version) -> Event, a computation under way
        self._refreshing: dict = {}  # key -> Thread, a background recompute under way
        self.max_entries = max_entries
        self.max_stale = max_stale
        self.clock = clock
        self.hits = self.misses = self.stale_hits = 0
        self.kept = 0  # hits after a store write that did not touch the scope

    def get_or_compute(self, db_path: str, key, compute, *, exact: bool = False, scope=None):
        return self.lookup(db_path, key, compute, exact=exact, scope=scope).value

    def lookup(
        self,
        db_path: str,
        key,
        compute,
        *,
        exact: bool = False,
        scope=None,
        ttl: float | None = None,
        versioned: bool = True,
    ) -> Served:
        """The value of ``key`` for the store at ``db_path`` (see the module's policy). With
        ``ttl``, a value computed more than ``ttl`` seconds ago is also stale though the store did
        not change (figures that depend on the clock, like the dashboard's "now" panel); with
        ``versioned=False`` too, writes to the store do not make it stale before that."""
        k = (str(db_path), json.dumps(key, sort_keys=True, default=str))
        version = store_version(db_path)
        now = self.clock()

        def current(e) -> bool:
            if ttl is not None and now - e.computed > ttl:
                return False
            return e.version == version or (not versioned and ttl is not None)

        with self._lock:
            e = self._data.get(k)
            if e is not None and current(e):
                self._data.move_to_end(k)
                e.known = max(e.known, now)
                self.hits += 1
                return Served(e.value)
        fresh_enough = ttl is None or e is None or now - e.computed <= ttl
        if e is not None and scope is not None and e.seq is not None and fresh_enough:
            state = _journal(db_path, scope, e.seq)  # did any write since meet the scope?
            if state is not None and not state[1]:
                with self._lock:
                    if self._data.get(k) is e:
                        if e.seq is None or state[0] >= e.seq:
                            e.seq, e.version = state[0], version
                        e.known = max(e.known, now)
                        self.hits += 1
                        self.kept += 1
                        return Served(e.value)
        with self._lock:
            e = self._data.get(k)
            if e is not None:
                self._data.move_to_end(k)
                if current(e):
                    e.known = max(e.known, now)
                    self.hits += 1
                    return Served(e.value)
                age = now - e.known
                if not exact and age <= self.max_stale:
                    self.stale_hits += 1
                    if k not in self._refreshing:
                        th = threading.Thread(
                            target=self._refresh,
                            args=(k, db_path, compute, scope),
                            name="reports-memo-refresh",
                            daemon=True,
                        )
                        self._refreshing[k] = th
                        th.start()
                    return Served(e.value, True, age)
        return Served(self._compute(k, version, now, compute, scope))

    def _compute(self, k, version, started: float, compute, scope=None):
        """``compute()`` once per (key, version); concurrent callers of that pair wait for it."""
        with self._lock:
            ev = self._busy.get((k, version))
            owner = ev is None
            if owner:
                ev = self._busy[(k, version)] = threading.Event()
        if not owner:
            ev.wait(120)
            with self._lock:
                e = self._data.get(k)
                if e is not None and e.version == version:
                    self.hits += 1
                    return e.value
            return compute()
        try:
            state = _journal(k[0], None) if scope is not None else None  # read before the data: conservative
            value = compute()
            with self._lock:
                self.misses += 1
                old = self._data.get(k)
                if old is None or old.known <= started:  # never replace a newer result
                    self._data[k] = _Entry(value, version, started, state[0] if state else None, started)
                    self._data.move_to_end(k)
                while len(self._data) > self.max_entries:
                    self._data.popitem(last=False)
            return value
        finally:
            with self._lock:
                self._busy.pop((k, version), None)
            ev.set()

    def _refresh(self, k, db_path: str, compute, scope=None) -> None:
        try:
            self._compute(k, store_version(db_path), self.clock(), compute, scope)
        except Exception:  # the stale entry stays; the next stale hit retries
            log.exception("background recompute of %s failed", k[1][:200])
        finally:
            with self._lock:
                self._refreshing.pop(k, None)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait for the background recomputes under way (tests, benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                threads = list(self._refreshing.values())
            if not threads:
                return True
            for th in threads:
                th.join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                with self._lock:
                    return not self._refreshing

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class Pool:
    """A few objects kept between requests to be taken, brought up to date and put back (the
    engine passes of reports/data.py, which ``ReportPass.refresh`` updates with the tickets
    written since). Taken objects are out of the pool until put back, so no two threads share one;
    the least recently put goes first. With ``weight`` (an object's size, e.g. its tickets), the
    pool holds at most ``max_weight`` in all, and nothing heavier is kept."""

    def __init__(self, max_entries: int = 2, max_weight: float | None = None, weight=None):
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries
        self.max_weight = max_weight
        self.weight = weight

    def take(self, key):
        with self._lock:
            got = self._data.pop(key, None)
            return None if got is None else got[0]

    def put(self, key, value) -> bool:
        """Keep ``value`` under ``key``; False when it weighs more than the pool may hold."""
        w = self.weight(value) if self.weight is not None else 0
        if self.max_weight is not None and w > self.max_weight:
            return False
        with self._lock:
            self._data[key] = (value, w)
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries or (
                self.max_weight is not None and sum(x[1] for x in self._data.values()) > self.max_weight
            ):
                self._data.popitem(last=False)
        return True

    def values(self) -> list:
        with self._lock:
            return [v for v, _w in self._data.values()]

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
