"""The requester and supplier leg tables of ISO 18626 inter-library loans."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.iso18626 import model as m
from lifecycle import ill
from lifecycle.ill import REQUESTER, SUPPLIER, Actor, IllegalLegTransition, REvent, RState, SEvent, SState

DOCS = Path(__file__).resolve().parents[1] / "docs" / "ill.md"


@pytest.mark.parametrize("machine, initial", [(REQUESTER, RState.NEW), (SUPPLIER, SState.REQUEST_RECEIVED)])
def test_every_state_is_reachable_and_can_end(machine, initial):
    states = set(machine.transitions)
    reach, todo = {initial}, [initial]
    while todo:
        for nxt in machine.transitions[todo.pop()].values():
            if nxt not in reach:
                reach.add(nxt)
                todo.append(nxt)
    assert reach == states
    # from every state some path leads to a terminal state
    ends = set(machine.terminal)
    changed = True
    while changed:
        changed = False
        for s, exits in machine.transitions.items():
            if s not in ends and any(n in ends for n in exits.values()):
                ends.add(s)
                changed = True
    assert ends == states


@pytest.mark.parametrize("machine", [REQUESTER, SUPPLIER])
def test_every_event_has_actors_and_every_terminal_state_only_answers_questions(machine):
    used = {e for exits in machine.transitions.values() for e in exits}
    assert used == set(machine.actors)
    for s in machine.terminal:
        assert all(n is s for n in machine.transitions[s].values())


def test_the_docs_show_the_tables_as_they_are():
    assert ill.as_markdown() in DOCS.read_text(encoding="utf-8")


def test_apply_checks_the_state_and_the_actor():
    assert REQUESTER.apply(RState.REQUESTED, REvent.S_WILL_SUPPLY, Actor.PARTNER) is RState.WILL_SUPPLY
    with pytest.raises(IllegalLegTransition):
        REQUESTER.apply(RState.REQUESTED, REvent.S_LOAN_COMPLETED, Actor.PARTNER)
    with pytest.raises(IllegalLegTransition):
        REQUESTER.apply(RState.REQUESTED, REvent.S_WILL_SUPPLY, Actor.STAFF)   # only the partner says so
    with pytest.raises(IllegalLegTransition):
        SUPPLIER.apply(SState.WILL_SUPPLY, SEvent.SHIP, Actor.PARTNER)        # only our staff ship


S = m.Status.__members__
R = "RequestResponse"


@pytest.mark.parametrize("state, reason, status, answer, expect", [
    (RState.REQUESTED, R, "ExpectToSupply", None, REvent.S_EXPECT_TO_SUPPLY),
    (RState.REQUESTED, R, "Loaned", None, REvent.S_LOANED),
    (RState.WILL_SUPPLY, "StatusChange", "Loaned", None, REvent.S_LOANED),
    (RState.CANCEL_PENDING, "CancelResponse", "Cancelled", "Y", REvent.CANCEL_YES),
    (RState.CANCEL_PENDING, "CancelResponse", "WillSupply", "N", REvent.CANCEL_NO),
    (RState.RENEW_PENDING, "RenewResponse", "Loaned", "Y", REvent.RENEW_YES),
    (RState.RENEW_PENDING, "RenewResponse", "Loaned", "N", REvent.RENEW_NO),
    (RState.RECEIVED, "StatusChange", "Recalled", None, REvent.S_RECALLED),
    (RState.RETURN_SHIPPED, "StatusChange", "LoanCompleted", None, REvent.S_LOAN_COMPLETED),
])
def test_messages_that_move_a_requester_leg(state, reason, status, answer, expect):
    got = ill.requester_event(state, reason, status, answer)
    assert got == ill.Inbound(expect)


@pytest.mark.parametrize("state, reason, status, answer", [
    (RState.WILL_SUPPLY, "StatusChange", "WillSupply", None),        # sent twice
    (RState.LOANED, "StatusChange", "Loaned", None),
    (RState.RECEIVED, "StatusRequestResponse", "WillSupply", None),  # informational, stale
    (RState.CANCELLED, "CancelResponse", "Cancelled", "Y"),          # the answer repeated
    (RState.RECEIVED, "RenewResponse", "Loaned", "Y"),
    (RState.COMPLETED, "Notification", "LoanCompleted", None),
])
def test_repeats_and_informational_messages_change_nothing(state, reason, status, answer):
    got = ill.requester_event(state, reason, status, answer)
    assert not got.refused
    assert got.event is None or REQUESTER.apply(state, got.event) is state


@pytest.mark.parametrize("state, reason, status, answer", [
    (RState.REQUESTED, "StatusChange", "LoanCompleted", None),      # never loaned
    (RState.RECEIVED, "StatusChange", "WillSupply", None),          # going backwards
    (RState.REQUESTED, "CancelResponse", "Cancelled", "Y"),         # nothing asked
    (RState.REQUESTED, "RenewResponse", "Loaned", "Y"),
    (RState.RECEIVED, "StatusChange", "CopyCompleted", None),       # a copy status on a loan
    (RState.COMPLETED, "StatusChange", "Loaned", None),             # after the end
])
def test_messages_out_of_turn_are_refused(state, reason, status, answer):
    got = ill.requester_event(state, reason, status, answer)
    assert got.refused and got.event is None and got.why


def test_supplier_events_for_every_action_but_shipped_forward():
    for action in m.Action:
        ev = ill.supplier_event(action.value)
        assert (ev is None) == (action is m.Action.SHIPPED_FORWARD)
    assert ill.supplier_event("Borrow") is None


def test_informational_actions_are_answered_in_every_supplier_state():
    for s in SState:
        if s is SState.REQUEST_RECEIVED:
            continue          # never seen by a partner: it is decided in the same transaction
        for ev in (SEvent.A_STATUS_REQUEST, SEvent.A_NOTIFICATION):
            assert SUPPLIER.apply(s, ev, Actor.PARTNER) is s


def test_auto_answers_are_legal_answers_of_the_state_they_leave():
    for (state, asked), answer in ill.AUTO_ANSWER.items():
        after = SUPPLIER.apply(state, asked, Actor.PARTNER)
        if answer is SEvent.CANCEL_YES:
            assert after is SState.CANCELLED
        else:
            assert answer in (SEvent.CANCEL_NO, SEvent.RENEW_NO) and after is state


_statuses = st.sampled_from([s.value for s in m.Status])
_reasons = st.sampled_from([r.value for r in m.ReasonForMessage])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_reasons, _statuses, st.sampled_from([None, "Y", "N"])), max_size=12))
def test_any_sequence_of_supplier_messages_keeps_the_leg_in_a_state_of_the_table(msgs):
    state = RState.REQUESTED
    for reason, status, answer in msgs:
        got = ill.requester_event(state, reason, status, answer)
        if got.event is not None:
            assert not got.refused
            state = REQUESTER.apply(state, got.event, Actor.PARTNER)
        assert state in REQUESTER.transitions
