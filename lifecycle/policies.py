"""Rules as pure functions of (profile, patron, item, request, now).

Every function returns a :class:`~lifecycle.model.Decision` (or a value) and
never raises for a rule refusal; it raises only for programming or configuration
errors.  Codes are stable; messages come from :data:`REASONS`.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Iterable

from .calendar import BranchCalendar
from .model import Decision, Item, Loan, Patron, Request, ReturnPoint
from .profiles import Profile
from .table import SECURED, TERMINAL, State

REASONS: dict[str, tuple[str, str]] = {
    "ok": ("受け付けました。", "Accepted."),
    "category_not_allowed": ("この利用者区分では予約できません。",
                             "Your card category cannot place holds."),
    "not_eligible_for_reservation": ("お住まい・通勤・通学先の市区町村の方は予約できません。",
                                     "Holds are only for residents, workers or students of the listed municipalities."),
    "not_eligible_for_request": ("リクエストは市内在住・在勤・在学の方のみ申し込めます。",
                                 "Purchase/ILL requests are only for residents, workers or students of the city."),
    "requests_not_offered": ("所蔵していない資料は予約できません。",
                             "Items the library does not own cannot be requested."),
    "channel_not_allowed": ("この方法では受け付けていません。",
                            "This cannot be placed through this channel."),
    "request_not_at_pickup_branch": ("リクエストは受け取りたい図書館・室でお申し込みください。",
                                     "Hand in a request at the branch where you will collect it."),
    "material_av": ("視聴覚資料（DVD・CD）は予約できません。", "Audio-visual items cannot be reserved."),
    "material_ebook": ("電子書籍は予約できません。", "E-books cannot be reserved."),
    "newest_issue": ("雑誌の最新号は予約できません。", "The newest issue of a magazine cannot be reserved."),
    "not_circulating": ("貸出禁止の資料は予約できません。", "Non-circulating items cannot be reserved."),
    "not_owned": ("所蔵していない資料は予約できません。", "Items the library does not own cannot be reserved."),
    "request_material_refused": ("視聴覚資料・電子書籍のリクエストはできません。",
                                 "Audio-visual items and e-books cannot be requested."),
    "magazine_not_released": ("雑誌の予約は貸出解禁日以降に受け付けます。",
                              "Magazines can be reserved from their lending release date."),
    "not_yet_published": ("新刊のリクエストは発売されてからの受付となります。",
                          "New titles can be requested once published."),
    "branch_material_rule": ("この資料はこの館・室の窓口または電話でのみ、貸出中の場合に受け付けます。",
                             "This branch takes holds on this material only at its counter or by phone, and only when it is on loan."),
    "limit_material": ("この種類の予約件数の上限に達しています。",
                       "You have reached the hold limit for this material type."),
    "duplicate_request": ("この資料はすでに予約・リクエストしています。",
                          "You already have a reservation or request for this title."),
    "pickup_change_not_allowed": ("受取場所を変更する場合は、予約を取消して最初からやり直してください。",
                                  "To change the pickup branch, cancel the reservation and place it again."),
    "limit_total": ("予約・リクエストの件数の上限に達しています。",
                    "You have reached the limit of holds and requests together."),
    "blocked_overdue": ("返却期限を2週間以上過ぎた資料があるため予約できません。",
                        "A loan is too long overdue; new holds are blocked."),
    "pickup_not_service_point": ("その受取場所は選べません。",
                                 "That pickup location is not a service point of this library."),
    "contact_method_not_offered": ("その連絡方法は選べません。", "That contact method is not offered."),
    "email_missing": ("メールアドレスが登録されていません。", "No e-mail address is registered."),
    "phone_missing": ("電話番号が登録されていません。", "No phone number is registered."),
    "fax_missing": ("FAX番号が登録されていません。", "No fax number is registered."),
    # loans
    "loan_limit": ("貸出点数の上限に達しています。", "You have reached the loan limit."),
    "item_not_circulating": ("この資料は貸出できません。", "This item cannot be borrowed."),
    "no_loan_rule": ("この利用者区分では貸出できません。", "This card category cannot borrow."),
    # loans on the database (circulation/loans.py)
    "card_not_valid_here": ("この利用券はこの図書館では使えません。", "This card cannot be used at this library."),
    "item_other_system": ("この資料は他の図書館（市）の資料のため、ここでは貸出できません。",
                          "This item belongs to another library system and cannot be lent here."),
    "item_on_loan": ("この資料は貸出中です。", "This item is already on loan."),
    "held_for_another_patron": ("この資料は他の方の予約のために確保されています。",
                                "This copy is held for another patron's reservation."),
    "item_in_transit": ("この資料は搬送中です。到着処理の後に貸出してください。",
                        "This item is in transit: check it in at its destination first."),
    "item_not_available": ("この資料は貸出できる状態ではありません（紛失・除籍）。",
                           "This item is lost or withdrawn."),
    "partner_lend_at_counter": ("連携貸出の資料は申し込んだ図書館の窓口でのみ貸出します。",
                                "University partner items are lent only at the city library counter where they were requested."),
    "not_on_loan": ("この資料は貸出中ではありません。", "This item is not on loan."),
    "return_other_system": ("この資料は借りた図書館（市）に返却してください。",
                            "Return this item to a library of the system that lent it."),
    # renewals
    "someone_waiting": ("次に予約の方がいるため延長できません。", "Someone is waiting for this item."),
    "renewal_limit": ("延長できる回数を超えています。", "This loan cannot be renewed again."),
    "web_renewal_not_repeatable_at_counter": ("Webで延長した資料は窓口で延長できません。",
                                              "A loan renewed on the web cannot be renewed again at the counter."),
    "renewal_too_early": ("返却期限日の1週間前から延長できます。",
                          "Too early: renewals open shortly before the due date."),
    "renewal_too_late": ("返却期限日を過ぎているため延長できません。",
                         "Too long overdue to renew."),
    "renewal_not_extending": ("延長しても返却期限日が延びません。", "Renewing would not extend the due date."),
    # cancellation
    "secured_staff_only": ("すでに資料を確保しているため、Webからは取消できません。図書館へお申し出ください。",
                           "The library has already secured the copy: ask the library to cancel."),
    "secured_pickup_branch_only": ("確保済みの資料の取消は受取館・室にお知らせください。",
                                   "A secured hold is cancelled by the pickup branch."),
    "already_closed": ("この予約はすでに終了しています。", "This request is already closed."),
    "ill_cancel_requested": ("提供館に取消を依頼しました。", "The cancellation was sent to the lending library."),
    # returns
    "partner_return_to_lending_counter": ("連携貸出の資料は借りた窓口に返却してください。",
                                          "University partner items go back to the counter they were lent from."),
    "not_at_drop_point": ("録音図書や相互貸借の資料は返却ポストに返却できません。直接図書館にご返却ください。",
                          "Audio books and inter-library loans cannot go to drop points: return them at a library."),
    # login
    "password_length": ("パスワードの桁数が正しくありません。", "The password has the wrong length."),
    "password_charset": ("パスワードに使えない文字が含まれています。", "The password contains characters that are not allowed."),
    "locked_out": ("パスワードを続けて間違えたため、しばらくログインできません。",
                   "Too many wrong passwords: the account is locked for a while."),
}


_ALLOWED = frozenset({"ok", "ill_cancel_requested"})


def decide(code: str = "ok", **details) -> Decision:
    return Decision.of(REASONS, code, _ALLOWED, **details)


OK = decide()

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
    if not item.circulating or item.material_type == "reference":
        return decide("item_not_circulating")
    if rule.limit is not None and len(patron.loans) >= rule.limit:
        return decide("loan_limit", limit=rule.limit)
    return decide(due=due_date(profile, patron, item, now))


def can_renew(profile: Profile, loan: Loan, now: datetime, *, channel: str,
              someone_waiting: bool) -> Decision:
    """Renewal; ``details['due']`` is the new due date when allowed."""
    r = profile.renewal
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
        for rule in p.branch_material_rules:
            if rule.branch == item.owning_branch and rule.material == material:
                if request.channel not in rule.channels or (rule.only_when_on_loan and not item.on_loan):
                    return decide("branch_material_rule", branch=rule.branch)

    if p.overdue_block_days is not None and any(
            overdue_days(loan, now) > p.overdue_block_days for loan in patron.loans):
        return decide("blocked_overdue", days=p.overdue_block_days)

    live = [r for r in patron.active_requests if r.state in _LIVE_REQUEST_STATES and r.id != request.id]
    if any(r.title_id == request.title_id for r in live):
        return decide("duplicate_request")
    if p.total_limit is not None and len(live) >= p.total_limit:
        return decide("limit_total", limit=p.total_limit)
    bucket = _limit_bucket(profile, material)
    if bucket is not None:
        same = [r for r in live if r.kind == "reservation" and _limit_bucket(profile, r.material_type) == bucket]
        if len(same) >= p.limits[bucket]:
            return decide("limit_material", material=bucket, limit=p.limits[bucket])

    branch = profile.branch(request.pickup_branch)
    if branch is None or not branch.pickup:
        return decide("pickup_not_service_point")
    return contact_method_ok(profile, patron, request.contact_method)


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
