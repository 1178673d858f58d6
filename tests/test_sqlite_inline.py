"""The embedded catalog runs small searches and fetches inline on the event loop and
hands anything above its SQLite time budget over to a worker thread
(indexers/backends/sqlite_index.py, INLINE_BUDGET): same results either way.  The
budget is measured on an injected clock, never on the machine's load."""
from __future__ import annotations

import asyncio

import pytest

from gateway.demo import write_demo_files
from indexers.backends import sqlite_exec
from indexers.backends.sqlite_index import SqliteCatalog
from indexers.ingest import ingest
from sru.cql import parse_cql


@pytest.fixture(scope="module")
def catalog_path(tmp_path_factory):
    d = tmp_path_factory.mktemp("inline")
    for lib, path in write_demo_files(d / "in").items():
        ingest(d, lib, [path], quiet=True)
    return d / "catalog.sqlite"


QUERIES = ["dc.title=図書館", "cql.allRecords=1", "dc.date>1990", "dc.title=toshokan or dc.creator=*"]


async def run_all(cat):
    out = []
    for q in QUERIES:
        res = await cat.search(parse_cql(q, cat.config))
        ids = await cat.page(res, 0, res.total)
        page = await cat.page_iso2709(res, 0, 5)
        recs = await cat.fetch(ids[:5])
        out.append((res.total, ids, page, [r.id for r in recs]))
    return out


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
    inline = asyncio.run(run_all(cat))
    assert hops == []                                   # the demo searches fit in the budget
    jumps = iter(range(0, 10 ** 9, 3600))
    cat.clock = lambda: float(next(jumps))
    cat.inline_budget = 1e-9                            # every statement is interrupted at once
    fallback = asyncio.run(run_all(cat))
    assert {"search_sync", "fetch_sync", "page_iso2709_sync"} <= set(hops)
    cat.inline_budget = 0                               # off: always a thread
    hops.clear()
    threaded = asyncio.run(run_all(cat))
    assert hops.count("search_sync") == len(QUERIES)
    assert inline == fallback == threaded and inline[1][0] > 5
    cat.close()
