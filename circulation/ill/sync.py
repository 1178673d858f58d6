"""The reconciler: the messages the state of our requests and loans owes a partner.

The ordinary circulation steps (receiving a partner's copy at a branch, the patron's
cancellation, the return at the pickup counter and its shipment, checking in a copy a
partner had) know nothing of ISO 18626.  After each change, and as a job, :func:`sync`
compares every open leg and supply with the request or loan it serves and sends what is
owed, moving the leg by its table in the same transaction, so nothing is sent twice:

=====================================================  ===========================================
our side                                               leg event, message
=====================================================  ===========================================
a partner request (SENT) with no leg, its copy          a leg and its Request (the 連携貸出 form at
of a configured ILL partner                             the counter)
the request CANCEL_PENDING, the leg open                CANCEL, ``Cancel``
… the Request not yet delivered                         GIVE_UP (the partner never had it); CANCELLED
the copy received here (the request past SHIPPED)       RECEIVE, ``Received``
the copy on its way back (AWAITING_LOAN_COMPLETED,      SHIP_RETURN, ``ShippedReturn``
or cancelled/expired and sent back)
a supply whose loan was checked in                      CHECK_IN, ``LoanCompleted``
a supply whose loan is overdue                          OVERDUE, ``StatusChange Overdue`` (once)
=====================================================  ===========================================
"""
from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from connectors import iso18626 as I
from connectors.iso18626 import model as m
from lifecycle import ill as L
from lifecycle import table as lt

from .. import schema as s
from ..store import get_row
from . import requester, supplier
from .common import Ill, get_leg, get_supply, header_for_leg, leg_transition, queue_message

S, RS, RE, A = lt.State, L.RState, L.REvent, L.Actor

# request states in which the partner's copy has been received here
RECEIVED_STATES = frozenset({S.IN_TRANSIT, S.ON_HOLD_SHELF, S.ON_LOAN, S.OVERDUE, S.RECALLED, S.RETURNED,
                             S.AWAITING_LOAN_COMPLETED, S.COMPLETED})
_OPEN_TO_CANCEL = frozenset({RS.REQUESTED, RS.EXPECT_TO_SUPPLY, RS.WILL_SUPPLY, RS.RETRY_POSSIBLE})
_WITH_US = frozenset({RS.RECEIVED, RS.RENEW_PENDING, RS.RECALLED})
_SUPPLY_OUT = [st.value for st in (L.SState.SHIPPED, L.SState.RECEIVED, L.SState.RENEW_REQUESTED,
                                   L.SState.RECALLED, L.SState.RETURN_SHIPPED)]


async def _was_received(conn: AsyncConnection, request_id: int) -> bool:
    return (await conn.execute(select(s.events.c.id).where(
        s.events.c.request_id == request_id,
        s.events.c.event.in_((lt.Event.RECEIVE_AT_PICKUP.value, lt.Event.RECEIVE_ELSEWHERE.value)),
    ))).first() is not None


async def _sent_back(conn: AsyncConnection, row) -> bool:
    return (await conn.execute(select(s.transits.c.id).where(
        s.transits.c.item_id == row.item_id, s.transits.c.request_id == row.id,
        s.transits.c.reason == "partner_return"))).first() is not None


async def _sync_leg(ill: Ill, conn: AsyncConnection, leg_id: int) -> int:
    """Send what one leg owes; returns the number of messages queued."""
    leg = await get_leg(conn, leg_id)
    row, _item = await requester._lock_request(conn, leg.request_id)
    leg = await get_leg(conn, leg_id, lock=True)
    partner = ill.partner(leg.partner)
    state, req = RS(leg.state), S(row.state)
    if req is S.CANCEL_PENDING and state in (RS.NEW, RS.SEND_FAILED):
        # the supplier never had the Request: cancelled here and now
        await leg_transition(ill, conn, leg, RE.GIVE_UP, actor_role=A.SYSTEM, actor="cancel",
                             reason="cancelled before the Request was delivered")
        await conn.execute(update(s.ill_messages).where(
            s.ill_messages.c.leg_id == leg.id, s.ill_messages.c.direction == "out",
            s.ill_messages.c.status.in_(("pending", "failed"))).values(status="cancelled"))
        await requester._cancel_accepted(ill, conn, row, partner)
        return 0
    if req is S.CANCEL_PENDING and state in _OPEN_TO_CANCEL:
        await leg_transition(ill, conn, leg, RE.CANCEL, actor_role=A.SYSTEM, actor="cancel")
        await queue_message(ill, conn, partner, I.requesting_message(
            header_for_leg(ill, leg, partner), m.Action.CANCEL), leg_id=leg.id)
        return 1
    sent = 0
    if state is RS.LOANED and (req in RECEIVED_STATES or (req in (S.CANCELLED, S.SHELF_EXPIRED, S.LOST)
                                                          and await _was_received(conn, row.id))):
        leg, state, sent = await requester.note_received(ill, conn, leg, partner), RS.RECEIVED, 1
    if state in _WITH_US and (req is S.AWAITING_LOAN_COMPLETED or (
            req in (S.CANCELLED, S.SHELF_EXPIRED) and await _sent_back(conn, row))):
        await leg_transition(ill, conn, leg, RE.SHIP_RETURN, actor_role=A.STAFF, actor="return")
        await queue_message(ill, conn, partner, I.requesting_message(
            header_for_leg(ill, leg, partner), m.Action.SHIPPED_RETURN), leg_id=leg.id)
        sent += 1
    return sent


async def _start_named(ill: Ill, conn: AsyncConnection, request_id: int) -> int:
    row, item = await requester._lock_request(conn, request_id)
    if row.state not in (S.SENT.value,) or item is None:
        return 0
    if (await conn.execute(select(s.ill_legs.c.id).where(s.ill_legs.c.request_id == row.id))).first():
        return 0
    partner = ill.partner_of_library(item.partner)
    if partner is None:
        return 0
    await requester.start_leg(ill, conn, row, partner, None)
    return 1


async def _sync_supply(ill: Ill, conn: AsyncConnection, supply_id: int) -> int:
    supply = await get_supply(conn, supply_id, lock=True)
    if supply.loan_id is None or supply.state not in _SUPPLY_OUT:
        return 0
    loan = await get_row(conn, s.loans, s.loans.c.id == supply.loan_id, what="loan")
    if loan.returned_at is not None and loan.state == "RETURNED":
        return int(await supplier.complete_returned(ill, conn, supply, loan))
    if loan.state == "OVERDUE":
        return int(await supplier.notify_overdue(ill, conn, supply, loan))
    return 0


async def sync(ill: Ill) -> int:
    """One pass over every open leg and supply; the number of messages queued."""
    terminal = [st.value for st in L.REQUESTER.terminal]
    async with ill.circ.db.read() as conn:
        legs = [r.id for r in (await conn.execute(
            select(s.ill_legs.c.id).where(s.ill_legs.c.state.notin_(terminal)).order_by(s.ill_legs.c.id))).all()]
        named = [r.id for r in (await conn.execute(
            select(s.requests.c.id).join(s.items, s.items.c.id == s.requests.c.item_id)
            .outerjoin(s.ill_legs, s.ill_legs.c.request_id == s.requests.c.id)
            .where(s.requests.c.kind == requester.KIND, s.requests.c.state == S.SENT.value,
                   s.items.c.ill.is_(False), s.ill_legs.c.id.is_(None)))).all()]
        supplies = [r.id for r in (await conn.execute(
            select(s.ill_supplies.c.id).where(s.ill_supplies.c.state.in_(_SUPPLY_OUT)))).all()]
    queued = 0
    for rid in named:
        queued += await ill.circ.db.run(lambda conn, rid=rid: _start_named(ill, conn, rid))
    for leg_id in legs:
        queued += await ill.circ.db.run(lambda conn, leg_id=leg_id: _sync_leg(ill, conn, leg_id))
    for sid in supplies:
        queued += await ill.circ.db.run(lambda conn, sid=sid: _sync_supply(ill, conn, sid))
    return queued
