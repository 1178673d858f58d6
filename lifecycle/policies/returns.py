"""Returns: where a loan may be handed back (return points, drop points, partner
counters, the mobile library) and the date a return counts from."""
from __future__ import annotations

from datetime import date, datetime

from ..model import Decision, Item, Loan, ReturnPoint
from ..profiles import Profile
from ..reasons import OK, decide
from .cards import is_mobile_branch, is_mobile_loan


def mobile_return_refused(profile: Profile, loan: Loan, place: ReturnPoint) -> Decision | None:
    """A mobile library loan goes back to the mobile library or to the branches in
    ``mobile.return_branches`` (中央図書館), there not through a drop point or the post;
    None when the return is fine (other loans: any library of the city)."""
    mobile = profile.mobile
    if mobile is None or not is_mobile_loan(profile, loan):
        return None
    if place.kind == "mobile" or is_mobile_branch(profile, place.branch):
        return None
    if place.branch in mobile.return_branches and place.kind not in ("drop_point", "post"):
        return None
    return decide("mobile_return_only", branches=sorted(mobile.return_branches))


def can_return_at(profile: Profile, loan: Loan, item: Item, place: ReturnPoint) -> Decision:
    r = profile.returns
    refused = mobile_return_refused(profile, loan, place)
    if refused is not None:
        return refused
    if r.partner_return_to_lending_counter and (item.partner or loan.partner):
        if place.kind not in ("counter", "return_machine") or place.branch != loan.branch:
            return decide("partner_return_to_lending_counter", branch=loan.branch)
    if place.kind == "drop_point":
        flags = {item.material_type, loan.material_type}
        if item.ill or loan.ill:
            flags.add("ill")
        if item.partner or loan.partner:
            flags.add("partner")
        if flags & r.drop_point_excluded:
            return decide("not_at_drop_point")
    return OK


def return_date(profile: Profile, place: ReturnPoint, dropped_at: datetime,
                processed_at: datetime) -> date:
    """The date a return counts from: when processed at a library for drop points
    (and posted returns where configured), otherwise when handed back."""
    if place.kind in profile.returns.processed_date_points:
        return processed_at.date()
    return dropped_at.date()


def decide_check_in(profile: Profile, loan: Loan, item: Item, place: ReturnPoint, now: datetime, *,
                    here_system: str, handed_at: datetime) -> Decision:
    """The whole decision of taking ``loan`` back at ``place`` (``profile``: the lending
    branch's; ``here_system``: the system of the branch taking it back; ``handed_at``:
    when it was handed in): only a branch of the lending system (``return_other_system``),
    :func:`can_return_at`. Allowed: ``details['returned_at']``, when the return counts
    from (:func:`return_date`: now for drop points, else when handed in), and
    ``details['overdue_days']``, the days late by then."""
    if profile.system != here_system:
        return decide("return_other_system", library=profile.system)
    decision = can_return_at(profile, loan, item, place)
    if not decision.allowed:
        return decision
    counts_from = return_date(profile, place, handed_at, now)
    returned_at = now if counts_from == now.date() else handed_at
    late = max(0, (returned_at.date() - loan.due).days)
    return decide("ok", returned_at=returned_at, overdue_days=late)
