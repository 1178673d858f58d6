"""Scenario tests: one rule of one library's seed each (lifecycle/policies.py, queue.py)."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from lifecycle.model import Item, Loan, Patron, Request, ReturnPoint
from lifecycle.policies import (
    can_cancel,
    can_check_out,
    can_place,
    can_renew,
    can_return_at,
    cancelled_visible,
    is_overdue,
    login_locked,
    password_acceptable,
    request_lapsed,
    return_date,
)
from lifecycle.profiles import ProfileError, load_all, load_profile, parse_profile
from lifecycle.queue import choose_request_to_trap, group_siblings_to_cancel, queue_position
from lifecycle.reasons import REASONS
from lifecycle.table import State

IIZUKA = load_profile("iizuka")
KOMAE = load_profile("komae")
HIROSHIMA = load_profile("hiroshima")
NOW = datetime(2026, 11, 10, 14, 0)


def patron(municipality="飯塚市", **kw):
    return Patron("0000000001", municipality, email="reader@example.jp", phone="0948-00-0000", **kw)


def book(owner="iizuka", **kw):
    return Item("3000000001", "bib1", owner, owning_branch=kw.pop("owning_branch", "iizuka"), **kw)


def hold(pickup="iizuka", **kw):
    kw.setdefault("contact_method", "email")
    kw.setdefault("placed_at", NOW)
    return Request(kw.pop("id", "r1"), "0000000001", kw.pop("title_id", "bib1"),
                   pickup_branch=pickup, **kw)


def active(n, material="book", kind="reservation"):
    return tuple(Request(f"a{i}", "0000000001", f"t{i}", kind=kind, material_type=material,
                         state=State.QUEUED) for i in range(n))


def loan(due, **kw):
    return Loan("3000000001", "0000000001", kw.pop("branch", "iizuka"), datetime(2026, 10, 1), due, **kw)


# ---------------------------------------------------------------- profiles

def test_every_profile_in_config_loads_and_cites_its_seed():
    profiles = load_all()
    assert set(profiles) >= {"iizuka", "komae", "hiroshima"}
    for stem, p in profiles.items():
        assert p.system == stem and p.seed.endswith(".txt") and p.name


def test_a_misspelt_profile_setting_is_rejected():
    import tomllib
    data = tomllib.loads((Path(__file__).resolve().parents[1] / "config/profiles/iizuka.toml").read_text())
    data["renewal"]["maximum"] = 2
    with pytest.raises(ProfileError, match="unknown keys"):
        parse_profile(data)
    data["renewal"].pop("maximum")
    data["shelf"]["count"] = "weeks"
    with pytest.raises(ProfileError, match="count"):
        parse_profile(data)


def test_every_reason_code_has_japanese_and_english_messages():
    for code, (ja, en) in REASONS.items():
        assert ja and en, code


# ---------------------------------------------------------------- placing: Iizuka

def test_iizuka_resident_can_reserve_a_circulating_book_for_pickup_at_a_branch():
    d = can_place(IIZUKA, patron(), book(), hold(), NOW)
    assert d.allowed and d.code == "ok"


def test_iizuka_worker_from_another_city_can_reserve_but_a_visitor_cannot():
    worker = patron("福岡市", work_or_school_municipality="飯塚市")
    assert can_place(IIZUKA, worker, book(), hold(), NOW)
    d = can_place(IIZUKA, patron("福岡市"), book(), hold(), NOW)
    assert not d.allowed and d.code == "not_eligible_for_reservation" and d.message_ja


@pytest.mark.parametrize("item, code", [
    (book(material_type="av"), "material_av"),
    (book(material_type="magazine", newest_issue=True), "newest_issue"),
    (book(circulating=False), "not_circulating"),
    (book(owner="komae"), "not_owned"),
])
def test_iizuka_refuses_holds_on_av_newest_issues_non_circulating_and_unowned_items(item, code):
    assert can_place(IIZUKA, patron(), item, hold(), NOW).code == code


def test_iizuka_has_no_requests_for_items_it_does_not_own():
    d = can_place(IIZUKA, patron(), None, hold(kind="request", channel="counter"), NOW)
    assert d.code == "requests_not_offered"


def test_iizuka_allows_ten_books_and_five_magazines_on_hold():
    assert can_place(IIZUKA, patron(active_requests=active(9)), book(), hold(), NOW)
    assert can_place(IIZUKA, patron(active_requests=active(10)), book(), hold(), NOW).code == "limit_material"
    mag = book(material_type="magazine")
    full_books = active(10)
    assert can_place(IIZUKA, patron(active_requests=full_books), mag, hold(material_type="magazine"), NOW)
    five_mags = active(5, "magazine")
    d = can_place(IIZUKA, patron(active_requests=five_mags), mag, hold(material_type="magazine"), NOW)
    assert d.code == "limit_material" and d.details["limit"] == 5


def test_iizuka_blocks_new_holds_while_a_loan_is_more_than_two_weeks_overdue():
    two_weeks = patron(loans=(loan(NOW.date() - timedelta(days=14)),))
    assert can_place(IIZUKA, two_weeks, book(), hold(), NOW)
    over = patron(loans=(loan(NOW.date() - timedelta(days=15)),))
    assert can_place(IIZUKA, over, book(), hold(), NOW).code == "blocked_overdue"


def test_iizuka_pickup_must_be_one_of_its_branches():
    assert can_place(IIZUKA, patron(), book(), hold(pickup="central"), NOW).code == "pickup_not_service_point"


def test_iizuka_email_contact_needs_a_registered_address_and_phone_is_not_offered():
    no_mail = Patron("0000000001", "飯塚市")
    assert can_place(IIZUKA, no_mail, book(), hold(), NOW).code == "email_missing"
    assert can_place(IIZUKA, no_mail, book(), hold(contact_method="none"), NOW)
    assert can_place(IIZUKA, patron(), book(), hold(contact_method="phone"), NOW).code == \
        "contact_method_not_offered"


# ---------------------------------------------------------------- placing: Komae

def komae_request(**kw):
    kw.setdefault("channel", "counter")
    kw.setdefault("submitted_at_branch", "komae-central")
    return hold(pickup="komae-central", kind="request", **kw)


def test_komae_neighbouring_city_resident_may_reserve_but_not_request():
    chofu = patron("調布市")
    assert can_place(KOMAE, chofu, book("komae", owning_branch="komae-central"), hold(pickup="komae-central"), NOW)
    assert can_place(KOMAE, chofu, None, komae_request(), NOW).code == "not_eligible_for_request"
    assert can_place(KOMAE, patron("狛江市"), None, komae_request(), NOW)


def test_komae_requests_are_taken_only_on_paper_at_the_pickup_branch_counter_never_on_the_web():
    resident = patron("狛江市")
    assert can_place(KOMAE, resident, None, komae_request(channel="web"), NOW).code == "channel_not_allowed"
    d = can_place(KOMAE, resident, None, komae_request(submitted_at_branch="nishikawara"), NOW)
    assert d.code == "request_not_at_pickup_branch"


def test_komae_refuses_requests_for_av_and_e_books():
    d = can_place(KOMAE, patron("狛江市"), None, komae_request(material_type="ebook"), NOW)
    assert d.code == "request_material_refused"


def test_komae_counts_reservations_and_requests_together_up_to_twenty():
    resident = patron("狛江市", active_requests=active(12) + active(8, kind="request"))
    item = book("komae", owning_branch="komae-central")
    assert can_place(KOMAE, resident, item, hold(pickup="komae-central"), NOW).code == "limit_total"
    resident = replace(resident, active_requests=resident.active_requests[1:])
    assert can_place(KOMAE, resident, item, hold(pickup="komae-central"), NOW)


def test_komae_magazines_can_be_reserved_only_from_their_lending_release_date():
    mag = book("komae", owning_branch="komae-central", material_type="magazine", lending_release=date(2026, 11, 20))
    d = can_place(KOMAE, patron("狛江市"), mag, hold(pickup="komae-central"), NOW)
    assert d.code == "magazine_not_released"
    assert can_place(KOMAE, patron("狛江市"), mag, hold(pickup="komae-central"), datetime(2026, 11, 20, 10))


def test_komae_nishikawara_av_is_reserved_only_at_its_counter_or_by_phone_and_only_when_on_loan():
    av = book("komae", owning_branch="nishikawara", material_type="av", on_loan=True)
    resident = patron("狛江市")
    assert can_place(KOMAE, resident, av, hold(pickup="nishikawara"), NOW).code == "branch_material_channel"
    assert can_place(KOMAE, resident, av, hold(pickup="nishikawara", channel="phone"), NOW)
    on_shelf = replace(av, on_loan=False)
    assert can_place(KOMAE, resident, on_shelf, hold(pickup="nishikawara", channel="counter"),
                     NOW).code == "branch_material_on_loan_only"


def test_komae_request_for_an_unpublished_new_book_lapses_after_a_month():
    r = komae_request(state=State.PURCHASE_REVIEW, publication_date=date(2027, 3, 1))
    assert not request_lapsed(KOMAE, r, NOW + timedelta(days=29))
    assert request_lapsed(KOMAE, r, NOW + timedelta(days=30))
    published = replace(r, publication_date=date(2026, 11, 20))
    assert not request_lapsed(KOMAE, published, NOW + timedelta(days=30))


# ---------------------------------------------------------------- placing: Hiroshima

def test_hiroshima_wide_area_resident_can_reserve_and_the_limit_is_twenty_together():
    kure = patron("呉市")
    item = book("hiroshima", owning_branch="central")
    assert can_place(HIROSHIMA, kure, item, hold(pickup="naka", channel="fax", contact_method="postcard"), NOW)
    full = replace(kure, active_requests=active(15) + active(5, kind="request"))
    assert can_place(HIROSHIMA, full, item, hold(pickup="naka"), NOW).code == "limit_total"


def test_hiroshima_requests_for_new_releases_are_taken_only_after_publication():
    r = hold(pickup="naka", kind="request", channel="counter", publication_date=date(2026, 12, 1))
    assert can_place(HIROSHIMA, patron("広島市"), None, r, NOW).code == "not_yet_published"
    assert can_place(HIROSHIMA, patron("広島市"), None, replace(r, publication_date=date(2026, 11, 1)), NOW)


def test_hiroshima_mobile_library_is_not_a_pickup_point():
    item = book("hiroshima", owning_branch="central")
    assert can_place(HIROSHIMA, patron("広島市"), item, hold(pickup="tomohato"), NOW).code == \
        "pickup_not_service_point"


# ---------------------------------------------------------------- loans and renewals

def test_hiroshima_lends_ten_items_for_two_weeks():
    item = book("hiroshima", owning_branch="central")
    p = patron("広島市", loans=tuple(loan(date(2026, 11, 20)) for _ in range(9)))
    d = can_check_out(HIROSHIMA, p, item, None, NOW)
    assert d.allowed and d.details["due"] == date(2026, 11, 24)
    p = replace(p, loans=p.loans + (loan(date(2026, 11, 20)),))
    assert can_check_out(HIROSHIMA, p, item, None, NOW).code == "loan_limit"


def test_hiroshima_group_cards_borrow_fifty_items_for_a_month():
    group = patron("広島市", category="group", loans=tuple(loan(date(2026, 11, 20)) for _ in range(49)))
    d = can_check_out(HIROSHIMA, group, book("hiroshima"), None, NOW)
    assert d.allowed and d.details["due"] == date(2026, 12, 10)


def test_reference_books_are_not_lent():
    assert can_check_out(HIROSHIMA, patron("広島市"), book("hiroshima", material_type="reference"),
                         None, NOW).code == "item_not_circulating"


def test_a_loan_is_overdue_the_day_after_its_due_date():
    assert not is_overdue(loan(NOW.date()), NOW)
    assert is_overdue(loan(NOW.date() - timedelta(days=1)), NOW)


def test_iizuka_renewal_refused_when_someone_is_waiting():
    d = can_renew(IIZUKA, loan(date(2026, 11, 14)), NOW, channel="web", someone_waiting=True)
    assert d.code == "someone_waiting"


def test_iizuka_renews_once_within_a_week_of_the_due_date():
    d = can_renew(IIZUKA, loan(date(2026, 11, 14)), NOW, channel="web", someone_waiting=False)
    assert d.allowed and d.details["due"] == date(2026, 11, 28)
    again = loan(date(2026, 11, 28), renewals=1, renewed_via="counter")
    assert can_renew(IIZUKA, again, NOW, channel="counter", someone_waiting=False).code == "renewal_limit"


def test_iizuka_renewal_too_early_more_than_a_week_before_the_due_date():
    d = can_renew(IIZUKA, loan(date(2026, 11, 18)), NOW, channel="web", someone_waiting=False)
    assert d.code == "renewal_too_early" and d.details["opens"] == date(2026, 11, 11)


def test_iizuka_renewal_refused_more_than_a_week_past_the_due_date():
    assert can_renew(IIZUKA, loan(date(2026, 11, 5)), NOW, channel="web", someone_waiting=False)
    assert can_renew(IIZUKA, loan(date(2026, 11, 2)), NOW, channel="web",
                     someone_waiting=False).code == "renewal_too_late"


def test_iizuka_web_renewal_cannot_be_repeated_at_the_counter():
    renewed = loan(date(2026, 11, 14), renewals=1, renewed_via="web")
    d = can_renew(IIZUKA, renewed, NOW, channel="counter", someone_waiting=False)
    assert d.code == "web_renewal_not_repeatable_at_counter"


def test_hiroshima_renewal_runs_two_weeks_from_today_when_today_is_before_the_due_date():
    d = can_renew(HIROSHIMA, loan(date(2026, 11, 20)), NOW, channel="web", someone_waiting=False)
    assert d.details["due"] == date(2026, 11, 24)


def test_hiroshima_renewal_of_an_overdue_loan_runs_two_weeks_from_the_due_date():
    d = can_renew(HIROSHIMA, loan(date(2026, 11, 5)), NOW, channel="counter", someone_waiting=False)
    assert d.details["due"] == date(2026, 11, 19)


def test_hiroshima_renewal_refused_when_someone_is_waiting():
    assert can_renew(HIROSHIMA, loan(date(2026, 11, 20)), NOW, channel="web",
                     someone_waiting=True).code == "someone_waiting"


# ---------------------------------------------------------------- cancellation

def test_iizuka_web_cancel_allowed_before_the_copy_is_secured():
    assert can_cancel(IIZUKA, hold(state=State.QUEUED), NOW, channel="web")


def test_iizuka_web_cancel_refused_once_the_library_has_secured_the_copy():
    d = can_cancel(IIZUKA, hold(state=State.ON_HOLD_SHELF), NOW, channel="web")
    assert d.code == "secured_staff_only" and "Web" in d.message_ja
    assert can_cancel(IIZUKA, hold(state=State.ON_HOLD_SHELF), NOW, channel="counter", at_branch="honami")


def test_komae_secured_hold_is_cancelled_only_by_the_pickup_branch():
    r = hold(pickup="central", state=State.IN_TRANSIT)
    assert can_cancel(KOMAE, r, NOW, channel="counter", at_branch="nishikawara").code == \
        "secured_pickup_branch_only"
    assert can_cancel(KOMAE, r, NOW, channel="counter", at_branch="central")


def test_cancelling_an_ill_request_before_shipping_asks_the_partner():
    d = can_cancel(HIROSHIMA, hold(pickup="naka", state=State.WILL_SUPPLY), NOW, channel="web")
    assert d.allowed and d.code == "ill_cancel_requested"


def test_iizuka_cancelled_holds_stay_visible_for_thirty_days():
    r = hold(state=State.CANCELLED, cancelled_at=NOW, cancel_reason="web_cancel", cancel_channel="web")
    assert cancelled_visible(IIZUKA, r, NOW + timedelta(days=29, hours=23))
    assert not cancelled_visible(IIZUKA, r, NOW + timedelta(days=30))


# ---------------------------------------------------------------- returns

def test_iizuka_items_can_be_returned_at_any_branch():
    assert can_return_at(IIZUKA, loan(date(2026, 11, 20)), book(), ReturnPoint("counter", "kaita"))


def test_hiroshima_university_partner_item_must_come_back_to_the_counter_it_was_lent_from():
    lent = loan(date(2026, 11, 20), branch="naka", partner="hiroshima-u")
    item = book("hiroshima-u", partner="hiroshima-u")
    assert can_return_at(HIROSHIMA, lent, item, ReturnPoint("counter", "naka"))
    assert can_return_at(HIROSHIMA, lent, item, ReturnPoint("counter", "central")).code == \
        "partner_return_to_lending_counter"
    assert not can_return_at(HIROSHIMA, lent, item, ReturnPoint("book_drop", "naka"))


def test_hiroshima_ill_items_and_audio_books_cannot_go_to_drop_points():
    drop = ReturnPoint("drop_point", "central", "イオン広島祇園")
    ill = loan(date(2026, 11, 20), ill=True)
    assert can_return_at(HIROSHIMA, ill, book("hiroshima", ill=True), drop).code == "not_at_drop_point"
    audio = loan(date(2026, 11, 20), material_type="audiobook")
    assert can_return_at(HIROSHIMA, audio, book("hiroshima", material_type="audiobook"), drop).code == \
        "not_at_drop_point"
    assert can_return_at(HIROSHIMA, loan(date(2026, 11, 20)), book("hiroshima"), drop)
    assert can_return_at(HIROSHIMA, ill, book("hiroshima", ill=True), ReturnPoint("counter", "naka"))


def test_hiroshima_drop_point_returns_are_dated_when_processed_not_when_dropped():
    dropped, processed = datetime(2026, 11, 5, 18), datetime(2026, 11, 12, 10)
    assert return_date(HIROSHIMA, ReturnPoint("drop_point", "central"), dropped, processed) == date(2026, 11, 12)
    assert return_date(HIROSHIMA, ReturnPoint("counter", "central"), dropped, processed) == date(2026, 11, 5)


# ---------------------------------------------------------------- queue

def queued(id, placed, **kw):
    kw.setdefault("state", State.QUEUED)
    return Request(id, kw.pop("card", "c-" + id), kw.pop("title_id", "bib1"), pickup_branch="iizuka",
                   placed_at=placed, **kw)


T0 = datetime(2026, 11, 1, 9)


def test_queue_is_first_in_first_out_per_title():
    rs = [queued("b", T0 + timedelta(hours=2)), queued("a", T0 + timedelta(hours=1)),
          queued("x", T0, title_id="other")]
    assert choose_request_to_trap(rs, book(), NOW).id == "a"
    assert queue_position(rs, rs[0]) == 2


def test_same_second_placements_queue_by_numeric_request_id():
    rs = [queued("10", T0), queued("9", T0), queued("100", T0)]
    assert choose_request_to_trap(rs, book(), NOW).id == "9"
    assert [queue_position(rs, r) for r in rs] == [2, 1, 3]


def test_suspended_requests_are_passed_over_but_keep_their_place():
    rs = [queued("a", T0, state=State.SUSPENDED), queued("b", T0 + timedelta(hours=1))]
    assert choose_request_to_trap(rs, book(), NOW).id == "b"
    assert queue_position(rs, rs[0]) == 1


def test_walk_in_patrons_are_served_before_staff_secure_a_copy():
    assert choose_request_to_trap([queued("a", T0)], book(), NOW, walk_in=True) is None


def test_komae_set_reservation_never_traps_a_later_volume_before_the_earlier_one_is_ready():
    vol1 = queued("v1", T0, card="p", title_id="vol1", set_id="s", set_position=1)
    vol2 = queued("v2", T0, card="p", title_id="vol2", set_id="s", set_position=2)
    other = queued("o", T0 + timedelta(days=1), title_id="vol2")
    vol2_copy = Item("3000000002", "vol2", "komae")
    assert choose_request_to_trap([vol1, vol2, other], vol2_copy, NOW).id == "o"
    in_transit = replace(vol1, state=State.IN_TRANSIT)
    assert choose_request_to_trap([in_transit, vol2], vol2_copy, NOW) is None
    ready = replace(vol1, state=State.ON_HOLD_SHELF)
    assert choose_request_to_trap([ready, vol2, other], vol2_copy, NOW).id == "v2"
    cancelled = replace(vol1, state=State.CANCELLED)
    assert choose_request_to_trap([cancelled, vol2], vol2_copy, NOW).id == "v2"


def test_komae_group_reservation_first_ready_copy_wins_and_the_others_are_cancelled():
    hard = queued("h", T0, card="p", title_id="hardcover", group_id="g")
    paper = queued("p", T0, card="p", title_id="bunko", group_id="g")
    other = queued("o", T0 + timedelta(days=1), title_id="bunko")
    bunko_copy = Item("3000000003", "bunko", "komae")
    assert choose_request_to_trap([hard, paper, other], bunko_copy, NOW).id == "p"
    trapped = replace(paper, state=State.ON_HOLD_SHELF)
    assert [r.id for r in group_siblings_to_cancel([hard, trapped, other], trapped)] == ["h"]
    hard_copy = Item("3000000004", "hardcover", "komae")
    assert choose_request_to_trap([hard, trapped], hard_copy, NOW) is None


# ---------------------------------------------------------------- login

def test_iizuka_password_is_four_to_ten_half_width_alphanumerics_digits_only_allowed():
    assert password_acceptable(IIZUKA, "1234")
    assert password_acceptable(IIZUKA, "abc123XYZ0")
    assert password_acceptable(IIZUKA, "123").code == "password_length"
    assert password_acceptable(IIZUKA, "abc123XYZ01").code == "password_length"
    assert password_acceptable(IIZUKA, "ａｂｃ１２３").code == "password_charset"
    assert password_acceptable(IIZUKA, "abc-123").code == "password_charset"


def test_iizuka_five_wrong_passwords_lock_the_account_for_thirty_minutes():
    fails = [NOW - timedelta(minutes=m) for m in (4, 3, 2, 1)]
    assert login_locked(IIZUKA, fails, NOW)
    fails.append(NOW)
    d = login_locked(IIZUKA, fails, NOW + timedelta(minutes=29))
    assert d.code == "locked_out" and d.details["until"] == NOW + timedelta(minutes=30)
    assert login_locked(IIZUKA, fails, NOW + timedelta(minutes=30))
