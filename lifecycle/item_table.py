"""Where a copy is and what it is for, as data: the item table beside the request
table (:mod:`lifecycle.table`) and the loan table (:mod:`lifecycle.loan_table`),
in the same shape.

``items.status`` holds an :class:`ItemStatus` value; ``circulation.store.item_transition``
is the only code that changes it, and it asks :func:`apply` first. Copies are
loaded ``available``; ``withdrawn`` (除籍) comes from the catalogue's data, never from
an operation, and has no way out.

The table has no roles: who may move a copy is decided by the request or loan
operation that moves it (lending is a loan's CHECK_OUT, trapping a request's
TRAP_AT_PICKUP ...). Several events keep a copy in the status it has while it changes
place (``current_branch``): a copy on the hold shelf trapped again for the next
patron, a copy in transit sent on from where it arrived.
"""
from __future__ import annotations

from enum import Enum

from .table import IllegalTransition


class ItemStatus(str, Enum):
    AVAILABLE = "available"            # on a shelf (or in hand at a counter), lendable
    ON_LOAN = "on_loan"
    IN_TRANSIT = "in_transit"          # between branches (or to / from a partner library)
    ON_HOLD_SHELF = "on_hold_shelf"    # secured for a request at its pickup branch
    LOST = "lost"
    WITHDRAWN = "withdrawn"            # 除籍: set by the data, never by an operation


class ItemEvent(str, Enum):
    LEND = "LEND"                              # a loan's CHECK_OUT
    CHECK_IN = "CHECK_IN"                      # back in hand: its loan closed, or a copy found
    PUT_ON_HOLD_SHELF = "PUT_ON_HOLD_SHELF"    # trapped or arrived at the pickup branch
    SEND = "SEND"                              # into transit (to a pickup branch, home, a partner)
    RESHELVE = "RESHELVE"                      # nobody waiting (or a walk-in): on the shelf
    AWAIT_RECEIPT = "AWAIT_RECEIPT"            # a partner's copy scanned without staff: stays in transit
    DECLARE_LOST = "DECLARE_LOST"


S, E = ItemStatus, ItemEvent

INITIAL = S.AVAILABLE

TRANSITIONS: dict[ItemStatus, dict[ItemEvent, ItemStatus]] = {
    S.AVAILABLE: {
        E.LEND: S.ON_LOAN,
        E.PUT_ON_HOLD_SHELF: S.ON_HOLD_SHELF,
        E.SEND: S.IN_TRANSIT,
        E.RESHELVE: S.AVAILABLE,
    },
    S.ON_LOAN: {
        E.CHECK_IN: S.AVAILABLE,
        E.DECLARE_LOST: S.LOST,
    },
    S.IN_TRANSIT: {
        E.PUT_ON_HOLD_SHELF: S.ON_HOLD_SHELF,
        E.SEND: S.IN_TRANSIT,                  # arrived at the wrong branch: sent on
        E.RESHELVE: S.AVAILABLE,
        E.AWAIT_RECEIPT: S.IN_TRANSIT,
    },
    S.ON_HOLD_SHELF: {
        E.LEND: S.ON_LOAN,                     # to the patron it waits for
        E.PUT_ON_HOLD_SHELF: S.ON_HOLD_SHELF,  # its request ended: trapped for the next one
        E.SEND: S.IN_TRANSIT,
        E.RESHELVE: S.AVAILABLE,
    },
    S.LOST: {
        E.CHECK_IN: S.AVAILABLE,               # it turned up
    },
    S.WITHDRAWN: {},
}

TERMINAL: frozenset[ItemStatus] = frozenset(s for s, exits in TRANSITIONS.items() if not exits)
# A copy in hand at a branch, which routing sends somewhere (a copy marked on loan or
# lost that turns up in hand is checked in first).
IN_HAND: frozenset[ItemStatus] = frozenset({S.AVAILABLE, S.IN_TRANSIT, S.ON_HOLD_SHELF})
# Copies that no longer make a title "owned" (placing) and cannot be lent.
GONE: frozenset[ItemStatus] = frozenset({S.LOST, S.WITHDRAWN})


def apply(status: ItemStatus, event: ItemEvent) -> ItemStatus:
    """The copy's status after ``event``; raises :class:`~lifecycle.table.IllegalTransition`."""
    try:
        return TRANSITIONS[ItemStatus(status)][ItemEvent(event)]
    except (KeyError, ValueError):
        raise IllegalTransition(status, event) from None


def as_markdown() -> str:
    """The table as Markdown (docs/lifecycle.md embeds this output)."""
    lines = ["| item status | event | new status |", "|---|---|---|"]
    for s, exits in TRANSITIONS.items():
        if not exits:
            lines.append(f"| {s.value} | — (terminal) | |")
        for e, n in exits.items():
            lines.append(f"| {s.value} | {e.value} | {n.value} |")
    return "\n".join(lines)
