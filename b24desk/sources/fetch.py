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
from ..errors import ShapeError
from ..errors import brief as _brief

log = logging.getLogger(__name__)


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
            raise ShapeError(
                method, f"expected a list{f' under {items_key!r}' if items_key else ''}, got {_brief(result)}"
            )
    else:
        raise ShapeError(method, f"expected a list{f' under {items_key!r}' if items_key else ''}, got {_brief(result)}")
    if not all(isinstance(r, dict) for r in rows):
        raise ShapeError(method, f"expected rows as objects, got {_brief(rows)}")
    return rows


def pages_each(
    client, method: str, params_list: list[dict], items_key: str | None = None, what: str = ""
) -> list[list]:
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
