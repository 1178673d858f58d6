"""Where the time of one Z39.50 search goes, in process (no sockets, no client).

The 50-query workload of bench/z3950_bench.py (PQF, read from a results JSON of
that script: ``--workload``) runs against an embedded catalog through the same
service the target runs (gateway/z3950_server.py over gateway/app.py's
catalog_route): each search APDU decoded by the target's session, answered,
encoded.  Each query runs ``--rounds`` times; the table gives, per stage, the
median over the queries of each query's median in microseconds:

    decode   Session.receive_data + next_event (BER -> SearchRequest)
    service  Z3950Service.search (route steps, the catalog's search)
    catalog  SqliteCatalog.search_sync alone on the same query (a separate call)
    encode   Session.send (SearchResponse -> BER)

With ``--steps`` the service is split further (each of the route's steps timed by a
wrapper around it, search/route.py SEARCH_STEPS; the wrappers add ~0.5 us each, and
the translation runs inside ``translate``), and ``decode`` into ``frame``
(Session.receive_data) and the rest.

usage::

    python bench/z3950_cost.py --data W/unioncat-sqlite/data --workload bench/results-z3950.json
    python bench/z3950_cost.py ... --cprofile 20     # and cProfile's top 20 by own time

Timings are wall-clock of one thread on a shared machine (``--clock cpu``: the
thread's CPU time instead, which a loaded machine disturbs less but which does not
see a search handed to a worker thread); compare runs side by side, and read the
load average printed with them.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from gateway.app import catalog_route  # noqa: E402
from gateway.z3950_server import Association, make_service  # noqa: E402
from indexers.backends.sqlite_index import SqliteCatalog  # noqa: E402
from z3950 import pdu as P  # noqa: E402
from z3950 import rpn  # noqa: E402
from z3950.session import TARGET, Session  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a unioncat data directory (catalog.sqlite)")
    ap.add_argument("--workload", type=Path, required=True, help="a results JSON of bench/z3950_bench.py")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--cprofile", type=int, default=0, metavar="N", help="print cProfile's top N functions")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: time.perf_counter; cpu: the thread's CPU time (time.thread_time: steadier on a "
                         "loaded machine, but blind to work handed to a thread)")
    ap.add_argument("--steps", action="store_true",
                    help="also time each route step, the search statement's catalog call and the framing")
    ap.add_argument("--skip-over", type=int, default=0, metavar="HITS",
                    help="leave out queries with more hits than this (0: none left out)")
    a = ap.parse_args(argv)
    pqf = [w["pqf"] for w in json.loads(a.workload.read_text())["workload"]]
    catalog = SqliteCatalog(a.data / "catalog.sqlite")
    route = catalog_route(a.data, catalog)
    svc = make_service(route)
    apdus = [P.encode_pdu(P.SearchRequest(query=rpn.parse_pqf(q), database_names=("Default",),
                                          result_set_name="default", replace_indicator=True,
                                          preferred_record_syntax="1.2.840.10003.5.10")) for q in pqf]
    init = P.encode_pdu(P.InitializeRequest(options=frozenset({"search", "present", "namedResultSets"})))

    clock = time.perf_counter if a.clock == "wall" else time.thread_time
    extra: dict[str, float] = {}            # this search's step times (--steps)
    if a.steps:
        def timed(step):
            async def wrapper(r, s):
                t = clock()
                try:
                    await step(r, s)
                finally:
                    extra["step " + step.__name__] = clock() - t
            wrapper.__name__ = step.__name__
            return wrapper
        route.steps = tuple(timed(st) for st in route.steps)

    async def run() -> dict:
        session = Session(TARGET)
        state = Association(session, "bench", svc.new_result_sets())
        session.receive_data(init)
        req = session.next_event()
        session.send(svc.init_response(req)[0])
        stages: dict[str, list[list[float]]] = {k: [[] for _ in apdus] for k in ("decode", "service", "encode",
                                                                                  "catalog", "total")}
        hits = [0] * len(apdus)
        for _ in range(a.rounds):
            for i, data in enumerate(apdus):
                extra.clear()
                t0 = clock()
                session.receive_data(data)
                tf = clock()
                req = session.next_event()
                t1 = clock()
                resp = await svc.search(req, state)
                t2 = clock()
                session.send(resp)
                t3 = clock()
                hits[i] = resp.result_count
                q = svc._to_query(req.query)
                t4 = clock()
                catalog.search_sync(q)
                t5 = clock()
                for k, v in (("decode", t1 - t0), ("service", t2 - t1), ("encode", t3 - t2), ("catalog", t5 - t4),
                             ("total", t3 - t0)):
                    stages[k][i].append(v * 1e6)
                if a.steps:
                    for k, v in (("  frame", tf - t0), *extra.items()):
                        stages.setdefault(k, [[] for _ in apdus])[i].append(v * 1e6)
        return {"stages": stages, "hits": hits}

    loadavg = os.getloadavg()
    prof = cProfile.Profile() if a.cprofile else None
    if prof:
        prof.enable()
    out = asyncio.run(run())
    if prof:
        prof.disable()
    keep = [i for i, h in enumerate(out["hits"]) if not a.skip_over or h <= a.skip_over]
    print(f"load average {loadavg[0]:.2f}; {len(keep)} of {len(apdus)} queries, {a.rounds} rounds, {a.clock} clock")
    print(f"{'stage':8s} {'p50 of medians':>15s} {'mean of medians':>16s}   (us)")
    for k, per in out["stages"].items():
        meds = [statistics.median(per[i]) for i in keep if per[i]]
        if not meds:
            continue
        print(f"{k:8s} {statistics.median(meds):15.1f} {statistics.fmean(meds):16.1f}")
    print("per query (median us): n hits total service catalog")
    for i in keep:
        s = out["stages"]
        print(f"  {i + 1:2d} {out['hits'][i]:7d} {statistics.median(s['total'][i]):9.1f} "
              f"{statistics.median(s['service'][i]):9.1f} {statistics.median(s['catalog'][i]):9.1f}")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(a.cprofile)
    catalog.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
