"""CPU per SRU searchRetrieve of one build, in one process (issue 18).

Serves the SRU application of the code this Python imports (run it with another
checkout's venv to measure that build) on a real loopback port, with the client in
the same process, and sends the workload ``--passes`` times (after one warm-up pass),
one request at a time (``--concurrency``: that many clients): each an SRU 1.2 searchRetrieve of 10 MARCXML records with
``resultSetTTL=0``.  Prints the process CPU per request (server and client
together: the client's share is the same for every build) and the median latency,
each the median over the passes.  Run two builds alternately to compare them; not a
pass/fail test.

    python bench/sru_inproc_cpu.py --data-dir D --workload wl.json --passes 6
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import http_load as hl  # noqa: E402


async def measure(data_dir: Path, queries: list[str], passes: int, concurrency: int = 1
                  ) -> list[tuple[float, float]]:
    import aiohttp
    from aiohttp import web

    from gateway.app import make_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runner = web.AppRunner(make_app(data_dir, port=port))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}/sru"
    out = []
    try:
        async with aiohttp.ClientSession() as http:
            async def client(mine: list[str], lat: list[float]) -> None:
                for q in mine:
                    t = time.perf_counter()
                    async with http.get(hl.sru_url(base, q, extra={"resultSetTTL": "0"})) as r:
                        await r.read()
                    lat.append(time.perf_counter() - t)

            for p in range(passes + 1):            # pass 0: warm-up
                cpu0, lat = time.process_time(), []
                await asyncio.gather(*(client(queries[i::concurrency], lat) for i in range(concurrency)))
                if p:
                    out.append((1000 * (time.process_time() - cpu0) / len(queries), 1000 * statistics.median(lat)))
    finally:
        await runner.cleanup()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--workload", type=Path, required=True, help="JSON list of CQL queries (bench/workload.py)")
    ap.add_argument("--passes", type=int, default=6)
    ap.add_argument("--concurrency", type=int, default=1, help="clients at once (the workload split among them)")
    a = ap.parse_args(argv)
    queries = [q["cql"] if isinstance(q, dict) else q for q in json.loads(a.workload.read_text())]
    load = os.getloadavg()[0]
    got = asyncio.run(measure(a.data_dir, queries, a.passes, a.concurrency))
    print(f"{sys.executable}: CPU {statistics.median(c for c, _ in got):.3f} ms/request (server + client), "
          f"p50 {statistics.median(p for _, p in got):.3f} ms; {a.passes} passes of {len(queries)} queries, "
          f"{a.concurrency} client(s); "
          f"load average {load:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
