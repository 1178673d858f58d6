"""Placing: reservations (予約) of owned titles, requests (リクエスト) for titles nobody
in the system owns, home-delivery holds, university partner requests (連携貸出), and
changing a request's pickup branch or contact method before the copy is secured."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Sequence

from ..item_table import ItemStatus
from ..model import Decision, Item, Patron, Request
from ..profiles import Partner, Profile
from ..reasons import OK, decide
from ..table import Role, State
from .cards import mobile_card_placing, pickup_ok
from .common import LIVE_REQUEST_STATES, PATRON_CHANNELS, card_expired, delivery_offered, in_area, overdue_days

# A request's pickup branch and contact method may change until the copy is secured.
CHANGEABLE_STATES = frozenset({State.NEW, State.VALIDATED, State.QUEUED, State.SUSPENDED, State.PURCHASE_REVIEW})

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
    if not in_area(patron, e.reservation_home, e.reservation_work_or_school):
        return decide("not_eligible_for_reservation")
    if is_request:
        if not p.request_channels:
            return decide("requests_not_offered")
        if not in_area(patron, e.request_home, e.request_work_or_school):
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
        assert item is not None          # without a copy it is a request (is_request)
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
    live = [r for r in patron.active_requests if r.state in LIVE_REQUEST_STATES and r.id != request.id]
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


def can_place_delivery(profile: Profile, patron: Patron, item: Item | None, request: Request,
                       now: datetime) -> Decision:
    """A reservation or request to be shipped (``request.delivery``): only for a
    registered patron still living / working / studying in the city, through the
    delivery channels, for the delivery materials; then every rule of
    :func:`can_place` (it counts against the same limits)."""
    refused = delivery_offered(profile)
    if refused is not None:
        return refused
    d = profile.delivery
    assert d is not None                 # delivery_offered refuses a profile without delivery
    if not patron.delivery_registered:
        return decide("delivery_not_registered")
    if not in_area(patron, d.home, d.work_or_school):
        return decide("delivery_not_eligible_area")
    if request.channel not in d.request_channels:
        return decide("channel_not_allowed", channels=sorted(d.request_channels))
    material = item.material_type if item is not None else request.material_type
    if material not in d.materials:
        return decide("delivery_material_not_offered", material=material)
    return can_place(profile, patron, item, request, now)


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
    if not in_area(patron, e.reservation_home, e.reservation_work_or_school):
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


# ---------------------------------------------------------------- the decision of a placing

def representative(profile: Profile, copies: Sequence[tuple[Item, bool]]) -> Item | None:
    """The copy the placing rules look at, of the serving system's own copies of a title
    (``copies``: each with whether it is available on a shelf, in the order they were
    added; lost and withdrawn copies left out): a circulating one, not the newest issue,
    preferably one no branch rule restricts (the copy that would fill the hold),
    ``on_loan`` when none of the circulating copies is on a shelf. None when the system
    owns no copy: then it is a request (リクエスト), not a reservation."""
    if not copies:
        return None
    restricted = {(r.branch, r.material) for r in profile.placing.branch_material_rules}
    _, (best, _) = min(enumerate(copies), key=lambda p: (
        not p[1][0].circulating, p[1][0].newest_issue,
        (p[1][0].owning_branch, p[1][0].material_type) in restricted, p[0]))
    on_shelf = any(on and item.circulating for item, on in copies)
    return replace(best, on_loan=not on_shelf)


def kind_of(item: Item | None) -> str:
    """A reservation (予約) of a title the system owns, a request (リクエスト) otherwise:
    the seeds define the two by ownership, whatever the patron asked for."""
    return "reservation" if item is not None else "request"


def pickup_for(profile: Profile, pickup_branch: str, *, delivery: bool) -> str:
    """The pickup branch of a new hold: a home-delivery hold (有料図書宅配) is readied and
    shipped at the profile's dispatch branch, whatever was asked."""
    if delivery and profile.delivery is not None:
        return profile.delivery.dispatch_branch
    return pickup_branch


def decide_placing(profile: Profile, patron: Patron, item: Item | None, request: Request,
                   now: datetime, *, role: Role | str, delivery: bool = False) -> Decision:
    """The whole decision of placing ``request`` (``item``: :func:`representative`, None
    for a request): a patron acting alone uses the web or an OPAC (counter, phone and
    forms go through staff); then :func:`can_place_delivery` for a home-delivery hold,
    :func:`can_place` for any other."""
    if role == Role.PATRON and request.channel not in PATRON_CHANNELS:
        return decide("channel_not_allowed", channels=sorted(PATRON_CHANNELS))
    rule = can_place_delivery if delivery else can_place
    return rule(profile, patron, item, request, now)


def decide_partner_request(profile: Profile, patron: Patron, item: Item, request: Request,
                           now: datetime, *, role: Role | str) -> Decision:
    """The whole decision of a university partner request: the form is handed to staff
    (a patron alone uses the web, which does not take these), then
    :func:`can_request_partner_item`."""
    if role == Role.PATRON:
        return decide("channel_not_allowed", channels=["counter", "form"])
    return can_request_partner_item(profile, patron, item, request, now)


def partner_copy_on_its_shelf(partner: Partner | None, item: Item, status: str) -> bool:
    """The university's copy is on its own shelf: available, at one of the partner's
    branches (or its owning branch). Anything else (lent, in transit, on one of our hold
    shelves) is "on loan" for the partnership (申込時に貸出中)."""
    home = (set(partner.branches) if partner is not None else set()) | {item.owning_branch}
    return status == ItemStatus.AVAILABLE and (item.current_branch or item.owning_branch) in home


# ---------------------------------------------------------------- changing a request

def keeps_pickup(profile: Profile, request: Request) -> bool:
    """Komae: a request (リクエスト) is handed in at the branch where it is collected, so
    its pickup branch never changes."""
    return request.kind == "request" and profile.placing.request_at_pickup_branch


def settings_ok(profile: Profile, patron: Patron, pickup_branch: str | None,
                contact_method: str | None) -> Decision:
    """A new pickup branch (a pickup point; a mobile card only the mobile library) and
    contact method (offered, and the patron has the address) for the patron's holds;
    None: unchanged."""
    if pickup_branch is not None:
        pickup = pickup_ok(profile, patron, pickup_branch)
        if not pickup.allowed:
            return pickup
    if contact_method is not None:
        return contact_method_ok(profile, patron, contact_method)
    return OK


def decide_change(profile: Profile, patron: Patron, request: Request, *, pickup_branch: str | None,
                  contact_method: str | None, role: Role | str) -> Decision:
    """Changing a request's pickup branch and/or contact method: only until the copy is
    secured; a Komae リクエスト keeps its branch; a patron may change the pickup where the
    profile allows it (Iizuka: 受取場所を変更したい場合は予約を取消して、最初からやり直して
    ください); then :func:`settings_ok`."""
    if request.state not in CHANGEABLE_STATES:
        return decide("not_changeable", state=State(request.state).value)
    moves = pickup_branch not in (None, request.pickup_branch)
    if moves and keeps_pickup(profile, request):
        return decide("request_not_at_pickup_branch")
    if moves and role == Role.PATRON and not profile.placing.patron_pickup_change:
        return decide("pickup_change_not_allowed")
    return settings_ok(profile, patron, pickup_branch, contact_method)
