"""New arrivals (新着資料) in the search room: the search limit ``local.added``, the union
records holding a record that a library's ingests added since a date, read from the
record store when the search runs, never from the catalog's index.

    local.added >= "iizuka 2026-11-01"     added by iizuka on or after 1 November 2026
    local.added > "iizuka 2026-11-01"      after that day
    local.added = iizuka                   in the last DEFAULT_DAYS days

Dates are days of the network's time zone (the route's ``zone``, which ``unioncat serve``
sets from the profiles' timezone, as the circulation service's clock; UTC when none is
given): no zone is assumed here.
"Added" is when the library's record was first stored (``source.added`` in
indexers/store.py): an updated record keeps its date, a withdrawn one that comes back
is new again, and a record another library added long ago is new for the library that
adds it now. Records stored before the store kept the date are never new.

The source is injected (:class:`ArrivalsSource`; ``unioncat serve`` gives
indexers.store.StoreArrivals of its data directory); without one the index is
diagnostic 16. The route step :func:`limit_arrivals` replaces each clause, where it
stands in the query tree, by ``cql.resultSetId`` of a set of the union ids, which every
backend intersects with the rest of the query like any other clause (the same shape as
the availability limit, search/availability.py). A search with the limit never reuses
an earlier set's hits (the window moves with the clock).
"""
from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Protocol

from indexers import terms as T
from indexers.query_model import Boolean, Clause, Node, Prox, Query, QueryError
from indexers.records import SearchResult

from .titles import RESULT_SET_INDEX

ADDED_INDEX = "local.added"
DEFAULT_DAYS = 30
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class ArrivalsSource(Protocol):
    async def added_since(self, library: str, since: float) -> list[int]:
        """The union ids holding a record ``library`` added at or after ``since`` (epoch
        seconds), newest first."""


def is_added_clause(node: Node) -> bool:
    return isinstance(node, Clause) and node.index.lower() == ADDED_INDEX


def uses_arrivals(node: Node) -> bool:
    if isinstance(node, (Boolean, Prox)):
        return uses_arrivals(node.left) or uses_arrivals(node.right)
    return is_added_clause(node)


def start_of(day: date, zone: tzinfo = timezone.utc) -> float:
    """Epoch seconds of 00:00 on ``day`` in ``zone``."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()


def today(clock: Callable[[], float] = time.time, zone: tzinfo = timezone.utc) -> date:
    return datetime.fromtimestamp(clock(), zone).date()


def window(c: Clause, clock: Callable[[], float] = time.time, zone: tzinfo = timezone.utc) -> tuple[str, float]:
    """(library code, epoch seconds from which a record is new) of a ``local.added``
    clause. Diagnostics: 19 another relation, 28 a mask, 27 nothing given, 36 a term
    that is not a code and a date."""
    T.check_modifiers(c)
    rel = c.relation.lower()
    if rel not in ("=", "==", "exact", ">=", ">"):
        raise QueryError(19, c.relation, f'{ADDED_INDEX} takes >= "<library> <YYYY-MM-DD>" or = <library>')
    if T.has_mask(c.term):
        raise QueryError(28, c.term, f"{ADDED_INDEX}: give a library code and a date, without masks")
    words = c.term.replace("\\", "").split()
    if not words:
        raise QueryError(27, c.term, f"{ADDED_INDEX}: give a library code")
    if len(words) > 2 or not _CODE.fullmatch(words[0]):
        raise QueryError(36, c.term, f'{ADDED_INDEX}: write "<library> <YYYY-MM-DD>"')
    if len(words) == 1:
        if rel in (">=", ">"):
            raise QueryError(36, c.term, f'{ADDED_INDEX} {c.relation}: give a date, "{words[0]} YYYY-MM-DD"')
        return words[0], start_of(today(clock, zone) - timedelta(days=DEFAULT_DAYS), zone)
    try:
        day = date.fromisoformat(words[1])
    except ValueError:
        raise QueryError(36, c.term, f"{ADDED_INDEX}: {words[1]!r} is not a date (YYYY-MM-DD)") from None
    if rel in ("=", "==", "exact"):
        raise QueryError(19, c.relation, f'{ADDED_INDEX} with a date takes >= or >: >= "{c.term}"')
    return words[0], start_of(day + timedelta(days=1) if rel == ">" else day, zone)


async def limit_arrivals(route, s) -> None:
    """The route step: every ``local.added`` clause of the (restricted) query replaced by
    a result set of the union records that library added in the window."""
    if s.restricted is None or not uses_arrivals(s.restricted.root):
        return
    source = getattr(route, "arrivals", None)
    if source is None:
        raise QueryError(16, ADDED_INDEX, f"{ADDED_INDEX} needs the record store, which this gateway does not "
                         "have (serve new arrivals from the data directory that unioncat ingest writes)")
    s.reuse = False
    clock = getattr(route, "wall_clock", time.time)
    zone = getattr(route, "zone", None) or timezone.utc

    async def subst(node: Node) -> Node:
        if isinstance(node, Boolean):
            return Boolean(node.op, await subst(node.left), await subst(node.right))
        if isinstance(node, Prox):
            return Prox(await subst(node.left), await subst(node.right), node.distance, node.comparison,
                        node.unit, node.ordered)
        if not is_added_clause(node):
            return node
        library, since = window(node, clock, zone)
        db = route.databases.known(library)
        if db is None or db.library is None:      # a library that holds records but is not configured
            generation = await route.call(route.catalog.generation())
            await route.call(route.databases.refresh(route.catalog, generation))
            db = route.databases.known(library)
        if db is None or db.library is None:
            raise QueryError(36, library, f"{ADDED_INDEX}: no library {library!r}")
        ids = await route.call(source.added_since(db.library, since))
        name = f"unioncat.added.{uuid.uuid4().hex}"
        s.extra_sets[name] = SearchResult(len(ids), ids=list(ids))
        return Clause(RESULT_SET_INDEX, "=", name)

    s.restricted = Query(await subst(s.restricted.root), s.restricted.sort, s.restricted.ranked)
