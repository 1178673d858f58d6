"""Small facts several subjects of the rules share: which requests are live, whether a
patron lives, works or studies in an area, whether a card has expired, how late a
loan is, whether the profile offers home delivery."""
from __future__ import annotations

from datetime import datetime

from ..model import Decision, Loan, Patron
from ..profiles import Profile
from ..reasons import decide
from ..table import TERMINAL, State

# Channels a patron uses without staff (the counter, phone, FAX and paper forms are staff's).
PATRON_CHANNELS = ("web", "opac")

# A request still waiting for its copy: counted against the limits, listed as 予約中 etc.
LIVE_REQUEST_STATES = frozenset(State) - TERMINAL - {State.ON_LOAN, State.OVERDUE, State.RECALLED,
                                                      State.RETURNED, State.AWAITING_LOAN_COMPLETED}


def in_area(patron: Patron, home: frozenset[str], work: frozenset[str]) -> bool:
    return patron.home_municipality in home or (
        patron.work_or_school_municipality is not None and patron.work_or_school_municipality in work)


def card_expired(patron: Patron, now: datetime) -> bool:
    """The card's last valid day (``patron.card_expires``) has passed."""
    return patron.card_expires is not None and now.date() > patron.card_expires


def overdue_days(loan: Loan, now: datetime) -> int:
    """Days past the due date (0 when not overdue)."""
    return max(0, (now.date() - loan.due).days)


def is_overdue(loan: Loan, now: datetime) -> bool:
    return now.date() > loan.due


def delivery_offered(profile: Profile) -> Decision | None:
    d = profile.delivery
    if d is None or not d.enabled:
        return decide("delivery_not_offered")
    return None
