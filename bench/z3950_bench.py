"""Z39.50: unioncat's target vs zebrasrv on the same Library of Congress records.

One run, side by side, ratios printed:

1. the records (``bench/loc_data.py``; ``--records N``: the first N), loaded into
   unioncat's embedded SQLite catalog (``unioncat ingest``) and into Zebra with ICU
   indexing (``bench/zebra.py``), both at once (the loads are not what is compared);
2. the 50-query workload of ``bench/workload.py`` turned into PQF (Bib-1: title 1=4,
   author 1=1003, subject 1=21, ISBN 1=7, any 1=1016, date 1=31 with 4=109), encoded
   once with our codec (``bench/z3950_load.py``);
3. both servers started (unioncat ``serve --z3950-port``, zebrasrv: Z39.50 and SRU
   on one port), a verification pass on each (every search decoded: hit counts and
   diagnostics side by side; a 10-record USMARC present decoded and checked);
4. for each server in turn (unioncat first, or Zebra with ``--zebra-first``), each
   phase sequential (1 session) and with 16
   concurrent sessions, bounded by ``--requests`` and ``--seconds``:
   ``search``   one long-lived session per client, the queries round-robin;
   ``present``  one session per client, searches once into named result sets
                (the queries with >= 10 hits on *both* servers), then Present of
                10 USMARC records (element set F) round-robin over sets and start
                points;
   ``session``  connect + Init + one search + present 10 + Close + socket close;
   p50/p99/mean latency, requests/s, the server's CPU and the client's CPU per
   request, the load average before each phase;
5. unioncat's target profiled with py-spy (sampling, attached by PID, not during the
   timed phases; ``pip install py-spy`` anywhere, ``--py-spy PATH``) on the search,
   present and session paths, sequentially: where the time goes, in ms of server CPU
   per request;
6. a table with unioncat/zebra ratios; JSON to ``--out``.

usage::

    python bench/z3950_bench.py                      # all 250,000 records
    python bench/z3950_bench.py --records 20000      # quick run
    python bench/z3950_bench.py --workdir W --keep   # keep (and later reuse) the loaded catalogs
    python bench/z3950_bench.py --report bench/results-z3950.json

The client is one Python process (threads, one blocking socket per session).  On a
2-core machine it competes with the server for CPU; its CPU per request is measured
and reported (``--client-cpu N`` pins it to CPU N).  The same client runs against
both servers.  Every process started here is stopped by PID.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(REPO))

import procmon  # noqa: E402
import run_bench as rb  # noqa: E402
import workload as wl  # noqa: E402
import z3950_load as zl  # noqa: E402
import zebra  # noqa: E402
from gateway.z3950_workers import default_workers  # noqa: E402

STARTED = rb.STARTED
U, Z = "unioncat-sqlite", "zebra-icu"
PHASES = ("search", "present", "session")


# ---------------------------------------------------------------- systems

class UnioncatZ(rb.UnioncatSystem):
    """unioncat-sqlite from run_bench.py, served with --z3950-port too."""

    def __init__(self, *args, z3950_workers: int | None = None, **kw):
        super().__init__(*args, **kw)
        self.zport = procmon.free_port()
        self.z3950_workers = z3950_workers
        self.listeners = 0
        self._serving = False

    def backend_args(self) -> list[str]:
        if not self._serving:
            return []
        workers = [] if self.z3950_workers is None else ["--z3950-workers", str(self.z3950_workers)]
        return ["--z3950-port", str(self.zport), *workers]

    def start(self) -> int:
        self._serving = True
        try:
            pid = super().start()
        finally:
            self._serving = False
        zl.wait_z3950("127.0.0.1", self.zport, timeout=self.start_timeout)
        # the serving process answers first; its N-1 workers start after it (importing,
        # opening the catalog: seconds of CPU each on a loaded machine). Measuring before
        # they listen charged their start-up to the first phase (search c1: tens of ms of
        # server CPU per request), so wait until every process has its listening socket.
        expected = self.z3950_workers or default_workers()
        self.listeners = wait_listeners(self.zport, expected, self.start_timeout)
        return pid


def wait_listeners(port: int, expected: int, timeout: float) -> int:
    """Wait until ``expected`` sockets listen on ``port`` (or ``timeout``); how many do."""
    deadline = time.monotonic() + timeout
    n = procmon.listening_sockets(port)
    while n < expected and time.monotonic() < deadline:
        time.sleep(0.2)
        n = procmon.listening_sockets(port)
    if n < expected:
        print(f"  warning: only {n} of {expected} Z39.50 processes listen after {timeout:.0f} s", flush=True)
    return n


def load_both(u: UnioncatZ, zs: rb.ZebraSystem, path: Path, timeout: float, reuse: bool) -> dict:
    """Load both systems concurrently (threads around the two subprocesses)."""
    out: dict = {}
    marker = {U: u.root / "loaded.json", Z: zs.z.root / "loaded.json"}

    def run(name, system):
        if reuse and marker[name].exists():
            out[name] = json.loads(marker[name].read_text()) | {"reused": True}
            if name == Z:
                zs.z.write_config()
            print(f"  {name}: reusing the loaded catalog in {marker[name].parent}", flush=True)
            return
        try:
            res = system.load(path, timeout)
            out[name] = res
            marker[name].write_text(json.dumps(res))
        except Exception as e:  # noqa: BLE001 -- reported, the run stops below
            out[name] = {"error": f"{type(e).__name__}: {e}"}

    ts = [threading.Thread(target=run, args=(n, s)) for n, s in ((U, u), (Z, zs))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for n in (U, Z):
        print(f"  {n} load: " + str({k: v for k, v in out[n].items() if k in (
            "wall_s", "records", "records_per_s", "disk_mb", "error", "reused")}), flush=True)
    return out


# ---------------------------------------------------------------- profile

# categories: the first of these (function name regexp, file substring) with a
# frame anywhere on a sample's stack decides (they do not nest, except that the
# session state machine calls the decoder: it comes last).
CATEGORIES = [
    ("APDU decode (BER, request)", r"(^|\.)(decode_pdu|feed)$", "z3950/"),
    ("query mapping (RPN -> query model)", r"(^|\.)(_to_query|rpn_to_query)$", "z3950"),
    ("SQLite search", r"(^|\.)search_sync$", "indexers/"),
    ("page (result set slice)", r"(^|\.)page_sync$", "indexers/"),
    ("fetch (records from SQLite)", r"(^|\.)fetch_sync$", "indexers/"),
    ("record encoding (USMARC)", r"(^|\.)encode_record$", "z3950/records"),
    ("APDU encode (BER, response)", r"(^|\.)encode_pdu$", "z3950/"),
    ("session state machine", r".*", "z3950/session"),
]
# leaf frames where a thread waits (py-spy may still sample them as active)
IDLE_LEAVES = (r"(^|\.)select$", "selectors.py"), (r"^_worker$", "concurrent/futures/thread.py"), \
    (r"(^|\.)wait$", "threading.py"), (r"(^|\.)get$", "queue.py")
_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def classify_stack(frames: list[str]) -> str:
    parsed = []
    for f in frames:
        m = _FRAME.match(f.strip())
        parsed.append((m.group("fn"), m.group("file")) if m else (f.strip(), ""))
    if parsed and any(re.search(fre, parsed[-1][0]) and fsub in parsed[-1][1] for fre, fsub in IDLE_LEAVES):
        return "idle"
    for name, fre, fsub in CATEGORIES:  # the first category with a frame on the stack
        for fn, file in parsed:
            if fsub in file and re.search(fre, fn):
                return name
    files = " ".join(file for _, file in parsed)
    if "threading.py" in files or "concurrent/futures" in files:
        return "thread pool hop (asyncio.to_thread)"
    if "asyncio/" in files or "selectors.py" in files:
        return "asyncio event loop, streams, socket I/O"
    leaf = parsed[-1] if parsed else ("?", "")
    return f"other ({leaf[0]} {Path(leaf[1]).name})"


def parse_raw_profile(path: Path) -> dict[str, int]:
    cats: dict[str, int] = {}
    if not path.exists():
        return cats
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        cat = classify_stack(frames[1:] if frames and frames[0].startswith("process ") else frames)
        cats[cat] = cats.get(cat, 0) + int(n)
    return cats


def profile_phase(pyspy: str, pid: int, workdir: Path, label: str, fn, rate: int) -> dict:
    """Run ``fn()`` (a bounded load phase) with py-spy attached to ``pid``; return
    samples per category converted to ms of server CPU per request."""
    raw = workdir / f"pyspy-{label}.txt"
    raw.unlink(missing_ok=True)
    cmd = [pyspy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--output", str(raw),
           "--threads"]
    log = open(workdir / f"pyspy-{label}.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    STARTED.add(proc.pid)
    try:
        time.sleep(1.5)  # attach
        cpu0 = procmon.tree_cpu_s(pid)
        res = fn()
        cpu1 = procmon.tree_cpu_s(pid)
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            procmon.stop_tree(proc.pid)
        STARTED.discard(proc.pid)
    # a thread-per-stack format: drop the "thread (0x..)" frame py-spy adds with --threads
    cats: dict[str, int] = {}
    if raw.exists():
        lines = []
        for line in raw.read_text(errors="replace").splitlines():
            parts = line.split(";")
            parts = [p for p in parts if not p.startswith("thread (")]
            lines.append(";".join(parts))
        raw.write_text("\n".join(lines) + "\n")
        cats = parse_raw_profile(raw)
    n = res["requests"] or 1
    idle = cats.pop("idle", 0)
    total = sum(cats.values())
    out = {"requests": res["requests"], "samples": total, "idle_samples_dropped": idle, "rate_hz": rate,
           "server_cpu_ms_per_req": round(1000 * (cpu1 - cpu0) / n, 3),
           "sampled_ms_per_req": round(1000 * total / rate / n, 3),
           "p50_ms_under_profiler": res["p50_ms"], "raw": str(raw),
           "categories": {k: {"samples": v, "share": round(v / total, 3) if total else None,
                              "ms_per_req": round(1000 * v / rate / n, 3)}
                          for k, v in sorted(cats.items(), key=lambda kv: -kv[1])}}
    return out


def find_pyspy(arg: str | None) -> str | None:
    for c in (arg, shutil.which("py-spy"), str(Path(sys.executable).with_name("py-spy"))):
        if c and Path(c).exists():
            return c
    return None


# ---------------------------------------------------------------- report

ROWS = [
    ("p50 ms", "p50_ms", "{:.3f}"), ("p99 ms", "p99_ms", "{:.3f}"), ("mean ms", "mean_ms", "{:.3f}"),
    ("req/s", "rps", "{:.0f}"), ("server CPU ms/req", "server_cpu_ms_per_req", "{:.3f}"),
    ("client CPU ms/req", "client_cpu_ms_per_req", "{:.3f}"), ("requests", "requests", "{:.0f}"),
    ("errors", "errors", "{:.0f}"),
]


def table(results: dict) -> str:
    sy = results["systems"]
    lines = [["phase", "metric", U, Z, f"{U}/{Z}"]]
    for phase in PHASES:
        for conc in results["meta"]["concurrency"]:
            key = f"{phase}-c{conc}"
            for label, k, fmt in ROWS:
                a = (sy.get(U, {}).get(key) or {}).get(k)
                b = (sy.get(Z, {}).get(key) or {}).get(k)
                if a is None and b is None:
                    continue
                lines.append([f"{phase} c{conc}" + (" (sessions)" if phase == "session" else ""), label,
                              fmt.format(a) if isinstance(a, (int, float)) else "-",
                              fmt.format(b) if isinstance(b, (int, float)) else "-", rb._ratio(a, b)])
    return rb._fmt_table(lines)


def hits_table(results: dict) -> str:
    lines = []
    nd = 0
    for i, q in enumerate(results["workload"]):
        hu = results["systems"].get(U, {}).get("hits", [None] * 50)[i]
        hz = results["systems"].get(Z, {}).get("hits", [None] * 50)[i]

        def cell(h):
            if h is None:
                return "-"
            return f"diag {h['diagnostic']}" if h.get("diagnostic") else str(h.get("hits"))
        cu, cz = cell(hu), cell(hz)
        mark = "*" if cu != cz else " "
        nd += cu != cz
        pqf = q["pqf"]
        if rb._disp_width(pqf) > 58:
            while rb._disp_width(pqf) > 57:
                pqf = pqf[:-1]
            pqf += "…"
        lines.append(f"{mark}{q['n']:2d} {q['kind']:15s} {pqf}{' ' * (59 - rb._disp_width(pqf))}{cu:>10s}{cz:>10s}")
    head = f"    {'kind':15s} {'PQF':59s}{'unioncat':>10s}{'zebra':>10s}"
    return "\n".join([head] + lines + [f"(* = hit counts differ: {nd} of {len(lines)} queries)"])


def profile_table(results: dict) -> str:
    prof = results["systems"].get(U, {}).get("profile") or {}
    out = []
    for label, p in prof.items():
        if not isinstance(p, dict) or "categories" not in p:
            out.append(f"{label}: {p}")
            continue
        out.append(f"profile {label}: {p['requests']} requests, {p['samples']} samples at {p['rate_hz']} Hz, "
                   f"sampled {p['sampled_ms_per_req']} ms/req, server CPU {p['server_cpu_ms_per_req']} ms/req "
                   f"(p50 under the profiler {p['p50_ms_under_profiler']} ms)")
        for k, v in p["categories"].items():
            if v["share"] and v["share"] >= 0.005:
                out.append(f"   {v['ms_per_req']:8.3f} ms  {100 * v['share']:5.1f}%  {k}")
    return "\n".join(out)


def report(results: dict) -> str:
    m = results["meta"]
    parts = [f"records: {results['data'].get('records')}   machine: {m['machine'].get('cpus')} CPUs, "
             f"{m['machine'].get('cpu', '')}   load average at start {m.get('loadavg_start')}, "
             f"end {m.get('loadavg_end')}",
             f"client: one Python process, threads, pre-encoded APDUs; CPU pinning: {m.get('client_cpu')}",
             "", table(results), "", hits_table(results), "", profile_table(results)]
    dec = results.get("client_decode_us")
    if dec:
        parts += ["", f"client-side cost (not in the timed loops): full decode_pdu of a SearchResponse "
                      f"{dec.get('search_response')} µs, of a 10-record PresentResponse "
                      f"{dec.get('present_response')} µs; "
                      f"the timed loops only frame by BER length and check the APDU tag; Zebra's indefinite-length "
                      f"APDUs: a full element walk costs {dec.get('frame_walk')} µs per 10-record Present, the "
                      f"end-of-contents + nothing-pending check used instead {dec.get('frame_fast')} µs "
                      f"(+ one recv(MSG_PEEK) syscall), every 16th response walked after the timer"]
    for n, r in results["systems"].items():
        for p in r.get("problems", []):
            parts.append(f"!! {n}: {p}")
    return "\n".join(parts)


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="unioncat vs zebrasrv over Z39.50",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--records", type=int, default=None, help="use only the first N records")
    ap.add_argument("--data", type=Path, default=None, help="MARC file instead of the LoC file")
    ap.add_argument("--workdir", type=Path, default=None, help="work dir (default: a temp dir, removed unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--reuse", action="store_true", help="reuse catalogs a --keep run loaded into --workdir")
    ap.add_argument("--out", type=Path, default=HERE / "results-z3950.json")
    ap.add_argument("--library", default="loc")
    ap.add_argument("--seed", type=int, default=wl.DEFAULT_SEED)
    ap.add_argument("--concurrency", default="1,16")
    ap.add_argument("--requests", type=int, default=5000, help="max requests (sessions) per phase")
    ap.add_argument("--seconds", type=float, default=15, help="max seconds per phase")
    ap.add_argument("--present-sets", type=int, default=10, help="named result sets per present session")
    ap.add_argument("--zebra-first", action="store_true", help="run Zebra's phases before unioncat's")
    ap.add_argument("--z3950-workers", type=int, default=None,
                    help="unioncat serve --z3950-workers (default: the server's default, 4 per CPU, at most 16)")
    ap.add_argument("--client-cpu", type=int, default=None, help="pin the client to this CPU")
    ap.add_argument("--py-spy", default=None, help="py-spy binary (default: on PATH or next to python)")
    ap.add_argument("--profile-requests", type=int, default=3000)
    ap.add_argument("--profile-rate", type=int, default=1000)
    ap.add_argument("--no-profile", dest="profile", action="store_false")
    ap.add_argument("--load-timeout", type=float, default=3 * 3600)
    ap.add_argument("--start-timeout", type=float, default=300)
    ap.add_argument("--report", type=Path, default=None, metavar="JSON", help="only print a saved result")
    a = ap.parse_args(argv)
    if a.report:
        print(report(json.loads(a.report.read_text())))
        return 0
    conc = [int(c) for c in a.concurrency.split(",") if c.strip()]
    if a.client_cpu is not None:
        os.sched_setaffinity(0, {a.client_cpu})
    signal.signal(signal.SIGTERM, rb._sigterm)
    workdir = a.workdir or Path(tempfile.mkdtemp(prefix="unioncat-z3950-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {"meta": {"started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "argv": sys.argv,
                              "machine": rb.machine_info(), "workdir": str(workdir), "concurrency": conc,
                              "loadavg_start": [round(x, 2) for x in os.getloadavg()],
                              "client_cpu": a.client_cpu, "requests": a.requests, "seconds": a.seconds,
                              "code": rb.code_state()},
                     "systems": {U: {}, Z: {}}}

    def save():
        rb.write_json(a.out, results)

    rc = 0
    u = zs = None
    try:
        full = rb.get_data(a)
        path = full
        if a.records:
            path = workdir / f"first{a.records}.mrc"
            if not (a.reuse and path.exists()):
                wl.write_subset(full, path, a.records)
        raw = wl.split_records(path)
        results["data"] = {"file": str(path), "records": len(raw)}
        queries = wl.build_workload(path, seed=a.seed, raw=raw, ja_source=full)
        del raw
        wq = [zl.cql_to_pqf(q.cql) for q in queries]
        results["workload"] = [{"n": q.n, "kind": q.kind, "cql": q.cql, "pqf": p} for q, p in zip(queries, wq)]
        print(f"data: {path} ({results['data']['records']} records); {len(wq)} PQF queries", flush=True)
        apdus = zl.Apdus(wq)

        cmd, env = rb.unioncat_command(None)
        u = UnioncatZ(workdir / "unioncat-sqlite", cmd, a.library, env, a.start_timeout, z3950_workers=a.z3950_workers)
        zs = rb.ZebraSystem(workdir / "zebra-icu", "icu", a.start_timeout)
        zebra.check_installed()
        print("== load (both at once)", flush=True)
        loads = load_both(u, zs, path, a.load_timeout, a.reuse)
        for n in (U, Z):
            results["systems"][n]["load"] = loads[n]
            if loads[n].get("error"):
                raise RuntimeError(f"{n} load failed: {loads[n]['error']}")
        save()

        print("== start both servers", flush=True)
        upid = u.start()
        zpid = zs.start()
        endpoints = {U: ("127.0.0.1", u.zport, upid), Z: ("127.0.0.1", zs.z.port, zpid)}
        print(f"  unioncat pid {upid} z3950 :{u.zport} ({u.listeners} processes listening); "
              f"zebrasrv pid {zpid} :{zs.z.port}", flush=True)
        results["systems"][U]["z3950_processes"] = u.listeners

        print("== verification pass (decoded): hit counts", flush=True)
        for n, (host, port, _) in endpoints.items():
            v = zl.verify(host, port, apdus)
            results["systems"][n]["hits"] = v["hits"]
            results["systems"][n]["init"] = v["init"]
            diagnostics = sum(1 for h in v["hits"] if h.get("diagnostic"))
            print(f"  {n}: init {v['init']}; {diagnostics} diagnostics", flush=True)
        both10 = [i for i in range(len(wq)) if all(
            (results["systems"][n]["hits"][i].get("hits") or 0) >= 10 for n in (U, Z))]
        present_idx = both10[:a.present_sets]
        results["present_queries"] = [i + 1 for i in present_idx]
        results["session_queries"] = [i + 1 for i in both10]
        apdus.set_present(present_idx, {i: min(results["systems"][n]["hits"][i]["hits"] for n in (U, Z))
                                        for i in present_idx})
        for n, (host, port, _) in endpoints.items():
            pv = zl.verify_present(host, port, apdus)
            results["systems"][n]["present_check"] = pv
            print(f"  {n}: present check {pv}", flush=True)
            if not pv.get("ok"):
                results["systems"][n].setdefault("problems", []).append(f"present check failed: {pv}")
        results["client_decode_us"] = zl.decode_costs(endpoints[Z][0], endpoints[Z][1], apdus)
        print(f"  client decode cost (µs): {results['client_decode_us']}", flush=True)
        save()

        order = [Z, U] if a.zebra_first else [U, Z]
        results["meta"]["order"] = order
        for n in order:
            host, port, pid = endpoints[n]
            print(f"== {n}: load phases", flush=True)
            for phase in PHASES:
                for c in conc:
                    key = f"{phase}-c{c}"
                    la = os.getloadavg()[0]
                    r = zl.run_phase(host, port, apdus, phase, concurrency=c, max_requests=a.requests,
                                     max_seconds=a.seconds, server_pid=pid)
                    r["loadavg_before"] = round(la, 2)
                    results["systems"][n][key] = r
                    print(f"  {key:12s} n={r['requests']} rps={r['rps']} p50={r['p50_ms']}ms p99={r['p99_ms']}ms "
                          f"mean={r['mean_ms']}ms server CPU {r['server_cpu_ms_per_req']}ms/req client CPU "
                          f"{r['client_cpu_ms_per_req']}ms/req errors={r['errors']} ({r['bounded_by']}; "
                          f"load avg {la:.2f})", flush=True)
                    save()

        if a.profile:
            pyspy = find_pyspy(a.py_spy)
            prof = results["systems"][U]["profile"] = {}
            if pyspy is None:
                prof["error"] = "py-spy not found (pip install py-spy into a separate dir; --py-spy PATH)"
                print("  !! " + prof["error"], flush=True)
            else:
                print(f"== {U}: profile with {pyspy}", flush=True)
                for phase in PHASES:
                    nreq = a.profile_requests if phase != "session" else max(1, a.profile_requests // 5)
                    try:
                        prof[phase] = profile_phase(
                            pyspy, upid, workdir, phase,
                            lambda: zl.run_phase("127.0.0.1", u.zport, apdus, phase, concurrency=1,  # noqa: B023 - called at once, in this iteration
                                                 max_requests=nreq, max_seconds=a.seconds),  # noqa: B023 - called at once, in this iteration
                            a.profile_rate)
                    except (OSError, RuntimeError) as e:
                        prof[phase] = {"error": f"{type(e).__name__}: {e}"}
                    save()
        for n, (_, _, pid) in endpoints.items():
            results["systems"][n]["server_rss_mb"] = round(procmon._status_kb(pid, "VmRSS") / 1024, 1)
        results["meta"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        results["meta"]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
        results["meta"]["code_after"] = rb.code_state()
        print()
        print(report(results))
        save()
        print(f"\nresults: {a.out}")
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        rc = 130
    except (RuntimeError, TimeoutError, OSError) as e:
        print(f"!! {type(e).__name__}: {e}", file=sys.stderr)
        results["error"] = f"{type(e).__name__}: {e}"
        rc = 1
    finally:
        for s in (u, zs):
            if s is not None:
                try:
                    s.stop()
                except Exception as e:  # noqa: BLE001
                    print(f"!! stopping: {e}", file=sys.stderr)
        rb.finish(save, a, workdir)
    return rc


if __name__ == "__main__":
    sys.exit(main())
