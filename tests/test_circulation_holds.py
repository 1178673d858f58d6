"""Holds on the database (circulation/holds.py): the holds rules of
/work/shared/design/POLICIES.md for Iizuka, Komae and Hiroshima, each on SQLite and on
PostgreSQL (the ``db_url`` fixture)."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import insert

from circ_helpers import NOW, add_calendar, add_item, add_patron, rows
from circulation import holds, jobs, lists, queries
from circulation import notices as notices_module
from circulation import routing as rt
from circulation import schema as s
from circulation.store import NotFound
from lifecycle import reasons

STAFF = dict(role="staff", actor="staff1")
# Hiroshima offers no 連絡不要: its patrons are contacted by phone
HIROSHIMA_CONTACT = dict(phone="082-000-0000", default_contact_method="phone")


# --------------------------------------------------------------------------- helpers

async def web_place(circ, card, title_id, pickup, **kw):
    return await holds.place(circ, card=card, title_id=title_id, pickup_branch=pickup, channel="web",
                             role="patron", actor=card, **kw)


async def counter_place(circ, card, title_id, pickup, at_branch=None, **kw):
    return await holds.place(circ, card=card, title_id=title_id, pickup_branch=pickup,
                             channel="counter", submitted_at_branch=at_branch or pickup, **STAFF, **kw)


async def item_row(circ, barcode):
    return (await rows(circ, s.items, s.items.c.barcode == barcode))[0]


async def check_in(circ, barcode, branch, *, walk_in=False):
    """A copy handed in at ``branch`` (what loans.check_in does after closing the loan)."""
    it = await item_row(circ, barcode)
    return await circ.db.run(lambda conn: rt.route_copy(circ, conn, it, branch, walk_in=walk_in,
                                                           **STAFF))


async def arrive(circ, barcode, branch):
    it = await item_row(circ, barcode)
    return await circ.db.run(lambda conn: rt.arrive(circ, conn, it, branch, **STAFF))


async def req(circ, rid):
    return (await rows(circ, s.requests, s.requests.c.id == rid))[0]


async def states(circ, *rids):
    return [(await req(circ, r)).state for r in rids]


async def events_of(circ, rid):
    return [e.event for e in await rows(circ, s.events, s.events.c.request_id == rid,
                                        order_by=s.events.c.id)]


async def notices_of(circ, rid, kind=None):
    where = [s.notices.c.request_id == rid] + ([s.notices.c.kind == kind] if kind else [])
    return await rows(circ, s.notices, *where, order_by=s.notices.c.id)


def at(circ, when: datetime):
    circ.clock.fixed = when


async def patrons(circ, library, n, prefix="P", **kw):
    cards = [f"{prefix}{library[:2]}{i:04d}" for i in range(n)]
    for c in cards:
        await add_patron(circ, c, library, **kw)
    return cards


# --------------------------------------------------------------------------- placing

async def test_iizuka_resident_places_a_web_hold_queued_audited_with_a_received_notice(circ):
    await add_patron(circ, "1000000001", "iizuka", email="a@example.jp",
                     default_contact_method="email")
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka")
    r = await web_place(circ, "1000000001", "T-ONE", "honami", title="吾輩は猫である")
    assert r.decision.allowed and r.position == 1
    row = await req(circ, r.request_id)
    assert (row.state, row.kind, row.library, row.pickup_branch, row.contact_method) == \
        ("QUEUED", "reservation", "iizuka", "honami", "email")
    assert await events_of(circ, r.request_id) == ["PLACE", "VALIDATE", "ENQUEUE"]
    [n] = await notices_of(circ, r.request_id)
    assert (n.kind, n.dedupe_key, n.status) == ("hold_received", f"hold_received:{r.request_id}", "pending")
    assert "吾輩は猫である" in n.data


async def test_a_placement_writes_each_steps_audit_row_and_its_notice_in_order(circ):
    # on PostgreSQL one statement writes all of it (store.new_request), on SQLite one
    # call after the other: the rows are the same
    await add_patron(circ, "1000000001", "iizuka", email="a@example.jp", default_contact_method="email")
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka", status="on_loan")
    r = await counter_place(circ, "1000000001", "T-ONE", "honami", at_branch="iizuka", title="こころ")
    assert r.decision.allowed and r.position == 1
    got = [(e.event, e.actor_role, e.actor, e.from_state, e.to_state, e.channel, e.branch, e.reason, e.item_id,
            e.at) for e in await rows(circ, s.events, s.events.c.request_id == r.request_id, order_by=s.events.c.id)]
    assert got == [
        ("PLACE", "staff", STAFF["actor"], None, "NEW", "counter", "iizuka", "reservation", None, NOW),
        ("VALIDATE", "system", STAFF["actor"], "NEW", "VALIDATED", "counter", None, "", None, NOW),
        ("ENQUEUE", "system", STAFF["actor"], "VALIDATED", "QUEUED", "counter", None, "", None, NOW)]
    row = await req(circ, r.request_id)
    assert (row.state, row.updated_at, row.placed_at, row.title) == ("QUEUED", NOW, NOW, "こころ")
    [n] = await notices_of(circ, r.request_id)
    assert (n.kind, n.dedupe_key, n.patron_id, n.loan_id, n.status, n.attempts, n.next_attempt_at, n.created_at) == \
        ("hold_received", f"hold_received:{r.request_id}", row.patron_id, None, "pending", 0, NOW, NOW)
    data = json.loads(n.data)
    assert (data["title"], data["title_id"], data["pickup_branch"], data["contact_method"], data["kind"]) == \
        ("こころ", "T-ONE", "honami", "email", "reservation")
    assert data["pickup_name"] and data["placed_at"]


async def test_iizuka_visitor_from_another_city_is_refused_and_nothing_is_stored(circ):
    await add_patron(circ, "1000000002", "iizuka", home="福岡市")
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka")
    r = await web_place(circ, "1000000002", "T-ONE", "iizuka")
    assert r.request_id is None and r.decision.code == "not_eligible_for_reservation"
    assert r.decision.message_ja and r.decision.message_en
    assert await rows(circ, s.requests) == [] and await rows(circ, s.events) == []
    assert await rows(circ, s.notices) == []


async def test_iizuka_worker_in_the_city_may_reserve(circ):
    await add_patron(circ, "1000000003", "iizuka", home="福岡市", work="飯塚市")
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka")
    assert (await web_place(circ, "1000000003", "T-ONE", "iizuka")).decision.allowed


async def test_unknown_card_raises_not_found(circ):
    with pytest.raises(NotFound):
        await web_place(circ, "nobody", "T-ONE", "iizuka")


async def test_komae_neighbouring_city_resident_may_reserve_but_not_request(circ):
    await add_patron(circ, "K-SETA", "komae", home="世田谷区")
    await add_patron(circ, "K-CITY", "komae", home="狛江市")
    await add_item(circ, "KM1", "T-OWNED", "komae", "komae-central")
    ok = await web_place(circ, "K-SETA", "T-OWNED", "komae-central")
    assert ok.decision.allowed and (await req(circ, ok.request_id)).state == "QUEUED"
    refused = await counter_place(circ, "K-SETA", "T-NOT-OWNED", "komae-central")
    assert refused.request_id is None and refused.decision.code == "not_eligible_for_request"
    city = await counter_place(circ, "K-CITY", "T-NOT-OWNED", "komae-central")
    row = await req(circ, city.request_id)
    assert (row.kind, row.state) == ("request", "PURCHASE_REVIEW")
    assert await events_of(circ, city.request_id) == ["PLACE", "VALIDATE", "SEND_TO_PURCHASE_REVIEW"]


async def test_iizuka_allows_ten_books_and_five_magazines_on_hold(circ):
    await add_patron(circ, "1000000004", "iizuka")
    for i in range(11):
        await add_item(circ, f"B{i}", f"BOOK-{i}", "iizuka", "iizuka")
    for i in range(6):
        await add_item(circ, f"M{i}", f"MAG-{i}", "iizuka", "iizuka", material_type="magazine")
    results = [await web_place(circ, "1000000004", f"BOOK-{i}", "iizuka") for i in range(11)]
    assert [r.decision.allowed for r in results] == [True] * 10 + [False]
    assert results[-1].decision.code == "limit_material"
    assert results[-1].decision.details == {"material": "book", "limit": 10}
    mags = [await web_place(circ, "1000000004", f"MAG-{i}", "iizuka") for i in range(6)]
    assert [r.decision.allowed for r in mags] == [True] * 5 + [False]
    assert mags[-1].decision.details["material"] == "magazine"
    assert len(await rows(circ, s.requests)) == 15


@pytest.mark.parametrize("system,pickup", [("komae", "komae-central"), ("hiroshima", "central")])
async def test_reservations_and_requests_together_are_limited_to_twenty(circ, system, pickup):
    card = f"{system}-20"
    await add_patron(circ, card, system, **(HIROSHIMA_CONTACT if system == "hiroshima" else {}))
    for i in range(20):
        await add_item(circ, f"{system}-b{i}", f"{system}-T{i}", system, pickup)
    # one request (not owned), handed in at the counter of the pickup branch
    req_ = await counter_place(circ, card, f"{system}-UNOWNED", pickup)
    assert req_.decision.allowed
    placed = [await web_place(circ, card, f"{system}-T{i}", pickup) for i in range(20)]
    assert [p.decision.allowed for p in placed] == [True] * 19 + [False]
    assert placed[-1].decision.code == "limit_total"
    # cancelling one frees a place
    assert (await holds.cancel(circ, request_id=placed[0].request_id, role="patron", actor=card,
                               channel="web", card=card)).allowed
    assert (await web_place(circ, card, f"{system}-T19", pickup)).decision.allowed


async def test_iizuka_loan_more_than_two_weeks_overdue_blocks_new_holds(circ):
    pid = await add_patron(circ, "1000000005", "iizuka")
    lent = await add_item(circ, "LENT", "T-LENT", "iizuka", "iizuka", status="on_loan")
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka")
    async with circ.db.transaction() as conn:
        res = await conn.execute(insert(s.loans).values(
            item_id=lent, patron_id=pid, branch="iizuka", lent_at=NOW - timedelta(days=29),
            due=NOW.date() - timedelta(days=14)))
        loan_id = res.inserted_primary_key[0]
    first = await web_place(circ, "1000000005", "T-ONE", "iizuka")
    assert first.decision.allowed                                  # exactly 14 days overdue
    await holds.cancel(circ, request_id=first.request_id, role="patron", actor="x", channel="web")
    async with circ.db.transaction() as conn:
        await conn.execute(s.loans.update().where(s.loans.c.id == loan_id)
                           .values(due=NOW.date() - timedelta(days=15)))
    r = await web_place(circ, "1000000005", "T-ONE", "iizuka")
    assert r.request_id is None and r.decision.code == "blocked_overdue"


@pytest.mark.parametrize("item_kw,code", [
    ({"material_type": "av"}, "material_av"),
    ({"material_type": "magazine", "newest_issue": True}, "newest_issue"),
    ({"circulating": False}, "not_circulating"),
])
async def test_iizuka_refuses_holds_on_av_newest_issues_and_non_circulating_items(circ, item_kw, code):
    await add_patron(circ, "1000000006", "iizuka")
    await add_item(circ, "X1", "T-X", "iizuka", "iizuka", **item_kw)
    r = await web_place(circ, "1000000006", "T-X", "iizuka")
    assert (r.request_id, r.decision.code) == (None, code)


async def test_iizuka_cannot_reserve_a_title_only_another_system_owns(circ):
    await add_patron(circ, "1000000007", "iizuka")
    await add_item(circ, "KM1", "T-KOMAE", "komae", "komae-central")
    r = await web_place(circ, "1000000007", "T-KOMAE", "iizuka")
    assert (r.request_id, r.decision.code) == (None, "requests_not_offered")
    assert await rows(circ, s.requests) == []


async def test_a_circulating_copy_is_the_one_the_rules_look_at(circ):
    await add_patron(circ, "1000000008", "iizuka")
    await add_item(circ, "REF", "T-MIX", "iizuka", "iizuka", circulating=False)
    await add_item(circ, "LEND", "T-MIX", "iizuka", "chikuho")
    assert (await web_place(circ, "1000000008", "T-MIX", "iizuka")).decision.allowed


async def test_komae_requests_are_taken_only_on_paper_at_the_pickup_branch_counter(circ):
    await add_patron(circ, "K-1", "komae")
    web = await web_place(circ, "K-1", "T-NEW", "komae-central")
    assert web.decision.code == "channel_not_allowed"
    elsewhere = await counter_place(circ, "K-1", "T-NEW", "komae-central", at_branch="nishikawara")
    assert elsewhere.decision.code == "request_not_at_pickup_branch"
    ok = await counter_place(circ, "K-1", "T-NEW", "komae-central", at_branch="komae-central")
    assert ok.decision.allowed and (await req(circ, ok.request_id)).state == "PURCHASE_REVIEW"
    assert len(await rows(circ, s.requests)) == 1
    moved = await holds.change(circ, request_id=ok.request_id, pickup_branch="nishikawara", **STAFF)
    assert moved.code == "request_not_at_pickup_branch"
    assert await holds.update_patron_requests(circ, card="K-1", pickup_branch="nishikawara", **STAFF) == 0
    assert (await req(circ, ok.request_id)).pickup_branch == "komae-central"


async def test_komae_refuses_requests_for_av(circ):
    await add_patron(circ, "K-2", "komae")
    r = await counter_place(circ, "K-2", "T-DVD", "komae-central", material_type="av")
    assert r.decision.code == "request_material_refused"


async def test_komae_magazine_can_be_reserved_only_from_its_lending_release_date(circ):
    await add_patron(circ, "K-3", "komae")
    await add_item(circ, "MAG", "T-MAG", "komae", "komae-central", material_type="magazine",
                   lending_release=date(2026, 11, 25))
    early = await web_place(circ, "K-3", "T-MAG", "komae-central")
    assert early.decision.code == "magazine_not_released"
    at(circ, datetime(2026, 11, 25, 9, 0))
    assert (await web_place(circ, "K-3", "T-MAG", "komae-central")).decision.allowed


async def test_komae_nishikawara_av_is_reserved_only_at_its_counter_or_by_phone_and_only_on_loan(circ):
    await add_patron(circ, "K-4", "komae")
    await add_item(circ, "AV1", "T-AV", "komae", "nishikawara", material_type="av")
    assert (await web_place(circ, "K-4", "T-AV", "nishikawara")).decision.code == "branch_material_channel"
    on_shelf = await counter_place(circ, "K-4", "T-AV", "nishikawara")
    assert on_shelf.decision.code == "branch_material_on_loan_only"   # on the shelf: come and borrow
    async with circ.db.transaction() as conn:
        await conn.execute(s.items.update().values(status="on_loan"))
    phone = await holds.place(circ, card="K-4", title_id="T-AV", pickup_branch="nishikawara",
                              channel="phone", **STAFF)
    assert phone.decision.allowed


async def test_komae_av_reservation_limits_are_counted_per_branch_that_holds_the_copies(circ):
    # 視聴覚資料の「予約」方法及び「予約」可能数については、所蔵館・室で異なります
    await add_patron(circ, "K-5", "komae", email="k5@example.jp")
    for n in range(1, 7):
        await add_item(circ, f"CAV{n}", f"T-CAV{n}", "komae", "komae-central", material_type="av")
    for n in range(1, 4):
        await add_item(circ, f"NAV{n}", f"T-NAV{n}", "komae", "nishikawara", material_type="av",
                       status="on_loan")
    for n in range(1, 6):        # the central library takes web holds on its AV, five at a time
        assert (await web_place(circ, "K-5", f"T-CAV{n}", "komae-central")).decision.allowed
    sixth = await web_place(circ, "K-5", "T-CAV6", "komae-central")
    assert (sixth.decision.code, sixth.decision.details["branch"], sixth.decision.details["limit"]) == (
        "limit_branch_material", "komae-central", 5)
    # Nishikawara's own AV count is separate (and by phone or at its counter only): two
    for n in (1, 2):
        assert (await holds.place(circ, card="K-5", title_id=f"T-NAV{n}", pickup_branch="nishikawara",
                                  channel="phone", **STAFF)).decision.allowed
    third = await holds.place(circ, card="K-5", title_id="T-NAV3", pickup_branch="nishikawara",
                              channel="phone", **STAFF)
    assert (third.decision.code, third.decision.details["branch"]) == ("limit_branch_material", "nishikawara")
    placed = await rows(circ, s.requests, s.requests.c.state == "QUEUED", order_by=s.requests.c.id)
    assert [r.rule_branch for r in placed] == ["komae-central"] * 5 + ["nishikawara"] * 2
    # cancelling one central AV hold frees a central place, not a Nishikawara one
    await holds.cancel(circ, request_id=placed[0].id, role="patron", actor="K-5", channel="web", card="K-5")
    assert (await web_place(circ, "K-5", "T-CAV6", "komae-central")).decision.allowed
    again = await holds.place(circ, card="K-5", title_id="T-NAV3", pickup_branch="nishikawara",
                              channel="phone", **STAFF)
    assert again.decision.code == "limit_branch_material"


async def test_komae_books_are_not_counted_against_a_branchs_av_limit(circ):
    await add_patron(circ, "K-6", "komae", email="k6@example.jp")
    for n in range(1, 6):
        await add_item(circ, f"CAV{n}", f"T-CAV{n}", "komae", "komae-central", material_type="av")
        assert (await web_place(circ, "K-6", f"T-CAV{n}", "komae-central")).decision.allowed
    await add_item(circ, "BK1", "T-BK1", "komae", "komae-central")
    book = await web_place(circ, "K-6", "T-BK1", "komae-central")
    assert book.decision.allowed
    (row,) = await rows(circ, s.requests, s.requests.c.title_id == "T-BK1")
    assert row.rule_branch is None


async def test_hiroshima_requests_for_new_releases_only_after_publication(circ):
    await add_patron(circ, "H-1", "hiroshima", **HIROSHIMA_CONTACT)
    early = await counter_place(circ, "H-1", "T-SOON", "central", publication_date=date(2026, 12, 1))
    assert early.decision.code == "not_yet_published"
    out = await counter_place(circ, "H-1", "T-OUT", "central", publication_date=date(2026, 11, 1))
    assert out.decision.allowed


async def test_hiroshima_mobile_library_is_not_a_pickup_point(circ):
    await add_patron(circ, "H-2", "hiroshima", **HIROSHIMA_CONTACT)
    await add_item(circ, "HB", "T-H", "hiroshima", "central")
    assert (await web_place(circ, "H-2", "T-H", "tomohato")).decision.code == "pickup_not_service_point"


async def test_email_contact_needs_a_registered_address(circ):
    await add_patron(circ, "1000000009", "iizuka")
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka")
    r = await web_place(circ, "1000000009", "T-ONE", "iizuka", contact_method="email")
    assert r.decision.code == "email_missing"


async def test_a_patron_cannot_claim_the_counter_channel_on_their_own(circ):
    await add_patron(circ, "1000000010", "iizuka")
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka")
    r = await holds.place(circ, card="1000000010", title_id="T-ONE", pickup_branch="iizuka",
                          channel="counter", role="patron", actor="1000000010")
    assert r.decision.code == "channel_not_allowed"


# --------------------------------------------------------------------------- queue and trapping

async def test_queue_is_first_in_first_out_with_positions_shown_to_each_patron(circ):
    cards = await patrons(circ, "iizuka", 3)
    await add_item(circ, "IZ1", "T-POP", "iizuka", "iizuka", status="on_loan")
    placed = []
    for i, c in enumerate(cards):
        at(circ, NOW + timedelta(minutes=i))
        placed.append(await web_place(circ, c, "T-POP", "iizuka"))
    assert [p.position for p in placed] == [1, 2, 3]
    assert [(await lists.patron_requests(circ, c))[0]["position"] for c in cards] == [1, 2, 3]
    routing = await check_in(circ, "IZ1", "iizuka")
    assert (routing.kind, routing.request_id) == (rt.HOLD_SHELF, placed[0].request_id)
    assert await states(circ, *(p.request_id for p in placed)) == ["ON_HOLD_SHELF", "QUEUED", "QUEUED"]
    assert [(await lists.patron_requests(circ, c))[0]["position"] for c in cards[1:]] == [1, 2]
    first = (await lists.patron_requests(circ, cards[0]))[0]
    assert (first["status_ja"], first["position"]) == ("貸出準備完了", None)
    assert (await lists.patron_requests(circ, cards[1]))[0]["status_ja"] == "予約中"


async def test_placements_in_the_same_second_keep_their_order_beyond_nine_requests(circ):
    cards = await patrons(circ, "iizuka", 12)
    await add_item(circ, "IZ1", "T-TIE", "iizuka", "iizuka", status="on_loan")
    placed = [await web_place(circ, c, "T-TIE", "iizuka") for c in cards]   # all at NOW
    assert [p.position for p in placed] == list(range(1, 13))
    assert (await check_in(circ, "IZ1", "iizuka")).request_id == placed[0].request_id
    for expected, nxt in zip(placed, placed[1:]):
        # staff cancel the hold on the shelf: the copy goes to the next in line
        await holds.cancel(circ, request_id=expected.request_id, channel="counter", **STAFF)
        assert (await req(circ, nxt.request_id)).state == "ON_HOLD_SHELF"


async def test_trap_at_another_branch_goes_in_transit_then_arrives_at_the_pickup_branch(circ):
    await add_patron(circ, "1000000011", "iizuka", email="p@example.jp")
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka")
    r = await web_place(circ, "1000000011", "T-ONE", "chikuho", contact_method="email", memo="家族が受け取ります")
    routing = await rt.trap_from_shelf(circ, barcode="IZ1", branch="iizuka", **STAFF)
    assert routing == rt.Routing(rt.TRANSIT_HOLD, r.request_id, "chikuho")
    row = await req(circ, r.request_id)
    assert row.state == "IN_TRANSIT" and row.item_id is not None and row.ready_at is None
    assert (await item_row(circ, "IZ1")).status == "in_transit"
    [out] = await lists.transit_list(circ, "iizuka", "out")
    assert (out["to_branch"], out["request_id"], out["reason"]) == ("chikuho", r.request_id, "hold")
    assert [t["barcode"] for t in await lists.transit_list(circ, "chikuho", "in")] == ["IZ1"]
    assert await notices_of(circ, r.request_id, "hold_ready") == []
    # misrouted to honami: sent on
    at(circ, NOW + timedelta(days=2))
    onward = await arrive(circ, "IZ1", "honami")
    assert onward == rt.Routing(rt.TRANSIT_ONWARD, r.request_id, "chikuho")
    assert [t["from_branch"] for t in await lists.transit_list(circ, "chikuho", "in")] == ["honami"]
    at(circ, NOW + timedelta(days=3))
    done = await arrive(circ, "IZ1", "chikuho")
    assert done == rt.Routing(rt.HOLD_SHELF, r.request_id, "chikuho")
    row = await req(circ, r.request_id)
    assert row.state == "ON_HOLD_SHELF" and row.ready_at == NOW + timedelta(days=3)
    assert row.shelf_deadline == date(2026, 11, 30)          # 7 open days after 11-23
    it = await item_row(circ, "IZ1")
    assert (it.status, it.current_branch) == ("on_hold_shelf", "chikuho")
    assert await lists.transit_list(circ, "chikuho", "in") == []
    assert len(await notices_of(circ, r.request_id, "hold_ready")) == 1
    assert await events_of(circ, r.request_id) == [
        "PLACE", "VALIDATE", "ENQUEUE", "TRAP_ELSEWHERE", "TRANSIT_SENT", "TRANSIT_ARRIVED",
        "TRANSIT_SENT", "TRANSIT_ARRIVED", "ARRIVE_AT_PICKUP"]
    [shelf] = await lists.shelf_list(circ, "chikuho")
    assert (shelf["barcode"], shelf["memo"]) == ("IZ1", "家族が受け取ります")


async def test_trap_at_the_pickup_branch_goes_on_the_shelf_with_a_ready_notice(circ):
    await add_patron(circ, "1000000012", "iizuka", email="p@example.jp")
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka", status="on_loan")
    r = await web_place(circ, "1000000012", "T-ONE", "iizuka", contact_method="email")
    assert await check_in(circ, "IZ1", "iizuka") == rt.Routing(rt.HOLD_SHELF, r.request_id, "iizuka")
    row = await req(circ, r.request_id)
    # nobody has told the patron yet: contacted when the ready mail really goes out
    assert (row.state, row.ready_at, row.contacted_at, row.shelf_deadline) == \
        ("ON_HOLD_SHELF", NOW, None, date(2026, 11, 27))
    [n] = await notices_of(circ, r.request_id, "hold_ready")
    assert n.dedupe_key == f"hold_ready:{r.request_id}" and "IZ1" in n.data
    assert (await queries.request_trail(circ, r.request_id))[1][-1].event == "TRAP_AT_PICKUP"


async def test_no_contact_hold_is_not_marked_contacted(circ):
    await add_patron(circ, "K-5", "komae")
    await add_item(circ, "KM1", "T-K", "komae", "komae-central", status="on_loan")
    r = await web_place(circ, "K-5", "T-K", "komae-central", contact_method="none")
    await check_in(circ, "KM1", "komae-central")
    row = await req(circ, r.request_id)
    assert row.state == "ON_HOLD_SHELF" and row.contacted_at is None


async def test_a_returned_copy_nobody_wants_goes_home_or_back_on_the_shelf(circ):
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka", status="on_loan")
    away = await check_in(circ, "IZ1", "kaita")
    assert away == rt.Routing(rt.TRANSIT_HOME, None, "iizuka")
    [t] = await lists.transit_list(circ, "iizuka", "in")
    assert t["reason"] == "return_home"
    home = await arrive(circ, "IZ1", "iizuka")
    assert home.kind == rt.RESHELVE
    it = await item_row(circ, "IZ1")
    assert (it.status, it.current_branch) == ("available", "iizuka")


async def test_a_copy_going_home_is_trapped_on_arrival_if_someone_now_waits(circ):
    await add_patron(circ, "1000000013", "iizuka")
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka", status="on_loan")
    await check_in(circ, "IZ1", "kaita")
    r = await web_place(circ, "1000000013", "T-ONE", "iizuka")
    assert await arrive(circ, "IZ1", "iizuka") == rt.Routing(rt.HOLD_SHELF, r.request_id, "iizuka")


async def test_walk_in_patron_is_served_first_before_staff_secure_the_copy(circ):
    await add_patron(circ, "1000000014", "iizuka")
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka")
    r = await web_place(circ, "1000000014", "T-ONE", "iizuka")
    assert [p["request_id"] for p in await lists.pull_list(circ, "iizuka")] == [r.request_id]
    walk = await rt.trap_from_shelf(circ, barcode="IZ1", branch="iizuka", walk_in=True, **STAFF)
    assert walk.kind == rt.WALK_IN and walk.request_id is None
    assert (await req(circ, r.request_id)).state == "QUEUED"
    assert (await item_row(circ, "IZ1")).status == "available"
    assert "WALK_IN_FIRST" in [e.event for e in await rows(circ, s.events)]


async def test_a_copy_already_secured_is_not_trapped_twice(circ):
    cards = await patrons(circ, "iizuka", 2)
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka", status="on_loan")
    a = await web_place(circ, cards[0], "T-ONE", "iizuka")
    b = await web_place(circ, cards[1], "T-ONE", "iizuka")
    await check_in(circ, "IZ1", "iizuka")
    again = await check_in(circ, "IZ1", "iizuka")
    assert again == rt.Routing(rt.ALREADY_SECURED, a.request_id, "iizuka")
    assert await states(circ, a.request_id, b.request_id) == ["ON_HOLD_SHELF", "QUEUED"]
    assert (await rt.trap_from_shelf(circ, barcode="IZ1", branch="iizuka", **STAFF)).kind == \
        rt.NOT_AVAILABLE


async def test_suspended_request_is_passed_over_and_resumes_in_its_old_place(circ):
    cards = await patrons(circ, "iizuka", 2)
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka", status="on_loan")
    a = await web_place(circ, cards[0], "T-ONE", "iizuka")
    at(circ, NOW + timedelta(minutes=1))
    b = await web_place(circ, cards[1], "T-ONE", "iizuka")
    assert (await holds.suspend(circ, request_id=a.request_id, role="patron", actor=cards[0],
                                card=cards[0])).allowed
    assert (await lists.patron_requests(circ, cards[0]))[0]["status_ja"] == "保留中"
    assert (await holds.suspend(circ, request_id=a.request_id, role="patron", actor=cards[0])).code == \
        "not_suspendable"
    assert (await check_in(circ, "IZ1", "iizuka")).request_id == b.request_id
    assert (await holds.resume(circ, request_id=a.request_id, role="patron", actor=cards[0])).allowed
    assert (await lists.patron_requests(circ, cards[0]))[0]["position"] == 1
    assert await events_of(circ, a.request_id) == ["PLACE", "VALIDATE", "ENQUEUE", "SUSPEND", "RESUME"]


# --------------------------------------------------------------------------- sets and groups

async def test_komae_set_reservation_never_traps_a_later_volume_first(circ):
    await add_patron(circ, "K-SET", "komae")
    await add_patron(circ, "K-OTHER", "komae")
    await add_item(circ, "V1", "T-VOL1", "komae", "komae-central", status="on_loan")
    await add_item(circ, "V2", "T-VOL2", "komae", "komae-central", status="on_loan")
    res = await holds.place_set(circ, card="K-SET", title_ids=["T-VOL1", "T-VOL2"],
                                pickup_branch="komae-central", channel="web", role="patron", actor="K-SET")
    assert res.decision.allowed and res.set_id
    v1, v2 = res.request_ids
    assert [(await req(circ, r)).set_position for r in res.request_ids] == [1, 2]
    at(circ, NOW + timedelta(minutes=1))
    other = await web_place(circ, "K-OTHER", "T-VOL2", "komae-central")
    # volume 2 comes back first: it goes to the next patron, not to the set
    assert (await check_in(circ, "V2", "komae-central")).request_id == other.request_id
    assert await states(circ, v1, v2) == ["QUEUED", "QUEUED"]
    # volume 1 comes back: trapped for the set, then volume 2 may follow
    assert (await check_in(circ, "V1", "komae-central")).request_id == v1
    await add_item(circ, "V2b", "T-VOL2", "komae", "komae-central", status="on_loan")
    assert (await check_in(circ, "V2b", "komae-central")).request_id == v2


async def test_komae_set_reservation_can_be_reordered_and_the_new_order_is_followed(circ):
    await add_patron(circ, "K-SET", "komae")
    await add_item(circ, "V1", "T-VOL1", "komae", "komae-central", status="on_loan")
    await add_item(circ, "V2", "T-VOL2", "komae", "komae-central", status="on_loan")
    res = await holds.place_set(circ, card="K-SET", title_ids=["T-VOL1", "T-VOL2"],
                                pickup_branch="komae-central", channel="web", role="patron", actor="K-SET")
    v1, v2 = res.request_ids
    wrong = await holds.reorder_set(circ, card="K-SET", set_id=res.set_id, request_ids=[v2],
                                    role="patron", actor="K-SET")
    assert wrong.code == "set_mismatch"
    d = await holds.reorder_set(circ, card="K-SET", set_id=res.set_id, request_ids=[v2, v1],
                                role="patron", actor="K-SET")
    assert d.allowed
    assert [(await req(circ, r)).set_position for r in (v1, v2)] == [2, 1]
    assert "REORDER_SET" in await events_of(circ, v1)
    assert (await check_in(circ, "V1", "komae-central")).kind == rt.RESHELVE   # now second
    assert (await check_in(circ, "V2", "komae-central")).request_id == v2
    with pytest.raises(NotFound):
        await holds.reorder_set(circ, card="K-SET", set_id="no-such-set", request_ids=[],
                                role="patron", actor="K-SET")


async def test_a_cancelled_earlier_volume_no_longer_holds_back_the_later_one(circ):
    await add_patron(circ, "K-SET", "komae")
    await add_item(circ, "V2", "T-VOL2", "komae", "komae-central", status="on_loan")
    await add_item(circ, "V1", "T-VOL1", "komae", "komae-central", status="on_loan")
    res = await holds.place_set(circ, card="K-SET", title_ids=["T-VOL1", "T-VOL2"],
                                pickup_branch="komae-central", channel="web", role="patron", actor="K-SET")
    await holds.cancel(circ, request_id=res.request_ids[0], role="patron", actor="K-SET", channel="web")
    assert (await check_in(circ, "V2", "komae-central")).request_id == res.request_ids[1]


async def test_set_reservation_is_all_or_nothing(circ):
    await add_patron(circ, "1000000015", "iizuka")
    await add_item(circ, "A", "T-A", "iizuka", "iizuka")
    await add_item(circ, "DVD", "T-DVD", "iizuka", "iizuka", material_type="av")
    res = await holds.place_set(circ, card="1000000015", title_ids=["T-A", "T-DVD"],
                                pickup_branch="iizuka", channel="web", role="patron", actor="x")
    assert (res.set_id, res.request_ids, res.decision.code) == (None, [], "material_av")
    assert res.decision.details["title_id"] == "T-DVD"
    assert await rows(circ, s.requests) == [] and await rows(circ, s.notices) == []


async def test_komae_group_reservation_first_ready_wins_and_the_others_are_cancelled(circ):
    await add_patron(circ, "K-GRP", "komae")
    await add_item(circ, "HC", "T-HARDCOVER", "komae", "komae-central", status="on_loan")
    await add_item(circ, "PB", "T-PAPERBACK", "komae", "nishikawara", status="on_loan")
    res = await holds.place_group(circ, card="K-GRP", title_ids=["T-HARDCOVER", "T-PAPERBACK"],
                                  pickup_branch="komae-central", channel="web", role="patron",
                                  actor="K-GRP")
    hc, pb = res.request_ids
    assert res.group_id and await states(circ, hc, pb) == ["QUEUED", "QUEUED"]
    routing = await check_in(circ, "PB", "nishikawara")       # paperback first, away from pickup
    assert routing == rt.Routing(rt.TRANSIT_HOLD, pb, "komae-central")
    assert await states(circ, hc, pb) == ["CANCELLED", "IN_TRANSIT"]
    assert (await events_of(circ, hc))[-1] == "GROUP_SATISFIED"
    [gone] = await lists.cancelled_requests(circ, "K-GRP")
    assert (gone["request_id"], gone["reason"]) == (hc, reasons.REASON_GROUP_SATISFIED)
    # the hardcover coming back is not trapped for the group any more
    assert (await check_in(circ, "HC", "komae-central")).kind == rt.RESHELVE


# --------------------------------------------------------------------------- hold shelf

async def test_shelf_deadline_counts_open_days_and_skips_closed_days_from_the_calendar(circ):
    cards = await patrons(circ, "iizuka", 2)
    await add_calendar(circ, "iizuka", date(2026, 11, 24))
    await add_calendar(circ, "iizuka", date(2026, 11, 25))
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka", status="on_loan")
    await add_item(circ, "IZ2", "T-ONE", "iizuka", "chikuho", status="on_loan")
    a = await web_place(circ, cards[0], "T-ONE", "iizuka")
    b = await web_place(circ, cards[1], "T-ONE", "chikuho")
    await check_in(circ, "IZ1", "iizuka")
    await check_in(circ, "IZ2", "chikuho")
    # ready Friday 11-20; iizuka closed 11-24 and 11-25: 21,22,23,26,27,28,29
    assert (await req(circ, a.request_id)).shelf_deadline == date(2026, 11, 29)
    assert (await req(circ, b.request_id)).shelf_deadline == date(2026, 11, 27)   # chikuho open daily
    assert (await lists.patron_requests(circ, cards[0]))[0]["shelf_deadline"] == date(2026, 11, 29)


async def test_shelf_expiry_cancels_the_hold_and_moves_the_copy_to_the_next_patron(circ):
    cards = await patrons(circ, "iizuka", 3)
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka", status="on_loan")
    a = await web_place(circ, cards[0], "T-ONE", "iizuka")
    at(circ, NOW + timedelta(minutes=1))
    b = await web_place(circ, cards[1], "T-ONE", "chikuho")
    await check_in(circ, "IZ1", "iizuka")
    at(circ, datetime(2026, 11, 27, 20, 0))                 # the deadline day itself
    assert await jobs.expire_shelf(circ) == 0
    at(circ, datetime(2026, 11, 28, 8, 0))
    assert await jobs.expire_shelf(circ) == 1
    assert await states(circ, a.request_id, b.request_id) == ["SHELF_EXPIRED", "IN_TRANSIT"]
    assert (await req(circ, b.request_id)).item_id == (await item_row(circ, "IZ1")).id
    assert (await events_of(circ, a.request_id))[-1] == "SHELF_EXPIRE"
    assert await notices_of(circ, a.request_id, "hold_cancelled") == []   # Iizuka: no notice
    [gone] = await lists.cancelled_requests(circ, cards[0])
    assert (gone["status_ja"], gone["reason"], gone["channel"]) == ("取置期限切れ", "取置期限切れ", "system")
    assert await jobs.expire_shelf(circ) == 0                # idempotent
    assert len([e for e in await rows(circ, s.events) if e.event == "SHELF_EXPIRE"]) == 1


async def test_a_closure_added_after_the_trap_extends_the_shelf_deadline(circ):
    await add_patron(circ, "1000000016", "iizuka")
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka", status="on_loan")
    a = await web_place(circ, "1000000016", "T-ONE", "iizuka")
    await check_in(circ, "IZ1", "iizuka")
    await add_calendar(circ, "iizuka", date(2026, 11, 23))
    at(circ, datetime(2026, 11, 28, 8, 0))
    assert await jobs.expire_shelf(circ) == 0
    assert (await req(circ, a.request_id)).shelf_deadline == date(2026, 11, 28)


async def test_komae_shelf_period_runs_from_the_contact_day(circ):
    await add_patron(circ, "K-6", "komae", phone="03-0000-0000")
    await add_item(circ, "KM1", "T-K", "komae", "komae-central", status="on_loan")
    r = await web_place(circ, "K-6", "T-K", "komae-central", contact_method="phone")
    await check_in(circ, "KM1", "komae-central")
    row = await req(circ, r.request_id)
    assert row.contacted_at is None and row.shelf_deadline == date(2026, 11, 27)   # from the allocation
    at(circ, NOW + timedelta(days=1, hours=3))             # staff reach the patron the next day
    told = await notices_module.record_call(circ, r.request_id, actor="komae.counter")
    assert (told.contacted_at, told.shelf_deadline) == (NOW + timedelta(days=1, hours=3), date(2026, 11, 28))
    row = await req(circ, r.request_id)
    assert row.contacted_at == NOW + timedelta(days=1, hours=3) and row.shelf_deadline == date(2026, 11, 28)


# --------------------------------------------------------------------------- cancelling

async def test_iizuka_web_cancel_only_before_the_library_has_secured_the_copy(circ):
    cards = await patrons(circ, "iizuka", 3)
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka", status="on_loan")
    await add_item(circ, "IZ2", "T-TWO", "iizuka", "iizuka", status="on_loan")
    early = await web_place(circ, cards[0], "T-TWO", "iizuka")
    d = await holds.cancel(circ, request_id=early.request_id, role="patron", actor=cards[0],
                           channel="web", card=cards[0])
    assert d.allowed
    row = await req(circ, early.request_id)
    assert (row.state, row.cancel_reason, row.cancel_channel, row.cancelled_at) == \
        ("CANCELLED", "WEBキャンセル", "web", NOW)
    assert len(await notices_of(circ, early.request_id, "hold_cancelled")) == 1
    a = await web_place(circ, cards[1], "T-ONE", "iizuka")
    b = await web_place(circ, cards[2], "T-ONE", "iizuka")
    await check_in(circ, "IZ1", "iizuka")
    refused = await holds.cancel(circ, request_id=a.request_id, role="patron", actor=cards[1],
                                 channel="web", card=cards[1])
    assert refused.code == "secured_staff_only" and "Web" in refused.message_ja
    assert (await req(circ, a.request_id)).state == "ON_HOLD_SHELF"
    by_staff = await holds.cancel(circ, request_id=a.request_id, channel="counter", branch="iizuka",
                                  reason="利用者から電話", **STAFF)
    assert by_staff.allowed
    assert await states(circ, a.request_id, b.request_id) == ["CANCELLED", "ON_HOLD_SHELF"]
    assert (await events_of(circ, a.request_id))[-1] == "CANCEL_SECURED"
    assert (await req(circ, a.request_id)).cancel_reason == "利用者から電話"


async def test_a_patron_cannot_cancel_someone_elses_request(circ):
    cards = await patrons(circ, "iizuka", 2)
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka")
    a = await web_place(circ, cards[0], "T-ONE", "iizuka")
    with pytest.raises(NotFound):
        await holds.cancel(circ, request_id=a.request_id, role="patron", actor=cards[1], channel="web",
                           card=cards[1])
    assert (await req(circ, a.request_id)).state == "QUEUED"
    with pytest.raises(NotFound):
        await holds.cancel(circ, request_id=9999, role="staff", actor="s", channel="counter")


async def test_cancelling_a_closed_request_is_refused(circ):
    await add_patron(circ, "1000000017", "iizuka")
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka")
    a = await web_place(circ, "1000000017", "T-ONE", "iizuka")
    await holds.cancel(circ, request_id=a.request_id, role="patron", actor="x", channel="web")
    again = await holds.cancel(circ, request_id=a.request_id, role="patron", actor="x", channel="web")
    assert again.code == "already_closed"
    assert (await events_of(circ, a.request_id)).count("CANCEL") == 1


async def test_komae_secured_hold_is_cancelled_only_at_the_pickup_branch(circ):
    await add_patron(circ, "K-7", "komae")
    await add_item(circ, "KM1", "T-K", "komae", "komae-central", status="on_loan")
    r = await web_place(circ, "K-7", "T-K", "komae-central")
    await check_in(circ, "KM1", "komae-central")
    elsewhere = await holds.cancel(circ, request_id=r.request_id, channel="counter",
                                   branch="nishikawara", **STAFF)
    assert elsewhere.code == "secured_pickup_branch_only"
    assert (await req(circ, r.request_id)).state == "ON_HOLD_SHELF"
    assert (await holds.cancel(circ, request_id=r.request_id, channel="counter",
                               branch="komae-central", **STAFF)).allowed
    assert (await req(circ, r.request_id)).state == "CANCELLED"
    assert (await item_row(circ, "KM1")).status == "available"   # nobody else waits: back on the shelf


async def test_a_hold_cancelled_in_transit_is_routed_afresh_when_the_copy_arrives(circ):
    cards = await patrons(circ, "iizuka", 2)
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka", status="on_loan")
    a = await web_place(circ, cards[0], "T-ONE", "chikuho")
    at(circ, NOW + timedelta(minutes=1))
    b = await web_place(circ, cards[1], "T-ONE", "shonai")
    await check_in(circ, "IZ1", "iizuka")
    assert (await holds.cancel(circ, request_id=a.request_id, channel="counter", **STAFF)).allowed
    assert (await item_row(circ, "IZ1")).status == "in_transit"     # still in the van
    routing = await arrive(circ, "IZ1", "chikuho")
    assert routing == rt.Routing(rt.TRANSIT_HOLD, b.request_id, "shonai")
    assert await states(circ, a.request_id, b.request_id) == ["CANCELLED", "IN_TRANSIT"]


async def test_iizuka_cancelled_holds_are_listed_thirty_days_then_purged(circ):
    await add_patron(circ, "1000000018", "iizuka")
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka")
    a = await web_place(circ, "1000000018", "T-ONE", "iizuka", title="坊っちゃん")
    await holds.cancel(circ, request_id=a.request_id, role="patron", actor="x", channel="web")
    at(circ, NOW + timedelta(days=29))
    [c] = await lists.cancelled_requests(circ, "1000000018")
    assert (c["title"], c["reason"], c["channel_ja"], c["cancelled_at"]) == \
        ("坊っちゃん", "WEBキャンセル", "Web", NOW)
    assert await jobs.purge_cancelled(circ) == 0
    at(circ, NOW + timedelta(days=30, minutes=1))
    assert await lists.cancelled_requests(circ, "1000000018") == []
    assert await jobs.purge_cancelled(circ) == 1
    assert await rows(circ, s.requests) == []
    assert await rows(circ, s.events, s.events.c.request_id == a.request_id) == []
    assert await rows(circ, s.notices) == []
    assert await jobs.purge_cancelled(circ) == 0


# --------------------------------------------------------------------------- memo, change, lists

async def test_komae_memo_is_seen_only_once_the_copy_is_secured(circ):
    await add_patron(circ, "K-8", "komae")
    await add_item(circ, "KM1", "T-K", "komae", "komae-central")
    r = await web_place(circ, "K-8", "T-K", "komae-central", memo="今回に限り、携帯電話に連絡してください")
    assert (await lists.patron_requests(circ, "K-8"))[0]["memo"] is None
    [pull] = await lists.pull_list(circ, "komae-central")
    assert pull["request_id"] == r.request_id and "memo" not in pull
    await rt.trap_from_shelf(circ, barcode="KM1", branch="komae-central", **STAFF)
    assert (await lists.patron_requests(circ, "K-8"))[0]["memo"] == "今回に限り、携帯電話に連絡してください"
    assert (await lists.shelf_list(circ, "komae-central"))[0]["memo"] == "今回に限り、携帯電話に連絡してください"


async def test_pickup_and_contact_change_only_before_the_copy_is_secured(circ):
    await add_patron(circ, "1000000019", "iizuka", email="z@example.jp")
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka", status="on_loan")
    r = await web_place(circ, "1000000019", "T-ONE", "iizuka")
    # (an Iizuka patron may not change the pickup branch; staff at the counter may)
    assert (await holds.change(circ, request_id=r.request_id, card="1000000019",
                               pickup_branch="tomohato", role="staff", actor="x")).code == \
        "pickup_not_service_point"
    d = await holds.change(circ, request_id=r.request_id, card="1000000019", pickup_branch="kaita",
                           contact_method="email", role="staff", actor="x")
    assert d.allowed
    row = await req(circ, r.request_id)
    assert (row.pickup_branch, row.contact_method) == ("kaita", "email")
    assert (await events_of(circ, r.request_id))[-1] == "CHANGE"
    assert len(await notices_of(circ, r.request_id, "hold_changed")) == 1
    assert (await check_in(circ, "IZ1", "iizuka")).to_branch == "kaita"
    late = await holds.change(circ, request_id=r.request_id, pickup_branch="iizuka", role="staff",
                              actor="s")
    assert late.code == "not_changeable"
    assert (await req(circ, r.request_id)).pickup_branch == "kaita"


async def test_settings_can_update_every_existing_request_not_yet_secured(circ):
    await add_patron(circ, "1000000020", "iizuka")
    for i in range(3):
        await add_item(circ, f"IZ{i}", f"T-{i}", "iizuka", "iizuka", status="on_loan")
    placed = [await web_place(circ, "1000000020", f"T-{i}", "iizuka") for i in range(3)]
    await check_in(circ, "IZ0", "iizuka")
    assert await holds.update_patron_requests(circ, card="1000000020", pickup_branch="xx",
                                              role="patron", actor="x") == 0
    n = await holds.update_patron_requests(circ, card="1000000020", pickup_branch="shonai",
                                           role="patron", actor="x")
    assert n == 2
    assert [(await req(circ, p.request_id)).pickup_branch for p in placed] == ["iizuka", "shonai", "shonai"]
    assert len(await rows(circ, s.notices, s.notices.c.kind == "hold_changed")) == 2


async def test_pull_list_shows_what_this_branchs_shelves_can_fill_in_queue_order(circ):
    cards = await patrons(circ, "iizuka", 4)
    await add_item(circ, "A1", "T-A", "iizuka", "iizuka")
    await add_item(circ, "A2", "T-A", "iizuka", "iizuka")
    await add_item(circ, "B1", "T-B", "iizuka", "chikuho")        # another branch's shelf
    await add_item(circ, "C1", "T-C", "iizuka", "iizuka", status="on_loan")
    ra = [await web_place(circ, c, "T-A", "iizuka") for c in cards[:3]]
    await web_place(circ, cards[3], "T-B", "iizuka")
    await web_place(circ, cards[3], "T-C", "iizuka")
    await holds.suspend(circ, request_id=ra[0].request_id, role="patron", actor="x")
    pulls = await lists.pull_list(circ, "iizuka")
    assert [(p["request_id"], p["barcode"]) for p in pulls] == \
        [(ra[1].request_id, "A1"), (ra[2].request_id, "A2")]
    assert [p["barcode"] for p in await lists.pull_list(circ, "chikuho")] == ["B1"]


# --------------------------------------------------------------------------- review of requests

async def test_review_purchase_queues_the_request_for_the_copy_being_bought(circ):
    await add_patron(circ, "K-9", "komae")
    r = await counter_place(circ, "K-9", "T-BUY", "komae-central", title="新刊")
    assert [q["request_id"] for q in await lists.review_queue(circ, "komae")] == [r.request_id]
    assert (await holds.review(circ, request_id=r.request_id, decision="purchase", role="patron",
                               actor="x")).code == "staff_only"
    assert (await holds.review(circ, request_id=r.request_id, decision="purchase", **STAFF)).allowed
    assert (await req(circ, r.request_id)).state == "QUEUED"
    assert await lists.review_queue(circ, "komae") == []
    await add_item(circ, "NEW1", "T-BUY", "komae", "komae-central")      # the bought copy
    routing = await rt.trap_from_shelf(circ, barcode="NEW1", branch="komae-central", **STAFF)
    assert routing.request_id == r.request_id
    again = await holds.review(circ, request_id=r.request_id, decision="refuse", **STAFF)
    assert again.code == "not_in_review"


async def test_review_ill_sends_the_request_to_a_partner(circ):
    await add_patron(circ, "H-3", "hiroshima", **HIROSHIMA_CONTACT)
    r = await counter_place(circ, "H-3", "T-ILL", "central")
    assert (await holds.review(circ, request_id=r.request_id, decision="ill", **STAFF)).allowed
    row = await req(circ, r.request_id)
    assert row.state == "SENT"
    assert (await lists.patron_requests(circ, "H-3"))[0]["status_ja"] == "他館から取寄中"


async def test_review_refusal_shows_the_reason_to_the_patron(circ):
    await add_patron(circ, "K-10", "komae")
    r = await counter_place(circ, "K-10", "T-RARE", "komae-central")
    d = await holds.review(circ, request_id=r.request_id, decision="refuse",
                           reason="入手が困難なため", **STAFF)
    assert d.allowed
    assert (await req(circ, r.request_id)).state == "REJECTED"
    [c] = await lists.cancelled_requests(circ, "K-10")
    assert (c["status_ja"], c["reason"]) == ("お断り", "入手が困難なため")
    [n] = await notices_of(circ, r.request_id, "hold_cancelled")
    assert "入手が困難なため" in n.data
    with pytest.raises(ValueError):
        await holds.review(circ, request_id=r.request_id, decision="maybe", **STAFF)


async def test_komae_request_for_an_unpublished_new_book_lapses_after_a_month(circ):
    await add_patron(circ, "K-11", "komae")
    soon = await counter_place(circ, "K-11", "T-SOON", "komae-central",
                               publication_date=date(2026, 12, 10))
    never = await counter_place(circ, "K-11", "T-NEVER", "komae-central",
                                publication_date=date(2027, 3, 1))
    at(circ, NOW + timedelta(days=29))
    assert await jobs.lapse_unpublished(circ) == 0
    at(circ, NOW + timedelta(days=30))
    assert await jobs.lapse_unpublished(circ) == 1
    assert await states(circ, soon.request_id, never.request_id) == ["PURCHASE_REVIEW", "CANCELLED"]
    assert (await events_of(circ, never.request_id))[-1] == "PUBLICATION_LAPSED"
    assert await jobs.lapse_unpublished(circ) == 0


async def test_request_history_is_the_audit_trail_with_who_and_when(circ):
    await add_patron(circ, "1000000021", "iizuka")
    await add_item(circ, "IZ1", "T-ONE", "iizuka", "iizuka")
    r = await web_place(circ, "1000000021", "T-ONE", "iizuka")
    at(circ, NOW + timedelta(hours=1))
    await holds.cancel(circ, request_id=r.request_id, role="patron", actor="1000000021", channel="web")
    info, hist = await queries.request_trail(circ, r.request_id)
    assert (info.id, info.state) == (r.request_id, "CANCELLED")
    assert [(h.event, h.from_state, h.to_state, h.actor_role) for h in hist] == [
        ("PLACE", None, "NEW", "patron"), ("VALIDATE", "NEW", "VALIDATED", "system"),
        ("ENQUEUE", "VALIDATED", "QUEUED", "system"), ("CANCEL", "QUEUED", "CANCELLED", "patron")]
    assert hist[-1].at == NOW + timedelta(hours=1) and hist[-1].channel == "web"
    with pytest.raises(NotFound):
        await queries.request_trail(circ, 4242)


async def test_every_hold_notice_queued_here_renders_as_a_japanese_mail(circ):
    await add_patron(circ, "1000000022", "iizuka", email="m@example.jp", name="飯塚花子")
    await add_item(circ, "IZ1", "T-MAIL", "iizuka", "iizuka", status="on_loan")
    r = await web_place(circ, "1000000022", "T-MAIL", "iizuka", contact_method="email",
                        title="銀河鉄道の夜")
    # staff: Iizuka patrons may not
    await holds.change(circ, request_id=r.request_id, pickup_branch="kaita", role="staff", actor="x")
    await check_in(circ, "IZ1", "kaita")
    await holds.cancel(circ, request_id=r.request_id, channel="counter", branch="kaita", **STAFF)
    sent = await notices_of(circ, r.request_id)
    assert [n.kind for n in sent] == ["hold_received", "hold_changed", "hold_ready", "hold_cancelled"]
    for n in sent:
        mail = await notices_module.render_notice(circ, n.id)
        assert mail.language == "ja" and "銀河鉄道の夜" in mail.body, n.kind
    assert "潁田図書館" in (await notices_module.render_notice(circ, sent[2].id)).body
    assert "窓口キャンセル" in (await notices_module.render_notice(circ, sent[3].id)).body


async def test_a_title_placed_without_a_display_title_is_shown_by_its_id(circ):
    await add_patron(circ, "1000000023", "iizuka")
    await add_item(circ, "IZ1", "T-NOTITLE", "iizuka", "iizuka")
    r = await web_place(circ, "1000000023", "T-NOTITLE", "iizuka")
    assert (await req(circ, r.request_id)).title == "T-NOTITLE"


# --------------------------------------------------------------------------- review follow-ups

async def test_iizuka_patron_cannot_change_the_pickup_branch_after_placing_but_staff_can(circ):
    """Iizuka: ※予約完了後、受取場所を変更したい場合は予約を取消して、最初からやり直してください。"""
    await add_patron(circ, "1000000001", "iizuka", email="a@example.jp")
    await add_item(circ, "IZ1", "t-pick", "iizuka", "iizuka")
    rid = (await web_place(circ, "1000000001", "t-pick", "iizuka")).request_id
    d = await holds.change(circ, request_id=rid, card="1000000001", pickup_branch="honami",
                           role="patron", actor="1000000001")
    assert not d.allowed and d.code == "pickup_change_not_allowed" and "取消" in d.message_ja
    assert (await req(circ, rid)).pickup_branch == "iizuka"
    d = await holds.change(circ, request_id=rid, card="1000000001", contact_method="email",
                           role="patron", actor="1000000001")
    assert d.allowed                                      # the contact method may change
    assert (await holds.change(circ, request_id=rid, pickup_branch="honami", **STAFF)).allowed
    assert (await req(circ, rid)).pickup_branch == "honami"


async def test_hiroshima_patron_may_change_the_pickup_branch(circ):
    await add_patron(circ, "H1", "hiroshima", **HIROSHIMA_CONTACT)
    await add_item(circ, "HS1", "t-hpick", "hiroshima", "naka")
    rid = (await web_place(circ, "H1", "t-hpick", "naka")).request_id
    assert (await holds.change(circ, request_id=rid, card="H1", pickup_branch="higashi",
                               role="patron", actor="H1")).allowed
    assert (await req(circ, rid)).pickup_branch == "higashi"


async def test_a_second_reservation_of_the_same_title_is_refused(circ):
    await add_patron(circ, "1000000002", "iizuka", email="b@example.jp")
    await add_item(circ, "IZ2", "t-dup", "iizuka", "iizuka")
    assert (await web_place(circ, "1000000002", "t-dup", "iizuka")).request_id is not None
    again = await web_place(circ, "1000000002", "t-dup", "honami")
    assert again.request_id is None and again.decision.code == "duplicate_request"
    assert len(await rows(circ, s.requests, s.requests.c.title_id == "t-dup")) == 1


async def test_queue_order_breaks_same_second_ties_by_numeric_request_id(circ):
    """Ten placements in the same second: request 10 stays behind request 9."""
    cards = [f"10000001{i:02d}" for i in range(11)]
    for c in cards:
        await add_patron(circ, c, "iizuka")
    await add_item(circ, "IZ3", "t-tie", "iizuka", "iizuka", status="on_loan")
    ids = [(await web_place(circ, c, "t-tie", "iizuka")).request_id for c in cards]
    listed = {r["request_id"]: r["position"] for c in cards for r in await lists.patron_requests(circ, c)}
    assert [listed[i] for i in ids] == list(range(1, 12))
