"""The embedded catalog runs small searches, fetches, scans, facets and counts inline on
the event loop and hands anything above its SQLite time budget over to a worker thread
(indexers/backends/sqlite_inline.py, INLINE_BUDGET): same results either way.  The
budget is measured on an injected clock, never on the machine's load."""
from __future__ import annotations

import asyncio

import pytest

from indexers.backends import sqlite_exec
from indexers.backends.sqlite_index import SqliteCatalog
from sqlite_helpers import QUERIES, answers, demo_catalog
from sru.cql import parse_cql


@pytest.fixture(scope="module")
def catalog_path(tmp_path_factory):
    return demo_catalog(tmp_path_factory.mktemp("inline"))


def test_inline_budget_exceeded_falls_back_to_a_thread_with_the_same_results(catalog_path, monkeypatch):
    hops = []
    real = sqlite_exec.SlowPool.run       # off the loop: the slow-work threads (sqlite_exec.py)

    async def counting(self, fn, *a):
        hops.append(fn.__name__)
        return await real(self, fn, *a)
    monkeypatch.setattr(sqlite_exec.SlowPool, "run", counting)

    # The budget is measured on an injected clock, so the test does not depend on how
    # busy the machine is: first a clock that stands still (every search fits in the
    # budget), then one that jumps an hour at every reading (every statement overruns).
    cat = SqliteCatalog(catalog_path, clock=lambda: 0.0)
    inline = asyncio.run(answers(cat))
    assert hops == []                                   # the demo searches, scans, facets fit in the budget
    jumps = iter(range(0, 10 ** 9, 3600))
    cat.clock = cat.wall_clock = lambda: float(next(jumps))   # (CPU time never outruns the wall clock)
    cat.inline_budget = 1e-9                            # every statement is interrupted at once
    fallback = asyncio.run(answers(cat))
    # (a count of the few demo records ends before SQLite's progress handler first looks)
    assert {"search_sync", "fetch_sync", "page_iso2709_sync", "facets_sync", "scan_sync"} <= set(hops)
    cat.inline_budget = 0                               # off: always a thread
    hops.clear()
    threaded = asyncio.run(answers(cat))
    assert hops.count("search_sync") == len(QUERIES) and hops.count("facets_sync") == len(QUERIES)
    assert hops.count("scan_sync") == hops.count("count_sync") == 1
    assert inline == fallback == threaded and inline[1][0] > 5
    cat.close()


def test_a_scan_that_overran_goes_to_a_thread_at_once_next_time_others_stay_inline(catalog_path, monkeypatch):
    """A scan, facets, a count are remembered as slow like a search, by the kind and shape
    of the work (a scan: its index, position and size, not its term)."""
    hops = []

    async def counting(self, fn, *a):
        hops.append(fn.__name__)
        return fn(*a)
    monkeypatch.setattr(sqlite_exec.SlowPool, "run", counting)
    cat = SqliteCatalog(catalog_path, clock=lambda: 0.0)
    want = asyncio.run(cat.scan("dc.title", "a", 1, 5))
    assert hops == [] and want
    jumps = iter(range(0, 10 ** 9, 3600))
    cat.clock = cat.wall_clock = lambda: float(next(jumps))    # every look: an hour of CPU
    assert asyncio.run(cat.scan("dc.title", "a", 1, 5)) == want
    assert hops == ["scan_sync"] and ("scan", "dc.title", 1, 5) in cat._slow
    cat.clock = cat.wall_clock = lambda: 0.0
    assert asyncio.run(cat.scan("dc.title", "b", 1, 5))          # another term, same shape: a thread at once
    assert hops == ["scan_sync"] * 2
    asyncio.run(cat.scan("dc.creator", "a", 1, 5))               # another index: inline
    res = asyncio.run(cat.search(parse_cql("cql.allRecords=1", cat.config)))
    asyncio.run(cat.facets(res, sorted(cat.config.facets), 10))
    assert asyncio.run(cat.count()) == res.total
    assert hops == ["scan_sync"] * 2
    cat.close()
