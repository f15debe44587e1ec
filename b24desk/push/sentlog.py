"""The exactly-once sent-log of pushes (table ``push_log``, migration ``store.m_push_001``).

One row per delivery, keyed by (portal, report, period, channel, target). The protocol:

1. ``begin`` writes the row as ``pending`` -- with the exact method and payload about to be sent
   and a ``marker`` embedded in the content -- and commits *before* the portal is called;
2. the call is made;
3. ``mark_sent`` records the portal's answer (message id, file id...).

A process killed between 2 and 3 leaves a ``pending`` row. The next run must not send it blind:
it first asks the portal whether the delivery arrived (the caller's per-channel check: the
marker in the chat's recent messages, the feed post, the Disk file name; a notification with a
``TAG`` simply replaces itself) and then either adopts what it finds or re-sends the stored
payload. A ``sent`` row is never sent again; a ``failed`` row (the portal refused the call, so
nothing arrived) is retried by the next run -- always after a rate limit (503
``QUERY_LIMIT_EXCEEDED``, 429), and up to ``MAX_ATTEMPTS`` calls after any other refusal.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from sqlite_utils import Database

PENDING, SENT, FAILED = "pending", "sent", "failed"
MAX_ATTEMPTS = 5
# Refusals that say "not now" rather than "never": a row failed by these is retried by every
# later run, however many attempts it took (a 503 storm must never make a push skip).
TRANSIENT = ("QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT", "OVERLOAD_LIMIT", "HTTP 503")
_PK = ("portal", "report", "period", "channel", "target")


@dataclass(frozen=True)
class Key:
    """Which delivery: ``report`` is ``daily|weekly|monthly`` (or ``alert``), ``period`` its label,
    ``channel`` ``notify|chat|feed|disk``, ``target`` the recipient (``user:5``, ``chat:12``,
    ``dept:3``, ``portal``)."""

    portal: str
    report: str
    period: str
    channel: str
    target: str

    def where(self) -> tuple[str, list]:
        return " and ".join(f"{c} = ?" for c in _PK), [self.portal, self.report, self.period, self.channel, self.target]

    @property
    def marker(self) -> str:
        """A short stable token for this delivery, put into what is sent so a later run can find it."""
        raw = "|".join((self.portal, self.report, self.period, self.channel, self.target))
        return "b24d-" + hashlib.sha1(raw.encode()).hexdigest()[:12]


def _decode(row: dict | None) -> dict | None:
    if row is None:
        return None
    row = dict(row)
    for k in ("payload", "result"):
        if row.get(k):
            row[k] = json.loads(row[k])
    return row


def get(db: Database, key: Key) -> dict | None:
    where, args = key.where()
    rows = list(db.query(f"select * from push_log where {where}", args))
    return _decode(rows[0]) if rows else None


def begin(db: Database, key: Key, method: str, payload: dict, *, commit: bool = True) -> dict:
    """Record the intent to send (``pending``) and commit; an existing row is returned unchanged,
    so the stored payload -- not a re-rendered one -- is what a retry sends.

    ``commit=False`` leaves the commit to the caller, who writes the intent in the same
    transaction as what caused it (the alert state that changed: an outbox)."""
    now = time.time()
    sql = (
        "insert or ignore into push_log (portal, report, period, channel, target, state, marker,"
        " method, payload, attempts, created_at, updated_at) values (?,?,?,?,?,?,?,?,?,0,?,?)"
    )
    args = [
        key.portal,
        key.report,
        key.period,
        key.channel,
        key.target,
        PENDING,
        key.marker,
        method,
        json.dumps(payload, ensure_ascii=False),
        now,
        now,
    ]
    if commit:
        with db.conn:
            db.execute(sql, args)
    else:
        db.execute(sql, args)
    return get(db, key)


def attempt(db: Database, key: Key) -> None:
    """Count one call about to be made; the row goes (back) to ``pending`` until it is marked."""
    where, args = key.where()
    with db.conn:
        db.execute(
            f"update push_log set state = ?, attempts = coalesce(attempts, 0) + 1, updated_at = ? where {where}",
            [PENDING, time.time(), *args],
        )


def mark_sent(db: Database, key: Key, result) -> None:
    where, args = key.where()
    now = time.time()
    with db.conn:
        db.execute(
            f"update push_log set state = ?, result = ?, error = null, updated_at = ?, sent_at = ? where {where}",
            [SENT, json.dumps(result, ensure_ascii=False, default=str), now, now, *args],
        )


def mark_failed(db: Database, key: Key, error: str) -> None:
    """The portal refused the call (nothing arrived): a later run may retry it."""
    where, args = key.where()
    with db.conn:
        db.execute(
            f"update push_log set state = ?, error = ?, updated_at = ? where {where}",
            [FAILED, str(error)[:2000], time.time(), *args],
        )


def note_error(db: Database, key: Key, error: str) -> None:
    """An ambiguous failure (the call may or may not have arrived): stays ``pending``."""
    where, args = key.where()
    with db.conn:
        db.execute(
            f"update push_log set error = ?, updated_at = ? where {where}", [str(error)[:2000], time.time(), *args]
        )


def gave_up(row: dict) -> bool:
    """A ``failed`` row refused for good: ``MAX_ATTEMPTS`` calls, the last one not a rate limit."""
    return (
        row["state"] == FAILED
        and (row.get("attempts") or 0) >= MAX_ATTEMPTS
        and not any(code in (row.get("error") or "") for code in TRANSIENT)
    )


def unfinished(db: Database, portal: str | None = None) -> list[dict]:
    """``pending`` rows and ``failed`` rows not given up on, oldest first."""
    sql = (
        "select * from push_log where state in (?, ?)" + (" and portal = ?" if portal else "") + " order by created_at"
    )
    rows = [_decode(r) for r in db.query(sql, [PENDING, FAILED] + ([portal] if portal else []))]
    return [r for r in rows if not gave_up(r)]


def entries(db: Database, portal: str, report: str | None = None, period: str | None = None) -> list[dict]:
    sql, args = "select * from push_log where portal = ?", [portal]
    if report:
        sql, args = sql + " and report = ?", args + [report]
    if period:
        sql, args = sql + " and period = ?", args + [period]
    return [_decode(r) for r in db.query(sql + " order by created_at, channel, target", args)]


def key_of(row: dict) -> Key:
    return Key(*(row[c] for c in _PK))
