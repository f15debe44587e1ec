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

from ..client import MAX_BATCH, PAGE, B24Error

log = logging.getLogger("b24desk.sources")

_LIMIT_CODES = {"OPERATION_TIME_LIMIT", "QUERY_LIMIT_EXCEEDED"}


@dataclass
class Answer:
    result: Any = None
    next: int | None = None
    total: int | None = None
    error: B24Error | None = None


def call_each(client, method: str, params_list: list[dict], max_limit_retries: int = 8) -> list[Answer]:
    """``method`` once per params, 50 to a batch, in input order; per-command errors are returned.

    Commands refused by a rate/operating-time limit inside the batch are sent again after the
    client's own pause for that limit.
    """
    out = [Answer() for _ in params_list]
    for start in range(0, len(params_list), MAX_BATCH):
        todo = list(range(start, min(start + MAX_BATCH, len(params_list))))
        attempt = 0
        while todo:
            res = client.batch({f"c{i}": (method, params_list[i]) for i in todo})
            again = []
            for i in todo:
                name = f"c{i}"
                err = res.errors.get(name)
                if err is not None and err.code.upper() in _LIMIT_CODES:
                    again.append(i)
                    continue
                nxt = res.nexts.get(name)
                tot = res.totals.get(name)
                out[i] = Answer(res.results.get(name), _int(nxt), _int(tot), err)
            if again:
                attempt += 1
                if attempt > max_limit_retries:
                    raise res.errors[f"c{again[0]}"]
                pause = getattr(client, "_handle_nested_limit", None)
                if pause is not None:
                    pause(res.errors[f"c{again[0]}"], attempt)
                else:                                   # pragma: no cover - other client types
                    time.sleep(min(30.0, 0.5 * 2 ** attempt))
            todo = again
    return out


def _int(v) -> int | None:
    try:
        return None if v in (None, "") else int(v)
    except (TypeError, ValueError):
        return None


def rows_of(result, items_key: str | None = None) -> list:
    """Rows of a list answer: a plain list, or the list under ``items_key`` (``items``, ``tasks``...)."""
    if result is None or result == {} or result == []:
        return []
    if isinstance(result, list):
        return result
    if isinstance(result, dict):
        if items_key is not None:
            rows = result.get(items_key)
            if isinstance(rows, dict):
                return list(rows.values())
            return list(rows or [])
        lists = [v for v in result.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    return []


def pages_each(client, method: str, params_list: list[dict], items_key: str | None = None,
               what: str = "") -> list[list]:
    """All rows of a paged list method for each params (``start`` = 0, 50, ... as needed).

    A command that errors yields no rows and a warning naming ``what`` (the ticket); the rest of
    the page is kept.
    """
    rows: list[list] = [[] for _ in params_list]
    todo = [(i, 0) for i in range(len(params_list))]
    while todo:
        answers = call_each(client, method, [{**params_list[i], "start": s} for i, s in todo])
        again = []
        for (i, s), a in zip(todo, answers):
            if a.error is not None:
                log.warning("%s for %s: %s", method, what.format(i=i) if what else i, a.error)
                continue
            got = rows_of(a.result, items_key)
            rows[i].extend(got)
            more = a.next if a.next is not None else (s + PAGE if len(got) >= PAGE else None)
            if got and more is not None and more > s:
                again.append((i, more))
        todo = again
    return rows
