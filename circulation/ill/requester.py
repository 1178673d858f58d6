"""The requester role: our patron borrows a partner's copy.

A partner request is a ``requests`` row of kind ``partner`` (see
:mod:`circulation.partners`) whose copy is a partner's item row.  It is created either
at the counter for a university copy the union catalog names (``partners.request_item``,
the 連携貸出 form) or by title with :func:`place` (``POST /api/v1/staff/ill/requests``),
whose copy is a placeholder item (``ill`` true, barcode ``ILL<request id>``) that takes
the supplier's item id when the copy is Loaned.

Each supplier asked is a leg (:data:`lifecycle.ill.REQUESTER`).  The rota is the
configured partners that hold the title in the union catalog, lend that material and
are available, in their configured order; a leg that ends Unfilled, with a declined
offer, or without an answer in ``[ill] answer_days`` (:func:`give_up_silent`) moves the
request to the next (ROTA_NEXT), and after the last one the request is UNFILLED
(END_OF_ROTA), which staff see in the ILL queue and the patron among the cancelled
requests (入手不可).

What each supplier message does to the patron's request:

==============================  ================================================================
WillSupply                      PARTNER_WILL_SUPPLY (→ WILL_SUPPLY)
RetryPossible, conditions       PARTNER_CONDITIONS (→ CONDITION_PENDING): staff accept or decline
Unfilled                        the next supplier (ROTA_NEXT) or END_OF_ROTA (→ UNFILLED)
Loaned                          PARTNER_SHIPPED (→ SHIPPED), the copy in transit to the pickup branch
Recalled                        RECALL (→ RECALLED) of the patron's loan, a ``loan_recalled`` notice
Overdue                         a ``loan_overdue`` notice
RenewResponse yes / no          the loan's due date moves (RENEW, ``renewal_done``) / ``renewal_refused``
CancelResponse yes / no         CANCEL_ACCEPTED (→ CANCELLED) / CANCEL_REFUSED (→ WILL_SUPPLY)
LoanCompleted                   LOAN_COMPLETED (→ COMPLETED)
CompletedWithoutReturn          DECLARE_LOST (→ LOST)
==============================  ================================================================

Receiving the copy, lending it, the return at the pickup branch only and the return
shipment are the ordinary partner-copy flow (:mod:`circulation.partners`); the messages
those steps owe the supplier (Received, ShippedReturn, Cancel) are sent by :mod:`.sync`.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from connectors import iso18626 as I
from connectors.iso18626 import model as m
from connectors.iso18626.config import Partner
from lifecycle import ill as L
from lifecycle import item_table as it
from lifecycle import loan_table as lnt
from lifecycle import policies
from lifecycle import table as lt
from lifecycle.model import Request

from .. import notices, routing
from .. import schema as s
from ..reads import patron_snapshot
from ..store import (
    LIVE_REQUEST_STATES,
    NotFound,
    get_row,
    is_unique_violation,
    item_transition,
    loan_transition,
    lock_one,
    lock_title_queue,
    record_event,
    transition,
)
from .common import (
    Ill,
    dumps,
    get_leg,
    header_for_leg,
    leg_transition,
    plausible,
    queue_message,
)
from .titles import Title, isbn_of

E, S, R = lt.Event, lt.State, lt.Role
RE, RS, A = L.REvent, L.RState, L.Actor
KIND = "partner"
PLACEHOLDER = "ILL"                 # barcode prefix of a copy not yet known
REASON_UNFILLED = "提供館なし（入手不可）"
REASON_UNFILLED_EN = "no partner library could supply it"


@dataclass(frozen=True)
class Placed:
    request_id: int | None
    code: str = "ok"
    detail: dict | None = None

    @property
    def ok(self) -> bool:
        return self.request_id is not None


# --------------------------------------------------------------------------- partner rows

async def partner_library(conn: AsyncConnection, partner) -> tuple[str, str]:
    """(library code, branch code) standing for ``partner`` (an ILL partner or an NCIP
    client: ``library``, ``name``, ``code``) in the network tables: its union-catalog
    library (a university of the profiles keeps its own rows) and a branch
    ``<library>-ill`` for copies whose branch we do not know. Made on first use, each
    row in a savepoint: two first uses at once both end with the rows."""
    code = partner.library or f"ill-{partner.code}"
    if await _is_member_system(conn, code):
        # the partner is a separate node although the union catalog lists it under the
        # code of one of our own systems: its copies must not pass for that system's
        code = f"ill-{partner.code}"
    branch = f"{code}-ill"
    for table, key, values in ((s.libraries, code, dict(name=partner.name, kind="university")),
                               (s.branches, branch, dict(library=code, name=partner.name, pickup=False,
                                                         kind="library"))):
        if (await conn.execute(select(table.c.code).where(table.c.code == key))).first() is not None:
            continue
        try:
            async with conn.begin_nested():
                await conn.execute(insert(table).values(code=key, **values))
        except IntegrityError as e:
            if not is_unique_violation(e):
                raise
    return code, branch


async def _is_member_system(conn: AsyncConnection, code: str) -> bool:
    kind = (await conn.execute(select(s.libraries.c.kind).where(s.libraries.c.code == code))).scalar()
    return kind == "city"


def _rota(ill: Ill, title: Title | None, material_type: str, only: str | None) -> list[Partner]:
    libraries = set(title.libraries) if title is not None else None
    return ill.config.rota(libraries=libraries, material_type=material_type, only=only)


async def order_by_availability(ill: Ill, rota: list[Partner], isbn: str) -> list[Partner]:
    """The rota with the partners whose catalog says no copy is in now moved to its end
    (still asked: a catalog is a hint); those that cannot be asked keep their place.
    The partners are asked at once (``Partner.availability_sru``, ``Ill.probe``)."""
    if ill.probe is None or not isbn:
        return rota
    asked = [p for p in rota if p.availability_sru]
    answers = dict(zip([p.code for p in asked],
                       await asyncio.gather(*(ill.probe(p, isbn) for p in asked), return_exceptions=True)))

    def none_in(p: Partner) -> bool:
        a = answers.get(p.code)
        return a is not None and not isinstance(a, BaseException) and not a.any_in

    return [p for p in rota if not none_in(p)] + [p for p in rota if none_in(p)]


# --------------------------------------------------------------------------- placing

async def place(ill: Ill, *, card: str, pickup_branch: str, actor: str, title_id: str | None = None,
                isbn: str | None = None, supplier: str | None = None, channel: str = "counter",
                memo: str = "", role=R.STAFF) -> Placed:
    """A partner request of patron ``card`` for a title (by our title id or ISBN), to be
    collected at ``pickup_branch``; ``supplier`` (an agency id value) asks only that
    partner.  Refusals (nothing written): ``unknown_title``, ``ill_not_offered`` (the
    patron's system takes no part in ILL), ``pickup_not_service_point``, ``owned_locally`` (a
    copy of the patron's own system can be reserved instead), ``no_lender`` (no partner
    of the rota holds it), ``duplicate_request``.

    Placed by the patron (``role`` patron, on the web), the request is also a リクエスト
    for a title the system does not own, so once the ILL checks above pass (``owned_locally``
    and ``no_lender`` first: they tell the patron what to do instead) the profile's rules
    for requests decide (``policies.can_place`` with no copy: ``requests_not_offered``,
    ``channel_not_allowed`` when ``channel`` is not one of its request channels, the area,
    blocks, ``duplicate_request`` and limits, the pickup branch and the contact method);
    staff placing it at the counter decide themselves, as before."""
    if not title_id and not isbn:
        raise ValueError("give title_id or isbn")
    tid = title_id or f"isbn:{isbn}"
    title = await ill.titles.describe(tid)
    if title is None:
        return Placed(None, "unknown_title", {"title_id": tid})
    material = title.material_type or "book"
    rota = await order_by_availability(ill, _rota(ill, title, material, supplier), title.isbn)

    async def work(conn: AsyncConnection) -> Placed:
        now = ill.local_now()
        await lock_title_queue(conn, title.title_id, title.title)
        patron = await get_row(conn, s.patrons, s.patrons.c.card_number == card, what=f"patron {card!r}",
                               for_update=True)
        system = patron.library
        if system not in ill.circ.profiles or not ill.config.serves(system):
            return Placed(None, "ill_not_offered", {"library": system})
        profile = ill.circ.profile(system)
        if pickup_branch not in profile.branches or not profile.branches[pickup_branch].branch.pickup:
            return Placed(None, "pickup_not_service_point", {"branch": pickup_branch})
        own = (await conn.execute(select(func.count()).select_from(s.items).where(
            s.items.c.title_id == title.title_id, s.items.c.library == system,
            s.items.c.circulating.is_(True), s.items.c.status.notin_(("lost", "withdrawn"))))).scalar()
        if own:
            return Placed(None, "owned_locally", {"copies": own})
        if not rota:
            return Placed(None, "no_lender", {"supplier": supplier})
        if R(role) == R.PATRON:
            candidate = Request(id="new", patron_card=card, title_id=title.title_id, kind="request",
                                material_type=material, pickup_branch=pickup_branch,
                                contact_method=patron.default_contact_method or "none", channel=channel,
                                placed_at=now, submitted_at_branch=pickup_branch, memo=memo)
            d = policies.can_place(profile, await patron_snapshot(conn, patron), None, candidate, now)
            if not d.allowed:
                return Placed(None, d.code, dict(d.details))
        dup = (await conn.execute(select(s.requests.c.id).where(
            s.requests.c.patron_id == patron.id, s.requests.c.title_id == title.title_id,
            s.requests.c.state.in_(LIVE_REQUEST_STATES + (S.ON_LOAN.value, S.OVERDUE.value))))).first()
        if dup is not None:
            return Placed(None, "duplicate_request", {"request_id": dup.id})
        first = rota[0]
        lib, branch = await partner_library(conn, first)
        res = await conn.execute(s.requests.insert().values(
            patron_id=patron.id, library=system, title_id=title.title_id, kind=KIND, material_type=material,
            pickup_branch=pickup_branch, contact_method=patron.default_contact_method, channel=channel,
            state=S.NEW.value, placed_at=now, submitted_at_branch=pickup_branch, memo=memo,
            title=title.title or title.title_id, rota=" ".join(p.code for p in rota), updated_at=now))
        rid = res.inserted_primary_key[0]
        item = await conn.execute(s.items.insert().values(
            barcode=f"{PLACEHOLDER}{rid:08d}", title_id=title.title_id, library=lib, owning_branch=branch,
            current_branch=branch, material_type=material, partner=lib, ill=True, updated_at=now))
        item_id = item.inserted_primary_key[0]
        await conn.execute(update(s.requests).where(s.requests.c.id == rid).values(item_id=item_id))
        await record_event(conn, at=now, event="PLACE", actor_role=R(role).value, actor=actor, request_id=rid,
                           item_id=item_id, to_state=S.NEW.value, channel=channel, branch=pickup_branch,
                           reason=f"ILL {title.title_id}")
        for ev in (E.VALIDATE, E.SEND_TO_PARTNER):
            row = await get_row(conn, s.requests, s.requests.c.id == rid, what="request")
            await transition(conn, row, ev, role=R.SYSTEM, actor=actor, at=now, channel=channel,
                             branch=pickup_branch, reason=first.code if ev == E.SEND_TO_PARTNER else "")
        row = await get_row(conn, s.requests, s.requests.c.id == rid, what="request")
        await notices.enqueue(conn, kind="hold_received", patron_id=patron.id, dedupe_key=f"hold_received:{rid}",
                              at=now, request_id=rid, data=notices.hold_data(ill.circ, row, placed_at=now))
        await start_leg(ill, conn, row, first, title)
        return Placed(rid, "ok", {"supplier": first.code})

    out = await ill.circ.db.run(work)
    if out.ok:
        ill.changed()
    return out


async def start_leg(ill: Ill, conn: AsyncConnection, request_row, partner: Partner, title: Title | None, *,
                    previous=None, max_cost: m.Costs | None = None) -> int:
    """A new leg of ``request_row`` to ``partner`` and its Request in the outbox."""
    now = ill.local_now()
    attempt = 1 + ((await conn.execute(select(func.max(s.ill_legs.c.attempt)).where(
        s.ill_legs.c.request_id == request_row.id))).scalar() or 0)
    rid = f"{request_row.id}-{attempt}"
    res = await conn.execute(insert(s.ill_legs).values(
        request_id=request_row.id, partner=partner.code, rid=rid, attempt=attempt,
        request_type="Retry" if previous is not None else "New",
        previous_leg_id=previous.id if previous is not None else None, state=RS.NEW.value,
        answer_by=now + timedelta(days=ill.config.answer_days), created_at=now, updated_at=now))
    leg_id = res.inserted_primary_key[0]
    leg = await get_leg(conn, leg_id)
    await queue_message(ill, conn, partner, await _request_message(ill, conn, request_row, leg, partner, title,
                                                                   previous, max_cost), leg_id=leg_id)
    return leg_id


async def _request_message(ill: Ill, conn: AsyncConnection, row, leg, partner: Partner, title: Title | None,
                           previous, max_cost) -> m.Request:
    title = title or await ill.titles.describe(row.title_id, conn)
    isbn = (title.isbn if title else "") or isbn_of(row.title_id)
    item = await get_row(conn, s.items, s.items.c.id == row.item_id, what="item") if row.item_id else None
    named = item is not None and not item.ill
    bib = m.BibliographicInfo(
        supplier_unique_record_id=(title.local_ids.get(partner.library or "") if title else None) or None,
        title=(title.title if title and title.title else row.title) or None,
        author=(title.author if title else "") or None,
        bibliographic_item_id=(m.BibliographicItemId(isbn, m.SchemeValue("ISBN")),) if isbn else (),
        bibliographic_record_id=(m.BibliographicRecordId(m.SchemeValue("unioncat"), row.title_id),))
    pub = (m.PublicationInfo(publisher=title.publisher or None, publication_date=title.date or None)
           if title and (title.publisher or title.date) else None)
    note = f"copy {item.barcode} ({item.call_number})".replace(" ()", "") if named else None
    svc = m.ServiceInfo(service_type=m.ServiceType.LOAN,
                        request_type=m.RequestType.RETRY if previous is not None else m.RequestType.NEW,
                        request_sub_type=(m.RequestSubType.PATRON_REQUEST,),
                        requesting_agency_previous_request_id=previous.rid if previous is not None else None,
                        note=note)
    pickup = ill.circ.branch_name(row.pickup_branch)
    delivery = (m.RequestedDeliveryInfo(sort_order=1, address=m.Address(physical_address=m.PhysicalAddress(
        line1=pickup))),)
    return m.Request(
        header=header_for_leg(ill, leg, partner), bibliographic_info=bib, publication_info=pub, service_info=svc,
        requested_delivery_info=delivery,
        requesting_agency_info=m.RequestingAgencyInfo(name=ill.config.name),
        patron_info=m.PatronInfo(patron_id=f"R{row.id}"),     # no personal data leaves the library
        billing_info=m.BillingInfo(maximum_costs=max_cost) if max_cost is not None else None)


# --------------------------------------------------------------------------- the rota

async def next_supplier(ill: Ill, conn: AsyncConnection, request_row, *, why: str, actor: str) -> str | None:
    """After a leg ended without supplying: ask the next partner of the rota (ROTA_NEXT),
    or end the request (END_OF_ROTA → UNFILLED, ``hold_cancelled`` notice). Returns the
    next partner's code, or None at the end of the rota."""
    now = ill.local_now()
    row = await get_row(conn, s.requests, s.requests.c.id == request_row.id, what="request", for_update=True)
    if row.state not in (S.SENT.value, S.WILL_SUPPLY.value, S.CONDITION_PENDING.value):
        return None
    item = await get_row(conn, s.items, s.items.c.id == row.item_id, what="item")
    tried = {r.partner for r in (await conn.execute(select(s.ill_legs.c.partner).where(
        s.ill_legs.c.request_id == row.id))).all()}
    nxt = None
    if item.ill:                      # by title: the rota goes on; a named copy has one supplier
        if row.rota:                  # the order fixed at placing, less partners no longer lending
            lending = {p.code for p in ill.config.rota(material_type=row.material_type)}
            order = [ill.config.partners[c] for c in row.rota.split() if c in lending]
        else:
            order = _rota(ill, await ill.titles.describe(row.title_id, conn), row.material_type, None)
        nxt = next((p for p in order if p.code not in tried), None)
    if nxt is None:
        await transition(conn, row, E.END_OF_ROTA, role=R.SYSTEM, actor=actor, at=now, reason=why,
                         cancelled_at=now, cancel_reason=REASON_UNFILLED, cancel_channel="system")
        await notices.enqueue(conn, kind="hold_cancelled", patron_id=row.patron_id,
                              dedupe_key=f"hold_cancelled:{row.id}", at=now, request_id=row.id,
                              data=notices.hold_data(ill.circ, row, reason=REASON_UNFILLED, channel="system"))
        return None
    lib, branch = await partner_library(conn, nxt)
    await conn.execute(update(s.items).where(s.items.c.id == item.id).values(
        library=lib, partner=lib, owning_branch=branch, current_branch=branch, updated_at=now))
    await transition(conn, row, E.ROTA_NEXT, role=R.SYSTEM, actor=actor, at=now, reason=f"{why}; next {nxt.code}")
    row = await get_row(conn, s.requests, s.requests.c.id == row.id, what="request")
    await start_leg(ill, conn, row, nxt, None)
    return nxt.code


# --------------------------------------------------------------------------- supplier messages

async def _lock_request(conn: AsyncConnection, request_id: int):
    """The request's title queue, its copy, then the request (the documented lock order)."""
    row = await get_row(conn, s.requests, s.requests.c.id == request_id, what="request")
    await lock_title_queue(conn, row.title_id)
    item = await lock_one(conn, s.items, s.items.c.id == row.item_id) if row.item_id else None
    row = await get_row(conn, s.requests, s.requests.c.id == request_id, what="request", for_update=True)
    return row, item


async def receive_supplying(ill: Ill, conn: AsyncConnection, msg: m.SupplyingAgencyMessage, partner: Partner
                            ) -> tuple[tuple[m.ErrorType, str] | None, int | None]:
    """A supplier's message about one of our legs: (error for the confirmation, leg id)."""
    h = msg.header
    leg = (await conn.execute(select(s.ill_legs).where(s.ill_legs.c.rid == h.requesting_agency_request_id))).first()
    if leg is None or leg.partner != partner.code:
        return (m.ErrorType.UNRECOGNISED_DATA_VALUE,
                f"no request {h.requesting_agency_request_id} to agency {partner.code}"), None
    row, item = await _lock_request(conn, leg.request_id)
    leg = await get_leg(conn, leg.id, lock=True)
    info, status = msg.message_info, msg.status_info.status
    reason = info.reason_for_message.value
    conditions = partner.dialect.conditions_in_note(info.note)
    status_value = status.value
    if status is m.Status.WILL_SUPPLY and conditions and RS(leg.state) is not RS.RETRY_POSSIBLE:
        status_value = m.Status.RETRY_POSSIBLE.value      # conditions in a note: an offer
    inbound = L.requester_event(RS(leg.state), reason, status_value,
                                info.answer_yes_no.value if info.answer_yes_no else None)
    if inbound.refused:
        return (m.ErrorType.UNRECOGNISED_DATA_VALUE, inbound.why), leg.id
    values: dict = {}
    if h.supplying_agency_request_id and not leg.supplier_rid:
        values["supplier_rid"] = h.supplying_agency_request_id
    if info.note:
        values["note"] = info.note[:2000]
    now = ill.local_now()
    due = plausible(ill.local(msg.status_info.due_date), now)
    if due is not None and (status in (m.Status.LOANED, m.Status.OVERDUE, m.Status.RECALLED)
                            or inbound.event is RE.RENEW_YES):
        values["due_at"] = due
    if inbound.event is None:
        if values:
            await conn.execute(update(s.ill_legs).where(s.ill_legs.c.id == leg.id).values(updated_at=now, **values))
        return None, leg.id
    ev = inbound.event
    if ev is RE.S_RETRY_POSSIBLE:
        values["offer"] = dumps(_offer(info, msg.delivery_info, conditions))
    if ev is RE.S_LOANED and msg.delivery_info is not None and msg.delivery_info.item_id:
        values["item_ref"] = msg.delivery_info.item_id[:200]
    before = RS(leg.state)
    after = await leg_transition(ill, conn, leg, ev, actor_role=A.PARTNER, actor=partner.code,
                                 reason=f"{reason} {status.value}", **values)
    leg = await get_leg(conn, leg.id)
    await _request_effect(ill, conn, row, item, leg, before, after, ev, partner, info)
    return None, leg.id


def _offer(info: m.MessageInfo, delivery: m.DeliveryInfo | None, conditions: str | None) -> dict:
    out: dict = {"reason": info.reason_retry.text if info.reason_retry else None, "note": info.note or ""}
    if info.offered_costs is not None:
        out["cost"] = str(info.offered_costs.monetary_value)
        out["currency"] = info.offered_costs.currency_code.text
    if delivery is not None and delivery.loan_condition is not None:
        out["condition"] = delivery.loan_condition.text
    if conditions:
        out["condition"], out["in_note"] = conditions, True
    for k in ("retry_after", "retry_before"):
        v = getattr(info, k)
        if v is not None:
            out[k] = v.isoformat()
    return out


async def _request_effect(ill: Ill, conn: AsyncConnection, row, item, leg, before: RS, after: RS, ev: RE,
                          partner: Partner, info: m.MessageInfo) -> None:
    """What a leg's move means for the patron's request."""
    now = ill.local_now()
    state = S(row.state)
    actor = partner.code

    async def move(event: lt.Event, **kw) -> None:
        nonlocal row
        if lt.TRANSITIONS[S(row.state)].get(event) is not None:
            await transition(conn, row, event, role=R.PARTNER if R.PARTNER in lt.ACTORS[event] else R.SYSTEM,
                             actor=actor, at=now, **kw)
            row = await get_row(conn, s.requests, s.requests.c.id == row.id, what="request")

    if after in L.ROTA_MOVES_ON and before not in L.REQUESTER.terminal:
        await next_supplier(ill, conn, row, why=f"{partner.code}: {after.value}", actor="ill")
    elif ev is RE.S_WILL_SUPPLY and state is S.SENT:
        await move(E.PARTNER_WILL_SUPPLY, reason=info.note or "")
    elif ev is RE.S_RETRY_POSSIBLE and state in (S.SENT, S.WILL_SUPPLY):
        await move(E.PARTNER_CONDITIONS, reason=info.note or "offer")
    elif ev is RE.S_LOANED and before is not RS.LOANED and state in (
            S.SENT, S.WILL_SUPPLY, S.CONDITION_PENDING, S.CANCEL_PENDING):
        await _shipped(ill, conn, row, item, leg, partner)
    elif ev is RE.CANCEL_YES or (after is RS.CANCELLED and before is RS.CANCEL_PENDING):
        if state is S.CANCEL_PENDING:
            await _cancel_accepted(ill, conn, row, partner)
    elif ev is RE.CANCEL_NO and state is S.CANCEL_PENDING:
        await move(E.CANCEL_REFUSED)
    elif ev is RE.S_RECALLED and after is RS.RECALLED and state in (S.ON_LOAN, S.OVERDUE):
        await move(E.RECALL, reason=info.note or "recalled by the lender")
        await _loan_notice(conn, row, "loan_recalled", now, leg)
    elif ev is RE.S_OVERDUE and state in (S.ON_LOAN, S.OVERDUE, S.RECALLED):
        await _loan_notice(conn, row, "loan_overdue", now, leg)
    elif ev in (RE.RENEW_YES, RE.RENEW_NO):
        await _renew_answer(ill, conn, row, leg, ev is RE.RENEW_YES, partner)
    elif ev is RE.S_LOAN_COMPLETED and state is S.AWAITING_LOAN_COMPLETED:
        await move(E.LOAN_COMPLETED, reason="the lender has it back")
        if it.ItemStatus(item.status) is it.ItemStatus.IN_TRANSIT:     # back on the lender's shelf
            await routing.close_transits(ill.circ, conn, item, item.owning_branch, role=R.PARTNER, actor=actor)
            await item_transition(conn, item, it.ItemEvent.RESHELVE, at=now, current_branch=item.owning_branch)
    elif ev is RE.S_COMPLETED_WITHOUT_RETURN:
        await move(E.DECLARE_LOST, reason="CompletedWithoutReturn")


async def _shipped(ill: Ill, conn: AsyncConnection, row, item, leg, partner: Partner) -> None:
    """Loaned: PARTNER_SHIPPED, the copy (named by the supplier's item id when it was a
    placeholder) in transit to the pickup branch."""
    now = ill.local_now()
    if item.ill and leg.item_ref:
        barcode = leg.item_ref
        taken = (await conn.execute(select(s.items.c.id).where(s.items.c.barcode == barcode,
                                                               s.items.c.id != item.id))).first()
        if taken is not None:
            barcode = f"{partner.code}-{leg.item_ref}"[:64]
        await conn.execute(update(s.items).where(s.items.c.id == item.id).values(barcode=barcode, updated_at=now))
    await transition(conn, row, E.PARTNER_SHIPPED, role=R.PARTNER, actor=partner.code, at=now,
                     reason=f"to {row.pickup_branch}, due {leg.due_at or '?'}")
    await routing.send(ill.circ, conn, item, item.current_branch or item.owning_branch, row.pickup_branch,
                       "partner", request_id=row.id, role=R.PARTNER, actor=partner.code)


async def _cancel_accepted(ill: Ill, conn: AsyncConnection, row, partner: Partner) -> None:
    now = ill.local_now()
    asked = (await conn.execute(select(s.events.c.channel, s.events.c.reason).where(
        s.events.c.request_id == row.id, s.events.c.event == E.REQUEST_CANCEL.value)
        .order_by(s.events.c.id.desc()))).first()
    channel = (asked.channel if asked is not None else None) or "counter"
    why = policies.recorded_reason(asked.reason if asked is not None else "", channel)
    await transition(conn, row, E.CANCEL_ACCEPTED, role=R.PARTNER, actor=partner.code, at=now, reason=why,
                     cancelled_at=now, cancel_reason=why, cancel_channel=channel)
    await notices.enqueue(conn, kind="hold_cancelled", patron_id=row.patron_id,
                          dedupe_key=f"hold_cancelled:{row.id}", at=now, request_id=row.id,
                          data=notices.hold_data(ill.circ, row, reason=why, channel=channel))


async def _open_loan_of(conn: AsyncConnection, row):
    return (await conn.execute(select(s.loans).where(
        s.loans.c.request_id == row.id, s.loans.c.returned_at.is_(None)))).first()


async def _loan_notice(conn: AsyncConnection, row, kind: str, now, leg) -> None:
    loan = await _open_loan_of(conn, row)
    if loan is None:
        return
    await notices.enqueue(conn, kind=kind, patron_id=row.patron_id, loan_id=loan.id, request_id=row.id,
                          dedupe_key=f"{kind}:{loan.id}:{leg.due_at or ''}", at=now,
                          data={"title": row.title, "lender_due": leg.due_at.date() if leg.due_at else None})


async def _renew_answer(ill: Ill, conn: AsyncConnection, row, leg, yes: bool, partner: Partner) -> None:
    """RenewResponse: yes → the patron's loan is due on the lender's new due date (the old
    one kept when none is given), RENEW, ``renewal_done``; no → ``renewal_refused``."""
    now = ill.local_now()
    loan = await _open_loan_of(conn, row)
    if loan is None:
        return
    if not yes:
        await notices.enqueue(conn, kind="renewal_refused", patron_id=row.patron_id, loan_id=loan.id,
                              request_id=row.id, dedupe_key=f"renewal_refused:{loan.id}:{loan.renewals}",
                              at=now, data={"title": row.title})
        await record_event(conn, at=now, event="RENEW_REFUSED", actor_role=R.PARTNER.value, actor=partner.code,
                           request_id=row.id, loan_id=loan.id, reason="the lender refused the renewal")
        return
    new_due = leg.due_at.date() if leg.due_at is not None else loan.due
    await loan_transition(conn, loan, lnt.LoanEvent.RENEW, role=R.PARTNER, actor=partner.code, at=now,
                          channel="ill", reason=f"the lender renewed: due {new_due.isoformat()}",
                          due=new_due, renewals=loan.renewals + 1, renewed_via="ill")
    if lt.TRANSITIONS[S(row.state)].get(E.RENEW) is not None:
        await transition(conn, row, E.RENEW, role=R.PARTNER, actor=partner.code, at=now,
                         reason=f"lender renewed: due {new_due}")
    await notices.enqueue(conn, kind="renewal_done", patron_id=row.patron_id, loan_id=loan.id,
                          dedupe_key=f"renewal_done:{loan.id}:{loan.renewals + 1}", at=now,
                          data={"title": row.title, "due": new_due})


# --------------------------------------------------------------------------- staff and patrons

@dataclass(frozen=True)
class Done:
    ok: bool
    code: str = "ok"
    detail: dict | None = None


async def _on_leg(ill: Ill, leg_id: int, step, *, library: str | None = None) -> Done:
    async def work(conn: AsyncConnection) -> Done:
        leg = await get_leg(conn, leg_id)
        row, item = await _lock_request(conn, leg.request_id)
        if library is not None and row.library != library:
            return Done(False, "other_library")
        leg = await get_leg(conn, leg_id, lock=True)
        return await step(conn, row, item, leg, ill.partner(leg.partner))

    out = await ill.circ.db.run(work)
    if out.ok:
        ill.changed()
    return out


async def accept_offer(ill: Ill, *, leg_id: int, actor: str, library: str | None = None) -> Done:
    """Staff accept the supplier's offer: conditions given in a note (dialect) are agreed
    with a Notification; a RetryPossible is answered by a Retry request to the same
    supplier (with the offered cost as the maximum). The request waits for supply."""
    async def step(conn, row, item, leg, partner):
        if RS(leg.state) is not RS.RETRY_POSSIBLE:
            return Done(False, "wrong_state", {"state": leg.state})
        offer = json.loads(leg.offer or "{}")
        now = ill.local_now()
        if offer.get("in_note") and partner.dialect.condition_accept_token:
            await leg_transition(ill, conn, leg, RE.ACCEPT_CONDITIONS, actor_role=A.STAFF, actor=actor)
            await queue_message(ill, conn, partner, I.requesting_message(
                header_for_leg(ill, leg, partner), m.Action.NOTIFICATION,
                note=f"{partner.dialect.condition_accept_token} {offer.get('condition', '')}".strip()),
                leg_id=leg.id)
        else:
            await leg_transition(ill, conn, leg, RE.ACCEPT_RETRY, actor_role=A.STAFF, actor=actor)
            cost = None
            if offer.get("cost"):
                cost = m.Costs(m.SchemeValue(offer.get("currency") or "JPY"), Decimal(offer["cost"]))
            await start_leg(ill, conn, row, partner, None, previous=leg, max_cost=cost)
        if lt.TRANSITIONS[S(row.state)].get(E.CONDITIONS_ACCEPTED) is not None:
            await transition(conn, row, E.CONDITIONS_ACCEPTED, role=R.STAFF, actor=actor, at=now,
                             reason=f"offer of {partner.code} accepted")
        return Done(True)

    return await _on_leg(ill, leg_id, step, library=library)


async def decline_offer(ill: Ill, *, leg_id: int, actor: str, library: str | None = None) -> Done:
    """Staff decline the offer: the next supplier of the rota, or the end of it."""
    async def step(conn, row, item, leg, partner):
        if RS(leg.state) is not RS.RETRY_POSSIBLE:
            return Done(False, "wrong_state", {"state": leg.state})
        await leg_transition(ill, conn, leg, RE.DECLINE_RETRY, actor_role=A.STAFF, actor=actor)
        nxt = await next_supplier(ill, conn, row, why=f"offer of {partner.code} declined", actor=actor)
        return Done(True, detail={"next": nxt})

    return await _on_leg(ill, leg_id, step, library=library)


async def give_up(ill: Ill, *, leg_id: int, actor: str, role: A = A.STAFF, library: str | None = None) -> Done:
    """This supplier is not waited for any longer (staff, or silent past ``answer_days``):
    TIMED_OUT, a Cancel to it if it had the Request, and the next supplier."""
    async def step(conn, row, item, leg, partner):
        state = RS(leg.state)
        if not L.REQUESTER.allows(state, RE.GIVE_UP, role):
            return Done(False, "wrong_state", {"state": leg.state})
        await leg_transition(ill, conn, leg, RE.GIVE_UP, actor_role=role, actor=actor)
        if state is RS.SEND_FAILED or state is RS.NEW:
            await conn.execute(update(s.ill_messages).where(
                s.ill_messages.c.leg_id == leg.id, s.ill_messages.c.direction == "out",
                s.ill_messages.c.status.in_(("pending", "failed"))).values(status="cancelled"))
        else:
            await queue_message(ill, conn, partner, I.requesting_message(
                header_for_leg(ill, leg, partner), m.Action.CANCEL, note="no answer in time"), leg_id=leg.id)
        nxt = await next_supplier(ill, conn, row, why=f"{partner.code} gave no answer", actor=actor)
        return Done(True, detail={"next": nxt})

    return await _on_leg(ill, leg_id, step, library=library)


async def give_up_silent(ill: Ill) -> int:
    """The job: legs whose supplier has not answered by ``answer_by`` are given up."""
    now = ill.local_now()
    async with ill.circ.db.read() as conn:
        ids = [r.id for r in (await conn.execute(select(s.ill_legs.c.id).where(
            s.ill_legs.c.state.in_([st.value for st in (RS.REQUESTED, RS.EXPECT_TO_SUPPLY, RS.SEND_FAILED)]),
            s.ill_legs.c.answer_by < now))).all()]
    done = 0
    for leg_id in ids:
        out = await give_up(ill, leg_id=leg_id, actor="answer_days", role=A.SYSTEM)
        done += out.ok
    return done


async def request_renewal(ill: Ill, *, loan_id: int, actor: str, card: str | None = None) -> Done:
    """A patron's (or staff's) renewal of a partner's copy: Renew to the lender; the
    answer moves the due date or tells the patron no (``renewal_refused``)."""
    async def work(conn: AsyncConnection) -> Done:
        loan = await get_row(conn, s.loans, s.loans.c.id == loan_id, what=f"loan {loan_id}")
        if loan.request_id is None:
            return Done(False, "not_a_partner_loan")
        row, item = await _lock_request(conn, loan.request_id)
        if card is not None:
            patron = await get_row(conn, s.patrons, s.patrons.c.id == row.patron_id, what="patron")
            if patron.card_number != card:
                raise NotFound(f"loan {loan_id}")
        leg = await current_leg(conn, row.id)
        if leg is None:
            return Done(False, "not_a_partner_loan")
        partner = ill.partner(leg.partner)
        if RS(leg.state) is RS.LOANED and S(row.state) in (S.ON_LOAN, S.OVERDUE):
            leg = await note_received(ill, conn, leg, partner)
        state = RS(leg.state)
        if state is RS.RENEW_PENDING:
            return Done(True, "renewal_pending")
        if state is RS.RECALLED:
            return Done(False, "recalled")
        if not L.REQUESTER.allows(state, RE.RENEW):
            return Done(False, "wrong_state", {"state": leg.state})
        await leg_transition(ill, conn, leg, RE.RENEW, actor_role=A.STAFF, actor=actor)
        await queue_message(ill, conn, partner, I.requesting_message(
            header_for_leg(ill, leg, partner), m.Action.RENEW), leg_id=leg.id)
        await record_event(conn, at=ill.local_now(), event="RENEW_ASKED", actor_role="patron" if card else "staff",
                           actor=actor, request_id=row.id, loan_id=loan_id, reason=f"Renew sent to {partner.code}")
        return Done(True, "renewal_pending")

    out = await ill.circ.db.run(work)
    if out.ok:
        ill.changed()
    return out


async def note_received(ill: Ill, conn: AsyncConnection, leg, partner: Partner):
    """The copy of a LOANED leg is here: RECEIVE and ``Received`` to the supplier (the
    reconciler does this after a receipt; a renewal asked at once after the check-out
    does it first). Returns the leg as it is now."""
    await leg_transition(ill, conn, leg, RE.RECEIVE, actor_role=A.STAFF, actor="receipt")
    await queue_message(ill, conn, partner, I.requesting_message(
        header_for_leg(ill, leg, partner), m.Action.RECEIVED), leg_id=leg.id)
    return await get_leg(conn, leg.id)


async def current_leg(conn: AsyncConnection, request_id: int):
    """The request's latest leg (None when it has none)."""
    return (await conn.execute(select(s.ill_legs).where(s.ill_legs.c.request_id == request_id)
                               .order_by(s.ill_legs.c.attempt.desc()).limit(1))).first()


__all__ = ["Placed", "Done", "place", "start_leg", "next_supplier", "receive_supplying", "accept_offer",
           "decline_offer", "give_up", "give_up_silent", "request_renewal", "current_leg", "partner_library"]
