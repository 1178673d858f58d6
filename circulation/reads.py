"""What a circulation operation decides on, read under its locks: the patron as the
policies see it (open loans and live requests), and on PostgreSQL the reads of a
check-out and of a placement in one statement each (arrays of records, which asyncpg
decodes as tuples, made into named rows here). Split from ``store.py`` (its size)."""
from __future__ import annotations

import dataclasses
from collections import namedtuple

from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle.model import Patron

from . import schema as s
from .prepared import Prepared
from .prepared import execute as run_prepared
from .store import LIVE_REQUEST_STATES, loan_record, patron_contact, request_record


async def patron_snapshot(conn: AsyncConnection, patron_row) -> Patron:
    """The patron as the policies see it: open loans and live requests included (on
    PostgreSQL read in one statement)."""
    if conn.dialect.name == "postgresql":
        snap = (await run_prepared(conn, _SNAPSHOT, {"w_patron_id": patron_row.id})).one()
        return _snapshot(patron_row, map(_LoanRow._make, snap.loans), map(_RequestRow._make, snap.requests))
    return _snapshot(patron_row, (await run_prepared(conn, _PATRON_LOANS, {"w_patron_id": patron_row.id})).all(),
                     (await run_prepared(conn, _PATRON_REQUESTS, {"w_patron_id": patron_row.id})).all())


async def check_out_reads(conn: AsyncConnection, patron_row, item_id: int):
    """What a check-out decides on, read under its locks (the copy's, then the patron's):
    the patron's snapshot (:func:`patron_snapshot`), the request the copy is secured for
    (with its patron's ``card_number``; None when it is not secured) and whether the copy
    has an open loan. On PostgreSQL one statement, elsewhere four."""
    if conn.dialect.name == "postgresql":
        r = (await run_prepared(conn, _CHECK_OUT_READS, {"w_patron_id": patron_row.id, "w_item_id": item_id})).one()
        secured = _SecuredRow._make(r.secured[0]) if r.secured else None
        return (_snapshot(patron_row, map(_LoanRow._make, r.loans), map(_RequestRow._make, r.requests)),
                secured, r.open_loan)
    secured = (await run_prepared(conn, _SECURED_WITH_CARD, {"w_item_id": item_id})).first()
    open_loan = (await run_prepared(conn, _OPEN_LOAN_OF_ITEM, {"w_item_id": item_id})).first() is not None
    return await patron_snapshot(conn, patron_row), secured, open_loan


def _snapshot(patron_row, loan_rows, request_rows) -> Patron:
    card = patron_row.card_number
    return dataclasses.replace(
        patron_contact(patron_row),
        loans=tuple(loan_record(r, card, r.barcode, r.material_type, r.partner, r.ill) for r in loan_rows),
        active_requests=tuple(request_record(r, card) for r in request_rows),
        minor=bool(patron_row.minor), delivery_registered=patron_row.delivery_registered_at is not None)


# what patron_snapshot reads, built once
_PATRON_LOANS = Prepared(select(s.loans, s.items.c.barcode, s.items.c.material_type, s.items.c.partner,
                                s.items.c.ill)
                         .join(s.items, s.items.c.id == s.loans.c.item_id)
                         .where(s.loans.c.patron_id == bindparam("w_patron_id"), s.loans.c.returned_at.is_(None)))
_PATRON_REQUESTS = Prepared(select(s.requests).where(s.requests.c.patron_id == bindparam("w_patron_id"),
                                                     s.requests.c.state.in_(LIVE_REQUEST_STATES)))
_SECURED_WITH_CARD = Prepared(select(s.requests, s.patrons.c.card_number)
                              .join(s.patrons, s.patrons.c.id == s.requests.c.patron_id)
                              .where(s.requests.c.item_id == bindparam("w_item_id"),
                                     s.requests.c.state.in_(s.SECURED_STATES)))
_OPEN_LOAN_OF_ITEM = Prepared(select(s.loans.c.id).where(s.loans.c.item_id == bindparam("w_item_id"),
                                                         s.loans.c.returned_at.is_(None)))

# The same reads as one PostgreSQL statement: each set of rows an array of records (asyncpg
# decodes them as tuples, in the columns' order), made into named rows here.
_LoanRow = namedtuple("_LoanRow", [*s.loans.c.keys(), "barcode", "material_type", "partner", "ill"])  # type: ignore[misc]
_RequestRow = namedtuple("_RequestRow", s.requests.c.keys())  # type: ignore[misc]
_SecuredRow = namedtuple("_SecuredRow", [*s.requests.c.keys(), "card_number"])  # type: ignore[misc]


def _names(alias: str, table) -> str:
    return ", ".join(f"{alias}.{c.name}" for c in table.c)


def _in(values) -> str:
    assert all(v.replace("_", "").isalnum() for v in values)      # our own state names
    return ", ".join(f"'{v}'" for v in values)


_SNAPSHOT_SQL = (
    f"ARRAY(SELECT ROW({_names('l', s.loans)}, i.barcode, i.material_type, i.partner, i.ill) "
    "FROM loans l JOIN items i ON i.id = l.item_id "
    "WHERE l.patron_id = :w_patron_id AND l.returned_at IS NULL) AS loans, "
    f"ARRAY(SELECT ROW({_names('r', s.requests)}) FROM requests r "
    f"WHERE r.patron_id = :w_patron_id AND r.state IN ({_in(LIVE_REQUEST_STATES)})) AS requests")
_SNAPSHOT = Prepared(text(f"SELECT {_SNAPSHOT_SQL}").columns())
_CHECK_OUT_READS = Prepared(text(
    f"SELECT {_SNAPSHOT_SQL}, "
    f"ARRAY(SELECT ROW({_names('r', s.requests)}, p.card_number) FROM requests r "
    "JOIN patrons p ON p.id = r.patron_id "
    f"WHERE r.item_id = :w_item_id AND r.state IN ({_in(s.SECURED_STATES)})) AS secured, "
    "EXISTS (SELECT 1 FROM loans WHERE loans.item_id = :w_item_id AND loans.returned_at IS NULL) AS open_loan")
    .columns())


_ItemRow = namedtuple("_ItemRow", s.items.c.keys())  # type: ignore[misc]
_WaitingRow = namedtuple("_WaitingRow", ["id", "state", "placed_at"])


def placing_reads_statement(gone_statuses, waiting_states) -> Prepared:
    """PostgreSQL: the statement of :func:`placing_reads` (copies of these statuses are
    not counted; requests in these states wait in the queue)."""
    return Prepared(text(
        f"SELECT {_SNAPSHOT_SQL}, "
        f"ARRAY(SELECT ROW({_names('i', s.items)}) FROM items i WHERE i.title_id = :w_title_id "
        f"AND i.library = :w_library AND i.status NOT IN ({_in(gone_statuses)}) ORDER BY i.id) AS owned, "
        "ARRAY(SELECT ROW(r.id, r.state, r.placed_at) FROM requests r WHERE r.title_id = :w_title_id "
        f"AND r.library = :w_library AND r.state IN ({_in(waiting_states)})) AS waiting").columns())


async def placing_reads(conn: AsyncConnection, stmt: Prepared, patron_row, title_id: str, library: str):
    """PostgreSQL: what a placement decides on, read under its locks (the title queue's,
    then the patron's) in one statement: the patron's snapshot (:func:`patron_snapshot`),
    the library's copies of the title (item rows, in id order) and the title's waiting
    requests there (``id``, ``state``, ``placed_at``: what the queue order needs)."""
    r = (await run_prepared(conn, stmt, {"w_patron_id": patron_row.id, "w_title_id": title_id,
                                         "w_library": library})).one()
    return (_snapshot(patron_row, map(_LoanRow._make, r.loans), map(_RequestRow._make, r.requests)),
            [_ItemRow._make(x) for x in r.owned], [_WaitingRow._make(x) for x in r.waiting])
