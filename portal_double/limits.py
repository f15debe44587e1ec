"""Request accounting of the double: the leaky bucket, per-method operating time, fault injection, stats.

Both limits follow DOCS limits.md: every HTTP request (a whole ``batch`` counts once) raises a
counter that drains ``drain_per_s`` per second and answers 503 ``QUERY_LIMIT_EXCEEDED`` above
``bucket_size``; a method's execution time is summed in ten one-minute baskets and a call is refused
with 429 ``OPERATION_TIME_LIMIT`` when the sum already exceeds the limit *before* the call.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field


class LeakyBucket:
    """Counter that rises by 1 per request and drains continuously; over ``size`` a request is refused."""

    def __init__(self, size: int = 50, drain_per_s: float = 2.0, clock=time.monotonic):
        self.size = size
        self.drain_per_s = drain_per_s
        self._clock = clock
        self._level = 0.0
        self._at = clock()
        self._lock = threading.Lock()

    def _drain(self) -> None:
        now = self._clock()
        self._level = max(0.0, self._level - (now - self._at) * self.drain_per_s)
        self._at = now

    def hit(self) -> bool:
        """Count one request; False when it must be refused (the refused request is not counted)."""
        with self._lock:
            self._drain()
            if self._level + 1 > self.size:
                return False
            self._level += 1
            return True

    @property
    def level(self) -> float:
        with self._lock:
            self._drain()
            return self._level

    def reset(self) -> None:
        with self._lock:
            self._level = 0.0
            self._at = self._clock()


class OperatingTime:
    """Per (credential, method) execution time in ten one-minute baskets (DOCS limits.md)."""

    WINDOW = 600

    def __init__(self, limit: float = 480.0, clock=time.time):
        self.limit = limit
        self._clock = clock
        # key -> deque of [basket_start, seconds]; a basket starts at its first call of that minute
        self._baskets: dict[tuple, deque] = {}
        self._lock = threading.Lock()

    def _prune(self, key, now) -> deque:
        dq = self._baskets.setdefault(key, deque())
        while dq and dq[0][0] + self.WINDOW <= now:
            dq.popleft()
        return dq

    def check(self, key) -> tuple[bool, float, int | None]:
        """(allowed, operating, reset_at) before a call."""
        with self._lock:
            now = self._clock()
            dq = self._prune(key, now)
            total = sum(b[1] for b in dq)
            reset_at = int(dq[0][0] + self.WINDOW) if dq else None
            return total <= self.limit, total, reset_at

    def add(self, key, seconds: float) -> tuple[float, int]:
        """Record a call's cost; returns (operating, operating_reset_at) after it."""
        with self._lock:
            now = self._clock()
            dq = self._prune(key, now)
            if dq and now - dq[-1][0] < 60:
                dq[-1][1] += seconds
            else:
                dq.append([now, seconds])
            total = sum(b[1] for b in dq)
            return total, int(dq[0][0] + self.WINDOW)

    def reset(self) -> None:
        with self._lock:
            self._baskets.clear()


@dataclass
class _Fault:
    status: int
    error: str
    description: str
    method: str | None
    remaining: int


class Faults:
    """Injected failures: ``fail_next(n, status, error, method)`` fails the next n matching calls.

    A fault without ``method`` hits the next n HTTP requests as a whole; with ``method`` it hits
    the next n calls of that method, also inside a batch (there it lands in ``result_error``).
    """

    def __init__(self):
        self._faults: list[_Fault] = []
        self._malformed: list[list] = []
        self._lock = threading.Lock()

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        error: str = "QUERY_LIMIT_EXCEEDED",
        method: str | None = None,
        description: str | None = None,
    ) -> None:
        with self._lock:
            self._faults.append(
                _Fault(
                    status, error, description or _DESCRIPTIONS.get(error, error), method.lower() if method else None, n
                )
            )

    def take(self, method: str | None) -> _Fault | None:
        """Consume a fault for this request (method=None) or this method call."""
        with self._lock:
            for f in self._faults:
                if f.remaining > 0 and f.method == (method.lower() if method else None):
                    f.remaining -= 1
                    if f.remaining == 0:
                        self._faults.remove(f)
                    return f
        return None

    def malform_next(self, n: int = 1, method: str = "", result=None) -> None:
        """The next n calls of ``method`` answer 200 with ``result`` (default ``null``) in place of
        the documented shape: the malformed answer a portal under strain may give."""
        with self._lock:
            self._malformed.append([method.lower(), n, result])

    def take_malformed(self, method: str):
        """``(True, result)`` when this call of ``method`` is to be malformed, else ``(False, None)``."""
        with self._lock:
            for m in self._malformed:
                if m[1] > 0 and m[0] == method.lower():
                    m[1] -= 1
                    if m[1] == 0:
                        self._malformed.remove(m)
                    return True, m[2]
        return False, None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._malformed.clear()


_DESCRIPTIONS = {
    "QUERY_LIMIT_EXCEEDED": "Too many requests",
    "OPERATION_TIME_LIMIT": "Method is blocked due to operation time limit.",
    "INTERNAL_SERVER_ERROR": "Internal server error",
    "expired_token": "The access token provided has expired.",
    "invalid_token": "The access token provided is invalid.",
    "NO_AUTH_FOUND": "Wrong authorization data",
    "OVERLOAD_LIMIT": "REST API is blocked due to overload.",
}


@dataclass
class Stats:
    """What reached the double: HTTP requests, and calls per method (batch sub-calls under their own name)."""

    requests: int = 0
    by_method: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)  # error code -> count of refused calls
    log: deque = field(default_factory=lambda: deque(maxlen=2000))  # (method, params) of recent calls

    def reset(self) -> None:
        self.requests = 0
        self.by_method.clear()
        self.refused.clear()
        self.log.clear()
