"""What staff read about ILL: the queues of both roles, the supplier's pull list per
branch, and the message history of one request or supply (reads only)."""
from __future__ import annotations

import json

from sqlalchemy import or_, select

from lifecycle import ill as L

from .. import schema as s
from .common import Ill

# what staff do next, per leg state (requester) and supply state (supplier)
LEG_NEXT = {
    "NEW": "送信待ち", "SEND_FAILED": "送信できません（相手館の停止？）：再送または次の館へ",
    "REQUESTED": "提供館の回答待ち", "EXPECT_TO_SUPPLY": "提供館の回答待ち", "WILL_SUPPLY": "発送待ち",
    "RETRY_POSSIBLE": "条件の回答（承諾・辞退）", "CANCEL_PENDING": "取消の回答待ち",
    "LOANED": "到着したら受入", "RECEIVED": "利用者に貸出・返却待ち", "RENEW_PENDING": "延長の回答待ち",
    "RECALLED": "返却を督促", "RETURN_SHIPPED": "提供館の受領待ち",
}
SUPPLY_NEXT = {
    "EXPECT_TO_SUPPLY": "提供可否の回答", "WILL_SUPPLY": "資料を出納して発送", "RETRY_OFFERED": "依頼館の回答待ち",
    "CANCEL_REQUESTED": "取消の可否を回答", "SHIPPED": "依頼館の受領待ち", "RECEIVED": "貸出中（依頼館）",
    "RENEW_REQUESTED": "延長の可否を回答", "RECALLED": "返却待ち（返却請求済）",
    "RETURN_SHIPPED": "返送到着後に返却処理",
}
ATTENTION_LEGS = ("SEND_FAILED", "RETRY_POSSIBLE")
ATTENTION_SUPPLIES = ("EXPECT_TO_SUPPLY", "CANCEL_REQUESTED", "RENEW_REQUESTED", "RETURN_SHIPPED")


async def requester_queue(ill: Ill, library: str, *, include_closed: bool = False) -> list[dict]:
    """Our patrons' partner requests of ``library``'s system with their current leg, the
    ones needing staff first (an offer to answer, a Request not delivered, the end of
    the rota), then by date."""
    q = (select(s.requests, s.patrons.c.card_number, s.items.c.barcode, s.items.c.ill)
         .join(s.patrons, s.patrons.c.id == s.requests.c.patron_id)
         .outerjoin(s.items, s.items.c.id == s.requests.c.item_id)
         .where(s.requests.c.kind == "partner", s.requests.c.library == library))
    if not include_closed:     # the end of the rota (UNFILLED) stays in the queue for staff to see
        q = q.where(s.requests.c.state.notin_(("COMPLETED", "CANCELLED", "REJECTED", "SHELF_EXPIRED", "LOST")))
    async with ill.circ.db.read() as conn:
        reqs = (await conn.execute(q.order_by(s.requests.c.placed_at, s.requests.c.id))).all()
        ids = [r.id for r in reqs]
        legs = (await conn.execute(select(s.ill_legs).where(s.ill_legs.c.request_id.in_(ids))
                                   .order_by(s.ill_legs.c.attempt))).all() if ids else []
    by_request: dict[int, list] = {}
    for leg in legs:
        by_request.setdefault(leg.request_id, []).append(leg)
    out = []
    for r in reqs:
        rlegs = by_request.get(r.id, [])
        cur = rlegs[-1] if rlegs else None
        partner = ill.config.partners.get(cur.partner) if cur is not None else None
        attention = (r.state == "UNFILLED" or (cur is not None and cur.state in ATTENTION_LEGS))
        out.append({
            "request_id": r.id, "state": r.state, "title": r.title, "title_id": r.title_id,
            "card": r.card_number, "pickup_branch": r.pickup_branch, "placed_at": r.placed_at,
            "barcode": r.barcode, "by_title": bool(r.ill), "attention": attention,
            "leg": None if cur is None else {
                "leg_id": cur.id, "rid": cur.rid, "partner": cur.partner,
                "partner_name": partner.name if partner else cur.partner, "state": cur.state,
                "next_step": LEG_NEXT.get(cur.state, ""), "offer": json.loads(cur.offer or "{}"),
                "note": cur.note, "due_at": cur.due_at, "answer_by": cur.answer_by, "last_error": cur.last_error},
            "tried": [{"partner": x.partner, "state": x.state} for x in rlegs],
            "next_step": "入手不可（全提供館で不可）" if r.state == "UNFILLED" else
            (LEG_NEXT.get(cur.state, "") if cur is not None else "送信待ち"),
        })
    out.sort(key=lambda d: (not d["attention"],))
    return out


async def supplier_queue(ill: Ill, library: str, *, include_closed: bool = False) -> list[dict]:
    """Partners' requests that ``library``'s system holds or supplies, the questions to
    answer first."""
    q = select(s.ill_supplies).where(or_(s.ill_supplies.c.library == library,
                                         s.ill_supplies.c.libraries.like(f"%{library}%")))
    if not include_closed:
        q = q.where(s.ill_supplies.c.state.notin_([st.value for st in L.SUPPLIER.terminal]))
    async with ill.circ.db.read() as conn:
        rows = (await conn.execute(q.order_by(s.ill_supplies.c.created_at, s.ill_supplies.c.id))).all()
    out = []
    for r in rows:
        if library not in r.libraries.split() and r.library != library:
            continue
        partner = ill.config.partners.get(r.partner)
        out.append({
            "supply_id": r.id, "partner": r.partner, "partner_name": partner.name if partner else r.partner,
            "rid": r.rid, "state": r.state, "next_step": SUPPLY_NEXT.get(r.state, ""),
            "attention": r.state in ATTENTION_SUPPLIES, "pending": r.pending, "title_id": r.title_id,
            "bib": json.loads(r.bib or "{}"), "holding_libraries": r.libraries.split(), "library": r.library,
            "item_id": r.item_id, "loan_id": r.loan_id, "due_at": r.due_at, "created_at": r.created_at})
    out.sort(key=lambda d: (not d["attention"],))
    return out


async def pull_list(ill: Ill, branch: str) -> list[dict]:
    """Copies to take off the shelves of ``branch`` for partners (supplies waiting to be
    shipped whose title has an available copy there)."""
    q = (select(s.ill_supplies.c.id, s.ill_supplies.c.partner, s.ill_supplies.c.state, s.ill_supplies.c.bib,
                s.items.c.barcode, s.items.c.call_number, s.items.c.location, s.items.c.title_id)
         .join(s.items, s.items.c.title_id == s.ill_supplies.c.title_id)
         .where(s.ill_supplies.c.state.in_(("EXPECT_TO_SUPPLY", "WILL_SUPPLY")),
                s.items.c.owning_branch == branch, s.items.c.status == "available",
                s.items.c.circulating.is_(True), s.items.c.ill.is_(False), s.items.c.partner.is_(None)))
    async with ill.circ.db.read() as conn:
        rows = (await conn.execute(q.order_by(s.ill_supplies.c.id, s.items.c.barcode))).all()
    return [{"supply_id": r.id, "partner": r.partner, "state": r.state, "barcode": r.barcode,
             "call_number": r.call_number, "location": r.location, "title_id": r.title_id,
             "title": json.loads(r.bib or "{}").get("title", "")} for r in rows]


async def history(ill: Ill, *, request_id: int | None = None, supply_id: int | None = None) -> list[dict]:
    """Every message in and out about one request (all its legs) or one supply, with
    what was answered, in order."""
    if (request_id is None) == (supply_id is None):
        raise ValueError("give request_id or supply_id")
    async with ill.circ.db.read() as conn:
        if request_id is not None:
            leg_ids = [r.id for r in (await conn.execute(select(s.ill_legs.c.id).where(
                s.ill_legs.c.request_id == request_id))).all()]
            where = s.ill_messages.c.leg_id.in_(leg_ids) if leg_ids else s.ill_messages.c.id < 0
        else:
            where = s.ill_messages.c.supply_id == supply_id
        rows = (await conn.execute(select(s.ill_messages).where(where).order_by(s.ill_messages.c.id))).all()
    return [{"id": r.id, "direction": r.direction, "partner": r.partner, "kind": r.kind, "summary": r.summary,
             "status": r.status, "error": r.error, "attempts": r.attempts, "at": r.at, "sent_at": r.sent_at,
             "leg_id": r.leg_id, "supply_id": r.supply_id, "body": r.body, "confirmation": r.confirmation}
            for r in rows]


async def supply_of(ill: Ill, supply_id: int, library: str) -> bool:
    """The supply exists and ``library``'s system holds its title or supplies it."""
    async with ill.circ.db.read() as conn:
        row = (await conn.execute(select(s.ill_supplies.c.libraries, s.ill_supplies.c.library).where(
            s.ill_supplies.c.id == supply_id))).first()
    return row is not None and (library in row.libraries.split() or row.library == library)


async def message_library(ill: Ill, message_id: int) -> set[str]:
    """The library systems a message concerns (its leg's request's, or its supply's)."""
    async with ill.circ.db.read() as conn:
        msg = (await conn.execute(select(s.ill_messages.c.leg_id, s.ill_messages.c.supply_id).where(
            s.ill_messages.c.id == message_id))).first()
        if msg is None:
            return set()
        if msg.leg_id is not None:
            lib = (await conn.execute(select(s.requests.c.library).join(
                s.ill_legs, s.ill_legs.c.request_id == s.requests.c.id).where(
                s.ill_legs.c.id == msg.leg_id))).scalar()
            return {lib} if lib else set()
        row = (await conn.execute(select(s.ill_supplies.c.libraries, s.ill_supplies.c.library).where(
            s.ill_supplies.c.id == msg.supply_id))).first()
    return set(row.libraries.split()) | ({row.library} if row.library else set()) if row else set()
