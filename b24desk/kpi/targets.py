"""Targets and the traffic-light scorecard (kpi.md section 4).

A target has a direction (``higher`` or ``lower`` is better), a relative tolerance (default 10 %)
and ``min_n`` (default 5): green meets it, yellow misses by at most the tolerance, red misses by
more, grey when the value is null or rests on fewer than ``min_n`` tickets, so a small sample
never paints a team red. Duration KPIs compare their ``avg``.

Defaults are seed 000's norms (``[targets]`` in the config). Per portal, department and agent
overrides live in the store's ``settings`` table under the key ``targets``::

    {"portal": {"first_response_time": {"target": 300}},
     "departments": {"5": {"csat": {"target": 0.9}}},
     "agents": {"10": {"fcr_share": {"target": 0.8, "min_n": 3}}}}

An override merges into what it overrides, so ``{"target": 300}`` keeps the direction. A
department's targets also apply to its sub-departments (the nearest one wins); an agent's win over
their department's.
"""

from __future__ import annotations

import logging

from .engine import KPI_KEYS

log = logging.getLogger(__name__)

TARGETS_SETTING = "targets"

# Seed 000's norms (+ overdue, ours), used when the config file has no [targets] table.
DEFAULT_TARGETS = {
    "first_response_time": {"target": 600, "direction": "lower"},
    "fcr_share": {"target": 0.70, "direction": "higher"},
    "csat": {"target": 0.80, "direction": "higher"},
    "resolution_time": {"target": 86400, "direction": "lower"},
    "contacts_per_customer": {"target": 1.5, "direction": "lower"},
    "tickets_per_agent_day": {"target": 20, "direction": "lower"},
    "unanswered_share": {"target": 0.02, "direction": "lower", "strict": True},
    "repeat_contact_share": {"target": 0.10, "direction": "lower"},
    "nps": {"target": 50, "direction": "higher"},
    "overdue_share": {"target": 0.05, "direction": "lower"},
    "first_response_sla_share": {"target": 0.90, "direction": "higher"},  # ours
}
FIELDS = {"target", "direction", "tolerance", "min_n", "strict"}


def validate_target(kpi: str, spec) -> dict:
    """Check one target entry; raise ValueError saying what is wrong."""
    if kpi not in KPI_KEYS:
        raise ValueError(f"targets: unknown KPI {kpi!r}")
    if not isinstance(spec, dict):
        raise ValueError(f'targets.{kpi}: must be a table like {{target = 600, direction = "lower"}}')
    extra = set(spec) - FIELDS
    if extra:
        raise ValueError(f"targets.{kpi}: unknown fields {', '.join(sorted(extra))}")
    if (
        "target" in spec
        and spec["target"] is not None
        and (isinstance(spec["target"], bool) or not isinstance(spec["target"], (int, float)))
    ):
        raise ValueError(f"targets.{kpi}.target must be a number")
    if "direction" in spec and spec["direction"] not in ("higher", "lower"):
        raise ValueError(f"targets.{kpi}.direction must be 'higher' or 'lower'")
    if "tolerance" in spec and (
        isinstance(spec["tolerance"], bool) or not isinstance(spec["tolerance"], (int, float)) or spec["tolerance"] < 0
    ):
        raise ValueError(f"targets.{kpi}.tolerance must be a number >= 0 (relative, 0.1 = 10 %)")
    if "min_n" in spec and (isinstance(spec["min_n"], bool) or not isinstance(spec["min_n"], int) or spec["min_n"] < 0):
        raise ValueError(f"targets.{kpi}.min_n must be a whole number >= 0")
    return dict(spec)


def validate_stored(value) -> dict:
    """Check the whole ``targets`` setting before it is saved."""
    if not isinstance(value, dict) or set(value) - {"portal", "departments", "agents"}:
        raise ValueError("targets setting must be an object with keys portal, departments, agents")
    for kpi, spec in (value.get("portal") or {}).items():
        validate_target(kpi, spec)
    for scope in ("departments", "agents"):
        for owner, table in (value.get(scope) or {}).items():
            if not isinstance(table, dict):
                raise ValueError(f"targets.{scope}.{owner} must be an object")
            for kpi, spec in table.items():
                validate_target(kpi, spec)
    return value


def resolve(
    config: dict | None, stored: dict | None = None, departments: list | None = None, agent: str | None = None
) -> dict:
    """Effective targets: config (or seed defaults) < portal < departments root->leaf < agent.

    ``departments`` is the chain of department ids from the root down to the one in question.
    """
    config = config or {}
    card = config.get("scorecard") or {}
    tolerance, min_n = card.get("tolerance", 0.10), card.get("min_n", 5)
    base = config["targets"] if "targets" in config else DEFAULT_TARGETS
    stored = _table(stored)
    layers = [_table(stored.get("portal"))]
    for dep in departments or []:
        layers.append(_table(_table(stored.get("departments")).get(str(dep))))
    if agent is not None:
        layers.append(_table(_table(stored.get("agents")).get(str(agent))))
    out: dict = {}
    for kpi, spec in base.items():  # the config file's targets: an error there is the operator's to fix
        out[kpi] = {**out.get(kpi, {}), **validate_target(kpi, spec)}
    for layer in layers:  # stored by the app: a damaged entry is skipped, never a failed report
        for kpi, spec in layer.items():
            try:
                out[kpi] = {**out.get(kpi, {}), **validate_target(kpi, spec)}
            except ValueError as exc:
                log.warning("stored target skipped: %s", exc)
    for spec in out.values():
        spec.setdefault("tolerance", tolerance)
        spec.setdefault("min_n", min_n)
        spec.setdefault("direction", "lower")
        spec.setdefault("strict", False)
    return out


def _table(value) -> dict:
    """A stored layer as a dict; anything else (a damaged setting) as an empty one."""
    return value if isinstance(value, dict) else {}


def comparable(kpi: str, value):
    """The number a target is compared with: a duration's ``avg``, else the value if numeric."""
    if isinstance(value, dict):
        return value.get("avg") if "avg" in value else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def status(value, n: int, spec: dict | None) -> str:
    """green / yellow / red / grey for one KPI value resting on ``n`` tickets."""
    if not spec or spec.get("target") is None or value is None:
        return "grey"
    if n < spec.get("min_n", 5):
        return "grey"
    t, tol = float(spec["target"]), float(spec.get("tolerance", 0.10))
    margin = abs(t) * tol
    if spec.get("direction", "lower") == "higher":
        ok = value > t if spec.get("strict") else value >= t
        near = value >= t - margin
    else:
        ok = value < t if spec.get("strict") else value <= t
        near = value <= t + margin
    if ok:
        return "green"
    return "yellow" if near else "red"


def set_targets(db, portal: str, value: dict) -> dict:
    """Validate and store a portal's per-portal/department/agent targets (settings key ``targets``)."""
    from ..store import set_setting

    clean = validate_stored(value)
    set_setting(db, portal, TARGETS_SETTING, clean)
    return clean
