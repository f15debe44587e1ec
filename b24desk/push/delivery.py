"""Exactly-once delivery of one push over the sent-log (``sentlog.py``).

``Deliverer.deliver(key, method, payload)`` sends one call at most once, whatever happens:

* the intent is committed (``pending``, with the exact payload) before the call, the answer after;
* a ``sent`` row is never sent again;
* the portal *refused* the call (4xx, 401, 503 ``QUERY_LIMIT_EXCEEDED``, 429): nothing arrived, so
  the call is retried after a back-off (rate limits) or the row is marked ``failed`` and a later run
  retries it -- never skipped;
* the outcome is *unknown* (a 500, a lost connection, a timeout, or a process killed mid-call,
  which leaves a ``pending`` row with ``attempts > 0``): before sending again we look at what the
  portal has, per channel, and adopt what we find:

  - ``notify`` (``im.notify.system.add`` with a ``TAG``): sending again is harmless -- a
    notification with the same TAG replaces the earlier one (DOCS
    api-reference/chats/notifications/im-notify-system-add.md), so the user sees one;
  - ``chat`` (``im.message.add``): the chat's recent messages (``im.dialog.messages.get``, pages
    back to the row's creation) are searched for the delivery's marker;
  - ``feed`` (``log.blogpost.add``): the posts visible to the app for that ``DEST``
    (``log.blogpost.get`` ``LOG_RIGHTS``) are searched for the marker;
  - ``disk`` (``disk.folder.uploadfile``): the file name is the marker; the folder is listed by
    ``NAME`` (``disk.folder.getchildren``). An upload refused because the name exists is the same
    case.

  If the portal cannot be asked (the check itself fails), the row stays ``pending`` and nothing is
  sent: the next run asks again.

The caller passes two clients: ``reader`` (the client's own retries, for reads and look-ups) and
``writer`` built with ``max_retries=0``, so no write is ever retried blind by the transport.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import AuthError, B24Error
from ..model import parse_time
from . import sentlog

log = logging.getLogger(__name__)

RATE_CODES = {"QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT", "OVERLOAD_LIMIT"}
NAME_TAKEN = {"DISK_OBJ_22000"}
FIND_PAGES = 10


@dataclass
class Outcome:
    key: sentlog.Key
    state: str  # sent | adopted | already | failed | pending | dry-run
    method: str = ""
    payload: dict | None = None
    result: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.state in ("sent", "adopted", "already", "dry-run")


def refused(exc: B24Error) -> bool:
    """The portal turned the call away, so nothing it asked for happened."""
    if isinstance(exc, AuthError) or exc.code.upper() in RATE_CODES:
        return True
    return exc.status is not None and 400 <= exc.status < 500


def rate_limited(exc: B24Error) -> bool:
    return exc.code.upper() in RATE_CODES or exc.status == 503


class Deliverer:
    def __init__(
        self,
        db,
        reader,
        writer=None,
        *,
        retries: int = 6,
        backoff: float = 2.0,
        backoff_cap: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.db, self.reader, self.writer = db, reader, writer or reader
        self.retries, self.backoff, self.backoff_cap, self.sleep = retries, backoff, backoff_cap, sleep

    # -- what the portal already has --------------------------------------------------------------
    def find(self, channel: str, method: str, payload: dict, marker: str, since: float):
        """The portal's record of this delivery if it arrived, else None. Raises B24Error when
        the portal cannot be asked (then nobody may tell whether to send)."""
        if channel == "chat":
            return self._find_message(str(payload.get("DIALOG_ID")), marker, since)
        if channel == "feed":
            return self._find_post(payload.get("DEST") or ["UA"], marker)
        if channel == "disk":
            return self._find_file(payload.get("id"), (payload.get("data") or {}).get("NAME"))
        return None

    def _find_message(self, dialog: str, marker: str, since: float):
        last_id = None
        for _ in range(FIND_PAGES):
            params = {"DIALOG_ID": dialog, "LIMIT": 50}
            if last_id is not None:
                params["LAST_ID"] = last_id
            res = self.reader.call("im.dialog.messages.get", params) or {}
            msgs = res.get("messages") or []
            for m in msgs:
                if marker in (m.get("text") or "") or marker in json.dumps(m.get("params") or {}, ensure_ascii=False):
                    return {"message_id": m["id"], "adopted": True}
            if len(msgs) < 50:
                return None
            oldest = min(msgs, key=lambda m: int(m["id"]))
            at = parse_time(oldest.get("date"))
            if at is not None and at < since - 600:
                return None
            last_id = int(oldest["id"])
        return None

    def _find_post(self, dest: list, marker: str):
        start = 0
        for _ in range(FIND_PAGES):
            data = self.reader.call_raw("log.blogpost.get", {"LOG_RIGHTS": list(dest), "start": start})
            for post in data.get("result") or []:
                if marker in (post.get("DETAIL_TEXT") or ""):
                    return {"post_id": post.get("ID"), "adopted": True}
            if data.get("next") is None:
                return None
            start = data["next"]
        return None

    def _find_file(self, folder, name):
        if not folder or not name:
            return None
        rows = self.reader.call("disk.folder.getchildren", {"id": folder, "filter": {"NAME": name}}) or []
        for r in rows:
            if r.get("NAME") == name:
                return dict(r, adopted=True)
        return None

    # -- one delivery ----------------------------------------------------------------------------------
    def deliver(self, key: sentlog.Key, method: str, payload: dict) -> Outcome:
        db = self.db
        row = sentlog.get(db, key)
        if row and row["state"] == sentlog.SENT:
            return Outcome(key, "already", row["method"], row["payload"], row["result"])
        if row is None:
            row = sentlog.begin(db, key, method, payload)
        method, payload = row["method"], row["payload"]
        if sentlog.gave_up(row):
            return Outcome(
                key, "failed", method, payload, error=f"gave up after {row['attempts']} attempts: {row['error']}"
            )
        unsure = row["state"] == sentlog.PENDING and (row["attempts"] or 0) > 0
        idempotent = key.channel == "notify"
        for n in range(self.retries + 1):
            if n:
                delay = min(self.backoff_cap, self.backoff * 2 ** (n - 1))
                self.sleep(delay / 2 + random.random() * delay / 2)
            if unsure and not idempotent:
                try:
                    found = self.find(key.channel, method, payload, key.marker, row["created_at"])
                except B24Error as exc:
                    sentlog.note_error(db, key, f"could not check the portal: {exc}")
                    return Outcome(key, "pending", method, payload, error=f"could not check the portal: {exc}")
                if found is not None:
                    sentlog.mark_sent(db, key, found)
                    return Outcome(key, "adopted", method, payload, found)
            sentlog.attempt(db, key)
            try:
                result = self.writer.call(method, payload)
            except B24Error as exc:
                if exc.code.upper() in NAME_TAKEN:
                    unsure = True  # the name is ours: a lost answer of an earlier upload
                    continue
                if refused(exc):
                    if rate_limited(exc) and n < self.retries:
                        log.info("%s refused (%s), retrying", method, exc.code)
                        continue
                    sentlog.mark_failed(db, key, str(exc))
                    return Outcome(key, "failed", method, payload, error=str(exc))
                log.warning("%s: outcome unknown (%s)", method, exc)
                sentlog.note_error(db, key, str(exc))
                unsure = True
                continue
            if result is False or result is None:
                sentlog.mark_failed(db, key, "the portal created nothing (result false)")
                return Outcome(key, "failed", method, payload, result, "the portal created nothing")
            sentlog.mark_sent(db, key, result)
            return Outcome(key, "sent", method, payload, result)
        return Outcome(key, "pending", method, payload, error="outcome unknown after retries; the next run checks")

    def resume(self, portal: str, report: str | None = None) -> list[Outcome]:
        """Finish what earlier runs left ``pending`` or ``failed`` (with attempts left)."""
        out = []
        for row in sentlog.unfinished(self.db, portal):
            if report and row["report"] != report:
                continue
            out.append(self.deliver(sentlog.key_of(row), row["method"], row["payload"]))
        return out
