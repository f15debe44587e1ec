"""CCEI, the Customer Care Effectiveness Index (kpi.md section 5, from seed 003).

    CCEI       = W1·Quality + W2·Efficiency + W3·Business + W4·Team    (default 0.4, 0.25, 0.25, 0.1)
    Quality    = 100 · (0.5·CSAT + 0.3·CES + 0.2·FCR)
    Efficiency = 100 · (0.4·T_FRT/FRT + 0.3·T_AHT/AHT + 0.3·T_RES/RES)
    Business   = 0.5·(100 · retention_after_support / overall_retention) + 0.5·feedback_quality
    Team       = 0.6·eNPS + 0.4·100·(1 − turnover)

Quality and Efficiency come from the synced data; Business and Team from inputs an admin enters
per period (settings key ``ccei_inputs:<period label>``, e.g. ``ccei_inputs:2026-10``). A term or
component whose input is missing is left out and the remaining weights are rescaled to sum to 1;
``left_out`` names them (``"business"``, or ``"quality.ces"`` for one term). No rounding anywhere.
"""

from __future__ import annotations

DEFAULT_WEIGHTS = {"quality": 0.4, "efficiency": 0.25, "business": 0.25, "team": 0.1}
DEFAULT_EFFICIENCY_TARGETS = {"frt": 120, "aht": 600, "resolution": 86400}
TERM_WEIGHTS = {
    "quality": {"csat": 0.5, "ces": 0.3, "fcr": 0.2},
    "efficiency": {"frt": 0.4, "aht": 0.3, "resolution": 0.3},
    "business": {"retention": 0.5, "feedback_quality": 0.5},
    "team": {"enps": 0.6, "turnover": 0.4},
}
INPUT_KEYS = ("retention_after_support", "overall_retention", "feedback_quality", "enps", "turnover")
INPUTS_SETTING = "ccei_inputs:{period}"


def _weighted(component: str, terms: dict, left_out: list) -> float | None:
    """Weighted mean of the present terms (weights rescaled); records the missing ones."""
    weights = TERM_WEIGHTS[component]
    present = {k: v for k, v in terms.items() if v is not None}
    for k in weights:
        if k not in present:
            left_out.append(f"{component}.{k}")
    if not present:
        return None
    total = sum(weights[k] for k in present)
    return sum(weights[k] * v for k, v in present.items()) / total


def _ratio(target, actual):
    """target/actual, or None when either is missing or the actual is 0 (no meaningful ratio)."""
    if target is None or actual is None or actual == 0:
        return None
    return target / actual


def components(
    csat=None,
    ces=None,
    fcr=None,
    frt=None,
    aht=None,
    resolution=None,
    inputs: dict | None = None,
    targets: dict | None = None,
) -> tuple[dict, list]:
    """The four components (None when all of a component's inputs are missing) and what was left out."""
    t = {**DEFAULT_EFFICIENCY_TARGETS, **(targets or {})}
    i = inputs or {}
    left: list = []
    q = _weighted("quality", {"csat": csat, "ces": ces, "fcr": fcr}, left)
    e = _weighted(
        "efficiency",
        {"frt": _ratio(t["frt"], frt), "aht": _ratio(t["aht"], aht), "resolution": _ratio(t["resolution"], resolution)},
        left,
    )
    ret = None
    if i.get("retention_after_support") is not None and i.get("overall_retention"):
        ret = i["retention_after_support"] / i["overall_retention"]
    b = _weighted(
        "business",
        {"retention": None if ret is None else 100 * ret, "feedback_quality": i.get("feedback_quality")},
        left,
    )
    turnover = i.get("turnover")
    tm = _weighted(
        "team", {"enps": i.get("enps"), "turnover": None if turnover is None else 100 * (1 - turnover)}, left
    )
    comps = {
        "quality": None if q is None else 100 * q,
        "efficiency": None if e is None else 100 * e,
        "business": b,
        "team": tm,
    }
    return comps, left


def ccei(comps: dict, weights: dict | None = None) -> tuple[float | None, list]:
    """Weighted sum of the present components, weights rescaled; returns (value, left-out components)."""
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    present = {k: v for k, v in comps.items() if v is not None and w.get(k)}
    left = [k for k in DEFAULT_WEIGHTS if k not in present]
    if not present:
        return None, left
    total = sum(w[k] for k in present)
    return sum(w[k] * v for k, v in present.items()) / total, left


# the KPIs ``compute`` reads (and the report's ``ccei`` entry counts resolved tickets)
INPUT_KPIS = frozenset({"csat", "ces", "fcr_share", "first_response_time", "handle_time", "resolution_time"})


def compute(kpis: dict, inputs: dict | None, config: dict | None) -> dict:
    """The report's ``ccei`` object from the KPI values (engine.Value) and the manual inputs."""
    cfg = (config or {}).get("ccei") or {}

    def val(key):
        v = kpis[key].value if key in kpis else None
        return v.get("avg") if isinstance(v, dict) else v

    comps, left_terms = components(
        csat=val("csat"),
        ces=val("ces"),
        fcr=val("fcr_share"),
        frt=val("first_response_time"),
        aht=val("handle_time"),
        resolution=val("resolution_time"),
        inputs=inputs,
        targets=cfg.get("targets"),
    )
    value, left = ccei(comps, cfg.get("weights"))
    left_out = left + [t for t in left_terms if t.split(".")[0] not in left]
    return {"value": value, "components": comps, "left_out": left_out}


def validate_inputs(inputs) -> dict:
    """Check an admin's manual inputs; raise ValueError saying what is wrong."""
    if not isinstance(inputs, dict):
        raise ValueError("CCEI inputs must be an object")
    extra = set(inputs) - set(INPUT_KEYS)
    if extra:
        raise ValueError(f"CCEI inputs: unknown keys {', '.join(sorted(extra))} (known: {', '.join(INPUT_KEYS)})")
    limits = {
        "retention_after_support": (0, None),
        "overall_retention": (0, None),
        "feedback_quality": (0, 100),
        "enps": (-100, 100),
        "turnover": (0, 1),
    }
    out = {}
    for k, v in inputs.items():
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"CCEI input {k} must be a number")
        lo, hi = limits[k]
        if v < lo or (hi is not None and v > hi):
            raise ValueError(f"CCEI input {k} must be in [{lo}, {hi if hi is not None else '∞'}]")
        out[k] = v
    if out.get("overall_retention") == 0:
        raise ValueError("CCEI input overall_retention must be above 0")
    return out


def get_inputs(db, portal: str, period_label: str) -> dict:
    from ..store import get_setting

    return get_setting(db, portal, INPUTS_SETTING.format(period=period_label), {}) or {}


def set_inputs(db, portal: str, period_label: str, inputs: dict) -> dict:
    """Validate and store the manual Business/Team inputs of one period."""
    from ..store import set_setting

    clean = validate_inputs(inputs)
    set_setting(db, portal, INPUTS_SETTING.format(period=period_label), clean)
    return clean
