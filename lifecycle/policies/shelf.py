"""The hold shelf: the last day a patron can collect a hold (取置期限), counted in the
pickup branch's open days or calendar days as the profile says."""
from __future__ import annotations

from datetime import date, datetime, timedelta

from ..calendar import BranchCalendar
from ..profiles import Profile


def shelf_deadline(profile: Profile, branch_calendar: BranchCalendar, ready_at: datetime,
                   contacted_at: datetime | None = None) -> date:
    """Last day the patron can collect a hold at the pickup branch.

    Counted from the day it was ready (割当日), or for ``start =
    "contact_or_allocation"`` from the contact day when there was one (連絡日).
    ``open_days``: the N-th open day after the start day; ``calendar_days``: N days
    later, moved to the next open day if the branch is closed then."""
    s = profile.shelf
    start = ready_at.date()
    if s.start == "contact_or_allocation" and contacted_at is not None:
        start = max(start, contacted_at.date())
    if s.count == "open_days":
        return branch_calendar.add_open_days(start, s.days)
    return branch_calendar.next_open_day(start + timedelta(days=s.days))
