"""What the ILL engine needs to know of a title: its description (for the Request we
send) and which libraries hold it (the rota; the supplier's holdings check).

The gateway resolves titles through the union catalog (``gateway/ill_titles.py``);
:class:`ItemTitles` answers from the circulation database's items alone, which is
what a deployment without a catalog, and the engine's tests, use.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import select

from .. import schema as s


@dataclass(frozen=True)
class Title:
    title_id: str
    title: str = ""
    author: str = ""
    isbn: str = ""
    issn: str = ""
    publisher: str = ""
    date: str = ""
    material_type: str = "book"
    libraries: frozenset[str] = frozenset()       # library codes that hold it
    local_ids: dict[str, str] = field(default_factory=dict)   # library → its own record id


@dataclass(frozen=True)
class Wanted:
    """What a partner's Request asks for (from its bibliographicInfo)."""
    title: str = ""
    author: str = ""
    isbns: tuple[str, ...] = ()
    issns: tuple[str, ...] = ()
    record_ids: tuple[str, ...] = ()          # supplierUniqueRecordId and bibliographicRecordIds


class Titles(Protocol):
    """``conn``: the circulation database connection of the unit of work asking, when
    there is one (a resolver that reads that database must use it, never a second
    connection: a pool of connections each waiting for another would deadlock)."""

    async def describe(self, title_id: str, conn=None) -> Title | None:
        """The title of our ``title_id``, with the libraries that hold it."""

    async def find(self, wanted: Wanted, conn=None) -> Title | None:
        """Our title matching what a partner asks for (ISBN/ISSN first, then record ids)."""


def isbn_of(title_id: str) -> str:
    """The ISBN a title id of the form ``isbn:<digits>`` carries ("" otherwise)."""
    return title_id[5:] if title_id.startswith("isbn:") else ""


def normal_isbn(text: str) -> str:
    return re.sub(r"[^0-9Xx]", "", text or "").upper()


class ItemTitles:
    """Titles as the circulation items know them: the libraries owning a copy hold the
    title; ISBNs are read from ``isbn:`` title ids."""

    def __init__(self, circ):
        self.circ = circ

    async def describe(self, title_id: str, conn=None) -> Title | None:
        if conn is None:
            async with self.circ.db.read() as own:
                return await self.describe(title_id, own)
        libs = (await conn.execute(select(s.items.c.library, s.items.c.material_type).where(
            s.items.c.title_id == title_id).distinct())).all()
        shown = (await conn.execute(select(s.title_queues.c.title).where(
            s.title_queues.c.title_id == title_id))).scalar()
        if not libs:
            return None
        return Title(title_id, title=shown or "", isbn=isbn_of(title_id),
                     material_type=libs[0].material_type,
                     libraries=frozenset(r.library for r in libs))

    async def find(self, wanted: Wanted, conn=None) -> Title | None:
        for isbn in wanted.isbns:
            found = await self.describe(f"isbn:{normal_isbn(isbn)}", conn)
            if found is not None:
                return found
        for rid in wanted.record_ids:
            found = await self.describe(rid, conn)
            if found is not None:
                return found
        return None
