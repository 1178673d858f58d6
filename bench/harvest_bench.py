"""Harvesting, the OAI-PMH provider and federated search, measured (not a test).

1. harvest throughput: N MARCXML records served by a pyoai provider
   (tools/pyoai_peer.py, pages of ``--page`` records) harvested into a fresh data
   directory (``connectors.harvest.runner.harvest``), against ``ingest`` of the same
   records from one MARCXML file into another fresh data directory: records/s of each;
2. our provider: ``ListRecords`` (marc21) of those records at ``/oai`` of the real
   application (gateway/app.py on a loopback port), every page with its resumption
   token, over one keep-alive HTTP connection: records/s and ms per page;
3. federated search overhead: a federation of the local union catalog and yaz-ztest
   (``Default?search-delay=LO:HI`` makes it the slowest target); per query, the time
   of the whole federated search minus the time its slowest target took (each target
   timed inside the fan-out): p50/p99 of that overhead over ``--queries`` searches.

usage::

    python bench/harvest_bench.py                          # 2,000 records, 200 queries
    python bench/harvest_bench.py --records 10000 --page 200 --out bench/results-harvest.json

Needs yaz-ztest (Debian yaz) for part 3; ``--skip-federation`` leaves it out.
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import pymarc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "bench"))

WORDS = ["図書館", "歴史", "京都", "library", "history", "art", "情報", "検索", "庭園", "science"]


def marcxml(i: int) -> bytes:
    r = pymarc.Record(force_utf8=True, leader="00000nam a2200000 a 4500")
    r.add_field(pymarc.Field(tag="001", data=f"bh{i:07d}"))
    r.add_field(pymarc.Field(tag="020", indicators=pymarc.Indicators(" ", " "),
                             subfields=[pymarc.Subfield("a", f"978{i:010d}")]))
    r.add_field(pymarc.Field(tag="245", indicators=pymarc.Indicators("1", "0"), subfields=[
        pymarc.Subfield("a", f"{WORDS[i % len(WORDS)]} {WORDS[(i // 10) % len(WORDS)]} 第{i}巻")]))
    r.add_field(pymarc.Field(tag="852", indicators=pymarc.Indicators(" ", " "),
                             subfields=[pymarc.Subfield("b", "本館"), pymarc.Subfield("p", f"B{i:07d}")]))
    return pymarc.record_to_xml(r, namespace=True)


def part_harvest(work: Path, n: int, page: int) -> dict:
    from connectors.harvest.config import parse_source
    from connectors.harvest.runner import harvest
    from connectors.harvest.sources import Retrying
    from indexers.ingest import ingest
    from pyoai_peer import PyoaiPeer

    records = [marcxml(i) for i in range(1, n + 1)]
    xml_file = work / "records.xml"
    with open(xml_file, "wb") as f:
        f.write(b'<collection xmlns="http://www.loc.gov/MARC21/slim">')
        for x in records:
            f.write(re.sub(rb"^<\?xml[^>]*>", b"", x))
        f.write(b"</collection>")
    t0 = time.perf_counter()
    res = ingest(work / "by-file", "bench", [xml_file], full=True, quiet=True, workers=0)
    file_s = time.perf_counter() - t0
    assert res.error is None, res.error

    peer = PyoaiPeer(batch_size=page)
    for i, x in enumerate(records, 1):
        peer.put(f"oai:bench:{i}", x)
    peer.start()
    try:
        src = parse_source("bench", {"protocol": "oai-pmh", "url": peer.base_url})
        t0 = time.perf_counter()
        rep = harvest(work / "by-harvest", src, retrying=Retrying(attempts=2, backoff=0))
        harvest_s = time.perf_counter() - t0
    finally:
        peer.stop()
    assert rep.outcome == "complete", rep.outcome
    return {"records": n, "page": page, "ingest_s": round(file_s, 3), "ingest_rps": round(n / file_s),
            "harvest_s": round(harvest_s, 3), "harvest_rps": round(n / harvest_s), "pages": rep.pages,
            "harvest_vs_ingest": round(file_s / harvest_s, 3)}


def part_provider(data_dir: Path, page: int) -> dict:
    from aiohttp import web

    from gateway.app import make_app
    from gateway.oai import OAI_PROVIDER
    from procmon import free_port

    port = free_port()
    app = make_app(data_dir, port=port)
    import dataclasses

    app[OAI_PROVIDER].settings = dataclasses.replace(app[OAI_PROVIDER].settings, page_size=page)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    ready = threading.Event()

    def run():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    path = "/oai?verb=ListRecords&metadataPrefix=marc21"
    pages = records = 0
    per_page = []
    t0 = time.perf_counter()
    while path:
        t = time.perf_counter()
        conn.request("GET", path)
        body = conn.getresponse().read()
        per_page.append(time.perf_counter() - t)
        pages += 1
        records += body.count(b"<record>")
        m = re.search(rb"<resumptionToken[^>]*>([^<]+)</resumptionToken>", body)
        path = f"/oai?verb=ListRecords&resumptionToken={m.group(1).decode()}" if m else ""
    total = time.perf_counter() - t0
    conn.close()
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    return {"records": records, "pages": pages, "seconds": round(total, 3), "rps": round(records / total),
            "page_ms_p50": round(statistics.median(per_page) * 1000, 1)}


class Timed:
    """A target whose own time is kept (the overhead is what the fan-out adds)."""

    def __init__(self, target):
        self.target = target
        self.name, self.label, self.timeout = target.name, target.label, target.timeout
        self.took = 0.0

    async def search(self, query, count):
        t = time.perf_counter()
        try:
            return await self.target.search(query, count)
        finally:
            self.took = time.perf_counter() - t


def part_federation(work: Path, data_dir: Path, queries: int, delay: str) -> dict:
    from connectors.federation_targets import Z3950Target
    from indexers.backends.sqlite_index import SqliteCatalog
    from search.federation import FederatedCatalog, LocalTarget, problems_of
    from sru.cql import parse_cql
    from ztest_peer import ZtestPeer

    peer = ZtestPeer(work / "ztest")
    peer.start()
    cat = SqliteCatalog(data_dir / "catalog.sqlite")
    try:
        local = Timed(LocalTarget(cat, "union", 30))
        ztest = Timed(Z3950Target("ztest", "127.0.0.1", peer.port, f"Default?search-delay={delay}", 30,
                                  indexes={"dc.title": "1=4"}))
        fed = FederatedCatalog("bench", cat, [local, ztest], records=10)
        latin = [w for w in WORDS if w.isascii()]

        async def run() -> list[float]:
            out = []
            for i in range(queries):
                q = parse_cql(f"dc.title={latin[i % len(latin)]}", cat.config)
                t = time.perf_counter()
                res = await fed.search(q)
                whole = time.perf_counter() - t
                if problems_of(res):
                    raise SystemExit(f"a target was left out: {problems_of(res)}")
                out.append(whole - max(local.took, ztest.took))
            return out

        over = sorted(asyncio.run(run()))
    finally:
        cat.close()
        peer.stop()
    ms = [x * 1000 for x in over]
    return {"queries": queries, "slowest_target_delay_s": delay, "overhead_ms_p50": round(statistics.median(ms), 2),
            "overhead_ms_p99": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
            "overhead_ms_mean": round(statistics.fmean(ms), 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--page", type=int, default=100, help="records per OAI-PMH page (provider and ours)")
    ap.add_argument("--queries", type=int, default=200, help="federated searches")
    ap.add_argument("--delay", default="0.01:0.03", help="yaz-ztest's search-delay (the slowest target)")
    ap.add_argument("--skip-federation", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="harvest-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        out = {"harvest": part_harvest(work, args.records, args.page)}
        print("harvest vs ingest:", json.dumps(out["harvest"]), flush=True)
        out["oai_provider"] = part_provider(work / "by-file", args.page)
        print("our /oai ListRecords:", json.dumps(out["oai_provider"]), flush=True)
        if not args.skip_federation:
            if shutil.which("yaz-ztest") is None:
                print("yaz-ztest not installed: federation left out (apt-get install yaz)", file=sys.stderr)
            else:
                out["federation"] = part_federation(work, work / "by-file", args.queries, args.delay)
                print("federated search overhead:", json.dumps(out["federation"]), flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
