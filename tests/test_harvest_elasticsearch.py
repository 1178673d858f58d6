"""A harvest into a deployment on Elasticsearch (the session's node: `make test` runs
the suite under tools/elasticsearch_node.py): the harvested records, a deleted header
and a record that was read twice (a resumed run) land in the index as in the store."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from connectors.harvest.config import parse_source
from connectors.harvest.runner import harvest
from connectors.harvest.sources import Retrying
from indexers.backends.elasticsearch_catalog import ElasticsearchCatalog
from indexers.backends.elasticsearch_index import EsConfig
from sru.cql import parse_cql

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from pyoai_peer import PyoaiPeer
from test_harvest import PeerClock, ident, marcxml


def titles(cfg: EsConfig, cql: str) -> tuple[int, list[str]]:
    async def go():
        cat = ElasticsearchCatalog(cfg)
        try:
            res = await cat.search(parse_cql(cql, cat.config))
            recs = await cat.fetch(await cat.page(res, 0, 100))
            return res.total, sorted(r.marc["245"]["a"] for r in recs)
        finally:
            await cat.aclose()

    return asyncio.run(go())


def test_harvest_indexes_into_elasticsearch_deletions_and_resumes_included(es_url, tmp_path):
    cfg = EsConfig(urls=[es_url], index=f"harvest-{os.getpid()}")
    clock = PeerClock()
    peer = PyoaiPeer(batch_size=4, clock=clock)
    for i in range(1, 11):
        peer.put(ident(i), marcxml(i, f"京都の本 第{i}巻"))
    peer.start()
    try:
        src = parse_source("kyoto-u", {"protocol": "oai-pmh", "url": peer.base_url})
        peer.die_after(2)                                     # two pages, then the provider is gone
        rep = harvest(tmp_path, src, retrying=Retrying(attempts=2, backoff=0), es=cfg)
        assert rep.outcome.startswith("failed") and rep.counts["added"] == 8
        peer.revive()
        rep = harvest(tmp_path, src, retrying=Retrying(attempts=2, backoff=0), es=cfg)
        assert rep.mode == "resumed" and rep.outcome == "complete", rep.errors
        assert titles(cfg, "dc.title=京都")[0] == 10
        clock.tick()
        peer.delete(ident(4))
        clock.tick()
        rep = harvest(tmp_path, src, retrying=Retrying(attempts=2, backoff=0), es=cfg)
        assert rep.outcome == "complete" and rep.counts["withdrawn"] == 1
        total, got = titles(cfg, "dc.title=京都")
        assert total == 9 and "京都の本 第4巻" not in got
    finally:
        peer.stop()
