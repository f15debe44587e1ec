"""Batched detail reads for many tickets: one request per 50 tickets per method.

``B24Client.call_many`` raises on the first failing command; a sync must not lose a page because
one task is no longer readable, so ``call_each`` returns each command's own result *or* error.
``pages_each`` follows list methods past their fixed 50-row page (DOCS
settings/how-to-call-rest-api/list-methods-pecularities.md) for the few tickets that need it.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from ..client import MAX_BATCH, PAGE, AuthError, B24Error, ShapeError, brief as _brief

log = logging.getLogger("b24desk.sources")

_LIMIT_CODES = {"OPERATION_TIME_LIMIT", "QUERY_LIMIT_EXCEEDED"}
# A command that failed like this inside a batch may well work a moment later: retried, and if it
# keeps failing the page is abandoned (raised) rather than saved with a hole in a ticket's log.
_TRANSIENT_CODES = {"INTERNAL_SERVER_ERROR", "ERROR_UNEXPECTED_ANSWER", "HTTP_500", "HTTP_502", "HTTP_503",
                    "HTTP_504"}
TRANSIENT_RETRIES = 4


@dataclass
class Answer:
    result: Any = None
    next: int | None = None
    total: int | None = None
    error: B24Error | None = None


def call_each(client, method: str, params_list: list[dict], max_limit_retries: int = 8) -> list[Answer]:
    """``method`` once per params, 50 to a batch, in input order; per-command errors are returned."""
    return call_mixed(client, [(method, p) for p in params_list], max_limit_retries)


def call_mixed(client, calls: list[tuple[str, dict]], max_limit_retries: int = 8) -> list[Answer]:
    """Each ``(method, params)`` once, packed 50 to a batch whatever the method, in input order.

    Mixing methods in one batch is what keeps a small incremental sync at one request for all
    the details of a handful of tickets. Commands refused by a rate/operating-time limit inside
    the batch are sent again after the client's own pause for that limit.
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
                    raise err                           # the credentials, not this ticket
                if code in _LIMIT_CODES:
                    again.append(i)
                    limit_err = err
                    continue
                if code in _TRANSIENT_CODES:
                    again.append(i)
                    transient_err = err
                    continue
                if err is None and name not in res.results:
                    raise ShapeError(calls[i][0], f"the batch answer has no result for command {name}")
                out[i] = Answer(res.results.get(name), _int(res.nexts.get(name)), _int(res.totals.get(name)), err)
            if limit_err is not None:
                limited += 1
                if limited > max_limit_retries:
                    raise limit_err
                pause = getattr(client, "_handle_nested_limit", None)
                if pause is not None:
                    pause(limit_err, limited)
                else:                                   # pragma: no cover - other client types
                    time.sleep(min(30.0, 0.5 * 2 ** limited))
            elif transient_err is not None:
                failed += 1
                if failed > TRANSIENT_RETRIES:
                    raise transient_err
                log.warning("%s inside a batch: %s; retry %d", transient_err.method, transient_err, failed)
                time.sleep(min(5.0, 0.05 * 2 ** failed))
            todo = again
    return out


def _int(v) -> int | None:
    try:
        return None if v in (None, "") else int(v)
    except (TypeError, ValueError):
        return None


def expect_rows(answer: "Answer", method: str, items_key: str | None = None) -> list:
    """Rows of one batched answer checked against the documented shape; an erroring answer has none."""
    if answer.error is not None:
        return []
    return rows_of(answer.result, items_key, method)


def rows_of(result, items_key: str | None = None, method: str = "") -> list:
    """Rows of a successful list answer: a plain list (PHP's empty array may travel as ``[]`` or
    ``{}``), or, where the docs wrap the rows (``{tasks: [...]}``, ``{items: [...]}``), the list under
    ``items_key`` -- always there, even when empty. Any other shape (``null``, a
    string, a map without the key) raises ``ShapeError``: a malformed 200 is never read as
    "nothing there", so no cursor moves past changes that were not read."""
    if isinstance(result, list) and items_key is None:
        rows = result
    elif isinstance(result, dict):
        if items_key is not None and isinstance(result.get(items_key), (list, dict)):
            rows = result[items_key]
            rows = list(rows.values()) if isinstance(rows, dict) else rows
        elif not result and items_key is None:
            rows = []
        elif items_key is None and sum(isinstance(v, list) for v in result.values()) == 1:
            rows = next(v for v in result.values() if isinstance(v, list))
        else:
            raise ShapeError(method, f"expected a list{f' under {items_key!r}' if items_key else ''}, "
                                     f"got {_brief(result)}")
    else:
        raise ShapeError(method, f"expected a list{f' under {items_key!r}' if items_key else ''}, "
                                 f"got {_brief(result)}")
    if not all(isinstance(r, dict) for r in rows):
        raise ShapeError(method, f"expected rows as objects, got {_brief(rows)}")
    return rows


def pages_each(client, method: str, params_list: list[dict], items_key: str | None = None,
               what: str = "") -> list[list]:
    """All rows of a paged list method for each params (``start`` = 0, 50, ... as needed)."""
    return pages_mixed(client, [(method, p, items_key) for p in params_list], what)


def pages_mixed(client, lists: list[tuple[str, dict, str | None]], what: str = "") -> list[list]:
    """All rows of each ``(method, params, items_key)`` list read, several methods per batch.

    A command that errors yields no rows and a warning naming ``what`` (the ticket); the rest of
    the page is kept.
    """
    rows: list[list] = [[] for _ in lists]
    todo = [(i, 0) for i in range(len(lists))]
    while todo:
        answers = call_mixed(client, [(lists[i][0], {**lists[i][1], "start": s}) for i, s in todo])
        again = []
        for (i, s), a in zip(todo, answers):
            method, _, items_key = lists[i]
            if a.error is not None:
                log.warning("%s for %s: %s", method, what.format(i=i) if what else i, a.error)
                continue
            got = rows_of(a.result, items_key, method)
            rows[i].extend(got)
            more = a.next if a.next is not None else (s + PAGE if len(got) >= PAGE else None)
            if got and more is not None and more > s:
                again.append((i, more))
        todo = again
    return rows
