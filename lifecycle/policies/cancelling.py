"""Cancelling: who may cancel a request in which state through which channel, and how
long a request that ended without a loan stays in the patron's list."""
from __future__ import annotations

from datetime import datetime, timedelta

from ..model import Decision, Request
from ..profiles import Profile
from ..reasons import OK, REASON_STAFF_CANCEL, REASON_WEB_CANCEL, decide
from ..table import ACTORS, SECURED, TERMINAL, Event, Role, State
from .common import PATRON_CHANNELS

# Requests that ended without a loan: listed with the cancelled ones (取消済予約) for
# ``cancel.visible_days``, then purged.
CLOSED_VISIBLE: frozenset[State] = frozenset({State.CANCELLED, State.SHELF_EXPIRED, State.REJECTED,
                                              State.UNFILLED})

def can_cancel(profile: Profile, request: Request, now: datetime, *, channel: str,
               at_branch: str | None = None) -> Decision:
    """Patron channels (web, OPAC) cancel only before the copy is secured; staff
    (counter) cancel secured holds, at the pickup branch where the profile says so.
    An ILL request before shipping gives ``ill_cancel_requested`` (allowed: send
    Cancel and wait for CancelResponse)."""
    if request.state in TERMINAL:
        return decide("already_closed")
    if request.state in (State.SENT, State.WILL_SUPPLY, State.CONDITION_PENDING):
        return decide("ill_cancel_requested")
    if request.state in SECURED or request.state in (State.SHIPPED, State.CANCEL_PENDING):
        if channel in profile.cancel.patron_channels:
            return decide("secured_staff_only")
        if profile.cancel.secured_only_at_pickup_branch and at_branch != request.pickup_branch:
            return decide("secured_pickup_branch_only", pickup=request.pickup_branch)
        return OK
    if request.state in (State.ON_LOAN, State.OVERDUE, State.RECALLED, State.RETURNED,
                         State.AWAITING_LOAN_COMPLETED):
        return decide("already_closed")
    return OK


def decide_cancel(profile: Profile, request: Request, now: datetime, *, channel: str, role: Role | str,
                  at_branch: str | None = None) -> tuple[Decision, Event | None]:
    """The whole decision of cancelling ``request``, and the event that carries it out
    (None: nothing to do, or refused). :func:`can_cancel`; then a request whose
    cancellation was already sent to the partner answers ``ill_cancel_requested``
    again; a copy shipped to us cannot be cancelled here (``cancel_after_shipping``: it
    is cancelled when it arrives); an ILL request before shipping is REQUEST_CANCEL
    (staff and patrons only: ``staff_only``); a secured copy CANCEL_SECURED (staff only:
    ``secured_staff_only``), anything else CANCEL."""
    decision = can_cancel(profile, request, now, channel=channel, at_branch=at_branch)
    if not decision.allowed:
        return decision, None
    state = State(request.state)
    if state == State.CANCEL_PENDING:             # already asked; the partner answers
        return decide("ill_cancel_requested"), None
    if state == State.SHIPPED:                    # no CANCEL out of SHIPPED: the copy is on its way
        return decide("cancel_after_shipping", state=state.value), None
    if decision.code == "ill_cancel_requested":
        if Role(role) not in ACTORS[Event.REQUEST_CANCEL]:
            return decide("staff_only"), None
        return decision, Event.REQUEST_CANCEL
    event = Event.CANCEL_SECURED if state in SECURED else Event.CANCEL
    if Role(role) not in ACTORS[event]:
        return decide("secured_staff_only"), None
    return decision, event


def recorded_reason(reason: str, channel: str | None) -> str:
    """What a cancellation records as its reason (``requests.cancel_reason``): the one
    given, else WEBキャンセル for a patron's own channel and 窓口キャンセル for staff's."""
    return reason or (REASON_WEB_CANCEL if channel in PATRON_CHANNELS else REASON_STAFF_CANCEL)


def cancelled_visible(profile: Profile, request: Request, now: datetime, *,
                      last_change: datetime | None = None) -> bool:
    """A request that ended without a loan (:data:`CLOSED_VISIBLE`: cancelled,
    shelf-expired, refused, unfilled) stays in the patron's list ``cancel.visible_days``
    after it ended: its ``cancelled_at``, else ``last_change`` (when it last changed)."""
    ended = request.cancelled_at or last_change
    if request.state not in CLOSED_VISIBLE or ended is None:
        return False
    return now < ended + timedelta(days=profile.cancel.visible_days)


def purge_cutoff(profile: Profile, now: datetime) -> datetime:
    """Requests of :data:`CLOSED_VISIBLE` that ended at or before this time are no
    longer visible (:func:`cancelled_visible`) and are purged: the same rule, for a
    query over many rows."""
    return now - timedelta(days=profile.cancel.visible_days)
