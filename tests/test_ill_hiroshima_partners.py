"""Hiroshima's university partnership (連携貸出, POLICIES.md; seed 002) carried over
ISO 18626: the city network (node A) and 広島大学図書館's ILL node (node U, its own
circulation database) talk over real HTTP; each rule of the seed is one test.

A's union catalog names the university's copy (barcode HU0001 at 中央図書館), so the
form at the counter asks for that copy; U lends it as a loan to the city library as an
institutional borrower."""
from __future__ import annotations

import pytest

from circulation import loans, partners
from circulation import schema as s
from circulation.ill import supplier
from ill_helpers import add_item, add_patron, one_row, peers, pump, rows
from live_server import free_port

TITLE = "isbn:9784000000031"
CARD = "H100"
HU = "JP-3400001"          # the university's agency id in this test


@pytest.fixture
async def nodes(db_url, tmp_path):
    pa, pu = free_port(), free_port()
    specs = [
        dict(name="A", db_url=db_url, agency="ISIL:JP-3400000", port=pa, systems=["hiroshima"],
             partners={HU: {"url": f"http://127.0.0.1:{pu}/iso18626", "token": "a-u", "accept_token": "u-a",
                            "library": "hiroshima-u", "name": "広島大学図書館"}}),
        dict(name="U", db_url=f"sqlite+aiosqlite:///{tmp_path}/u.db", agency=f"ISIL:{HU}", port=pu,
             systems=["komae"],   # the university's own circulation (its records under a stand-in system)
             partners={"JP-3400000": {"url": f"http://127.0.0.1:{pa}/iso18626", "token": "u-a",
                                      "accept_token": "a-u", "library": "hiroshima"}}),
    ]
    async with peers(*specs) as (a, u):
        await add_patron(a.circ, CARD, "hiroshima", email="h100@example.jp", default_contact_method="email")
        await add_item(a.circ, "HU0001", TITLE, "hiroshima-u", "hu-central", partner="hiroshima-u",
                       location="開架")
        await add_item(a.circ, "HU0002", "isbn:9784000000048", "hiroshima-u", "hu-central",
                       partner="hiroshima-u", material_type="av")
        await add_item(u.circ, "HU0001", TITLE, "komae", "komae-central")
        yield a, u


async def _form_at_the_counter(a, u, branch="naka"):
    got = await partners.request_item(a.circ, card=CARD, barcode="HU0001", branch=branch, role="staff",
                                      actor="naka-counter", channel="form")
    assert got.decision.allowed, got.decision
    await pump(a, u)
    return got.request_id


async def _shipped_and_received(a, u, branch="naka"):
    rid = await _form_at_the_counter(a, u, branch)
    sup = await one_row(u.circ, s.ill_supplies)
    assert (await supplier.ship(u.ill, supply_id=sup.id, barcode="HU0001", branch="komae-central",
                                actor="hu.staff", library="komae")).ok
    await pump(a, u)
    assert (await one_row(a.circ, s.requests, s.requests.c.id == rid)).state == "SHIPPED"
    got = await partners.receive(a.circ, barcode="HU0001", branch=branch, actor="naka-counter")
    assert got.decision.allowed
    await pump(a, u)
    return rid, sup.id


async def test_requested_on_the_form_at_a_city_counter_goes_to_the_university(nodes):
    a, u = nodes
    rid = await _form_at_the_counter(a, u)
    leg = await one_row(a.circ, s.ill_legs)
    assert leg.request_id == rid and leg.partner == HU and leg.state == "EXPECT_TO_SUPPLY"
    sup = await one_row(u.circ, s.ill_supplies)
    assert sup.state == "EXPECT_TO_SUPPLY" and sup.title_id == TITLE
    (request_msg,) = [r for r in await rows(u.circ, s.ill_messages) if r.kind == "request"]
    assert "HU0001" in request_msg.body           # the copy the form asked for is named


async def test_items_the_university_excludes_are_refused_before_anything_is_sent(nodes):
    a, u = nodes
    got = await partners.request_item(a.circ, card=CARD, barcode="HU0002", branch="naka", role="staff",
                                      actor="naka-counter", channel="form")
    assert not got.decision.allowed                # 視聴覚資料 are not lent by 広島大学図書館
    await pump(a, u)
    assert await rows(a.circ, s.ill_legs) == [] and await rows(u.circ, s.ill_supplies) == []


async def test_lent_at_the_requesting_counter_within_the_normal_limit(nodes):
    a, u = nodes
    await _shipped_and_received(a, u)
    elsewhere = await loans.check_out(a.circ, barcode="HU0001", card=CARD, branch="central", role="staff",
                                      actor="central")
    assert not elsewhere.decision.allowed
    here = await loans.check_out(a.circ, barcode="HU0001", card=CARD, branch="naka", role="staff",
                                 actor="naka-counter")
    assert here.decision.allowed
    await pump(a, u)
    assert (await one_row(u.circ, s.ill_supplies)).state == "RECEIVED"


async def test_returned_only_to_the_same_counter_then_back_to_the_university(nodes):
    a, u = nodes
    rid, sid = await _shipped_and_received(a, u)
    await loans.check_out(a.circ, barcode="HU0001", card=CARD, branch="naka", role="staff", actor="naka-counter")
    refused = await loans.check_in(a.circ, barcode="HU0001", branch="central", role="staff", actor="central")
    assert not refused.decision.allowed
    await pump(a, u)
    assert (await one_row(u.circ, s.ill_supplies)).state == "RECEIVED"
    back = await loans.check_in(a.circ, barcode="HU0001", branch="naka", role="staff", actor="naka-counter")
    assert back.decision.allowed
    await pump(a, u)
    assert (await one_row(u.circ, s.ill_supplies)).state == "RETURN_SHIPPED"
    await loans.check_in(u.circ, barcode="HU0001", branch="komae-central", role="staff", actor="hu.staff")
    await pump(a, u)
    assert (await one_row(u.circ, s.ill_supplies)).state == "COMPLETED"
    assert (await one_row(a.circ, s.requests, s.requests.c.id == rid)).state == "COMPLETED"


async def test_the_university_says_it_cannot_supply(nodes):
    a, u = nodes
    rid = await _form_at_the_counter(a, u)
    sup = await one_row(u.circ, s.ill_supplies)
    assert (await supplier.cannot_supply(u.ill, supply_id=sup.id, actor="hu.staff", library="komae")).ok
    await pump(a, u)
    req = await one_row(a.circ, s.requests, s.requests.c.id == rid)
    assert req.state == "UNFILLED"              # a named copy has no other lender
    assert "hold_cancelled" in [n.kind for n in await rows(a.circ, s.notices, s.notices.c.request_id == rid)]
