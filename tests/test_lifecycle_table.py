"""The lifecycle transition table: shape and behaviour (lifecycle/table.py)."""
from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifecycle.table import (
    ACTORS,
    INITIAL,
    TERMINAL,
    TRANSITIONS,
    Event,
    IllegalTransition,
    Role,
    State,
    allowed_events,
    apply,
    as_markdown,
)


def reachable_from(start):
    seen, todo = {start}, deque([start])
    while todo:
        for nxt in TRANSITIONS[todo.popleft()].values():
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_state_has_a_row():
    assert set(TRANSITIONS) == set(State)


def test_every_state_is_reachable_from_new():
    assert reachable_from(INITIAL) == set(State)


def test_terminal_states_have_no_exits():
    assert TERMINAL == {State.COMPLETED, State.CANCELLED, State.REJECTED, State.SHELF_EXPIRED,
                        State.UNFILLED, State.LOST}
    for s in TERMINAL:
        assert TRANSITIONS[s] == {}


def test_every_non_terminal_state_can_reach_a_terminal_state():
    for s in set(State) - TERMINAL:
        assert reachable_from(s) & TERMINAL, s


def test_every_event_is_known_used_and_has_actors():
    used = {e for exits in TRANSITIONS.values() for e in exits}
    assert used == set(Event)
    assert set(ACTORS) == set(Event)
    assert all(ACTORS[e] for e in Event)
    for exits in TRANSITIONS.values():
        assert all(isinstance(e, Event) and isinstance(n, State) for e, n in exits.items())


def test_a_local_hold_goes_from_placement_to_completion():
    path = [Event.VALIDATE, Event.ENQUEUE, Event.TRAP_ELSEWHERE, Event.ARRIVE_AT_PICKUP,
            Event.CHECK_OUT, Event.RENEW, Event.DUE_DATE_PASSED, Event.CHECK_IN, Event.CLOSE]
    s = INITIAL
    for e in path:
        s = apply(s, e)
    assert s == State.COMPLETED


def test_an_ill_request_goes_through_the_partner_and_back():
    path = [(Event.VALIDATE, Role.SYSTEM), (Event.SEND_TO_PARTNER, Role.SYSTEM),
            (Event.PARTNER_CONDITIONS, Role.PARTNER), (Event.CONDITIONS_ACCEPTED, Role.PATRON),
            (Event.PARTNER_SHIPPED, Role.PARTNER), (Event.RECEIVE_AT_PICKUP, Role.STAFF),
            (Event.CHECK_OUT, Role.STAFF), (Event.CHECK_IN, Role.STAFF),
            (Event.SHIP_RETURN, Role.STAFF), (Event.LOAN_COMPLETED, Role.PARTNER)]
    s = INITIAL
    for e, who in path:
        s = apply(s, e, who)
    assert s == State.COMPLETED


def test_a_patron_cannot_cancel_a_secured_hold_but_staff_can():
    with pytest.raises(IllegalTransition):
        apply(State.ON_HOLD_SHELF, Event.CANCEL)
    with pytest.raises(IllegalTransition):
        apply(State.ON_HOLD_SHELF, Event.CANCEL_SECURED, Role.PATRON)
    assert apply(State.ON_HOLD_SHELF, Event.CANCEL_SECURED, Role.STAFF) == State.CANCELLED
    assert Event.CANCEL_SECURED not in allowed_events(State.ON_HOLD_SHELF, Role.PATRON)


def test_a_suspended_request_cannot_be_trapped():
    assert apply(State.QUEUED, Event.SUSPEND) == State.SUSPENDED
    with pytest.raises(IllegalTransition):
        apply(State.SUSPENDED, Event.TRAP_AT_PICKUP)


def test_unknown_values_raise_illegal_transition():
    with pytest.raises(IllegalTransition):
        apply("NOT_A_STATE", Event.VALIDATE)
    with pytest.raises(IllegalTransition):
        apply(State.NEW, "NOT_AN_EVENT")


def test_markdown_lists_every_transition():
    md = as_markdown()
    n = sum(len(x) for x in TRANSITIONS.values())
    assert md.count("\n") + 1 == 2 + n + len(TERMINAL)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(Event)), st.sampled_from(list(Role) + [None])),
                max_size=40))
def test_random_event_sequences_follow_the_table_or_raise(steps):
    s = INITIAL
    for event, role in steps:
        expected = TRANSITIONS[s].get(event)
        if expected is not None and (role is None or role in ACTORS[event]):
            s = apply(s, event, role)
            assert s == expected
        else:
            with pytest.raises(IllegalTransition):
                apply(s, event, role)
        assert s in TRANSITIONS


def test_the_lifecycle_core_imports_no_web_framework_and_no_database_driver():
    import ast
    forbidden = {"aiohttp", "sqlite3", "psycopg", "psycopg2", "asyncpg", "elasticsearch", "gateway",
                 "smtplib", "socket"}
    for path in (Path(__file__).resolve().parents[1] / "lifecycle").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for n in names:
                assert n.split(".")[0] not in forbidden, (path.name, n)
