"""Partners that speak dialects of ISO 18626, played by a test double of their endpoint
(tests/ill_partner_double.py) that validates every message we send against the
official v1.2 schema."""
from __future__ import annotations

import pytest

from circulation import schema as s
from circulation.ill import requester, supplier
from circulation.ill.titles import Title
from connectors import iso18626 as I
from connectors.iso18626 import model as m
from ill_helpers import StaticTitles, add_item, add_patron, one_row, peers, pump, rows
from ill_partner_double import PartnerDouble

TITLE = "isbn:9784000000024"
CARD = "3100000002"
US = m.AgencyId.of("ISIL", "JP-1000000")


@pytest.fixture
async def double():
    d = PartnerDouble(m.AgencyId.of("ISIL", "JP-5000000"), our_token="v-to-us", its_token="us-to-v")
    await d.start()
    yield d
    await d.stop()
    assert not d.invalid, d.invalid[0]
    assert d.unauthorised == 0


def _spec(tmp_path, double, dialect: str, **kw):
    kw.setdefault("titles", StaticTitles(Title(TITLE, title="和書", isbn="9784000000024",
                                               libraries=frozenset({"vendor-u"}))))
    return dict(name="A", db_url=f"sqlite+aiosqlite:///{tmp_path}/a.db", agency="ISIL:JP-1000000",
                partners={"JP-5000000": {"url": double.url, "token": "us-to-v", "accept_token": "v-to-us",
                                         "library": "vendor-u", "dialect": dialect}}, **kw)


async def test_conditions_in_a_note_are_an_offer_and_agreed_with_a_notification(tmp_path, double):
    async with peers(_spec(tmp_path, double, "conditions-in-note")) as (a,):
        await add_patron(a.circ, CARD, "hiroshima")
        placed = await requester.place(a.ill, card=CARD, title_id=TITLE, pickup_branch="central", actor="hq")
        assert placed.ok
        await pump(a)
        (req,) = double.of(m.Request)
        rid = req.header.requesting_agency_request_id
        now = a.ill.now()
        h = I.header(requesting=US, supplying=double.agency, request_id=rid, now=now)
        conf = await double.send(a.url, I.supplying_message(
            h, m.ReasonForMessage.REQUEST_RESPONSE, m.Status.WILL_SUPPLY, now=now,
            note="#ReShareAddLoanCondition# LibraryUseOnly"))
        assert conf.confirmation_header.message_status is m.MessageStatus.OK
        leg = await one_row(a.circ, s.ill_legs)
        assert leg.state == "RETRY_POSSIBLE" and '"condition": "LibraryUseOnly"' in leg.offer
        assert (await one_row(a.circ, s.requests)).state == "CONDITION_PENDING"
        assert (await requester.accept_offer(a.ill, leg_id=leg.id, actor="hq")).ok
        await pump(a)
        (agree,) = double.of(m.RequestingAgencyMessage)
        assert agree.action is m.Action.NOTIFICATION
        assert agree.note.startswith("#ReShareLoanConditionAgreeResponse#")
        assert (await one_row(a.circ, s.requests)).state == "WILL_SUPPLY"
        conf = await double.send(a.url, I.supplying_message(
            h, m.ReasonForMessage.STATUS_CHANGE, m.Status.LOANED, now=now,
            delivery=m.DeliveryInfo(date_sent=now, item_id="V-77")), lenient=True)
        assert conf.confirmation_header.message_status is m.MessageStatus.OK
        assert (await one_row(a.circ, s.requests)).state == "SHIPPED"
        assert (await one_row(a.circ, s.items, s.items.c.ill.is_(True))).barcode == "V-77"


async def test_a_partner_that_refuses_expect_to_supply_never_gets_it(tmp_path, double):
    spec = _spec(tmp_path, double, "no-expect-to-supply", systems=["komae"], titles=None)
    async with peers(spec) as (b,):
        await add_item(b.circ, "K0002", TITLE, "komae", "komae-central")
        now = b.ill.now()
        req = m.Request(
            header=I.header(requesting=double.agency, supplying=US, request_id="V-REQ-1", now=now),
            bibliographic_info=m.BibliographicInfo(title="和書", bibliographic_item_id=(
                m.BibliographicItemId("978-4-00-000002-4", m.SchemeValue("ISBN")),)),
            service_info=m.ServiceInfo(service_type=m.ServiceType.LOAN))
        conf = await double.send(b.url, req, lenient=True)
        assert conf.confirmation_header.message_status is m.MessageStatus.OK
        await pump(b)
        sup = await one_row(b.circ, s.ill_supplies)
        assert sup.state == "EXPECT_TO_SUPPLY" and sup.title_id == TITLE
        assert double.of(m.SupplyingAgencyMessage) == []          # no ExpectToSupply for this vendor
        assert (await supplier.will_supply(b.ill, supply_id=sup.id, actor="komae.staff", library="komae")).ok
        await pump(b)
        (ws,) = double.of(m.SupplyingAgencyMessage)
        assert ws.status_info.status is m.Status.WILL_SUPPLY
        assert ws.header.supplying_agency_request_id == f"S{sup.id}"
        # the vendor asks for the status: answered with the current one
        conf = await double.send(b.url, I.requesting_message(
            I.header(requesting=double.agency, supplying=US, request_id="V-REQ-1", now=now),
            m.Action.STATUS_REQUEST))
        assert conf.confirmation_header.message_status is m.MessageStatus.OK
        await pump(b)
        answer = double.of(m.SupplyingAgencyMessage)[-1]
        assert answer.message_info.reason_for_message is m.ReasonForMessage.STATUS_REQUEST_RESPONSE
        assert answer.status_info.status is m.Status.WILL_SUPPLY
        # ShippedForward is not offered
        conf = await double.send(b.url, I.requesting_message(
            I.header(requesting=double.agency, supplying=US, request_id="V-REQ-1", now=now),
            m.Action.SHIPPED_FORWARD))
        assert conf.error_data.error_type is m.ErrorType.UNSUPPORTED_ACTION_TYPE
        assert len(await rows(b.circ, s.ill_messages, s.ill_messages.c.direction == "in")) == 3


async def test_a_request_for_a_title_nobody_holds_is_unfilled_not_held_at_once(tmp_path, double):
    async with peers(_spec(tmp_path, double, "standard", systems=["komae"], titles=None)) as (b,):
        now = b.ill.now()
        req = m.Request(
            header=I.header(requesting=double.agency, supplying=US, request_id="V-REQ-2", now=now),
            bibliographic_info=m.BibliographicInfo(title="ない本", bibliographic_item_id=(
                m.BibliographicItemId("9780000000000", m.SchemeValue("ISBN")),)),
            service_info=m.ServiceInfo(service_type=m.ServiceType.LOAN))
        conf = await double.send(b.url, req)
        assert conf.confirmation_header.message_status is m.MessageStatus.OK
        await pump(b)
        (unfilled,) = double.of(m.SupplyingAgencyMessage)
        assert unfilled.status_info.status is m.Status.UNFILLED
        assert unfilled.message_info.reason_unfilled.text == "NotHeld"
        assert (await one_row(b.circ, s.ill_supplies)).state == "UNFILLED"
