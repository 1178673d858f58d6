"""The search route: the one path from a query to pages of records, shared by
the front ends (SRU, Z39.50; the web OPAC and partner live search next).

A front end parses its own query language into the one query model (CQL,
RPN, PQF) and renders records in its own formats; everything between is here,
as a chain of small steps in the manner of a Metaproxy route, configured in one
place (``SEARCH_STEPS``, ``make_route``):

    check_result_set   a named set may not be replaced without leave (Bib-1 21),
                       nor a new one made in a full store that does not evict (112)
    resolve_database   names -> a Database (search/databases.py): 235 for unknown ones
    translate          the front end's parser, when it handed over text rather
                       than a query (so a bad database is reported before a bad query)
    restrict           the query limited to the database's library
    limit_available    ``local.available = <branch>`` clauses replaced by the union
                       records with a copy in there now, asked of the circulation
                       database (search/availability.py)
    limit_arrivals     ``local.added >= "<library> <date>"`` clauses replaced by the
                       union records that library's ingests added since then, asked of
                       the record store (search/arrivals.py: new arrivals)
    reuse_live_set     the same query on an unchanged catalog reuses a live set's
                       hits (SRU; off for Z39.50, whose sets are named by the client);
                       the catalog's generation is read only when the store holds a
                       live set of the query at all, or for a set that is to be kept
    run_search         the catalog's search, cql.resultSetId resolved in the
                       caller's store
    keep_result_set    the hits kept under the set's name (search/result_sets.py)

and then, on request, pages of ids, records, facets and scans.

Every backend call of one request draws on one time budget (``request()``):
the route's timeout, never more than the catalog's own documented search
timeout (Elasticsearch's ``request_timeout``, 5 s by default).  A call that
finds the budget spent, or outlasts what is left of it, raises
:class:`SearchTimeout` (a ``BackendUnavailable``: SRU diagnostic 1, Bib-1 2).
The clock is injected, so the arithmetic is tested without waiting.

Errors are QueryError (SRU numbering, with ``bib1`` where the Bib-1 number is
not the usual counterpart) and BackendUnavailable; each front end says them in
its own protocol.
"""
from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Awaitable, Callable, Sequence

from indexers.backend import BackendUnavailable, Catalog
from indexers.query_model import Query, QueryError
from indexers.records import FacetValue, ScanTerm, SearchResult, UnionRecord

from .arrivals import ADDED_INDEX, ArrivalsSource, limit_arrivals
from .availability import AVAILABLE_INDEX, AvailabilitySource, limit_available
from .databases import Database, Databases
from .result_sets import ResultSet, ResultSetStore

DEFAULT_TIMEOUT = 10.0          # seconds for one request when the catalog documents no shorter one


class SearchTimeout(BackendUnavailable):
    """The request's time budget is spent."""


class Budget:
    """The time one request may spend in the catalog."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self.deadline = clock() + seconds

    def remaining(self) -> float:
        return self.deadline - self.clock()


_BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("search_budget", default=None)


@dataclass
class Search:
    """One search travelling down the route: what the front end asks (the first
    block) and what the steps find out (the second)."""

    query: Query | None                     # None: made by ``translate`` (after the database is known)
    sets: ResultSetStore                    # where the hits are kept (SRU's store, or an association's)
    databases: tuple[str, ...] = ("default",)
    database: Database | None = None        # already resolved by the front end (else from ``databases``)
    translate: Callable[[], Query] | None = None   # the front end's parser (CQL, RPN, PQF)
    name: str | None = None                 # the set's name; None: a new random id
    replace: bool = True                    # may a set of that name be replaced
    drop_stale: bool = True                 # a failed search removes the set it was to replace
    ttl: int | None = None                  # idle life of the set; None: until removed
    reuse: bool = False                     # may a live set of the same query be reused

    restricted: Query | None = None
    extra_sets: dict[str, SearchResult] = field(default_factory=dict)   # sets the steps made (the limit)
    key: str = ""                           # the reuse key (database, query): "" = not for reuse
    generation: str | None = None           # the catalog's, read before the search (None: not read)
    result: SearchResult | None = None
    kept: ResultSet | None = None


Step = Callable[["SearchRoute", Search], Awaitable[None]]


class _Request:
    """The budget of one request, current while the block runs."""

    __slots__ = ("budget", "_token")

    def __init__(self, budget: Budget):
        self.budget = budget

    async def __aenter__(self) -> Budget:
        self._token = _BUDGET.set(self.budget)
        return self.budget

    async def __aexit__(self, *exc) -> None:
        _BUDGET.reset(self._token)


class _Resumed:
    """The rest of a coroutine that was run up to its first wait (``first``: what it
    yielded there), awaitable again: what the task sends or throws in goes on to the
    coroutine, as ``await`` would pass it (cancellation included)."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine, first):
        self.coro = coro
        self.first = first

    def __await__(self):
        coro, out = self.coro, self.first
        while True:
            try:
                sent = yield out
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as e:  # noqa: BLE001 - thrown in by the task: the coroutine's to handle
                try:
                    out = coro.throw(e)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    out = coro.send(sent)
                except StopIteration as done:
                    return done.value


# --------------------------------------------------------------------------- the steps

async def check_result_set(route: "SearchRoute", s: Search) -> None:
    if s.name is None:
        return
    if s.name in s.sets and not s.replace:
        raise QueryError(47, s.name, f"result set {s.name} exists and may not be replaced", bib1=21)
    if s.sets.full(s.name):
        raise QueryError(47, str(s.sets.max_sets), f"at most {s.sets.max_sets} result sets", bib1=112)


async def resolve_database(route: "SearchRoute", s: Search) -> None:
    if s.database is None:
        s.database = await route.database(s.databases)


async def translate(route: "SearchRoute", s: Search) -> None:
    if s.query is None:
        if s.translate is None:
            raise ValueError("a search needs a query or a translate function")
        s.query = s.translate()


async def restrict(route: "SearchRoute", s: Search) -> None:
    assert s.database is not None and s.query is not None, "resolve_database and translate come first"
    s.restricted = s.database.restrict(s.query)


async def reuse_live_set(route: "SearchRoute", s: Search) -> None:
    """A live set of the same query, database and sort, searched at the catalog's current
    generation, gives its hits.  The store is asked first whether it holds a live set of
    the query at any generation: only then is the catalog's generation read (one request
    to Elasticsearch).  With none, a set that is not kept (SRU ``resultSetTTL=0``) is
    searched straight away; one that is kept is labelled with a generation read before
    its search (``run_search``), so never with a newer one than its hits."""
    if not s.reuse or (s.database is not None and s.database.catalog is not None):
        return                      # a federation's targets change without telling: never reused
    assert s.database is not None and s.restricted is not None, "restrict comes first"
    key = f"{s.database.name.lower()}\x00{s.restricted!r}"
    sort = s.restricted.sort
    live = s.sets.generations(key, sort)
    if not live and s.ttl == 0:
        return                      # nothing to reuse, nothing kept (a 0 s set is gone at once): no generation
    s.key = key
    if not live:
        return                      # run_search reads the generation with (before) the search
    s.generation = await route.call(route.catalog.generation())
    if s.generation in live:
        rs = s.sets.find(key, sort, s.generation)
        if rs is not None:          # (None: it expired or was evicted in between)
            s.result = rs.result


async def run_search(route: "SearchRoute", s: Search) -> None:
    if s.result is not None:
        return
    assert s.restricted is not None, "restrict comes first"
    sets = s.sets.as_mapping()
    if s.extra_sets:
        sets = {**sets, **s.extra_sets}
    catalog = route.catalog_of(s.database)
    try:
        if s.key and s.generation is None:
            # a set kept for reuse: labelled with the generation read before its search (in one
            # call on the embedded index; indexers/backend.py Catalog.search_at_generation)
            s.generation, s.result = await route.call(catalog.search_at_generation(s.restricted, result_sets=sets))
            return
        s.result = await route.call(catalog.search(s.restricted, result_sets=sets))
    except BaseException:
        if s.name is not None and s.drop_stale:
            s.sets.remove(s.name)   # a failed search leaves no stale set under this name
        raise


async def keep_result_set(route: "SearchRoute", s: Search) -> None:
    assert s.result is not None and s.database is not None and s.restricted is not None, "run_search comes first"
    s.kept = s.sets.put(s.result, name=s.name, ttl=s.ttl, query=s.query, database=s.database, key=s.key,
                        sort=s.restricted.sort, generation=s.generation or "")


SEARCH_STEPS: tuple[Step, ...] = (check_result_set, resolve_database, translate, restrict, limit_available,
                                  limit_arrivals, reuse_live_set, run_search, keep_result_set)
# a federation database (search/federation.py) goes through the same steps: resolve_database
# finds its catalog, run_search and the pages and records that follow use it (catalog_of)


# --------------------------------------------------------------------------- the route

class SearchRoute:
    def __init__(self, catalog: Catalog, databases: Databases, *, timeout: float = DEFAULT_TIMEOUT,
                 steps: Sequence[Step] = SEARCH_STEPS, clock: Callable[[], float] = time.monotonic,
                 availability: AvailabilitySource | None = None, arrivals: ArrivalsSource | None = None,
                 wall_clock: Callable[[], float] = time.time, zone: tzinfo | None = None):
        self.catalog = catalog
        self.availability = availability     # the circulation database's view, when served with one
        self.arrivals = arrivals             # the record store's new arrivals (search/arrivals.py)
        self.wall_clock = wall_clock         # today's date for the new arrivals' default window
        self.zone = zone                     # the network's time zone: the days of local.added (UTC if None)
        self.databases = databases
        self.timeout = timeout
        self.steps = tuple(steps)
        self.clock = clock

    @property
    def config(self):
        return self.catalog.config

    def catalog_of(self, database: Database | None) -> Catalog:
        """The catalog a database is searched on: a federation's own, else the union's."""
        return database.catalog if database is not None and database.catalog is not None else self.catalog

    def request(self, timeout: float | None = None) -> "_Request":
        """``async with route.request():`` -- one request's budget for every route
        call inside the block (``timeout``: a front end's own, shorter limit)."""
        return _Request(Budget(min(self.timeout, timeout) if timeout is not None else self.timeout, self.clock))

    async def call(self, awaitable):
        """Await a catalog call within what is left of the current request's budget.

        A coroutine is first run up to its first wait: one that answers without waiting
        (the embedded index answers most searches inline) needs no timer -- setting one
        up and cancelling it cost more than such a search's route steps together; one
        that waits is awaited from there under the timeout, as before."""
        budget = _BUDGET.get()
        if budget is None:
            budget = Budget(self.timeout, self.clock)
        left = budget.remaining()
        if left <= 0:
            if hasattr(awaitable, "close"):
                awaitable.close()
            raise SearchTimeout(f"the request's {budget.seconds:g} s are spent")
        try:
            deadline = asyncio.get_running_loop().time() + left
            if isinstance(awaitable, Coroutine):
                try:
                    first = awaitable.send(None)
                except StopIteration as done:
                    return done.value
                awaitable = _Resumed(awaitable, first)
            async with asyncio.timeout_at(deadline):
                return await awaitable
        except TimeoutError:
            raise SearchTimeout(f"the index did not answer within the request's {budget.seconds:g} s") from None

    # -- databases
    async def database(self, names: Sequence[str]) -> Database:
        """The database for a request's names; libraries that hold records are
        looked up in the catalog when a name is not known yet."""
        names = tuple(names)
        hit = self.databases.resolved(names)
        if hit is not None:
            return hit
        if names and any(self.databases.known(n) is None for n in names):
            generation = await self.call(self.catalog.generation())
            await self.call(self.databases.refresh(self.catalog, generation))
        return self.databases.resolve(names)

    # -- search and what follows it
    async def search(self, s: Search) -> ResultSet:
        for step in self.steps:
            await step(self, s)
        assert s.kept is not None, "the last step keeps the result set"
        return s.kept

    async def page(self, rs: ResultSet | SearchResult, offset: int, count: int) -> list[int]:
        if isinstance(rs, ResultSet):
            return await self.call(self.catalog_of(rs.database).page(rs.result, offset, count))
        return await self.call(self.catalog.page(rs, offset, count))

    async def fetch(self, ids: Sequence[int], database: Database | None = None) -> list[UnionRecord]:
        """Records by id (``database``: the result set's, where a federation keeps its own)."""
        return await self.call(self.catalog_of(database).fetch(ids)) if ids else []

    async def page_iso2709(self, rs: ResultSet, offset: int, count: int
                           ) -> tuple[list[int], dict[int, bytes | None]] | None:
        """Ids and stored ISO 2709 display records in one call, where the catalog
        offers that fast path (None otherwise)."""
        fast = getattr(self.catalog_of(rs.database), "page_iso2709", None)
        if fast is None:
            return None
        return await self.call(fast(rs.result, offset, count))

    async def facets(self, rs: ResultSet, names: Sequence[str], limit: int) -> dict[str, list[FacetValue]]:
        return await self.call(self.catalog_of(rs.database).facets(rs.result, list(names), limit))

    async def scan(self, index: str, term: str, position: int, count: int) -> list[ScanTerm]:
        if index.lower() in (AVAILABLE_INDEX, ADDED_INDEX):
            raise QueryError(16, index, f"{index} is a search limit and cannot be scanned")
        return await self.call(self.catalog.scan(index, term, position, count))


def catalog_timeout(catalog: Catalog, timeout: float = DEFAULT_TIMEOUT) -> float:
    """The route's budget for a catalog: ``timeout``, or the catalog's own
    documented search timeout (``search_timeout``) when that is shorter."""
    own = getattr(catalog, "search_timeout", None)
    return min(timeout, own) if own else timeout


def make_route(catalog: Catalog, libraries=(), *, timeout: float = DEFAULT_TIMEOUT,
               steps: Sequence[Step] = SEARCH_STEPS, clock: Callable[[], float] = time.monotonic,
               availability: AvailabilitySource | None = None,
               arrivals: ArrivalsSource | None = None, zone: tzinfo | None = None) -> SearchRoute:
    """The route every front end of one catalog uses (configured here, once);
    ``availability``: the circulation database's view (search/availability.py);
    ``arrivals``: the record store's new arrivals (search/arrivals.py); ``zone``: the
    network's time zone, whose days ``local.added`` counts."""
    return SearchRoute(catalog, Databases(libraries), timeout=catalog_timeout(catalog, timeout), steps=steps,
                       clock=clock, availability=availability, arrivals=arrivals, zone=zone)
