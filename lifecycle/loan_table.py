"""A loan's life, as data: the loan table beside the request table of
:mod:`lifecycle.table`, in the same shape (h11's ``_state.py``).

One table ``TRANSITIONS = {state: {event: new_state}}``, one table ``ACTORS =
{event: roles}`` and :func:`apply`. A loan is created by ``CHECK_OUT`` in
:data:`INITIAL` (the write path is ``circulation.store.open_loan``); from then on
``circulation.store.loan_transition`` is the only code that changes its state, and it
asks :func:`apply` first.

A loan made to fill a request moves that request too (CHECK_OUT, RENEW,
DUE_DATE_PASSED, CHECK_IN, DECLARE_LOST in the request table); the loan table does
not know about requests, as the request table does not know about loans.
"""
from __future__ import annotations

from enum import Enum

from .table import IllegalTransition, Role


class LoanState(str, Enum):
    ON_LOAN = "ON_LOAN"
    OVERDUE = "OVERDUE"          # the due date has passed (the nightly job marks it)
    LOST = "LOST"                # declared lost: still open, the copy cannot be lent
    RETURNED = "RETURNED"        # closed: checked in


class LoanEvent(str, Enum):
    CHECK_OUT = "CHECK_OUT"      # creates the loan (no state before it)
    RENEW = "RENEW"
    DUE_DATE_PASSED = "DUE_DATE_PASSED"
    CHECK_IN = "CHECK_IN"
    DECLARE_LOST = "DECLARE_LOST"


S, E, R = LoanState, LoanEvent, Role

INITIAL = S.ON_LOAN
CREATED_BY = E.CHECK_OUT

TRANSITIONS: dict[LoanState, dict[LoanEvent, LoanState]] = {
    S.ON_LOAN: {
        E.RENEW: S.ON_LOAN,
        E.DUE_DATE_PASSED: S.OVERDUE,
        E.CHECK_IN: S.RETURNED,
        E.DECLARE_LOST: S.LOST,
    },
    S.OVERDUE: {
        E.RENEW: S.ON_LOAN,              # Hiroshima renews overdue loans (from the due date)
        E.CHECK_IN: S.RETURNED,
        E.DECLARE_LOST: S.LOST,
    },
    S.LOST: {
        E.CHECK_IN: S.RETURNED,          # it turned up and was checked in
    },
    S.RETURNED: {},
}

ACTORS: dict[LoanEvent, frozenset[Role]] = {
    E.CHECK_OUT: frozenset({R.STAFF, R.PATRON}),          # patron: self-checkout kiosk
    E.RENEW: frozenset({R.PATRON, R.STAFF, R.PARTNER}),
    E.DUE_DATE_PASSED: frozenset({R.SYSTEM}),
    E.CHECK_IN: frozenset({R.STAFF, R.PATRON}),           # patron: automatic return machine
    E.DECLARE_LOST: frozenset({R.STAFF, R.PARTNER}),
}

TERMINAL: frozenset[LoanState] = frozenset(s for s, exits in TRANSITIONS.items() if not exits)
# A loan the patron still has (renewable, or to be declared lost).
OPEN: frozenset[LoanState] = frozenset({S.ON_LOAN, S.OVERDUE})


def apply(state: LoanState | None, event: LoanEvent, role: Role | None = None) -> LoanState:
    """The loan's state after ``event`` (``state`` None: the loan does not exist yet,
    and only CHECK_OUT creates it); raises :class:`~lifecycle.table.IllegalTransition`.
    With ``role`` given, also checks that the role may trigger the event."""
    try:
        ev = LoanEvent(event)
        new = INITIAL if state is None and ev == CREATED_BY else TRANSITIONS[LoanState(state)][ev]
    except (KeyError, ValueError):
        raise IllegalTransition(state, event, role) from None
    if role is not None and Role(role) not in ACTORS[ev]:
        raise IllegalTransition(state, event, role, f"{Role(role).value} may not trigger {ev.value}")
    return new


def as_markdown() -> str:
    """The table as Markdown (docs/lifecycle.md embeds this output)."""
    who = lambda e: ", ".join(sorted(r.value for r in ACTORS[e]))  # noqa: E731
    lines = ["| loan state | event | new state | who |", "|---|---|---|---|",
             f"| — | {CREATED_BY.value} | {INITIAL.value} | {who(CREATED_BY)} |"]
    for s, exits in TRANSITIONS.items():
        if not exits:
            lines.append(f"| {s.value} | — (terminal) | | |")
        for e, n in exits.items():
            lines.append(f"| {s.value} | {e.value} | {n.value} | {who(e)} |")
    return "\n".join(lines)
