"""Erlang C (M/M/N queue): how many agents a chat-like channel needs for a first-response target.

The formula is small and exact, so it is written here rather than pulled in with a scheduling
library (pyworkforce needs Python 3.12 and OR-Tools); tests pin it to published values. The
Erlang B recursion keeps it stable for any traffic (no factorials): B(0) = 1,
B(k) = A·B(k-1) / (k + A·B(k-1)); then C = N·B / (N - A·(1 - B)).
"""

from __future__ import annotations

import math

MAX_AGENTS = 1000


def traffic(arrivals_per_hour: float, aht_s: float) -> float:
    """Offered load in Erlangs: arrivals per second times the handle time in seconds."""
    return max(0.0, float(arrivals_per_hour)) * max(0.0, float(aht_s)) / 3600.0


def erlang_c(agents: int, load: float) -> float:
    """Probability that a contact waits (all ``agents`` busy) under ``load`` Erlangs; 1 when
    the queue is unstable (``agents <= load``)."""
    if load <= 0:
        return 0.0
    if agents <= load:
        return 1.0
    b = 1.0
    for k in range(1, agents + 1):
        b = load * b / (k + load * b)
    return agents * b / (agents - load * (1 - b))


def service_level(agents: int, load: float, aht_s: float, target_s: float) -> float:
    """Share of contacts answered within ``target_s``: 1 - C·exp(-(N - A)·t / AHT)."""
    if load <= 0:
        return 1.0
    if agents <= load:
        return 0.0
    return 1.0 - erlang_c(agents, load) * math.exp(-(agents - load) * float(target_s) / float(aht_s))


def average_wait(agents: int, load: float, aht_s: float) -> float:
    """Mean time to answer (ASA) in seconds: C·AHT / (N - A); infinite when unstable."""
    if load <= 0:
        return 0.0
    if agents <= load:
        return math.inf
    return erlang_c(agents, load) * float(aht_s) / (agents - load)


def agents_needed(
    arrivals_per_hour: float, aht_s: float, target_s: float, share: float, max_occupancy: float = 1.0
) -> int:
    """The fewest agents answering ``share`` of contacts within ``target_s`` (and keeping
    occupancy A/N at most ``max_occupancy``); 0 when nothing arrives."""
    load = traffic(arrivals_per_hour, aht_s)
    if load <= 0:
        return 0
    n = max(1, math.floor(load) + 1)
    if 0 < max_occupancy < 1:
        n = max(n, math.ceil(load / max_occupancy - 1e-9))
    while n < MAX_AGENTS and service_level(n, load, aht_s, target_s) < share - 1e-12:
        n += 1
    return n
