"""The NCIP responder end to end: an ILL broker's messages over real HTTP on 127.0.0.1
to ``POST /ncip`` in front of a circulation database (SQLite and PostgreSQL), for each
of the six services and their problems.  Every response is validated against the
official NCIP 2.02 schema."""
from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web

from circ_helpers import NOW, add_item, add_patron, new_circulation, one_row, rows
from circulation import loans
from circulation import schema as s
from circulation.ncip import NcipNode, broker_title_id, request_marker
from circulation.service import Circulation
from circulation.store import Clock, Database
from connectors import ncip as N
from connectors.ncip import model as m
from connectors.ncip.config import load
from connectors.ncip.model import (
    AcceptItemError,
    CancelRequestItemError,
    CheckInItemError,
    CheckOutItemError,
    General,
    LookupUserError,
    Messaging,
    RequestItemError,
)
from gateway.ncip_endpoint import MAX_BODY, add_routes
from live_server import free_port
from test_ncip_codec import assert_valid

US = "JP-1000000"
CARD = "3100000001"            # Hiroshima, the broker's patron
OTHER = "3100000002"           # Hiroshima
EXPIRED = "3100000003"         # Hiroshima, card expired yesterday
BLOCKED = "2100000001"         # Iizuka, a loan long overdue
KOMAE = "4100000001"           # Komae: not a system of the broker
TITLE = "isbn:9784000000017"
JST = ZoneInfo("Asia/Tokyo")
CONFIG = {"ncip": {"agency_id": US, "clients": {
    "RS": {"token": "rs-token", "systems": ["hiroshima", "iizuka"], "name": "ReShare"},
    "KB": {"token": "kb-token", "systems": ["komae"]}}}}


class Broker:
    """The ILL broker's side: NCIP messages over HTTP, every response checked against
    the official schema."""

    def __init__(self, session: aiohttp.ClientSession, url: str, circ: Circulation):
        self.session, self.url, self.circ = session, url, circ

    @staticmethod
    def header(sender: str = "RS", to: str = US) -> m.InitiationHeader:
        return m.InitiationHeader(m.FromAgencyId(m.SchemeValue(sender)), m.ToAgencyId(m.SchemeValue(to)))

    async def post(self, body: bytes, token: str | None = "rs-token", method: str = "POST",
                   status: int = 200) -> m.Message:
        headers = {"Content-Type": "application/xml"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(method, self.url, data=body, headers=headers) as resp:
            data = await resp.read()
            assert resp.status == status, (resp.status, data[:500])
            assert resp.content_type == "application/xml"
        assert_valid(data)
        return N.decode(data)

    async def send(self, message, token: str | None = "rs-token", status: int = 200):
        if message.initiation_header is None:
            message = dataclasses.replace(message, initiation_header=self.header())
        response = await self.post(N.encode(message), token, status=status)
        assert response.response_header == m.ResponseHeader(m.FromAgencyId(m.SchemeValue(US)),
                                                            m.ToAgencyId(m.SchemeValue("RS")))
        return response

    async def problem(self, message, problem_type: m.SchemeValue, element: str | None = None, **kw) -> m.Problem:
        response = await self.send(message, **kw)
        assert response.problem, response
        p = response.problem[0]
        assert p.problem_type == problem_type, p
        if element is not None:
            assert p.problem_element == element, p
        return p


@pytest.fixture
async def broker(db_url):
    circ = await new_circulation(db_url)
    await add_patron(circ, CARD, "hiroshima", name="山田花子", email="hana@example.jp",
                     default_contact_method="email", default_pickup_branch="central")
    await add_patron(circ, OTHER, "hiroshima", name="鈴木一郎", phone="082-000-0000", default_contact_method="phone")
    await add_patron(circ, EXPIRED, "hiroshima", name="期限切れ", card_expires=NOW.date() - timedelta(days=1))
    await add_patron(circ, BLOCKED, "iizuka", name="延滞中")
    await add_patron(circ, KOMAE, "komae", name="狛江")
    async with circ.db.transaction() as conn:
        await conn.execute(s.title_queues.insert().values(title_id=TITLE, title="図書館の歴史"))
    await add_item(circ, "H-0001", TITLE, "hiroshima", "central")
    await add_item(circ, "H-0002", TITLE, "hiroshima", "naka")
    await add_item(circ, "H-0100", "isbn:9784000000024", "hiroshima", "central")
    await add_item(circ, "I-0001", "isbn:9784000000031", "iizuka", "iizuka")
    await add_item(circ, "I-0002", TITLE, "iizuka", "iizuka")
    await add_item(circ, "K-0001", TITLE, "komae", "komae-central")
    circ.clock.fixed = NOW - timedelta(days=40)          # the Iizuka loan, long overdue by NOW
    out = await loans.check_out(circ, barcode="I-0001", card=BLOCKED, branch="iizuka", role="staff",
                                actor="iizuka.staff")
    assert out.decision.allowed
    circ.clock.fixed = NOW

    node = NcipNode(circ, load(CONFIG, env={}))
    app = web.Application()
    add_routes(app, node)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    session = aiohttp.ClientSession()
    try:
        yield Broker(session, f"http://127.0.0.1:{port}/ncip", circ)
    finally:
        await session.close()
        await runner.cleanup()
        await circ.db.dispose()


def _user(card: str = CARD) -> m.UserId:
    return m.UserId(card)


def _item(barcode: str) -> m.ItemId:
    return m.ItemId(barcode)


def _types(*names: str) -> tuple[m.SchemeValue, ...]:
    return tuple(m.USER_ELEMENT_TYPES[n] for n in names)


async def _events(circ, **where):
    q = [getattr(s.events.c, k) == v for k, v in where.items()]
    return await rows(circ, s.events, *q, order_by=s.events.c.id)


# ----------------------------------------------------------------- LookupUser

async def test_lookup_user_gives_what_was_asked_for_and_no_more(broker):
    r = await broker.send(m.LookupUser(user_id=_user(), user_element_type=_types(
        "Name Information", "User Privilege", "Block Or Trap", "User Address Information", "Date Of Birth")))
    assert r.user_id == m.UserId(CARD, agency_id=m.SchemeValue(US))
    f = r.user_optional_fields
    assert f.name_information.personal_name_information.unstructured_personal_user_name == "山田花子"
    (priv,) = f.user_privilege
    assert priv.agency_user_privilege_type.text == "individual"
    assert priv.user_privilege_status.user_privilege_status_type.text == "Active"
    assert f.block_or_trap == () and f.user_id == ()
    body = N.encode(r)
    assert b"hana@example.jp" not in body                 # an address is never given

    r = await broker.send(m.LookupUser(user_id=_user()))
    assert r.user_id.user_identifier_value == CARD and r.user_optional_fields is None
    r = await broker.send(m.LookupUser(user_id=_user(), user_element_type=(m.SchemeValue("user id"),)))
    assert r.user_optional_fields.user_id == (m.UserId(CARD, agency_id=m.SchemeValue(US)),)
    assert r.user_optional_fields.name_information is None


async def test_lookup_user_tells_blocks_and_expired_cards(broker):
    asked = _types("User Privilege", "Block Or Trap")
    r = await broker.send(m.LookupUser(user_id=_user(BLOCKED), user_element_type=asked))
    assert [b.block_or_trap_type.text for b in r.user_optional_fields.block_or_trap] == ["Block Hold"]
    assert r.user_optional_fields.user_privilege[0].user_privilege_status.user_privilege_status_type.text == "Blocked"
    r = await broker.send(m.LookupUser(user_id=_user(EXPIRED), user_element_type=asked))
    assert [b.block_or_trap_type.text for b in r.user_optional_fields.block_or_trap] == ["Block Check Out",
                                                                                      "Block Hold"]
    priv = r.user_optional_fields.user_privilege[0]
    assert priv.user_privilege_status.user_privilege_status_type.text == "Expired"
    assert priv.valid_to_date.date() == NOW.date() - timedelta(days=1)


async def test_lookup_user_problems(broker):
    await broker.problem(m.LookupUser(user_id=_user("0000")), LookupUserError.UNKNOWN_USER, "UserIdentifierValue")
    # a patron of a system the client may not act on does not exist for it
    await broker.problem(m.LookupUser(user_id=_user(KOMAE)), LookupUserError.UNKNOWN_USER)
    await broker.problem(m.LookupUser(authentication_input=(m.AuthenticationInput(
        CARD, m.SchemeValue("text/plain"), m.SchemeValue("Barcode Id")),)), General.NEEDED_DATA_MISSING, "UserId")
    await broker.problem(m.LookupUser(user_id=_user(), user_element_type=(m.SchemeValue("Shoe Size"),)),
                         Messaging.UNKNOWN_VALUE_FROM_KNOWN_SCHEME, "UserElementType")


async def test_each_client_sees_only_its_own_systems(broker):
    header = Broker.header("KB")
    r = await broker.post(N.encode(m.LookupUser(initiation_header=header, user_id=_user(KOMAE))), "kb-token")
    assert r.user_id.user_identifier_value == KOMAE
    r = await broker.post(N.encode(m.LookupUser(initiation_header=header, user_id=_user(CARD))), "kb-token")
    assert r.problem[0].problem_type == LookupUserError.UNKNOWN_USER
    r = await broker.post(N.encode(m.CheckOutItem(initiation_header=header, user_id=_user(KOMAE),
                                                  item_id=_item("H-0001"))), "kb-token")
    assert r.problem[0].problem_type == CheckOutItemError.UNKNOWN_ITEM


# ----------------------------------------------------------------- AcceptItem

def _accept(request_id: str = "RS-77", card: str = CARD, barcode: str | None = "LENDER-001", **kw) -> m.AcceptItem:
    kw.setdefault("requested_action_type", m.REQUESTED_ACTION_TYPES["Hold For Pickup And Notify"])
    kw.setdefault("pickup_location", m.SchemeValue("naka"))
    return m.AcceptItem(
        request_id=m.RequestId(request_id, agency_id=m.SchemeValue("RS")), user_id=_user(card),
        item_id=_item(barcode) if barcode else None,
        date_for_return=datetime(2026, 12, 31, 23, 59, tzinfo=JST),
        item_optional_fields=m.ItemOptionalFields(m.BibliographicDescription(
            author="佐藤", title="遠くの大学の本")), **kw)


async def test_accept_item_puts_the_partner_copy_on_the_hold_shelf_once(broker):
    circ = broker.circ
    r = await broker.send(_accept())
    assert r.request_id == m.RequestId("RS-77", agency_id=m.SchemeValue("RS"))
    assert r.item_id == m.ItemId("LENDER-001", agency_id=m.SchemeValue(US))
    req = await one_row(circ, s.requests, s.requests.c.kind == "partner")
    assert (req.state, req.pickup_branch, req.library, req.title) == ("ON_HOLD_SHELF", "naka", "hiroshima",
                                                                     "遠くの大学の本 / 佐藤")
    assert req.title_id == broker_title_id(load(CONFIG, env={}).client("RS"), "RS-77")
    assert "2026-12-31" in req.memo and req.shelf_deadline is not None
    item = await one_row(circ, s.items, s.items.c.id == req.item_id)
    assert (item.barcode, item.ill, item.partner, item.status, item.current_branch) == (
        "LENDER-001", True, "ill-RS", "on_hold_shelf", "naka")
    notice = await one_row(circ, s.notices, s.notices.c.request_id == req.id)
    assert notice.kind == "hold_ready"
    trail = [(e.event, e.actor_role, e.actor) for e in await _events(circ, request_id=req.id)]
    assert trail == [("PLACE", "staff", "ncip:RS"), ("VALIDATE", "system", "ncip:RS"),
                     ("SEND_TO_PARTNER", "system", "ncip:RS"), ("PARTNER_SHIPPED", "partner", "ncip:RS"),
                     ("RECEIVE_AT_PICKUP", "staff", "ncip:RS")]

    again = await broker.send(_accept())                    # the broker did not get our answer: again
    assert again == r
    assert len(await rows(circ, s.requests)) == 1 and len(await rows(circ, s.items, s.items.c.ill)) == 1
    assert len(await _events(circ, request_id=req.id)) == len(trail)


async def test_accept_item_assigns_a_barcode_when_the_lenders_is_taken_or_missing(broker):
    r = await broker.send(_accept("RS-1", barcode="H-0001"))
    assert r.item_id.item_identifier_value.startswith("NCIP")
    r2 = await broker.send(_accept("RS-2", barcode=None))
    assert r2.item_id.item_identifier_value.startswith("NCIP") and r2.item_id != r.item_id
    r3 = await broker.send(_accept("RS-3", barcode="L" * 65))
    assert r3.item_id.item_identifier_value.startswith("NCIP")
    assert len(await rows(broker.circ, s.items, s.items.c.ill)) == 3
    assert (await one_row(broker.circ, s.items, s.items.c.barcode == "H-0001")).ill is False


async def test_two_copies_arriving_at_once_with_one_barcode_both_get_in(broker):
    first, second = await asyncio.gather(broker.send(_accept("RS-31", barcode="SAME-1")),
                                         broker.send(_accept("RS-32", card=OTHER, barcode="SAME-1",
                                                             pickup_location=m.SchemeValue("central"))))
    assert not first.problem and not second.problem
    assert sorted([first.item_id.item_identifier_value, second.item_id.item_identifier_value])[1] == "SAME-1"
    assert {r.state for r in await rows(broker.circ, s.requests)} == {"ON_HOLD_SHELF"}


async def test_accept_item_problems(broker):
    await broker.problem(_accept(card="0000"), AcceptItemError.UNKNOWN_USER, "UserIdentifierValue")
    await broker.problem(_accept(card=KOMAE), AcceptItemError.UNKNOWN_USER)
    await broker.problem(_accept(pickup_location=m.SchemeValue("komae-central")),
                         AcceptItemError.ELEMENT_RULE_VIOLATED, "PickupLocation")
    await broker.problem(_accept(requested_action_type=m.REQUESTED_ACTION_TYPES["Circulate"]),
                         AcceptItemError.ELEMENT_RULE_VIOLATED, "RequestedActionType")
    await broker.problem(_accept(requested_action_type=m.SchemeValue("Put It Anywhere")),
                         Messaging.UNKNOWN_VALUE_FROM_KNOWN_SCHEME, "RequestedActionType")
    await broker.problem(_accept(card=OTHER, pickup_location=None), General.NEEDED_DATA_MISSING, "PickupLocation")
    msg = _accept()
    await broker.problem(m.AcceptItem(request_id=msg.request_id, requested_action_type=msg.requested_action_type,
                                      user_id=_user(), non_returnable_flag=True),
                         AcceptItemError.CANNOT_ACCEPT_ITEM, "NonReturnableFlag")
    assert await rows(broker.circ, s.requests) == []
    await broker.send(_accept("RS-9"))
    await broker.problem(_accept("RS-9", card=OTHER), AcceptItemError.ELEMENT_RULE_VIOLATED, "RequestIdentifierValue")
    assert len(await rows(broker.circ, s.requests)) == 1


# ----------------------------------------------------------------- CheckOutItem / CheckInItem

async def test_the_broker_lends_and_takes_back_the_partner_copy_at_its_counter(broker):
    circ = broker.circ
    await broker.send(_accept())
    r = await broker.send(m.CheckOutItem(user_id=_user(), item_id=_item("LENDER-001")))
    loan = await one_row(circ, s.loans, s.loans.c.returned_at.is_(None), s.loans.c.branch == "naka")
    assert loan.channel == "counter"
    assert r.date_due.date() == loan.due and r.user_id.user_identifier_value == CARD
    req = await one_row(circ, s.requests, s.requests.c.kind == "partner")
    assert req.state == "ON_LOAN" and loan.request_id == req.id

    r = await broker.send(m.CheckInItem(item_id=_item("LENDER-001"), user_element_type=_types("User Id")))
    assert r.user_id.user_identifier_value == CARD
    assert r.routing_information.routing_instructions == "Send back to the lending library"
    dest = r.routing_information.destination.location.location_name.location_name_instance[0]
    assert dest.location_name_value == "ill-RS-ill"
    req = await one_row(circ, s.requests, s.requests.c.id == req.id)
    assert req.state == "AWAITING_LOAN_COMPLETED"
    checkout = await one_row(circ, s.events, s.events.c.event == "CHECK_OUT", s.events.c.loan_id == loan.id)
    assert (checkout.actor_role, checkout.actor) == ("staff", "ncip:RS")


async def test_check_out_and_in_of_our_own_copy(broker):
    circ = broker.circ
    r = await broker.send(m.CheckOutItem(user_id=_user(), item_id=_item("H-0100")))
    loan = await one_row(circ, s.loans, s.loans.c.returned_at.is_(None), s.loans.c.branch == "central")
    assert r.date_due.date() == loan.due == NOW.date() + timedelta(days=14)
    assert r.item_id == m.ItemId("H-0100", agency_id=m.SchemeValue(US))
    await broker.problem(m.CheckOutItem(user_id=_user(OTHER), item_id=_item("H-0100")),
                         CheckOutItemError.RESOURCE_CANNOT_BE_PROVIDED)
    r = await broker.send(m.CheckInItem(item_id=_item("H-0100")))
    assert r.user_id is None                         # not asked for: the borrower is not named
    assert r.routing_information.routing_instructions == "Reshelve"
    assert (await one_row(circ, s.loans, s.loans.c.id == loan.id)).returned_at is not None
    await broker.problem(m.CheckInItem(item_id=_item("H-0100")), CheckInItemError.ITEM_NOT_CHECKED_OUT,
                         "ItemIdentifierValue")


async def test_check_out_problems(broker):
    await broker.problem(m.CheckOutItem(user_id=_user("0000"), item_id=_item("H-0001")),
                         CheckOutItemError.UNKNOWN_USER)
    await broker.problem(m.CheckOutItem(user_id=_user(), item_id=_item("NOPE")), CheckOutItemError.UNKNOWN_ITEM,
                         "ItemIdentifierValue")
    await broker.problem(m.CheckOutItem(user_id=_user(), item_id=_item("K-0001")), CheckOutItemError.UNKNOWN_ITEM)
    p = await broker.problem(m.CheckOutItem(user_id=_user(EXPIRED), item_id=_item("H-0001")),
                             CheckOutItemError.USER_BLOCKED)
    assert p.problem_detail.startswith("card_expired")
    await broker.problem(m.CheckOutItem(user_id=_user(), item_id=_item("I-0002")),      # an Iizuka copy
                         CheckOutItemError.USER_INELIGIBLE_TO_CHECK_OUT_THIS_ITEM)
    await broker.problem(m.CheckOutItem(user_id=_user(BLOCKED), item_id=_item("I-0001")),   # on loan already
                         CheckOutItemError.RESOURCE_CANNOT_BE_PROVIDED)
    await broker.problem(m.CheckInItem(item_id=_item("NOPE")), CheckInItemError.UNKNOWN_ITEM)
    await broker.problem(m.CheckInItem(item_id=_item("K-0001")), CheckInItemError.UNKNOWN_ITEM)
    assert [loan.item_id for loan in await rows(broker.circ, s.loans)] == [
        (await one_row(broker.circ, s.items, s.items.c.barcode == "I-0001")).id]      # only the Iizuka loan


# ----------------------------------------------------------------- RequestItem / CancelRequestItem

def _request(card: str = CARD, *, item: str | None = "H-0002", rid: str | None = "RS-REQ-1", **kw) -> m.RequestItem:
    kw.setdefault("request_type", m.REQUEST_TYPES["Hold"])
    kw.setdefault("request_scope_type", m.REQUEST_SCOPE_TYPES["Item"])
    return m.RequestItem(user_id=_user(card), item_id=(_item(item),) if item else (),
                         request_id=m.RequestId(rid) if rid else None, **kw)


async def test_request_item_places_a_hold_and_a_repeat_changes_nothing(broker):
    circ = broker.circ
    r = await broker.send(_request(pickup_location=m.SchemeValue("minami")))
    req = await one_row(circ, s.requests)
    assert r.request_id == m.RequestId(str(req.id), agency_id=m.SchemeValue(US))
    assert r.request_scope_type == m.REQUEST_SCOPE_TYPES["Bibliographic Item"]
    assert (req.title_id, req.state, req.pickup_branch, req.channel) == (TITLE, "QUEUED", "minami", "counter")
    assert req.memo == request_marker(load(CONFIG, env={}).client("RS"), "RS-REQ-1")
    again = await broker.send(_request(pickup_location=m.SchemeValue("minami")))
    assert again == r and len(await rows(circ, s.requests)) == 1
    await broker.problem(_request(rid="RS-REQ-2"), RequestItemError.DUPLICATE_REQUEST)

    by_isbn = m.RequestItem(user_id=_user(OTHER), request_type=m.REQUEST_TYPES["Hold"],
                            request_scope_type=m.REQUEST_SCOPE_TYPES["Bibliographic Item"],
                            bibliographic_id=(m.BibliographicId(m.BibliographicItemId(
                                "978-4-00-000002-4", m.SchemeValue("ISBN"))),),
                            pickup_location=m.SchemeValue("central"))
    r = await broker.send(by_isbn)
    assert (await one_row(circ, s.requests, s.requests.c.id == int(r.request_id.request_identifier_value))
            ).title_id == "isbn:9784000000024"


async def test_request_item_problems(broker):
    p = await broker.problem(_request(BLOCKED, item="I-0002", pickup_location=m.SchemeValue("iizuka")),
                             RequestItemError.USER_BLOCKED)
    assert p.problem_detail.startswith("blocked_overdue")
    await broker.problem(_request(item="NOPE"), RequestItemError.UNKNOWN_ITEM, "ItemIdentifierValue")
    await broker.problem(_request("0000"), RequestItemError.UNKNOWN_USER)
    await broker.problem(_request(KOMAE), RequestItemError.UNKNOWN_USER)
    await broker.problem(_request(request_type=m.REQUEST_TYPES["Loan"]), RequestItemError.ELEMENT_RULE_VIOLATED,
                         "RequestType")
    await broker.problem(_request(request_type=m.SchemeValue("Teleport")), Messaging.UNKNOWN_VALUE_FROM_KNOWN_SCHEME,
                         "RequestType")
    await broker.problem(_request(pickup_location=m.SchemeValue("nowhere")), RequestItemError.ELEMENT_RULE_VIOLATED,
                         "PickupLocation")
    await broker.problem(_request(OTHER), General.NEEDED_DATA_MISSING, "PickupLocation")   # no default pickup
    assert await rows(broker.circ, s.requests) == []


async def test_cancel_request_item_by_each_kind_of_id(broker):
    circ = broker.circ
    placed = await broker.send(_request())
    ours = placed.request_id
    r = await broker.send(m.CancelRequestItem(user_id=_user(), request_id=ours, request_type=m.REQUEST_TYPES["Hold"]))
    assert r.request_id == ours and r.user_id.user_identifier_value == CARD
    req = await one_row(circ, s.requests, s.requests.c.id == int(ours.request_identifier_value))
    assert req.state == "CANCELLED"
    await broker.problem(m.CancelRequestItem(user_id=_user(), request_id=ours, request_type=m.REQUEST_TYPES["Hold"]),
                         CancelRequestItemError.REQUEST_ALREADY_PROCESSED)

    await broker.send(_request(rid="RS-REQ-5"))                         # the client's own id
    r = await broker.send(m.CancelRequestItem(user_id=_user(), request_id=m.RequestId("RS-REQ-5"),
                                              request_type=m.REQUEST_TYPES["Hold"]))
    assert r.request_id == m.RequestId("RS-REQ-5")
    await broker.send(_request(rid=None, pickup_location=m.SchemeValue("central")))  # then by item
    r = await broker.send(m.CancelRequestItem(user_id=_user(), item_id=_item("H-0001"),
                                              request_type=m.REQUEST_TYPES["Hold"]))
    assert r.item_id == _item("H-0001")
    assert [x.state for x in await rows(circ, s.requests, order_by=s.requests.c.id)] == ["CANCELLED"] * 3
    assert {e.actor for e in await _events(circ, event="CANCEL")} == {"ncip:RS"}


async def test_cancelling_an_accepted_copy_sends_it_back(broker):
    circ = broker.circ
    await broker.send(_accept("RS-88"))
    r = await broker.send(m.CancelRequestItem(user_id=_user(), request_id=m.RequestId("RS-88", m.SchemeValue("RS")),
                                              request_type=m.REQUEST_TYPES["Loan"]))
    assert r.problem == ()
    req = await one_row(circ, s.requests, s.requests.c.kind == "partner")
    assert req.state == "CANCELLED"
    item = await one_row(circ, s.items, s.items.c.id == req.item_id)
    assert item.status == "in_transit"
    transit = await one_row(circ, s.transits, s.transits.c.item_id == item.id)
    assert (transit.from_branch, transit.to_branch) == ("naka", "ill-RS-ill")


async def test_cancel_problems(broker):
    await broker.send(_request())
    hold = m.REQUEST_TYPES["Hold"]
    await broker.problem(m.CancelRequestItem(user_id=_user(), request_id=m.RequestId("999999"), request_type=hold),
                         CancelRequestItemError.UNKNOWN_REQUEST, "RequestIdentifierValue")
    req = await one_row(broker.circ, s.requests)
    # another patron's request is not this user's to cancel
    await broker.problem(m.CancelRequestItem(user_id=_user(OTHER), request_id=m.RequestId(str(req.id)),
                                             request_type=hold), CancelRequestItemError.UNKNOWN_REQUEST)
    await broker.problem(m.CancelRequestItem(user_id=_user(), item_id=_item("NOPE"), request_type=hold),
                         CancelRequestItemError.UNKNOWN_ITEM)
    await broker.problem(m.CancelRequestItem(user_id=_user(), item_id=_item("H-0100"), request_type=hold),
                         CancelRequestItemError.UNKNOWN_REQUEST)
    await broker.problem(m.CancelRequestItem(user_id=_user(KOMAE), item_id=_item("H-0001"), request_type=hold),
                         CancelRequestItemError.UNKNOWN_USER)
    assert (await one_row(broker.circ, s.requests)).state == "QUEUED"


# ----------------------------------------------------------------- the HTTP shell

async def test_wrong_or_missing_token_gets_a_problem_and_changes_nothing(broker):
    for token in ("wrong", None, "kb-token"):
        p = await broker.problem(m.CheckOutItem(user_id=_user(), item_id=_item("H-0100")),
                                 General.AGENCY_AUTHENTICATION_FAILED, token=token)
        assert p.problem_element == "Authorization"
    r = await broker.post(N.encode(m.CheckOutItem(initiation_header=Broker.header("ZZ"), user_id=_user(),
                                                  item_id=_item("H-0100"))))
    assert r.problem[0].problem_type == General.UNKNOWN_AGENCY
    r = await broker.post(N.encode(m.CheckOutItem(initiation_header=Broker.header(to="JP-9"), user_id=_user(),
                                                  item_id=_item("H-0100"))))
    assert r.problem[0].problem_element == "ToAgencyId"
    assert await rows(broker.circ, s.loans, s.loans.c.branch == "central") == []


async def test_a_message_without_header_is_taken_by_its_token(broker):
    r = await broker.post(N.encode(m.LookupUser(user_id=_user())))
    assert r.user_id.user_identifier_value == CARD and r.response_header is None


@pytest.mark.parametrize("body, problem_type", [
    (b"<NCIPMessage", Messaging.INVALID_MESSAGE_SYNTAX_ERROR),
    (b"\x00\x01binary", Messaging.INVALID_MESSAGE_SYNTAX_ERROR),
    (f'<NCIPMessage xmlns="{m.NS}"><Teleport/></NCIPMessage>'.encode(), Messaging.UNKNOWN_SERVICE),
    (N.encode(m.CheckInItemResponse(item_id=_item("B"))), Messaging.PROTOCOL_ERROR),
])
async def test_malformed_bodies_get_a_top_level_problem(broker, body, problem_type):
    r = await broker.post(body)
    assert isinstance(r, m.ProblemResponse) and r.service is None
    assert r.problem[0].problem_type == problem_type


async def test_a_service_we_do_not_offer_and_a_broken_message(broker):
    r = await broker.post(f'<NCIPMessage xmlns="{m.NS}"><RenewItem><ItemId/></RenewItem></NCIPMessage>'.encode())
    assert (r.service, r.problem[0].problem_type) == ("RenewItem", General.UNSUPPORTED_SERVICE)
    r = await broker.post(f'<NCIPMessage xmlns="{m.NS}"><CheckOutItem><UserId><UserIdentifierValue>{CARD}'
                          f'</UserIdentifierValue></UserId></CheckOutItem></NCIPMessage>'.encode())
    assert isinstance(r, m.CheckOutItemResponse)
    assert (r.problem[0].problem_type, r.problem[0].problem_element) == (Messaging.INVALID_MESSAGE_SYNTAX_ERROR,
                                                                         "ItemId")


async def test_wrong_method_and_oversized_body(broker):
    r = await broker.post(b"", method="GET", status=405)
    assert r.problem[0].problem_type == Messaging.PROTOCOL_ERROR
    r = await broker.post(b"<" + b"x" * MAX_BODY, status=413)
    assert r.problem[0].problem_type == Messaging.INVALID_MESSAGE_SYNTAX_ERROR


async def test_an_unreachable_database_answers_503_with_a_temporary_failure(tmp_path):
    from circ_helpers import aiosqlite_threads_joined
    async with aiosqlite_threads_joined():
        await _unreachable_database_answers_503(tmp_path)


async def _unreachable_database_answers_503(tmp_path):
    circ = Circulation(Database(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/circ.db"), clock=Clock(NOW))
    app = web.Application()
    add_routes(app, NcipNode(circ, load(CONFIG, env={})))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session:
            b = Broker(session, f"http://127.0.0.1:{port}/ncip", circ)
            for msg in (m.LookupUser(user_id=_user()), m.CheckInItem(item_id=_item("H-0001"))):
                async with session.post(b.url, data=N.encode(dataclasses.replace(
                        msg, initiation_header=Broker.header())),
                                        headers={"Authorization": "Bearer rs-token"}) as resp:
                    data = await resp.read()
                    assert resp.status == 503 and resp.headers["Retry-After"] == "30"
                assert_valid(data)
                r = N.decode(data)
                assert type(r) is m.RESPONSE_FOR[type(msg)]
                assert r.problem[0].problem_type == General.TEMPORARY_PROCESSING_FAILURE
    finally:
        await runner.cleanup()
        await circ.db.dispose()


async def test_the_node_refuses_clients_of_systems_that_do_not_exist(db_url):
    circ = await new_circulation(db_url)
    try:
        with pytest.raises(ValueError, match="atlantis"):
            NcipNode(circ, load({"ncip": {"agency_id": US, "clients": {
                "X": {"token": "t", "systems": ["atlantis"]}}}}, env={}))
        with pytest.raises(ValueError, match="library: komae"):
            NcipNode(circ, load({"ncip": {"agency_id": US, "clients": {
                "X": {"token": "t", "systems": ["hiroshima"], "library": "komae"}}}}, env={}))
    finally:
        await circ.db.dispose()


async def test_two_check_outs_of_one_copy_at_once_make_one_loan(broker):
    """Two check-outs of the same copy at once: one loan, the other refused with a
    Problem (never a 500)."""
    results = await asyncio.gather(*(broker.send(m.CheckOutItem(user_id=_user(card), item_id=_item("H-0100")))
                                     for card in (CARD, OTHER)))
    assert sorted(bool(r.problem) for r in results) == [False, True]
    assert len(await rows(broker.circ, s.loans, s.loans.c.returned_at.is_(None),
                          s.loans.c.branch == "central")) == 1



# ----------------------------------------------------------------- random messages into the engine

def test_random_messages_of_a_known_client_always_get_a_valid_response(tmp_path):
    """Messages the schema allows, with values drawn among our cards, barcodes, branches
    and ids or made up, sent one after another to the node on one database: each gets a
    response valid against the official schema (a Problem or not), never an exception."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from test_ncip_codec import _of

    loop = asyncio.new_event_loop()
    circ = loop.run_until_complete(new_circulation(f"sqlite+aiosqlite:///{tmp_path}/fuzz.db"))

    async def seed():
        for card, lib in ((CARD, "hiroshima"), (OTHER, "hiroshima"), (BLOCKED, "iizuka"), (KOMAE, "komae")):
            await add_patron(circ, card, lib, email="x@example.jp", default_contact_method="email",
                             default_pickup_branch={"hiroshima": "central", "iizuka": "iizuka"}.get(lib))
        for barcode, lib, branch in (("H-0001", "hiroshima", "central"), ("H-0002", "hiroshima", "naka"),
                                     ("I-0002", "iizuka", "iizuka"), ("K-0001", "komae", "komae-central")):
            await add_item(circ, barcode, TITLE, lib, branch)

    loop.run_until_complete(seed())
    config = load(CONFIG, env={})
    node = NcipNode(circ, config)
    client = config.client("RS")
    cards = st.sampled_from([CARD, OTHER, BLOCKED, KOMAE, "", " "]) | st.text(max_size=8)
    barcodes = st.sampled_from(["H-0001", "H-0002", "I-0002", "K-0001", "LENDER-1", "NCIP00000001"]) | st.text(
        max_size=8)
    branches = st.sampled_from(["central", "naka", "iizuka", "komae-central", "mobile"]) | st.text(max_size=6)
    ids = st.sampled_from(["1", "2", "3", "RS-1", "RS-2"]) | st.text(max_size=8)

    def often(data) -> bool:
        return data.draw(st.integers(0, 4)) < 4

    def retarget(msg, data):
        changes = {}
        if hasattr(msg, "user_id") and (msg.user_id is not None or often(data)):
            changes["user_id"] = m.UserId(data.draw(cards))
            if hasattr(msg, "authentication_input"):
                changes["authentication_input"] = ()
        if hasattr(msg, "user_element_type") and often(data):
            changes["user_element_type"] = tuple(data.draw(st.lists(st.sampled_from(
                list(m.USER_ELEMENT_TYPES.values())), max_size=4)))
        if isinstance(getattr(msg, "item_id", None), m.ItemId):
            changes["item_id"] = m.ItemId(data.draw(barcodes))
        elif isinstance(getattr(msg, "item_id", None), tuple) and msg.item_id:
            changes["item_id"] = (m.ItemId(data.draw(barcodes)),)
        if hasattr(msg, "pickup_location") and (msg.pickup_location is not None or often(data)):
            changes["pickup_location"] = m.SchemeValue(data.draw(branches))
        if getattr(msg, "request_id", None) is not None:
            changes["request_id"] = m.RequestId(data.draw(ids))
        for name, values in (("requested_action_type", m.REQUESTED_ACTION_TYPES),
                             ("request_type", m.REQUEST_TYPES), ("request_scope_type", m.REQUEST_SCOPE_TYPES)):
            if getattr(msg, name, None) is not None and often(data):
                usual = [v for v in values.values() if v.text in ("Hold", "Hold For Pickup")]
                changes[name] = data.draw(st.sampled_from(usual + list(values.values())))
        return dataclasses.replace(msg, **changes)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.filter_too_much])
    @given(st.sampled_from(m.INITIATIONS).flatmap(_of), st.data())
    def one_message(msg, data):
        msg = retarget(msg, data)
        response = loop.run_until_complete(node.respond(msg, client))
        assert type(response) is m.RESPONSE_FOR[type(msg)]
        assert_valid(N.encode(response))

    try:
        one_message()
    finally:
        loop.run_until_complete(circ.db.dispose())
        loop.close()


def test_the_routing_kind_of_a_copy_going_back_is_the_partner_legs():
    from circulation import ncip, partners
    from circulation.ill import requester
    assert ncip.TO_LENDER == partners.TO_PARTNER and requester.KIND == partners.KIND
