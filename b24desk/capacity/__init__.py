"""Capacity planning: arrivals per weekday × hour, volume forecasts, staffing by Erlang C and the
load norm, and the gaps against the agents actually at work (``build_capacity``)."""

from .report import SCHEMA, CapacityError, build_capacity

__all__ = ["SCHEMA", "CapacityError", "build_capacity"]
