"""Volume forecasts chosen by a backtest among established methods (pure functions over counts).

Weekly totals: naive (last week), drift (naive with the average change), simple exponential
smoothing and Holt's damped trend (statsmodels ``ExponentialSmoothing``). Daily counts: seasonal naive (the
same weekday last week) and Holt-Winters with a weekly season, additive (damped trend) or
multiplicative (period 7). Each candidate is scored on the last weeks of history it
was not fitted on (weekly: rolling one-step origins over the last ``backtest_weeks`` weeks; daily:
the last four weeks as one holdout); the one with the lowest MAPE (mean absolute percentage error,
zero weeks skipped) wins and is refitted on everything. Intervals are 80 %: simulated paths of the
fitted model for the smoothing methods, and the
backtest's one-step errors widened with the horizon (sqrt h) for the naive ones.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field

# The series are tiny (12 weeks, 84 days): BLAS worker threads only contend with each other and
# with the server's threads (4x the CPU time measured on 2 cores). Set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

LEVEL = 0.80
Z80 = 1.2815515655446004  # two-sided 80 % normal quantile
MIN_WEEKS = 4  # fewer full weeks: naive forecast, no backtest
MIN_DAYS = 21


@dataclass
class Forecast:
    method: str
    values: list = field(default_factory=list)  # [(point, low, high)] for h = 1..horizon
    mape: float | None = None
    backtest_points: int = 0
    scores: dict = field(default_factory=dict)  # method -> backtest MAPE (None: not scored)


def mape(actual, predicted) -> float | None:
    pairs = [(a, p) for a, p in zip(actual, predicted) if a]
    if not pairs:
        return None
    return sum(abs(a - p) / abs(a) for a, p in pairs) / len(pairs)


def _quiet():
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("ignore")
    return ctx


# --- the candidates: fit on ``y``, return [(point, low, high)] for h = 1..horizon ----------------


def _naive(y, horizon, sigma=None):
    last = float(y[-1])
    return [(last, *_band(last, sigma, h)) for h in range(1, horizon + 1)]


def _drift(y, horizon, sigma=None):
    slope = (y[-1] - y[0]) / (len(y) - 1) if len(y) > 1 else 0.0
    out = []
    for h in range(1, horizon + 1):
        p = float(y[-1]) + slope * h
        out.append((p, *_band(p, sigma, h)))
    return out


def _seasonal_naive(y, horizon, sigma=None, period=7):
    if len(y) < period:
        return _naive(y, horizon, sigma)
    out = []
    for h in range(1, horizon + 1):
        p = float(y[len(y) - period + (h - 1) % period])
        out.append((p, *_band(p, sigma, math.ceil(h / period))))
    return out


def _band(p, sigma, h):
    if sigma is None:
        return (None, None)
    w = Z80 * sigma * math.sqrt(h)
    return (p - w, p + w)


def _ets(y, horizon, *, trend=None, damped=False, seasonal=None, period=None):
    """statsmodels' Holt-Winters ``ExponentialSmoothing`` (fitted by least squares; quicker than
    the state-space ``ETSModel`` and as accurate here); the 80 % band comes from 400 simulated
    future paths with the fitted model's own errors (fixed seed, so a report repeats)."""
    import numpy as np
    import pandas as pd
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    ctx = _quiet()
    try:
        model = ExponentialSmoothing(
            pd.Series(y, dtype=float),
            trend=trend,
            damped_trend=damped,
            seasonal=seasonal,
            seasonal_periods=period,
            initialization_method="estimated",
        )
        res = model.fit()
        mean = np.asarray(res.forecast(horizon), dtype=float)
        sims = np.asarray(
            res.simulate(horizon, anchor="end", repetitions=400, error="add", random_state=0), dtype=float
        ).reshape(horizon, -1)
    finally:
        ctx.__exit__(None, None, None)
    lo = np.quantile(sims, (1 - LEVEL) / 2, axis=1)
    hi = np.quantile(sims, 1 - (1 - LEVEL) / 2, axis=1)
    out = []
    for p, a, b in zip(mean, lo, hi):
        if not all(map(math.isfinite, (p, a, b))):
            raise ValueError("non-finite forecast")
        out.append((float(p), float(a), float(b)))
    return out


WEEKLY = {
    "naive": (_naive, True),
    "drift": (_drift, True),
    "ses": (lambda y, h, s=None: _ets(y, h), False),
    "holt_damped": (lambda y, h, s=None: _ets(y, h, trend="add", damped=True), False),
}


def _hw_mul(y, h, s=None):
    if min(y) <= 0:  # a multiplicative season needs every day above zero
        raise ValueError("zero day")
    return _ets(y, h, trend="add", seasonal="mul", period=7)


DAILY = {
    "seasonal_naive": (_seasonal_naive, True),
    "holt_winters": (lambda y, h, s=None: _ets(y, h, trend="add", damped=True, seasonal="add", period=7), False),
    "holt_winters_mul": (_hw_mul, False),
}
MIN_FIT = {
    "ses": 4,
    "holt_damped": 6,
    "holt_winters": 21,
    "holt_winters_mul": 21,
    "drift": 2,
    "naive": 1,
    "seasonal_naive": 7,
}


def _safe(fn, y, h, sigma=None):
    try:
        return fn(y, h, sigma)
    except Exception:  # a model that cannot be fitted on this history is not a candidate
        return None


def weekly(y: list, horizon: int, backtest_weeks: int = 8, methods: tuple | None = None) -> Forecast:
    """Forecast ``horizon`` weeks after the series ``y`` (full weeks, oldest first); ``methods``
    limits the candidates (the digest's light run uses the pure-Python ones only)."""
    y = [float(v) for v in y]
    if len(y) < MIN_WEEKS:
        values = _naive(y, horizon) if y else [(0.0, None, None)] * horizon
        return _finish(Forecast("naive", values))
    k = min(backtest_weeks, len(y) - 3)
    scores, errors = {}, {}
    candidates = {k: v for k, v in WEEKLY.items() if methods is None or k in methods}
    for name, (fn, _naive_like) in candidates.items():
        preds, actual = [], []
        for i in range(len(y) - k, len(y)):
            if i < MIN_FIT[name]:
                continue
            got = _safe(fn, y[:i], 1)
            if got is None:
                continue
            preds.append(got[0][0])
            actual.append(y[i])
        if len(preds) < max(2, k // 2):
            scores[name] = None
            continue
        scores[name] = mape(actual, preds)
        errors[name] = [a - p for a, p in zip(actual, preds)]
    return _choose(candidates, y, horizon, scores, errors, k)


def daily(y: list, horizon: int, holdout: int = 28) -> Forecast:
    """Forecast ``horizon`` days after the daily series ``y`` (oldest first, weekly season); the
    backtest holds out the last ``holdout`` days (4 weeks, the usual horizon), keeping at least
    ``MIN_DAYS`` to fit on."""
    y = [float(v) for v in y]
    if len(y) < MIN_DAYS + 7:
        values = _seasonal_naive(y, horizon) if y else [(0.0, None, None)] * horizon
        return _finish(Forecast("seasonal_naive", values))
    holdout = min(holdout, (len(y) - MIN_DAYS) // 7 * 7)
    scores, errors = {}, {}
    train, test = y[:-holdout], y[-holdout:]
    for name, (fn, _n) in DAILY.items():
        if len(train) < MIN_FIT[name] or holdout < 1:
            scores[name] = None
            continue
        got = _safe(fn, train, holdout)
        if got is None:
            scores[name] = None
            continue
        scores[name] = mape(test, [g[0] for g in got])
        errors[name] = [a - g[0] for a, g in zip(test, got)]
    return _choose(DAILY, y, horizon, scores, errors, holdout)


def _choose(candidates, y, horizon, scores, errors, points) -> Forecast:
    ranked = sorted((s, i, n) for i, (n, s) in enumerate(scores.items()) if s is not None)
    for _s, _i, name in ranked:
        fn, naive_like = candidates[name]
        sigma = None
        if naive_like:
            errs = errors.get(name) or []
            sigma = math.sqrt(sum(e * e for e in errs) / len(errs)) if errs else None
        values = _safe(fn, y, horizon, sigma)
        if values is not None:
            return _finish(Forecast(name, values, scores[name], points, scores))
    name = next(iter(candidates))
    return _finish(Forecast(name, candidates[name][0](y, horizon), None, 0, scores))


def _finish(f: Forecast) -> Forecast:
    """Counts are never negative; an interval always holds its point."""
    out = []
    for p, lo, hi in f.values:
        p = max(0.0, p)
        lo = None if lo is None else max(0.0, min(lo, p))
        hi = None if hi is None else max(hi, p)
        out.append((p, lo, hi))
    f.values = out
    return f
