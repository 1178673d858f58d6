"""Hiroshima paid home delivery (有料図書宅配サービス, seed 002 lines 53-92) on the database
(circulation/delivery.py, holds.place(delivery=True), loans.check_out channel "delivery",
the [delivery] profile section), on SQLite and PostgreSQL.

Each test is one rule of the seed and checks the rows and the audit trail it leaves."""
from __future__ import annotations

import tomllib
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from circ_helpers import NOW, add_calendar, add_item, add_patron, one_row, rows
from circulation import delivery, holds, jobs, loans
from circulation import routing as rt
from circulation import schema as s
from circulation.store import NotFound
from lifecycle import policies
from lifecycle.model import Loan
from lifecycle.profiles import ProfileError, load_profile, parse_profile

STAFF = dict(role="staff", actor="counter-1")
# Hiroshima offers no 連絡不要: its patrons are contacted by phone
CONTACT = dict(phone="082-000-0000", default_contact_method="phone")
DUE_3_WEEKS = date(2026, 12, 11)        # Friday 20 Nov + 21 days


def at(circ, when: datetime) -> None:
    circ.clock.fixed = when


async def person(circ, card, **kw):
    return await add_patron(circ, card, "hiroshima", **{**CONTACT, **kw})


async def registered(circ, card, **kw):
    pid = await person(circ, card, **kw)
    d = await delivery.register(circ, card=card, channel="counter", branch="naka", **STAFF)
    assert d.allowed, d.code
    return pid


async def patron_row(circ, card):
    return await one_row(circ, s.patrons, s.patrons.c.card_number == card)


async def patron_events(circ, pid):
    return [(e.event, e.actor_role, e.actor, e.channel, e.reason)
            for e in await rows(circ, s.events, s.events.c.patron_id == pid, order_by=s.events.c.id)]


async def place_delivery(circ, card, title_id, channel="form", pickup="central", **kw):
    return await holds.place(circ, card=card, title_id=title_id, pickup_branch=pickup,
                             channel=channel, delivery=True, **{**STAFF, **kw})


async def request_row(circ, rid):
    return await one_row(circ, s.requests, s.requests.c.id == rid)


async def item_row(circ, barcode):
    return await one_row(circ, s.items, s.items.c.barcode == barcode)


async def loan_row(circ, loan_id):
    return await one_row(circ, s.loans, s.loans.c.id == loan_id)


async def request_events(circ, rid):
    return [(e.event, e.from_state, e.to_state, e.channel)
            for e in await rows(circ, s.events, s.events.c.request_id == rid, order_by=s.events.c.id)]


async def ready_for_delivery(circ, card, barcode="HD1", title_id="bib-d1", branch="central", **kw):
    """A registered patron's delivery hold on a copy that is on the dispatch branch's shelf."""
    await add_item(circ, barcode, title_id, "hiroshima", branch, **kw)
    res = await place_delivery(circ, card, title_id)
    assert res.decision.allowed, (res.decision.code, res.decision.details)
    routing = await rt.trap_from_shelf(circ, barcode=barcode, branch=branch, **STAFF)
    if branch != "central":
        assert routing.kind == rt.TRANSIT_HOLD and routing.to_branch == "central"
        await loans.check_in(circ, barcode=barcode, branch="central", **STAFF)
    assert (await request_row(circ, res.request_id)).state == "ON_HOLD_SHELF"
    return res.request_id


async def shipped(circ, card, **kw):
    rid = await ready_for_delivery(circ, card, **kw)
    r = await delivery.ship(circ, barcode=kw.get("barcode", "HD1"), **STAFF)
    assert r.decision.allowed, (r.decision.code, r.decision.details)
    return rid, r


# --------------------------------------------------------------------------- the profile

def test_hiroshima_profile_describes_home_delivery_and_the_other_profiles_do_not():
    p = load_profile("hiroshima")
    d = p.delivery
    assert d.enabled and d.home == {"広島市"} and d.work_or_school == {"広島市"}
    assert d.days == 21 and d.dispatch_branch == "central" and d.minors_need_guardian_consent
    assert d.materials == {"book", "manga", "magazine", "kamishibai"}
    assert d.request_channels == {"counter", "form", "fax", "web"}      # no OPAC, no 携帯サイト
    assert d.registration_channels == {"counter", "post"}
    r = d.renewal
    assert (r.max, r.requires_no_waiting, r.window_days_after_due, r.base, r.days) == (1, True, 0, "today", 14)
    assert r.channels == {"counter", "web", "phone"}
    assert load_profile("iizuka").delivery is None and load_profile("komae").delivery is None


def test_a_misspelt_or_inconsistent_delivery_setting_is_rejected():
    path = Path(__file__).resolve().parents[1] / "config/profiles/hiroshima.toml"
    data = tomllib.loads(path.read_text())
    data["delivery"]["period_days"] = 21
    with pytest.raises(ProfileError, match="unknown keys"):
        parse_profile(data)
    data = tomllib.loads(path.read_text())
    data["delivery"]["dispatch_branch"] = "tomohato"          # the mobile library is no pickup point
    with pytest.raises(ProfileError, match="dispatch_branch"):
        parse_profile(data)
    data = tomllib.loads(path.read_text())
    data["delivery"]["renewal"]["channels"] = ["carrier-pigeon"]
    with pytest.raises(ProfileError, match="channels"):
        parse_profile(data)


def test_the_delivery_renewal_rule_applies_only_to_shipped_loans():
    p = load_profile("hiroshima")
    counter = Loan("HB1", "H1", "central", datetime(2026, 11, 20), date(2026, 12, 4))
    shipped_loan = Loan("HB1", "H1", "central", datetime(2026, 11, 20), date(2026, 12, 11), delivery=True)
    assert policies.renewal_rule(p, counter) is p.renewal
    assert policies.renewal_rule(p, shipped_loan) is p.delivery.renewal
    # a counter loan may be renewed through any channel, a shipped one not by fax
    when = datetime(2026, 12, 1, 10)
    assert policies.can_renew(p, counter, when, channel="fax", someone_waiting=False).details["due"] == \
        date(2026, 12, 15)
    d = policies.can_renew(p, shipped_loan, when, channel="fax", someone_waiting=False)
    assert d.code == "channel_not_allowed" and d.details["channels"] == ["counter", "phone", "web"]
    assert policies.can_renew(p, shipped_loan, when, channel="phone", someone_waiting=False).details["due"] == \
        date(2026, 12, 15)
    late = datetime(2026, 12, 12, 10)
    assert policies.can_renew(p, shipped_loan, late, channel="web", someone_waiting=False).code == \
        "renewal_too_late"
    assert policies.can_renew(p, counter, late, channel="web", someone_waiting=False).details["due"] == \
        date(2026, 12, 18)


# --------------------------------------------------------------------------- registration

async def test_hiroshima_home_delivery_registration_at_the_counter_for_a_city_resident(circ):
    pid = await person(circ, "H001")
    d = await delivery.register(circ, card="H001", channel="counter", branch="naka", **STAFF)
    assert d.allowed and d.code == "ok"
    p = await patron_row(circ, "H001")
    assert (p.delivery_registered_at, p.delivery_registered_via, p.delivery_revoked_at) == (NOW, "counter", None)
    assert p.guardian_consent_at is None
    (e,) = await rows(circ, s.events, s.events.c.patron_id == pid)
    assert (e.event, e.actor_role, e.actor, e.channel, e.branch, e.reason) == (
        "DELIVERY_REGISTERED", "staff", "counter-1", "counter", "naka", "via counter")
    assert (await delivery.registration(circ, "H001"))["registered"] is True


async def test_hiroshima_home_delivery_registration_by_post_for_a_commuter_from_outside(circ):
    # 広島市内に…通勤・通学されている方: a Kure resident working in Hiroshima may register
    pid = await person(circ, "H002", home="呉市", work="広島市")
    d = await delivery.register(circ, card="H002", channel="post", **STAFF)
    assert d.allowed
    assert (await patron_row(circ, "H002")).delivery_registered_via == "post"
    assert await patron_events(circ, pid) == [("DELIVERY_REGISTERED", "staff", "counter-1", "post", "via post")]


async def test_hiroshima_home_delivery_refused_for_wide_area_residents(circ):
    # 広域利用の方は利用できません: a Kure resident holds a Hiroshima card but cannot register
    pid = await person(circ, "H003", home="呉市")
    d = await delivery.register(circ, card="H003", channel="counter", **STAFF)
    assert not d.allowed and d.code == "delivery_not_eligible_area"
    assert "広域利用の方は利用できません" in d.message_ja
    assert (await patron_row(circ, "H003")).delivery_registered_at is None
    assert await patron_events(circ, pid) == []
    # and they cannot place a delivery request either
    await add_item(circ, "HB1", "bib-1", "hiroshima", "central")
    res = await place_delivery(circ, "H003", "bib-1")
    assert res.request_id is None and res.decision.code == "delivery_not_registered"


async def test_hiroshima_home_delivery_needs_a_guardians_consent_for_children(circ):
    # 未就学児、小・中学生は保護者の同意が必要です。
    pid = await person(circ, "H004", minor=True)
    d = await delivery.register(circ, card="H004", channel="counter", **STAFF)
    assert not d.allowed and d.code == "delivery_guardian_consent_required"
    assert (await patron_row(circ, "H004")).delivery_registered_at is None
    d = await delivery.register(circ, card="H004", channel="counter", guardian_consent=True, **STAFF)
    assert d.allowed
    p = await patron_row(circ, "H004")
    assert p.delivery_registered_at == NOW and p.guardian_consent_at == NOW
    assert await patron_events(circ, pid) == [
        ("DELIVERY_REGISTERED", "staff", "counter-1", "counter", "via counter, guardian consent given")]
    # an adult needs no consent
    await person(circ, "H005")
    assert (await delivery.register(circ, card="H005", channel="counter", **STAFF)).allowed


async def test_home_delivery_registration_refusals_write_nothing(circ):
    await person(circ, "H006")
    await person(circ, "G001", category="group")
    await add_patron(circ, "I001", "iizuka", email="i001@example.jp")
    cases = [
        (dict(card="H006", channel="fax", **STAFF), "channel_not_allowed"),       # 窓口または郵便
        (dict(card="H006", channel="counter", role="patron", actor="H006"), "delivery_staff_only"),
        (dict(card="G001", channel="counter", **STAFF), "delivery_category_not_allowed"),
        (dict(card="I001", channel="counter", **STAFF), "delivery_not_offered"),
    ]
    for kw, code in cases:
        d = await delivery.register(circ, **kw)
        assert (d.allowed, d.code) == (False, code), kw
        assert d.message_ja and d.message_en
    assert await rows(circ, s.events) == []
    assert all(p.delivery_registered_at is None for p in await rows(circ, s.patrons))
    assert (await delivery.register(circ, card="H006", channel="counter", **STAFF)).allowed
    d = await delivery.register(circ, card="H006", channel="post", **STAFF)
    assert d.code == "delivery_already_registered"
    assert len(await rows(circ, s.events)) == 1
    with pytest.raises(NotFound):
        await delivery.register(circ, card="NOPE", channel="counter", **STAFF)


async def test_hiroshima_home_delivery_registration_revoked_by_staff_for_unpaid_postage(circ):
    # 配送費用をお支払いいただけなかった場合は、宅配サービスの利用登録を取消させていただくことがあります。
    pid = await registered(circ, "H007")
    rid = await ready_for_delivery(circ, "H007")
    at(circ, NOW + timedelta(hours=1))
    d = await delivery.revoke(circ, card="H007", reason="postage_unpaid", note="11月分", branch="central",
                              **STAFF)
    assert d.allowed
    p = await patron_row(circ, "H007")
    assert (p.delivery_registered_at, p.delivery_revoked_at, p.delivery_revoked_reason) == (
        None, NOW + timedelta(hours=1), "postage_unpaid")
    assert [e[0] for e in await patron_events(circ, pid)] == ["DELIVERY_REGISTERED", "DELIVERY_REVOKED"]
    assert (await patron_events(circ, pid))[-1][4] == "postage_unpaid: 配送費用の未払い (11月分)"
    # the hold already readied can no longer be shipped; the dispatch list says why
    (entry,) = await delivery.dispatch_list(circ, "central")
    assert entry["request_id"] == rid and entry["registered"] is False
    r = await delivery.ship(circ, barcode="HD1", **STAFF)
    assert r.loan_id is None and r.decision.code == "delivery_not_registered"
    assert await rows(circ, s.loans) == []
    # nor can a new delivery request be placed, and revoking again is refused
    await add_item(circ, "HB2", "bib-2", "hiroshima", "central")
    assert (await place_delivery(circ, "H007", "bib-2")).decision.code == "delivery_not_registered"
    assert (await delivery.revoke(circ, card="H007", reason="address_undeliverable", **STAFF)).code == \
        "delivery_not_registered"
    with pytest.raises(ValueError):
        await delivery.revoke(circ, card="H007", reason="rude", **STAFF)
    # registering again (the postage was paid) is possible
    assert (await delivery.register(circ, card="H007", channel="counter", **STAFF)).allowed
    assert (await patron_row(circ, "H007")).delivery_revoked_at is None


async def test_hiroshima_home_delivery_revoked_for_an_inaccurate_address(circ):
    # 住所が不正確でお届けできなかった場合
    pid = await registered(circ, "H008")
    assert (await delivery.revoke(circ, card="H008", reason="address_undeliverable", **STAFF)).allowed
    assert (await delivery.revoke(circ, card="H008", reason="patron_request", role="patron",
                                  actor="H008")).code == "delivery_staff_only"
    assert (await patron_events(circ, pid))[-1] == (
        "DELIVERY_REVOKED", "staff", "counter-1", None, "address_undeliverable: 住所が不正確でお届けできない")


# --------------------------------------------------------------------------- requests

async def test_hiroshima_delivery_request_only_for_registered_patrons_and_delivery_materials(circ):
    await person(circ, "H010")
    await add_item(circ, "HB1", "bib-book", "hiroshima", "naka")
    await add_item(circ, "HV1", "bib-dvd", "hiroshima", "naka", material_type="av")
    await add_item(circ, "HK1", "bib-kami", "hiroshima", "kodomo", material_type="kamishibai")
    res = await place_delivery(circ, "H010", "bib-book")
    assert res.request_id is None and res.decision.code == "delivery_not_registered"
    await delivery.register(circ, card="H010", channel="counter", **STAFF)
    res = await place_delivery(circ, "H010", "bib-dvd")
    assert res.decision.code == "delivery_material_not_offered" and res.decision.details["material"] == "av"
    # 携帯サイトからは不可; the OPAC and the phone are not delivery channels either
    res = await place_delivery(circ, "H010", "bib-book", channel="opac", role="patron", actor="H010")
    assert res.decision.code == "channel_not_allowed"
    assert await rows(circ, s.requests) == []
    # the library website, a form by post, FAX, the counter
    res = await place_delivery(circ, "H010", "bib-book", channel="web", role="patron", actor="H010",
                               pickup="naka")
    assert res.decision.allowed
    row = await request_row(circ, res.request_id)
    assert (row.delivery, row.pickup_branch, row.state) == (True, "central", "QUEUED")
    place_ev = (await rows(circ, s.events, s.events.c.request_id == res.request_id, order_by=s.events.c.id))[0]
    assert (place_ev.event, place_ev.reason) == ("PLACE", "reservation delivery")
    res = await place_delivery(circ, "H010", "bib-kami", channel="fax")
    assert res.decision.allowed and (await request_row(circ, res.request_id)).delivery
    # an ordinary hold is not a delivery hold
    res = await holds.place(circ, card="H010", title_id="bib-dvd", pickup_branch="naka", channel="counter",
                            **STAFF)
    assert res.decision.allowed and not (await request_row(circ, res.request_id)).delivery


async def test_hiroshima_delivery_requests_count_against_the_twenty_hold_limit(circ):
    # 予約・リクエストの受付冊数は、総数20冊まで — delivery requests included
    await registered(circ, "H011")
    for i in range(21):
        await add_item(circ, f"HB{i:02}", f"bib-{i}", "hiroshima", "central")
    for i in range(19):
        r = await holds.place(circ, card="H011", title_id=f"bib-{i}", pickup_branch="naka",
                              channel="counter", **STAFF)
        assert r.decision.allowed
    assert (await place_delivery(circ, "H011", "bib-19")).decision.allowed
    res = await place_delivery(circ, "H011", "bib-20")
    assert res.request_id is None and res.decision.code == "limit_total" and res.decision.details["limit"] == 20
    assert len(await rows(circ, s.requests)) == 20


# --------------------------------------------------------------------------- ready: the dispatch list

async def test_hiroshima_delivery_hold_ready_goes_to_the_dispatch_list_without_a_hold_ready_notice(circ):
    await registered(circ, "H020")
    await person(circ, "H021")
    # the copy is at Naka: sent to the central library, which ships
    rid = await ready_for_delivery(circ, "H020", branch="naka")
    row = await request_row(circ, rid)
    assert (row.pickup_branch, row.shelf_deadline, row.contacted_at, row.ready_at) == ("central", None, None, NOW)
    assert [e[0] for e in await request_events(circ, rid)] == [
        "PLACE", "VALIDATE", "ENQUEUE", "TRAP_ELSEWHERE", "TRANSIT_SENT", "TRANSIT_ARRIVED",
        "ARRIVE_AT_PICKUP"]
    arrive = (await rows(circ, s.events, s.events.c.request_id == rid, s.events.c.event == "ARRIVE_AT_PICKUP"))[0]
    assert arrive.reason == "delivery: ready to ship"
    # no 'come and collect' notice: only the hold_received one
    assert [n.kind for n in await rows(circ, s.notices, s.notices.c.request_id == rid)] == ["hold_received"]
    (entry,) = await delivery.dispatch_list(circ, "central")
    assert (entry["request_id"], entry["barcode"], entry["card"], entry["registered"]) == (rid, "HD1", "H020", True)
    assert await delivery.dispatch_list(circ, "naka") == []
    # an ordinary hold at the same branch gets its notice and deadline, and is not on the list
    await add_item(circ, "HB9", "bib-9", "hiroshima", "central")
    other = await holds.place(circ, card="H021", title_id="bib-9", pickup_branch="central", channel="counter",
                              **STAFF)
    await rt.trap_from_shelf(circ, barcode="HB9", branch="central", **STAFF)
    assert (await request_row(circ, other.request_id)).shelf_deadline is not None
    assert [n.kind for n in await rows(circ, s.notices, s.notices.c.request_id == other.request_id)] == [
        "hold_received", "hold_ready"]
    assert [e["request_id"] for e in await delivery.dispatch_list(circ, "central")] == [rid]
    # the shelf-expiry job never expires a delivery hold waiting to be shipped
    at(circ, NOW + timedelta(days=30))
    assert await jobs.expire_shelf(circ) == 1
    assert (await request_row(circ, rid)).state == "ON_HOLD_SHELF"
    assert (await request_row(circ, other.request_id)).state == "SHELF_EXPIRED"


async def test_a_delivery_hold_can_be_cancelled_by_staff_before_it_is_shipped(circ):
    await registered(circ, "H022")
    rid = await ready_for_delivery(circ, "H022")
    d = await holds.cancel(circ, request_id=rid, channel="counter", branch="central", **STAFF)
    assert d.allowed
    assert (await request_row(circ, rid)).state == "CANCELLED"
    assert await delivery.dispatch_list(circ, "central") == []
    assert (await item_row(circ, "HD1")).status == "available"


# --------------------------------------------------------------------------- shipping

async def test_hiroshima_shipping_lends_for_three_weeks_on_the_delivery_channel(circ):
    # 期間 3週間(往復の配送期間を含む)
    await registered(circ, "H030")
    rid, r = await shipped(circ, "H030")
    assert r.due == DUE_3_WEEKS and r.request_id == rid
    loan = await loan_row(circ, r.loan_id)
    assert (loan.channel, loan.branch, loan.due, loan.request_id, loan.proxy) == (
        "delivery", "central", DUE_3_WEEKS, rid, None)
    assert (await request_row(circ, rid)).state == "ON_LOAN"
    assert (await item_row(circ, "HD1")).status == "on_loan"
    assert (await request_events(circ, rid))[-1] == ("CHECK_OUT", "ON_HOLD_SHELF", "ON_LOAN", "delivery")
    (ev,) = await rows(circ, s.events, s.events.c.loan_id == r.loan_id)
    assert (ev.event, ev.channel, ev.branch, ev.reason) == ("CHECK_OUT", "delivery", "central",
                                                          "due 2026-12-11")
    assert await delivery.dispatch_list(circ, "central") == []
    # 発送後の取消はできません: once shipped it is a loan
    d = await holds.cancel(circ, request_id=rid, channel="counter", branch="central", **STAFF)
    assert not d.allowed and d.code == "already_closed"
    assert (await request_row(circ, rid)).state == "ON_LOAN"
    # shipping the same copy again is refused
    assert (await delivery.ship(circ, barcode="HD1", **STAFF)).decision.code == "delivery_not_ready"


async def test_hiroshima_delivery_due_date_on_a_closed_day_moves_to_the_next_open_day(circ):
    await registered(circ, "H031")
    await add_calendar(circ, "central", DUE_3_WEEKS)            # 臨時休館
    _, r = await shipped(circ, "H031")
    assert r.due == date(2026, 12, 12)
    assert (await loan_row(circ, r.loan_id)).due == date(2026, 12, 12)


async def test_hiroshima_delivery_loans_count_with_counter_loans_against_ten(circ):
    # 冊数 窓口貸出と合わせて10冊以内
    await registered(circ, "H032")
    for i in range(9):
        await add_item(circ, f"HB{i}", f"bib-{i}", "hiroshima", "naka")
        r = await loans.check_out(circ, barcode=f"HB{i}", card="H032", branch="naka", **STAFF)
        assert r.decision.allowed
    await ready_for_delivery(circ, "H032", barcode="HD1", title_id="bib-d1")
    rid2 = await ready_for_delivery(circ, "H032", barcode="HD2", title_id="bib-d2")
    assert (await delivery.ship(circ, barcode="HD1", **STAFF)).decision.allowed        # the 10th
    r = await delivery.ship(circ, barcode="HD2", **STAFF)
    assert r.loan_id is None and r.decision.code == "loan_limit" and r.decision.details["limit"] == 10
    assert len(await rows(circ, s.loans)) == 10
    assert (await request_row(circ, rid2)).state == "ON_HOLD_SHELF"
    # and a counter loan is refused once the delivery loan made ten
    await add_item(circ, "HB9", "bib-9", "hiroshima", "naka")
    r = await loans.check_out(circ, barcode="HB9", card="H032", branch="naka", **STAFF)
    assert r.decision.code == "loan_limit"


async def test_the_delivery_channel_lends_only_a_copy_readied_for_a_delivery_request(circ):
    await registered(circ, "H033")
    await person(circ, "H034")
    await add_item(circ, "HB1", "bib-1", "hiroshima", "central")
    r = await loans.check_out(circ, barcode="HB1", card="H033", branch="central", channel="delivery", **STAFF)
    assert r.loan_id is None and r.decision.code == "delivery_request_required"
    # an ordinary hold on the shelf is not shipped
    await holds.place(circ, card="H034", title_id="bib-1", pickup_branch="central", channel="counter", **STAFF)
    await rt.trap_from_shelf(circ, barcode="HB1", branch="central", **STAFF)
    assert (await delivery.ship(circ, barcode="HB1", **STAFF)).decision.code == "delivery_not_ready"
    assert (await delivery.ship(circ, barcode="HB1", role="patron", actor="H034")).decision.code == \
        "delivery_staff_only"
    assert await rows(circ, s.loans) == []
    assert [e.event for e in await rows(circ, s.events) if e.event == "CHECK_OUT"] == []
    with pytest.raises(NotFound):
        await delivery.ship(circ, barcode="NOPE", **STAFF)


async def test_a_patron_who_comes_to_the_counter_borrows_a_delivery_hold_as_a_counter_loan(circ):
    await registered(circ, "H035")
    rid = await ready_for_delivery(circ, "H035")
    r = await loans.check_out(circ, barcode="HD1", card="H035", branch="central", **STAFF)
    assert r.decision.allowed and r.request_id == rid and r.due == date(2026, 12, 4)
    assert (await loan_row(circ, r.loan_id)).channel == "counter"


# --------------------------------------------------------------------------- renewal

async def test_hiroshima_delivery_loan_renewed_once_for_two_weeks_from_the_day_asked(circ):
    # お申込みいただいた日から2週間延長; 延長できるのは1回のみ; 窓口・ホームページ・電話
    await registered(circ, "H040")
    _, r = await shipped(circ, "H040")
    at(circ, datetime(2026, 11, 25, 10))      # asked early: 25 Nov + 14 = 9 Dec, before the due date
    d = await loans.renew(circ, loan_id=r.loan_id, channel="phone", **STAFF)
    assert d.due is None and d.decision.code == "renewal_not_extending"
    at(circ, datetime(2026, 12, 5, 10))
    (page,) = await loans.patron_loans(circ, "H040")
    assert page["renewable"] is True
    d = await loans.renew(circ, loan_id=r.loan_id, channel="phone", **STAFF)
    assert d.decision.allowed and d.due == date(2026, 12, 19) and d.renewals == 1
    loan = await loan_row(circ, r.loan_id)
    assert (loan.due, loan.renewals, loan.renewed_via, loan.channel) == (date(2026, 12, 19), 1, "phone", "delivery")
    ev = (await rows(circ, s.events, s.events.c.loan_id == r.loan_id, s.events.c.event == "RENEW"))[0]
    assert (ev.channel, ev.reason) == ("phone", "due 2026-12-11 -> 2026-12-19")
    at(circ, datetime(2026, 12, 15, 10))
    d = await loans.renew(circ, loan_id=r.loan_id, channel="web", card="H040", role="patron", actor="H040")
    assert d.decision.code == "renewal_limit"
    assert (await loan_row(circ, r.loan_id)).due == date(2026, 12, 19)


async def test_hiroshima_delivery_renewal_must_be_asked_before_the_due_date(circ):
    # 貸出期間の延長を希望する場合は、期限内にお申込みください — counter loans keep their rule
    await registered(circ, "H041")
    _, r = await shipped(circ, "H041")
    await add_item(circ, "HB1", "bib-1", "hiroshima", "central")
    at(circ, datetime(2026, 11, 27, 10))
    counter = await loans.check_out(circ, barcode="HB1", card="H041", branch="central", **STAFF)
    at(circ, datetime(2026, 12, 11, 18))      # on the due date: still in time
    page = {e["loan_id"]: e for e in await loans.patron_loans(circ, "H041")}
    assert page[r.loan_id]["renewable"] is True
    at(circ, datetime(2026, 12, 12, 10))      # a day late
    d = await loans.renew(circ, loan_id=r.loan_id, channel="counter", **STAFF)
    assert d.decision.code == "renewal_too_late"
    assert d.decision.message_ja == "返却期限日を過ぎているため延長できません。"
    assert (await loan_row(circ, r.loan_id)).renewals == 0
    # the counter loan (due 11 Dec as well) is overdue too, yet renewable: due + 14
    assert (await loan_row(circ, counter.loan_id)).due == date(2026, 12, 11)
    d = await loans.renew(circ, loan_id=counter.loan_id, channel="counter", **STAFF)
    assert d.decision.allowed and d.due == date(2026, 12, 25)


async def test_hiroshima_delivery_renewal_refused_when_someone_waits_or_by_fax(circ):
    # 次にお待ちの方(予約)がいなければ; 申込は窓口・ホームページ・電話
    await registered(circ, "H042")
    await person(circ, "H043")
    _, r = await shipped(circ, "H042")
    at(circ, datetime(2026, 12, 5, 10))
    d = await loans.renew(circ, loan_id=r.loan_id, channel="fax", **STAFF)
    assert d.decision.code == "channel_not_allowed"
    assert (await holds.place(circ, card="H043", title_id="bib-d1", pickup_branch="naka", channel="counter",
                              **STAFF)).decision.allowed
    d = await loans.renew(circ, loan_id=r.loan_id, channel="web", **STAFF)
    assert d.decision.code == "someone_waiting"
    loan = await loan_row(circ, r.loan_id)
    assert (loan.due, loan.renewals) == (DUE_3_WEEKS, 0)
    assert await rows(circ, s.events, s.events.c.event == "RENEW") == []


# --------------------------------------------------------------------------- returns

async def test_hiroshima_delivery_posted_back_counts_as_returned_when_it_arrives(circ):
    # 往復利用: 広島市立図書館に届いた時点で返却となります。日にちに余裕をもって発送してください。
    await registered(circ, "H050")
    rid, r = await shipped(circ, "H050")
    at(circ, datetime(2026, 12, 13, 11))      # posted on the due date, arrives two days later
    res = await loans.check_in(circ, barcode="HD1", branch="central", return_kind="post",
                               dropped_at=datetime(2026, 12, 11, 9), **STAFF)
    assert res.decision.allowed and res.returned_at == datetime(2026, 12, 13, 11) and res.overdue_days == 2
    loan = await loan_row(circ, r.loan_id)
    assert (loan.state, loan.return_kind, loan.return_branch, loan.returned_at) == (
        "RETURNED", "post", "central", datetime(2026, 12, 13, 11))
    (ev,) = await rows(circ, s.events, s.events.c.loan_id == r.loan_id, s.events.c.event == "CHECK_IN")
    assert (ev.channel, ev.reason) == ("post", "returned_at 2026-12-13T11:00:00, 2 days late")
    assert (await request_row(circ, rid)).state == "COMPLETED"
    assert (await item_row(circ, "HD1")).status == "available"


async def test_hiroshima_delivery_collected_only_is_returned_at_a_counter_or_book_drop(circ):
    # 借受時のみ宅配利用の場合は、広島市立図書館の返却窓口かブックポストに直接返却してください。
    await registered(circ, "H051")
    _, r1 = await shipped(circ, "H051", barcode="HD1", title_id="bib-d1")
    _, r2 = await shipped(circ, "H051", barcode="HD2", title_id="bib-d2")
    at(circ, datetime(2026, 12, 1, 10))
    res = await loans.check_in(circ, barcode="HD1", branch="naka", return_kind="counter", **STAFF)
    assert res.decision.allowed and res.returned_at == datetime(2026, 12, 1, 10)
    at(circ, datetime(2026, 12, 2, 9, 30))    # the book drop at Naka, emptied the next morning
    res = await loans.check_in(circ, barcode="HD2", branch="naka", return_kind="book_drop",
                               dropped_at=datetime(2026, 12, 1, 21), **STAFF)
    assert res.decision.allowed and res.returned_at == datetime(2026, 12, 1, 21)
    kinds = [(loan.return_kind, loan.return_branch, loan.state)
             for loan in await rows(circ, s.loans, order_by=s.loans.c.id)]
    assert kinds == [("counter", "naka", "RETURNED"), ("book_drop", "naka", "RETURNED")]
    assert [e.channel for e in await rows(circ, s.events, s.events.c.event == "CHECK_IN",
                                          s.events.c.request_id.is_(None),
                                          order_by=s.events.c.id)] == ["counter", "book_drop"]
    # the copies go home to the central library
    assert (await item_row(circ, "HD1")).status == "in_transit"
