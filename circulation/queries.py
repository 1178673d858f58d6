"""Read-only views of the circulation database for the front ends (the JSON API and
`unioncat circ`), so that ``gateway/`` runs no SQL and calls no private helper.

Every function takes the :class:`~circulation.service.Circulation` and answers plain
frozen records; a missing row is :class:`~circulation.store.NotFound` unless the
function says it answers None. The one write here, :func:`queue_test_mail`, is the
メール送信テスト of the patron pages (a notice in the outbox, at most one a minute).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from . import notices
from . import schema as s
from .service import Circulation
from .store import NotFound, patron_by_card, serving_system


@dataclass(frozen=True)
class PatronInfo:
    """What the patron pages show of a patron (no password hash, no failures)."""
    id: int
    card_number: str
    library: str
    name: str | None
    phone: str | None
    email: str | None
    locale: str
    reading_goal: int | None
    default_pickup_branch: str | None
    default_contact_method: str
    new_book_alerts: bool
    history_opt_in: bool


@dataclass(frozen=True)
class RequestInfo:
    """One request as staff see it at a glance (its history is :func:`request_trail`)."""
    id: int
    library: str                 # the serving system
    kind: str
    state: str
    title_id: str
    title: str | None
    card_number: str
    pickup_branch: str | None
    cancel_reason: str | None


@dataclass(frozen=True)
class EventInfo:
    """One audit event of a request (``events`` row)."""
    at: datetime
    event: str
    from_state: str | None
    to_state: str | None
    actor_role: str
    actor: str
    channel: str | None
    branch: str | None
    reason: str
    item_id: int | None
    loan_id: int | None


@dataclass(frozen=True)
class TestMail:
    queued: bool                 # False: one was queued this minute already
    email: str | None            # None: the patron has no address (nothing queued)


# --------------------------------------------------------------------------- service

async def check_schema(circ: Circulation) -> None:
    """Raise if the database lacks the circulation tables (``unioncat circ init`` makes
    them): the service checks this once at start."""
    async with circ.db.read() as conn:
        await conn.execute(select(s.libraries.c.code).limit(1))
        await conn.execute(select(s.cart_items.c.title_id).limit(1))
        await conn.execute(select(s.circ_versions.c.version).limit(1))


# --------------------------------------------------------------------------- patrons

def _patron_info(row) -> PatronInfo:
    return PatronInfo(row.id, row.card_number, row.library, row.name, row.phone, row.email, row.locale,
                      row.reading_goal, row.default_pickup_branch, row.default_contact_method,
                      bool(row.new_book_alerts), bool(row.history_opt_in))


async def patron(circ: Circulation, card: str) -> PatronInfo:
    async with circ.db.read() as conn:
        return _patron_info(await patron_by_card(conn, card))


async def queue_test_mail(circ: Circulation, card: str) -> TestMail:
    """Queue the test mail (kind ``test_mail``) to the patron's address, at most once per
    minute of the service clock (a second request in the same minute queues nothing)."""
    now = circ.now()

    async def work(conn) -> TestMail:
        row = await patron_by_card(conn, card)
        if not row.email:
            return TestMail(False, None)
        key = f"test_mail:{row.id}:{now:%Y%m%dT%H%M}"
        before = (await conn.execute(select(s.notices.c.id).where(s.notices.c.dedupe_key == key))).first()
        await notices.enqueue(conn, kind="test_mail", patron_id=row.id, dedupe_key=key, at=now)
        return TestMail(before is None, row.email)

    return await circ.db.run(work)


# --------------------------------------------------------------------------- requests

def _request_query():
    return (select(s.requests, s.patrons.c.card_number)
            .join(s.patrons, s.patrons.c.id == s.requests.c.patron_id))


def _request_info(row) -> RequestInfo:
    return RequestInfo(row.id, row.library, row.kind, row.state, row.title_id, row.title, row.card_number,
                       row.pickup_branch, row.cancel_reason)


async def request_info(circ: Circulation, request_id: int) -> RequestInfo:
    async with circ.db.read() as conn:
        row = (await conn.execute(_request_query().where(s.requests.c.id == request_id))).first()
    if row is None:
        raise NotFound(f"request {request_id}")
    return _request_info(row)


async def request_trail(circ: Circulation, request_id: int) -> tuple[RequestInfo, list[EventInfo]]:
    """The request and its audit trail in the order it was written (who, when, what,
    from which state to which): the staff history page and ``unioncat circ history``."""
    async with circ.db.read() as conn:
        row = (await conn.execute(_request_query().where(s.requests.c.id == request_id))).first()
        if row is None:
            raise NotFound(f"request {request_id}")
        events = (await conn.execute(select(s.events).where(s.events.c.request_id == request_id)
                                     .order_by(s.events.c.id))).all()
    return _request_info(row), [
        EventInfo(e.at, e.event, e.from_state, e.to_state, e.actor_role, e.actor or "", e.channel, e.branch,
                  e.reason or "", e.item_id, e.loan_id) for e in events]


# --------------------------------------------------------------------------- whose is it

async def item_system(circ: Circulation, barcode: str) -> str | None:
    """The system the copy ``barcode`` belongs to (:func:`circulation.store.serving_system`);
    None when there is no such copy."""
    async with circ.db.read() as conn:
        row = (await conn.execute(select(s.items).where(s.items.c.barcode == barcode))).first()
        if row is None:
            return None
        return await serving_system(conn, circ.profiles, row)


async def patron_system(circ: Circulation, card: str) -> str | None:
    """The system of the patron with this card; None when there is none."""
    async with circ.db.read() as conn:
        return (await conn.execute(select(s.patrons.c.library)
                                   .where(s.patrons.c.card_number == card))).scalar()


async def request_system(circ: Circulation, request_id: int) -> str | None:
    """The system serving the request; None when there is none."""
    async with circ.db.read() as conn:
        return (await conn.execute(select(s.requests.c.library)
                                   .where(s.requests.c.id == request_id))).scalar()


def branch_system(circ: Circulation, branch: str) -> str:
    """The system a branch belongs to (NotFound for an unknown branch)."""
    return circ.profile_of_branch(branch).system
