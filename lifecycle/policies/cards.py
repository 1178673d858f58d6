"""Cards: validity and extension (団体貸出), group and school grade cards, the mobile
library's own card (ともはと号) and where a card may be used and collect, proxy loans
(代理での貸出), and the registration for home delivery (有料図書宅配)."""
from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta
from typing import Iterable

from ..model import Decision, Loan, Patron, Request
from ..profiles import Profile
from ..reasons import OK, decide
from .common import card_expired, delivery_offered, in_area


def add_years(day: date, years: int) -> date:
    """The same day ``years`` later (29 February becomes 1 March)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


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
    mobile = profile.mobile
    if mobile is not None and is_mobile_card(profile, patron) and request.channel not in mobile.hold_channels:
        return decide("channel_not_allowed", channels=sorted(mobile.hold_channels))
    return None


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


# ---------------------------------------------------------------- home delivery (有料図書宅配): registration

# Why staff may end a registration (住所が不正確でお届けできなかったり、配送費用をお支払い
# いただけなかった場合は…利用登録を取消させていただくことがあります), plus the patron's own wish.
DELIVERY_REVOCATION_REASONS: dict[str, str] = {
    "address_undeliverable": "住所が不正確でお届けできない",
    "postage_unpaid": "配送費用の未払い",
    "patron_request": "本人の申出",
}


def can_register_delivery(profile: Profile, patron: Patron, *, channel: str,
                          guardian_consent: bool) -> Decision:
    """May ``patron`` register for home delivery with a 利用申請書 handed in through
    ``channel`` ("counter" or "post")? Card category, residence / work / school in
    the city itself (wide-area card holders are refused), the channel, a guardian's
    consent for minors (``guardian_consent``: given with this application or already
    on record), and not already registered."""
    refused = delivery_offered(profile)
    if refused is not None:
        return refused
    d = profile.delivery
    assert d is not None                 # delivery_offered refuses a profile without delivery
    if patron.delivery_registered:
        return decide("delivery_already_registered")
    if patron.category not in d.categories:
        return decide("delivery_category_not_allowed")
    if not in_area(patron, d.home, d.work_or_school):
        return decide("delivery_not_eligible_area")
    if channel not in d.registration_channels:
        return decide("channel_not_allowed", channels=sorted(d.registration_channels))
    if d.minors_need_guardian_consent and patron.minor and not guardian_consent:
        return decide("delivery_guardian_consent_required")
    return OK
