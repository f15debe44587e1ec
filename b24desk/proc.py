"""Small helpers the inbox worker, the scheduler and the runtime share (their own module so those
need not import each other): who this process is, and an exception in one short log line."""

from __future__ import annotations

from .leases import owner_id

__all__ = ["owner_id", "short"]


def short(exc: BaseException) -> str:
    """``Type: message``, at most 300 characters (for log lines and stored errors)."""
    return f"{type(exc).__name__}: {exc}"[:300]
