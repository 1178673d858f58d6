"""The OPAC's pages under load: the server time of the search results page (card mode, the
live status of every copy on the page) and of the title page, at 1 and 32 concurrent users,
against SRU searchRetrieve of the same query (``recordSchema=opac``: the same records with
holdings and availability, the same page size), on a catalog with availability.

The catalog and the circulation database are those of bench/availability_bench.py
(``--records`` synthetic MARC records whose ISBNs are the circulation titles, two copies a
title over the branches of Iizuka and Komae, some on loan, on the hold shelf, in transit,
lost; reservations on 5 % of the titles), built once in ``--work DIR`` (a DIR of an earlier
run of either script is used as it is). The real application (gateway.app.make_app, the
pages mounted as ``unioncat serve`` mounts them) runs on a loopback port in this process's
second thread; an aiohttp client drives it with keep-alive connections.

Server time is measured inside the application (a middleware around the handler: from
the request parsed to the response prepared, the body written); the client's latency is
printed too. Each query of the workload is the same on both sides: the page's one box
``q=<two words>`` is ``cql.serverChoice all "<two words>"`` in SRU, 20 records a page.

    .venv/bin/python bench/web_bench.py                              # 250,000 records
    .venv/bin/python bench/web_bench.py --records 20000 --work /tmp/web-bench-20k

Prints JSON (also written to ``--out``), with the ratios results page / SRU and title page /
SRU at each concurrency. Timings are what this machine gave at the time of the run (two
cores shared by server and client); nothing here is a test.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
from aiohttp import web

from availability_bench import NOW, WORDS, build_circulation, write_records
from circulation.service import Circulation
from circulation.store import Clock, Database
from lifecycle.profiles import load_all

PAGE = 20


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * p))], 3) if values else 0.0


def queries(rnd: random.Random, n: int) -> list[str]:
    return [" ".join(rnd.sample(WORDS, 2)) for _ in range(n)]


def urls(kind: str, qs: list[str], records: int, rnd: random.Random) -> list[str]:
    if kind == "results":
        return ["/search?" + urllib.parse.urlencode({"q": q}) for q in qs]
    if kind == "title":
        return [f"/title/{rnd.randint(1, records)}" for _ in qs]
    return ["/sru?" + urllib.parse.urlencode({"operation": "searchRetrieve", "version": "1.2",
                                              "query": f'cql.serverChoice all "{q}"', "maximumRecords": str(PAGE),
                                              "recordSchema": "opac"}) for q in qs]


class Served:
    """The application on a loopback port in a second thread, with server-time recording."""

    def __init__(self, work: Path, circ: Circulation, port: int):
        from gateway.app import make_app

        self.times: dict[str, list[float]] = {}
        self.kind = "warm"
        self.loop = asyncio.new_event_loop()
        self.app = make_app(work, port=port, circulation=circ, circulation_jobs={}, cookie_secure=False)

        @web.middleware
        async def timer(request, handler):
            t0 = time.perf_counter()
            resp = await handler(request)
            self.times.setdefault(self.kind, []).append((time.perf_counter() - t0) * 1000)
            return resp

        self.app.middlewares.append(timer)
        self.runner = web.AppRunner(self.app, access_log=None)
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.runner.setup())
            self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", port).start())
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(60)

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def load(base: str, paths: list[str], concurrency: int, max_requests: int, max_seconds: float) -> dict:
    lat: list[float] = []
    statuses: dict[int, int] = {}
    next_i = 0
    conn = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=120)) as s:
        deadline = time.perf_counter() + max_seconds

        async def worker():
            nonlocal next_i
            while next_i < max_requests and time.perf_counter() < deadline:
                path = paths[next_i % len(paths)]
                next_i += 1
                t0 = time.perf_counter()
                async with s.get(base + path) as r:
                    await r.read()
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                lat.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {"requests": len(lat), "statuses": statuses, "client_p50_ms": pct(lat, 0.5),
            "client_p99_ms": pct(lat, 0.99), "per_s": round(len(lat) / wall, 1) if wall else 0}


def measure(served: Served, base: str, kind: str, paths: list[str], concurrency: int, args) -> dict:
    served.kind = "warm"
    asyncio.run(load(base, paths[:concurrency * 2], concurrency, concurrency * 2, 60))   # connections, caches
    served.kind = kind
    served.times[kind] = []
    out = asyncio.run(load(base, paths, concurrency, args.requests, args.seconds))
    server = served.times[kind]
    return {"server_p50_ms": pct(server, 0.5), "server_p99_ms": pct(server, 0.99), **out}


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


async def prepare(args, work: Path, rnd: random.Random) -> tuple[Circulation, dict]:
    url = f"sqlite+aiosqlite:///{work}/circulation.db"
    info: dict = {"work": str(work)}
    if (work / "catalog.sqlite").exists() and (work / "circulation.db").exists():
        info["reused"] = True
        return Circulation(Database(url), load_all(), Clock(NOW)), info
    t0 = time.perf_counter()
    circ = await build_circulation(url, args.records, rnd)
    info["circulation_build_s"] = round(time.perf_counter() - t0, 1)
    from indexers.ingest import ingest

    mrc = work / "records.mrc"
    write_records(mrc, args.records, rnd)
    t0 = time.perf_counter()
    await asyncio.to_thread(ingest, work, "iizuka", [mrc], quiet=True)
    info["ingest_s"] = round(time.perf_counter() - t0, 1)
    return circ, info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=250_000)
    ap.add_argument("--work", type=Path, help="keep (or reuse) the catalog and circulation database here")
    ap.add_argument("--requests", type=int, default=400, help="requests per kind and concurrency at most")
    ap.add_argument("--seconds", type=float, default=20, help="seconds per kind and concurrency at most")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--out", type=Path, help="write the JSON here too")
    args = ap.parse_args(argv)
    rnd = random.Random(13)
    work = args.work or Path(tempfile.mkdtemp(prefix="unioncat-web-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    loop = asyncio.new_event_loop()
    circ, info = loop.run_until_complete(prepare(args, work, rnd))
    loop.run_until_complete(circ.db.dispose())          # the server's loop opens its own connections
    loop.close()
    circ = Circulation(Database(f"sqlite+aiosqlite:///{work}/circulation.db"), load_all(), Clock(NOW))
    if not args.port:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            args.port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{args.port}"
    served = Served(work, circ, args.port)
    result: dict = {"records": args.records, **info, "page_size": PAGE, "sru_schema": "opac", "levels": {}}
    try:
        qs = queries(rnd, 200)
        kinds = {k: urls(k, qs, args.records, random.Random(7)) for k in ("results", "title", "sru")}
        for c in args.concurrency:
            level = {k: measure(served, base, k, paths, c, args) for k, paths in kinds.items()}
            level["ratio_results_to_sru_p50"] = ratio(level["results"]["server_p50_ms"], level["sru"]["server_p50_ms"])
            level["ratio_results_to_sru_p99"] = ratio(level["results"]["server_p99_ms"], level["sru"]["server_p99_ms"])
            level["ratio_title_to_sru_p50"] = ratio(level["title"]["server_p50_ms"], level["sru"]["server_p50_ms"])
            result["levels"][str(c)] = level
            print(json.dumps({c: level}, ensure_ascii=False), file=sys.stderr)
    finally:
        served.stop()
    text = json.dumps(result, ensure_ascii=False, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
