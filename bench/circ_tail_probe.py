"""Where a hold placement's p99 at 64 clients comes from (issue 18, third round).

A probe, not a benchmark of record: it loads the quick data of
``bench/circulation_bench.py`` (its own modules: ``circ_data``, ``circ_phases``) into a
private PostgreSQL once, then runs the ``place`` phase at ``--concurrency`` clients
several times, each time with a new :class:`circulation.store.Database` (engine and
pool) of one kind:

``cold``       the bench's pool (clients + 8 connections), nothing opened before the
               phase (what the bench's first 64-client level does);
``warm``       the same engine again, its connections now open;
``service``    the service's default pool (``Database(url)``: 20 kept + 20 overflow),
               warmed by one run first -- more clients than kept connections make the
               overflow connections open and close all the time;

and with ``--hot-share 0`` against the default 0.10 (placements on the 0.5 % hot titles:
the queue lock's part). Per run: operations/s, p50 / p99 / max ms, server + client CPU
ms per operation, the 1-minute load average before it.

    python bench/circ_tail_probe.py --seconds 4 --rounds 2
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))
sys.path.insert(2, str(HERE.parent / "tools"))

import postgres_node  # noqa: E402
from circ_data import Ids, build_phase_data, bulk_insert, finish_load, install_base, make_catalog, parse_shares  # noqa: E402
from circ_phases import TickingClock, count_statements, run_phase  # noqa: E402
from circulation import schema as s  # noqa: E402
from circulation.service import Circulation  # noqa: E402
from circulation.store import Database  # noqa: E402
from lifecycle.profiles import load_all  # noqa: E402

PHASE_START = datetime(2026, 11, 20, 10, 0)        # as bench/circulation_bench.py


async def load(url: str, rng: random.Random, a) -> tuple:
    profiles = load_all()
    shares = parse_shares("hiroshima=0.7,iizuka=0.15,komae=0.15", profiles)
    db = Database(url, pool_size=8)
    circ = Circulation(db, profiles, TickingClock(PHASE_START))
    cat = make_catalog(rng, profiles, shares, a.patrons, a.titles, a.items, PHASE_START - timedelta(days=400))
    data, rows = build_phase_data(rng, cat, renew_loans=0, queued_share=0.25, hot_fraction=0.005,
                                  start=PHASE_START, ids=Ids())
    await install_base(db, circ, cat)
    await bulk_insert(db, s.items, cat.item_rows)
    await bulk_insert(db, s.title_queues, rows["title_queues"])
    await bulk_insert(db, s.requests, rows["requests"])
    await bulk_insert(db, s.events, rows["events"])
    await finish_load(db)
    await db.dispose()
    return profiles, data


def line(label: str, r: dict) -> str:
    lat = r.get("per_op", {}).get("place", {})
    return (f"{label:<28} {r['ops']:>5} ops {r['ops_per_s']:>7.1f}/s  p50 {r['p50_ms']:>7.1f}  "
            f"p99 {r['p99_ms']:>7.1f}  mean {r['mean_ms']:>6.1f} ms  "
            f"CPU {r.get('server_cpu_ms_per_op', 0):.2f} + {r['client_cpu_ms_per_op']:.2f} ms/op  "
            f"SQL {r['sql_statements_per_op']}  load {r['loadavg_before']:.1f}  {lat.get('refusals', {})}")


async def probe(url: str, server_pid: int, a) -> None:
    rng = random.Random(a.seed)
    profiles, data = await load(url, rng, a)
    conc = a.concurrency

    async def one(label: str, db: Database, hot_share: float = 0.10) -> None:
        opts = SimpleNamespace(seconds=a.seconds, ops=a.ops, hot_share=hot_share)
        circ = Circulation(db, profiles, TickingClock(PHASE_START))
        r = await run_phase("place", conc, circ, data, opts, rng, server_pid, None)
        print(line(label, r), flush=True)

    for rnd in range(1, a.rounds + 1):
        print(f"-- round {rnd}", flush=True)
        db = Database(url, pool_size=conc + 8)
        count_statements(db)
        await one("cold (pool clients+8)", db)
        await one("warm (same engine)", db)
        await one("warm, --hot-share 0", db, 0.0)
        await db.dispose()
        db = Database(url)
        count_statements(db)
        await one("service pool 20+20, 1st", db)
        await one("service pool 20+20, 2nd", db)
        await db.dispose()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--ops", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--patrons", type=int, default=500)
    ap.add_argument("--titles", type=int, default=2000)
    ap.add_argument("--items", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=20261120)
    a = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="circtail-pg-"))
    node = postgres_node.PostgresNode(tmp)
    node.start()
    try:
        url = postgres_node.create_database(node.url, postgres_node.unique_database_name("circtail"))
        print(f"PostgreSQL pid {node.pid}; load average at start {os.getloadavg()[0]:.2f}; "
              f"{time.strftime('%Y-%m-%d %H:%M:%S %z')}", flush=True)
        asyncio.run(probe(url, node.pid, a))
    finally:
        node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
