"""Many REST calls through ``batch`` (DOCS api-reference/common/batch.md): 50 commands to a request,
in input order, the commands a rate or operating-time limit refused sent again after the client's
own pause for that limit. The one copy of that loop: ``B24Client.call_many`` (raise on the first
error), the sources' detail reads (``sources/fetch.py``: each command's own result *or* error) and
the inbox's object reads all go through :func:`call_mixed`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from .errors import AuthError, B24Error, ShapeError

log = logging.getLogger(__name__)

MAX_BATCH = 50  # commands per batch (batch.md)
LIMIT_CODES = {"OPERATION_TIME_LIMIT", "QUERY_LIMIT_EXCEEDED"}
# A command that failed like this inside a batch may well work a moment later: retried (when the
# caller asks), and if it keeps failing the call raises rather than answer with a hole.
TRANSIENT_CODES = {"INTERNAL_SERVER_ERROR", "ERROR_UNEXPECTED_ANSWER", "HTTP_500", "HTTP_502", "HTTP_503", "HTTP_504"}
TRANSIENT_RETRIES = 4


@dataclass
class Answer:
    result: Any = None
    next: int | None = None
    total: int | None = None
    error: B24Error | None = None


def call_each(
    client,
    method: str,
    params_list: list[dict],
    max_limit_retries: int | None = 8,
    transient_retries: int = TRANSIENT_RETRIES,
) -> list[Answer]:
    """``method`` once per params, 50 to a batch, in input order; per-command errors are returned."""
    return call_mixed(client, [(method, p) for p in params_list], max_limit_retries, transient_retries)


def call_mixed(
    client, calls: list[tuple[str, dict]], max_limit_retries: int | None = 8, transient_retries: int = TRANSIENT_RETRIES
) -> list[Answer]:
    """Each ``(method, params)`` once, packed 50 to a batch whatever the method, in input order.

    Mixing methods in one batch is what keeps a small incremental sync at one request for all
    the details of a handful of tickets. A command's ``AuthError`` raises (the credentials, not
    that command); limit refusals are re-sent after the pause (at most ``max_limit_retries`` times,
    None: as long as the client's own pauses allow), transient failures ``transient_retries`` times.
    """
    out = [Answer() for _ in calls]
    for start in range(0, len(calls), MAX_BATCH):
        todo = list(range(start, min(start + MAX_BATCH, len(calls))))
        limited = failed = 0
        while todo:
            res = client.batch({f"c{i}": calls[i] for i in todo})
            again, limit_err, transient_err = [], None, None
            for i in todo:
                name = f"c{i}"
                err = res.errors.get(name)
                code = err.code.upper() if err is not None else ""
                if isinstance(err, AuthError):
                    raise err  # the credentials, not this command
                if code in LIMIT_CODES:
                    again.append(i)
                    limit_err = err
                    continue
                if code in TRANSIENT_CODES and transient_retries:
                    again.append(i)
                    transient_err = err
                    continue
                if err is None and name not in res.results:
                    raise ShapeError(calls[i][0], f"the batch answer has no result for command {name}")
                out[i] = Answer(res.results.get(name), _int(res.nexts.get(name)), _int(res.totals.get(name)), err)
            if limit_err is not None:
                limited += 1
                if max_limit_retries is not None and limited > max_limit_retries:
                    raise limit_err
                pause = getattr(client, "_handle_nested_limit", None)
                if pause is not None:
                    pause(limit_err, limited)
                else:  # pragma: no cover - other client types
                    time.sleep(min(30.0, 0.5 * 2**limited))
            elif transient_err is not None:
                failed += 1
                if failed > transient_retries:
                    raise transient_err
                log.warning("%s inside a batch: %s; retry %d", transient_err.method, transient_err, failed)
                time.sleep(min(5.0, 0.05 * 2**failed))
            todo = again
    return out


def _int(v) -> int | None:
    try:
        return None if v in (None, "") else int(v)
    except (TypeError, ValueError):
        return None
