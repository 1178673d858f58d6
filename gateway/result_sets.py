"""Named result sets kept for SRU resultSetId / resultSetTTL (and Z39.50 later).

In memory, per server process, bounded in number; an entry lives for its TTL
after its last use (SRU "resultSetIdleTime" semantics)."""
from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from indexers.records import SearchResult


@dataclass
class ResultSet:
    id: str
    query: str
    result: SearchResult
    ttl: int
    expires: float = 0.0
    sort: tuple = field(default_factory=tuple)


class ResultSetStore:
    def __init__(self, max_sets: int = 1000, clock=time.monotonic):
        self._sets: OrderedDict[str, ResultSet] = OrderedDict()
        self.max_sets = max_sets
        self.clock = clock

    def _expire(self) -> None:
        now = self.clock()
        for k in [k for k, v in self._sets.items() if v.expires <= now]:
            del self._sets[k]

    def put(self, query: str, result: SearchResult, ttl: int, sort: tuple = ()) -> ResultSet:
        self._expire()
        rs = ResultSet(secrets.token_hex(6), query, result, ttl, self.clock() + ttl, sort)
        self._sets[rs.id] = rs
        while len(self._sets) > self.max_sets:
            self._sets.popitem(last=False)
        return rs

    def get(self, rs_id: str) -> ResultSet | None:
        self._expire()
        rs = self._sets.get(rs_id)
        if rs is not None:
            rs.expires = self.clock() + rs.ttl
            self._sets.move_to_end(rs_id)
        return rs

    def find(self, query: str, sort: tuple) -> ResultSet | None:
        """A live result set for the same query and sort (so paging reuses it)."""
        self._expire()
        for rs in reversed(self._sets.values()):
            if rs.query == query and rs.sort == sort:
                rs.expires = self.clock() + rs.ttl
                return rs
        return None

    def as_mapping(self) -> dict[str, SearchResult]:
        self._expire()
        return {k: v.result for k, v in self._sets.items()}

    def __len__(self) -> int:
        self._expire()
        return len(self._sets)
