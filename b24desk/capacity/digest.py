"""The monthly digest's capacity line: said only when the forecast load per agent passes the norm.

The forecast is the capacity report's own (the 12 full weeks before the month's end, 4 weeks
ahead) for the whole portal; the line is its ``summary.forecast_note``, in the portal's digest only
(a department's own forecast is on the capacity page: one report per push run keeps the scheduler's
monthly run short). It is a light run: the weekly forecast from the naive and drift candidates
(chosen by the same backtest), no daily forecast, so the scheduler's thread never imports the
statistics libraries (importing them there kept the demo from stopping on Ctrl-C). A capacity report that
cannot be computed (an empty store, a bad ``[capacity]`` table) leaves the digest without the line
rather than without the digest.
"""

from __future__ import annotations

import logging

from .report import CapacityError, build_capacity

log = logging.getLogger("b24desk.capacity")


def capacity_note(env, period_end: int, department: str | None = None) -> dict | None:
    """``{"ru": ..., "en": ..., "load": 23.4, "norm": 20, "week": "2026-W49"}`` or None."""
    try:
        rep = build_capacity(
            env.db, env.portal, weeks_ahead=4, department=department, env=env, now=period_end, light=True
        )
    except CapacityError as exc:
        log.warning("capacity line left out of the digest: %s", exc)
        return None
    s = rep["summary"]
    if not s["forecast_exceeds_norm"]:
        return None
    return dict(
        s["forecast_note"],
        load=s["forecast_load_per_agent_day"],
        norm=s["norm_per_agent_day"][1],
        week=s["forecast_peak_week"],
    )
