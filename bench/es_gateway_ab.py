"""Two unioncat builds serving one Elasticsearch catalog, side by side in one run:
SRU latency, throughput and CPU per request of the gateway and of the ES JVM
(issue 18, the gateway's CPU on the Elasticsearch path).

Both gateways serve the same data directory (an Elasticsearch catalog: the store
only names the node and the alias; serving reads the cluster) on their own ports.
Each phase (sequential, then each concurrency) runs on A, then B, then A and B
again for ``--rounds`` rounds, so a change in the machine's load hits both alike.
The workload is bench/workload.py's 50 queries (``--workload`` JSON, or built from
``--records-file``), each an SRU 1.2 searchRetrieve of 10 MARCXML records with
resultSetTTL=0 (no reuse of result sets between requests).  CPU per request is
the /proc time of the gateway process (and of the ES JVM, ``--es-pid``) over the
phase divided by its requests.  Printed as a table with B/A ratios, written as
JSON; not a pass/fail test.  The hit counts of A and B are compared query by query
first (they must be the same).

    python bench/es_gateway_ab.py --data-dir D --a "/work/main/.venv/bin/unioncat" \\
        --b ".venv/bin/unioncat" --es-pid PID --workload wl.json --rounds 2
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import http_load as hl  # noqa: E402
import procmon  # noqa: E402

STARTED = procmon.Registry()


def cpu_s(pid: int | None) -> float:
    return procmon.tree_cpu_s(pid) if pid else 0.0


def start(cmd: str, data_dir: Path, port: int, log: Path) -> subprocess.Popen:
    argv = [*cmd.split(), "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port),
            "--z3950-port", "0"]
    proc = subprocess.Popen(argv, stdout=open(log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=ROOT)
    STARTED.add(proc.pid)
    url = f"http://127.0.0.1:{port}/sru?operation=explain&version=1.2"
    for _ in range(600):
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv} exited: {log.read_text()[-2000:]}") from None
            time.sleep(0.1)
    raise RuntimeError(f"{argv} did not answer")


RSID = re.compile(rb"<(\w+:)?resultSetId>[^<]*</(\w+:)?resultSetId>")


def same_body(base_a: str, base_b: str, cql: str) -> bool:
    """Whether A and B answer a query with the same response (hits, order, records),
    the result set's id aside."""
    got = []
    for base in (base_a, base_b):
        body = urllib.request.urlopen(hl.sru_url(base, cql, extra={"resultSetTTL": "0"}), timeout=60).read()
        got.append(RSID.sub(b"", body))
    return got[0] == got[1]


def phase(name: str, base: str, pid: int, es_pid: int | None, queries: list[str], c: int, a) -> dict:
    g0, e0 = cpu_s(pid), cpu_s(es_pid)
    r = hl.run_load(base, queries, concurrency=c, max_requests=a.requests if c == 1 else a.conc_requests,
                    max_seconds=a.seconds, extra={"resultSetTTL": "0"})
    n = max(r.get("requests", 0), 1)
    r["gateway_cpu_ms_per_req"] = round(1000 * (cpu_s(pid) - g0) / n, 2)
    if es_pid:
        r["es_cpu_ms_per_req"] = round(1000 * (cpu_s(es_pid) - e0) / n, 2)
    r["system"] = name
    r["concurrency"] = c
    r["loadavg_before"] = round(os.getloadavg()[0], 2)
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--a", required=True, help="command of build A (e.g. the main checkout's unioncat)")
    ap.add_argument("--b", required=True, help="command of build B")
    ap.add_argument("--es-pid", type=int, default=None, help="PID of the Elasticsearch node (its CPU)")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--workload", type=Path, help="JSON list of CQL queries")
    g.add_argument("--records-file", type=Path, help="build the 50-query workload from this MARC file")
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--requests", type=int, default=500, help="max requests, sequential phase")
    ap.add_argument("--conc-requests", type=int, default=2000, help="max requests, concurrent phases")
    ap.add_argument("--seconds", type=float, default=20, help="max seconds per phase")
    ap.add_argument("--ports", default="18941,18942")
    ap.add_argument("--out", type=Path, default=HERE / "results-es-gateway-ab.json")
    a = ap.parse_args(argv)
    if a.workload:
        queries = [q["cql"] if isinstance(q, dict) else q for q in json.loads(a.workload.read_text())]
    else:
        import workload as wl

        queries = [q.cql for q in wl.build_workload(a.records_file)]
    ports = [int(p) for p in a.ports.split(",")]
    work = a.out.parent
    result: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "a": a.a, "b": a.b,
                    "data_dir": str(a.data_dir), "loadavg_at_start": os.getloadavg(), "phases": []}
    procs = {}
    try:
        for name, cmd, port in (("A", a.a, ports[0]), ("B", a.b, ports[1])):
            procs[name] = (start(cmd, a.data_dir, port, work / f"ab-{name}.log"), f"http://127.0.0.1:{port}/sru")
        hits = {}
        for name, (_, base) in procs.items():  # also the warm-up
            hits[name] = [(r.get("hits"), r.get("diagnostic")) for r in hl.hit_counts(base, queries,
                                                                                      extra={"resultSetTTL": "0"})]
        diff = [q for q, x, y in zip(queries, hits["A"], hits["B"]) if x != y]
        result["hit_count_differences"] = diff
        print(f"hit counts: {len(queries) - len(diff)} of {len(queries)} queries the same on A and B", flush=True)
        bodies = [q for q in queries if same_body(procs["A"][1], procs["B"][1], q) is False]
        result["response_differences"] = bodies
        print(f"responses (result set id aside): {len(queries) - len(bodies)} of {len(queries)} byte for byte "
              "the same on A and B", flush=True)
        for c in [int(x) for x in a.concurrency.split(",")]:
            for rnd in range(a.rounds):
                for name in ("A", "B") if rnd % 2 == 0 else ("B", "A"):
                    proc, base = procs[name]
                    r = phase(name, base, proc.pid, a.es_pid, queries, c, a)
                    r["round"] = rnd + 1
                    result["phases"].append(r)
                    print(f"  c{c} round {rnd + 1} {name}: p50 {r.get('p50_ms')} p99 {r.get('p99_ms')} ms, "
                          f"{r.get('rps')} req/s, gateway {r['gateway_cpu_ms_per_req']} ms/req"
                          + (f", ES {r['es_cpu_ms_per_req']} ms/req" if "es_cpu_ms_per_req" in r else ""), flush=True)
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            STARTED.discard(proc.pid)
    a.out.write_text(json.dumps(result, indent=2))
    print("\n| phase | build | p50 ms | p99 ms | req/s | gateway CPU ms/req | ES CPU ms/req |")
    print("|---|---|---|---|---|---|---|")
    for c in sorted({p["concurrency"] for p in result["phases"]}):
        med = {}
        for name in ("A", "B"):
            ps = [p for p in result["phases"] if p["concurrency"] == c and p["system"] == name]
            med[name] = {k: statistics.median(p[k] for p in ps) if all(k in p for p in ps) else None
                         for k in ("p50_ms", "p99_ms", "rps", "gateway_cpu_ms_per_req", "es_cpu_ms_per_req")}
            m = med[name]
            print(f"| {'sequential' if c == 1 else f'c{c}'} | {name} | {m['p50_ms']} | {m['p99_ms']} | {m['rps']} | "
                  f"{m['gateway_cpu_ms_per_req']} | {m['es_cpu_ms_per_req']} |")
        ratio = {k: round(med["B"][k] / med["A"][k], 2) if med["A"][k] and med["B"][k] else None
                 for k in med["A"]}
        print(f"| {'sequential' if c == 1 else f'c{c}'} | B/A | {ratio['p50_ms']} | {ratio['p99_ms']} | "
              f"{ratio['rps']} | {ratio['gateway_cpu_ms_per_req']} | {ratio['es_cpu_ms_per_req']} |")
    print(f"results: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
