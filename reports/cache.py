"""A small in-process memo for report computations, invalidated by any write to the store.

The engine recomputes a month from the event log on every call (about a second on a
100k-ticket store, bench/pages.py), while a dashboard is viewed far more often than the store
changes. A result is reused only while the store is byte-for-byte the one it was computed from:
the key includes the SQLite file's and its WAL's (mtime, size), which every commit by any process
(sync, settings, events) changes. So a cached answer is never stale, only sometimes recomputed
when an unrelated write happened.
"""
from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict

MAX_ENTRIES = 64


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


class Memo:
    def __init__(self, max_entries: int = MAX_ENTRIES):
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._busy: dict = {}
        self.max_entries = max_entries
        self.hits = self.misses = 0

    def get_or_compute(self, db_path: str, key, compute):
        """``compute()`` once per (key, store version); concurrent callers of one key wait for it."""
        full = (json.dumps(key, sort_keys=True, default=str), store_version(db_path))
        with self._lock:
            if full in self._data:
                self._data.move_to_end(full)
                self.hits += 1
                return self._data[full]
            ev = self._busy.get(full)
            if ev is None:
                ev = self._busy[full] = threading.Event()
                owner = True
            else:
                owner = False
        if not owner:
            ev.wait(120)
            with self._lock:
                if full in self._data:
                    self.hits += 1
                    return self._data[full]
            return compute()
        try:
            value = compute()
            with self._lock:
                self.misses += 1
                self._data[full] = value
                while len(self._data) > self.max_entries:
                    self._data.popitem(last=False)
            return value
        finally:
            with self._lock:
                self._busy.pop(full, None)
            ev.set()

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
