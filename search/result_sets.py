"""Result sets kept between requests: one class for both front ends.

* SRU keeps one server-wide store: every searchRetrieve gets a new random id
  (``resultSetId``) and a time to live, renewed on use (SRU "resultSetIdleTime");
  the same query again on an unchanged catalog may reuse a live set's hits
  (``find``).  A set to be reused carries two labels: its ``key`` (the database and
  the query) and the catalog ``generation`` it was searched at.  ``generations`` says,
  without the catalog, at which generations live sets of a query exist -- the route
  asks the catalog for its generation only when there are some (search/route.py).
* A Z39.50 association keeps its own store of *named* sets (``namedResultSets``):
  the client names them, a name is replaced by a new search, and they live as
  long as the association.

Both are bounded (``max_sets``).  Beyond the bound the least recently used set is
evicted, as a long-running client needs (yaz-client numbers its sets 1, 2, 3 ...
and would otherwise be refused after the fiftieth search); the names of evicted
sets are remembered (a bounded list) so that a later reference can say "deleted
by the server" (Bib-1 27) instead of "never existed" (30).  ``evict=False`` makes
the store refuse a new set instead (``full``), for a deployment that prefers
Bib-1 112 to losing a set silently.

In memory, per process; nothing here touches I/O.  The clock is injected.
SRU served by several processes keeps its store in a file instead
(search/result_sets_shared.py, the same interface: ``ResultSetStore``).
"""
from __future__ import annotations

import heapq
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol

from indexers.query_model import Query
from indexers.records import SearchResult

from .databases import DEFAULT, Database

REMEMBER_EVICTED = 1000
_DEFAULT_DATABASE = Database(DEFAULT)   # frozen: one instance is every default


@dataclass
class ResultSet:
    id: str                          # the set's name (SRU resultSetId, Z39.50 resultSetName)
    result: SearchResult
    query: Query | None = None       # the query as the client asked it (before the library restriction)
    database: Database = _DEFAULT_DATABASE   # the database it was searched in
    ttl: int | None = None           # seconds of idle life; None: lives until removed
    expires: float | None = None
    key: str = ""                    # reuse key (database, query); "" = never reused
    sort: tuple = field(default_factory=tuple)
    generation: str = ""             # the catalog generation it was searched at (for reuse)


class ResultSetStore(Protocol):
    """What the search route and the front ends use of a store of result sets: this
    module's ``ResultSets`` (memory) or search/result_sets_shared.py's (a file shared by
    processes)."""

    max_sets: int

    def full(self, name: str | None = None) -> bool: ...
    def put(self, result: SearchResult, *, name: str | None = None, ttl: int | None = None,
            query: Query | None = None, database: Database = _DEFAULT_DATABASE, key: str = "",
            sort: tuple = (), generation: str = "") -> ResultSet: ...
    def get(self, name: str) -> ResultSet | None: ...
    def generations(self, key: str, sort: tuple) -> frozenset[str]: ...
    def find(self, key: str, sort: tuple, generation: str = "") -> ResultSet | None: ...
    def was_evicted(self, name: str) -> bool: ...
    def remove(self, name: str) -> bool: ...
    def clear(self) -> int: ...
    def as_mapping(self) -> Mapping[str, SearchResult]: ...
    def names(self) -> list[str]: ...
    def __contains__(self, name: object) -> bool: ...
    def __len__(self) -> int: ...


class ResultSets:
    def __init__(self, max_sets: int = 1000, *, clock: Callable[[], float] = time.monotonic, evict: bool = True):
        self._sets: OrderedDict[str, ResultSet] = OrderedDict()      # least recently used first
        self._evicted: OrderedDict[str, None] = OrderedDict()
        # (key, sort) -> generation -> ids, least recently used first
        self._by_key: dict[tuple[str, tuple], dict[str, OrderedDict[str, None]]] = {}
        self._expiry: list[tuple[float, int, str]] = []             # heap of (expires, n, id); stale ones skipped
        self._pushed = 0
        self.max_sets = max_sets
        self.clock = clock
        self.evict = evict

    # the bookkeeping: every set enters by _keep and leaves by _drop; the heap and the
    # key index make expiry and ``find`` cost what changed, not the number of sets
    def _keep(self, rs: ResultSet) -> None:
        self._sets[rs.id] = rs
        if rs.key:
            self._by_key.setdefault((rs.key, rs.sort), {}).setdefault(rs.generation, OrderedDict())[rs.id] = None
        self._schedule(rs)

    def _drop(self, name: str) -> ResultSet | None:
        rs = self._sets.pop(name, None)
        if rs is not None and rs.key:
            by_generation = self._by_key[rs.key, rs.sort]
            group = by_generation[rs.generation]
            del group[name]
            if not group:
                del by_generation[rs.generation]
                if not by_generation:
                    del self._by_key[rs.key, rs.sort]
        return rs

    def _schedule(self, rs: ResultSet) -> None:
        if rs.expires is None:
            return
        self._pushed += 1
        heapq.heappush(self._expiry, (rs.expires, self._pushed, rs.id))
        if len(self._expiry) > 2 * len(self._sets) + 64:         # mostly renewed entries: rebuild
            self._expiry = [(v.expires, i, k) for i, (k, v) in enumerate(self._sets.items()) if v.expires is not None]
            heapq.heapify(self._expiry)

    def _expire(self) -> None:
        if not self._expiry:           # named Z39.50 sets: nothing ever expires
            return
        now = self.clock()
        while self._expiry and self._expiry[0][0] <= now:
            _, _, name = heapq.heappop(self._expiry)
            rs = self._sets.get(name)
            if rs is not None and rs.expires is not None and rs.expires <= now:
                self._drop(name)

    def _touch(self, rs: ResultSet) -> None:
        if rs.ttl is not None:
            rs.expires = self.clock() + rs.ttl
            self._schedule(rs)
        self._sets.move_to_end(rs.id)
        if rs.key:
            self._by_key[rs.key, rs.sort][rs.generation].move_to_end(rs.id)

    def full(self, name: str | None = None) -> bool:
        """True when a new set (other than one replacing ``name``) cannot be kept
        without evicting one, and this store does not evict."""
        self._expire()
        return not self.evict and name not in self._sets and len(self._sets) >= self.max_sets

    def put(self, result: SearchResult, *, name: str | None = None, ttl: int | None = None,
            query: Query | None = None, database: Database = _DEFAULT_DATABASE, key: str = "",
            sort: tuple = (), generation: str = "") -> ResultSet:
        """Keep a result: under ``name`` (replacing a set of that name), or under a new
        random id (``key``, ``sort`` and ``generation``: what ``find`` reuses it for).
        Evicts the least recently used sets beyond ``max_sets``.  An unnamed
        set asked to live 0 seconds (SRU ``resultSetTTL=0``) is answered but not kept: no
        later request could find it, and it must not evict a set that could be."""
        rs_id = name if name is not None else secrets.token_hex(6)
        expires = self.clock() + ttl if ttl is not None else None
        rs = ResultSet(rs_id, result, query, database, ttl, expires, key, tuple(sort), generation)
        if ttl == 0 and name is None:
            return rs
        self._expire()
        self._drop(rs_id)
        self._evicted.pop(rs_id, None)
        self._keep(rs)
        while len(self._sets) > self.max_sets:
            old = next(iter(self._sets))
            self._drop(old)
            self._evicted[old] = None
            while len(self._evicted) > REMEMBER_EVICTED:
                self._evicted.popitem(last=False)
        return rs

    def get(self, name: str) -> ResultSet | None:
        """The live set of that name (its idle time starts again), or None."""
        self._expire()
        rs = self._sets.get(name)
        if rs is not None:
            self._touch(rs)
        return rs

    def generations(self, key: str, sort: tuple) -> frozenset[str]:
        """The catalog generations at which live sets for this reuse key and sort exist
        (none: no set could be reused, whatever the catalog's generation now)."""
        self._expire()
        if not key:
            return frozenset()
        return frozenset(self._by_key.get((key, tuple(sort)), ()))

    def find(self, key: str, sort: tuple, generation: str = "") -> ResultSet | None:
        """A live set for the same reuse key, sort and generation (so paging reuses its
        hits): the most recently used of them, renewed."""
        self._expire()
        if not key:
            return None
        group = self._by_key.get((key, tuple(sort)), {}).get(generation)
        if not group:
            return None
        rs = self._sets[next(reversed(group))]
        self._touch(rs)
        return rs

    def was_evicted(self, name: str) -> bool:
        """True if a set of that name was evicted to make room (and not made again)."""
        return name in self._evicted

    def remove(self, name: str) -> bool:
        self._evicted.pop(name, None)
        return self._drop(name) is not None

    def clear(self) -> int:
        n = len(self._sets)
        self._sets.clear()
        self._evicted.clear()
        self._by_key.clear()
        self._expiry.clear()
        return n

    def as_mapping(self) -> dict[str, SearchResult]:
        """name -> hits, for resolving cql.resultSetId / @set references."""
        self._expire()
        return {k: v.result for k, v in self._sets.items()}

    def names(self) -> list[str]:
        self._expire()
        return list(self._sets)

    def __contains__(self, name: object) -> bool:
        self._expire()
        return name in self._sets

    def __len__(self) -> int:
        self._expire()
        return len(self._sets)
