"""CCEI exactly as kpi.md section 5 (seed 003's example), and the traffic-light rules of section 4."""

from __future__ import annotations

import pytest

from b24desk.kpi.ccei import ccei, components, compute, get_inputs, set_inputs, validate_inputs
from b24desk.kpi.engine import Value
from b24desk.kpi.targets import DEFAULT_TARGETS, resolve, status, validate_stored

SEED = dict(
    csat=0.90,
    ces=0.85,
    fcr=0.75,
    frt=90,
    aht=720,
    resolution=72000,
    inputs={
        "retention_after_support": 88,
        "overall_retention": 80,
        "feedback_quality": 80,
        "enps": 50,
        "turnover": 0.10,
    },
)
TARGETS = {"frt": 120, "aht": 600, "resolution": 86400}  # 2 min, 10 min, 24 h


def test_seed_003_example():
    comps, left = components(**SEED, targets=TARGETS)
    assert comps["quality"] == pytest.approx(85.5, abs=1e-12)
    assert comps["efficiency"] == pytest.approx(114.33333333333333, abs=1e-12)
    assert comps["business"] == pytest.approx(95, abs=1e-12)
    assert comps["team"] == pytest.approx(66, abs=1e-12)
    value, left_out = ccei(comps)
    assert value == pytest.approx(93.13333333333334, abs=1e-12)  # not the seed's rounded 93.075
    assert left == [] and left_out == []


def test_missing_component_is_left_out_and_weights_rescaled():
    comps, _ = components(**{**SEED, "inputs": {}}, targets=TARGETS)
    value, left = ccei(comps)
    assert left == ["business", "team"]
    assert value == pytest.approx((0.4 * 85.5 + 0.25 * 114.33333333333333) / 0.65)


def test_missing_term_is_left_out_inside_its_component():
    comps, left = components(
        **{**SEED, "ces": None, "aht": None, "inputs": {"retention_after_support": 88, "overall_retention": 80}},
        targets=TARGETS,
    )
    assert comps["quality"] == pytest.approx(100 * (0.5 * 0.9 + 0.2 * 0.75) / 0.7)
    assert comps["efficiency"] == pytest.approx(100 * (0.4 * 120 / 90 + 0.3 * 86400 / 72000) / 0.7)
    assert comps["business"] == pytest.approx(110)
    assert comps["team"] is None
    assert left == ["quality.ces", "efficiency.aht", "business.feedback_quality", "team.enps", "team.turnover"]


def test_compute_from_kpi_values_reports_what_was_left_out():
    kpis = {
        "csat": Value(0.9),
        "ces": Value(0.85),
        "fcr_share": Value(0.75),
        "first_response_time": Value({"avg": 90}),
        "handle_time": Value(None),
        "resolution_time": Value({"avg": 72000}),
    }
    out = compute(kpis, {"enps": 50, "turnover": 0.1}, {"ccei": {"targets": TARGETS}})
    assert out["left_out"] == ["business", "efficiency.aht"]
    assert out["components"]["team"] == 66
    assert compute({}, None, None) == {
        "value": None,
        "components": {"quality": None, "efficiency": None, "business": None, "team": None},
        "left_out": ["quality", "efficiency", "business", "team"],
    }


def test_ccei_inputs_are_validated_and_stored_per_period(db):
    assert set_inputs(db, "p1", "2026-10", {"enps": 50, "turnover": 0.1}) == {"enps": 50, "turnover": 0.1}
    assert get_inputs(db, "p1", "2026-10") == {"enps": 50, "turnover": 0.1}
    assert get_inputs(db, "p1", "2026-09") == {}
    for bad, msg in [
        ({"turnover": 1.5}, "turnover"),
        ({"enps": "high"}, "number"),
        ({"retention": 1}, "unknown keys"),
        ({"overall_retention": 0}, "above 0"),
        ([], "object"),
    ]:
        with pytest.raises(ValueError, match=msg):
            validate_inputs(bad)
    with pytest.raises(ValueError):
        set_inputs(db, "p1", "2026-10", {"turnover": -1})
    assert get_inputs(db, "p1", "2026-10") == {"enps": 50, "turnover": 0.1}  # a bad input loses nothing


# --- traffic lights ------------------------------------------------------------------------

LOWER = {"target": 600, "direction": "lower", "tolerance": 0.1, "min_n": 5}
HIGHER = {"target": 0.8, "direction": "higher", "tolerance": 0.1, "min_n": 5}


@pytest.mark.parametrize(
    "spec, value, n, expected",
    [
        (LOWER, 600, 10, "green"),
        (LOWER, 660, 10, "yellow"),
        (LOWER, 661, 10, "red"),
        (LOWER, 100, 4, "grey"),
        (LOWER, None, 10, "grey"),
        (None, 5, 10, "grey"),
        (HIGHER, 0.8, 10, "green"),
        (HIGHER, 0.72, 10, "yellow"),
        (HIGHER, 0.71, 10, "red"),
        ({**LOWER, "target": 0.02, "strict": True}, 0.02, 10, "yellow"),
        ({**LOWER, "target": 0.02, "strict": True}, 0.0199, 10, "green"),
        ({**LOWER, "min_n": 0}, 700, 0, "red"),
    ],
)
def test_status(spec, value, n, expected):
    assert status(value, n, spec) == expected


def test_seed_000_norms_are_the_defaults():
    t = resolve({})
    assert t["first_response_time"]["target"] == 600 and t["nps"]["direction"] == "higher"
    assert set(t) == set(DEFAULT_TARGETS)
    assert t["csat"]["min_n"] == 5 and t["csat"]["tolerance"] == 0.1


def test_overrides_merge_portal_department_chain_agent():
    stored = {
        "portal": {"csat": {"target": 0.85}},
        "departments": {"1": {"csat": {"tolerance": 0.2}}, "5": {"csat": {"target": 0.9}}},
        "agents": {"10": {"csat": {"min_n": 1}}},
    }
    t = resolve({}, stored, ["1", "5"], "10")["csat"]
    assert t == {"target": 0.9, "direction": "higher", "tolerance": 0.2, "min_n": 1, "strict": False}


@pytest.mark.parametrize(
    "value, msg",
    [
        ({"portal": {"nope": {"target": 1}}}, "unknown KPI"),
        ({"portal": {"csat": {"target": "high"}}}, "must be a number"),
        ({"portal": {"csat": {"direction": "up"}}}, "higher' or 'lower"),
        ({"agents": {"10": {"csat": {"min_n": -1}}}}, "min_n"),
        ({"teams": {}}, "keys portal, departments, agents"),
    ],
)
def test_bad_targets_are_clear_errors(value, msg):
    with pytest.raises(ValueError, match=msg):
        validate_stored(value)


@pytest.mark.parametrize(
    "stored",
    [
        "not a table",
        ["portal"],
        {"portal": "x"},
        {"departments": {"2": 5}},
        {"agents": ["7"]},
        {"portal": {"first_response_time": "fast"}},
        {"portal": {"no_such_kpi": {"target": 1}}},
    ],
)
def test_damaged_stored_targets_are_skipped_not_fatal(stored):
    """A damaged stored setting leaves the config's targets in force instead of failing the report."""
    from b24desk.kpi.targets import DEFAULT_TARGETS, resolve

    out = resolve({}, stored, departments=["1", "2"], agent="7")
    assert set(out) == set(DEFAULT_TARGETS)
    assert out["first_response_time"]["target"] == DEFAULT_TARGETS["first_response_time"]["target"]
