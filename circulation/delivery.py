"""有料図書宅配サービス (Hiroshima paid home delivery) on the database: registration and
its revocation, the dispatch list, shipping.

The rules are the pure ``lifecycle.policies`` functions read from the profile's
``[delivery]`` section; this module only applies them.

Flow
----
1. **Registration** (:func:`register`): staff accept the 利用申請書 handed in at a counter
   or sent by post. ``policies.can_register_delivery``: individual card of the city's
   own residents / workers / students (広域利用の方は利用できません), a guardian's consent
   for minors (``patrons.minor``; recorded in ``patrons.guardian_consent_at``), not
   already registered. Staff may **revoke** it (:func:`revoke`) with a reason code of
   ``policies.DELIVERY_REVOCATION_REASONS`` (住所不正確, 送料未払い, 本人の申出). Both
   leave an audit row (DELIVERY_REGISTERED / DELIVERY_REVOKED, ``events.patron_id``).
2. **Requests**: ``holds.place(..., delivery=True)`` (有料図書宅配専用よやく・リクエスト):
   ``policies.can_place_delivery`` (registered, delivery channels and materials) and then
   every ordinary placing rule, so it counts against the 20 reservations + requests.
   The pickup branch is the profile's ``delivery.dispatch_branch``.
3. **Ready**: the copy is trapped for the request at the dispatch branch (or sent there
   and arrives) as for any hold, but a delivery hold gets **no hold_ready notice and no
   shelf deadline** (nobody is asked to come, and it never expires): it appears on the
   dispatch branch's :func:`dispatch_list` until staff ship it. Staff may still cancel
   it before shipping (CANCEL_SECURED), and a patron who comes to the counter may borrow
   it as an ordinary counter loan.
4. **Shipping** (:func:`ship`): the check-out with channel ``delivery``
   (``loans.check_out`` → ``policies.can_check_out_delivery``): the copy readied for the
   patron's delivery request, registration still in force, the loan limit shared with
   counter loans (窓口貸出と合わせて10冊以内), due ``delivery.days`` (21) later including
   shipping, moved to an open day of the dispatch branch like every due date. The request
   becomes ON_LOAN: 発送後の取消はできません (``holds.cancel`` answers ``already_closed``).
5. **Renewal**: ``loans.renew`` as for any loan; ``policies.can_renew`` applies the
   ``[delivery.renewal]`` rule to a shipped loan (``Loan.delivery``): once, nobody
   waiting, before the due date, 14 days from the day asked, at the counter, on the web or
   by phone.
6. **Returns**: posted back → ``loans.check_in(return_kind="post")`` at the branch that
   receives it: returned when it arrives and is processed (広島市立図書館に届いた時点で
   返却となります; ``returns.processed_date_points`` has ``post``). 借受時のみ: returned at
   any counter or book drop as usual.

A revoked registration stops shipping (``delivery_not_registered``); holds already
placed stay for staff to cancel or for the patron to collect at the counter. The
postal address is not stored here (図書館に登録されている住所に送ります: staff use the
patron register); postage (着払い / 元払い) is not modelled.
"""
from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle import policies
from lifecycle.model import Decision
from lifecycle.reasons import decide
from lifecycle.table import Role, State

from . import loans
from . import schema as s
from .reads import patron_snapshot
from .store import get_row, patron_by_card, record_event


def _staff_only(role: Role) -> Decision | None:
    return None if role == Role.STAFF else decide("delivery_staff_only")


# --------------------------------------------------------------------------- registration

async def register(circ, *, card: str, channel: str, role, actor: str, branch: str | None = None,
                   guardian_consent: bool = False) -> Decision:
    """Accept a 有料図書宅配サービス利用申請書 handed in through ``channel`` ("counter" or
    "post") at ``branch``. ``guardian_consent``: the guardian consented on this
    application (a consent already on record counts too). Refusals, nothing written:
    ``delivery_staff_only``, ``delivery_not_offered``, ``delivery_already_registered``,
    ``delivery_category_not_allowed``, ``delivery_not_eligible_area``,
    ``channel_not_allowed``, ``delivery_guardian_consent_required``."""
    role = Role(role)

    async def work(conn: AsyncConnection) -> Decision:
        now = circ.now()
        patron = await patron_by_card(conn, card, lock=True)
        refused = _staff_only(role)
        if refused is not None:
            return refused
        profile = circ.profile(patron.library)
        snapshot = await patron_snapshot(conn, patron)
        consent = guardian_consent or patron.guardian_consent_at is not None
        decision = policies.can_register_delivery(profile, snapshot, channel=channel,
                                                  guardian_consent=consent)
        if not decision.allowed:
            return decision
        values = dict(delivery_registered_at=now, delivery_registered_via=channel,
                      delivery_revoked_at=None, delivery_revoked_reason=None)
        if guardian_consent and patron.guardian_consent_at is None:
            values["guardian_consent_at"] = now
        await conn.execute(update(s.patrons).where(s.patrons.c.id == patron.id).values(**values))
        notes = [f"via {channel}"]
        if patron.minor:
            notes.append("guardian consent" + (" given" if guardian_consent else " on record"))
        await record_event(conn, at=now, event="DELIVERY_REGISTERED", actor_role=role.value,
                           actor=actor, patron_id=patron.id, channel=channel, branch=branch,
                           reason=", ".join(notes))
        return decide("ok", registered_at=now)

    return await circ.db.run(work)


async def revoke(circ, *, card: str, reason: str, role, actor: str, note: str = "",
                 branch: str | None = None) -> Decision:
    """Staff end a patron's registration: ``reason`` is a code of
    ``policies.DELIVERY_REVOCATION_REASONS`` (``address_undeliverable``,
    ``postage_unpaid``, ``patron_request``; anything else is a ValueError), ``note`` free
    text for the audit. Refusals: ``delivery_staff_only``, ``delivery_not_registered``."""
    if reason not in policies.DELIVERY_REVOCATION_REASONS:
        raise ValueError(f"unknown revocation reason {reason!r}; "
                         f"one of {sorted(policies.DELIVERY_REVOCATION_REASONS)}")
    role = Role(role)

    async def work(conn: AsyncConnection) -> Decision:
        now = circ.now()
        patron = await patron_by_card(conn, card, lock=True)
        refused = _staff_only(role)
        if refused is not None:
            return refused
        if patron.delivery_registered_at is None:
            return decide("delivery_not_registered")
        await conn.execute(update(s.patrons).where(s.patrons.c.id == patron.id).values(
            delivery_registered_at=None, delivery_revoked_at=now, delivery_revoked_reason=reason))
        why = f"{reason}: {policies.DELIVERY_REVOCATION_REASONS[reason]}" + (f" ({note})" if note else "")
        await record_event(conn, at=now, event="DELIVERY_REVOKED", actor_role=role.value,
                           actor=actor, patron_id=patron.id, branch=branch, reason=why)
        return decide("ok", revoked_at=now)

    return await circ.db.run(work)


async def registration(circ, card: str) -> dict:
    """The patron's delivery registration (staff view)."""
    async with circ.db.read() as conn:
        p = await patron_by_card(conn, card)
    return {"registered": p.delivery_registered_at is not None,
            "registered_at": p.delivery_registered_at, "registered_via": p.delivery_registered_via,
            "minor": p.minor, "guardian_consent_at": p.guardian_consent_at,
            "revoked_at": p.delivery_revoked_at, "revoked_reason": p.delivery_revoked_reason}


# --------------------------------------------------------------------------- dispatch

async def dispatch_list(circ, branch: str) -> list[dict]:
    """Delivery holds ready to ship at ``branch`` (staff), oldest ready first: request,
    copy, title, patron, and whether the registration is still in force (a revoked one
    cannot be shipped)."""
    async with circ.db.read() as conn:
        rows = (await conn.execute(
            select(s.requests, s.items.c.barcode, s.patrons.c.card_number,
                   s.patrons.c.name.label("patron_name"), s.patrons.c.delivery_registered_at)
            .join(s.items, s.items.c.id == s.requests.c.item_id)
            .join(s.patrons, s.patrons.c.id == s.requests.c.patron_id)
            .where(s.requests.c.pickup_branch == branch, s.requests.c.delivery.is_(True),
                   s.requests.c.state == State.ON_HOLD_SHELF.value)
            .order_by(s.requests.c.ready_at, s.requests.c.id))).all()
    return [{"request_id": r.id, "barcode": r.barcode, "title_id": r.title_id, "title": r.title,
             "card": r.card_number, "patron_name": r.patron_name, "ready_at": r.ready_at,
             "registered": r.delivery_registered_at is not None} for r in rows]


async def ship(circ, *, barcode: str, role, actor: str) -> loans.CheckOutResult:
    """Ship the copy ``barcode`` readied for a delivery request: a check-out with channel
    ``delivery`` at the request's (dispatch) branch to its patron. A copy that is not a
    delivery hold on the shelf is refused with ``delivery_not_ready``; the check-out's
    own refusals (``delivery_not_registered``, ``loan_limit`` …) come back unchanged.
    Shipping cannot be undone (発送後の取消はできません): the request is ON_LOAN."""
    refused = _staff_only(Role(role))
    if refused is not None:
        return loans.CheckOutResult(None, None, refused)
    async with circ.db.read() as conn:
        item = await get_row(conn, s.items, s.items.c.barcode == barcode, what=f"item {barcode!r}")
        req = (await conn.execute(select(s.requests, s.patrons.c.card_number)
                                  .join(s.patrons, s.patrons.c.id == s.requests.c.patron_id)
                                  .where(s.requests.c.item_id == item.id,
                                         s.requests.c.state == State.ON_HOLD_SHELF.value))).first()
    if req is None or not req.delivery:
        return loans.CheckOutResult(None, None, decide("delivery_not_ready"))
    # check_out re-reads everything under its locks: a hold cancelled in between is no
    # longer the patron's own request, and channel "delivery" then refuses it.
    return await loans.check_out(circ, barcode=barcode, card=req.card_number,
                                 branch=req.pickup_branch, role=role, actor=actor,
                                 channel="delivery")

