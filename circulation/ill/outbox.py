"""Delivering queued ISO 18626 messages (rows of ``ill_messages`` with direction
``out``), in the order they were queued for each leg or supply.

:func:`dispatch` claims what is due, sends it with :class:`connectors.iso18626_client.Sender`
(which retries a lost call a few times with backoff), and records the outcome:

* confirmed OK → ``sent``; a Request's leg becomes REQUESTED (SEND_OK);
* an ERROR confirmation → ``refused`` with the partner's error; a Request's leg
  SEND_FAILED (staff see it in the ILL queue and may give the supplier up);
* not delivered → ``failed``, tried again later with a growing wait (a Request's leg
  SEND_FAILED meanwhile, REQUESTED once it gets through); after ``max_attempts`` it
  waits for staff (:func:`requeue`).

A later message of a leg is not sent before an earlier one got through.  Claiming
sets ``sending`` with a lease (``next_attempt_at``); a dispatcher that died leaves the
lease to expire and the message is sent again, which the receiver treats as a replay.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import or_, select, update

from connectors import iso18626 as I
from connectors.iso18626 import model as m
from connectors.iso18626_client import Sender, SendFailed
from lifecycle import ill as L

from .. import schema as s
from .common import Ill, get_leg, leg_transition
from .lists import message_library

LEASE = timedelta(minutes=5)


def backoff(attempts: int) -> timedelta:
    return timedelta(minutes=min(60, 2 ** max(0, attempts - 1)))


@dataclass
class Counts:
    sent: int = 0
    refused: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


async def _claim(ill: Ill, batch: int) -> list:
    now = ill.local_now()
    due = []
    async with ill.circ.db.transaction() as conn:
        rows = (await conn.execute(select(s.ill_messages).where(
            s.ill_messages.c.direction == "out",
            s.ill_messages.c.status.in_(("pending", "failed", "sending")),
            s.ill_messages.c.next_attempt_at.is_not(None),
            s.ill_messages.c.next_attempt_at <= now).order_by(s.ill_messages.c.id))).all()
        blocked: set = set()
        earlier = (await conn.execute(select(s.ill_messages.c.leg_id, s.ill_messages.c.supply_id,
                                             s.ill_messages.c.id).where(
            s.ill_messages.c.direction == "out",
            or_(s.ill_messages.c.status.in_(("pending", "sending")),
                s.ill_messages.c.status == "failed")))).all()
        first_open: dict = {}
        for e in earlier:
            key = ("leg", e.leg_id) if e.leg_id is not None else ("supply", e.supply_id)
            first_open[key] = min(first_open.get(key, e.id), e.id)
        for r in rows:
            key = ("leg", r.leg_id) if r.leg_id is not None else ("supply", r.supply_id)
            if key in blocked or first_open.get(key, r.id) < r.id:
                blocked.add(key)
                continue
            res = await conn.execute(update(s.ill_messages).where(
                s.ill_messages.c.id == r.id, s.ill_messages.c.status == r.status,
                s.ill_messages.c.next_attempt_at == r.next_attempt_at)
                .values(status="sending", next_attempt_at=now + LEASE))
            if res.rowcount == 1:
                due.append(r)
                blocked.add(key)          # one message of a leg per run: the next waits for it
            if len(due) >= batch:
                break
    return due


async def _record(ill: Ill, msg, *, status: str, error: str | None, confirmation: bytes | None,
                  transient: bool, max_attempts: int) -> None:
    now = ill.local_now()

    async def work(conn):
        attempts = msg.attempts + 1
        values = dict(status=status, error=error, attempts=attempts,
                      confirmation=confirmation.decode("utf-8", "replace") if confirmation else None)
        if status == "sent":
            values.update(sent_at=now, next_attempt_at=None)
        elif status == "failed" and transient and attempts < max_attempts:
            values.update(next_attempt_at=now + backoff(attempts))
        else:
            values.update(next_attempt_at=None)
        await conn.execute(update(s.ill_messages).where(s.ill_messages.c.id == msg.id).values(**values))
        if msg.leg_id is None or msg.kind != "request":
            return
        leg = await get_leg(conn, msg.leg_id, lock=True)
        state = L.RState(leg.state)
        if status == "sent" and L.REQUESTER.allows(state, L.REvent.SEND_OK):
            await leg_transition(ill, conn, leg, L.REvent.SEND_OK, actor_role=L.Actor.SYSTEM, actor="outbox",
                                 last_error=None,
                                 answer_by=now + timedelta(days=ill.config.answer_days))
        elif status != "sent" and L.REQUESTER.allows(state, L.REvent.SEND_FAILED):
            await leg_transition(ill, conn, leg, L.REvent.SEND_FAILED, actor_role=L.Actor.SYSTEM,
                                 actor="outbox", reason=error or "", last_error=error)

    await ill.circ.db.run(work)


async def dispatch(ill: Ill, sender: Sender, *, batch: int = 50, max_attempts: int = 8) -> Counts:
    """Send what is due (at most ``batch`` messages, one per leg or supply)."""
    counts = Counts()
    for msg in await _claim(ill, batch):
        partner = ill.config.partners.get(msg.partner)
        if partner is None:
            await _record(ill, msg, status="failed", error=f"partner {msg.partner} is no longer configured",
                          confirmation=None, transient=False, max_attempts=max_attempts)
            counts.failed += 1
            continue
        message = I.decode(msg.body.encode())
        try:
            conf = await sender.send(partner, message)
        except SendFailed as e:
            await _record(ill, msg, status="failed", error=str(e), confirmation=None, transient=e.transient,
                          max_attempts=max_attempts)
            counts.failed += 1
            counts.errors.append(str(e))
            continue
        body = I.encode(conf)
        if conf.confirmation_header.message_status is m.MessageStatus.OK:
            await _record(ill, msg, status="sent", error=None, confirmation=body, transient=False,
                          max_attempts=max_attempts)
            counts.sent += 1
        else:
            err = conf.error_data
            text = f"{err.error_type.value}: {err.error_value or ''}" if err else "ERROR"
            await _record(ill, msg, status="refused", error=text, confirmation=body, transient=False,
                          max_attempts=max_attempts)
            counts.refused += 1
            counts.errors.append(text)
    return counts


async def requeue(ill: Ill, message_id: int, *, library: str | None = None) -> bool:
    """Staff: send a failed or refused message again (``library``: only one of that
    system's requests or supplies)."""
    if library is not None:
        if library not in await message_library(ill, message_id):
            return False
    async with ill.circ.db.transaction() as conn:
        res = await conn.execute(update(s.ill_messages).where(
            s.ill_messages.c.id == message_id, s.ill_messages.c.direction == "out",
            s.ill_messages.c.status.in_(("failed", "refused"))).values(
            status="pending", next_attempt_at=ill.local_now()))
    if res.rowcount:
        ill.changed()
    return bool(res.rowcount)
