"""Small helpers the inbox worker, the scheduler and the runtime share (their own module so those
need not import each other): who this process is, and an exception in one short log line."""
from __future__ import annotations

import uuid

from .store import lease_owner


def owner_id() -> str:
    """``host:pid:random``: lets a restarted process reclaim what a dead one held."""
    return lease_owner(uuid.uuid4().hex[:8])


def short(exc: BaseException) -> str:
    """``Type: message``, at most 300 characters (for log lines and stored errors)."""
    return f"{type(exc).__name__}: {exc}"[:300]
