"""How many Elasticsearch requests one SRU searchRetrieve costs (issue 18).

Serves the SRU application of the code this Python imports (run it with another
checkout's venv to measure that build) in-process over a real port, on an
Elasticsearch catalog, and counts every request its Elasticsearch client sends, by
kind: the generation read (GET ``<alias>-meta``), the search, the ``mget`` of the
records, anything else.  Three passes of the workload, each an SRU 1.2
searchRetrieve of 10 MARCXML records:

* ``ttl0``: ``resultSetTTL=0`` (nothing kept, nothing reused between requests);
* ``keep``: ``resultSetTTL=60`` (each set kept for reuse);
* ``reuse``: ``resultSetTTL=0`` again, the sets of ``keep`` still live.

Printed as a table (requests per searchRetrieve), written as JSON; not a pass/fail
test.  The hit counts of each pass are printed too (the passes must agree).

    python bench/es_request_probe.py --data-dir D --es-url URL --es-index ALIAS --workload wl.json
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import socket
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import http_load as hl  # noqa: E402


def kind(path: str, alias: str) -> str:
    path = path.split("?")[0]
    if path.startswith(f"/{alias}-meta/"):
        return "generation"
    if path.endswith("/_search") or path == "/_search":
        return "search"
    if path.endswith("/_mget") or path == "/_mget":
        return "mget"
    return "other " + path


async def probe(a) -> dict:
    import aiohttp
    from aiohttp import web

    from gateway.app import make_app
    from indexers.backends.elasticsearch_catalog import ElasticsearchCatalog
    from indexers.backends.elasticsearch_index import EsConfig

    catalog = ElasticsearchCatalog(EsConfig(urls=[a.es_url], index=a.es_index))
    counts: collections.Counter = collections.Counter()
    transport = catalog.es.transport
    real = transport.perform_request

    async def counted(method, path, *args, **kw):
        counts[kind(path, a.es_index)] += 1
        return await real(method, path, *args, **kw)

    transport.perform_request = counted
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = make_app(a.data_dir, catalog=catalog, port=port)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}/sru"
    queries = [q["cql"] if isinstance(q, dict) else q for q in json.loads(a.workload.read_text())]
    out: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "python": sys.executable,
                 "loadavg_at_start": os.getloadavg(), "queries": len(queries), "passes": {}}
    try:
        async with aiohttp.ClientSession() as http:
            for q in queries[:3]:                               # warm-up (connections, caches)
                async with http.get(hl.sru_url(base, q, extra={"resultSetTTL": "0"})) as r:
                    await r.read()
            for name, ttl in (("ttl0", "0"), ("keep", "60"), ("reuse", "0")):
                counts.clear()
                hits = []
                for q in queries:
                    async with http.get(hl.sru_url(base, q, extra={"resultSetTTL": ttl})) as r:
                        hits.append(hl.parse_sru(await r.read()).get("hits"))
                n = len(queries)
                out["passes"][name] = {"requests": dict(counts),
                                       "per_searchretrieve": round(sum(counts.values()) / n, 3),
                                       "by_kind": {k: round(v / n, 3) for k, v in sorted(counts.items())},
                                       "hits": hits, "queries_with_hits": sum(1 for h in hits if h)}
    finally:
        await runner.cleanup()
        await catalog.aclose()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--es-url", required=True)
    ap.add_argument("--es-index", required=True, help="the catalog's alias")
    ap.add_argument("--workload", type=Path, required=True, help="JSON list of CQL queries (bench/workload.py)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    out = asyncio.run(probe(a))
    print(f"{out['python']}: {out['queries']} queries, load average {out['loadavg_at_start']}")
    print("| pass | ES requests per searchRetrieve | by kind |")
    print("|---|---|---|")
    for name, p in out["passes"].items():
        print(f"| {name} | {p['per_searchretrieve']} | "
              + ", ".join(f"{k} {v}" for k, v in p["by_kind"].items())
              + f" ({p['queries_with_hits']} of {out['queries']} queries have hits: an mget each) |")
    same = len({tuple(p["hits"]) for p in out["passes"].values()}) == 1
    print(f"hit counts the same in every pass: {same}")
    if a.out:
        a.out.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
