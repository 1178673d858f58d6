"""University partnership (連携貸出, Hiroshima): a city patron asks, on the paper form at
a city library counter, for a book of a partner university library (広島市立大学附属図書館,
広島大学図書館); the university sends its copy to that counter, where it waits on the hold
shelf, is lent within the normal 10-item limit, comes back to the same counter and is
sent back to the university.

Partners are data: ``[partners.<code>]`` in the profile (:class:`lifecycle.profiles.Partner`);
whether a copy may be asked for is :func:`lifecycle.policies.can_request_partner_item`.
A partner request is a ``requests`` row of the city (``library`` = the city,
``kind = "partner"``) whose ``item_id`` names the university's copy from the start. It
moves through the requester table of :mod:`lifecycle.table`, every step audited by
:func:`circulation.store.transition`:

====================  ======================================  ==================
step                  function                                transition
====================  ======================================  ==================
form at the counter   :func:`request_item`                    PLACE, VALIDATE, SEND_TO_PARTNER → SENT
partner will supply   :func:`partner_will_supply`             PARTNER_WILL_SUPPLY → WILL_SUPPLY
partner ships         :func:`partner_shipped`                 PARTNER_SHIPPED → SHIPPED
partner cannot        :func:`partner_cannot_supply`           END_OF_ROTA → UNFILLED
received at counter   :func:`receive` (or a check-in scan)    RECEIVE_AT_PICKUP → ON_HOLD_SHELF
  … at another one    :func:`receive`                         RECEIVE_ELSEWHERE → IN_TRANSIT, then ARRIVE_AT_PICKUP
lent at that counter  ``loans.check_out``                     CHECK_OUT → ON_LOAN
returned there        ``loans.check_in``                      CHECK_IN → RETURNED, SHIP_RETURN → AWAITING_LOAN_COMPLETED
partner has it back   :func:`partner_received`                LOAN_COMPLETED → COMPLETED
====================  ======================================  ==================

The partner-side functions (``partner_*``) are what an ISO 18626 connector will call
(WillSupply, Loaned, Unfilled, CancelResponse, and the supplier's ShippedReturn
confirmation); until it exists, staff may record them on the partner's behalf with
role ``partner`` and an ``actor`` naming who did.

Readings and choices
--------------------
* **The copy goes back, never into our queues.** This module plugs into
  :mod:`circulation.routing` as a :class:`~circulation.routing.Leg` (registered below):
  ``routing.route_copy`` hands a partner's copy to :func:`route_partner_copy`: a shipped copy is received for its
  request; a returned one leaves in transit to its owning branch at the university
  (``transits.reason = "partner_return"``); a copy whose request ended on our side
  (shelf expired, cancelled after receipt) goes back the same way. It is never
  trapped for a city reservation and never lent to a walk-in.
* **Return at the counter** (``loans.check_in``): a staff check-in ships the copy back
  at once (SHIP_RETURN); a return machine at that counter (which
  ``policies.can_return_at`` accepts) puts it in transit too, but the request stays
  RETURNED until staff confirm the shipment with :func:`ship_return` (SHIP_RETURN is
  a staff event).
* **Cancelling**: :func:`cancel` — before shipping, the partner is asked (REQUEST_CANCEL
  → CANCEL_PENDING, answered by :func:`partner_cancel_answer`); once shipped, the
  cancellation is noted (CANCEL_REQUESTED, no state change) and carried out when the
  copy arrives (received, CANCEL_SECURED, sent back; no hold-ready notice); on the hold
  shelf or in transit to the counter it is ``holds.cancel`` (CANCEL_SECURED), and the
  copy goes back.
* **Shelf expiry** is the ordinary ``jobs.expire_shelf`` job: SHELF_EXPIRED, and the
  copy goes back to the university.
* **"On loan or reserved at request time"** (申込時に貸出中や予約のある資料): the copy is
  not on the university's shelf (``items.status`` other than ``available``: on loan,
  in transit, on one of our hold shelves) or another live partner request names it.
  The university's own reservations are not in our data.
* **The partner's receipt of a copy still RETURNED** (returned at a machine, shipment
  not confirmed) is refused (``return_not_shipped``): staff confirm the shipment first.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle import item_table as it
from lifecycle import policies
from lifecycle import table as lt
from lifecycle.model import Decision, Request
from lifecycle.profiles import Partner
from lifecycle.reasons import (
    REASON_CANCEL_ON_ARRIVAL,
    REASON_UNFILLED,
    decide,
)

from . import holds, notices, routing
from . import schema as s
from .labels import PARTNER_NEXT_STEP, PARTNER_STATE_ORDER, STATUS_JA
from .reads import patron_snapshot
from .service import Circulation
from .store import (
    LIVE_REQUEST_STATES,
    NotFound,
    get_row,
    item_record,
    item_transition,
    lock_one,
    lock_title_queue,
    record_event,
    transition,
)

E, S, R = lt.Event, lt.State, lt.Role
IS, IE = it.ItemStatus, it.ItemEvent

KIND = "partner"                       # requests.kind of a 連携貸出 request
RETURN_TRANSIT = "partner_return"      # transits.reason: going back to the university
INBOUND_TRANSIT = "partner"            # transits.reason: coming from the university

# Routing kinds of route_partner_copy (besides routing.HOLD_SHELF and routing.TRANSIT_HOLD)
TO_PARTNER = "to_partner"              # in transit back to the university
AWAITING_STAFF = "awaiting_staff"      # a shipped copy scanned without staff: nothing received


_SHIPPABLE = (S.SENT.value, S.WILL_SUPPLY.value, S.CONDITION_PENDING.value, S.CANCEL_PENDING.value)
_BEFORE_SHIPPING = (S.SENT.value, S.WILL_SUPPLY.value, S.CONDITION_PENDING.value)
@dataclass(frozen=True)
class PartnerResult:
    request_id: int | None
    decision: Decision
    routing: routing.Routing | None = None


# --------------------------------------------------------------------------- helpers

def partner_of(circ: Circulation, code: str | None) -> tuple[str, Partner] | None:
    """(city system, partner settings) of the profile that lists university ``code``."""
    for prof in circ.profiles.values():
        p = prof.partners.get(code or "")
        if p is not None:
            return prof.system, p
    return None


def _partner(circ: Circulation, code: str | None) -> Partner | None:
    found = partner_of(circ, code)
    return found[1] if found else None


def _partner_branches(circ: Circulation, code: str | None) -> set[str]:
    partner = _partner(circ, code)
    return set(partner.branches) if partner is not None else set()


async def _item_by_barcode(conn: AsyncConnection, barcode: str):
    return await get_row(conn, s.items, s.items.c.barcode == barcode, what=f"item {barcode!r}")


async def _lock_item_of(conn: AsyncConnection, item_id: int):
    """The title's queue row, then the item row (the documented lock order)."""
    first = await get_row(conn, s.items, s.items.c.id == item_id, what=f"item {item_id}")
    await lock_title_queue(conn, first.title_id)
    return await lock_one(conn, s.items, s.items.c.id == item_id)


async def _partner_requests_of_item(conn: AsyncConnection, item_id: int, states=None) -> list:
    q = select(s.requests).where(s.requests.c.item_id == item_id, s.requests.c.kind == KIND)
    if states is not None:
        q = q.where(s.requests.c.state.in_(states))
    return list((await conn.execute(q.order_by(s.requests.c.id.desc()))).all())


async def _cancel_was_asked(conn: AsyncConnection, request_id: int) -> bool:
    return (await conn.execute(select(s.events.c.id).where(
        s.events.c.request_id == request_id,
        s.events.c.event.in_((E.REQUEST_CANCEL.value, "CANCEL_REQUESTED"))))).first() is not None


async def _send_back(circ: Circulation, conn: AsyncConnection, item_row, at_branch: str,
                     request_id: int | None, *, role, actor: str) -> routing.Routing:
    """The copy leaves ``at_branch`` in transit to its owning branch at the university."""
    await routing.send(circ, conn, item_row, at_branch, item_row.owning_branch, RETURN_TRANSIT,
                      request_id=request_id, role=role, actor=actor)
    return routing.Routing(TO_PARTNER, request_id, item_row.owning_branch)


def _may(event: lt.Event, role) -> bool:
    return R(role) in lt.ACTORS[event]


# --------------------------------------------------------------------------- routing (the leg's route)

async def route_partner_copy(circ: Circulation, conn: AsyncConnection, item_row, at_branch: str, *,
                             role, actor: str) -> routing.Routing:
    """Where a university's copy in hand at a city branch goes (called by
    ``routing.route_copy`` inside the caller's unit of work, title queue and item locked,
    the copy not secured for a request):

    * its request is SHIPPED → received: at the requesting counter RECEIVE_AT_PICKUP (hold
      shelf, deadline, hold_ready notice); elsewhere RECEIVE_ELSEWHERE (transit to the
      counter). A request the patron cancelled meanwhile is then CANCEL_SECURED and the
      copy goes back. Receiving is a staff act: another role leaves the copy in transit
      (:data:`AWAITING_STAFF`).
    * RETURNED (its loan just closed) → in transit to the university; SHIP_RETURN when
      staff checked it in. AWAITING_LOAN_COMPLETED (scanned on its way back) → sent on.
    * no live request (the hold expired or was cancelled, or no request at all) → back to
      the university; a copy whose owning branch is not the university's (older data)
      is handled as any copy without a request (``holds`` reshelve / transit home)."""
    now = circ.now()
    live = await _partner_requests_of_item(conn, item_row.id, (
        S.SHIPPED.value, S.RETURNED.value, S.AWAITING_LOAN_COMPLETED.value))
    if live:
        row = live[0]
        if row.state == S.SHIPPED.value:
            return await _receive_shipped(circ, conn, row, item_row, at_branch, role=role, actor=actor)
        if row.state == S.RETURNED.value:
            routed = await _send_back(circ, conn, item_row, at_branch, row.id, role=role, actor=actor)
            if _may(E.SHIP_RETURN, role):
                await transition(conn, row, E.SHIP_RETURN, role=role, actor=actor, at=now,
                                 branch=at_branch, reason=f"to {item_row.owning_branch}")
            return routed
        return await _send_back(circ, conn, item_row, at_branch, row.id, role=role, actor=actor)

    if item_row.owning_branch in _partner_branches(circ, item_row.partner):
        last = await _partner_requests_of_item(conn, item_row.id)
        return await _send_back(circ, conn, item_row, at_branch, last[0].id if last else None,
                                role=role, actor=actor)
    return await routing.reshelve_or_send_home(circ, conn, item_row, at_branch, role=role, actor=actor)


async def _receive_shipped(circ: Circulation, conn: AsyncConnection, row, item_row, at_branch: str, *,
                           role, actor: str) -> routing.Routing:
    now = circ.now()
    if not _may(E.RECEIVE_AT_PICKUP, role):
        await item_transition(conn, item_row, IE.AWAIT_RECEIPT, at=now, current_branch=at_branch)
        await record_event(conn, at=now, event="PARTNER_COPY_SCANNED", actor_role=R(role).value,
                           actor=actor, item_id=item_row.id, request_id=row.id, branch=at_branch,
                           reason="shipped partner copy: to be received by staff")
        return routing.Routing(AWAITING_STAFF, row.id, row.pickup_branch)
    cancel = await _cancel_was_asked(conn, row.id)
    if at_branch == row.pickup_branch:
        if not cancel:
            await routing.put_on_shelf(circ, conn, row, E.RECEIVE_AT_PICKUP, item_row, at_branch,
                                      role=role, actor=actor)
            return routing.Routing(routing.HOLD_SHELF, row.id, at_branch)
        await transition(conn, row, E.RECEIVE_AT_PICKUP, role=role, actor=actor, at=now,
                         branch=at_branch, item_id=item_row.id, ready_at=now)
    else:
        await transition(conn, row, E.RECEIVE_ELSEWHERE, role=role, actor=actor, at=now,
                         branch=at_branch, item_id=item_row.id)
        if not cancel:
            await routing.send(circ, conn, item_row, at_branch, row.pickup_branch, "hold",
                              request_id=row.id, role=role, actor=actor)
            return routing.Routing(routing.TRANSIT_HOLD, row.id, row.pickup_branch)
    # the patron cancelled after the university had shipped: cancel now, send the copy back
    row = await get_row(conn, s.requests, s.requests.c.id == row.id, what="request")
    await transition(conn, row, E.CANCEL_SECURED, role=role, actor=actor, at=now, branch=at_branch,
                     reason=REASON_CANCEL_ON_ARRIVAL, cancelled_at=now,
                     cancel_reason=REASON_CANCEL_ON_ARRIVAL, cancel_channel="counter")
    await notices.enqueue(conn, kind="hold_cancelled", patron_id=row.patron_id,
                          dedupe_key=f"hold_cancelled:{row.id}", at=now, request_id=row.id,
                          data=notices.hold_data(circ, row, reason=REASON_CANCEL_ON_ARRIVAL,
                                                  channel="counter"))
    return await _send_back(circ, conn, item_row, at_branch, row.id, role=role, actor=actor)


# --------------------------------------------------------------------------- the counter

async def request_item(circ: Circulation, *, card: str, barcode: str, branch: str, role, actor: str,
                       channel: str = "form", contact_method: str | None = None, memo: str = "",
                       title: str = "") -> PartnerResult:
    """The patron hands in the form (所定の用紙) at the counter of city library ``branch``
    for the university's copy ``barcode``: decided by
    ``policies.can_request_partner_item`` (the counter is the pickup), then PLACE,
    VALIDATE and SEND_TO_PARTNER (→ SENT) with a ``hold_received`` notice. A refusal
    writes nothing. Unknown card or barcode: ``NotFound``."""
    role = R(role)

    async def work(conn: AsyncConnection) -> PartnerResult:
        now = circ.now()
        first = await _item_by_barcode(conn, barcode)
        await lock_title_queue(conn, first.title_id, title)
        item = await lock_one(conn, s.items, s.items.c.id == first.id)
        patron = await get_row(conn, s.patrons, s.patrons.c.card_number == card,
                               what=f"patron {card!r}", for_update=True)
        if not item.partner:
            return PartnerResult(None, decide("not_a_partner_item"))
        profile = circ.profile(patron.library)
        others = await _partner_requests_of_item(conn, item.id, LIVE_REQUEST_STATES + (
            S.ON_LOAN.value, S.OVERDUE.value, S.RECALLED.value))
        copy = item_record(item)
        rec = dataclasses.replace(
            copy, on_loan=not policies.partner_copy_on_its_shelf(_partner(circ, item.partner), copy, item.status),
            held=bool(others), circulating=item.circulating and IS(item.status) not in it.GONE)
        contact = contact_method if contact_method is not None else patron.default_contact_method
        candidate = Request(id="new", patron_card=card, title_id=item.title_id, kind=KIND,
                            material_type=item.material_type, pickup_branch=branch,
                            contact_method=contact, channel=channel, placed_at=now,
                            submitted_at_branch=branch, memo=memo)
        decision = policies.decide_partner_request(profile, await patron_snapshot(conn, patron), rec,
                                                   candidate, now, role=role)
        if not decision.allowed:
            return PartnerResult(None, decision)
        shown = title or (await conn.execute(select(s.title_queues.c.title).where(
            s.title_queues.c.title_id == item.title_id))).scalar() or item.title_id
        res = await conn.execute(s.requests.insert().values(
            patron_id=patron.id, library=profile.system, title_id=item.title_id, kind=KIND,
            material_type=item.material_type, pickup_branch=branch, contact_method=contact,
            channel=channel, state=S.NEW.value, placed_at=now, item_id=item.id,
            submitted_at_branch=branch, memo=memo, title=shown, updated_at=now))
        rid = res.inserted_primary_key[0]
        await record_event(conn, at=now, event="PLACE", actor_role=role.value, actor=actor,
                           request_id=rid, item_id=item.id, to_state=S.NEW.value, channel=channel,
                           branch=branch, reason=f"{KIND} {item.partner}")
        for ev in (E.VALIDATE, E.SEND_TO_PARTNER):
            row = await get_row(conn, s.requests, s.requests.c.id == rid, what="request")
            await transition(conn, row, ev, role=R.SYSTEM, actor=actor, at=now, channel=channel,
                             branch=branch, reason=item.partner if ev == E.SEND_TO_PARTNER else "")
        row = await get_row(conn, s.requests, s.requests.c.id == rid, what="request")
        await notices.enqueue(conn, kind="hold_received", patron_id=patron.id,
                              dedupe_key=f"hold_received:{rid}", at=now, request_id=rid,
                              data=notices.hold_data(circ, row, placed_at=now))
        return PartnerResult(rid, decision)

    return await circ.db.run(work)


async def _on_request(circ: Circulation, request_id: int, step) -> PartnerResult:
    """Run ``step(conn, row, item)`` on a partner request under its locks (title queue,
    the copy, then the request)."""
    async def work(conn: AsyncConnection) -> PartnerResult:
        row = await get_row(conn, s.requests, s.requests.c.id == request_id,
                            what=f"request {request_id}")
        if row.kind != KIND or row.item_id is None:
            return PartnerResult(request_id, decide("not_a_partner_request"))
        item = await _lock_item_of(conn, row.item_id)
        row = await get_row(conn, s.requests, s.requests.c.id == request_id, what="request",
                            for_update=True)
        return await step(conn, row, item)

    return await circ.db.run(work)


async def _simple(circ: Circulation, request_id: int, event: lt.Event, from_states, *, role, actor: str,
                  reason: str = "", **changes) -> PartnerResult:
    async def step(conn, row, item):
        if row.state not in from_states or not _may(event, role):
            return PartnerResult(row.id, decide("wrong_state", state=row.state))
        await transition(conn, row, event, role=role, actor=actor, at=circ.now(), reason=reason,
                         **changes)
        return PartnerResult(row.id, decide("ok"))

    return await _on_request(circ, request_id, step)


# --------------------------------------------------------------------------- the partner's side

async def partner_will_supply(circ: Circulation, *, request_id: int, actor: str, role=R.PARTNER,
                              note: str = "") -> PartnerResult:
    """The university says it will supply (ISO 18626 WillSupply): → WILL_SUPPLY."""
    return await _simple(circ, request_id, E.PARTNER_WILL_SUPPLY, (S.SENT.value,), role=role,
                         actor=actor, reason=note)


async def partner_shipped(circ: Circulation, *, request_id: int, actor: str, role=R.PARTNER,
                          note: str = "") -> PartnerResult:
    """The university has sent its copy to the requesting counter (ISO 18626 Loaned):
    PARTNER_SHIPPED (→ SHIPPED), the copy in transit from its branch to the counter
    (``transits.reason = "partner"``). Refused while the copy is not back at the
    university (``copy_not_at_partner``: another patron of ours still has it)."""
    async def step(conn, row, item):
        if row.state not in _SHIPPABLE or not _may(E.PARTNER_SHIPPED, role):
            return PartnerResult(row.id, decide("wrong_state", state=row.state))
        if not policies.partner_copy_on_its_shelf(_partner(circ, item.partner), item_record(item), item.status):
            return PartnerResult(row.id, decide("copy_not_at_partner", status=item.status,
                                                 at=item.current_branch))
        now = circ.now()
        await transition(conn, row, E.PARTNER_SHIPPED, role=role, actor=actor, at=now,
                         reason=note or f"to {row.pickup_branch}")
        await routing.send(circ, conn, item, item.current_branch, row.pickup_branch, INBOUND_TRANSIT,
                          request_id=row.id, role=role, actor=actor)
        return PartnerResult(row.id, decide("ok"))

    return await _on_request(circ, request_id, step)


async def partner_cannot_supply(circ: Circulation, *, request_id: int, actor: str, role=R.SYSTEM,
                                reason: str = "") -> PartnerResult:
    """The university answers that it cannot supply (ISO 18626 Unfilled): there is no
    other partner to try for this copy, so END_OF_ROTA (→ UNFILLED), recorded by the
    system (the connector), with a ``hold_cancelled`` notice to the patron."""
    why = reason or REASON_UNFILLED

    async def step(conn, row, item):
        if row.state not in _BEFORE_SHIPPING or not _may(E.END_OF_ROTA, role):
            return PartnerResult(row.id, decide("wrong_state", state=row.state))
        now = circ.now()
        await transition(conn, row, E.END_OF_ROTA, role=role, actor=actor, at=now, reason=why,
                         cancelled_at=now, cancel_reason=why, cancel_channel="system")
        await notices.enqueue(conn, kind="hold_cancelled", patron_id=row.patron_id,
                              dedupe_key=f"hold_cancelled:{row.id}", at=now, request_id=row.id,
                              data=notices.hold_data(circ, row, reason=why, channel="system"))
        return PartnerResult(row.id, decide("ok"))

    return await _on_request(circ, request_id, step)


async def partner_cancel_answer(circ: Circulation, *, request_id: int, accepted: bool, actor: str,
                                role=R.PARTNER) -> PartnerResult:
    """The university answers our cancellation (ISO 18626 CancelResponse): yes →
    CANCEL_ACCEPTED (→ CANCELLED, ``hold_cancelled`` notice); no → CANCEL_REFUSED (→
    WILL_SUPPLY; the copy will come and is cancelled on arrival)."""
    event = E.CANCEL_ACCEPTED if accepted else E.CANCEL_REFUSED

    async def step(conn, row, item):
        if row.state != S.CANCEL_PENDING.value or not _may(event, role):
            return PartnerResult(row.id, decide("wrong_state", state=row.state))
        now = circ.now()
        if not accepted:
            await transition(conn, row, event, role=role, actor=actor, at=now)
            return PartnerResult(row.id, decide("ok"))
        asked = (await conn.execute(select(s.events.c.channel, s.events.c.reason).where(
            s.events.c.request_id == row.id, s.events.c.event == E.REQUEST_CANCEL.value)
            .order_by(s.events.c.id.desc()))).first()
        channel = (asked.channel if asked is not None else None) or "counter"
        why = policies.recorded_reason(asked.reason if asked is not None else "", channel)
        await transition(conn, row, event, role=role, actor=actor, at=now, reason=why,
                         cancelled_at=now, cancel_reason=why, cancel_channel=channel)
        await notices.enqueue(conn, kind="hold_cancelled", patron_id=row.patron_id,
                              dedupe_key=f"hold_cancelled:{row.id}", at=now, request_id=row.id,
                              data=notices.hold_data(circ, row, reason=why, channel=channel))
        return PartnerResult(row.id, decide("ok"))

    return await _on_request(circ, request_id, step)


async def partner_received(circ: Circulation, *, barcode: str, actor: str, role=R.PARTNER) -> PartnerResult:
    """The university has its copy back: the return transit arrives at its owning
    branch, the copy is ``available`` there again, and a request AWAITING_LOAN_COMPLETED
    gets LOAN_COMPLETED (→ COMPLETED). A copy sent back after a shelf expiry or a
    cancellation has no request to complete."""
    async def work(conn: AsyncConnection) -> PartnerResult:
        first = await _item_by_barcode(conn, barcode)
        item = await _lock_item_of(conn, first.id)
        if not item.partner:
            return PartnerResult(None, decide("not_a_partner_item"))
        returned = await _partner_requests_of_item(conn, item.id, (S.RETURNED.value,))
        if returned:
            return PartnerResult(returned[0].id, decide("return_not_shipped"))
        leg = (await conn.execute(select(s.transits).where(
            s.transits.c.item_id == item.id, s.transits.c.arrived_at.is_(None),
            s.transits.c.reason.in_((RETURN_TRANSIT, "return_home")))
            .order_by(s.transits.c.id.desc()))).first()
        awaiting = await _partner_requests_of_item(conn, item.id, (S.AWAITING_LOAN_COMPLETED.value,))
        if leg is None and not awaiting:
            return PartnerResult(None, decide("nothing_to_complete", status=item.status))
        now = circ.now()
        await routing.close_transits(circ, conn, item, item.owning_branch, role=role, actor=actor)
        await item_transition(conn, item, IE.RESHELVE, at=now, current_branch=item.owning_branch)
        rid = None
        for row in awaiting:
            row = await get_row(conn, s.requests, s.requests.c.id == row.id, what="request",
                                for_update=True)
            await transition(conn, row, E.LOAN_COMPLETED, role=role, actor=actor, at=now,
                             branch=item.owning_branch, reason="received by the university")
            rid = row.id
        if rid is None:
            await record_event(conn, at=now, event="PARTNER_RECEIVED", actor_role=R(role).value,
                               actor=actor, item_id=item.id,
                               request_id=leg.request_id if leg is not None else None,
                               branch=item.owning_branch, reason="copy back at the university")
        return PartnerResult(rid, decide("ok"))

    return await circ.db.run(work)


# --------------------------------------------------------------------------- staff

async def receive(circ: Circulation, *, barcode: str, branch: str, role=R.STAFF,
                  actor: str) -> PartnerResult:
    """Staff at city library ``branch`` unpack the university's copy ``barcode``: its
    inbound transit arrives and the copy is received for its SHIPPED request (on the
    hold shelf at the requesting counter, else sent on to it), or, already received
    elsewhere, arrives at the counter (ARRIVE_AT_PICKUP). Scanning it at check-in does
    the same (``loans.check_in`` → ``routing.arrive``)."""
    if R(role) != R.STAFF:
        return PartnerResult(None, decide("staff_only"))

    async def work(conn: AsyncConnection) -> PartnerResult:
        first = await _item_by_barcode(conn, barcode)
        item = await _lock_item_of(conn, first.id)
        if not item.partner:
            return PartnerResult(None, decide("not_a_partner_item"))
        waiting = await _partner_requests_of_item(conn, item.id, (S.SHIPPED.value, S.IN_TRANSIT.value))
        if not waiting:
            return PartnerResult(None, decide("nothing_to_receive", status=item.status))
        routed = await routing.arrive(circ, conn, item, branch, role=role, actor=actor)
        return PartnerResult(waiting[0].id, decide("ok"), routed)

    return await circ.db.run(work)


async def ship_return(circ: Circulation, *, request_id: int, actor: str, role=R.STAFF,
                      branch: str | None = None) -> PartnerResult:
    """Staff confirm that a returned copy left for the university (SHIP_RETURN →
    AWAITING_LOAN_COMPLETED): needed after a return-machine check-in; a staff check-in
    does it at once. The copy is already in transit (the check-in sent it)."""
    async def step(conn, row, item):
        if row.state != S.RETURNED.value or not _may(E.SHIP_RETURN, role):
            return PartnerResult(row.id, decide("wrong_state", state=row.state))
        now = circ.now()
        open_leg = (await conn.execute(select(s.transits.c.id).where(
            s.transits.c.item_id == item.id, s.transits.c.arrived_at.is_(None),
            s.transits.c.reason == RETURN_TRANSIT))).first()
        if open_leg is None:
            at = branch or item.current_branch or row.pickup_branch
            await _send_back(circ, conn, item, at, row.id, role=role, actor=actor)
        await transition(conn, row, E.SHIP_RETURN, role=role, actor=actor, at=now, branch=branch,
                         reason=f"to {item.owning_branch}")
        return PartnerResult(row.id, decide("ok"))

    return await _on_request(circ, request_id, step)


async def cancel(circ: Circulation, *, request_id: int, role, actor: str, channel: str = "counter",
                 reason: str = "", card: str | None = None, branch: str | None = None) -> PartnerResult:
    """Cancel a partner request. Before shipping: ``holds.cancel`` asks the university
    (REQUEST_CANCEL → CANCEL_PENDING, ``ill_cancel_requested``). Shipped: noted as
    CANCEL_REQUESTED (no state change, ``cancel_on_arrival``) and carried out on
    receipt. In transit to the counter or on its hold shelf: ``holds.cancel``
    (CANCEL_SECURED, staff only; the copy goes back to the university)."""
    async def peek(conn: AsyncConnection):
        return await get_row(conn, s.requests, s.requests.c.id == request_id,
                             what=f"request {request_id}")

    async with circ.db.read() as conn:
        row = await peek(conn)
        if card is not None:
            patron = await get_row(conn, s.patrons, s.patrons.c.card_number == card, what="patron")
            if patron.id != row.patron_id:
                raise NotFound(f"request {request_id}")
    if row.kind != KIND:
        return PartnerResult(request_id, decide("not_a_partner_request"))
    if row.state == S.CANCEL_PENDING.value:
        return PartnerResult(request_id, decide("ill_cancel_requested"))
    if row.state != S.SHIPPED.value:
        d = await holds.cancel(circ, request_id=request_id, role=role, actor=actor, channel=channel,
                               reason=reason, card=card, branch=branch)
        return PartnerResult(request_id, d)

    async def step(conn, row, item):
        if row.state != S.SHIPPED.value:
            return PartnerResult(row.id, decide("wrong_state", state=row.state))
        await record_event(conn, at=circ.now(), event="CANCEL_REQUESTED", actor_role=R(role).value,
                           actor=actor, request_id=row.id, item_id=item.id, from_state=row.state,
                           to_state=row.state, channel=channel, branch=branch,
                           reason=reason or REASON_CANCEL_ON_ARRIVAL)
        return PartnerResult(row.id, decide("cancel_on_arrival"))

    return await _on_request(circ, request_id, step)


async def partner_requests(circ: Circulation, *, branch: str | None = None,
                           states: tuple[str, ...] | None = None) -> dict[str, list[dict]]:
    """Staff list of partner requests (the counter's 連携貸出 list), by state in the order
    of the flow: each with title, the university and its copy (barcode, owning branch,
    shelving location), the patron, the requesting counter, dates and what to do next.
    ``branch`` keeps one counter's requests; ``states`` some states (default: those
    still in progress)."""
    wanted = states or tuple(st.value for st in PARTNER_NEXT_STEP)
    q = (select(s.requests, s.items.c.barcode, s.items.c.partner, s.items.c.owning_branch,
                s.items.c.location, s.items.c.call_number, s.patrons.c.card_number,
                s.patrons.c.name.label("patron_name"))
         .join(s.items, s.items.c.id == s.requests.c.item_id)
         .join(s.patrons, s.patrons.c.id == s.requests.c.patron_id)
         .where(s.requests.c.kind == KIND, s.requests.c.state.in_(wanted)))
    if branch is not None:
        q = q.where(s.requests.c.pickup_branch == branch)
    async with circ.db.read() as conn:
        rows = (await conn.execute(q.order_by(s.requests.c.placed_at, s.requests.c.id))).all()
    out: dict[str, list[dict]] = {}
    order = {st: i for i, st in enumerate(PARTNER_STATE_ORDER)}
    for st in sorted({r.state for r in rows}, key=lambda x: order.get(x, len(order))):
        out[st] = []
    for r in rows:
        found = partner_of(circ, r.partner)
        out[r.state].append({
            "request_id": r.id, "state": r.state, "status_ja": STATUS_JA[r.state],
            "next_step": PARTNER_NEXT_STEP.get(r.state, ""), "title_id": r.title_id, "title": r.title,
            "partner": r.partner, "partner_name": found[1].name if found else r.partner,
            "barcode": r.barcode, "owning_branch": r.owning_branch,
            "owning_name": found[1].branches.get(r.owning_branch, r.owning_branch) if found else r.owning_branch,
            "location": r.location, "call_number": r.call_number,
            "card": r.card_number, "patron_name": r.patron_name,
            "pickup_branch": r.pickup_branch, "pickup_name": circ.branch_name(r.pickup_branch),
            "placed_at": r.placed_at, "ready_at": r.ready_at, "shelf_deadline": r.shelf_deadline,
            "contact_method": r.contact_method, "memo": r.memo})
    return out


# --------------------------------------------------------------------------- the plug-in

async def _cancel_shipped(circ: Circulation, **kw) -> Decision:
    """``holds.cancel`` of a SHIPPED partner request by staff: noted, carried out on arrival."""
    return (await cancel(circ, **kw)).decision


LEG = routing.Leg(name="partner", request_kind=KIND, owns=lambda item_row: bool(item_row.partner),
                  route=route_partner_copy, cancel_shipped=_cancel_shipped)
routing.register_leg(LEG)
