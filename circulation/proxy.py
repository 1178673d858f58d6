"""代理での貸出 (proxy loans): the card holder's consent naming a proxy, on the database.

Hiroshima: 貸出利用券は、個人カードです … 但し、乳幼児や入院中の方などご本人による利用が
困難な場合は、本人了承のうえカードを預かり代理での貸出は可能です. Staff record the holder's
consent naming the proxy (:func:`record_consent`) and withdraw it when the holder asks
(:func:`revoke_consent`); ``loans.check_out(..., proxy=NAME)`` lends to that proxy only
while a consent naming them is live (``policies.can_lend_to_proxy``), and keeps the name
on the loan (``loans.proxy``) and in the CHECK_OUT audit reason. The profile's
``[proxy] loans`` says whether proxy loans exist at all (``not_offered``: every call here
is refused with ``proxy_loans_not_offered``).

Privacy (借りている資料の確認など、個人の情報は本人以外にはお答えできません): a consent
lets the proxy borrow with the card; it gives them no view of the holder's loans or
requests, and nothing here is exposed through the patron API. The consent rows are
for staff.

Every write is one unit of work under the patron row's lock (circulation/schema.py's
lock order) and leaves an audit row (``events.patron_id``): PROXY_CONSENT,
PROXY_CONSENT_REVOKED. Refusals are Decisions; an unknown card raises NotFound.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle import policies
from lifecycle.model import Decision
from lifecycle.reasons import decide
from lifecycle.table import Role

from . import schema as s
from .store import patron_by_card, record_event


@dataclass(frozen=True)
class ConsentResult:
    consent_id: int | None
    decision: Decision


async def live_consent_names(conn: AsyncConnection, patron_id: int) -> list[str]:
    """Names of the proxies the holder's live (not revoked) consents name."""
    return list((await conn.execute(select(s.patron_proxies.c.proxy_name).where(
        s.patron_proxies.c.patron_id == patron_id,
        s.patron_proxies.c.revoked_at.is_(None)))).scalars())


async def _live_consent(conn: AsyncConnection, patron_id: int, key: str):
    rows = (await conn.execute(select(s.patron_proxies).where(
        s.patron_proxies.c.patron_id == patron_id, s.patron_proxies.c.revoked_at.is_(None))
        .order_by(s.patron_proxies.c.id))).all()
    return next((r for r in rows if policies.proxy_name_key(r.proxy_name) == key), None)


def _offered(circ, patron_row) -> Decision | None:
    if circ.profile(patron_row.library).proxy.loans == "not_offered":
        return decide("proxy_loans_not_offered")
    return None


async def record_consent(circ, *, card: str, proxy_name: str, role, actor: str, reason: str = "",
                         branch: str | None = None) -> ConsentResult:
    """Record the holder's consent (本人了承) that ``proxy_name`` may borrow with the card;
    ``reason`` says why the holder cannot come (乳幼児, 入院中 …). Staff only (the
    holder's agreement is confirmed by the library). Refusals: ``proxy_loans_not_offered``,
    ``proxy_name_missing``, ``proxy_already_consented`` (a live consent names them)."""
    role = Role(role)

    async def work(conn: AsyncConnection) -> ConsentResult:
        now = circ.now()
        patron = await patron_by_card(conn, card, lock=True)
        refused = _offered(circ, patron)
        if refused is not None:
            return ConsentResult(None, refused)
        if role != Role.STAFF:
            return ConsentResult(None, decide("proxy_staff_only"))
        key = policies.proxy_name_key(proxy_name)
        if not key:
            return ConsentResult(None, decide("proxy_name_missing"))
        if await _live_consent(conn, patron.id, key) is not None:
            return ConsentResult(None, decide("proxy_already_consented", proxy=key))
        res = await conn.execute(insert(s.patron_proxies).values(
            patron_id=patron.id, proxy_name=key, reason=reason, consented_at=now,
            recorded_by=actor))
        cid = res.inserted_primary_key[0]
        await record_event(conn, at=now, event="PROXY_CONSENT", actor_role=role.value, actor=actor,
                           patron_id=patron.id, branch=branch,
                           reason=f"proxy {key}" + (f" ({reason})" if reason else ""))
        return ConsentResult(cid, decide("ok", proxy=key))

    return await circ.db.run(work)


async def revoke_consent(circ, *, card: str, proxy_name: str, role, actor: str,
                         branch: str | None = None) -> Decision:
    """Withdraw the holder's live consent naming ``proxy_name`` (loans already made stay).
    Staff only. Refusals: ``proxy_loans_not_offered``, ``proxy_consent_not_found``."""
    role = Role(role)

    async def work(conn: AsyncConnection) -> Decision:
        now = circ.now()
        patron = await patron_by_card(conn, card, lock=True)
        refused = _offered(circ, patron)
        if refused is not None:
            return refused
        if role != Role.STAFF:
            return decide("proxy_staff_only")
        key = policies.proxy_name_key(proxy_name)
        row = await _live_consent(conn, patron.id, key) if key else None
        if row is None:
            return decide("proxy_consent_not_found", proxy=key)
        await conn.execute(update(s.patron_proxies).where(s.patron_proxies.c.id == row.id)
                           .values(revoked_at=now, revoked_by=actor))
        await record_event(conn, at=now, event="PROXY_CONSENT_REVOKED", actor_role=role.value,
                           actor=actor, patron_id=patron.id, branch=branch, reason=f"proxy {key}")
        return decide("ok", proxy=key)

    return await circ.db.run(work)


async def consents(circ, card: str) -> list[dict]:
    """The holder's live consents (staff view), oldest first."""
    async with circ.db.read() as conn:
        patron = await patron_by_card(conn, card)
        rows = (await conn.execute(select(s.patron_proxies).where(
            s.patron_proxies.c.patron_id == patron.id, s.patron_proxies.c.revoked_at.is_(None))
            .order_by(s.patron_proxies.c.id))).all()
    return [{"consent_id": r.id, "proxy_name": r.proxy_name, "reason": r.reason,
             "consented_at": r.consented_at, "recorded_by": r.recorded_by} for r in rows]
