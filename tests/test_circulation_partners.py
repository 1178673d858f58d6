"""University partnership (連携貸出, Hiroshima; circulation/partners.py) on SQLite and
PostgreSQL: which copies of 広島市立大学附属図書館 (hiroshima-cu) and 広島大学図書館
(hiroshima-u) a city patron may ask for on the form at a city counter, and the whole
flow of the copy (sent, received at that counter, lent there within the 10 items,
returned there, sent back), with the rows and the audit trail each step leaves.

Seed 002 (広島市立図書館), 市立大学附属図書館・広島大学図書館からの連携貸出について."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert

from circ_helpers import NOW, add_item, add_patron, one_row, rows
from circulation import holds, jobs, lists, loans, partners
from circulation import routing as rt
from circulation import schema as s
from circulation.jobs import run_job
from circulation.store import NotFound
from lifecycle import policies
from lifecycle.model import Item, Patron, Request
from lifecycle.profiles import ProfileError, load_profile, parse_profile

STAFF = dict(role="staff", actor="naka-counter")
PARTNER = dict(role="partner", actor="iso18626:hiroshima-u")


# --------------------------------------------------------------------------- helpers

async def patron(circ, card="H001", **kw):
    kw.setdefault("email", f"{card.lower()}@example.jp")
    kw.setdefault("default_contact_method", "email")
    return await add_patron(circ, card, "hiroshima", **kw)


async def hu_copy(circ, barcode, title_id, branch="hu-central", **kw):
    kw.setdefault("location", "開架")
    return await add_item(circ, barcode, title_id, "hiroshima-u", branch, partner="hiroshima-u", **kw)


async def hcu_copy(circ, barcode, title_id, location="図書館3F", branch="hcu-library", **kw):
    return await add_item(circ, barcode, title_id, "hiroshima-cu", branch, partner="hiroshima-cu",
                          location=location, **kw)


async def ask(circ, barcode, card="H001", branch="naka", **kw):
    kw = {**STAFF, "channel": "form", **kw}
    return await partners.request_item(circ, card=card, barcode=barcode, branch=branch, **kw)


async def asked(circ, barcode, card="H001", branch="naka", **kw) -> int:
    r = await ask(circ, barcode, card, branch, **kw)
    assert r.decision.allowed, (r.decision.code, r.decision.details)
    return r.request_id


async def req(circ, rid):
    return await one_row(circ, s.requests, s.requests.c.id == rid)


async def item(circ, barcode):
    return await one_row(circ, s.items, s.items.c.barcode == barcode)


async def trail(circ, rid):
    return [(e.event, e.from_state, e.to_state, e.actor_role)
            for e in await rows(circ, s.events, s.events.c.request_id == rid, order_by=s.events.c.id)]


async def open_transits(circ, barcode):
    it = await item(circ, barcode)
    return [(t.reason, t.from_branch, t.to_branch) for t in await rows(
        circ, s.transits, s.transits.c.item_id == it.id, s.transits.c.arrived_at.is_(None))]


async def notice_kinds(circ, rid):
    return [n.kind for n in await rows(circ, s.notices, s.notices.c.request_id == rid,
                                       order_by=s.notices.c.id)]


async def refused(circ, barcode, code, card="H001", **kw):
    before = len(await rows(circ, s.requests))
    r = await ask(circ, barcode, card, **kw)
    assert not r.decision.allowed and r.decision.code == code, (r.decision.code, r.decision.details)
    assert r.request_id is None and r.decision.message_ja and r.decision.message_en
    assert len(await rows(circ, s.requests)) == before          # nothing written
    return r.decision


async def shipped_to(circ, barcode, branch="naka", card="H001") -> int:
    """A request at ``branch`` whose copy the university has sent."""
    rid = await asked(circ, barcode, card, branch)
    r = await partners.partner_shipped(circ, request_id=rid, **PARTNER)
    assert r.decision.allowed, r.decision.code
    return rid


async def on_shelf(circ, barcode, branch="naka", card="H001") -> int:
    rid = await shipped_to(circ, barcode, branch, card)
    r = await partners.receive(circ, barcode=barcode, branch=branch, **STAFF)
    assert r.decision.allowed and r.routing.kind == rt.HOLD_SHELF, r
    return rid


# --------------------------------------------------------------------------- the partners as data

def test_the_hiroshima_profile_names_both_partner_universities_with_their_own_collections():
    p = load_profile("hiroshima").partners
    assert set(p) == {"hiroshima-cu", "hiroshima-u"}
    cu, u = p["hiroshima-cu"], p["hiroshima-u"]
    assert cu.name == "広島市立大学附属図書館" and u.name == "広島大学図書館"
    assert cu.eligible_locations == {"図書館3F", "図書館2F", "図書館2F文庫", "図書館2F新書"}
    assert cu.eligible_branches == {"hcu-library"} and cu.branches["hcu-library"] == "図書館・事務局"
    assert u.eligible_branches == {"hu-central", "hu-west", "hu-east"} and not u.eligible_locations
    # the exclusion list is read as 広島大学's cell of the table (docs/lifecycle.md)
    assert u.excluded_materials == {"av", "oversized", "textbook", "reference", "rare", "thesis"}
    assert u.exclude_on_loan_or_held and not cu.exclude_on_loan_or_held and not cu.excluded_materials
    assert cu.channels == u.channels == {"counter", "form"}
    assert cu.lend_at_request_counter and u.lend_at_request_counter


def _with_partner(**changes):
    import tomllib

    from config import locate
    with open(locate("profiles/hiroshima.toml"), "rb") as f:
        data = tomllib.load(f)
    data["partners"]["hiroshima-u"].update(changes)
    return data


@pytest.mark.parametrize("changes, message", [
    ({"shelf": "x"}, "unknown keys ['shelf']"),
    ({"eligible_branches": ["hu-kasumi", "nowhere"]}, "eligible_branches"),
    ({"excluded_materials": ["cdrom"]}, "unknown ['cdrom']"),
    ({"channels": ["web"]}, "unknown ['web']"),
    ({"branches": {"naka": "中区"}}, "branch codes already used: ['naka']"),
    ({"exclude_on_loan_or_held": "yes"}, "expected bool"),
])
def test_a_partner_section_is_read_strictly(changes, message):
    with pytest.raises(ProfileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_profile(_with_partner(**changes), "hiroshima.toml")


async def test_the_network_holds_both_universities_and_their_branches(circ):
    libs = {r.code: r for r in await rows(circ, s.libraries, s.libraries.c.kind == "university")}
    assert {"hiroshima-u", "hiroshima-cu"} <= set(libs)
    assert libs["hiroshima-cu"].name == "広島市立大学附属図書館"
    brs = {r.code: r for r in await rows(circ, s.branches, s.branches.c.library.in_(
        ["hiroshima-u", "hiroshima-cu"]))}
    assert set(brs) == {"hu-central", "hu-west", "hu-east", "hu-kasumi", "hcu-library", "hcu-other"}
    assert not any(b.pickup for b in brs.values())


def test_the_pure_rule_needs_no_database_and_names_the_partner_in_its_refusal():
    profile = load_profile("hiroshima")
    who = Patron("H001", "広島市")
    copy = Item("U1", "bib-1", "hiroshima-u", owning_branch="hu-central", partner="hiroshima-u",
                material_type="thesis")
    form = Request("new", "H001", "bib-1", kind="partner", pickup_branch="naka", channel="form",
                   submitted_at_branch="naka", contact_method="phone")
    d = policies.can_request_partner_item(profile, who, copy, form, NOW)
    assert (d.allowed, d.code, d.details["partner"]) == (False, "partner_material_excluded", "hiroshima-u")
    ok = policies.can_request_partner_item(profile, Patron("H001", "広島市", phone="082"),
                                           Item("U1", "bib-1", "hiroshima-u", owning_branch="hu-east",
                                                partner="hiroshima-u"), form, NOW)
    assert ok.allowed and ok.code == "ok"


# --------------------------------------------------------------------------- 広島市立大学附属図書館

async def test_hiroshima_cu_books_on_the_four_listed_library_floors_can_be_requested(circ):
    # 保管場所:「図書館・事務局」のうち、下の配架場所の図書資料 (図書館3F, 2F, 2F文庫, 2F新書)
    await patron(circ)
    for i, loc in enumerate(("図書館3F", "図書館2F", "図書館2F文庫", "図書館2F新書")):
        await hcu_copy(circ, f"C{i}", f"bib-c{i}", loc)
        rid = await asked(circ, f"C{i}")
        r = await req(circ, rid)
        assert (r.state, r.kind, r.library, r.pickup_branch, r.submitted_at_branch) == (
            "SENT", "partner", "hiroshima", "naka", "naka")
        assert r.item_id == (await item(circ, f"C{i}")).id
        assert await trail(circ, rid) == [("PLACE", None, "NEW", "staff"),
                                          ("VALIDATE", "NEW", "VALIDATED", "system"),
                                          ("SEND_TO_PARTNER", "VALIDATED", "SENT", "system")]
        assert await notice_kinds(circ, rid) == ["hold_received"]


async def test_hiroshima_cu_books_on_other_floors_or_in_other_storage_are_not_eligible(circ):
    await patron(circ)
    await hcu_copy(circ, "C1", "bib-1", "図書館1F")                          # not a listed 配架場所
    await hcu_copy(circ, "C2", "bib-2", "図書館3F", branch="hcu-other")     # not 「図書館・事務局」
    await hcu_copy(circ, "C3", "bib-3", "図書館3F", material_type="av")      # not 図書資料
    await hcu_copy(circ, "C4", "bib-4", "図書館2F", material_type="magazine")
    for barcode in ("C1", "C2", "C3", "C4"):
        d = await refused(circ, barcode, "partner_collection_not_eligible")
        assert d.details["partner"] == "hiroshima-cu"
    assert d.message_ja.startswith("この資料は連携貸出の対象資料ではありません")


async def test_hiroshima_cu_has_no_exclusion_list_so_its_oversized_books_textbooks_and_theses_are_eligible(circ):
    # reading: the exclusions (視聴覚資料…学位論文) are in 広島大学's column only
    await patron(circ)
    for i, kind in enumerate(("oversized", "textbook", "thesis")):
        await hcu_copy(circ, f"C{i}", f"bib-{i}", material_type=kind)
        assert (await req(circ, await asked(circ, f"C{i}"))).material_type == kind
    await hcu_copy(circ, "CR", "bib-r", material_type="reference")   # never lendable in the city
    await refused(circ, "CR", "partner_item_not_lendable")


async def test_hiroshima_cu_copy_on_loan_can_be_requested_and_is_shipped_only_once_it_is_back(circ):
    await patron(circ)
    await hcu_copy(circ, "C1", "bib-1", status="on_loan")
    rid = await asked(circ, "C1")                     # no 貸出中 exclusion for this partner
    r = await partners.partner_shipped(circ, request_id=rid, **PARTNER)
    assert r.decision.code == "copy_not_at_partner" and (await req(circ, rid)).state == "SENT"
    assert await open_transits(circ, "C1") == []
    await partners.partner_will_supply(circ, request_id=rid, **PARTNER)
    from sqlalchemy import update
    async with circ.db.transaction() as conn:        # the university's borrower brought it back
        await conn.execute(update(s.items).where(s.items.c.barcode == "C1").values(status="available"))
    assert (await partners.partner_shipped(circ, request_id=rid, **PARTNER)).decision.allowed
    assert [e[0] for e in await trail(circ, rid)][-3:] == ["PARTNER_WILL_SUPPLY", "PARTNER_SHIPPED",
                                                           "TRANSIT_SENT"]
    assert await open_transits(circ, "C1") == [("partner", "hcu-library", "naka")]


# --------------------------------------------------------------------------- 広島大学図書館

async def test_hiroshima_u_lendable_books_of_its_central_west_and_east_libraries_can_be_requested(circ):
    # 中央図書館・西図書館・東図書館所蔵の貸出可能図書資料
    await patron(circ)
    for i, branch in enumerate(("hu-central", "hu-west", "hu-east")):
        await hu_copy(circ, f"U{i}", f"bib-{i}", branch)
        assert (await req(circ, await asked(circ, f"U{i}"))).state == "SENT"


async def test_hiroshima_u_books_of_its_other_libraries_and_non_books_are_not_eligible(circ):
    await patron(circ)
    await hu_copy(circ, "U1", "bib-1", "hu-kasumi")
    await hu_copy(circ, "U2", "bib-2", material_type="magazine")
    for barcode in ("U1", "U2"):
        await refused(circ, barcode, "partner_collection_not_eligible")


@pytest.mark.parametrize("material", ["av", "oversized", "textbook", "reference", "rare", "thesis"])
async def test_hiroshima_u_excludes_av_oversized_textbooks_reference_rare_books_and_theses(circ, material):
    # また下の資料も対象外: 視聴覚資料 大型図書 教科書 参考図書 貴重書 学位論文
    await patron(circ)
    await hu_copy(circ, "U1", "bib-1", material_type=material)
    d = await refused(circ, "U1", "partner_material_excluded")
    assert d.details == {"partner": "hiroshima-u", "material": material}


async def test_hiroshima_u_books_that_cannot_be_borrowed_there_are_refused(circ):
    await patron(circ)
    await hu_copy(circ, "U1", "bib-1", circulating=False)
    await refused(circ, "U1", "partner_item_not_lendable")


async def test_hiroshima_u_items_on_loan_or_already_requested_at_request_time_are_refused(circ):
    # ただし、申込時に貸出中や予約のある資料については対象外
    await patron(circ, "H001")
    await patron(circ, "H002")
    await hu_copy(circ, "U1", "bib-1", status="on_loan")
    d = await refused(circ, "U1", "partner_item_unavailable")
    assert d.details["on_loan"] is True
    await hu_copy(circ, "U2", "bib-2")
    await asked(circ, "U2", "H002")
    d = await refused(circ, "U2", "partner_item_unavailable")
    assert (d.details["on_loan"], d.details["held"]) == (False, True)
    assert d.message_ja == "申込時に貸出中や予約のある資料は連携貸出の対象外です。"


# --------------------------------------------------------------------------- who, where, how many

async def test_partner_requests_are_for_hiroshima_card_holders_on_the_form_at_a_city_counter(circ):
    # 各市立図書館の窓口にて、所定の用紙にご記入の上 / 予約・リクエストの申込は…貸出利用券をお持ちの方に限ります
    await patron(circ, "H001")
    await patron(circ, "H002", home="呉市")                   # wide-area card: a card holder too
    await patron(circ, "H003", home="東京都千代田区")
    await add_patron(circ, "I001", "iizuka", email="i@example.jp", default_contact_method="email")
    await hu_copy(circ, "U1", "bib-1")
    await refused(circ, "U1", "not_eligible_for_reservation", card="H003")
    await refused(circ, "U1", "partner_unknown", card="I001")    # Iizuka has no such partner
    await refused(circ, "U1", "channel_not_allowed", channel="web")
    await refused(circ, "U1", "channel_not_allowed", channel="fax")
    await refused(circ, "U1", "channel_not_allowed", role="patron", actor="H001", channel="form")
    await refused(circ, "U1", "pickup_not_service_point", branch="tomohato")   # the mobile library
    await refused(circ, "U1", "pickup_not_service_point", branch="hu-central")
    with pytest.raises(NotFound):
        await ask(circ, "U1", card="H999")
    with pytest.raises(NotFound):
        await ask(circ, "NOPE")
    await add_item(circ, "HB1", "bib-h", "hiroshima", "naka")
    await refused(circ, "HB1", "not_a_partner_item")
    rid = await asked(circ, "U1", "H002", channel="counter", branch="central")
    assert (await req(circ, rid)).pickup_branch == "central"


async def test_a_second_partner_request_for_the_same_title_is_refused_as_a_duplicate(circ):
    await patron(circ)
    await hu_copy(circ, "U1", "bib-1")
    await hcu_copy(circ, "C1", "bib-1")                        # the same book at the other university
    await asked(circ, "U1")
    await refused(circ, "C1", "duplicate_request")


async def test_partner_requests_count_in_the_twenty_reservations_and_requests_together(circ):
    # 予約・リクエストの受付冊数は総数20冊までです
    pid = await patron(circ)
    async with circ.db.transaction() as conn:
        for i in range(19):
            await conn.execute(insert(s.requests).values(
                patron_id=pid, library="hiroshima", title_id=f"bib-q{i}", pickup_branch="naka",
                channel="web", state="QUEUED", placed_at=NOW, updated_at=NOW))
    await hu_copy(circ, "U1", "bib-1")
    await hu_copy(circ, "U2", "bib-2")
    await asked(circ, "U1")                                     # the 20th
    d = await refused(circ, "U2", "limit_total")
    assert d.details["limit"] == 20
    await add_item(circ, "HB1", "bib-h", "hiroshima", "naka")  # and a 21st reservation is refused too
    r = await holds.place(circ, card="H001", title_id="bib-h", pickup_branch="naka", channel="web",
                          role="patron", actor="H001")
    assert r.decision.code == "limit_total"


# --------------------------------------------------------------------------- the whole flow

async def test_hiroshima_u_copy_goes_from_the_form_to_the_counter_the_patron_and_back_with_its_audit_trail(circ):
    await patron(circ)
    await hu_copy(circ, "U1", "bib-1", location="中央図書館 開架")
    rid = await asked(circ, "U1")
    assert (await item(circ, "U1")).status == "available"    # still on the university's shelf

    assert (await partners.partner_will_supply(circ, request_id=rid, **PARTNER)).decision.allowed
    assert (await partners.partner_shipped(circ, request_id=rid, **PARTNER)).decision.allowed
    it = await item(circ, "U1")
    assert (it.status, it.current_branch) == ("in_transit", "hu-central")
    assert await open_transits(circ, "U1") == [("partner", "hu-central", "naka")]

    # received at the counter it was asked at: on its hold shelf, deadline, hold-ready mail
    r = await partners.receive(circ, barcode="U1", branch="naka", **STAFF)
    assert (r.request_id, r.routing.kind, r.routing.to_branch) == (rid, rt.HOLD_SHELF, "naka")
    row = await req(circ, rid)
    assert row.state == "ON_HOLD_SHELF" and row.ready_at == NOW and row.shelf_deadline > NOW.date()
    assert [x["request_id"] for x in await lists.shelf_list(circ, "naka")] == [rid]
    assert (await item(circ, "U1")).status == "on_hold_shelf" and await open_transits(circ, "U1") == []
    assert await notice_kinds(circ, rid) == ["hold_received", "hold_ready"]

    # lent at that counter only (申込いただいた窓口にて貸出)
    wrong = await loans.check_out(circ, barcode="U1", card="H001", branch="central", **STAFF)
    assert wrong.decision.code == "partner_lend_at_counter"
    lent = await loans.check_out(circ, barcode="U1", card="H001", branch="naka", **STAFF)
    assert lent.decision.allowed and lent.request_id == rid and (await req(circ, rid)).state == "ON_LOAN"

    # returned at that counter only (申込いただいた市立図書館以外では返却できません)
    back = await loans.check_in(circ, barcode="U1", branch="central", **STAFF)
    assert back.decision.code == "partner_return_to_lending_counter"
    back = await loans.check_in(circ, barcode="U1", branch="naka", **STAFF)
    assert back.decision.allowed and back.routing.kind == partners.TO_PARTNER
    assert back.routing.to_branch == "hu-central"
    assert (await req(circ, rid)).state == "AWAITING_LOAN_COMPLETED"
    assert (await one_row(circ, s.loans, s.loans.c.id == lent.loan_id)).state == "RETURNED"
    assert (await item(circ, "U1")).status == "in_transit"
    assert await open_transits(circ, "U1") == [("partner_return", "naka", "hu-central")]

    done = await partners.partner_received(circ, barcode="U1", **PARTNER)
    assert done.decision.allowed and done.request_id == rid
    it = await item(circ, "U1")
    assert (it.status, it.current_branch) == ("available", "hu-central")
    assert await open_transits(circ, "U1") == []
    assert await trail(circ, rid) == [
        ("PLACE", None, "NEW", "staff"),
        ("VALIDATE", "NEW", "VALIDATED", "system"),
        ("SEND_TO_PARTNER", "VALIDATED", "SENT", "system"),
        ("PARTNER_WILL_SUPPLY", "SENT", "WILL_SUPPLY", "partner"),
        ("PARTNER_SHIPPED", "WILL_SUPPLY", "SHIPPED", "partner"),
        ("TRANSIT_SENT", None, None, "partner"),
        ("TRANSIT_ARRIVED", None, None, "staff"),
        ("RECEIVE_AT_PICKUP", "SHIPPED", "ON_HOLD_SHELF", "staff"),
        ("CHECK_OUT", "ON_HOLD_SHELF", "ON_LOAN", "staff"),
        ("CHECK_IN", "ON_LOAN", "RETURNED", "staff"),
        ("TRANSIT_SENT", None, None, "staff"),
        ("SHIP_RETURN", "RETURNED", "AWAITING_LOAN_COMPLETED", "staff"),
        ("TRANSIT_ARRIVED", None, None, "partner"),
        ("LOAN_COMPLETED", "AWAITING_LOAN_COMPLETED", "COMPLETED", "partner"),
    ]
    assert (await partners.partner_received(circ, barcode="U1", **PARTNER)).decision.code == "nothing_to_complete"


async def test_a_copy_received_at_another_city_library_is_sent_on_to_the_requesting_counter(circ):
    await patron(circ)
    await hcu_copy(circ, "C1", "bib-1")
    rid = await shipped_to(circ, "C1", "naka")
    r = await partners.receive(circ, barcode="C1", branch="central", **STAFF)
    assert (r.routing.kind, r.routing.to_branch) == (rt.TRANSIT_HOLD, "naka")
    assert (await req(circ, rid)).state == "IN_TRANSIT"
    assert await open_transits(circ, "C1") == [("hold", "central", "naka")]
    # at naka the copy is scanned at check-in: it arrives on naka's hold shelf
    scan = await loans.check_in(circ, barcode="C1", branch="naka", **STAFF)
    assert scan.routing.kind == rt.HOLD_SHELF and (await req(circ, rid)).state == "ON_HOLD_SHELF"
    assert [e[0] for e in await trail(circ, rid) if e[1] is not None][-2:] == [
        "RECEIVE_ELSEWHERE", "ARRIVE_AT_PICKUP"]


async def test_scanning_a_shipped_copy_at_check_in_receives_it(circ):
    await patron(circ)
    await hu_copy(circ, "U1", "bib-1")
    rid = await shipped_to(circ, "U1", "naka")
    scan = await loans.check_in(circ, barcode="U1", branch="naka", **STAFF)
    assert scan.loan_id is None and scan.routing.kind == rt.HOLD_SHELF
    assert (await req(circ, rid)).state == "ON_HOLD_SHELF"
    assert (await partners.receive(circ, barcode="U1", branch="naka", **STAFF)).decision.code == \
        "nothing_to_receive"


async def test_partner_loans_count_in_the_normal_ten_items(circ):
    # 通常の貸出冊数10冊内で
    await patron(circ)
    for i in range(10):
        await add_item(circ, f"HB{i}", f"bib-h{i}", "hiroshima", "naka")
    for i in range(9):
        await loans.check_out(circ, barcode=f"HB{i}", card="H001", branch="naka", **STAFF)
    await hu_copy(circ, "U1", "bib-1")
    await hu_copy(circ, "U2", "bib-2")
    rid = await on_shelf(circ, "U1")
    rid2 = await on_shelf(circ, "U2")
    assert (await loans.check_out(circ, barcode="U1", card="H001", branch="naka", **STAFF)).decision.allowed
    full = await loans.check_out(circ, barcode="HB9", card="H001", branch="naka", **STAFF)
    assert full.decision.code == "loan_limit" and full.decision.details["limit"] == 10
    second = await loans.check_out(circ, barcode="U2", card="H001", branch="naka", **STAFF)
    assert second.decision.code == "loan_limit" and (await req(circ, rid2)).state == "ON_HOLD_SHELF"
    assert (await req(circ, rid)).state == "ON_LOAN"
    assert len(await rows(circ, s.loans, s.loans.c.returned_at.is_(None))) == 10


async def test_a_partner_copy_is_returned_only_at_the_counter_it_was_lent_from(circ):
    await patron(circ)
    await hu_copy(circ, "U1", "bib-1")
    rid = await on_shelf(circ, "U1")
    lent = await loans.check_out(circ, barcode="U1", card="H001", branch="naka", **STAFF)
    for branch, kind in (("central", "counter"), ("naka", "book_drop"), ("naka", "drop_point"),
                         ("higashi", "counter")):
        r = await loans.check_in(circ, barcode="U1", branch=branch, return_kind=kind, **STAFF)
        assert r.decision.code == "partner_return_to_lending_counter" and r.decision.details["branch"] == "naka"
    assert (await req(circ, rid)).state == "ON_LOAN"
    assert [e.event for e in await rows(circ, s.events, s.events.c.loan_id == lent.loan_id,
                                        order_by=s.events.c.id)] == ["CHECK_OUT"] + ["RETURN_REFUSED"] * 4
    assert (await item(circ, "U1")).status == "on_loan"


async def test_a_return_machine_return_waits_for_staff_to_record_the_shipment_back(circ):
    await patron(circ)
    await hu_copy(circ, "U1", "bib-1")
    rid = await on_shelf(circ, "U1")
    await loans.check_out(circ, barcode="U1", card="H001", branch="naka", **STAFF)
    r = await loans.check_in(circ, barcode="U1", branch="naka", role="patron", actor="machine-1",
                             return_kind="return_machine")
    assert r.decision.allowed and (await req(circ, rid)).state == "RETURNED"
    assert await open_transits(circ, "U1") == [("partner_return", "naka", "hu-central")]
    early = await partners.partner_received(circ, barcode="U1", **PARTNER)
    assert early.decision.code == "return_not_shipped" and (await item(circ, "U1")).status == "in_transit"
    assert (await partners.ship_return(circ, request_id=rid, branch="naka", **STAFF)).decision.allowed
    assert await open_transits(circ, "U1") == [("partner_return", "naka", "hu-central")]   # not twice
    assert (await partners.partner_received(circ, barcode="U1", **PARTNER)).decision.allowed
    assert (await req(circ, rid)).state == "COMPLETED"
    assert (await partners.ship_return(circ, request_id=rid, **STAFF)).decision.code == "wrong_state"


# --------------------------------------------------------------------------- expiry, cancellation, unfilled

async def test_an_uncollected_partner_copy_expires_and_goes_back_to_the_university_not_to_our_queue(circ):
    await patron(circ, "H001")
    await patron(circ, "H002")
    await add_item(circ, "HB1", "bib-1", "hiroshima", "naka", status="on_loan")
    waiting = await holds.place(circ, card="H002", title_id="bib-1", pickup_branch="naka", channel="web",
                                role="patron", actor="H002")        # a city reservation for the same title
    assert waiting.decision.allowed
    await hu_copy(circ, "U1", "bib-1")
    rid = await on_shelf(circ, "U1")
    deadline = (await req(circ, rid)).shelf_deadline
    circ.clock.fixed = NOW.replace(year=deadline.year, month=deadline.month, day=deadline.day) + timedelta(days=1)
    assert await run_job(circ, "shelf_expiry") == 1
    row = await req(circ, rid)
    assert (row.state, row.cancel_reason, row.cancel_channel) == ("SHELF_EXPIRED", "取置期限切れ", "system")
    assert (await req(circ, waiting.request_id)).state == "QUEUED"        # not trapped for H002
    assert await open_transits(circ, "U1") == [("partner_return", "naka", "hu-central")]
    back = await partners.partner_received(circ, barcode="U1", **PARTNER)
    assert back.decision.allowed and back.request_id is None
    assert (await item(circ, "U1")).status == "available"
    it = await item(circ, "U1")
    got = await rows(circ, s.events, s.events.c.item_id == it.id, s.events.c.event == "PARTNER_RECEIVED")
    assert len(got) == 1 and got[0].request_id == rid
    assert (await req(circ, rid)).state == "SHELF_EXPIRED"


async def test_cancelling_before_shipping_asks_the_university_and_cancels_on_its_answer(circ):
    await patron(circ)
    await hu_copy(circ, "U1", "bib-1")
    rid = await asked(circ, "U1")
    d = await partners.cancel(circ, request_id=rid, channel="counter", branch="naka", **STAFF)
    assert d.decision.allowed and d.decision.code == "ill_cancel_requested"
    assert (await req(circ, rid)).state == "CANCEL_PENDING"
    again = await partners.cancel(circ, request_id=rid, channel="counter", branch="naka", **STAFF)
    assert again.decision.code == "ill_cancel_requested"
    r = await partners.partner_cancel_answer(circ, request_id=rid, accepted=True, **PARTNER)
    assert r.decision.allowed
    row = await req(circ, rid)
    assert (row.state, row.cancel_channel, row.cancel_reason) == ("CANCELLED", "counter", "窓口キャンセル")
    assert await notice_kinds(circ, rid) == ["hold_received", "hold_cancelled"]
    assert [e[:3] for e in await trail(circ, rid)][-2:] == [
        ("REQUEST_CANCEL", "SENT", "CANCEL_PENDING"), ("CANCEL_ACCEPTED", "CANCEL_PENDING", "CANCELLED")]
    late = await partners.partner_shipped(circ, request_id=rid, **PARTNER)
    assert late.decision.code == "wrong_state" and (await item(circ, "U1")).status == "available"
    assert [x["request_id"] for x in (await lists.cancelled_requests(circ, "H001"))] == [rid]


async def test_a_request_cancelled_after_shipping_is_cancelled_on_arrival_and_the_copy_sent_back(circ):
    await patron(circ)
    await hu_copy(circ, "U1", "bib-1")
    rid = await shipped_to(circ, "U1")
    d = await partners.cancel(circ, request_id=rid, channel="counter", branch="naka", **STAFF)
    assert d.decision.allowed and d.decision.code == "cancel_on_arrival"
    assert (await req(circ, rid)).state == "SHIPPED"
    r = await partners.receive(circ, barcode="U1", branch="naka", **STAFF)
    assert r.routing.kind == partners.TO_PARTNER
    row = await req(circ, rid)
    assert (row.state, row.cancel_reason) == ("CANCELLED", partners.REASON_CANCEL_ON_ARRIVAL)
    assert await notice_kinds(circ, rid) == ["hold_received", "hold_cancelled"]    # no hold_ready
    assert [e[0] for e in await trail(circ, rid) if e[1] is not None][-3:] == [
        "CANCEL_REQUESTED", "RECEIVE_AT_PICKUP", "CANCEL_SECURED"]
    assert await open_transits(circ, "U1") == [("partner_return", "naka", "hu-central")]


async def test_the_generic_cancel_of_a_shipped_partner_request_never_breaks(circ):
    # holds.cancel is what the patron and staff APIs call: the web is told to ask the
    # library, staff get the partner's cancel-on-arrival, and a second staff cancel of a
    # request that is already waiting for the university's answer is a no-op
    await patron(circ)
    await hu_copy(circ, "U1", "bib-1")
    rid = await shipped_to(circ, "U1")
    web = await holds.cancel(circ, request_id=rid, role="patron", actor="H001", channel="web", card="H001")
    assert web.code == "secured_staff_only" and (await req(circ, rid)).state == "SHIPPED"
    staff = await holds.cancel(circ, request_id=rid, channel="counter", branch="naka", **STAFF)
    assert staff.allowed and staff.code == "cancel_on_arrival"
    assert (await req(circ, rid)).state == "SHIPPED"
    await hu_copy(circ, "U2", "bib-2")
    rid2 = await asked(circ, "U2")
    first = await holds.cancel(circ, request_id=rid2, channel="counter", branch="naka", **STAFF)
    assert first.code == "ill_cancel_requested" and (await req(circ, rid2)).state == "CANCEL_PENDING"
    again = await holds.cancel(circ, request_id=rid2, channel="counter", branch="naka", **STAFF)
    assert again.code == "ill_cancel_requested" and (await req(circ, rid2)).state == "CANCEL_PENDING"


async def test_a_shipment_crossing_our_cancellation_is_cancelled_on_arrival_too(circ):
    await patron(circ)
    await hu_copy(circ, "U1", "bib-1")
    rid = await asked(circ, "U1")
    await partners.cancel(circ, request_id=rid, channel="counter", branch="naka", **STAFF)
    assert (await partners.partner_shipped(circ, request_id=rid, **PARTNER)).decision.allowed
    assert (await req(circ, rid)).state == "SHIPPED"             # CANCEL_PENDING → SHIPPED (too late)
    scan = await loans.check_in(circ, barcode="U1", branch="naka", **STAFF)
    assert scan.routing.kind == partners.TO_PARTNER and (await req(circ, rid)).state == "CANCELLED"
    assert "hold_ready" not in await notice_kinds(circ, rid)
    assert await open_transits(circ, "U1") == [("partner_return", "naka", "hu-central")]


async def test_a_partner_copy_cancelled_on_the_hold_shelf_goes_back_to_the_university(circ):
    await patron(circ)
    await hu_copy(circ, "U1", "bib-1")
    rid = await on_shelf(circ, "U1")
    web = await partners.cancel(circ, request_id=rid, role="patron", actor="H001", channel="web", card="H001")
    assert web.decision.code == "secured_staff_only" and (await req(circ, rid)).state == "ON_HOLD_SHELF"
    d = await partners.cancel(circ, request_id=rid, channel="counter", branch="naka", **STAFF)
    assert d.decision.allowed and (await req(circ, rid)).state == "CANCELLED"
    assert await open_transits(circ, "U1") == [("partner_return", "naka", "hu-central")]
    walk_in = await loans.check_out(circ, barcode="U1", card="H001", branch="naka", **STAFF)
    assert walk_in.decision.code == "item_in_transit"


async def test_when_the_university_cannot_supply_the_request_is_unfilled_and_the_patron_told(circ):
    await patron(circ)
    await hu_copy(circ, "U1", "bib-1")
    rid = await asked(circ, "U1")
    r = await partners.partner_cannot_supply(circ, request_id=rid, actor="iso18626:hiroshima-u")
    assert r.decision.allowed
    row = await req(circ, rid)
    assert (row.state, row.cancel_reason) == ("UNFILLED", partners.REASON_UNFILLED)
    assert (await trail(circ, rid))[-1] == ("END_OF_ROTA", "SENT", "UNFILLED", "system")
    assert await notice_kinds(circ, rid) == ["hold_received", "hold_cancelled"]
    assert (await partners.partner_cannot_supply(circ, request_id=rid, actor="x")).decision.code == "wrong_state"
    await hu_copy(circ, "U2", "bib-2")                            # the title is free to ask again
    assert (await req(circ, await asked(circ, "U2"))).state == "SENT"
    # listed with the cancelled requests (入手不可) for 30 days, then purged like them
    (listed,) = await lists.cancelled_requests(circ, "H001")
    assert (listed["request_id"], listed["status_ja"], listed["reason"]) == (rid, "入手不可", partners.REASON_UNFILLED)
    circ.clock.fixed = NOW + timedelta(days=31)
    assert await jobs.purge_cancelled(circ) == 1
    assert await rows(circ, s.requests, s.requests.c.id == rid) == []


async def test_partner_steps_on_requests_that_are_not_partner_requests_are_refused(circ):
    await patron(circ)
    await add_item(circ, "HB1", "bib-1", "hiroshima", "naka", status="on_loan")
    r = await holds.place(circ, card="H001", title_id="bib-1", pickup_branch="naka", channel="web",
                          role="patron", actor="H001")
    s1 = await partners.partner_shipped(circ, request_id=r.request_id, **PARTNER)
    assert s1.decision.code == "not_a_partner_request" and (await req(circ, r.request_id)).state == "QUEUED"
    with pytest.raises(NotFound):
        await partners.partner_shipped(circ, request_id=99999, **PARTNER)
    assert (await partners.receive(circ, barcode="HB1", branch="naka", **STAFF)).decision.code == \
        "not_a_partner_item"
    assert (await partners.receive(circ, barcode="HB1", branch="naka", role="patron",
                                   actor="H001")).decision.code == "staff_only"


# --------------------------------------------------------------------------- the counter's list

async def test_the_counter_lists_its_partner_requests_by_state_with_the_next_step(circ):
    await patron(circ, "H001")
    await patron(circ, "H002")
    await hu_copy(circ, "U1", "bib-1", location="中央図書館 開架")
    await hcu_copy(circ, "C1", "bib-2")
    await hu_copy(circ, "U3", "bib-3")
    sent = await asked(circ, "U1", "H001")
    ready = await on_shelf(circ, "C1", card="H002")
    elsewhere = await asked(circ, "U3", "H002", branch="central")
    naka = await partners.partner_requests(circ, branch="naka")
    assert list(naka) == ["SENT", "ON_HOLD_SHELF"]
    (a,), (b,) = naka["SENT"], naka["ON_HOLD_SHELF"]
    assert (a["request_id"], a["partner_name"], a["owning_name"], a["location"], a["card"]) == (
        sent, "広島大学図書館", "中央図書館", "中央図書館 開架", "H001")
    assert (b["request_id"], b["partner"], b["next_step"], b["status_ja"]) == (
        ready, "hiroshima-cu", "取置中（窓口で貸出）", "貸出準備完了")
    assert b["shelf_deadline"] is not None
    every = await partners.partner_requests(circ)
    assert sorted(x["request_id"] for v in every.values() for x in v) == sorted([sent, ready, elsewhere])
    assert await partners.partner_requests(circ, states=("COMPLETED",)) == {}
