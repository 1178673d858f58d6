"""The loan and item tables beside the request table (lifecycle/loan_table.py,
lifecycle/item_table.py): shape, behaviour, and the docs that print them."""
from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifecycle import item_table, loan_table, table
from lifecycle.item_table import ItemEvent, ItemStatus
from lifecycle.loan_table import LoanEvent, LoanState
from lifecycle.table import IllegalTransition, Role

DOCS = Path(__file__).resolve().parents[1] / "docs" / "lifecycle.md"


def reachable(transitions, start):
    seen, todo = {start}, deque([start])
    while todo:
        for nxt in transitions[todo.popleft()].values():
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


# --------------------------------------------------------------------------- loans

def test_every_loan_state_has_a_row_and_is_reachable_from_a_check_out():
    assert set(loan_table.TRANSITIONS) == set(LoanState)
    assert reachable(loan_table.TRANSITIONS, loan_table.INITIAL) == set(LoanState)
    assert loan_table.TERMINAL == {LoanState.RETURNED}
    for s in set(LoanState) - loan_table.TERMINAL:
        assert reachable(loan_table.TRANSITIONS, s) & loan_table.TERMINAL, s


def test_every_loan_event_is_used_and_has_actors_the_request_table_agrees_with():
    used = {e for exits in loan_table.TRANSITIONS.values() for e in exits} | {loan_table.CREATED_BY}
    assert used == set(LoanEvent) and set(loan_table.ACTORS) == set(LoanEvent)
    for e in LoanEvent:
        # the same event moves a loan's request: the same roles may trigger it
        assert loan_table.ACTORS[e] == table.ACTORS[table.Event(e.value)], e


def test_a_loan_is_created_by_check_out_only():
    assert loan_table.apply(None, LoanEvent.CHECK_OUT, Role.STAFF) == LoanState.ON_LOAN
    with pytest.raises(IllegalTransition):
        loan_table.apply(None, LoanEvent.RENEW)
    with pytest.raises(IllegalTransition):
        loan_table.apply(None, LoanEvent.CHECK_OUT, Role.SYSTEM)


def test_a_loan_goes_overdue_is_renewed_lost_found_and_returned():
    s = loan_table.INITIAL
    for e, who in [(LoanEvent.DUE_DATE_PASSED, Role.SYSTEM), (LoanEvent.RENEW, Role.PATRON),
                   (LoanEvent.DECLARE_LOST, Role.STAFF), (LoanEvent.CHECK_IN, Role.STAFF)]:
        s = loan_table.apply(s, e, who)
    assert s == LoanState.RETURNED
    with pytest.raises(IllegalTransition):
        loan_table.apply(LoanState.LOST, LoanEvent.RENEW)
    with pytest.raises(IllegalTransition, match="patron may not"):
        loan_table.apply(LoanState.ON_LOAN, LoanEvent.DUE_DATE_PASSED, Role.PATRON)
    with pytest.raises(IllegalTransition):
        loan_table.apply("NOT_A_STATE", LoanEvent.RENEW)
    assert loan_table.OPEN == {LoanState.ON_LOAN, LoanState.OVERDUE}
    assert Role.SYSTEM not in loan_table.ACTORS[LoanEvent.RENEW]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(LoanEvent)), st.sampled_from(list(Role) + [None])),
                max_size=30))
def test_random_loan_event_sequences_follow_the_table_or_raise(steps):
    s = loan_table.INITIAL
    for event, role in steps:
        expected = loan_table.TRANSITIONS[s].get(event)
        if expected is not None and (role is None or role in loan_table.ACTORS[event]):
            s = loan_table.apply(s, event, role)
            assert s == expected
        else:
            with pytest.raises(IllegalTransition):
                loan_table.apply(s, event, role)


# --------------------------------------------------------------------------- items

def test_every_item_status_has_a_row_and_all_but_withdrawn_are_reachable():
    assert set(item_table.TRANSITIONS) == set(ItemStatus)
    assert reachable(item_table.TRANSITIONS, item_table.INITIAL) == set(ItemStatus) - {ItemStatus.WITHDRAWN}
    assert item_table.TERMINAL == {ItemStatus.WITHDRAWN}
    assert {e for exits in item_table.TRANSITIONS.values() for e in exits} == set(ItemEvent)


def test_routing_starts_from_a_copy_in_hand():
    # every status a branch can route from can go to the hold shelf, into transit or back on the shelf
    for s in item_table.IN_HAND:
        for e in (ItemEvent.PUT_ON_HOLD_SHELF, ItemEvent.SEND, ItemEvent.RESHELVE):
            assert e in item_table.TRANSITIONS[s], (s, e)
    for s in set(ItemStatus) - item_table.IN_HAND:
        assert ItemEvent.SEND not in item_table.TRANSITIONS[s], s
    # a lent copy is checked in before it goes anywhere; a withdrawn one never moves
    assert item_table.apply(ItemStatus.ON_LOAN, ItemEvent.CHECK_IN) == ItemStatus.AVAILABLE
    with pytest.raises(IllegalTransition):
        item_table.apply(ItemStatus.ON_LOAN, ItemEvent.PUT_ON_HOLD_SHELF)
    with pytest.raises(IllegalTransition):
        item_table.apply(ItemStatus.WITHDRAWN, ItemEvent.CHECK_IN)
    with pytest.raises(IllegalTransition):
        item_table.apply(ItemStatus.IN_TRANSIT, ItemEvent.LEND)
    assert item_table.GONE == {ItemStatus.LOST, ItemStatus.WITHDRAWN}


# --------------------------------------------------------------------------- docs

@pytest.mark.parametrize("module", [table, loan_table, item_table], ids=["requests", "loans", "items"])
def test_docs_print_each_table_as_the_code_has_it(module):
    md = module.as_markdown()
    assert md in DOCS.read_text(), f"docs/lifecycle.md is out of date: paste {module.__name__}.as_markdown()"
    rows = sum(len(x) for x in module.TRANSITIONS.values()) + len(module.TERMINAL)
    assert md.count("\n") + 1 == 2 + rows + (1 if module is loan_table else 0)
