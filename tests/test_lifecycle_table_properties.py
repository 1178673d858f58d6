"""Properties of the requester-side state table (lifecycle/table.py), checked with
hypothesis over random event sequences, random roles and random starting states."""
from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from lifecycle.table import (
    ACTORS,
    INITIAL,
    SECURED,
    TERMINAL,
    TRANSITIONS,
    Event,
    IllegalTransition,
    Role,
    State,
    allowed_events,
    apply,
)

EVENTS = list(Event)
ROLES = list(Role)
NON_TERMINAL = sorted(set(State) - TERMINAL, key=lambda s: s.value)
USED_EVENTS = {e for exits in TRANSITIONS.values() for e in exits}
# states before the library has secured a copy, where a patron may still cancel
BEFORE_SECURED = {State.NEW, State.VALIDATED, State.PURCHASE_REVIEW, State.QUEUED, State.SUSPENDED}

roles_or_none = st.sampled_from(ROLES + [None])


def distance_to_terminal() -> dict[State, int]:
    """Shortest number of transitions from each state to some terminal state."""
    dist = {t: 0 for t in TERMINAL}
    back: dict[State, set[State]] = {s: set() for s in State}
    for src, exits in TRANSITIONS.items():
        for dst in exits.values():
            back[dst].add(src)
    todo = deque(TERMINAL)
    while todo:
        cur = todo.popleft()
        for prev in back[cur]:
            if prev not in dist:
                dist[prev] = dist[cur] + 1
                todo.append(prev)
    return dist


DIST = distance_to_terminal()


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(State)), st.sampled_from(EVENTS), roles_or_none)
def test_apply_either_follows_the_table_or_raises_illegal_transition(state, event, role):
    expected = TRANSITIONS[state].get(event)
    allowed = expected is not None and (role is None or role in ACTORS[event])
    if allowed:
        new = apply(state, event, role)
        assert new == expected and new in TRANSITIONS
    else:
        with pytest.raises(IllegalTransition) as e:
            apply(state, event, role)
        assert e.value.state == state and e.value.event == event


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_random_walks_of_legal_events_stay_inside_the_table_and_end_only_in_terminal_states(data):
    state, seen = INITIAL, [INITIAL]
    for _ in range(60):
        options = allowed_events(state)
        if not options:
            break
        event = data.draw(st.sampled_from(options))
        role = data.draw(st.sampled_from(sorted(ACTORS[event], key=lambda r: r.value)))
        state = apply(state, event, role)
        assert isinstance(state, State) and state in TRANSITIONS
        seen.append(state)
    if not allowed_events(state):
        assert state in TERMINAL
    # nothing ever leaves a terminal state within a walk
    for i, st_ in enumerate(seen):
        if st_ in TERMINAL:
            assert i == len(seen) - 1


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(TERMINAL, key=lambda s: s.value)), st.sampled_from(EVENTS), roles_or_none)
def test_terminal_states_accept_no_event_from_anyone(state, event, role):
    assert allowed_events(state) == []
    with pytest.raises(IllegalTransition):
        apply(state, event, role)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(SECURED, key=lambda s: s.value)), roles_or_none)
def test_a_secured_copy_is_never_cancelled_by_plain_cancel_and_only_staff_cancel_it(state, role):
    with pytest.raises(IllegalTransition):
        apply(state, Event.CANCEL, role)
    if role in (None, Role.STAFF):
        assert apply(state, Event.CANCEL_SECURED, role) == State.CANCELLED
    else:
        with pytest.raises(IllegalTransition):
            apply(state, Event.CANCEL_SECURED, role)


def test_cancel_exists_exactly_before_the_copy_is_secured_and_cancel_secured_exactly_when_secured():
    assert {s for s, exits in TRANSITIONS.items() if Event.CANCEL in exits} == BEFORE_SECURED
    assert {s for s, exits in TRANSITIONS.items() if Event.CANCEL_SECURED in exits} == SECURED
    assert Role.PATRON in ACTORS[Event.CANCEL]
    assert ACTORS[Event.CANCEL_SECURED] == frozenset({Role.STAFF})


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_after_a_copy_is_secured_only_staff_can_turn_the_request_into_a_cancellation(data):
    # events the state has, tried by any role (so refused roles are exercised too)
    state, secured_once = INITIAL, False
    for _ in range(40):
        if state in TERMINAL:
            assert allowed_events(state) == []
            break
        event = data.draw(st.sampled_from(list(TRANSITIONS[state])))
        role = data.draw(st.one_of(st.sampled_from(sorted(ACTORS[event], key=lambda r: r.value)),
                                   st.sampled_from(ROLES)))
        try:
            new = apply(state, event, role)
        except IllegalTransition:
            assert role not in ACTORS[event] or event not in TRANSITIONS[state]
            continue
        if new == State.CANCELLED and secured_once:
            assert (event, role) == (Event.CANCEL_SECURED, Role.STAFF)
        if new == State.CANCELLED and role == Role.PATRON:
            assert state in BEFORE_SECURED
        state = new
        secured_once = secured_once or state in SECURED


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(NON_TERMINAL), st.data())
def test_every_non_terminal_state_can_reach_a_terminal_state(state, data):
    assert state in DIST
    # follow any exit that brings us closer (draw among them): we arrive within DIST steps
    steps = 0
    while state not in TERMINAL:
        closer = [e for e, n in TRANSITIONS[state].items() if DIST.get(n, 10 ** 6) < DIST[state]]
        assert closer, state
        event = data.draw(st.sampled_from(closer))
        state = apply(state, event, next(iter(ACTORS[event])))
        steps += 1
    assert steps <= max(DIST.values())


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(USED_EVENTS, key=lambda e: e.value)))
def test_actors_cover_every_event_the_table_uses(event):
    assert ACTORS.get(event), event
    for state, exits in TRANSITIONS.items():
        if event in exits:
            for role in ACTORS[event]:
                assert apply(state, event, role) == exits[event]
            for role in set(ROLES) - ACTORS[event]:
                with pytest.raises(IllegalTransition):
                    apply(state, event, role)


def test_every_event_defined_is_used_by_the_table_and_has_actors():
    assert USED_EVENTS == set(Event) and set(ACTORS) == set(Event)


class RequestLifecycle(RuleBasedStateMachine):
    """One request driven by events from arbitrary roles (mostly events its state has,
    sometimes any event): it never leaves the table, a terminal state is final, and once
    a copy was secured only staff can turn the request into a cancellation."""

    def __init__(self):
        super().__init__()
        self.state = INITIAL
        self.secured_once = False
        self.terminal_seen = False

    def _send(self, event, role):
        before = self.state
        try:
            after = apply(before, event, role)
        except IllegalTransition:
            assert event not in TRANSITIONS[before] or (role is not None and role not in ACTORS[event])
            return
        assert not self.terminal_seen, "a terminal state accepted an event"
        assert after == TRANSITIONS[before][event]
        if after == State.CANCELLED and self.secured_once:
            assert event == Event.CANCEL_SECURED and role in (None, Role.STAFF)
        if role == Role.PATRON and after == State.CANCELLED:
            assert before in BEFORE_SECURED
        self.state = after
        self.secured_once = self.secured_once or after in SECURED

    @rule(data=st.data())
    def legal_step(self, data):
        """A legal event, half of the time one that does not end the request (so that
        walks get deep: trapped, on the shelf, on loan, at a partner...)."""
        options = allowed_events(self.state)
        if options:
            onward = [e for e in options if TRANSITIONS[self.state][e] not in TERMINAL] or options
            event = data.draw(st.one_of(st.sampled_from(onward), st.sampled_from(options)))
            self._send(event, data.draw(st.sampled_from(sorted(ACTORS[event], key=lambda r: r.value))))

    @precondition(lambda self: self.state in TERMINAL)
    @rule()
    def next_request(self):
        """A finished request stays finished; the next one starts from NEW."""
        for event in EVENTS:
            with pytest.raises(IllegalTransition):
                apply(self.state, event)
        self.state, self.secured_once, self.terminal_seen = INITIAL, False, False

    @rule(data=st.data(), role=roles_or_none)
    def an_exit_of_this_state_by_anyone(self, data, role):
        options = allowed_events(self.state)
        if options:
            self._send(data.draw(st.sampled_from(options)), role)

    @rule(event=st.sampled_from(EVENTS), role=roles_or_none)
    def any_event_by_anyone(self, event, role):
        self._send(event, role)

    @invariant()
    def no_exit_of_this_state_lets_a_patron_undo_a_secured_copy(self):
        for event in TRANSITIONS[self.state]:
            for role in ACTORS[event]:
                after = apply(self.state, event, role)
                if after == State.CANCELLED and (self.secured_once or self.state in SECURED):
                    assert (event, role) == (Event.CANCEL_SECURED, Role.STAFF), (self.state, event, role)

    @invariant()
    def inside_the_table(self):
        assert self.state in TRANSITIONS
        if self.state in TERMINAL:
            self.terminal_seen = True
            assert allowed_events(self.state) == []
        else:
            assert self.state in DIST          # can still finish


TestRequestLifecycle = RequestLifecycle.TestCase
TestRequestLifecycle.settings = settings(max_examples=80, stateful_step_count=30, deadline=None)
