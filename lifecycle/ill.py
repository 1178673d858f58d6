"""The two legs of an inter-library loan over ISO 18626, as tables (the h11 habit of
:mod:`lifecycle.table`).

A patron's request for a partner's item is one ``requests`` row moving through the
request table (SENT, WILL_SUPPLY, …, AWAITING_LOAN_COMPLETED).  Each attempt to
borrow it from one supplier of the rota is a **requester leg** (one
``requestingAgencyRequestId``); a partner's request to borrow from us is a
**supplier leg**.  The two tables below say which message or staff action moves a
leg from which state to which, and so also which messages are refused in which
state: anything a table does not list is answered with an ERROR confirmation.

Events are named after what causes them:

* ``S_<STATUS>``: a supplyingAgencyMessage carrying that status (RequestResponse,
  StatusChange; StatusRequestResponse and Notification only where legal, see
  :func:`requester_event`); ``CANCEL_YES``/``CANCEL_NO`` and ``RENEW_YES``/``RENEW_NO``
  are the CancelResponse and RenewResponse answers.
* ``A_<ACTION>``: a requestingAgencyMessage with that action (supplier side);
  ``A_RETRY_REQUEST`` is a Request of type Retry for a leg we offered a retry on.
* everything else is ours: a staff action or the system.

No I/O here, no protocol types: the connector maps messages to these events with
:func:`requester_event` and :func:`supplier_event`, using the code list values as
strings.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Actor(str, Enum):
    PARTNER = "partner"      # a message from the other agency
    STAFF = "staff"
    SYSTEM = "system"


@dataclass(frozen=True)
class Machine:
    """One leg's table: ``transitions[state][event] -> state`` and who may cause each event."""
    name: str
    transitions: dict
    actors: dict
    terminal: frozenset   # no way out but informational messages

    def allows(self, state, event, actor: Actor | None = None) -> bool:
        exits = self.transitions.get(state, {})
        return event in exits and (actor is None or actor in self.actors[event])

    def apply(self, state, event, actor: Actor | None = None):
        """The state after ``event``; raises :class:`IllegalLegTransition`."""
        if not self.allows(state, event):
            raise IllegalLegTransition(self.name, state, event)
        if actor is not None and actor not in self.actors[event]:
            raise IllegalLegTransition(self.name, state, event, f"{actor.value} may not cause {event.value}")
        return self.transitions[state][event]

    def events(self, state, actor: Actor | None = None) -> list:
        return [e for e in self.transitions.get(state, {}) if actor is None or actor in self.actors[e]]

    def as_markdown(self) -> str:
        lines = ["| state | event | new state | who |", "|---|---|---|---|"]
        for s, exits in self.transitions.items():
            if s in self.terminal:
                lines.append(f"| {s.value} | — (terminal) | | |")
                continue
            for e, n in exits.items():
                who = ", ".join(sorted(a.value for a in self.actors[e]))
                lines.append(f"| {s.value} | {e.value} | {n.value} | {who} |")
        return "\n".join(lines)


class IllegalLegTransition(Exception):
    def __init__(self, machine: str, state, event, why: str = ""):
        self.machine, self.state, self.event = machine, state, event
        super().__init__(why or f"{event.value} is not allowed in {machine} state {state.value}")


# =================================================================== requester leg

class RState(str, Enum):
    NEW = "NEW"                          # built, not yet accepted by the supplier
    SEND_FAILED = "SEND_FAILED"          # not delivered (down, ERROR confirmation): staff see it
    REQUESTED = "REQUESTED"              # the supplier confirmed the Request
    EXPECT_TO_SUPPLY = "EXPECT_TO_SUPPLY"
    WILL_SUPPLY = "WILL_SUPPLY"
    RETRY_POSSIBLE = "RETRY_POSSIBLE"    # the supplier's offer (cost, condition, …) waits for staff
    CANCEL_PENDING = "CANCEL_PENDING"    # Cancel sent, waiting for CancelResponse
    LOANED = "LOANED"                    # shipped to us
    RECEIVED = "RECEIVED"                # here (Received sent); the patron's hold shelf and loan
    RENEW_PENDING = "RENEW_PENDING"      # Renew sent, waiting for RenewResponse
    RECALLED = "RECALLED"
    RETURN_SHIPPED = "RETURN_SHIPPED"    # ShippedReturn sent
    # terminal
    COMPLETED = "COMPLETED"              # LoanCompleted
    UNFILLED = "UNFILLED"                # the rota moves on
    CANCELLED = "CANCELLED"
    RETRY_ACCEPTED = "RETRY_ACCEPTED"    # superseded by a Retry leg to the same supplier
    RETRY_DECLINED = "RETRY_DECLINED"    # the rota moves on
    TIMED_OUT = "TIMED_OUT"              # no answer in time, or given up after SEND_FAILED
    LOST = "LOST"                        # CompletedWithoutReturn


class REvent(str, Enum):
    # ours
    SEND_OK = "SEND_OK"                  # the Request was confirmed OK
    SEND_FAILED = "SEND_FAILED"          # not delivered after the retries, or ERROR confirmation
    GIVE_UP = "GIVE_UP"                  # no answer in time / staff skip this supplier
    CANCEL = "CANCEL"                    # send Cancel
    RECEIVE = "RECEIVE"                  # the copy arrived: send Received
    RENEW = "RENEW"                      # send Renew (a patron's renewal)
    SHIP_RETURN = "SHIP_RETURN"          # send ShippedReturn
    ACCEPT_RETRY = "ACCEPT_RETRY"        # staff accept the offer: a Retry request follows
    ACCEPT_CONDITIONS = "ACCEPT_CONDITIONS"  # conditions in a note (dialect): agreed by Notification
    DECLINE_RETRY = "DECLINE_RETRY"
    # the supplier's
    S_REQUEST_RECEIVED = "S_REQUEST_RECEIVED"
    S_EXPECT_TO_SUPPLY = "S_EXPECT_TO_SUPPLY"
    S_WILL_SUPPLY = "S_WILL_SUPPLY"
    S_RETRY_POSSIBLE = "S_RETRY_POSSIBLE"
    S_UNFILLED = "S_UNFILLED"
    S_LOANED = "S_LOANED"
    S_OVERDUE = "S_OVERDUE"
    S_RECALLED = "S_RECALLED"
    S_LOAN_COMPLETED = "S_LOAN_COMPLETED"
    S_COMPLETED_WITHOUT_RETURN = "S_COMPLETED_WITHOUT_RETURN"
    S_CANCELLED = "S_CANCELLED"
    CANCEL_YES = "CANCEL_YES"
    CANCEL_NO = "CANCEL_NO"
    RENEW_YES = "RENEW_YES"
    RENEW_NO = "RENEW_NO"


R, RE = RState, REvent
_OPEN = {  # what a supplier may answer while the request is open
    RE.S_EXPECT_TO_SUPPLY: R.EXPECT_TO_SUPPLY,
    RE.S_WILL_SUPPLY: R.WILL_SUPPLY,
    RE.S_RETRY_POSSIBLE: R.RETRY_POSSIBLE,
    RE.S_UNFILLED: R.UNFILLED,
    RE.S_CANCELLED: R.UNFILLED,          # a supplier that cancels on its own did not fill it
    RE.S_LOANED: R.LOANED,
    RE.CANCEL: R.CANCEL_PENDING,
    RE.GIVE_UP: R.TIMED_OUT,
}

REQUESTER_TRANSITIONS: dict[RState, dict[REvent, RState]] = {
    R.NEW: {RE.SEND_OK: R.REQUESTED, RE.SEND_FAILED: R.SEND_FAILED},
    R.SEND_FAILED: {RE.SEND_OK: R.REQUESTED, RE.SEND_FAILED: R.SEND_FAILED, RE.GIVE_UP: R.TIMED_OUT},
    R.REQUESTED: {RE.S_REQUEST_RECEIVED: R.REQUESTED, **_OPEN},
    R.EXPECT_TO_SUPPLY: dict(_OPEN),
    R.WILL_SUPPLY: {k: v for k, v in _OPEN.items() if k is not RE.S_EXPECT_TO_SUPPLY},
    R.RETRY_POSSIBLE: {
        RE.S_RETRY_POSSIBLE: R.RETRY_POSSIBLE,   # a new offer replaces the old one
        RE.S_UNFILLED: R.UNFILLED,
        RE.S_CANCELLED: R.UNFILLED,
        RE.ACCEPT_RETRY: R.RETRY_ACCEPTED,
        RE.ACCEPT_CONDITIONS: R.WILL_SUPPLY,
        RE.DECLINE_RETRY: R.RETRY_DECLINED,
        RE.S_LOANED: R.LOANED,                   # shipped with the conditions
        RE.CANCEL: R.CANCEL_PENDING,
        RE.GIVE_UP: R.TIMED_OUT,
    },
    R.CANCEL_PENDING: {
        RE.CANCEL_YES: R.CANCELLED,
        RE.S_CANCELLED: R.CANCELLED,
        RE.S_UNFILLED: R.CANCELLED,
        RE.CANCEL_NO: R.WILL_SUPPLY,
        RE.S_LOANED: R.LOANED,                   # too late: it comes, and goes back
        RE.S_WILL_SUPPLY: R.CANCEL_PENDING,      # crossed our Cancel
        RE.S_EXPECT_TO_SUPPLY: R.CANCEL_PENDING,
    },
    R.LOANED: {
        RE.RECEIVE: R.RECEIVED,
        RE.S_LOANED: R.LOANED,                   # a new due date before it arrived
        RE.S_OVERDUE: R.LOANED,
        RE.S_RECALLED: R.LOANED,                 # noted; it is sent back once received
        RE.S_COMPLETED_WITHOUT_RETURN: R.LOST,
    },
    R.RECEIVED: {
        RE.RENEW: R.RENEW_PENDING,
        RE.SHIP_RETURN: R.RETURN_SHIPPED,
        RE.S_LOANED: R.RECEIVED,                 # a new due date (some suppliers renew this way)
        RE.S_OVERDUE: R.RECEIVED,                # a notice to the patron
        RE.S_RECALLED: R.RECALLED,
        RE.S_COMPLETED_WITHOUT_RETURN: R.LOST,
    },
    R.RENEW_PENDING: {
        RE.RENEW_YES: R.RECEIVED,
        RE.RENEW_NO: R.RECEIVED,
        RE.S_LOANED: R.RENEW_PENDING,
        RE.S_OVERDUE: R.RENEW_PENDING,
        RE.S_RECALLED: R.RECALLED,
        RE.SHIP_RETURN: R.RETURN_SHIPPED,
        RE.S_COMPLETED_WITHOUT_RETURN: R.LOST,
    },
    R.RECALLED: {
        RE.SHIP_RETURN: R.RETURN_SHIPPED,
        RE.S_RECALLED: R.RECALLED,
        RE.S_OVERDUE: R.RECALLED,
        RE.RENEW_NO: R.RECALLED,                 # a RenewResponse that crossed the recall
        RE.RENEW_YES: R.RECALLED,
        RE.S_COMPLETED_WITHOUT_RETURN: R.LOST,
    },
    R.RETURN_SHIPPED: {
        RE.S_LOAN_COMPLETED: R.COMPLETED,
        RE.S_OVERDUE: R.RETURN_SHIPPED,          # crossed in the post
        RE.S_RECALLED: R.RETURN_SHIPPED,
        RE.RENEW_YES: R.RETURN_SHIPPED,
        RE.RENEW_NO: R.RETURN_SHIPPED,
        RE.S_COMPLETED_WITHOUT_RETURN: R.LOST,
    },
    R.COMPLETED: {}, R.UNFILLED: {}, R.CANCELLED: {}, R.RETRY_ACCEPTED: {},
    R.RETRY_DECLINED: {}, R.TIMED_OUT: {}, R.LOST: {},
}

_A = Actor
REQUESTER_ACTORS: dict[REvent, frozenset[Actor]] = {
    e: frozenset({_A.PARTNER}) for e in REvent
    if e.value.startswith("S_") or e.value.endswith(("_YES", "_NO"))
}
REQUESTER_ACTORS.update({
    RE.SEND_OK: frozenset({_A.SYSTEM}),
    RE.SEND_FAILED: frozenset({_A.SYSTEM}),
    RE.GIVE_UP: frozenset({_A.SYSTEM, _A.STAFF}),
    RE.CANCEL: frozenset({_A.STAFF, _A.SYSTEM}),
    RE.RECEIVE: frozenset({_A.STAFF}),
    RE.RENEW: frozenset({_A.STAFF, _A.SYSTEM}),
    RE.SHIP_RETURN: frozenset({_A.STAFF, _A.SYSTEM}),
    RE.ACCEPT_RETRY: frozenset({_A.STAFF}),
    RE.ACCEPT_CONDITIONS: frozenset({_A.STAFF}),
    RE.DECLINE_RETRY: frozenset({_A.STAFF}),
})

REQUESTER = Machine("requester", REQUESTER_TRANSITIONS, REQUESTER_ACTORS,
                    frozenset(s for s, exits in REQUESTER_TRANSITIONS.items() if not exits))

# Legs that end this way move the patron's request to the next supplier of the rota.
ROTA_MOVES_ON: frozenset[RState] = frozenset({R.UNFILLED, R.RETRY_DECLINED, R.TIMED_OUT})
# Legs in which the supplier still owes an answer (a timeout applies).
AWAITING_SUPPLIER: frozenset[RState] = frozenset({R.REQUESTED, R.EXPECT_TO_SUPPLY, R.CANCEL_PENDING})

_STATUS_EVENTS = {
    "RequestReceived": RE.S_REQUEST_RECEIVED, "ExpectToSupply": RE.S_EXPECT_TO_SUPPLY,
    "WillSupply": RE.S_WILL_SUPPLY, "RetryPossible": RE.S_RETRY_POSSIBLE,
    "Unfilled": RE.S_UNFILLED, "Loaned": RE.S_LOANED, "Overdue": RE.S_OVERDUE,
    "Recalled": RE.S_RECALLED, "LoanCompleted": RE.S_LOAN_COMPLETED,
    "CompletedWithoutReturn": RE.S_COMPLETED_WITHOUT_RETURN, "Cancelled": RE.S_CANCELLED,
}
# statuses of copies (CopyCompleted) are not events of a loan leg: refused


@dataclass(frozen=True)
class Inbound:
    """What one supplyingAgencyMessage means to a requester leg in ``state``.

    ``event`` None: nothing changes (an informational message); ``refused``: the
    message is answered with an ERROR confirmation and ``why``."""
    event: REvent | None
    refused: bool = False
    why: str = ""


def requester_event(state: RState, reason: str, status: str, answer: str | None) -> Inbound:
    """The event a supplyingAgencyMessage (reasonForMessage, status, answerYesNo) causes.

    * CancelResponse / RenewResponse: the answer (Y/N) is the event; an answer
      without a question outstanding is refused (a repeat after the answer is
      accepted and changes nothing).
    * RequestResponse / StatusChange: the status is the event; one the table does
      not allow in ``state`` is refused, a repeat of the status that led to
      ``state`` changes nothing.
    * StatusRequestResponse / Notification: informational; the status is applied
      only where the table allows it, otherwise nothing changes.
    """
    if reason in ("CancelResponse", "RenewResponse"):
        yes = (answer or "").upper() == "Y"
        kind = "CANCEL" if reason == "CancelResponse" else "RENEW"
        event = RE[f"{kind}_{'YES' if yes else 'NO'}"]
        if REQUESTER.allows(state, event):
            return Inbound(event)
        if kind == "CANCEL" and state in (R.CANCELLED, R.WILL_SUPPLY, R.LOANED):
            return Inbound(None)            # a repeated answer
        if kind == "RENEW" and state in (R.RECEIVED, R.RECALLED, R.RETURN_SHIPPED):
            return Inbound(None)
        return Inbound(None, True, f"{reason} without a {kind.title()} outstanding in {state.value}")
    status_event = _STATUS_EVENTS.get(status)
    if status_event is None:
        return Inbound(None, True, f"status {status} does not apply to a loan")
    if REQUESTER.allows(state, status_event):
        return Inbound(status_event)
    if reason in ("StatusRequestResponse", "Notification") or _repeat(state, status_event):
        return Inbound(None)
    return Inbound(None, True, f"status {status} is not expected in state {state.value}")


def _repeat(state: RState, event: REvent) -> bool:
    """``event`` is what brought the leg to ``state`` (a message sent twice)."""
    return any(exits.get(event) is state for exits in REQUESTER_TRANSITIONS.values())


# =================================================================== supplier leg

class SState(str, Enum):
    REQUEST_RECEIVED = "REQUEST_RECEIVED"  # the Request, before the holdings check
    EXPECT_TO_SUPPLY = "EXPECT_TO_SUPPLY"  # held by a member library: in the staff queue
    WILL_SUPPLY = "WILL_SUPPLY"            # on the branch's pull list
    RETRY_OFFERED = "RETRY_OFFERED"        # RetryPossible sent; a Retry request may follow
    CANCEL_REQUESTED = "CANCEL_REQUESTED"  # the requester asked to cancel: staff answer
    SHIPPED = "SHIPPED"                    # Loaned sent; our copy is on loan to the partner
    RECEIVED = "RECEIVED"                  # the partner has it
    RENEW_REQUESTED = "RENEW_REQUESTED"    # the partner asked to renew: staff answer
    RECALLED = "RECALLED"
    RETURN_SHIPPED = "RETURN_SHIPPED"      # the partner sent it back
    # terminal
    COMPLETED = "COMPLETED"                # checked in here: LoanCompleted sent
    UNFILLED = "UNFILLED"
    CANCELLED = "CANCELLED"
    LOST = "LOST"                          # CompletedWithoutReturn sent


class SEvent(str, Enum):
    # the requester's
    A_STATUS_REQUEST = "A_STATUS_REQUEST"
    A_RECEIVED = "A_RECEIVED"
    A_CANCEL = "A_CANCEL"
    A_RENEW = "A_RENEW"
    A_SHIPPED_RETURN = "A_SHIPPED_RETURN"
    A_NOTIFICATION = "A_NOTIFICATION"
    A_RETRY_REQUEST = "A_RETRY_REQUEST"
    # ours
    ACCEPT = "ACCEPT"                      # a member holds it: ExpectToSupply (or nothing, by dialect)
    NOT_HELD = "NOT_HELD"                  # nobody holds it: Unfilled NotHeld
    WILL_SUPPLY = "WILL_SUPPLY"
    OFFER_RETRY = "OFFER_RETRY"            # RetryPossible (cost, condition, on loan, not found as cited)
    CANNOT_SUPPLY = "CANNOT_SUPPLY"        # Unfilled
    SHIP = "SHIP"                          # Loaned with the due date
    CANCEL_YES = "CANCEL_YES"
    CANCEL_NO = "CANCEL_NO"
    RENEW_YES = "RENEW_YES"
    RENEW_NO = "RENEW_NO"
    RECALL = "RECALL"
    OVERDUE = "OVERDUE"                    # the overdue job: StatusChange Overdue
    CHECK_IN = "CHECK_IN"                  # back on our shelf: LoanCompleted
    DECLARE_LOST = "DECLARE_LOST"          # CompletedWithoutReturn


S, SE = SState, SEvent
_INFO = {SE.A_STATUS_REQUEST: None, SE.A_NOTIFICATION: None}   # every state: no change


def _with_info(state: SState, exits: dict) -> dict:
    return {**{e: state for e in _INFO}, **exits}


SUPPLIER_TRANSITIONS: dict[SState, dict[SEvent, SState]] = {
    S.REQUEST_RECEIVED: {SE.ACCEPT: S.EXPECT_TO_SUPPLY, SE.NOT_HELD: S.UNFILLED},
    S.EXPECT_TO_SUPPLY: _with_info(S.EXPECT_TO_SUPPLY, {
        SE.WILL_SUPPLY: S.WILL_SUPPLY, SE.OFFER_RETRY: S.RETRY_OFFERED,
        SE.CANNOT_SUPPLY: S.UNFILLED, SE.SHIP: S.SHIPPED, SE.A_CANCEL: S.CANCEL_REQUESTED}),
    S.WILL_SUPPLY: _with_info(S.WILL_SUPPLY, {
        SE.SHIP: S.SHIPPED, SE.OFFER_RETRY: S.RETRY_OFFERED, SE.CANNOT_SUPPLY: S.UNFILLED,
        SE.A_CANCEL: S.CANCEL_REQUESTED}),
    S.RETRY_OFFERED: _with_info(S.RETRY_OFFERED, {
        SE.A_RETRY_REQUEST: S.EXPECT_TO_SUPPLY, SE.A_CANCEL: S.CANCELLED,
        SE.CANNOT_SUPPLY: S.UNFILLED}),
    S.CANCEL_REQUESTED: _with_info(S.CANCEL_REQUESTED, {
        SE.CANCEL_YES: S.CANCELLED, SE.CANCEL_NO: S.WILL_SUPPLY, SE.A_CANCEL: S.CANCEL_REQUESTED}),
    S.SHIPPED: _with_info(S.SHIPPED, {
        SE.A_RECEIVED: S.RECEIVED, SE.A_RENEW: S.RENEW_REQUESTED, SE.A_SHIPPED_RETURN: S.RETURN_SHIPPED,
        SE.A_CANCEL: S.SHIPPED,            # too late: answered CancelResponse N at once
        SE.RECALL: S.RECALLED, SE.OVERDUE: S.SHIPPED, SE.CHECK_IN: S.COMPLETED,
        SE.DECLARE_LOST: S.LOST}),
    S.RECEIVED: _with_info(S.RECEIVED, {
        SE.A_RECEIVED: S.RECEIVED, SE.A_RENEW: S.RENEW_REQUESTED, SE.A_SHIPPED_RETURN: S.RETURN_SHIPPED,
        SE.A_CANCEL: S.RECEIVED, SE.RECALL: S.RECALLED, SE.OVERDUE: S.RECEIVED,
        SE.CHECK_IN: S.COMPLETED, SE.DECLARE_LOST: S.LOST}),
    S.RENEW_REQUESTED: _with_info(S.RENEW_REQUESTED, {
        SE.RENEW_YES: S.RECEIVED, SE.RENEW_NO: S.RECEIVED, SE.A_RENEW: S.RENEW_REQUESTED,
        SE.A_RECEIVED: S.RENEW_REQUESTED, SE.A_SHIPPED_RETURN: S.RETURN_SHIPPED,
        SE.RECALL: S.RECALLED, SE.OVERDUE: S.RENEW_REQUESTED, SE.CHECK_IN: S.COMPLETED,
        SE.DECLARE_LOST: S.LOST}),
    S.RECALLED: _with_info(S.RECALLED, {
        SE.A_RENEW: S.RECALLED,            # answered RenewResponse N at once
        SE.A_RECEIVED: S.RECALLED, SE.A_SHIPPED_RETURN: S.RETURN_SHIPPED, SE.OVERDUE: S.RECALLED,
        SE.CHECK_IN: S.COMPLETED, SE.DECLARE_LOST: S.LOST}),
    S.RETURN_SHIPPED: _with_info(S.RETURN_SHIPPED, {
        SE.A_SHIPPED_RETURN: S.RETURN_SHIPPED, SE.CHECK_IN: S.COMPLETED, SE.DECLARE_LOST: S.LOST}),
    S.COMPLETED: dict.fromkeys(_INFO, S.COMPLETED),
    S.UNFILLED: dict.fromkeys(_INFO, S.UNFILLED),
    S.CANCELLED: {**dict.fromkeys(_INFO, S.CANCELLED), SE.A_CANCEL: S.CANCELLED},
    S.LOST: dict.fromkeys(_INFO, S.LOST),
}

SUPPLIER_ACTORS: dict[SEvent, frozenset[Actor]] = {
    e: frozenset({_A.PARTNER}) for e in SEvent if e.value.startswith("A_")}
SUPPLIER_ACTORS.update({
    SE.ACCEPT: frozenset({_A.SYSTEM}), SE.NOT_HELD: frozenset({_A.SYSTEM}),
    SE.WILL_SUPPLY: frozenset({_A.STAFF}), SE.OFFER_RETRY: frozenset({_A.STAFF}),
    SE.CANNOT_SUPPLY: frozenset({_A.STAFF}), SE.SHIP: frozenset({_A.STAFF}),
    SE.CANCEL_YES: frozenset({_A.STAFF, _A.SYSTEM}), SE.CANCEL_NO: frozenset({_A.STAFF, _A.SYSTEM}),
    SE.RENEW_YES: frozenset({_A.STAFF, _A.SYSTEM}), SE.RENEW_NO: frozenset({_A.STAFF, _A.SYSTEM}),
    SE.RECALL: frozenset({_A.STAFF}), SE.OVERDUE: frozenset({_A.SYSTEM}),
    SE.CHECK_IN: frozenset({_A.STAFF}), SE.DECLARE_LOST: frozenset({_A.STAFF}),
})


SUPPLIER = Machine("supplier", SUPPLIER_TRANSITIONS, SUPPLIER_ACTORS,
                   frozenset({S.COMPLETED, S.UNFILLED, S.CANCELLED, S.LOST}))

# In these states a message from the requester is answered at once by the system:
# Cancel after shipping (N), Cancel after a retry offer or of a cancelled leg (Y),
# Renew of a recalled loan (N).
AUTO_ANSWER: dict[tuple[SState, SEvent], SEvent] = {
    (S.SHIPPED, SE.A_CANCEL): SE.CANCEL_NO,
    (S.RECEIVED, SE.A_CANCEL): SE.CANCEL_NO,
    (S.RETRY_OFFERED, SE.A_CANCEL): SE.CANCEL_YES,
    (S.CANCELLED, SE.A_CANCEL): SE.CANCEL_YES,
    (S.RECALLED, SE.A_RENEW): SE.RENEW_NO,
}

_ACTION_EVENTS = {
    "StatusRequest": SE.A_STATUS_REQUEST, "Received": SE.A_RECEIVED, "Cancel": SE.A_CANCEL,
    "Renew": SE.A_RENEW, "ShippedReturn": SE.A_SHIPPED_RETURN, "Notification": SE.A_NOTIFICATION,
}
# ShippedForward (the item goes on to another borrower) is not offered: UnsupportedActionType


def supplier_event(action: str) -> SEvent | None:
    """The event of a requestingAgencyMessage's action; None for one we do not support."""
    return _ACTION_EVENTS.get(action)


def as_markdown() -> str:
    """Both leg tables (docs/ill.md embeds this output)."""
    return ("### Requester leg\n\n" + REQUESTER.as_markdown()
            + "\n\n### Supplier leg\n\n" + SUPPLIER.as_markdown())
