"""Loans: check-out (the loan limit, the copy, the card, the counter: the whole decision
of a check-out is :func:`check_out`), self-checkout kiosks, renewals, lending by home
delivery, the mobile library's loan terms and reading-group sets lent whole."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Iterable

from ..item_table import GONE, ItemStatus
from ..model import Decision, Item, Loan, Patron, Request
from ..profiles import Profile
from ..reasons import OK, decide
from ..table import State
from .cards import can_lend_to_proxy, card_usable_at, card_valid, is_mobile_branch, is_mobile_loan
from .common import card_expired, delivery_offered


def due_date(profile: Profile, patron: Patron, item: Item, now: datetime) -> date:
    rule = profile.loans[patron.category]
    return now.date() + timedelta(days=rule.days)


def can_check_out(profile: Profile, patron: Patron, item: Item, request: Request | None,
                  now: datetime) -> Decision:
    """Loan limit per card category (all branches together, partner items included)."""
    rule = profile.loans.get(patron.category)
    if rule is None:
        return decide("no_loan_rule")
    if card_expired(patron, now):
        return decide("card_expired", expired=patron.card_expires)
    if not item.circulating or item.material_type == "reference":
        return decide("item_not_circulating")
    if item.set_code is not None:
        return decide("reading_set_whole_only", set_code=item.set_code)
    if rule.limit is not None and len(patron.loans) >= rule.limit:
        return decide("loan_limit", limit=rule.limit)
    return decide(due=due_date(profile, patron, item, now))


def can_use_kiosk(profile: Profile, branch: str, item: Item) -> Decision:
    """A check-out at a self-checkout machine (channel "kiosk"): refused where the
    branch has none and for the materials the profile excludes (Hiroshima: 湯来河野閲覧室を
    除く全館に設置; 雑誌等一部の資料についてはご利用いただけない)."""
    k = profile.kiosk
    if branch in k.branches_without:
        return decide("kiosk_not_here", branch=branch)
    if item.material_type in k.excluded_materials:
        return decide("kiosk_material_excluded", material=item.material_type)
    return OK


def renewal_rule(profile: Profile, loan: Loan):
    """The renewal rule of ``loan``: the delivery rule for a shipped loan when the
    profile has one, else the profile's ``[renewal]``."""
    if loan.delivery and profile.delivery is not None:
        return profile.delivery.renewal
    return profile.renewal


def can_renew(profile: Profile, loan: Loan, now: datetime, *, channel: str,
              someone_waiting: bool) -> Decision:
    """Renewal; ``details['due']`` is the new due date when allowed. A shipped loan
    (``loan.delivery``) follows the profile's ``[delivery.renewal]`` rule."""
    mobile = profile.mobile
    if mobile is not None and is_mobile_loan(profile, loan) and not mobile.renewable:
        return decide("mobile_loan_not_renewable")
    r = renewal_rule(profile, loan)
    if r.channels is not None and channel not in r.channels:
        return decide("channel_not_allowed", channels=sorted(r.channels))
    today = now.date()
    if r.requires_no_waiting and someone_waiting:
        return decide("someone_waiting")
    if (r.web_renewal_blocks_counter and loan.renewed_via in ("web", "opac")
            and channel not in ("web", "opac")):
        return decide("web_renewal_not_repeatable_at_counter")
    if r.max is not None and loan.renewals >= r.max:
        return decide("renewal_limit", max=r.max)
    if r.window_days_before_due is not None and today < loan.due - timedelta(days=r.window_days_before_due):
        return decide("renewal_too_early", opens=loan.due - timedelta(days=r.window_days_before_due))
    if r.window_days_after_due is not None and today > loan.due + timedelta(days=r.window_days_after_due):
        return decide("renewal_too_late")
    base_kind = r.overdue_base if today > loan.due else r.base
    base = {"today": today, "due": loan.due,
            "earlier_of_today_and_due": min(today, loan.due)}[base_kind]
    new_due = base + timedelta(days=r.days)
    if new_due <= loan.due:
        return decide("renewal_not_extending")
    return decide(due=new_due)


def can_check_out_delivery(profile: Profile, patron: Patron, item: Item, request: Request | None,
                           now: datetime) -> Decision:
    """Lending by shipping (loans.channel "delivery"): only the copy readied for the
    patron's own delivery request, only while registered, only the library's own
    copies of the delivery materials; the loan limit is the category's, counter loans
    included (窓口貸出と合わせて10冊以内); ``details['due']`` is ``delivery.days`` later
    (往復の配送期間を含む)."""
    refused = delivery_offered(profile)
    if refused is not None:
        return refused
    d = profile.delivery
    assert d is not None                 # delivery_offered refuses a profile without delivery
    if request is None or not request.delivery:
        return decide("delivery_request_required")
    if not patron.delivery_registered:
        return decide("delivery_not_registered")
    if (item.material_type not in d.materials or item.owner_library != profile.system
            or item.partner or item.ill):
        return decide("delivery_material_not_offered", material=item.material_type)
    decision = can_check_out(profile, patron, item, request, now)
    if not decision.allowed:
        return decision
    return decide(due=now.date() + timedelta(days=d.days))


def mobile_loan_terms(profile: Profile, patron: Patron, now: datetime, *,
                      next_visit: date | None, school_stop: bool) -> Decision:
    """A loan at a stop of the mobile library: at a school stop at most
    ``mobile.school_stop_limit`` loans per person (学校内での児童・生徒への貸出は、一人5冊まで);
    ``details['due']`` is the next visit to the same stop (約1か月(次回巡回日まで)), or
    the category's loan days when no visit is scheduled (or ``due = "loan_days"``)."""
    m = profile.mobile
    if m is None:
        raise ValueError(f"{profile.system}: no [mobile] rules")
    if school_stop and m.school_stop_limit is not None and len(patron.loans) >= m.school_stop_limit:
        return decide("school_stop_limit", limit=m.school_stop_limit)
    if m.due == "next_visit" and next_visit is not None and next_visit > now.date():
        return decide(due=next_visit, next_visit=next_visit)
    return decide(due=now.date() + timedelta(days=profile.loans[patron.category].days), next_visit=None)


def can_check_out_set(profile: Profile, patron: Patron, copies: Iterable[Item], branch: str,
                      now: datetime) -> Decision:
    """読書会用図書: a whole set (``copies``: every copy with the set's code; ``on_loan``
    marks any that is not on the shelf) to a group or school card, at a branch that
    lends sets. All copies or none; they count against the category's loan limit
    (each copy is one loan). ``details['due']`` from the category's loan days."""
    rs = profile.reading_sets
    if rs is None or patron.category not in rs.categories:
        return decide("reading_set_category")
    if card_expired(patron, now):
        return decide("card_expired", expired=patron.card_expires)
    if branch not in rs.lend_at:
        return decide("reading_set_lend_at", branches=sorted(rs.lend_at))
    copies = list(copies)
    missing = sorted(c.barcode for c in copies if c.on_loan or not c.circulating)
    if len(copies) != rs.copies or missing:
        return decide("reading_set_incomplete", copies=len(copies), expected=rs.copies, missing=missing)
    rule = profile.loans[patron.category]
    if rule.limit is not None and len(patron.loans) + len(copies) > rule.limit:
        return decide("loan_limit", limit=rule.limit, room=max(0, rule.limit - len(patron.loans)))
    return decide(due=now.date() + timedelta(days=rule.days))


# ---------------------------------------------------------------- the decision of a check-out

SCHOOL_VISIT = "school_visit"     # a visit of the mobile library to a school (calendar_entries.kind)


class UnknownStop(LookupError):
    """A check-out at a stop of the mobile library that is not in its schedule (a
    mistyped stop must not silently lose the school-stop limit)."""


@dataclass(frozen=True)
class CheckOut:
    """Everything the decision of one check-out reads (``circulation/loans.py`` loads it
    under its locks)."""
    branch: str                        # the counter (kiosk, mobile library) that lends
    channel: str                       # counter, kiosk, delivery, web ...
    patron: Patron                     # the card holder, with open loans and live requests
    card_system: str                   # the library whose card it is
    item: Item                         # the copy
    status: str                        # its items.status (lifecycle.item_table.ItemStatus)
    at_branch: str | None = None       # where the copy is (items.current_branch)
    open_loan: bool = False            # the copy has an open loan
    secured: Request | None = None     # the request the copy is secured for (in transit, on a hold shelf)
    first_waiting: Request | None = None   # the title's first QUEUED request (read when walk-ins do not come first)
    proxy: str | None = None           # someone borrowing with the holder's card (代理での貸出)
    consented: tuple[str, ...] = ()    # the proxies the holder's live consents name
    counter_kind: str = "library"      # kind of the lending branch (library, mobile ...)
    counter_system_kind: str | None = None   # "city" or "university": the lending branch's library
    stop: str | None = None            # the mobile library's stop lent at
    stop_visits: tuple[tuple[date, str], ...] = ()   # that stop's scheduled visits (day, kind), by day


def mobile_terms_at_stop(profile: Profile, patron: Patron, now: datetime, stop: str | None,
                         visits: Iterable[tuple[date, str]]) -> Decision:
    """:func:`mobile_loan_terms` for a loan at ``stop`` of the mobile library: due on the
    next scheduled visit there, the school-stop limit where any visit is a school visit.
    Without a stop, the category's loan days. A stop without visits raises
    :class:`UnknownStop`."""
    if stop is None:
        return mobile_loan_terms(profile, patron, now, next_visit=None, school_stop=False)
    visits = list(visits)
    if not visits:
        raise UnknownStop(stop)
    later = [day for day, _ in visits if day > now.date()]
    school = any(kind == SCHOOL_VISIT for _, kind in visits)
    d = mobile_loan_terms(profile, patron, now, next_visit=later[0] if later else None, school_stop=school)
    return decide(d.code, stop=stop, school_stop=school, **d.details)


def decide_check_out(profile: Profile, case: CheckOut, now: datetime) -> Decision:
    """The whole decision of lending ``case.item`` to ``case.patron`` at ``case.branch``
    (``profile``: the lending branch's). In order: the card belongs to this system
    (``card_not_valid_here``) and may be used here (:func:`~lifecycle.policies.cards.card_usable_at`);
    a proxy has the holder's consent; the copy is this system's (or a partner's / ILL
    copy: ``item_other_system``), not on loan (``item_on_loan``), not secured for someone
    else (``held_for_another_patron``), not in transit (``item_in_transit``), not lost or
    withdrawn (``item_not_available``); where walk-ins do not come first, not wanted by
    the first in the queue; a partner university's copy only over a city counter, where
    it waits (``partner_lend_at_counter``); the kiosk's limits; the loan rules
    (:func:`can_check_out`, or :func:`can_check_out_delivery` for channel ``delivery``);
    at the mobile library its terms (:func:`mobile_terms_at_stop`).

    Allowed: ``details['due']`` (before it is moved to an open day of the branch),
    ``details['proxy']`` (the proxy's name as compared, or None) and
    ``details['request_id']`` (the patron's own hold this loan fulfils, or None)."""
    patron, item = case.patron, case.item
    if case.card_system != profile.system:
        return decide("card_not_valid_here", library=case.card_system)
    usable = card_usable_at(profile, patron, case.branch, now)
    if not usable.allowed:
        return usable
    proxy = None
    if case.proxy is not None:
        consent = can_lend_to_proxy(profile, case.proxy, case.consented)
        if not consent.allowed:
            return consent
        proxy = consent.details["proxy"]
    if item.owner_library != profile.system and not item.partner and not item.ill:
        return decide("item_other_system", library=item.owner_library)
    if case.open_loan or case.status == ItemStatus.ON_LOAN:
        return decide("item_on_loan")
    own = None
    if case.secured is not None:
        if case.secured.patron_card != patron.card_number:
            return decide("held_for_another_patron", request_id=int(case.secured.id))
        if case.secured.state != State.ON_HOLD_SHELF:
            return decide("item_in_transit", request_id=int(case.secured.id))
        own = case.secured
    elif case.status == ItemStatus.IN_TRANSIT:
        return decide("item_in_transit")
    elif ItemStatus(case.status) in GONE:
        return decide("item_not_available", status=case.status)
    elif not profile.walk_in_first:
        first = case.first_waiting
        if first is not None and first.patron_card != patron.card_number:
            return decide("held_for_another_patron", request_id=int(first.id))
    if item.partner and (case.channel != "counter" or case.counter_kind == "mobile"
                         or case.counter_system_kind != "city"
                         or (case.at_branch and case.at_branch != case.branch)):
        return decide("partner_lend_at_counter", branch=case.at_branch)
    if case.channel == "kiosk":
        kiosk = can_use_kiosk(profile, case.branch, item)
        if not kiosk.allowed:
            return kiosk
    lend = can_check_out_delivery if case.channel == "delivery" else can_check_out
    decision = lend(profile, patron, item, own, now)
    if not decision.allowed:
        return decision
    if is_mobile_branch(profile, case.branch):
        decision = mobile_terms_at_stop(profile, patron, now, case.stop, case.stop_visits)
        if not decision.allowed:
            return decision
    return decide(due=decision.details["due"], proxy=proxy,
                  request_id=int(own.id) if own is not None else None)


def decide_renewal(profile: Profile, patron: Patron, loan: Loan, now: datetime, *, is_open: bool,
                   state: str, channel: str, someone_waiting: bool, by_lender: bool = False) -> Decision:
    """The whole decision of renewing ``loan`` (``profile``: the lending branch's): only
    an open loan (``is_open``: not returned and ON_LOAN or OVERDUE; else ``not_on_loan``
    with its ``state``), not one another library lent us over ISO 18626 (``by_lender``:
    its lender decides, ``renewal_by_lender``), not after the card expired (団体貸出),
    then :func:`can_renew`."""
    if not is_open:
        return decide("not_on_loan", state=state)
    if by_lender:
        return decide("renewal_by_lender")
    valid = card_valid(patron, now)
    if not valid.allowed:
        return valid
    return can_renew(profile, loan, now, channel=channel, someone_waiting=someone_waiting)
