"""The KPI alert state machine: one notification when a KPI turns red, one when it is green again.

Pure: the caller loads the last states, feeds this module the statuses it observed (the
scorecard's traffic lights, kpi.md section 4) and persists what comes back. A *subject* is a
KPI of a portal, a department or an agent: ``(level, subject_id, kpi)``.

Rules, per subject:

* ``red`` while not alerted -> a ``red`` alert; the subject is now alerted (a new *episode*);
* ``red`` while alerted -> nothing (no repeat while it stays red);
* ``green`` while alerted -> one ``green`` ("back to green") note; no longer alerted;
* ``yellow`` -> nothing either way: a KPI wobbling between red and yellow does not re-alert,
  and it is not "back to green" until it is green (hysteresis against flapping);
* ``grey`` (no data, or fewer than ``min_n`` tickets) -> nothing, the state is kept: a quiet
  night must neither clear an alert nor raise one.

The first evaluation of a portal is a *baseline*: what is red then has not "turned" red, and the
digest already shows it, so it is recorded as known-red (episode 0) without a notification (else
enabling alerts would send one notification per red KPI of every agent at once). Such a subject
turns green silently (no alert was sent to answer); its next red spell alerts as usual.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

RED, YELLOW, GREEN, GREY = "red", "yellow", "green", "grey"
LEVELS = ("portal", "department", "agent")


@dataclass(frozen=True)
class State:
    status: str | None = None  # last known (non-grey) status
    alerted: bool = False  # a red alert went out and no green note since
    episode: int = 0  # red alerts sent so far for this subject


@dataclass(frozen=True)
class Action:
    """A notification to send: ``kind`` is ``red`` or ``green``; ``episode`` numbers the red spell
    it belongs to, so (subject, episode, kind) names each notification exactly once."""

    subject: tuple
    kind: str
    episode: int


def step(prev: State | None, status: str | None, baseline: bool = False) -> tuple[State, str | None]:
    """The next state after observing ``status``, and ``"red"``/``"green"``/None to notify."""
    if baseline and prev is None and status == RED:
        return State(RED, True, 0), None  # known red, not announced
    prev = prev or State()
    if status == RED:
        if prev.alerted:
            return replace(prev, status=RED), None
        return State(RED, True, prev.episode + 1), RED
    if status == GREEN:
        if prev.alerted:
            return State(GREEN, False, prev.episode), (GREEN if prev.episode else None)
        return replace(prev, status=GREEN), None
    if status == YELLOW:
        return replace(prev, status=YELLOW), None
    return prev, None  # grey / unknown: keep everything


def evaluate(states: dict, observed: dict, baseline: bool = False) -> tuple[dict, list[Action]]:
    """Apply ``observed`` ``{subject: status}`` to ``states`` ``{subject: State}``
    (``baseline``: the portal's first evaluation, see the module's rules).

    Returns the new states of the observed subjects (the others are unchanged) and the actions,
    in a stable order (red alerts first, then green notes, each sorted by subject).
    """
    new_states, actions = {}, []
    for subject in sorted(observed, key=repr):
        state, kind = step(states.get(subject), observed[subject], baseline)
        new_states[subject] = state
        if kind:
            actions.append(Action(subject, kind, state.episode))
    actions.sort(key=lambda a: (a.kind != RED, repr(a.subject)))
    return new_states, actions
