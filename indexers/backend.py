"""The interface every index backend implements (embedded SQLite now,
Elasticsearch later).  All methods are coroutines so that a backend with a
network client and one that runs SQLite in a worker thread look the same to the
front ends.  Errors in a query are raised as query_model.QueryError (with the
SRU diagnostic number); a backend that cannot answer at all raises
BackendUnavailable (SRU diagnostic 1)."""
from __future__ import annotations

from typing import Mapping, Protocol, Sequence

from .index_config import IndexConfig
from .query_model import Query
from .records import FacetValue, ScanTerm, SearchResult, UnionRecord


class BackendUnavailable(Exception):
    """The index cannot be reached or answered too slowly (diagnostic 1)."""


class Catalog(Protocol):
    """What the front ends call.  A backend names it as its base class (``class
    SqliteCatalog(Catalog)``) so that it inherits the defaults below (search_at_generation)."""

    name: str
    config: IndexConfig         # the indexes, relations and sort keys the front ends parse against

    async def search(self, query: Query, result_sets: Mapping[str, SearchResult] | None = None) -> SearchResult:
        """The union records matching ``query``, ordered by query.sort (relevance
        when it is empty).  ``result_sets`` resolves cql.resultSetId."""

    async def page(self, result: SearchResult, offset: int, count: int) -> list[int]:
        """Ids at 0-based positions offset .. offset+count-1 of a result."""

    async def fetch(self, ids: Sequence[int]) -> list[UnionRecord]:
        """Union records in the order of ids (ids no longer present are skipped)."""

    async def facets(
        self, result: SearchResult, names: Sequence[str], limit: int
    ) -> dict[str, list[FacetValue]]:
        """For each facet name (config/indexes.toml [facet]) the top values over
        the given result set, by descending count."""

    async def scan(
        self, index: str, term: str, response_position: int, maximum_terms: int
    ) -> list[ScanTerm]:
        """Terms of an index in normalized order around ``term``: the list holds up
        to ``maximum_terms`` terms and ``term`` (or the first term after it) is at
        1-based position ``response_position``."""

    async def count(self) -> int:
        """Number of searchable union records."""

    async def generation(self) -> str:
        """Changes whenever the searchable content changes (an ingest commit);
        front ends reuse cached hits only within one generation."""

    async def search_at_generation(self, query: Query, result_sets: Mapping[str, SearchResult] | None = None
                                   ) -> tuple[str, SearchResult]:
        """``search`` and the generation read before it (so never newer than its hits): the
        label of a result set kept for reuse (search/route.py).  This default reads the
        generation, then searches (two calls; on Elasticsearch two requests); a backend that
        can do both in one call overrides it (the embedded index: one hop to its thread).
        Every backend subclasses Catalog to inherit it."""
        gen = await self.generation()
        return gen, await self.search(query, result_sets)
