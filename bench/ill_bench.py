"""ISO 18626: messages per second through the supplier endpoint, and one message's
round trip, at 1 and 16 concurrent partners.

A supplier node (the circulation service on SQLite, or PostgreSQL with ``--pg URL``,
behind ``POST /iso18626`` in an aiohttp server) runs in a child process on 127.0.0.1;
this process plays the partners: ``--partners`` configured agencies (16 by default),
each with its own credential, each client task one partner.  Two phases per
concurrency level (``--concurrency``, default 1 and 16), bounded by ``--seconds``:

``request``
    a new Request for a title the node's Komae system holds (the holdings check, a new
    supply, its ExpectToSupply queued in the outbox, the log row), confirmed OK;
``status``
    a StatusRequest on one of the partner's supplies (a state read, the answer queued).

Per phase: messages, messages/s, p50/p99 of the round trip (POST to confirmation read,
ms), errors (any non-OK confirmation or HTTP error).  No second implementation of ISO
18626 can be installed here to run side by side, so the figures stand alone
(docs/benchmarks.md).

    python bench/ill_bench.py [--seconds 10] [--concurrency 1 16] [--pg URL] [--json out.json]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

US = "JP-0009999"


def partner_codes(n: int) -> list[str]:
    return [f"JP-{7000000 + i}" for i in range(n)]


SERVER = r"""
import asyncio, sys
from aiohttp import web
sys.path.insert(0, {root!r})
from circulation.ill.common import Ill
from circulation.ill.node import IllNode
from circulation.service import Circulation
from circulation.store import Database, install_network
from circulation import schema as s
from connectors.iso18626 import config as C
from gateway.iso18626_endpoint import add_routes
from lifecycle.profiles import load_all
from sqlalchemy import insert

async def main():
    db = Database({url!r})
    await db.create_all()
    circ = Circulation(db, load_all())
    async with db.transaction() as conn:
        await install_network(conn, circ.profiles)
        await conn.execute(insert(s.items), [dict(barcode=f"B{{i:06d}}", title_id=f"isbn:97840000{{i:05d}}",
                            library="komae", owning_branch="komae-central", current_branch="komae-central")
                            for i in range(200)])
    partners = {{code: {{"url": "http://127.0.0.1:9/iso18626", "accept_token": f"t-{{code}}", "library": code}}
                for code in {codes!r}}}
    cfg = C.load({{"ill": {{"agency_id": "ISIL:{us}", "callback_url": "http://127.0.0.1:{port}/iso18626",
                          "systems": ["komae"], "partners": partners}}}}, env={{}})
    app = web.Application()
    add_routes(app, IllNode(Ill(circ, cfg)))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", {port}).start()
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(p / 100 * len(values) + 0.5)) - 1))]


async def run_phase(url: str, codes: list[str], concurrency: int, seconds: float, kind: str,
                    supplies: dict[str, list[str]]) -> dict:
    import aiohttp

    from connectors import iso18626 as I
    from connectors.iso18626 import model as m

    us = m.AgencyId.of("ISIL", US)
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    counter = {"n": 0}

    async def client(code: str, http: aiohttp.ClientSession):
        nonlocal errors
        partner = m.AgencyId.of("ISIL", code)
        headers = {"Authorization": f"Bearer t-{code}", "Content-Type": "application/xml"}
        while time.perf_counter() < stop:
            counter["n"] += 1
            n = counter["n"]
            now = datetime.now(timezone.utc)
            if kind == "request":
                rid = f"{kind}-{concurrency}-{n}"
                msg = m.Request(header=I.header(requesting=partner, supplying=us, request_id=rid, now=now),
                                bibliographic_info=m.BibliographicInfo(title="bench", bibliographic_item_id=(
                                    m.BibliographicItemId(f"97840000{n % 200:05d}", m.SchemeValue("ISBN")),)),
                                service_info=m.ServiceInfo(service_type=m.ServiceType.LOAN))
                supplies.setdefault(code, []).append(rid)
            else:
                rids = supplies.get(code) or []
                if not rids:
                    return
                msg = I.requesting_message(I.header(requesting=partner, supplying=us,
                                                    request_id=rids[n % len(rids)], now=now),
                                           m.Action.STATUS_REQUEST)
            body = I.encode(msg)
            t0 = time.perf_counter()
            try:
                async with http.post(url, data=body, headers=headers) as r:
                    data = await r.read()
                ok = r.status == 200 and I.decode(data).confirmation_header.message_status is m.MessageStatus.OK
            except Exception:  # noqa: BLE001 - counted
                ok = False
            lat.append((time.perf_counter() - t0) * 1000)
            errors += not ok

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(codes[i % len(codes)], http) for i in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return {"phase": kind, "concurrency": concurrency, "messages": len(lat),
            "per_second": round(len(lat) / elapsed, 1), "p50_ms": round(pct(lat, 50), 2),
            "p99_ms": round(pct(lat, 99), 2), "errors": errors}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--partners", type=int, default=16)
    ap.add_argument("--pg", metavar="URL", help="PostgreSQL (postgresql+asyncpg://...) instead of SQLite")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from live_server import free_port

    port = free_port()
    codes = partner_codes(args.partners)
    tmp = tempfile.mkdtemp(prefix="ill-bench-")
    url = args.pg or f"sqlite+aiosqlite:///{tmp}/supplier.db"
    script = SERVER.format(root=str(ROOT), url=url, codes=codes, us=US, port=port)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if line.strip() != "ready":
            print("the supplier node did not start", file=sys.stderr)
            return 1
        endpoint = f"http://127.0.0.1:{port}/iso18626"
        results, supplies = [], {}
        for c in args.concurrency:
            for kind in ("request", "status"):
                res = asyncio.run(run_phase(endpoint, codes, c, args.seconds, kind, supplies))
                results.append(res)
                print(f"{kind:8s} c={c:<3d} {res['messages']:6d} msgs {res['per_second']:8.1f}/s "
                      f"p50 {res['p50_ms']:7.2f} ms  p99 {res['p99_ms']:7.2f} ms  errors {res['errors']}",
                      flush=True)
        if args.json:
            args.json.write_text(json.dumps({"backend": "postgresql" if args.pg else "sqlite",
                                             "load_before": os.getloadavg()[0], "results": results}, indent=2))
    finally:
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
