"""What both ILL roles share: the :class:`Ill` service object, the audited write paths
of legs and supplies (as ``store.transition`` is for requests), and the message log,
which is also the outbox of messages still to deliver."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from connectors import iso18626 as I
from connectors.iso18626 import model as m
from connectors.iso18626.config import IllConfig, Partner
from lifecycle import ill as L

from .. import schema as s
from ..service import Circulation
from ..store import ConcurrentChange, NotFound, get_row, record_event
from .titles import ItemTitles, Titles


@dataclass
class Ill:
    """The circulation service as an ILL node: our agency and partners (``config``) and
    how titles are resolved (``titles``; the circulation items when not given)."""
    circ: Circulation
    config: IllConfig
    titles: Titles | None = None
    wake: list = field(default_factory=list)      # callables run after a change (the outbox job)
    # asks a partner's catalog whether a copy is in (connectors.opac_availability.ask, bound to
    # a session by the gateway): async (partner, isbn) -> Copies | None; None: not asked
    probe: Callable[[Partner, str], Awaitable[Any]] | None = None

    def __post_init__(self):
        if self.titles is None:
            self.titles = ItemTitles(self.circ)

    # The database keeps naive local times of the service's zone, messages carry aware
    # ones: the service's clock converts (circulation.store.Clock).

    def now(self) -> datetime:
        """Now as an aware datetime (what messages carry)."""
        return self.aware(self.circ.now())

    def local_now(self) -> datetime:
        return self.circ.now()

    def aware(self, local: datetime | None) -> datetime | None:
        """A stored time as an aware one in the service's zone."""
        return self.circ.clock.aware(local)

    def local(self, dt: datetime | None) -> datetime | None:
        """A time from a message as the database keeps it (a naive one is taken as UTC);
        None for one that cannot be shown in the service's zone."""
        if dt is None:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        try:
            return self.circ.clock.local(dt).replace(microsecond=0)
        except OverflowError:
            return None

    def end_of(self, day: date) -> datetime:
        """A due day as the aware moment it ends in the service's zone."""
        return self.circ.clock.end_of(day)

    def partner(self, code: str) -> Partner:
        p = self.config.partners.get(code)
        if p is None:
            raise NotFound(f"no ILL partner {code!r}")
        return p

    def partner_of_library(self, library: str | None) -> Partner | None:
        for p in self.config.partners.values():
            if p.library and p.library == library:
                return p
        return None

    def changed(self) -> None:
        for f in self.wake:
            f()


def plausible(dt: datetime | None, now: datetime, years: int = 5) -> datetime | None:
    """``dt`` when within ``years`` of ``now`` (a due date of year 9999 is not believed)."""
    if dt is None or abs(dt - now) > timedelta(days=366 * years):
        return None
    return dt


# --------------------------------------------------------------------------- audited transitions

async def leg_transition(ill: Ill, conn: AsyncConnection, leg, event: L.REvent, *, actor_role: L.Actor,
                         actor: str, reason: str = "", **values) -> L.RState:
    """Move a requester leg by :data:`lifecycle.ill.REQUESTER` (conditional on the state
    read), with an audit row on the patron's request."""
    old = L.RState(leg.state)
    new = L.REQUESTER.apply(old, event, actor_role)
    now = ill.local_now()
    res = await conn.execute(update(s.ill_legs).where(s.ill_legs.c.id == leg.id, s.ill_legs.c.state == old.value)
                             .values(state=new.value, updated_at=now, **values))
    if res.rowcount != 1:
        raise ConcurrentChange(f"ILL leg {leg.id} is no longer {old.value}")
    await record_event(conn, at=now, event=f"ILL_{event.value}"[:32], actor_role=actor_role.value,
                       actor=actor, request_id=leg.request_id, from_state=old.value, to_state=new.value,
                       reason=f"leg {leg.rid} ({leg.partner})" + (f": {reason}" if reason else ""))
    return new


async def supply_transition(ill: Ill, conn: AsyncConnection, supply, event: L.SEvent, *,
                            actor_role: L.Actor, actor: str, reason: str = "", **values) -> L.SState:
    """Move a supplier leg by :data:`lifecycle.ill.SUPPLIER`, with an audit row."""
    old = L.SState(supply.state)
    new = L.SUPPLIER.apply(old, event, actor_role)
    now = ill.local_now()
    res = await conn.execute(update(s.ill_supplies).where(s.ill_supplies.c.id == supply.id,
                                                          s.ill_supplies.c.state == old.value)
                             .values(state=new.value, updated_at=now, **values))
    if res.rowcount != 1:
        raise ConcurrentChange(f"ILL supply {supply.id} is no longer {old.value}")
    await record_event(conn, at=now, event=f"ILL_SUPPLY_{event.value}"[:32], actor_role=actor_role.value,
                       actor=actor, item_id=values.get("item_id", supply.item_id),
                       loan_id=values.get("loan_id", supply.loan_id), from_state=old.value,
                       to_state=new.value,
                       reason=f"supply {supply.id} ({supply.partner} {supply.rid})"
                       + (f": {reason}" if reason else ""))
    return new


async def get_leg(conn: AsyncConnection, leg_id: int, *, lock: bool = False):
    return await get_row(conn, s.ill_legs, s.ill_legs.c.id == leg_id, what=f"ILL leg {leg_id}",
                         for_update=lock)


async def get_supply(conn: AsyncConnection, supply_id: int, *, lock: bool = False):
    return await get_row(conn, s.ill_supplies, s.ill_supplies.c.id == supply_id,
                         what=f"ILL supply {supply_id}", for_update=lock)


# --------------------------------------------------------------------------- messages

def summary(message) -> str:
    if isinstance(message, m.SupplyingAgencyMessage):
        info = message.message_info
        yn = f" {info.answer_yes_no.value}" if info.answer_yes_no else ""
        return f"{info.reason_for_message.value} {message.status_info.status.value}{yn}"
    if isinstance(message, m.RequestingAgencyMessage):
        return message.action.value
    if isinstance(message, m.Request):
        st = message.service_info.request_type if message.service_info else None
        return f"Request {st.value if st else 'New'}"
    return type(message).__name__


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


async def queue_message(ill: Ill, conn: AsyncConnection, partner: Partner, message, *,
                        leg_id: int | None = None, supply_id: int | None = None) -> int:
    """Queue one message to ``partner`` in the current transaction (the outbox delivers it)."""
    now = ill.local_now()
    res = await conn.execute(insert(s.ill_messages).values(
        leg_id=leg_id, supply_id=supply_id, partner=partner.code, direction="out",
        kind=m.ELEMENT[type(message)], summary=summary(message), body=I.encode(message).decode(),
        status="pending", attempts=0, next_attempt_at=now, at=now))
    return res.inserted_primary_key[0]


async def log_incoming(ill: Ill, conn: AsyncConnection, partner: Partner, message, body: bytes) -> int:
    """The log row of an incoming message, written before it is handled (so the history
    reads in the order things happened); :func:`confirm_incoming` completes it."""
    res = await conn.execute(insert(s.ill_messages).values(
        partner=partner.code, direction="in", kind=m.ELEMENT[type(message)], summary=summary(message),
        digest=digest(body), body=body.decode("utf-8", "replace"), status="ok", at=ill.local_now()))
    return res.inserted_primary_key[0]


async def confirm_incoming(conn: AsyncConnection, log_id: int, confirmation: m.Confirmation, *,
                           leg_id: int | None = None, supply_id: int | None = None) -> None:
    err = confirmation.error_data
    await conn.execute(update(s.ill_messages).where(s.ill_messages.c.id == log_id).values(
        leg_id=leg_id, supply_id=supply_id, confirmation=I.encode(confirmation).decode(),
        status="ok" if err is None else "error",
        error=None if err is None else f"{err.error_type.value}: {err.error_value or ''}"))


async def replayed(conn: AsyncConnection, partner: Partner, body: bytes) -> str | None:
    """The confirmation we gave when this very body came before (a replay), else None."""
    row = (await conn.execute(select(s.ill_messages.c.confirmation).where(
        s.ill_messages.c.partner == partner.code, s.ill_messages.c.direction == "in",
        s.ill_messages.c.digest == digest(body)).order_by(s.ill_messages.c.id.desc()).limit(1))).first()
    return row.confirmation if row is not None else None


def dumps(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, default=str)


def header_for_leg(ill: Ill, leg, partner: Partner) -> m.Header:
    """The header of a message about one of our requester legs."""
    return I.header(requesting=ill.config.agency, supplying=partner.agency, request_id=leg.rid,
                    now=ill.now(), supplying_request_id=leg.supplier_rid)


def header_for_supply(ill: Ill, supply, partner: Partner) -> m.Header:
    """The header of a message about one of our supplier legs (their request id)."""
    return I.header(requesting=partner.agency, supplying=ill.config.agency, request_id=supply.rid,
                    now=ill.now(), supplying_request_id=f"S{supply.id}")
