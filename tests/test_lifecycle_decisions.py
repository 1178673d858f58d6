"""The whole decision of each circulation operation, as one pure function
(lifecycle/policies: decide_check_out, decide_renewal, decide_check_in, decide_placing,
decide_cancel, decide_change), without a database."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from lifecycle import policies
from lifecycle.model import Item, Loan, Patron, Request, ReturnPoint
from lifecycle.profiles import load_profile
from lifecycle.table import Event, Role, State

IIZUKA = load_profile("iizuka")
KOMAE = load_profile("komae")
HIROSHIMA = load_profile("hiroshima")
NOW = datetime(2026, 11, 10, 14, 0)
CARD = "0000000001"


def patron(**kw):
    kw.setdefault("email", "reader@example.jp")
    return Patron(CARD, kw.pop("home", "飯塚市"), **kw)


def copy(**kw):
    return Item("3000000001", "bib1", kw.pop("owner", "iizuka"), owning_branch=kw.pop("owning_branch", "iizuka"),
                **kw)


def request(rid="7", card=CARD, **kw):
    kw.setdefault("placed_at", NOW)
    return Request(rid, card, "bib1", pickup_branch=kw.pop("pickup", "iizuka"), **kw)


def case(**kw) -> policies.CheckOut:
    kw.setdefault("branch", "iizuka")
    kw.setdefault("channel", "counter")
    kw.setdefault("patron", patron())
    kw.setdefault("card_system", "iizuka")
    kw.setdefault("item", copy())
    kw.setdefault("status", "available")
    return policies.CheckOut(**kw)


# --------------------------------------------------------------------------- check-out

def test_a_check_out_gives_the_due_date_and_its_own_hold():
    d = policies.decide_check_out(IIZUKA, case(), NOW)
    assert d.allowed and d.details["due"] > NOW.date() and d.details["request_id"] is None
    mine = request(state=State.ON_HOLD_SHELF)
    d = policies.decide_check_out(IIZUKA, case(secured=mine, status="on_hold_shelf"), NOW)
    assert d.allowed and d.details["request_id"] == 7


@pytest.mark.parametrize("kw,code,details", [
    (dict(card_system="komae"), "card_not_valid_here", {"library": "komae"}),
    (dict(item=copy(owner="komae")), "item_other_system", {"library": "komae"}),
    (dict(open_loan=True), "item_on_loan", {}),
    (dict(status="on_loan"), "item_on_loan", {}),
    (dict(secured=request(card="0000000099", state=State.ON_HOLD_SHELF), status="on_hold_shelf"),
     "held_for_another_patron", {"request_id": 7}),
    (dict(secured=request(state=State.IN_TRANSIT), status="in_transit"), "item_in_transit", {"request_id": 7}),
    (dict(status="in_transit"), "item_in_transit", {}),
    (dict(status="withdrawn"), "item_not_available", {"status": "withdrawn"}),
    (dict(channel="kiosk", item=copy(material_type="reference")), "item_not_circulating", {}),
])
def test_check_out_refusals_name_the_reason(kw, code, details):
    d = policies.decide_check_out(IIZUKA, case(**kw), NOW)
    assert (d.allowed, d.code, d.details) == (False, code, details)


def test_the_card_is_checked_before_the_copy():
    d = policies.decide_check_out(IIZUKA, case(card_system="komae", status="withdrawn"), NOW)
    assert d.code == "card_not_valid_here"


def test_a_partner_copy_is_lent_only_over_a_city_counter_where_it_waits():
    partner_copy = copy(owner="hiroshima-u", owning_branch="hu-central", partner="hiroshima-u")
    base = dict(branch="naka", card_system="hiroshima", patron=patron(home="広島市"), item=partner_copy,
                status="on_hold_shelf", at_branch="naka", counter_system_kind="city",
                secured=request(state=State.ON_HOLD_SHELF, pickup="naka"))
    assert policies.decide_check_out(HIROSHIMA, case(**base), NOW).allowed
    for change in (dict(channel="kiosk"), dict(counter_kind="mobile"), dict(counter_system_kind="university"),
                   dict(at_branch="minami")):
        d = policies.decide_check_out(HIROSHIMA, case(**{**base, **change}), NOW)
        assert d.code == "partner_lend_at_counter", change


def test_where_walk_ins_do_not_come_first_the_first_in_the_queue_gets_the_copy():
    no_walk_ins = replace(IIZUKA, walk_in_first=False)
    other = request(rid="3", card="0000000099", state=State.QUEUED)
    d = policies.decide_check_out(no_walk_ins, case(first_waiting=other), NOW)
    assert (d.code, d.details) == ("held_for_another_patron", {"request_id": 3})
    assert policies.decide_check_out(IIZUKA, case(first_waiting=other), NOW).allowed
    assert policies.decide_check_out(no_walk_ins, case(first_waiting=replace(other, patron_card=CARD)), NOW).allowed


def test_the_mobile_library_lends_until_the_next_visit_of_the_stop():
    mobile = next(code for code, b in HIROSHIMA.branches.items() if b.branch.kind == "mobile")
    card = next(iter(HIROSHIMA.mobile.card_categories))
    base = dict(branch=mobile, card_system="hiroshima", patron=patron(home="広島市", category=card),
                item=copy(owner="hiroshima", owning_branch=mobile))
    visit = NOW.date() + timedelta(days=20)
    d = policies.decide_check_out(HIROSHIMA, case(**base, stop="小学校前",
                                                  stop_visits=((NOW.date(), "visit"), (visit, "visit"))), NOW)
    assert d.allowed and d.details["due"] == visit
    with pytest.raises(policies.UnknownStop):
        policies.decide_check_out(HIROSHIMA, case(**base, stop="nowhere"), NOW)


# --------------------------------------------------------------------------- renewal, check-in

def test_a_renewal_needs_an_open_loan_and_a_valid_card():
    loan = Loan("3000000001", CARD, "iizuka", NOW - timedelta(days=10), NOW.date() + timedelta(days=4))
    d = policies.decide_renewal(IIZUKA, patron(), loan, NOW, is_open=False, state="RETURNED", channel="web",
                                someone_waiting=False)
    assert (d.code, d.details) == ("not_on_loan", {"state": "RETURNED"})
    expired = patron(card_expires=NOW.date() - timedelta(days=1))
    assert policies.decide_renewal(IIZUKA, expired, loan, NOW, is_open=True, state="ON_LOAN", channel="web",
                                   someone_waiting=False).code == "card_expired"
    assert policies.decide_renewal(IIZUKA, patron(), loan, NOW, is_open=True, state="ON_LOAN", channel="web",
                                   someone_waiting=True).code == "someone_waiting"


def test_a_check_in_counts_from_when_it_was_handed_in_and_says_how_late():
    loan = Loan("3000000001", CARD, "iizuka", NOW - timedelta(days=20), NOW.date() - timedelta(days=3))
    dropped = NOW - timedelta(days=1)
    d = policies.decide_check_in(IIZUKA, loan, copy(), ReturnPoint("book_drop", "iizuka"), NOW,
                                 here_system="iizuka", handed_at=dropped)
    assert d.allowed and d.details == {"returned_at": dropped, "overdue_days": 2}
    d = policies.decide_check_in(IIZUKA, loan, copy(), ReturnPoint("counter", "komae-central"), NOW,
                                 here_system="komae", handed_at=NOW)
    assert (d.code, d.details) == ("return_other_system", {"library": "iizuka"})


# --------------------------------------------------------------------------- placing, changing

def test_placing_a_patron_alone_uses_the_web_and_a_copy_on_the_shelf_is_the_representative():
    on_loan, on_shelf = copy(circulating=True), copy(circulating=True, newest_issue=True)
    rep = policies.representative(IIZUKA, [(on_loan, False), (on_shelf, True)])
    assert rep == replace(on_loan, on_loan=False)                 # not the newest issue, but one is on a shelf
    assert policies.representative(IIZUKA, [(on_loan, False)]).on_loan
    assert policies.representative(IIZUKA, []) is None and policies.kind_of(None) == "request"
    by_phone = request(rid="new", channel="phone", contact_method="email")
    d = policies.decide_placing(IIZUKA, patron(phone="0948"), rep, by_phone, NOW, role=Role.PATRON)
    assert (d.code, d.details) == ("channel_not_allowed", {"channels": ["opac", "web"]})
    web = replace(by_phone, channel="web")
    assert policies.decide_placing(IIZUKA, patron(), rep, web, NOW, role="patron").allowed


def test_changing_a_request_follows_the_state_and_the_profile():
    queued = request(state=State.QUEUED, contact_method="email")
    d = policies.decide_change(IIZUKA, patron(), replace(queued, state=State.ON_HOLD_SHELF),
                               pickup_branch=None, contact_method="none", role="patron")
    assert (d.code, d.details) == ("not_changeable", {"state": "ON_HOLD_SHELF"})
    assert policies.decide_change(IIZUKA, patron(), queued, pickup_branch="chikuho", contact_method=None,
                                  role="patron").code == "pickup_change_not_allowed"
    assert policies.decide_change(IIZUKA, patron(), queued, pickup_branch="chikuho", contact_method=None,
                                  role="staff").allowed
    komae_request = replace(queued, kind="request", pickup_branch="komae-central")
    assert policies.decide_change(KOMAE, patron(home="狛江市"), komae_request, pickup_branch="nishikawara",
                                  contact_method=None, role="staff").code == "request_not_at_pickup_branch"
    assert policies.keeps_pickup(KOMAE, komae_request) and not policies.keeps_pickup(IIZUKA, queued)


# --------------------------------------------------------------------------- cancelling

@pytest.mark.parametrize("state,channel,role,code,event", [
    (State.QUEUED, "web", Role.PATRON, "ok", Event.CANCEL),
    (State.ON_HOLD_SHELF, "web", Role.PATRON, "secured_staff_only", None),
    (State.ON_HOLD_SHELF, "counter", Role.STAFF, "ok", Event.CANCEL_SECURED),
    (State.ON_HOLD_SHELF, "counter", Role.PATRON, "secured_staff_only", None),
    (State.WILL_SUPPLY, "web", Role.PATRON, "ill_cancel_requested", Event.REQUEST_CANCEL),
    (State.WILL_SUPPLY, "web", Role.SYSTEM, "staff_only", None),
    (State.CANCEL_PENDING, "counter", Role.STAFF, "ill_cancel_requested", None),
    (State.SHIPPED, "counter", Role.STAFF, "cancel_after_shipping", None),
    (State.COMPLETED, "counter", Role.STAFF, "already_closed", None),
])
def test_the_cancel_decision_names_the_event_that_carries_it_out(state, channel, role, code, event):
    d, ev = policies.decide_cancel(IIZUKA, request(state=state), NOW, channel=channel, role=role)
    assert (d.code, ev) == (code, event)


def test_recorded_reasons_and_the_visible_period_of_closed_requests():
    assert policies.recorded_reason("", "web") == "WEBキャンセル"
    assert policies.recorded_reason("", "counter") == "窓口キャンセル"
    assert policies.recorded_reason("汚損", "web") == "汚損"
    for state in (State.REJECTED, State.UNFILLED, State.SHELF_EXPIRED, State.CANCELLED):
        ended = request(state=state, cancelled_at=NOW)
        assert policies.cancelled_visible(IIZUKA, ended, NOW + timedelta(days=29))
        assert not policies.cancelled_visible(IIZUKA, ended, NOW + timedelta(days=30))
    # no cancelled_at: the last change counts; the purge's cutoff is the same rule
    r = request(state=State.UNFILLED)
    assert not policies.cancelled_visible(IIZUKA, r, NOW)
    assert policies.cancelled_visible(IIZUKA, r, NOW, last_change=NOW - timedelta(days=1))
    for later in (NOW + timedelta(days=29, hours=23), NOW + timedelta(days=30), NOW + timedelta(days=31)):
        purged = NOW <= policies.purge_cutoff(IIZUKA, later)
        assert purged == (not policies.cancelled_visible(IIZUKA, request(state=State.CANCELLED, cancelled_at=NOW),
                                                         later)), later
    assert not policies.cancelled_visible(IIZUKA, request(state=State.ON_LOAN, cancelled_at=NOW), NOW)
