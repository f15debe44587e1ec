"""Batched detail reads for many tickets: one request per 50 tickets per method.

``B24Client.call_many`` raises on the first failing command; a sync must not lose a page because
one task is no longer readable, so ``call_each`` returns each command's own result *or* error
(both are ``b24desk/batching.py``, re-exported here for the adapters).
``pages_each`` follows list methods past their fixed 50-row page (DOCS
settings/how-to-call-rest-api/list-methods-pecularities.md) for the few tickets that need it.
"""
from __future__ import annotations

import logging

from ..batching import Answer, call_each, call_mixed  # noqa: F401  (the adapters import them from here)
from ..client import PAGE

log = logging.getLogger(__name__)


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
            got = rows_of(a.result, items_key)
            rows[i].extend(got)
            more = a.next if a.next is not None else (s + PAGE if len(got) >= PAGE else None)
            if got and more is not None and more > s:
                again.append((i, more))
        todo = again
    return rows
