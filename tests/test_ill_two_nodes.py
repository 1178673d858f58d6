"""Inter-library loan between gateway nodes over real HTTP on 127.0.0.1.

Node A is the Hiroshima city network (the requester of its patrons), node B a partner
network whose Komae system lends (the supplier), node C a partner holding nothing.
Each node has its own circulation database and ISO 18626 endpoint; A runs on SQLite and
on PostgreSQL, B and C on SQLite. Every message that crosses is validated against the
official v1.2 schema (tests/ill_helpers.py)."""
from __future__ import annotations

from datetime import timedelta

import aiohttp
import pytest

from circulation import holds, jobs, loans, partners, routing
from circulation import schema as s
from circulation.ill import requester, supplier
from circulation.ill.titles import Title
from connectors import iso18626 as I
from connectors.iso18626 import model as m
from ill_helpers import StaticTitles, add_item, add_patron, one_row, peers, pump, rows
from iso18626_helpers import assert_valid
from live_server import free_port

TITLE = "isbn:9784000000017"
CARD = "3100000001"
A_ID, B_ID, C_ID, D_ID = "JP-1000000", "JP-2000000", "JP-3000000", "JP-4000000"


def _partner(port: int, token: str, accept: str, **kw) -> dict:
    return {"url": f"http://127.0.0.1:{port}/iso18626", "token": token, "accept_token": accept, **kw}


@pytest.fixture
async def net(db_url, tmp_path):
    pa, pb, pc, pd = free_port(), free_port(), free_port(), free_port()
    titles = StaticTitles(Title(TITLE, title="図書館の歴史", author="山田太郎", isbn="9784000000017",
                                libraries=frozenset({"tokyo-u", "osaka-u", "nagoya-u"})))
    a_partners = {
        C_ID: _partner(pc, "a-to-c", "c-to-a", library="osaka-u", rota=1, name="大阪の大学"),
        B_ID: _partner(pb, "a-to-b", "b-to-a", library="tokyo-u", rota=2, name="東京の図書館"),
        D_ID: _partner(pd, "a-to-d", "d-to-a", library="nagoya-u", rota=3, name="名古屋（停止中）"),
    }
    specs = [
        dict(name="A", db_url=db_url, agency=f"ISIL:{A_ID}", partners=a_partners, port=pa, titles=titles,
             systems=["hiroshima"]),
        dict(name="B", db_url=f"sqlite+aiosqlite:///{tmp_path}/b.db", agency=f"ISIL:{B_ID}", port=pb,
             partners={A_ID: _partner(pa, "b-to-a", "a-to-b", library="hiroshima")}, systems=["komae"]),
        dict(name="C", db_url=f"sqlite+aiosqlite:///{tmp_path}/c.db", agency=f"ISIL:{C_ID}", port=pc,
             partners={A_ID: _partner(pa, "c-to-a", "a-to-c", library="hiroshima")}),
    ]
    async with peers(*specs) as (a, b, c):
        await add_patron(a.circ, CARD, "hiroshima", email="hana@example.jp", default_contact_method="email")
        await add_item(b.circ, "K0001", TITLE, "komae", "komae-central")
        yield a, b, c


async def _request(a):
    return await one_row(a.circ, s.requests, s.requests.c.kind == "partner")


async def _supply(b):
    return (await rows(b.circ, s.ill_supplies, order_by=s.ill_supplies.c.id))[-1]


async def _place(a, **kw):
    kw.setdefault("supplier", B_ID)
    placed = await requester.place(a.ill, card=CARD, title_id=TITLE, pickup_branch="central", actor="hq.staff",
                                   **kw)
    assert placed.ok, placed
    return placed.request_id


async def _to_shipped(a, b, c):
    await _place(a)
    await pump(a, b, c)
    sup = await _supply(b)
    assert sup.state == "EXPECT_TO_SUPPLY"
    assert (await supplier.will_supply(b.ill, supply_id=sup.id, actor="komae.staff", library="komae")).ok
    await pump(a, b, c)
    assert (await _request(a)).state == "WILL_SUPPLY"
    out = await supplier.ship(b.ill, supply_id=sup.id, barcode="K0001", branch="komae-central",
                              actor="komae.staff", library="komae")
    assert out.ok, out
    await pump(a, b, c)
    return sup.id


async def _to_loan(a, b, c):
    sid = await _to_shipped(a, b, c)
    got = await partners.receive(a.circ, barcode="K0001", branch="central", actor="hq.staff")
    assert got.decision.allowed and got.routing.kind == routing.HOLD_SHELF
    await pump(a, b, c)
    out = await loans.check_out(a.circ, barcode="K0001", card=CARD, branch="central", role="staff",
                                actor="hq.staff")
    assert out.decision.allowed, out.decision
    return sid, out.loan_id


async def test_loan_and_return_at_the_pickup_branch(net):
    a, b, c = net
    sid, loan_id = await _to_loan(a, b, c)
    req = await _request(a)
    assert req.state == "ON_LOAN"
    item = await one_row(a.circ, s.items, s.items.c.id == req.item_id)
    assert item.barcode == "K0001" and item.ill            # the placeholder took the lender's item id
    leg = await one_row(a.circ, s.ill_legs, s.ill_legs.c.request_id == req.id)
    assert leg.state == "RECEIVED" and leg.due_at is not None and leg.supplier_rid == f"S{sid}"
    assert (await one_row(b.circ, s.ill_supplies, s.ill_supplies.c.id == sid)).state == "RECEIVED"
    # our copy is on loan to A as an institutional borrower at B
    bloan = await one_row(b.circ, s.loans, s.loans.c.returned_at.is_(None))
    borrower = await one_row(b.circ, s.patrons, s.patrons.c.id == bloan.patron_id)
    assert borrower.category == "institution" and A_ID in borrower.card_number

    back = await loans.check_in(a.circ, barcode="K0001", branch="central", role="staff", actor="hq.staff")
    assert back.decision.allowed
    assert (await _request(a)).state == "AWAITING_LOAN_COMPLETED"
    await pump(a, b, c)
    assert (await one_row(b.circ, s.ill_supplies, s.ill_supplies.c.id == sid)).state == "RETURN_SHIPPED"
    home = await loans.check_in(b.circ, barcode="K0001", branch="komae-central", role="staff", actor="komae")
    assert home.decision.allowed
    await pump(a, b, c)
    assert (await one_row(b.circ, s.ill_supplies, s.ill_supplies.c.id == sid)).state == "COMPLETED"
    assert (await _request(a)).state == "COMPLETED"
    # the whole conversation, in order, on both sides
    sent = [r.summary for r in await rows(a.circ, s.ill_messages, order_by=s.ill_messages.c.id)]
    assert sent == ["Request New", "RequestResponse ExpectToSupply", "StatusChange WillSupply",
                    "StatusChange Loaned", "Received", "ShippedReturn", "StatusChange LoanCompleted"]
    assert all(r.status in ("sent", "ok") for r in await rows(a.circ, s.ill_messages))


async def test_the_return_is_refused_at_another_branch(net):
    a, b, c = net
    await _to_loan(a, b, c)
    refused = await loans.check_in(a.circ, barcode="K0001", branch="naka", role="staff", actor="naka.staff")
    assert not refused.decision.allowed
    assert (await _request(a)).state == "ON_LOAN"
    await pump(a, b, c)
    assert (await _supply(b)).state == "RECEIVED"          # nothing went back to the lender


@pytest.mark.parametrize("yes", [True, False], ids=["yes", "no"])
async def test_renewal_across_iso18626(net, yes):
    a, b, c = net
    sid, loan_id = await _to_loan(a, b, c)
    before = await one_row(a.circ, s.loans, s.loans.c.id == loan_id)
    asked = await requester.request_renewal(a.ill, loan_id=loan_id, actor=CARD, card=CARD)
    assert asked.ok and asked.code == "renewal_pending"
    await pump(a, b, c)
    sup = await one_row(b.circ, s.ill_supplies, s.ill_supplies.c.id == sid)
    assert sup.state == "RENEW_REQUESTED" and sup.pending == "renew"
    out = await supplier.answer_renew(b.ill, supply_id=sid, yes=yes, actor="komae.staff", library="komae")
    assert out.ok
    await pump(a, b, c)
    after = await one_row(a.circ, s.loans, s.loans.c.id == loan_id)
    notes = {n.kind for n in await rows(a.circ, s.notices, s.notices.c.loan_id == loan_id)}
    if yes:
        bloan = await one_row(b.circ, s.loans, s.loans.c.id == sup.loan_id)
        assert after.due == bloan.due > before.due and after.renewals == 1
        assert "renewal_done" in notes
    else:
        assert after.due == before.due and "renewal_refused" in notes
    leg = await one_row(a.circ, s.ill_legs, s.ill_legs.c.partner == B_ID)
    assert leg.state == "RECEIVED"


async def test_recall_reaches_the_patron_and_stops_renewals(net):
    a, b, c = net
    sid, loan_id = await _to_loan(a, b, c)
    assert (await supplier.recall(b.ill, supply_id=sid, actor="komae.staff", library="komae")).ok
    await pump(a, b, c)
    assert (await _request(a)).state == "RECALLED"
    assert "loan_recalled" in {n.kind for n in await rows(a.circ, s.notices, s.notices.c.loan_id == loan_id)}
    refused = await requester.request_renewal(a.ill, loan_id=loan_id, actor=CARD, card=CARD)
    assert not refused.ok and refused.code == "recalled"


async def test_overdue_from_the_lender_reaches_the_patron(net):
    a, b, c = net
    sid, loan_id = await _to_loan(a, b, c)
    bloan = await one_row(b.circ, s.loans, s.loans.c.returned_at.is_(None))
    b.circ.clock.fixed = a.circ.clock.fixed = b.circ.clock.fixed.replace() + timedelta(days=40)
    assert bloan.due < b.circ.now().date()
    assert await jobs.mark_overdue(b.circ) >= 1
    await pump(a, b, c)
    assert "loan_overdue" in {n.kind for n in await rows(a.circ, s.notices, s.notices.c.loan_id == loan_id)}
    assert (await one_row(b.circ, s.ill_supplies, s.ill_supplies.c.id == sid)).overdue_sent
    await pump(a, b, c)          # sent once
    overdue = [r for r in await rows(b.circ, s.ill_messages) if "Overdue" in r.summary]
    assert len(overdue) == 1


@pytest.mark.parametrize("yes", [True, False], ids=["accepted", "refused"])
async def test_cancel_before_shipping_waits_for_the_answer(net, yes):
    a, b, c = net
    rid = await _place(a)
    await pump(a, b, c)
    d = await holds.cancel(a.circ, request_id=rid, role="staff", actor="hq.staff", channel="counter")
    assert d.allowed or d.code == "ill_cancel_requested", d
    assert (await _request(a)).state == "CANCEL_PENDING"
    await pump(a, b, c)
    sup = await _supply(b)
    assert sup.state == "CANCEL_REQUESTED" and sup.pending == "cancel"
    assert (await supplier.answer_cancel(b.ill, supply_id=sup.id, yes=yes, actor="komae.staff",
                                         library="komae")).ok
    await pump(a, b, c)
    assert (await _request(a)).state == ("CANCELLED" if yes else "WILL_SUPPLY")
    assert (await _supply(b)).state == ("CANCELLED" if yes else "WILL_SUPPLY")


async def test_cancel_after_shipping_sends_the_copy_back_on_arrival(net):
    a, b, c = net
    sid = await _to_shipped(a, b, c)
    rid = (await _request(a)).id
    out = await partners.cancel(a.circ, request_id=rid, role="staff", actor="hq.staff")
    assert out.decision.code == "cancel_on_arrival"
    await partners.receive(a.circ, barcode="K0001", branch="central", actor="hq.staff")
    assert (await _request(a)).state == "CANCELLED"
    await pump(a, b, c)
    assert (await one_row(b.circ, s.ill_supplies, s.ill_supplies.c.id == sid)).state == "RETURN_SHIPPED"
    await loans.check_in(b.circ, barcode="K0001", branch="komae-central", role="staff", actor="komae")
    await pump(a, b, c)
    assert (await one_row(b.circ, s.ill_supplies, s.ill_supplies.c.id == sid)).state == "COMPLETED"


async def test_unfilled_moves_to_the_next_lender_and_the_end_of_the_rota_is_seen(net):
    a, b, c = net
    rid = await _place(a, supplier=None)
    await pump(a, b, c)
    legs = await rows(a.circ, s.ill_legs, order_by=s.ill_legs.c.id)
    assert [(leg.partner, leg.state) for leg in legs] == [(C_ID, "UNFILLED"), (B_ID, "EXPECT_TO_SUPPLY")]
    assert (await one_row(c.circ, s.ill_supplies)).state == "UNFILLED"     # C holds nothing: NotHeld
    sup = await _supply(b)
    assert (await supplier.cannot_supply(b.ill, supply_id=sup.id, actor="komae.staff", library="komae")).ok
    await pump(a, b, c)
    # the third partner is down: its Request is not delivered and staff see it
    legs = await rows(a.circ, s.ill_legs, order_by=s.ill_legs.c.id)
    assert legs[-1].partner == D_ID and legs[-1].state == "SEND_FAILED" and legs[-1].last_error
    assert (await _request(a)).state == "SENT"
    assert (await requester.give_up(a.ill, leg_id=legs[-1].id, actor="hq.staff")).ok
    await pump(a, b, c)
    req = await _request(a)
    assert req.state == "UNFILLED" and req.id == rid
    assert "hold_cancelled" in {n.kind for n in await rows(a.circ, s.notices, s.notices.c.request_id == rid)}


async def test_retry_with_cost_is_accepted_by_staff(net):
    a, b, c = net
    await _place(a)
    await pump(a, b, c)
    first = await _supply(b)
    from decimal import Decimal
    out = await supplier.offer_retry(b.ill, supply_id=first.id, actor="komae.staff", library="komae",
                                     reason=m.ReasonRetry.COST_EXCEEDS_MAX_COST, cost=Decimal("1500"))
    assert out.ok
    await pump(a, b, c)
    assert (await _request(a)).state == "CONDITION_PENDING"
    leg = await one_row(a.circ, s.ill_legs, s.ill_legs.c.state == "RETRY_POSSIBLE")
    assert '"cost": "1500"' in leg.offer
    assert (await requester.accept_offer(a.ill, leg_id=leg.id, actor="hq.staff")).ok
    await pump(a, b, c)
    retry = await _supply(b)
    assert retry.id != first.id and retry.state == "EXPECT_TO_SUPPLY"
    assert '"max_cost": "1500 JPY"' in retry.bib
    legs = await rows(a.circ, s.ill_legs, order_by=s.ill_legs.c.id)
    assert [leg.state for leg in legs] == ["RETRY_ACCEPTED", "EXPECT_TO_SUPPLY"]
    assert legs[1].request_type == "Retry" and legs[1].previous_leg_id == legs[0].id
    assert (await _request(a)).state == "WILL_SUPPLY"


async def test_replays_and_duplicates_change_nothing(net):
    a, b, c = net
    await _place(a)
    await pump(a, b, c)
    request_body = next(body for body in b.seen if body and b"<ill:request>" in body)
    supplies = await rows(b.circ, s.ill_supplies)
    async with aiohttp.ClientSession() as http:
        for _ in range(2):     # the same body again: the same confirmation, nothing new
            async with http.post(b.url, data=request_body, headers={"Authorization": "Bearer a-to-b"}) as r:
                conf = I.decode(await r.read())
                assert r.status == 200 and conf.confirmation_header.message_status is m.MessageStatus.OK
        # the same request id in a new message: refused
        dup = request_body.replace(b"T10:00:00", b"T10:00:01")
        async with http.post(b.url, data=dup, headers={"Authorization": "Bearer a-to-b"}) as r:
            conf = I.decode(await r.read())
            assert conf.confirmation_header.message_status is m.MessageStatus.ERROR
            assert conf.error_data.error_type is m.ErrorType.UNRECOGNISED_DATA_VALUE
    assert await rows(b.circ, s.ill_supplies) == supplies


async def test_bad_xml_unknown_agencies_and_wrong_credentials_get_error_confirmations(net):
    a, b, c = net
    await _place(a)
    await pump(a, b, c)
    request_body = next(body for body in b.seen if body and b"<ill:request>" in body)
    cases = [
        (b"<not xml", "Bearer a-to-b", m.RequestConfirmation, m.ErrorType.BADLY_FORMED_MESSAGE),
        (request_body, "Bearer wrong", m.RequestConfirmation, m.ErrorType.UNRECOGNISED_DATA_VALUE),
        (request_body, None, m.RequestConfirmation, m.ErrorType.UNRECOGNISED_DATA_VALUE),
        (request_body.replace(A_ID.encode(), b"JP-9999999"), "Bearer a-to-b", m.RequestConfirmation,
         m.ErrorType.UNRECOGNISED_DATA_VALUE),
    ]
    async with aiohttp.ClientSession() as http:
        for body, auth, kind, error in cases:
            headers = {"X-Test-Bad": "1", **({"Authorization": auth} if auth else {})}
            async with http.post(b.url, data=body, headers=headers) as r:
                data = await r.read()
                assert r.status == 200
                assert_valid(data)
                conf = I.decode(data)
                assert type(conf) is kind and conf.error_data.error_type is error
        async with http.post(b.url, data=b"x" * (2 << 20)) as r:
            assert r.status == 413
            assert I.decode(await r.read()).error_data.error_type is m.ErrorType.BADLY_FORMED_MESSAGE
        async with http.get(b.url) as r:
            assert r.status == 405
    assert len(await rows(b.circ, s.ill_supplies)) == 1


async def test_messages_out_of_turn_are_refused(net):
    a, b, c = net
    await _place(a)
    await pump(a, b, c)
    leg = await one_row(a.circ, s.ill_legs)
    sup = await _supply(b)
    # B claims the loan is completed before it was ever loaned
    msg = I.supplying_message(
        I.header(requesting=a.ill.config.agency, supplying=b.ill.config.agency, request_id=leg.rid,
                 now=b.ill.now()), m.ReasonForMessage.STATUS_CHANGE, m.Status.LOAN_COMPLETED, now=b.ill.now())
    conf = await b.sender.send(b.ill.partner(A_ID), msg)
    assert conf.confirmation_header.message_status is m.MessageStatus.ERROR
    assert "not expected" in conf.error_data.error_value
    assert (await one_row(a.circ, s.ill_legs)).state == leg.state
    del sup


async def test_staff_queues_pull_list_and_history(net):
    from circulation.ill import lists
    a, b, c = net
    rid = await _place(a, supplier=None)
    await pump(a, b, c)
    (entry,) = await lists.requester_queue(a.ill, "hiroshima")
    assert entry["request_id"] == rid and entry["leg"]["partner"] == B_ID
    assert [t["partner"] for t in entry["tried"]] == [C_ID, B_ID]
    assert await lists.requester_queue(a.ill, "komae") == []                 # other systems see nothing
    (sup,) = await lists.supplier_queue(b.ill, "komae")
    assert sup["state"] == "EXPECT_TO_SUPPLY" and sup["attention"] and sup["bib"]["title"] == "図書館の歴史"
    assert await lists.supplier_queue(b.ill, "iizuka") == []
    (pull,) = await lists.pull_list(b.ill, "komae-central")
    assert pull["barcode"] == "K0001" and pull["supply_id"] == sup["supply_id"]
    hist = await lists.history(a.ill, request_id=rid)
    assert [(h["direction"], h["partner"], h["summary"]) for h in hist] == [
        ("out", C_ID, "Request New"), ("in", C_ID, "RequestResponse Unfilled"),
        ("out", B_ID, "Request New"), ("in", B_ID, "RequestResponse ExpectToSupply")]
    assert [h["summary"] for h in await lists.history(b.ill, supply_id=sup["supply_id"])] == [
        "Request New", "RequestResponse ExpectToSupply"]


async def test_the_worker_delivers_after_each_change(net):
    import asyncio

    from circulation.ill.worker import IllWorker
    a, b, c = net
    workers = [IllWorker(p.ill, p.sender, interval=3600) for p in (a, b, c)]
    for w in workers:
        w.start()
    try:
        await _place(a)
        for _ in range(500):
            if (await rows(b.circ, s.ill_supplies)) and (await one_row(a.circ, s.ill_legs)).state == "EXPECT_TO_SUPPLY":
                break
            await asyncio.sleep(0.02)
        assert (await one_row(a.circ, s.ill_legs)).state == "EXPECT_TO_SUPPLY"
    finally:
        for w in workers:
            await w.stop()


async def test_a_partner_cannot_speak_for_another_partners_request(net):
    a, b, c = net
    await _place(a)
    await pump(a, b, c)
    leg = await one_row(a.circ, s.ill_legs)           # B's leg
    # C (a real partner, with its own valid token) claims to have shipped B's request
    msg = I.supplying_message(
        I.header(requesting=a.ill.config.agency, supplying=c.ill.config.agency, request_id=leg.rid,
                 now=c.ill.now()), m.ReasonForMessage.STATUS_CHANGE, m.Status.LOANED, now=c.ill.now())
    conf = await c.sender.send(c.ill.partner("JP-1000000"), msg)
    assert conf.confirmation_header.message_status is m.MessageStatus.ERROR
    assert (await one_row(a.circ, s.ill_legs)).state == leg.state
    assert (await _request(a)).state == "SENT"
