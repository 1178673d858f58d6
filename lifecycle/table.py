"""Requester-side lifecycle of one patron request, as data.

One table ``TRANSITIONS = {state: {event: new_state}}`` (the shape of h11's
``_state.py``), one table ``ACTORS = {event: roles}`` saying who may trigger each
event, and ``apply()``.  The table does not know whether the leg is LOCAL, ILL or
PURCHASE: the engine chooses the event (e.g. after RETURNED it sends CLOSE for a
local copy and SHIP_RETURN for a partner's copy).

Sub-states of QUEUED: SUSPENDED is a state (patrons enter and leave it by events,
and a suspended request is never trapped).  Set membership (WAITING_FOR_PREDECESSOR)
and group membership (GROUP_MEMBER) are attributes of the request and are derived
by :func:`lifecycle.queue.choose_request_to_trap`, because they depend on the
other requests of the set or group, not on this request's own history.
"""
from __future__ import annotations

from enum import Enum


class State(str, Enum):
    NEW = "NEW"
    VALIDATED = "VALIDATED"
    QUEUED = "QUEUED"                      # 予約中
    SUSPENDED = "SUSPENDED"                # QUEUED, but not to be trapped for now
    PURCHASE_REVIEW = "PURCHASE_REVIEW"    # a request (リクエスト) for an item nobody holds
    # ILL leg (ISO 18626 messages are mapped to these events by a connector later)
    SENT = "SENT"
    WILL_SUPPLY = "WILL_SUPPLY"
    CONDITION_PENDING = "CONDITION_PENDING"
    CANCEL_PENDING = "CANCEL_PENDING"      # Cancel sent, waiting for CancelResponse
    SHIPPED = "SHIPPED"
    IN_TRANSIT = "IN_TRANSIT"              # 搬送中
    ON_HOLD_SHELF = "ON_HOLD_SHELF"        # 取置 / 貸出準備完了
    ON_LOAN = "ON_LOAN"
    OVERDUE = "OVERDUE"
    RECALLED = "RECALLED"
    RETURNED = "RETURNED"
    AWAITING_LOAN_COMPLETED = "AWAITING_LOAN_COMPLETED"
    # terminal
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    SHELF_EXPIRED = "SHELF_EXPIRED"
    UNFILLED = "UNFILLED"
    LOST = "LOST"


class Event(str, Enum):
    VALIDATE = "VALIDATE"
    REJECT = "REJECT"
    ENQUEUE = "ENQUEUE"
    SEND_TO_PARTNER = "SEND_TO_PARTNER"
    SEND_TO_PURCHASE_REVIEW = "SEND_TO_PURCHASE_REVIEW"
    PURCHASE_APPROVED = "PURCHASE_APPROVED"
    PUBLICATION_LAPSED = "PUBLICATION_LAPSED"
    SUSPEND = "SUSPEND"
    RESUME = "RESUME"
    TRAP_AT_PICKUP = "TRAP_AT_PICKUP"
    TRAP_ELSEWHERE = "TRAP_ELSEWHERE"
    ARRIVE_AT_PICKUP = "ARRIVE_AT_PICKUP"
    PARTNER_WILL_SUPPLY = "PARTNER_WILL_SUPPLY"
    PARTNER_CONDITIONS = "PARTNER_CONDITIONS"
    CONDITIONS_ACCEPTED = "CONDITIONS_ACCEPTED"
    ROTA_NEXT = "ROTA_NEXT"
    END_OF_ROTA = "END_OF_ROTA"
    PARTNER_SHIPPED = "PARTNER_SHIPPED"
    REQUEST_CANCEL = "REQUEST_CANCEL"
    CANCEL_ACCEPTED = "CANCEL_ACCEPTED"
    CANCEL_REFUSED = "CANCEL_REFUSED"
    RECEIVE_AT_PICKUP = "RECEIVE_AT_PICKUP"
    RECEIVE_ELSEWHERE = "RECEIVE_ELSEWHERE"
    CANCEL = "CANCEL"
    CANCEL_SECURED = "CANCEL_SECURED"
    GROUP_SATISFIED = "GROUP_SATISFIED"
    SHELF_EXPIRE = "SHELF_EXPIRE"
    CHECK_OUT = "CHECK_OUT"
    RENEW = "RENEW"
    DUE_DATE_PASSED = "DUE_DATE_PASSED"
    RECALL = "RECALL"
    CHECK_IN = "CHECK_IN"
    DECLARE_LOST = "DECLARE_LOST"
    CLOSE = "CLOSE"
    SHIP_RETURN = "SHIP_RETURN"
    LOAN_COMPLETED = "LOAN_COMPLETED"


class Role(str, Enum):
    PATRON = "patron"
    STAFF = "staff"
    SYSTEM = "system"
    PARTNER = "partner"


S, E = State, Event

INITIAL = S.NEW

_ILL_OPEN = (S.SENT, S.WILL_SUPPLY, S.CONDITION_PENDING)

TRANSITIONS: dict[State, dict[Event, State]] = {
    S.NEW: {E.VALIDATE: S.VALIDATED, E.REJECT: S.REJECTED, E.CANCEL: S.CANCELLED},
    S.VALIDATED: {
        E.ENQUEUE: S.QUEUED,
        E.SEND_TO_PARTNER: S.SENT,
        E.SEND_TO_PURCHASE_REVIEW: S.PURCHASE_REVIEW,
        E.REJECT: S.REJECTED,
        E.CANCEL: S.CANCELLED,
    },
    S.PURCHASE_REVIEW: {
        E.PURCHASE_APPROVED: S.QUEUED,      # the bought copy's queue, by acceptance date
        E.SEND_TO_PARTNER: S.SENT,          # borrow it instead of buying
        E.REJECT: S.REJECTED,               # hard to obtain / outside collection policy
        E.PUBLICATION_LAPSED: S.CANCELLED,  # Komae: not published within a month
        E.CANCEL: S.CANCELLED,
    },
    S.QUEUED: {
        E.SUSPEND: S.SUSPENDED,
        E.TRAP_AT_PICKUP: S.ON_HOLD_SHELF,
        E.TRAP_ELSEWHERE: S.IN_TRANSIT,
        E.CANCEL: S.CANCELLED,
        E.GROUP_SATISFIED: S.CANCELLED,
    },
    S.SUSPENDED: {
        E.RESUME: S.QUEUED,
        E.CANCEL: S.CANCELLED,
        E.GROUP_SATISFIED: S.CANCELLED,
    },
    S.SENT: {
        E.PARTNER_WILL_SUPPLY: S.WILL_SUPPLY,
        E.PARTNER_CONDITIONS: S.CONDITION_PENDING,
        E.ROTA_NEXT: S.SENT,
        E.END_OF_ROTA: S.UNFILLED,
        E.PARTNER_SHIPPED: S.SHIPPED,
        E.REQUEST_CANCEL: S.CANCEL_PENDING,
    },
    S.WILL_SUPPLY: {
        E.PARTNER_CONDITIONS: S.CONDITION_PENDING,
        E.ROTA_NEXT: S.SENT,
        E.END_OF_ROTA: S.UNFILLED,
        E.PARTNER_SHIPPED: S.SHIPPED,
        E.REQUEST_CANCEL: S.CANCEL_PENDING,
    },
    S.CONDITION_PENDING: {
        E.CONDITIONS_ACCEPTED: S.WILL_SUPPLY,
        E.ROTA_NEXT: S.SENT,
        E.END_OF_ROTA: S.UNFILLED,
        E.PARTNER_SHIPPED: S.SHIPPED,
        E.REQUEST_CANCEL: S.CANCEL_PENDING,
    },
    S.CANCEL_PENDING: {
        E.CANCEL_ACCEPTED: S.CANCELLED,
        E.CANCEL_REFUSED: S.WILL_SUPPLY,
        E.PARTNER_SHIPPED: S.SHIPPED,       # too late: it is returned instead
    },
    S.SHIPPED: {
        E.RECEIVE_AT_PICKUP: S.ON_HOLD_SHELF,
        E.RECEIVE_ELSEWHERE: S.IN_TRANSIT,
        E.DECLARE_LOST: S.LOST,
    },
    S.IN_TRANSIT: {
        E.ARRIVE_AT_PICKUP: S.ON_HOLD_SHELF,
        E.CANCEL_SECURED: S.CANCELLED,
        E.DECLARE_LOST: S.LOST,
    },
    S.ON_HOLD_SHELF: {
        E.CHECK_OUT: S.ON_LOAN,
        E.SHELF_EXPIRE: S.SHELF_EXPIRED,
        E.CANCEL_SECURED: S.CANCELLED,
    },
    S.ON_LOAN: {
        E.RENEW: S.ON_LOAN,
        E.DUE_DATE_PASSED: S.OVERDUE,
        E.RECALL: S.RECALLED,
        E.CHECK_IN: S.RETURNED,
        E.DECLARE_LOST: S.LOST,
    },
    S.OVERDUE: {
        E.RENEW: S.ON_LOAN,                 # Hiroshima: overdue loans renew from the due date
        E.RECALL: S.RECALLED,
        E.CHECK_IN: S.RETURNED,
        E.DECLARE_LOST: S.LOST,
    },
    S.RECALLED: {E.CHECK_IN: S.RETURNED, E.DECLARE_LOST: S.LOST},
    S.RETURNED: {E.CLOSE: S.COMPLETED, E.SHIP_RETURN: S.AWAITING_LOAN_COMPLETED},
    S.AWAITING_LOAN_COMPLETED: {E.LOAN_COMPLETED: S.COMPLETED},
    S.COMPLETED: {},
    S.CANCELLED: {},
    S.REJECTED: {},
    S.SHELF_EXPIRED: {},
    S.UNFILLED: {},
    S.LOST: {},
}

R = Role
ACTORS: dict[Event, frozenset[Role]] = {
    E.VALIDATE: frozenset({R.SYSTEM}),
    E.REJECT: frozenset({R.SYSTEM, R.STAFF}),
    E.ENQUEUE: frozenset({R.SYSTEM}),
    E.SEND_TO_PARTNER: frozenset({R.SYSTEM, R.STAFF}),
    E.SEND_TO_PURCHASE_REVIEW: frozenset({R.SYSTEM, R.STAFF}),
    E.PURCHASE_APPROVED: frozenset({R.STAFF}),
    E.PUBLICATION_LAPSED: frozenset({R.SYSTEM}),
    E.SUSPEND: frozenset({R.PATRON, R.STAFF}),
    E.RESUME: frozenset({R.PATRON, R.STAFF, R.SYSTEM}),
    E.TRAP_AT_PICKUP: frozenset({R.STAFF, R.SYSTEM}),
    E.TRAP_ELSEWHERE: frozenset({R.STAFF, R.SYSTEM}),
    E.ARRIVE_AT_PICKUP: frozenset({R.STAFF}),
    E.PARTNER_WILL_SUPPLY: frozenset({R.PARTNER}),
    E.PARTNER_CONDITIONS: frozenset({R.PARTNER}),
    E.CONDITIONS_ACCEPTED: frozenset({R.PATRON, R.STAFF}),
    E.ROTA_NEXT: frozenset({R.SYSTEM}),
    E.END_OF_ROTA: frozenset({R.SYSTEM}),
    E.PARTNER_SHIPPED: frozenset({R.PARTNER}),
    E.REQUEST_CANCEL: frozenset({R.PATRON, R.STAFF}),
    E.CANCEL_ACCEPTED: frozenset({R.PARTNER}),
    E.CANCEL_REFUSED: frozenset({R.PARTNER}),
    E.RECEIVE_AT_PICKUP: frozenset({R.STAFF}),
    E.RECEIVE_ELSEWHERE: frozenset({R.STAFF}),
    E.CANCEL: frozenset({R.PATRON, R.STAFF, R.SYSTEM}),
    # once the library has secured the copy, only staff may cancel (web shows why)
    E.CANCEL_SECURED: frozenset({R.STAFF}),
    E.GROUP_SATISFIED: frozenset({R.SYSTEM}),
    E.SHELF_EXPIRE: frozenset({R.SYSTEM}),
    E.CHECK_OUT: frozenset({R.STAFF, R.PATRON}),   # patron: self-checkout kiosk
    E.RENEW: frozenset({R.PATRON, R.STAFF, R.PARTNER}),
    E.DUE_DATE_PASSED: frozenset({R.SYSTEM}),
    E.RECALL: frozenset({R.STAFF, R.PARTNER}),
    E.CHECK_IN: frozenset({R.STAFF, R.PATRON}),    # patron: automatic return machine
    E.DECLARE_LOST: frozenset({R.STAFF, R.PARTNER}),
    E.CLOSE: frozenset({R.SYSTEM}),
    E.SHIP_RETURN: frozenset({R.STAFF}),
    E.LOAN_COMPLETED: frozenset({R.PARTNER}),
}

TERMINAL: frozenset[State] = frozenset(s for s, exits in TRANSITIONS.items() if not exits)

# States in which the library has secured a copy for the request: a patron can no
# longer cancel on the web (Iizuka, Komae).
SECURED: frozenset[State] = frozenset({S.IN_TRANSIT, S.ON_HOLD_SHELF})


class IllegalTransition(Exception):
    """``event`` is not allowed in ``state`` (or not for this ``role``); raised by the
    request, loan and item tables alike, with their states and events (or the strings
    that named none)."""

    def __init__(self, state: Enum | str | None, event: Enum | str, role: Enum | str | None = None, why: str = ""):
        self.state, self.event, self.role = state, event, role
        super().__init__(why or f"{getattr(event, 'value', event)} is not allowed in state "
                                f"{getattr(state, 'value', state)}")


def apply(state: State, event: Event, role: Role | None = None) -> State:
    """The state after ``event`` in ``state``; raises :class:`IllegalTransition`.

    With ``role`` given, also checks that the role may trigger the event."""
    try:
        new = TRANSITIONS[State(state)][Event(event)]
    except (KeyError, ValueError):
        raise IllegalTransition(state, event, role) from None
    if role is not None and Role(role) not in ACTORS[Event(event)]:
        raise IllegalTransition(state, event, role,
                                f"{Role(role).value} may not trigger {Event(event).value}")
    return new


def allowed_events(state: State, role: Role | None = None) -> list[Event]:
    """Events allowed in ``state`` (for ``role``), in table order."""
    return [e for e in TRANSITIONS[state] if role is None or role in ACTORS[e]]


def as_markdown() -> str:
    """The table as Markdown (docs/lifecycle.md embeds this output)."""
    lines = ["| state | event | new state | who |", "|---|---|---|---|"]
    for s, exits in TRANSITIONS.items():
        if not exits:
            lines.append(f"| {s.value} | — (terminal) | | |")
        for e, n in exits.items():
            who = ", ".join(sorted(r.value for r in ACTORS[e]))
            lines.append(f"| {s.value} | {e.value} | {n.value} | {who} |")
    return "\n".join(lines)
