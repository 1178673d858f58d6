"""Shared by the embedded catalog's tests (tests/test_sqlite_inline.py,
tests/test_sqlite_slow_work.py): a demo catalog and every kind of work asked of it once,
so that the answers of one way of running the work (inline, on a thread, at another
priority) can be compared with those of another."""
from __future__ import annotations

from gateway.demo import write_demo_files
from indexers.ingest import ingest
from sru.cql import parse_cql

QUERIES = ["dc.title=図書館", "cql.allRecords=1", "dc.date>1990", "dc.title=toshokan or dc.creator=*"]


def demo_catalog(d):
    """The demo libraries ingested into data directory ``d``: the catalog file's path."""
    for lib, path in write_demo_files(d / "in").items():
        ingest(d, lib, [path], quiet=True)
    return d / "catalog.sqlite"


async def answers(cat) -> list:
    """Everything ``cat`` answers for QUERIES -- totals, all ids, a page of ISO 2709 records,
    whole records, facets -- then its count and a scan, as one comparable list."""
    out: list = []
    for q in QUERIES:
        res = await cat.search(parse_cql(q, cat.config))
        ids = await cat.page(res, 0, res.total)
        page = await cat.page_iso2709(res, 0, 5)
        recs = await cat.fetch(ids[:5])
        facets = await cat.facets(res, sorted(cat.config.facets), 10)
        out.append((res.total, ids, page, [(r.id, r.marc.as_marc(), r.holdings, r.members) for r in recs], facets))
    out.append(await cat.count())
    out.append(await cat.scan("dc.title", "a", 1, 5))
    return out
