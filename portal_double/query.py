"""Filter, order and 50-row paging over in-memory records, the way Bitrix24 list methods do them.

Filter keys carry an operator prefix (DOCS api-reference/crm/universal/crm-item-list.md:
``>= > <= < @ !@ % =% %= !% != ! =``); an array value without a prefix means IN. Pages are fixed
at 50 rows; ``start=-1`` skips the count (``total: 0``, no ``next``) (DOCS
settings/how-to-call-rest-api/list-methods-pecularities.md, settings/performance/huge-data.md).
Field names match case- and underscore-insensitively, so ``CREATED_DATE`` finds ``createdDate``.
"""

from __future__ import annotations

import fnmatch
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any, Callable

from . import timefmt

PAGE = 50

# longest first, so ">=" is not read as ">"
_PREFIXES = ("!=%", "!%=", "!@", "!%", "=%", "%=", ">=", "<=", "!=", ">", "<", "@", "!", "=", "%")


class ApiError(Exception):
    """A Bitrix24 error answer: HTTP status + ``error`` + ``error_description``."""

    def __init__(self, status: int, error: str, description: str = "", **extra):
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.extra = extra

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description, **self.extra}


def norm(name: str) -> str:
    return str(name).replace("_", "").lower()


@dataclass
class Field:
    key: str  # key in the stored record
    type: str = "str"  # int | str | time | ints (multi) | bool | float
    getter: Callable | None = None

    def get(self, rec):
        return self.getter(rec) if self.getter else rec.get(self.key)


def spec(fields: dict[str, Field]) -> dict[str, Field]:
    return {norm(k): f for k, f in fields.items()}


def split_key(key: str) -> tuple[str, str]:
    for p in _PREFIXES:
        if key.startswith(p):
            return p, key[len(p) :]
    return "", key


def as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _coerce(ftype: str, value, tz, fname: str):
    if isinstance(value, (list, tuple, dict)):
        return [_coerce(ftype, v, tz, fname) for v in as_list(value)]
    try:
        if ftype in ("int", "ints"):
            if value is None or value == "":
                return None
            if isinstance(value, bool):
                return int(value)
            return int(float(value)) if isinstance(value, (int, float)) else int(str(value).strip())
        if ftype == "float":
            return None if value in (None, "") else float(value)
        if ftype == "time":
            return timefmt.parse(value, tz)
        if ftype == "bool":
            if isinstance(value, bool):
                return value
            return str(value).upper() in ("Y", "1", "TRUE")
    except (TypeError, ValueError):
        raise ApiError(400, "INVALID_ARG_VALUE", f"Invalid filter: field '{fname}' has invalid value")
    return None if value is None else str(value)


def _like(hay, needle: str, anchored: bool) -> bool:
    if hay is None:
        return False
    hay = str(hay).lower()
    needle = str(needle).lower()
    if not anchored:
        return needle.replace("%", "") in hay
    return fnmatch.fnmatchcase(hay, needle.replace("%", "*").replace("_", "?"))


def _cmp_value(ftype, v):
    if ftype == "bool" and isinstance(v, str):
        return v.upper() == "Y"
    if ftype in ("int", "ints") and isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            return v
    return v


def build_predicate(flt, fields: dict[str, Field], tz, *, strict: bool, ignore=()) -> Callable[[Any], bool]:
    """Compile a Bitrix filter object into a predicate over stored records."""
    preds: list[Callable] = []
    if not flt:
        return lambda rec: True
    if not isinstance(flt, dict):
        if isinstance(flt, list) and not flt:
            return lambda rec: True
        raise ApiError(400, "INVALID_ARG_VALUE", "Invalid filter")
    logic = str(flt.get("logic", flt.get("LOGIC", "AND"))).upper()
    for key, value in flt.items():
        if key in ("logic", "LOGIC") or str(key).startswith("::"):
            continue
        if str(key).isdigit() or isinstance(value, dict) and str(key).isdigit():
            preds.append(build_predicate(value, fields, tz, strict=strict, ignore=ignore))
            continue
        op, name = split_key(str(key))
        f = fields.get(norm(name))
        if f is None:
            if norm(name) in ignore or not strict:
                continue
            raise ApiError(400, "INVALID_ARG_VALUE", f"Invalid filter: field '{name}' is not allowed in filter")
        preds.append(_one(op, f, value, tz, name))
    if logic == "OR":
        return lambda rec: any(p(rec) for p in preds) if preds else True
    return lambda rec: all(p(rec) for p in preds)


def _one(op: str, f: Field, value, tz, name: str) -> Callable:
    ftype = f.type
    multi = isinstance(value, (list, tuple, dict))
    if op in ("%", "=%", "%=", "!%", "!=%", "!%="):
        anchored = op in ("=%", "%=", "!=%", "!%=")
        neg = op.startswith("!")
        needles = [str(v) for v in as_list(value)] if multi else [str(value)]

        def like(rec):
            got = f.get(rec)
            vals = got if isinstance(got, list) else [got]
            hit = any(_like(v, n, anchored) for v in vals for n in needles)
            return hit != neg

        return like
    if op in (">", ">=", "<", "<="):
        if value is None or value == "" or multi:
            raise ApiError(400, "INVALID_ARG_VALUE", f"Invalid filter: field '{name}' has invalid value")
        target = _coerce(ftype, value, tz, name)
        if target is None:
            raise ApiError(400, "INVALID_ARG_VALUE", f"Invalid filter: field '{name}' has invalid value")

        def cmp(rec, target=target):
            got = f.get(rec)
            vals = got if isinstance(got, list) else [got]
            for v in vals:
                v = _cmp_value(ftype, v)
                if v is None:
                    continue
                try:
                    if (
                        (op == ">" and v > target)
                        or (op == ">=" and v >= target)
                        or (op == "<" and v < target)
                        or (op == "<=" and v <= target)
                    ):
                        return True
                except TypeError:
                    if (op[0] == ">") == (str(v) > str(target)):
                        return True
            return False

        return cmp
    neg = op in ("!", "!=", "!@")
    targets = _coerce(ftype, value, tz, name)
    tset = set(targets) if isinstance(targets, list) else {targets}
    if ftype == "str":
        tset = {None if t is None else str(t) for t in tset}
        if "" in tset:
            tset.add(None)

    def eq(rec):
        got = f.get(rec)
        vals = got if isinstance(got, list) else [got]
        if not vals:
            vals = [None]
        if None in tset and ftype in ("int", "ints"):
            # an empty value matches "not set", which older methods store as 0
            hit = any(v in (None, 0) or _cmp_value(ftype, v) in tset for v in vals)
        else:
            hit = any(_cmp_value(ftype, v) in tset for v in vals)
        return hit != neg

    return eq


def parse_order(order, fields: dict[str, Field], *, strict: bool) -> list[tuple[Field, bool]]:
    """[(field, descending)]; unknown fields -> 400 when strict, else ignored."""
    out = []
    if not order or not isinstance(order, dict):
        return out
    for key, direction in order.items():
        f = fields.get(norm(key))
        d = str(direction).strip().upper()
        if d not in ("ASC", "DESC"):
            if strict:
                raise ApiError(
                    400,
                    "INVALID_ARG_VALUE",
                    f"Invalid order: allowed sort directions are ASC, DESC. But got '{direction}' for field '{key}'",
                )
            d = "ASC"
        if f is None:
            if strict:
                raise ApiError(400, "INVALID_ARG_VALUE", f"Invalid order: field '{key}' is not allowed in order")
            continue
        out.append((f, d == "DESC"))
    return out


def parse_start(start) -> int:
    if start is None or start == "":
        return 0
    try:
        return int(float(start))
    except (TypeError, ValueError):
        return 0


def run(
    records: list,
    fields: dict[str, Field],
    tz,
    *,
    flt=None,
    order=None,
    start=None,
    id_key: str = "id",
    default_order=None,
    strict: bool = True,
    ignore=(),
    page: int = PAGE,
) -> tuple[list, int, int | None]:
    """Filter + order + page. ``records`` must be sorted by ``id_key`` ascending.

    Returns (rows, total, next); with ``start=-1`` total is 0 and next None (no count).
    """
    pred = build_predicate(flt, fields, tz, strict=strict, ignore=ignore)
    ordering = parse_order(order, fields, strict=strict) or list(default_order or [])
    offset = parse_start(start)
    no_count = offset < 0
    offset = max(offset, 0)
    by_id = len(ordering) == 1 and ordering[0][0].key == id_key and ordering[0][0].getter is None
    natural = not ordering or by_id
    desc = by_id and ordering[0][1]

    # keyset fast path: narrow the id range with bisect before scanning
    lo, hi = 0, len(records)
    if natural and isinstance(flt, dict) and str(flt.get("logic", "AND")).upper() != "OR":
        for key, value in flt.items():
            op, name = split_key(str(key))
            f = fields.get(norm(name))
            if f is None or f.key != id_key or f.getter is not None or op not in (">", ">=", "<", "<="):
                continue
            try:
                v = int(str(value))
            except ValueError:
                continue
            keyf = lambda r: r[id_key]  # noqa: E731
            if op == ">":
                lo = max(lo, bisect_right(records, v, key=keyf))
            elif op == ">=":
                lo = max(lo, bisect_left(records, v, key=keyf))
            elif op == "<":
                hi = min(hi, bisect_left(records, v, key=keyf))
            else:
                hi = min(hi, bisect_right(records, v, key=keyf))
    if natural and no_count:
        rng = range(hi - 1, lo - 1, -1) if desc else range(lo, hi)
        rows = []
        for i in rng:
            r = records[i]
            if pred(r):
                rows.append(r)
                if len(rows) >= page:
                    break
        return rows, 0, None
    matched = [records[i] for i in range(lo, hi) if pred(records[i])]
    if natural:
        if desc:
            matched.reverse()
    else:
        for f, d in reversed(ordering):
            # MySQL puts NULLs first in ASC order
            matched.sort(key=lambda r, f=f: _sort_key(f.get(r)), reverse=d)
    total = len(matched)
    rows = matched[offset : offset + page]
    if no_count:
        return rows, 0, None
    nxt = offset + page if offset + page < total else None
    return rows, total, nxt


def _sort_key(v):
    if v is None:
        return (0, 0, "")
    if isinstance(v, bool):
        return (1, int(v), "")
    if isinstance(v, (int, float)):
        return (1, v, "")
    if isinstance(v, list):
        return (1, len(v), "")
    s = str(v)
    try:
        return (1, float(s), "")
    except ValueError:
        return (2, 0, s.lower())
