"""The supplier role: a partner borrows one of our copies.

An incoming Request is checked against our holdings at once (in the same
transaction as its confirmation): if no library system we serve holds the title the
partner gets ``Unfilled`` (NotHeld); otherwise the supply enters the staff queue
(EXPECT_TO_SUPPLY) and the partner gets ``ExpectToSupply`` (unless its dialect refuses
that status).  Staff then answer (:func:`will_supply`, :func:`offer_retry`,
:func:`cannot_supply`), pull the copy (the pull list in :mod:`.lists`) and ship it
(:func:`ship`): a loan of our copy to the partner as an institutional borrower (a
``patrons`` row of category ``institution`` per library system and partner, card
``ILL:<system>:<agency>``), ``Loaned`` with the due date.  The partner's Received,
Renew, Cancel and ShippedReturn move the supply by :data:`lifecycle.ill.SUPPLIER`;
Renew and Cancel wait for staff (:func:`answer_renew`, :func:`answer_cancel`) unless
the table's auto answers apply (a cancel after shipping: no).  When the copy is
checked in at any of our counters (``loans.check_in``), :mod:`.sync` completes the
supply and sends ``LoanCompleted``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from connectors import iso18626 as I
from connectors.iso18626 import model as m
from connectors.iso18626.config import Partner
from lifecycle import ill as L
from lifecycle import item_table as it
from lifecycle import loan_table as lnt

from .. import schema as s
from ..store import (
    NotFound,
    get_row,
    is_unique_violation,
    item_transition,
    loan_transition,
    lock_one,
    lock_title_queue,
    open_loan,
)
from .common import (
    Ill,
    dumps,
    get_supply,
    header_for_supply,
    queue_message,
    supply_transition,
)
from .titles import Title, Wanted, normal_isbn

SE, SS, A = L.SEvent, L.SState, L.Actor
RFM, ST = m.ReasonForMessage, m.Status

# what a StatusRequest is answered with, per supply state
STATUS_OF: dict[SS, ST] = {
    SS.REQUEST_RECEIVED: ST.REQUEST_RECEIVED, SS.EXPECT_TO_SUPPLY: ST.EXPECT_TO_SUPPLY,
    SS.WILL_SUPPLY: ST.WILL_SUPPLY, SS.RETRY_OFFERED: ST.RETRY_POSSIBLE,
    SS.CANCEL_REQUESTED: ST.WILL_SUPPLY, SS.SHIPPED: ST.LOANED, SS.RECEIVED: ST.LOANED,
    SS.RENEW_REQUESTED: ST.LOANED, SS.RECALLED: ST.RECALLED, SS.RETURN_SHIPPED: ST.LOANED,
    SS.COMPLETED: ST.LOAN_COMPLETED, SS.UNFILLED: ST.UNFILLED, SS.CANCELLED: ST.CANCELLED,
    SS.LOST: ST.COMPLETED_WITHOUT_RETURN,
}

INSTITUTION = "institution"
CHANNEL = "ill"


@dataclass(frozen=True)
class Outcome:
    """What a staff action did: ``ok``, or the refusal ``code`` (with the state)."""
    ok: bool
    code: str = "ok"
    state: str | None = None
    detail: dict | None = None


def _no(code: str, supply=None, **detail) -> Outcome:
    return Outcome(False, code, supply.state if supply is not None else None, detail or None)


def due_datetime(ill: Ill, d: date) -> datetime:
    """A loan's due day as the aware moment it ends."""
    return ill.end_of(d)


def wanted_of(bib: m.BibliographicInfo) -> Wanted:
    isbns, issns = [], []
    for bid in bib.bibliographic_item_id:
        code = bid.bibliographic_item_identifier_code.text.strip().upper()
        if code in ("ISBN", "ISBN13", "ISBN10"):
            isbns.append(normal_isbn(bid.bibliographic_item_identifier))
        elif code == "ISSN":
            issns.append(bid.bibliographic_item_identifier.strip())
    rids = [r for r in ([bib.supplier_unique_record_id] if bib.supplier_unique_record_id else [])]
    rids += [r.bibliographic_record_identifier for r in bib.bibliographic_record_id]
    return Wanted(title=bib.title or "", author=bib.author or "", isbns=tuple(i for i in isbns if i),
                  issns=tuple(issns), record_ids=tuple(rids))


def _bib_json(msg: m.Request, title: Title | None) -> str:
    bib = msg.bibliographic_info
    svc = msg.service_info
    billing = msg.billing_info
    data = {
        "title": bib.title or (title.title if title else ""), "author": bib.author or "",
        "isbn": [b.bibliographic_item_identifier for b in bib.bibliographic_item_id],
        "edition": bib.edition or "", "volume": bib.volume or "",
        "service_type": svc.service_type.value if svc else "Loan",
        "any_edition": bool(svc and svc.any_edition is m.YesNo.Y),
        "need_before": svc.need_before_date.isoformat() if svc and svc.need_before_date else None,
        "note": (svc.note if svc else None) or "",
        "max_cost": (f"{billing.maximum_costs.monetary_value} {billing.maximum_costs.currency_code.text}"
                     if billing and billing.maximum_costs else None),
        "patron": (msg.patron_info.patron_id if msg.patron_info else None),
    }
    return dumps(data)


# --------------------------------------------------------------------------- incoming

async def receive_request(ill: Ill, conn: AsyncConnection, msg: m.Request, partner: Partner
                          ) -> tuple[tuple[m.ErrorType, str] | None, int | None]:
    """A partner's Request: (error for the confirmation or None, the supply id)."""
    h = msg.header
    now = ill.local_now()
    existing = (await conn.execute(select(s.ill_supplies).where(
        s.ill_supplies.c.partner == partner.code, s.ill_supplies.c.rid == h.requesting_agency_request_id))).first()
    retry = msg.service_info is not None and msg.service_info.request_type is m.RequestType.RETRY
    if existing is not None:
        if retry and L.SUPPLIER.allows(L.SState(existing.state), SE.A_RETRY_REQUEST):
            await supply_transition(ill, conn, existing, SE.A_RETRY_REQUEST, actor_role=A.PARTNER,
                                    actor=partner.code, reason="retry", bib=_bib_json(msg, None))
            return None, existing.id
        return (m.ErrorType.UNRECOGNISED_DATA_VALUE,
                f"requestingAgencyRequestId {h.requesting_agency_request_id} is already in use"), existing.id
    title = await ill.titles.find(wanted_of(msg.bibliographic_info), conn)
    ours = sorted(lib for lib in (title.libraries if title else ())
                  if lib in ill.circ.profiles and ill.config.serves(lib))
    try:
        async with conn.begin_nested():
            res = await conn.execute(insert(s.ill_supplies).values(
                partner=partner.code, rid=h.requesting_agency_request_id, state=SS.REQUEST_RECEIVED.value,
                title_id=title.title_id if title else None, libraries=" ".join(ours),
                bib=_bib_json(msg, title), created_at=now, updated_at=now))
    except IntegrityError as e:
        if not is_unique_violation(e):
            raise
        return (m.ErrorType.UNRECOGNISED_DATA_VALUE,
                f"requestingAgencyRequestId {h.requesting_agency_request_id} is already in use"), None
    sid = res.inserted_primary_key[0]
    supply = await get_supply(conn, sid)
    header = header_for_supply(ill, supply, partner)
    if not partner.borrows:
        await supply_transition(ill, conn, supply, SE.NOT_HELD, actor_role=A.SYSTEM, actor="ill",
                                reason="this partner does not borrow from us")
        await queue_message(ill, conn, partner, I.supplying_message(
            header, RFM.REQUEST_RESPONSE, ST.UNFILLED, now=ill.now(),
            reason_unfilled=m.ReasonUnfilled.POLICY_PROBLEM, note="no lending agreement"), supply_id=sid)
    elif not ours:
        await supply_transition(ill, conn, supply, SE.NOT_HELD, actor_role=A.SYSTEM, actor="ill",
                                reason="no member library holds the title")
        await queue_message(ill, conn, partner, I.supplying_message(
            header, RFM.REQUEST_RESPONSE, ST.UNFILLED, now=ill.now(),
            reason_unfilled=m.ReasonUnfilled.NOT_HELD), supply_id=sid)
    else:
        await supply_transition(ill, conn, supply, SE.ACCEPT, actor_role=A.SYSTEM, actor="ill",
                                reason=f"held by {', '.join(ours)}")
        if partner.dialect.expect_to_supply:
            await queue_message(ill, conn, partner, I.supplying_message(
                header, RFM.REQUEST_RESPONSE, ST.EXPECT_TO_SUPPLY, now=ill.now()), supply_id=sid)
    return None, sid


async def receive_action(ill: Ill, conn: AsyncConnection, msg: m.RequestingAgencyMessage, partner: Partner
                         ) -> tuple[tuple[m.ErrorType, str] | None, int | None]:
    """A partner's requestingAgencyMessage about one of our supplies."""
    h = msg.header
    supply = (await conn.execute(select(s.ill_supplies).where(
        s.ill_supplies.c.partner == partner.code, s.ill_supplies.c.rid == h.requesting_agency_request_id)
        .with_for_update())).first()
    if supply is None:
        return (m.ErrorType.UNRECOGNISED_DATA_VALUE,
                f"no request {h.requesting_agency_request_id} of agency {partner.code}"), None
    event = L.supplier_event(msg.action.value)
    if event is None:
        return (m.ErrorType.UNSUPPORTED_ACTION_TYPE, f"{msg.action.value} is not supported"), supply.id
    state = L.SState(supply.state)
    if not L.SUPPLIER.allows(state, event, A.PARTNER):
        return (m.ErrorType.UNRECOGNISED_DATA_VALUE,
                f"{msg.action.value} is not possible in state {state.value}"), supply.id
    note = {"note": msg.note} if msg.note else {}
    header = header_for_supply(ill, supply, partner)
    if event is SE.A_STATUS_REQUEST:
        await queue_message(ill, conn, partner, await _status_message(ill, conn, supply, header,
                                                                      RFM.STATUS_REQUEST_RESPONSE),
                            supply_id=supply.id)
        return None, supply.id
    auto = L.AUTO_ANSWER.get((state, event))
    pending = {SE.A_CANCEL: "cancel", SE.A_RENEW: "renew"}.get(event) if auto is None else None
    values = dict(note)
    if pending:
        values["pending"] = pending
    new = await supply_transition(ill, conn, supply, event, actor_role=A.PARTNER, actor=partner.code,
                                  reason=msg.note or "", **values)
    if auto is not None:
        supply = await get_supply(conn, supply.id)
        if auto in (SE.CANCEL_YES, SE.CANCEL_NO):
            status = ST.CANCELLED if auto is SE.CANCEL_YES else STATUS_OF[new]
            await queue_message(ill, conn, partner, I.supplying_message(
                header, RFM.CANCEL_RESPONSE, status, now=ill.now(), answer=auto is SE.CANCEL_YES,
                note=None if auto is SE.CANCEL_YES else "already shipped"), supply_id=supply.id)
        else:
            await queue_message(ill, conn, partner, I.supplying_message(
                header, RFM.RENEW_RESPONSE, STATUS_OF[new], now=ill.now(), answer=False,
                due_date=due_datetime(ill, supply.due_at.date()) if supply.due_at else None,
                note="recalled"), supply_id=supply.id)
    return None, supply.id


async def _status_message(ill: Ill, conn: AsyncConnection, supply, header: m.Header,
                          reason: m.ReasonForMessage) -> m.SupplyingAgencyMessage:
    status = STATUS_OF[L.SState(supply.state)]
    due = None
    if supply.loan_id is not None:
        loan = await get_row(conn, s.loans, s.loans.c.id == supply.loan_id, what="loan")
        due = due_datetime(ill, loan.due)
        if loan.state == "OVERDUE" and status is ST.LOANED:
            status = ST.OVERDUE
    return I.supplying_message(header, reason, status, now=ill.now(), due_date=due)


# --------------------------------------------------------------------------- staff

async def _staff_step(ill: Ill, supply_id: int, library: str | None, step) -> Outcome:
    """Run ``step(conn, supply, partner)`` on one supply under its row lock; staff of a
    system that does not hold the title are refused (``other_library``)."""
    async def work(conn: AsyncConnection) -> Outcome:
        supply = await get_supply(conn, supply_id, lock=True)
        if library is not None and library not in supply.libraries.split() and supply.library != library:
            return _no("other_library", supply)
        partner = ill.partner(supply.partner)
        return await step(conn, supply, partner)

    out = await ill.circ.db.run(work)
    if out.ok:
        ill.changed()
    return out


def _allowed(supply, event: L.SEvent) -> bool:
    return L.SUPPLIER.allows(L.SState(supply.state), event, A.STAFF)


async def will_supply(ill: Ill, *, supply_id: int, actor: str, library: str | None = None,
                      note: str | None = None) -> Outcome:
    async def step(conn, supply, partner):
        if not _allowed(supply, SE.WILL_SUPPLY):
            return _no("wrong_state", supply)
        await supply_transition(ill, conn, supply, SE.WILL_SUPPLY, actor_role=A.STAFF, actor=actor,
                                library=library or supply.library)
        await queue_message(ill, conn, partner, I.supplying_message(
            header_for_supply(ill, supply, partner), RFM.STATUS_CHANGE, ST.WILL_SUPPLY, now=ill.now(),
            note=note), supply_id=supply.id)
        return Outcome(True)

    return await _staff_step(ill, supply_id, library, step)


async def offer_retry(ill: Ill, *, supply_id: int, actor: str, reason: str, library: str | None = None,
                      cost: Decimal | None = None, currency: str = "JPY", condition: str | None = None,
                      note: str | None = None, retry_after: datetime | None = None) -> Outcome:
    """RetryPossible: ``reason`` one of the ReasonRetry values (cost, loan condition, on
    loan, not found as cited, …) with the offered cost or condition.  For a partner whose
    dialect puts conditions in notes, a condition is sent as a WillSupply whose note
    carries it."""
    async def step(conn, supply, partner):
        if not _allowed(supply, SE.OFFER_RETRY):
            return _no("wrong_state", supply)
        header = header_for_supply(ill, supply, partner)
        token = partner.dialect.condition_note_token
        if condition and token:
            await supply_transition(ill, conn, supply, SE.WILL_SUPPLY, actor_role=A.STAFF, actor=actor,
                                    reason=f"condition {condition}", library=library or supply.library)
            await queue_message(ill, conn, partner, I.supplying_message(
                header, RFM.STATUS_CHANGE, ST.WILL_SUPPLY, now=ill.now(),
                note=f"{token} {condition}" + (f" {note}" if note else "")), supply_id=supply.id)
            return Outcome(True)
        await supply_transition(ill, conn, supply, SE.OFFER_RETRY, actor_role=A.STAFF, actor=actor,
                                reason=reason, library=library or supply.library)
        costs = m.Costs(m.SchemeValue(currency), cost) if cost is not None else None
        delivery = (m.DeliveryInfo(date_sent=ill.now(), loan_condition=m.SchemeValue(condition))
                    if condition else None)
        msg = I.supplying_message(header, RFM.REQUEST_RESPONSE, ST.RETRY_POSSIBLE, now=ill.now(),
                                  reason_retry=reason, offered_costs=costs, note=note,
                                  retry_after=ill.aware(retry_after))
        if delivery is not None:
            msg = m.SupplyingAgencyMessage(header=msg.header, message_info=msg.message_info,
                                           status_info=msg.status_info, delivery_info=delivery)
        await queue_message(ill, conn, partner, msg, supply_id=supply.id)
        return Outcome(True)

    return await _staff_step(ill, supply_id, library, step)


async def cannot_supply(ill: Ill, *, supply_id: int, actor: str, library: str | None = None,
                        reason: str = m.ReasonUnfilled.NOT_AVAILABLE_FOR_ILL, note: str | None = None) -> Outcome:
    async def step(conn, supply, partner):
        if not _allowed(supply, SE.CANNOT_SUPPLY):
            return _no("wrong_state", supply)
        await supply_transition(ill, conn, supply, SE.CANNOT_SUPPLY, actor_role=A.STAFF, actor=actor,
                                reason=reason, pending=None)
        await queue_message(ill, conn, partner, I.supplying_message(
            header_for_supply(ill, supply, partner), RFM.STATUS_CHANGE, ST.UNFILLED, now=ill.now(),
            reason_unfilled=reason, note=note), supply_id=supply.id)
        return Outcome(True)

    return await _staff_step(ill, supply_id, library, step)


async def institution(ill: Ill, conn: AsyncConnection, system: str, partner: Partner) -> int:
    """The patron row standing for ``partner`` as a borrower of ``system`` (made once)."""
    card = f"ILL:{system}:{partner.code}"[:32]
    row = (await conn.execute(select(s.patrons.c.id).where(s.patrons.c.card_number == card))).first()
    if row is not None:
        return row.id
    try:
        async with conn.begin_nested():
            res = await conn.execute(insert(s.patrons).values(
                card_number=card, library=system, name=partner.name, home_municipality=partner.name,
                category=INSTITUTION, created_at=ill.local_now()))
            return res.inserted_primary_key[0]
    except IntegrityError as e:
        if not is_unique_violation(e):
            raise
        return (await conn.execute(select(s.patrons.c.id).where(s.patrons.c.card_number == card))).scalar_one()


async def ship(ill: Ill, *, supply_id: int, barcode: str, branch: str, actor: str,
               library: str | None = None, due: date | None = None) -> Outcome:
    """Our copy ``barcode`` leaves ``branch`` for the partner: a loan to the partner's
    institutional borrower record (due in ``[ill] due_days`` unless ``due``), the copy on
    loan, ``Loaned`` with the due date and the item id."""
    async def work(conn: AsyncConnection) -> Outcome:
        item = (await conn.execute(select(s.items).where(s.items.c.barcode == barcode))).first()
        if item is None:
            raise NotFound(f"item {barcode!r}")
        await lock_title_queue(conn, item.title_id)
        item = await lock_one(conn, s.items, s.items.c.id == item.id)
        supply = await get_supply(conn, supply_id, lock=True)
        if library is not None and library not in supply.libraries.split() and supply.library != library:
            return _no("other_library", supply)
        if not _allowed(supply, SE.SHIP):
            return _no("wrong_state", supply)
        if item.library not in supply.libraries.split() or (library is not None and item.library != library):
            return _no("item_other_system", supply, library=item.library)
        if supply.title_id is not None and item.title_id != supply.title_id:
            return _no("item_other_title", supply, title_id=item.title_id)
        if item.status != "available" or item.partner or item.ill or not item.circulating:
            return _no("item_not_available", supply, status=item.status)
        secured = (await conn.execute(select(s.requests.c.id).where(
            s.requests.c.item_id == item.id, s.requests.c.state.in_(s.SECURED_STATES)))).first()
        if secured is not None:
            return _no("held_for_another_patron", supply, request_id=secured.id)
        partner = ill.partner(supply.partner)
        now = ill.local_now()
        due_day = due or (now.date() + timedelta(days=ill.config.due_days))
        borrower = await institution(ill, conn, item.library, partner)
        loan_id = await open_loan(conn, item_id=item.id, patron_id=borrower, branch=branch, channel=CHANNEL,
                                  at=now, due=due_day, role="staff", actor=actor,
                                  reason=f"ILL to {partner.code}, due {due_day.isoformat()}")
        if loan_id is None:
            return _no("item_on_loan", supply)
        await item_transition(conn, item, it.ItemEvent.LEND, at=now, current_branch=branch)
        await supply_transition(ill, conn, supply, SE.SHIP, actor_role=A.STAFF, actor=actor,
                                item_id=item.id, loan_id=loan_id, library=item.library,
                                due_at=datetime.combine(due_day, time(23, 59, 59)))
        await queue_message(ill, conn, partner, I.supplying_message(
            header_for_supply(ill, supply, partner), RFM.STATUS_CHANGE, ST.LOANED, now=ill.now(),
            due_date=due_datetime(ill, due_day),
            delivery=m.DeliveryInfo(date_sent=ill.now(), item_id=item.barcode,
                                    sent_via=m.SchemeValue("Mail"))), supply_id=supply.id)
        return Outcome(True, detail={"loan_id": loan_id, "due": due_day.isoformat()})

    out = await ill.circ.db.run(work)
    if out.ok:
        ill.changed()
    return out


async def answer_cancel(ill: Ill, *, supply_id: int, yes: bool, actor: str, library: str | None = None) -> Outcome:
    async def step(conn, supply, partner):
        event = SE.CANCEL_YES if yes else SE.CANCEL_NO
        if not _allowed(supply, event):
            return _no("wrong_state", supply)
        new = await supply_transition(ill, conn, supply, event, actor_role=A.STAFF, actor=actor, pending=None)
        await queue_message(ill, conn, partner, I.supplying_message(
            header_for_supply(ill, supply, partner), RFM.CANCEL_RESPONSE,
            ST.CANCELLED if yes else STATUS_OF[new], now=ill.now(), answer=yes), supply_id=supply.id)
        return Outcome(True)

    return await _staff_step(ill, supply_id, library, step)


async def answer_renew(ill: Ill, *, supply_id: int, yes: bool, actor: str, library: str | None = None,
                       due: date | None = None) -> Outcome:
    """Yes: the loan runs ``[ill] due_days`` more from today or from its due date,
    whichever is later (or to ``due``); RenewResponse Y with the new due date. No:
    RenewResponse N with the due date kept."""
    async def step(conn, supply, partner):
        event = SE.RENEW_YES if yes else SE.RENEW_NO
        if not _allowed(supply, event) or supply.loan_id is None:
            return _no("wrong_state", supply)
        loan = await lock_one(conn, s.loans, s.loans.c.id == supply.loan_id)
        new_due = loan.due
        now = ill.local_now()
        if yes:
            new_due = due or (max(loan.due, now.date()) + timedelta(days=ill.config.due_days))
            await loan_transition(conn, loan, lnt.LoanEvent.RENEW, role="staff", actor=actor, at=now,
                                  channel=CHANNEL, reason=f"ILL renewal for {partner.code}, due {new_due}",
                                  due=new_due, renewals=loan.renewals + 1, renewed_via=CHANNEL)
        new = await supply_transition(ill, conn, supply, event, actor_role=A.STAFF, actor=actor, pending=None,
                                      due_at=datetime.combine(new_due, time(23, 59, 59)),
                                      overdue_sent=False if yes else supply.overdue_sent)
        await queue_message(ill, conn, partner, I.supplying_message(
            header_for_supply(ill, supply, partner), RFM.RENEW_RESPONSE, STATUS_OF[new], now=ill.now(),
            answer=yes, due_date=due_datetime(ill, new_due)), supply_id=supply.id)
        return Outcome(True, detail={"due": new_due.isoformat()})

    return await _staff_step(ill, supply_id, library, step)


async def recall(ill: Ill, *, supply_id: int, actor: str, library: str | None = None,
                 note: str | None = None) -> Outcome:
    async def step(conn, supply, partner):
        if not _allowed(supply, SE.RECALL):
            return _no("wrong_state", supply)
        await supply_transition(ill, conn, supply, SE.RECALL, actor_role=A.STAFF, actor=actor, pending=None)
        await queue_message(ill, conn, partner, I.supplying_message(
            header_for_supply(ill, supply, partner), RFM.STATUS_CHANGE, ST.RECALLED, now=ill.now(),
            note=note), supply_id=supply.id)
        return Outcome(True)

    return await _staff_step(ill, supply_id, library, step)


async def declare_lost(ill: Ill, *, supply_id: int, actor: str, library: str | None = None) -> Outcome:
    """The partner lost our copy: CompletedWithoutReturn; the loan and the copy are lost."""
    async def step(conn, supply, partner):
        if not _allowed(supply, SE.DECLARE_LOST) or supply.loan_id is None:
            return _no("wrong_state", supply)
        now = ill.local_now()
        loan = await lock_one(conn, s.loans, s.loans.c.id == supply.loan_id)
        item = await lock_one(conn, s.items, s.items.c.id == supply.item_id)
        await loan_transition(conn, loan, lnt.LoanEvent.DECLARE_LOST, role="staff", actor=actor, at=now,
                              channel=CHANNEL, reason=f"lost by {partner.code}")
        await item_transition(conn, item, it.ItemEvent.DECLARE_LOST, at=now)
        await supply_transition(ill, conn, supply, SE.DECLARE_LOST, actor_role=A.STAFF, actor=actor)
        await queue_message(ill, conn, partner, I.supplying_message(
            header_for_supply(ill, supply, partner), RFM.STATUS_CHANGE, ST.COMPLETED_WITHOUT_RETURN,
            now=ill.now()), supply_id=supply.id)
        return Outcome(True)

    return await _staff_step(ill, supply_id, library, step)


async def complete_returned(ill: Ill, conn: AsyncConnection, supply, loan) -> bool:
    """The copy of ``supply`` was checked in (its loan closed): CHECK_IN (→ COMPLETED) and
    LoanCompleted. Called by :mod:`.sync` in the caller's transaction."""
    if not L.SUPPLIER.allows(L.SState(supply.state), SE.CHECK_IN):
        return False
    partner = ill.partner(supply.partner)
    await supply_transition(ill, conn, supply, SE.CHECK_IN, actor_role=A.STAFF, actor="check-in",
                            reason=f"returned {loan.returned_at}", pending=None)
    await queue_message(ill, conn, partner, I.supplying_message(
        header_for_supply(ill, supply, partner), RFM.STATUS_CHANGE, ST.LOAN_COMPLETED, now=ill.now()),
        supply_id=supply.id)
    return True


async def notify_overdue(ill: Ill, conn: AsyncConnection, supply, loan) -> bool:
    """Our loan to the partner is overdue: StatusChange Overdue, once per due date."""
    if supply.overdue_sent or not L.SUPPLIER.allows(L.SState(supply.state), SE.OVERDUE):
        return False
    partner = ill.partner(supply.partner)
    await supply_transition(ill, conn, supply, SE.OVERDUE, actor_role=A.SYSTEM, actor="overdue",
                            overdue_sent=True)
    await queue_message(ill, conn, partner, I.supplying_message(
        header_for_supply(ill, supply, partner), RFM.STATUS_CHANGE, ST.OVERDUE, now=ill.now(),
        due_date=due_datetime(ill, loan.due)), supply_id=supply.id)
    return True
