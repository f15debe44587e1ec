"""Report filters (kpi.md section 6 ``filters``) and breakdown dimensions.

Filters compose: ``Filters(agent="10").restrict(Filters(priority="high"))`` keeps tickets that
pass both, which is how a role-based view narrows whatever the user picked (an agent sees only
their own numbers whatever they ask for). Every dimension holds a conjunction of value sets.

A ticket's agent is its responsible as of the period's end; its department is that agent's first
department; the department filter includes sub-departments. ``source`` is applied in SQL (see
load.py), the rest on the reconstructed facts.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model import PRIORITIES
from .timedims import TIME_DIMS, keyer

DIMENSIONS = ("source", "department", "agent", "priority", "type", "channel", "line")
GROUP_BY = (
    "agent",
    "department",
    "priority",
    "type",
    "source",
    "channel",
    "line",
    "week",
    "month",
    "weekday",
    "hour",
)  # the last four: timedims.py


def _norm(value) -> tuple | None:
    """None | scalar | list | tuple of sets  ->  None | tuple of frozensets (AND of ORs)."""
    if value is None:
        return None
    if isinstance(value, tuple) and all(isinstance(v, frozenset) for v in value):
        return value
    if isinstance(value, (list, set, frozenset)):
        vals = frozenset(str(v) for v in value)
    else:
        vals = frozenset([str(value)])
    return (vals,)


@dataclass(frozen=True)
class Filters:
    source: tuple | None = None
    department: tuple | None = None
    agent: tuple | None = None
    priority: tuple | None = None
    type: tuple | None = None
    channel: tuple | None = None  # open-line channel (livechat, telegrambot, ...)
    line: tuple | None = None  # open line id

    def __post_init__(self):
        for dim in DIMENSIONS:
            object.__setattr__(self, dim, _norm(getattr(self, dim)))
        for sets in self.priority or ():
            bad = sorted(v for v in sets if v not in PRIORITIES)
            if bad:
                raise ValueError(f"unknown priority {bad[0]!r} (one of {', '.join(PRIORITIES)})")

    @classmethod
    def of(cls, value) -> "Filters":
        """Filters from None, a Filters, or a dict like section 6's ``filters`` object."""
        if value is None:
            return cls()
        if isinstance(value, Filters):
            return value
        if not isinstance(value, dict):
            raise ValueError("filters must be an object")
        unknown = set(value) - set(DIMENSIONS)
        if unknown:
            raise ValueError(f"unknown filter {sorted(unknown)[0]!r} (one of {', '.join(DIMENSIONS)})")
        return cls(**{k: v for k, v in value.items() if v not in (None, "", [])})

    def restrict(self, other) -> "Filters":
        """Both sets of conditions at once."""
        other = Filters.of(other)
        kw = {}
        for dim in DIMENSIONS:
            a, b = getattr(self, dim), getattr(other, dim)
            kw[dim] = None if a is None and b is None else (a or ()) + (b or ())
        return Filters(**kw)

    def sources(self) -> list | None:
        """Selectors for SQL: only a single set can be pushed down; more sets are intersected."""
        if not self.source:
            return None
        common = frozenset.intersection(*self.source)
        return sorted(common)

    def as_json(self) -> dict:
        out = {}
        for dim in DIMENSIONS:
            sets = getattr(self, dim)
            if not sets:
                out[dim] = None
                continue
            common = sorted(frozenset.intersection(*sets)) if dim != "department" else None
            if dim == "department":
                out[dim] = [sorted(s) if len(s) > 1 else next(iter(s)) for s in sets]
                if len(out[dim]) == 1:
                    out[dim] = out[dim][0]
            else:
                out[dim] = common[0] if len(common) == 1 else common
        return out

    def single(self, dim: str) -> str | None:
        """The one value a dimension is pinned to, if it is (for choosing targets)."""
        sets = getattr(self, dim)
        if not sets:
            return None
        if dim == "department":
            # the deepest pinned department is the last single-valued set
            singles = [next(iter(s)) for s in sets if len(s) == 1]
            return singles[-1] if singles else None
        common = frozenset.intersection(*sets)
        return next(iter(common)) if len(common) == 1 else None


class Tree:
    """The department tree: ancestors, chains from the root, sub-department tests."""

    def __init__(self, departments: dict, user_departments: dict):
        self.departments = departments  # id -> {name, parent}
        self.user_department = user_departments  # user id -> first department id

    def chain(self, dep: str | None) -> list:
        """Department ids from the root down to ``dep`` (cycles cut)."""
        out, seen = [], set()
        while dep is not None and dep not in seen:
            seen.add(dep)
            out.append(dep)
            dep = (self.departments.get(dep) or {}).get("parent")
        return out[::-1]

    def within(self, dep: str | None, roots: frozenset) -> bool:
        return dep is not None and any(d in roots for d in self.chain(dep))

    def department_of(self, user) -> str | None:
        return self.user_department.get(user) if user is not None else None

    def label(self, dep: str | None) -> str:
        if dep is None:
            return "—"
        return (self.departments.get(dep) or {}).get("name") or dep


def matcher(filters: Filters, tree: Tree):
    """A predicate over engine facts for every dimension except ``source`` (done in SQL)."""
    checks = []
    for sets in filters.agent or ():
        checks.append(lambda f, s=sets: f.resp_end in s)
    for sets in filters.department or ():
        checks.append(lambda f, s=sets: tree.within(tree.department_of(f.resp_end), s))
    for sets in filters.priority or ():
        checks.append(lambda f, s=sets: f.priority in s)
    for sets in filters.type or ():
        checks.append(lambda f, s=sets: f.type in s)
    for sets in filters.channel or ():
        checks.append(lambda f, s=sets: f.t["channel"] in s)
    for sets in filters.line or ():
        checks.append(lambda f, s=sets: f.t["line"] in s)
    if not checks:
        return None
    if len(checks) == 1:  # the usual case (an agent's or a department's view): no all() per fact
        return checks[0]
    return lambda f: all(c(f) for c in checks)


def group_key(dim: str, tree: Tree, tz=None):
    """The function giving a ticket's group in a breakdown (one group per ticket, so sums hold)."""
    if dim not in GROUP_BY:
        raise ValueError(f"unknown group-by {dim!r} (one of {', '.join(GROUP_BY)})")
    if dim in TIME_DIMS:
        return keyer(dim, tz, 0)
    return {
        "agent": lambda f: f.resp_end,
        "department": lambda f: tree.department_of(f.resp_end),
        "priority": lambda f: f.priority,
        "type": lambda f: f.type,
        "source": lambda f: f.t["source"],
        "channel": lambda f: f.t["channel"],
        "line": lambda f: f.t["line"],
    }[dim]
