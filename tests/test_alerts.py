"""The alert state machine (b24desk/push/states.py): one red alert, no repeats, one back-to-green note."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from b24desk.push.states import GREEN, GREY, RED, YELLOW, Action, State, evaluate, step


def run(statuses):
    state, sent = None, []
    for s in statuses:
        state, kind = step(state, s)
        if kind:
            sent.append((kind, state.episode))
    return state or State(), sent


def test_green_red_red_green():
    state, sent = run([GREEN, RED, RED, GREEN])
    assert sent == [(RED, 1), (GREEN, 1)]
    assert state == State(GREEN, False, 1)


def test_second_red_spell_is_a_new_episode():
    _, sent = run([RED, GREEN, GREEN, RED, RED, GREEN])
    assert sent == [(RED, 1), (GREEN, 1), (RED, 2), (GREEN, 2)]


def test_yellow_and_grey_neither_repeat_nor_clear():
    # red -> yellow -> red does not re-alert; grey (no data) keeps the alert open
    _, sent = run([RED, YELLOW, RED, GREY, None, RED, YELLOW])
    assert sent == [(RED, 1)]
    state, sent = run([RED, GREY, GREEN])
    assert sent == [(RED, 1), (GREEN, 1)]


def test_green_without_alert_is_silent():
    assert run([GREEN, YELLOW, GREEN, GREY])[1] == []


def test_evaluate_many_subjects():
    a = ("department", "3", "first_response_time")
    b = ("agent", "7", "csat")
    c = ("portal", "p", "fcr_share")
    states = {b: State(RED, True, 2), c: State(GREEN, False, 0)}
    new, actions = evaluate(states, {a: RED, b: GREEN, c: GREY})
    assert actions == [Action(a, RED, 1), Action(b, GREEN, 2)]
    assert new[a] == State(RED, True, 1) and new[b] == State(GREEN, False, 2) and new[c] == states[c]


@given(st.lists(st.sampled_from([RED, YELLOW, GREEN, GREY, None]), max_size=40))
def test_alerts_alternate_and_match_spells(statuses):
    """Whatever the sequence: notifications alternate red/green starting with red, and there are
    exactly as many red alerts as red spells (a spell ends only at a green)."""
    state, sent = run(statuses)
    kinds = [k for k, _ in sent]
    assert kinds == [RED, GREEN] * (len(kinds) // 2) + [RED] * (len(kinds) % 2)
    spells, open_ = 0, False
    for s in statuses:
        if s == RED and not open_:
            spells, open_ = spells + 1, True
        elif s == GREEN:
            open_ = False
    assert kinds.count(RED) == spells == state.episode
    assert state.alerted == open_


def test_first_evaluation_is_a_silent_baseline():
    from b24desk.push.states import evaluate

    s_red, s_green = ("agent", "10", "csat"), ("portal", "p", "fcr_share")
    states, actions = evaluate({}, {s_red: "red", s_green: "green"}, baseline=True)
    assert actions == []  # nothing announced at enable time
    states, actions = evaluate(states, {s_red: "green"})
    assert actions == []  # no alert was sent, so no "back to green"
    states, actions = evaluate(states, {s_red: "red"})
    assert [(a.subject, a.kind, a.episode) for a in actions] == [(s_red, "red", 1)]
    states, actions = evaluate(states, {s_red: "green"})
    assert [(a.kind, a.episode) for a in actions] == [("green", 1)]
