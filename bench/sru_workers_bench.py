"""SRU from 1, 2, 4 ... processes (``unioncat serve --sru-workers N``) vs Zebra/ICU, in one run.

Reuses the catalogs a ``bench/z3950_bench.py --workdir W --keep`` run loaded (W holds
``unioncat-sqlite/data`` and ``zebra-icu``; nothing is loaded here) and the 50-query
workload of ``bench/workload.py`` from the same LoC file, and runs the load phases of
``bench/http_load.py`` (SRU 1.2 searchRetrieve, 10 MARCXML records, keep-alive clients):

1. zebrasrv (ICU) started, a warm-up pass, its phases at each concurrency;
2. for each process count N: unioncat served with N SRU processes -- N = 1 is today's
   one process on ``--port`` (result sets in its memory), N >= 2 is ``--sru-workers N``
   with the load on ``--sru-port`` (result sets in DATA_DIR/result_sets.sqlite) -- a
   warm-up pass, its phases, stopped by PID;
3. Zebra's phases again (the machine is shared: two Zebra figures show the drift);
4. a table: requests/s, p50, p99 for each, ratios to Zebra's mean, the load average
   before each phase; JSON to ``--out``.

W is written to (unioncat keeps the shared result sets in its data directory, Zebra its
logs): pass a copy (``cp -a``) of a catalog that must stay as it is.

usage::

    python bench/sru_workers_bench.py --workdir /tmp/z250-copy --processes 1,2,4 --seconds 20
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import http_load  # noqa: E402
import procmon  # noqa: E402
import run_bench as rb  # noqa: E402
import workload as wl  # noqa: E402

STARTED = rb.STARTED


class UnioncatSru(rb.UnioncatSystem):
    """unioncat-sqlite from run_bench.py on a loaded data directory, with N SRU processes."""

    def __init__(self, *args, processes: int = 1, **kw):
        super().__init__(*args, **kw)
        self.processes = processes
        self.sru_port = procmon.free_port() if processes > 1 else self.port

    def backend_args(self) -> list[str]:
        workers = ["--sru-workers", str(self.processes), "--sru-port", str(self.sru_port)] if self.processes > 1 else []
        return ["--z3950-port", "0", *workers]

    @property
    def load_url(self) -> str:
        return f"http://127.0.0.1:{self.sru_port}/sru"

    def start(self) -> int:
        pid = super().start()
        if self.processes > 1:    # the workers answer on their own port: wait for it too
            import zebra

            zebra.wait_http(f"{self.load_url}?operation=explain&version=1.2", timeout=self.start_timeout,
                            proc=self.proc, what="unioncat SRU workers", log=self.root / "serve.log")
        return pid


def phases(name: str, url: str, queries: list[str], a, extra: dict | None, pid: int) -> dict:
    """A warm-up pass, then the load at each concurrency; the server's CPU per request
    (its whole process tree, workers included) besides the latencies."""
    out: dict = {}
    warm = http_load.hit_counts(url, queries, extra=extra)
    out["hits"] = [h.get("hits") for h in warm]
    for c in a.concurrency:
        la = os.getloadavg()[0]
        cpu0 = procmon.tree_cpu_s(pid)
        r = http_load.run_load(url, queries, concurrency=c, max_requests=a.requests, max_seconds=a.seconds,
                               extra=extra)
        cpu = procmon.tree_cpu_s(pid) - cpu0
        r["server_cpu_ms_per_req"] = round(1000 * cpu / r["requests"], 2) if r["requests"] else None
        r["loadavg_before"] = round(la, 2)
        out[f"c{c}"] = r
        print(f"  {name:24s} c{c:<3d} n={r['requests']} rps={r['rps']} p50={r['p50_ms']}ms p99={r['p99_ms']}ms "
              f"server CPU {r['server_cpu_ms_per_req']}ms/req errors={r['errors']} (load avg {la:.2f})", flush=True)
    return out


def table(results: dict, conc: list[int]) -> str:
    rows = results["runs"]
    zebras = [r for n, r in rows.items() if n.startswith("zebra")]
    lines = [f"load average at start {results['meta']['loadavg_start']}, end {results['meta'].get('loadavg_end')}",
             "", "| | " + " | ".join(f"c{c} req/s | c{c} p50 ms | c{c} p99 ms" for c in conc) + " |",
             "|---|" + "---|" * (3 * len(conc))]
    for name, r in rows.items():
        cells = []
        for c in conc:
            m = r.get(f"c{c}", {})
            z_rps = [z[f"c{c}"]["rps"] for z in zebras if z.get(f"c{c}", {}).get("rps")]
            z_p99 = [z[f"c{c}"]["p99_ms"] for z in zebras if z.get(f"c{c}", {}).get("p99_ms")]
            ratio = (f" ({m['rps'] / (sum(z_rps) / len(z_rps)):.2f}x)" if m.get("rps") and z_rps
                     and not name.startswith("zebra") else "")
            p99r = (f" ({m['p99_ms'] / (sum(z_p99) / len(z_p99)):.2f}x)" if m.get("p99_ms") and z_p99
                    and not name.startswith("zebra") else "")
            cells += [f"{m.get('rps')}{ratio}", f"{m.get('p50_ms')}", f"{m.get('p99_ms')}{p99r}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("server CPU ms per request: " + "; ".join(
        f"{n} " + "/".join(str(r.get(f"c{c}", {}).get("server_cpu_ms_per_req")) for c in conc)
        for n, r in rows.items()))
    lines.append("load average before each phase: " + "; ".join(
        f"{n} " + "/".join(str(r.get(f"c{c}", {}).get("loadavg_before")) for c in conc) for n, r in rows.items()))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True,
                    help="a z3950_bench.py --keep work dir (unioncat-sqlite/data, zebra-icu); written to")
    ap.add_argument("--processes", default="1,2,4", help="SRU process counts (1 = one serving process)")
    ap.add_argument("--concurrency", default="8,32")
    ap.add_argument("--requests", type=int, default=20000, help="max requests per phase")
    ap.add_argument("--seconds", type=float, default=20, help="max seconds per phase")
    ap.add_argument("--result-set-ttl", type=int, default=0,
                    help="resultSetTTL sent to unioncat (as run_bench.py; -1: not sent)")
    ap.add_argument("--data", type=Path, default=None, help="the MARC file the catalogs were loaded from")
    ap.add_argument("--records", type=int, default=None, help="the catalogs hold the first N records (workload)")
    ap.add_argument("--seed", type=int, default=wl.DEFAULT_SEED)
    ap.add_argument("--start-timeout", type=float, default=300)
    ap.add_argument("--out", type=Path, default=HERE / "results-sru-workers.json")
    a = ap.parse_args(argv)
    a.concurrency = [int(c) for c in a.concurrency.split(",") if c.strip()]
    procs = [int(p) for p in a.processes.split(",") if p.strip()]
    extra = {"resultSetTTL": str(a.result_set_ttl)} if a.result_set_ttl >= 0 else None
    signal.signal(signal.SIGTERM, rb._sigterm)
    results: dict = {"meta": {"started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "argv": sys.argv,
                              "machine": rb.machine_info(), "workdir": str(a.workdir), "code": rb.code_state(),
                              "loadavg_start": [round(x, 2) for x in os.getloadavg()]},
                     "runs": {}}
    zs = None
    try:
        full = rb.get_data(a)
        path = full
        if a.records:
            path = Path(tempfile.mkdtemp(prefix="sru-workers-bench-")) / f"first{a.records}.mrc"
            wl.write_subset(full, path, a.records)
        queries = [q.cql for q in wl.build_workload(path, seed=a.seed, ja_source=full)]
        print(f"data: {path}; {len(queries)} queries", flush=True)
        zs = rb.ZebraSystem(a.workdir / "zebra-icu", "icu", a.start_timeout)
        zs.z.write_config()
        zs.start()
        results["runs"]["zebra-icu (before)"] = phases("zebra-icu (before)", zs.base_url, queries, a, None, zs.pid)
        cmd, env = rb.unioncat_command(None)
        for n in procs:
            u = UnioncatSru(a.workdir / "unioncat-sqlite", cmd, "loc", env, a.start_timeout, processes=n)
            name = f"unioncat {n} process{'es' if n > 1 else ''}"
            try:
                results["runs"][name] = phases(name, u.load_url, queries, a, extra, u.start())
            finally:
                u.stop()
            rb.write_json(a.out, results)
        results["runs"]["zebra-icu (after)"] = phases("zebra-icu (after)", zs.base_url, queries, a, None, zs.pid)
    finally:
        if zs is not None:
            zs.stop()
        STARTED.stop_all()
        results["meta"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        results["meta"]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
        rb.write_json(a.out, results)
    print()
    print(table(results, a.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
