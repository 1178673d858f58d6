"""The catalog generation on the Elasticsearch backend, read once for the callers that
ask in the same turn of the event loop, on a real node: every caller still gets a
value read after its own call began (an ingest finished before a call is always
seen by it), a caller that gives up does not cancel the read of the others, and a
failure reaches every caller as diagnostic-1 material (BackendUnavailable) without
a "never retrieved" error in the log.  The reads are counted on the real client."""
from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

import marc_fixtures as mf
from indexers.backend import BackendUnavailable
from indexers.backends import elasticsearch_catalog as esc
from indexers.backends.elasticsearch_catalog import ElasticsearchCatalog
from indexers.backends.elasticsearch_index import EsConfig
from indexers.ingest import ingest


@pytest.fixture
def setup(es_url, tmp_path):
    cfg = EsConfig(urls=[es_url], index=f"gen-{uuid.uuid4().hex[:8]}", request_timeout=20.0)
    d = tmp_path / "d"

    def load(name: str, n: int) -> None:
        path = mf.write_iso2709(tmp_path / f"{name}.mrc", [mf.make_record(control_number=f"{name}{i}",
                                                                          title=f"Generation {name} {i}")
                                                           for i in range(n)])
        res = ingest(d, name, [path], quiet=True, es=cfg)
        assert res.index_pending == 0, res.index_error

    load("a", 5)
    return cfg, load


def counting(cat: ElasticsearchCatalog) -> list[int]:
    """Count the generation reads the catalog's real client sends."""
    calls = [0]
    real = cat.es.get

    async def get(**kw):
        calls[0] += 1
        return await real(**kw)

    cat.es.get = get
    return calls


def test_callers_in_one_turn_share_one_read_and_each_sees_what_happened_before_it(setup):
    cfg, load = setup

    async def main():
        cat = ElasticsearchCatalog(cfg)
        calls = counting(cat)
        try:
            got = await asyncio.gather(*(cat.generation() for _ in range(8)))
            assert len(set(got)) == 1 and got[0] != "0" and calls[0] == 1
            first = got[0]
            await asyncio.to_thread(load, "b", 3)  # an ingest finishes before the next call
            assert await cat.generation() != first and calls[0] == 2
            # a call made after a read was sent does not join it: it reads again
            early = asyncio.ensure_future(cat.generation())
            while calls[0] < 3:
                await asyncio.sleep(0)
            late = await cat.generation()
            assert calls[0] == 4 and await early == late
            # a caller that gives up does not cancel the read of the others
            a = asyncio.ensure_future(cat.generation())
            b = asyncio.ensure_future(cat.generation())
            await asyncio.sleep(0)
            a.cancel()
            assert await b == late and calls[0] == 5
        finally:
            await cat.aclose()

    asyncio.run(main())


def test_a_failed_read_reaches_every_caller_and_nothing_is_left_unretrieved(setup, caplog):
    cfg, _ = setup
    down = EsConfig(urls=["http://127.0.0.1:9"], index=cfg.index, request_timeout=2.0)  # nothing listens

    async def main():
        cat = ElasticsearchCatalog(down)
        try:
            got = await asyncio.gather(*(cat.generation() for _ in range(3)), return_exceptions=True)
            assert all(isinstance(e, BackendUnavailable) for e in got), got
            lone = asyncio.ensure_future(cat.generation())
            await asyncio.sleep(0)
            lone.cancel()  # nobody waits for this read's failure any more
            await asyncio.sleep(0.5)
        finally:
            await cat.aclose()

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    assert "never retrieved" not in caplog.text
    assert "Elasticsearch request failed" in caplog.text


def test_the_client_no_longer_logs_every_request_but_an_operators_level_is_kept(setup):
    logger = logging.getLogger(esc.TRANSPORT_LOG)
    saved = logger.level
    try:
        logger.setLevel(logging.NOTSET)
        esc._quiet_transport_log()
        assert logger.level == logging.WARNING
        logger.setLevel(logging.DEBUG)  # set by an operator: kept
        esc._quiet_transport_log()
        assert logger.level == logging.DEBUG
    finally:
        logger.setLevel(saved)
