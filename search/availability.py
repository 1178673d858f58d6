"""Availability in the search room: the live status of a record's holdings, and the
search limit 「貸出可能な資料のみ」 (titles with a copy in at a branch), both read from
the circulation database at the time of the request, never from the catalog's index.

The source is injected (:class:`AvailabilitySource`; ``unioncat serve`` gives
circulation.availability_view.CirculationAvailability when it has a circulation
database); without one, holdings are shown as the catalog has them with their status
unknown, and the limit is diagnostic 16.

**Holdings with status** (:func:`page_holdings`, one read for a page of records): the
copies of a union record are those of the circulation titles it stands for
(search/titles.py). A holding of the catalog (852) whose barcode ($p) is a copy's barcode
gets that copy's status; a copy the catalog's holdings do not list is added as a holding
of its own (library, branch name, location, call number, barcode); a catalog holding no
copy matches has its status unknown (``copy`` None). Every holding carries the number of
live reservations of the record's titles.

**The limit** is the CQL index ``local.available`` (``available`` unprefixed; Bib-1 use
attribute 9001 for RPN): ``local.available = <branch or library code>``, also ``==``,
``exact`` and ``any "<code> <code>"`` (a copy in at any of them); a library code stands
for all its branches. The route step :func:`limit_available` (search/route.py) asks the
source for the title ids with a copy in at those branches and replaces the clause by the
query that finds their union records (:func:`search.titles.titles_query`: ``bath.isbn
any`` of their ISBNs, and a result set of the record numbers), anywhere in the query
tree, so ``and``, ``or`` and ``not`` keep their meaning. Why this shape, on a catalog of
250,000 records: the index is not touched when a copy moves (no reindexing, nothing to
keep in step); the circulation side is one query over the items table; the catalog side
is one set lookup per 10,000 ISBNs in the index it already has (SQLite: one ``IN`` over
``json_each`` on the ``term`` index, Elasticsearch: one ``terms`` filter), whose cost
grows with the branch's titles, not with the catalog, and is intersected with the rest of
the query by the backend as any other clause. A search with the limit never reuses an
earlier set's hits (the circulation database may have changed since); its result set
keeps the hits found when it ran, as every result set does, while the records presented
from it always show the status of the moment.
"""
from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from indexers import terms as T
from indexers.query_model import Boolean, Clause, Node, Prox, Query, QueryError
from indexers.records import Holding, SearchResult

from .titles import title_ids, titles_query

AVAILABLE_INDEX = "local.available"
_PLACE_RELATIONS = frozenset({"=", "==", "exact", "any", "adj"})


class AvailabilitySource(Protocol):
    async def title_status(self, title_ids: Iterable[str]) -> Mapping[str, Any]:
        """Title id -> its status, for every title asked: ``copies`` (each with barcode,
        library, branch, branch_name, location, call_number, status, due ...: see
        circulation.availability_view.CopyStatus) and ``reservations`` (live ones)."""

    async def available_title_ids(self, places: Iterable[str]) -> Collection[str]:
        """The title ids with a copy in at one of the branches ``places`` name (branch or
        library codes); an unknown place raises LookupError (with ``.place``)."""


# --------------------------------------------------------------------------- holdings

@dataclass(frozen=True)
class HoldingStatus:
    """One holding of a union record with its live status (``copy`` None: unknown)."""

    holding: Holding
    copy: Any | None = None
    reservations: int = 0           # the record's titles' live reservations

    @property
    def known(self) -> bool:
        return self.copy is not None


def record_holdings(record, statuses: Mapping[str, Any] | None) -> list[HoldingStatus]:
    """A union record's holdings with their status, from the statuses of its titles
    (``None``: no circulation database, every status unknown)."""
    holdings = list(getattr(record, "holdings", ()) or ())
    if statuses is None:
        return [HoldingStatus(h) for h in holdings]
    copies: dict[str, Any] = {}
    reservations = 0
    for t in title_ids(record):
        st = statuses.get(t)
        if st is None:
            continue
        reservations += st.reservations
        for c in st.copies:
            copies.setdefault(c.barcode, c)
    out = []
    for h in holdings:
        c = copies.pop(h.barcode, None) if h.barcode else None
        out.append(HoldingStatus(h, c, reservations))
    for c in copies.values():
        h = Holding(c.library, "", c.branch_name or c.branch, c.call_number, c.location, c.barcode)
        out.append(HoldingStatus(h, c, reservations))
    return out


async def page_holdings(source: AvailabilitySource | None, records: Sequence) -> dict[int, list[HoldingStatus]]:
    """Holdings with status of a page of records, by record id: one read of the source
    for the whole page."""
    if source is None:
        return {r.id: record_holdings(r, None) for r in records if r is not None}
    wanted = sorted({t for r in records if r is not None for t in title_ids(r)})
    statuses = await source.title_status(wanted) if wanted else {}
    return {r.id: record_holdings(r, statuses) for r in records if r is not None}


# --------------------------------------------------------------------------- the limit

def is_available_clause(node: Node) -> bool:
    return isinstance(node, Clause) and node.index.lower() == AVAILABLE_INDEX


def uses_limit(node: Node) -> bool:
    if isinstance(node, (Boolean, Prox)):
        return uses_limit(node.left) or uses_limit(node.right)
    return is_available_clause(node)


def places_of(c: Clause) -> list[str]:
    """The branch or library codes of a ``local.available`` clause."""
    T.check_modifiers(c)
    rel = c.relation.lower()
    if rel not in _PLACE_RELATIONS:
        raise QueryError(19, c.relation, f"{AVAILABLE_INDEX} takes =, ==, exact or any (a branch or library code)")
    if T.has_mask(c.term):
        raise QueryError(28, c.term, f"{AVAILABLE_INDEX}: give branch or library codes, without masks")
    words = T.words(c.term.replace("\\", ""))
    if not words:
        raise QueryError(27, c.term, f"{AVAILABLE_INDEX}: give a branch or library code")
    if len(words) > 1 and rel != "any":
        raise QueryError(36, c.term, f'{AVAILABLE_INDEX}: one code, or several with any ("iizuka honami")')
    return words


async def limit_available(route, s) -> None:
    """The route step: every ``local.available`` clause of the (restricted) query
    replaced by the query for the union records with a copy in there now."""
    if s.restricted is None or not uses_limit(s.restricted.root):
        return
    source = route.availability
    if source is None:
        raise QueryError(16, AVAILABLE_INDEX, f"{AVAILABLE_INDEX} needs the circulation database "
                         "(unioncat serve with a circulation database)")
    s.reuse = False

    async def subst(node: Node) -> Node:
        if isinstance(node, Boolean):
            return Boolean(node.op, await subst(node.left), await subst(node.right))
        if isinstance(node, Prox):
            return Prox(await subst(node.left), await subst(node.right), node.distance, node.comparison,
                        node.unit, node.ordered)
        if not is_available_clause(node):
            return node
        places = places_of(node)
        try:
            ids = await route.call(source.available_title_ids(places))
        except LookupError as e:
            place = getattr(e, "place", " ".join(places))
            raise QueryError(36, place, f"{AVAILABLE_INDEX}: no branch or library {place!r}") from None
        name = f"unioncat.available.{uuid.uuid4().hex}"
        query, numbers = titles_query(ids, name)
        s.extra_sets[name] = SearchResult(len(numbers), ids=numbers)
        return query

    s.restricted = Query(await subst(s.restricted.root), s.restricted.sort, s.restricted.ranked)
