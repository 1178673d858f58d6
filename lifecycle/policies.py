"""Rules as pure functions of (profile, patron, item, request, now).

Every function returns a :class:`~lifecycle.model.Decision` (or a value) and
never raises for a rule refusal; it raises only for programming or configuration
errors.  Codes are stable; messages come from the catalogue in :mod:`lifecycle.reasons`.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta
from typing import Iterable

from .calendar import BranchCalendar
from .model import Decision, Item, Loan, Patron, Request, ReturnPoint
from .profiles import Profile
from .reasons import OK, REASONS, decide  # noqa: F401  (REASONS: the catalogue, for callers)
from .table import SECURED, TERMINAL, State


_LIVE_REQUEST_STATES = frozenset(State) - TERMINAL - {State.ON_LOAN, State.OVERDUE, State.RECALLED,
                                                      State.RETURNED, State.AWAITING_LOAN_COMPLETED}


# ---------------------------------------------------------------- loans

def overdue_days(loan: Loan, now: datetime) -> int:
    """Days past the due date (0 when not overdue)."""
    return max(0, (now.date() - loan.due).days)


def is_overdue(loan: Loan, now: datetime) -> bool:
    return now.date() > loan.due


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


def can_renew(profile: Profile, loan: Loan, now: datetime, *, channel: str,
              someone_waiting: bool) -> Decision:
    """Renewal; ``details['due']`` is the new due date when allowed. A shipped loan
    (``loan.delivery``) follows the profile's ``[delivery.renewal]`` rule."""
    if is_mobile_loan(profile, loan) and not profile.mobile.renewable:
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


# ---------------------------------------------------------------- placing

def _in_area(patron: Patron, home: frozenset[str], work: frozenset[str]) -> bool:
    return patron.home_municipality in home or (
        patron.work_or_school_municipality is not None and patron.work_or_school_municipality in work)


def _limit_bucket(profile: Profile, material: str) -> str | None:
    limits = profile.placing.limits
    if material in limits:
        return material
    return "book" if "book" in limits and material not in ("magazine",) else None


def can_place(profile: Profile, patron: Patron, item: Item | None, request: Request,
              now: datetime) -> Decision:
    """May ``patron`` place ``request`` (a reservation of an owned ``item``'s title,
    or a request for something not owned, ``item`` None)?  Checks, in order:
    category, eligibility by municipality, channel, material, blocks, limits,
    pickup branch and contact method."""
    p = profile.placing
    is_request = request.kind == "request" or item is None
    material = item.material_type if item is not None else request.material_type

    if patron.category not in profile.eligibility.categories:
        return decide("category_not_allowed")
    if card_expired(patron, now):
        return decide("card_expired", expired=patron.card_expires)
    e = profile.eligibility
    if not _in_area(patron, e.reservation_home, e.reservation_work_or_school):
        return decide("not_eligible_for_reservation")
    if is_request:
        if not p.request_channels:
            return decide("requests_not_offered")
        if not _in_area(patron, e.request_home, e.request_work_or_school):
            return decide("not_eligible_for_request")
        if request.channel not in p.request_channels:
            return decide("channel_not_allowed", channels=sorted(p.request_channels))
        if p.request_at_pickup_branch and request.submitted_at_branch != request.pickup_branch:
            return decide("request_not_at_pickup_branch")
        if material in p.request_refused_materials:
            return decide("request_material_refused")
        if (p.requests_only_after_publication and request.publication_date is not None
                and request.publication_date > now.date()):
            return decide("not_yet_published")
    else:
        if request.channel not in p.reservation_channels:
            return decide("channel_not_allowed", channels=sorted(p.reservation_channels))
        nr = p.not_reservable
        if "not_owned" in nr and item.owner_library != profile.system:
            return decide("not_owned")
        if "av" in nr and material == "av":
            return decide("material_av")
        if "ebook" in nr and material == "ebook":
            return decide("material_ebook")
        if "newest_issue" in nr and item.newest_issue:
            return decide("newest_issue")
        if "not_circulating" in nr and not item.circulating:
            return decide("not_circulating")
        if (p.magazine_from_release_date and material == "magazine" and item.lending_release is not None
                and now.date() < item.lending_release):
            return decide("magazine_not_released", release=item.lending_release)
        rule = branch_material_rule(profile, item)
        if rule is not None:
            if request.channel not in rule.channels:
                return decide("branch_material_channel", branch=rule.branch,
                              channels=sorted(rule.channels))
            if rule.only_when_on_loan and not item.on_loan:
                return decide("branch_material_on_loan_only", branch=rule.branch)

    refused, live = _blocks_and_totals(profile, patron, request, now)
    if refused is not None:
        return refused
    rule = branch_material_rule(profile, item) if not is_request else None
    if rule is not None and rule.limit is not None:
        same = [r for r in live if r.kind == "reservation" and r.rule_branch == rule.branch
                and r.material_type == rule.material]
        if len(same) >= rule.limit:
            return decide("limit_branch_material", branch=rule.branch, material=rule.material,
                          limit=rule.limit)
    bucket = _limit_bucket(profile, material)
    if bucket is not None:
        same = [r for r in live if r.kind == "reservation" and _limit_bucket(profile, r.material_type) == bucket]
        if len(same) >= p.limits[bucket]:
            return decide("limit_material", material=bucket, limit=p.limits[bucket])

    refused = mobile_card_placing(profile, patron, request)
    if refused is not None:
        return refused
    pickup = pickup_ok(profile, patron, request.pickup_branch)
    if not pickup.allowed:
        return pickup
    return contact_method_ok(profile, patron, request.contact_method)


def _blocks_and_totals(profile: Profile, patron: Patron, request: Request,
                       now: datetime) -> tuple[Decision | None, list[Request]]:
    """The checks every new request shares (reservations, リクエスト, partner requests):
    the overdue block, a duplicate of a live request for the same title, and the total
    limit. Returns (refusal or None, the patron's other live requests)."""
    p = profile.placing
    if p.overdue_block_days is not None and any(
            overdue_days(loan, now) > p.overdue_block_days for loan in patron.loans):
        return decide("blocked_overdue", days=p.overdue_block_days), []
    live = [r for r in patron.active_requests if r.state in _LIVE_REQUEST_STATES and r.id != request.id]
    if any(r.title_id == request.title_id for r in live):
        return decide("duplicate_request"), live
    if p.total_limit is not None and len(live) >= p.total_limit:
        return decide("limit_total", limit=p.total_limit), live
    return None, live


def branch_material_rule(profile: Profile, item: Item | None):
    """The profile's rule for reservations of ``item``'s material at its owning branch
    (Komae: 視聴覚資料の予約方法及び予約可能数は所蔵館・室で異なる), or None."""
    if item is None:
        return None
    for rule in profile.placing.branch_material_rules:
        if rule.branch == item.owning_branch and rule.material == item.material_type:
            return rule
    return None


def contact_method_ok(profile: Profile, patron: Patron, method: str) -> Decision:
    if method not in profile.placing.contact_methods:
        return decide("contact_method_not_offered", methods=sorted(profile.placing.contact_methods))
    if method == "email" and not patron.email:
        return decide("email_missing")
    if method == "phone" and not patron.phone:
        return decide("phone_missing")
    if method == "fax" and not patron.fax:
        return decide("fax_missing")
    return OK


def request_lapsed(profile: Profile, request: Request, now: datetime) -> bool:
    """Komae: a request for an announced new book is cancelled when it is still
    unpublished a set number of days after acceptance (PUBLICATION_LAPSED)."""
    wait = profile.placing.request_publication_wait_days
    if wait is None or request.kind != "request" or request.state != State.PURCHASE_REVIEW:
        return False
    unpublished = request.publication_date is None or request.publication_date > now.date()
    return unpublished and now >= request.placed_at + timedelta(days=wait)


# ---------------------------------------------------------------- hold shelf

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


def shelf_expired(profile: Profile, branch_calendar: BranchCalendar, request: Request,
                  now: datetime) -> bool:
    """True when an ON_HOLD_SHELF request is past its deadline (SHELF_EXPIRE)."""
    if request.state != State.ON_HOLD_SHELF or request.ready_at is None:
        return False
    return now.date() > shelf_deadline(profile, branch_calendar, request.ready_at, request.contacted_at)


# ---------------------------------------------------------------- cancellation

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


def cancelled_visible(profile: Profile, request: Request, now: datetime) -> bool:
    """Cancelled (and shelf-expired) requests stay in the patron's list N days."""
    if request.state not in (State.CANCELLED, State.SHELF_EXPIRED) or request.cancelled_at is None:
        return False
    return now < request.cancelled_at + timedelta(days=profile.cancel.visible_days)


# ---------------------------------------------------------------- returns

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


# ---------------------------------------------------------------- university partnership (連携貸出)

def can_request_partner_item(profile: Profile, patron: Patron, item: Item, request: Request,
                             now: datetime) -> Decision:
    """May ``patron`` ask for the university partner's copy ``item`` through a city
    counter (``request.submitted_at_branch``, the pickup)? Checks, in order: card category
    and area (as reservations), the partner (``profile.partners[item.partner]``), the
    channel (所定の用紙 at a counter), the material's exclusions, the lendable flag, the
    eligible collection (owning branch, shelving location, 図書資料), "on loan or reserved
    at request time" where the partner excludes it (``item.on_loan`` / ``item.held``),
    overdue blocks, duplicate and the total limit (reservations + requests + partner
    requests together), the pickup counter and the contact method.

    Codes: ``category_not_allowed``, ``not_eligible_for_reservation``, ``partner_unknown``,
    ``channel_not_allowed``, ``partner_material_excluded``, ``partner_item_not_lendable``,
    ``partner_collection_not_eligible``, ``partner_item_unavailable``, ``blocked_overdue``,
    ``duplicate_request``, ``limit_total``, ``pickup_not_service_point``,
    ``request_not_at_pickup_branch`` and those of :func:`contact_method_ok`."""
    e = profile.eligibility
    if patron.category not in e.categories:
        return decide("category_not_allowed")
    if not _in_area(patron, e.reservation_home, e.reservation_work_or_school):
        return decide("not_eligible_for_reservation")
    partner = profile.partners.get(item.partner or "")
    if partner is None:
        return decide("partner_unknown", partner=item.partner or item.owner_library)
    if request.channel not in partner.channels:
        return decide("channel_not_allowed", channels=sorted(partner.channels))
    material = item.material_type
    if material in partner.excluded_materials:
        return decide("partner_material_excluded", partner=partner.code, material=material)
    if not item.circulating or material == "reference":
        return decide("partner_item_not_lendable", partner=partner.code)
    if (item.owning_branch not in partner.eligible_branches
            or (partner.eligible_locations and item.location not in partner.eligible_locations)
            or material not in partner.eligible_materials):
        return decide("partner_collection_not_eligible", partner=partner.code,
                      branch=item.owning_branch, location=item.location, material=material)
    if partner.exclude_on_loan_or_held and (item.on_loan or item.held):
        return decide("partner_item_unavailable", partner=partner.code,
                      on_loan=item.on_loan, held=item.held)

    refused, _live = _blocks_and_totals(profile, patron, request, now)
    if refused is not None:
        return refused

    branch = profile.branch(request.pickup_branch)
    if branch is None or not branch.pickup or branch.kind == "mobile":
        return decide("pickup_not_service_point")
    if partner.lend_at_request_counter and request.submitted_at_branch != request.pickup_branch:
        return decide("request_not_at_pickup_branch")
    return contact_method_ok(profile, patron, request.contact_method)


# ---------------------------------------------------------------- login

_ALNUM = re.compile(r"[0-9A-Za-z]+")
_DIGITS = re.compile(r"[0-9]+")


def password_acceptable(profile: Profile, password: str) -> Decision:
    lg = profile.login
    if not lg.password_min <= len(password) <= lg.password_max:
        return decide("password_length", min=lg.password_min, max=lg.password_max)
    pattern = _ALNUM if lg.password_charset == "ascii_alnum" else _DIGITS
    if not pattern.fullmatch(password):
        return decide("password_charset")
    return OK


def login_locked(profile: Profile, failures: Iterable[datetime], now: datetime) -> Decision:
    """Locked when the last ``lockout_attempts`` consecutive failures (times of wrong
    passwords since the last success) end less than ``lockout_minutes`` ago."""
    lg = profile.login
    fails = sorted(f for f in failures if f <= now)
    if len(fails) >= lg.lockout_attempts:
        last = fails[-1]
        until = last + timedelta(minutes=lg.lockout_minutes)
        if now < until:
            return decide("locked_out", until=until)
    return OK


# ---------------------------------------------------------------- home delivery (有料図書宅配)

# Why staff may end a registration (住所が不正確でお届けできなかったり、配送費用をお支払い
# いただけなかった場合は…利用登録を取消させていただくことがあります), plus the patron's own wish.
DELIVERY_REVOCATION_REASONS: dict[str, str] = {
    "address_undeliverable": "住所が不正確でお届けできない",
    "postage_unpaid": "配送費用の未払い",
    "patron_request": "本人の申出",
}


def renewal_rule(profile: Profile, loan: Loan):
    """The renewal rule of ``loan``: the delivery rule for a shipped loan when the
    profile has one, else the profile's ``[renewal]``."""
    if loan.delivery and profile.delivery is not None:
        return profile.delivery.renewal
    return profile.renewal


def _delivery_offered(profile: Profile) -> Decision | None:
    d = profile.delivery
    if d is None or not d.enabled:
        return decide("delivery_not_offered")
    return None


def can_register_delivery(profile: Profile, patron: Patron, *, channel: str,
                          guardian_consent: bool) -> Decision:
    """May ``patron`` register for home delivery with a 利用申請書 handed in through
    ``channel`` ("counter" or "post")? Card category, residence / work / school in
    the city itself (wide-area card holders are refused), the channel, a guardian's
    consent for minors (``guardian_consent``: given with this application or already
    on record), and not already registered."""
    refused = _delivery_offered(profile)
    if refused is not None:
        return refused
    d = profile.delivery
    if patron.delivery_registered:
        return decide("delivery_already_registered")
    if patron.category not in d.categories:
        return decide("delivery_category_not_allowed")
    if not _in_area(patron, d.home, d.work_or_school):
        return decide("delivery_not_eligible_area")
    if channel not in d.registration_channels:
        return decide("channel_not_allowed", channels=sorted(d.registration_channels))
    if d.minors_need_guardian_consent and patron.minor and not guardian_consent:
        return decide("delivery_guardian_consent_required")
    return OK


def can_place_delivery(profile: Profile, patron: Patron, item: Item | None, request: Request,
                       now: datetime) -> Decision:
    """A reservation or request to be shipped (``request.delivery``): only for a
    registered patron still living / working / studying in the city, through the
    delivery channels, for the delivery materials; then every rule of
    :func:`can_place` (it counts against the same limits)."""
    refused = _delivery_offered(profile)
    if refused is not None:
        return refused
    d = profile.delivery
    if not patron.delivery_registered:
        return decide("delivery_not_registered")
    if not _in_area(patron, d.home, d.work_or_school):
        return decide("delivery_not_eligible_area")
    if request.channel not in d.request_channels:
        return decide("channel_not_allowed", channels=sorted(d.request_channels))
    material = item.material_type if item is not None else request.material_type
    if material not in d.materials:
        return decide("delivery_material_not_offered", material=material)
    return can_place(profile, patron, item, request, now)


def can_check_out_delivery(profile: Profile, patron: Patron, item: Item, request: Request | None,
                           now: datetime) -> Decision:
    """Lending by shipping (loans.channel "delivery"): only the copy readied for the
    patron's own delivery request, only while registered, only the library's own
    copies of the delivery materials; the loan limit is the category's, counter loans
    included (窓口貸出と合わせて10冊以内); ``details['due']`` is ``delivery.days`` later
    (往復の配送期間を含む)."""
    refused = _delivery_offered(profile)
    if refused is not None:
        return refused
    d = profile.delivery
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


# ---------------------------------------------------------------- proxy loans (代理での貸出)

_SPACES = re.compile(r"\s+")


def proxy_name_key(name: str) -> str:
    """A proxy's name as compared: NFKC (full-width letters and spaces folded),
    runs of white space as one space, trimmed."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", name)).strip()


def can_lend_to_proxy(profile: Profile, proxy_name: str, consented: Iterable[str]) -> Decision:
    """A loan to ``proxy_name`` with someone else's card: only where the profile offers
    proxy loans and the holder's live consents (``consented``, names) name that proxy."""
    if profile.proxy.loans == "not_offered":
        return decide("proxy_loans_not_offered")
    key = proxy_name_key(proxy_name)
    if not key:
        return decide("proxy_name_missing")
    if key not in {proxy_name_key(n) for n in consented}:
        return decide("proxy_not_authorised")
    return decide(proxy=key)


# ---------------------------------------------------------------- cards: validity, groups, the mobile library

def add_years(day: date, years: int) -> date:
    """The same day ``years`` later (29 February becomes 1 March)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


def card_expired(patron: Patron, now: datetime) -> bool:
    """The card's last valid day (``patron.card_expires``) has passed."""
    return patron.card_expires is not None and now.date() > patron.card_expires


def card_valid(patron: Patron, now: datetime) -> Decision:
    if card_expired(patron, now):
        return decide("card_expired", expired=patron.card_expires)
    return OK


def card_expiry(profile: Profile, category: str, registered: date) -> date | None:
    """Last valid day of a card registered on ``registered`` (利用券の有効期間はお申込み時
    から1年間: registered 2026-11-20, valid through 2027-11-19); None: no expiry."""
    rule = profile.cards.get(category)
    if rule is None or rule.valid_years is None:
        return None
    return add_years(registered, rule.valid_years) - timedelta(days=1)


def card_extension(profile: Profile, category: str, expires: date | None, today: date) -> Decision:
    """Staff extend a card after re-confirming the group (さらに1年間有効);
    ``details['expires']`` is the new last valid day. ``extend_from = "previous_expiry"``:
    the new period follows on from the old one (a card that has already lapsed runs
    from the confirmation date); ``"confirmation"``: always from the confirmation date.
    Only from ``extend_window_days`` before the expiry, where set."""
    rule = profile.cards.get(category)
    if rule is None or rule.valid_years is None or expires is None:
        return decide("card_not_extendable")
    if rule.extend_window_days is not None and today < expires - timedelta(days=rule.extend_window_days):
        return decide("card_extension_too_early", opens=expires - timedelta(days=rule.extend_window_days),
                      expires=expires)
    start = expires + timedelta(days=1) if rule.extend_from == "previous_expiry" and today <= expires else today
    return decide(expires=add_years(start, rule.valid_years) - timedelta(days=1), previous=expires)


def can_register_group(profile: Profile, category: str, home_municipality: str, *,
                       live_grade_card: str | None = None) -> Decision:
    """A group or school grade card (団体貸出用の利用券): the category needs a card rule,
    the group must be based where the rule says (活動拠点が広島市内), and a school grade
    has at most one unexpired card (``live_grade_card``: the card it already has)."""
    rule = profile.cards.get(category)
    if rule is None or category not in profile.loans:
        raise ValueError(f"{profile.system}: {category!r} is not a card category with registration rules")
    if rule.home and home_municipality not in rule.home:
        return decide("group_not_in_area", areas=sorted(rule.home))
    if rule.one_per_school_grade and live_grade_card is not None:
        return decide("school_grade_card_exists", card=live_grade_card)
    return OK


def is_mobile_branch(profile: Profile, code: str | None) -> bool:
    branch = profile.branch(code) if code else None
    return branch is not None and branch.kind == "mobile"


def is_mobile_card(profile: Profile, patron: Patron) -> bool:
    return profile.mobile is not None and patron.category in profile.mobile.card_categories


def is_mobile_loan(profile: Profile, loan: Loan) -> bool:
    return profile.mobile is not None and is_mobile_branch(profile, loan.branch)


def card_usable_at(profile: Profile, patron: Patron, branch: str, now: datetime) -> Decision:
    """May this card borrow at ``branch`` now? Not after it expired; the mobile library's
    own card only there, and no other card there (図書館で作成した利用券では「ともはと号」
    の利用はできません; read the other way too, see docs/lifecycle.md)."""
    if card_expired(patron, now):
        return decide("card_expired", expired=patron.card_expires)
    if profile.mobile is None:
        return OK
    at_mobile = is_mobile_branch(profile, branch)
    if at_mobile and not is_mobile_card(profile, patron):
        return decide("card_not_for_mobile")
    if is_mobile_card(profile, patron) and not at_mobile:
        return decide("mobile_card_only")
    return OK


def pickup_ok(profile: Profile, patron: Patron, code: str) -> Decision:
    """A pickup branch the patron may choose: a pickup point of the profile; a mobile
    card collects only at the mobile library (巡回日にお渡しします), which is not a
    pickup point for any other card (``pickup = false``)."""
    branch = profile.branch(code)
    if branch is None:
        return decide("pickup_not_service_point")
    if is_mobile_card(profile, patron):
        return OK if branch.kind == "mobile" else decide("mobile_card_only")
    if not branch.pickup:
        return decide("pickup_not_service_point")
    return OK


def mobile_card_placing(profile: Profile, patron: Patron, request: Request) -> Decision | None:
    """Holds of a mobile card come only on paper through the staff on board
    (よやく・リクエストカード: ``mobile.hold_channels``); None when nothing to refuse."""
    if is_mobile_card(profile, patron) and request.channel not in profile.mobile.hold_channels:
        return decide("channel_not_allowed", channels=sorted(profile.mobile.hold_channels))
    return None


def mobile_return_refused(profile: Profile, loan: Loan, place: ReturnPoint) -> Decision | None:
    """A mobile library loan goes back to the mobile library or to the branches in
    ``mobile.return_branches`` (中央図書館), there not through a drop point or the post;
    None when the return is fine (other loans: any library of the city)."""
    if not is_mobile_loan(profile, loan):
        return None
    if place.kind == "mobile" or is_mobile_branch(profile, place.branch):
        return None
    if place.branch in profile.mobile.return_branches and place.kind not in ("drop_point", "post"):
        return None
    return decide("mobile_return_only", branches=sorted(profile.mobile.return_branches))


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
