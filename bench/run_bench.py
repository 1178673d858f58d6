"""unioncat vs Zebra, side by side, on the same Library of Congress records.

One run does everything and stops everything it started:

1. gets the 250,000-record LoC file (``bench/loc_data.py``; ``--records N`` writes
   the first N records to a subset file),
2. derives the fixed 50-query CQL workload from it (``bench/workload.py``),
3. for each system -- unioncat, Zebra with ICU indexing, Zebra with its default
   ``string.chr`` indexing (see ``bench/zebra.py`` for the variants) -- loads the records (``unioncat ingest`` /
   ``zebraidx update``: wall time, records/s, peak RSS, size on disk), starts the
   server on 127.0.0.1, runs the workload once for hit counts, then sequentially
   and at concurrency 8 and 32 (``bench/http_load.py``: p50/p99 latency,
   requests/s), optionally ``wrk`` on one fixed query, records the server's
   peak memory, and stops the server (by PID),
4. prints the figures side by side with the ratio unioncat/Zebra and writes JSON.

usage::

    python bench/run_bench.py                       # all 250,000 records
    python bench/run_bench.py --records 20000       # quick run on the first 20,000
    python bench/run_bench.py --skip-zebra          # unioncat only
    python bench/run_bench.py --skip-unioncat --zebra-variants icu
    python bench/run_bench.py --out bench/results.json --keep   # keep the work dir

All servers bind to 127.0.0.1 on free ports.  Every loop is bounded (number of
requests *and* seconds per phase, time-outs on ingest/index/start-up).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import http_load  # noqa: E402
import procmon  # noqa: E402
import workload as wl  # noqa: E402
import zebra  # noqa: E402

WRK_QUERY = "dc.title=history"


# ---------------------------------------------------------------- PID registry

STARTED = procmon.Registry()  # every PID this run started and has not reaped yet


def _sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# ---------------------------------------------------------------- systems

def _dir_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 2**20, 1)


class UnioncatSystem:
    name = "unioncat"

    def __init__(self, root: Path, cmd: list[str], library: str, env: dict, start_timeout: float):
        self.root = root
        self.data_dir = root / "data"
        self.cmd = cmd
        self.library = library
        self.env = env
        self.port = procmon.free_port()
        self.proc: subprocess.Popen | None = None
        self.start_timeout = start_timeout

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sru"

    def load(self, path: Path, timeout: float) -> dict:
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        help_text = subprocess.run([*self.cmd, "ingest", "--help"], capture_output=True, text=True,
                                   env=self.env, timeout=60).stdout
        extra = [f for f in ("--quiet", "--json") if f in help_text]
        cmd = [*self.cmd, "ingest", "--data-dir", str(self.data_dir), "--library", self.library,
               *extra, str(path)]
        print("  $", " ".join(cmd), flush=True)
        res = procmon.run_measured(cmd, log_path=self.root / "ingest.log", timeout=timeout,
                                   env=self.env, register=STARTED)
        counts = parse_ingest_counts(res["output"])
        out = {
            "command": " ".join(cmd),
            "returncode": res["returncode"],
            "wall_s": round(res["wall_s"], 2),
            "counts": counts,
            "records": counts.get("read"),
            "peak_rss_mb": res["peak_rss_mb"],
            "peak_tree_rss_mb": res["tree"]["peak_rss_mb"],
            "peak_tree_anon_mb": res["tree"]["peak_anon_mb"],
            "user_s": res["user_s"],
            "sys_s": res["sys_s"],
            "cpu_s": res["tree_cpu_s"],
            "disk_mb": _dir_mb(self.data_dir) if self.data_dir.exists() else None,
        }
        if out["records"]:
            out["records_per_s"] = round(out["records"] / res["wall_s"], 1)
        if res["returncode"] != 0:
            out["error"] = res["output"][-3000:]
            raise SystemFailed(self.name, out)
        return out

    def start(self) -> int:
        log = open(self.root / "serve.log", "wb")
        cmd = [*self.cmd, "serve", "--data-dir", str(self.data_dir), "--host", "127.0.0.1",
               "--port", str(self.port)]
        print("  $", " ".join(cmd), flush=True)
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env)
        log.close()
        STARTED.add(self.proc.pid)
        try:
            zebra.wait_http(f"{self.base_url}?operation=explain&version=1.2", timeout=self.start_timeout,
                            proc=self.proc, what="unioncat serve", log=self.root / "serve.log")
        except BaseException:
            self.stop()
            raise
        return self.proc.pid

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None:
            procmon.stop_tree(self.proc.pid)
            try:
                self.proc.wait(timeout=5)
                STARTED.discard(self.proc.pid)
            except subprocess.TimeoutExpired:
                pass
            self.proc = None


class ZebraSystem:
    def __init__(self, root: Path, variant: str, start_timeout: float):
        self.name = f"zebra-{variant}"
        self.z = zebra.ZebraSetup(root, variant)
        self.start_timeout = start_timeout

    @property
    def base_url(self) -> str:
        return self.z.base_url

    def load(self, path: Path, timeout: float) -> dict:
        print(f"  $ zebraidx -c conf/zebra.cfg update {path}   (in {self.z.root})", flush=True)
        out = self.z.index([path], timeout=timeout, register=STARTED)
        out["disk_mb"] = out.pop("register_mb")
        return out

    def start(self) -> int:
        pid = self.z.start(wait=self.start_timeout, register=STARTED)
        print(f"  zebrasrv pid {pid} on {self.base_url}", flush=True)
        return pid

    @property
    def pid(self) -> int:
        return self.z.pid

    def stop(self) -> None:
        self.z.stop()


class SystemFailed(Exception):
    def __init__(self, name, info):
        super().__init__(f"{name} failed")
        self.name = name
        self.info = info


def parse_ingest_counts(output: str) -> dict:
    """Counts from ``unioncat ingest`` output: the --json line, else the text line
    ``read N, added N, updated N, ..., quarantined N``."""
    for line in reversed(output.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                d = json.loads(line)
                if "read" in d:
                    return d
            except ValueError:
                pass
    counts = {}
    for key in ("read", "added", "updated", "unchanged", "withdrawn", "merged", "quarantined"):
        m = re.findall(rf"\b{key}\b[:=]?\s+(\d+)", output)
        if m:
            counts[key] = int(m[-1])
    return counts


def unioncat_command(arg: str | None) -> tuple[list[str], dict]:
    env = dict(os.environ)
    if arg:
        return arg.split(), env
    exe = Path(sys.executable).with_name("unioncat")
    if exe.exists():
        return [str(exe)], env
    found = shutil.which("unioncat")
    if found:
        return [found], env
    # not installed: run the CLI module from this checkout
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return [sys.executable, "-m", "gateway.cli"], env


# ---------------------------------------------------------------- measuring one system

def measure(system, path: Path, queries: list[str], a, out: dict) -> None:
    """Load, serve, query; fills ``out`` as it goes (partial results survive errors)."""
    print(f"\n== {system.name}: load", flush=True)
    out["load"] = system.load(path, a.load_timeout)
    print("  ", {k: v for k, v in out["load"].items() if k not in ("command", "counts")}, flush=True)
    print(f"== {system.name}: serve", flush=True)
    t0 = time.perf_counter()
    pid = system.start()
    out["start_s"] = round(time.perf_counter() - t0, 2)
    mon = procmon.TreeMemory(pid, interval=0.2).start()
    try:
        time.sleep(0.5)
        mon.poll()
        out["server_idle_rss_mb"] = round(mon.peak_rss_kb / 1024, 1)
        print("  hit counts (one sequential pass, also the warm-up)", flush=True)
        extra = a.extra if system.name == "unioncat" else None  # see --result-set-ttl
        out["request_extra"] = extra
        out["hits"] = http_load.hit_counts(system.base_url, queries, extra=extra)
        bad = [h for h in out["hits"] if h.get("status") != 200 or h.get("diagnostic")]
        if bad:
            print(f"  {len(bad)} queries gave errors/diagnostics, e.g. {bad[0]}", flush=True)
        phases = [("seq", 1, a.seq_requests)] + [(f"c{c}", c, a.conc_requests) for c in a.concurrency]
        for label, conc, nreq in phases:
            load = os.getloadavg()[0]
            cpu0 = procmon.tree_cpu_s(pid)
            r = http_load.run_load(system.base_url, queries, concurrency=conc, max_requests=nreq,
                                   max_seconds=a.seconds, extra=extra)
            cpu = procmon.tree_cpu_s(pid) - cpu0
            r["server_cpu_s"] = round(cpu, 3)
            r["server_cpu_ms_per_req"] = round(1000 * cpu / r["requests"], 3) if r["requests"] else None
            r["loadavg_before"] = round(load, 2)
            out[label] = r
            print(f"  {label:4s} n={r['requests']} rps={r['rps']} p50={r['p50_ms']}ms p99={r['p99_ms']}ms "
                  f"server CPU {r['server_cpu_ms_per_req']}ms/req errors={r['errors']} "
                  f"diagnostics={r['diagnostics']} ({r['bounded_by']}; load avg before {load:.1f})",
                  flush=True)
        if a.wrk and shutil.which("wrk"):
            url = http_load.sru_url(system.base_url, WRK_QUERY, extra=extra)
            out["wrk"] = {}
            for c in (1, 8):
                r = http_load.run_wrk(url, connections=c, seconds=a.wrk_seconds)
                out["wrk"][f"c{c}"] = r
                print(f"  wrk -c{c}: rps={r['rps']} p50={r['p50_ms']}ms p99={r['p99_ms']}ms "
                      f"non2xx={r['non2xx']}", flush=True)
        mon.poll()
        out["server_mem"] = mon.stop()
        out["server_mem"]["root_hwm_mb"] = round(procmon.hwm_kb(pid) / 1024, 1)
    finally:
        mon.stop()
        system.stop()


# ---------------------------------------------------------------- report

ROWS = [  # label, path, better ("higher"/"lower"), fmt
    ("load: records/s", ("load", "records_per_s"), "higher", "{:.0f}"),
    ("load: wall s", ("load", "wall_s"), "lower", "{:.1f}"),
    ("load: CPU s (user+sys, all processes)", ("load", "cpu_s"), "lower", "{:.1f}"),
    ("load: peak RSS MB", ("load", "peak_rss_mb"), "lower", "{:.0f}"),
    ("on disk MB", ("load", "disk_mb"), "lower", "{:.0f}"),
    ("server start s", ("start_s",), "lower", "{:.2f}"),
    ("server idle RSS MB", ("server_idle_rss_mb",), "lower", "{:.0f}"),
    ("server peak RSS MB (tree)", ("server_mem", "peak_rss_mb"), "lower", "{:.0f}"),
    ("server peak PSS MB (tree)", ("server_mem", "peak_pss_mb"), "lower", "{:.0f}"),
    ("server peak anon RSS MB (tree)", ("server_mem", "peak_anon_mb"), "lower", "{:.0f}"),
    ("seq: p50 ms", ("seq", "p50_ms"), "lower", "{:.2f}"),
    ("seq: p99 ms", ("seq", "p99_ms"), "lower", "{:.2f}"),
    ("seq: req/s", ("seq", "rps"), "higher", "{:.0f}"),
    ("seq: server CPU ms/req", ("seq", "server_cpu_ms_per_req"), "lower", "{:.2f}"),
    ("c8: p50 ms", ("c8", "p50_ms"), "lower", "{:.2f}"),
    ("c8: p99 ms", ("c8", "p99_ms"), "lower", "{:.2f}"),
    ("c8: req/s", ("c8", "rps"), "higher", "{:.0f}"),
    ("c8: server CPU ms/req", ("c8", "server_cpu_ms_per_req"), "lower", "{:.2f}"),
    ("c32: p50 ms", ("c32", "p50_ms"), "lower", "{:.2f}"),
    ("c32: p99 ms", ("c32", "p99_ms"), "lower", "{:.2f}"),
    ("c32: req/s", ("c32", "rps"), "higher", "{:.0f}"),
    ("c32: server CPU ms/req", ("c32", "server_cpu_ms_per_req"), "lower", "{:.2f}"),
    ("wrk c1: p50 ms", ("wrk", "c1", "p50_ms"), "lower", "{:.2f}"),
    ("wrk c1: p99 ms", ("wrk", "c1", "p99_ms"), "lower", "{:.2f}"),
    ("wrk c1: req/s", ("wrk", "c1", "rps"), "higher", "{:.0f}"),
    ("wrk c8: p50 ms", ("wrk", "c8", "p50_ms"), "lower", "{:.2f}"),
    ("wrk c8: p99 ms", ("wrk", "c8", "p99_ms"), "lower", "{:.2f}"),
    ("wrk c8: req/s", ("wrk", "c8", "rps"), "higher", "{:.0f}"),
    ("errors (non-200, all phases)", ("_errors",), "lower", "{:.0f}"),
    ("SRU diagnostics (all phases)", ("_diags",), "lower", "{:.0f}"),
]


def _get(d: dict, path):
    for k in path:
        if not isinstance(d, dict) or k not in d or d[k] is None:
            return None
        d = d[k]
    return d


def _derived(res: dict) -> None:
    ld = res.get("load") or {}
    if ld.get("cpu_s") is None and ld.get("user_s") is not None and ld.get("sys_s") is not None:
        ld["cpu_s"] = round(ld["user_s"] + ld["sys_s"], 2)  # older results: the main process only
    phases = [res[k] for k in res if re.fullmatch(r"seq|c\d+", k) and isinstance(res[k], dict)]
    if "hits" in res:
        res["_diags"] = sum(1 for h in res["hits"] if h.get("diagnostic") or h.get("hits") is None) + sum(
            p.get("diagnostics", 0) for p in phases)
    if phases:
        res["_errors"] = sum(p.get("errors", 0) for p in phases) + sum(
            (w or {}).get("non2xx", 0) for w in (res.get("wrk") or {}).values())


def table(results: dict, concurrency: list[int]) -> str:
    names = list(results["systems"])
    for n in names:
        _derived(results["systems"][n])
    zebras = [n for n in names if n.startswith("zebra")]
    has_uc = "unioncat" in names
    rows = [r for r in ROWS if not re.match(r"c(\d+):", r[0]) or int(re.match(r"c(\d+)", r[0]).group(1))
            in concurrency]
    head = ["metric", "better"] + names + ([f"uc/{z[6:]}" for z in zebras] if has_uc else [])
    lines = [head]
    for label, path, better, fmt in rows:
        vals = [_get(results["systems"][n], path) for n in names]
        if all(v is None for v in vals):
            continue
        cells = [label, better] + [fmt.format(v) if isinstance(v, (int, float)) else "-" for v in vals]
        if has_uc:
            u = _get(results["systems"]["unioncat"], path)
            for z in zebras:
                zv = _get(results["systems"][z], path)
                cells.append(f"{u / zv:.2f}" if isinstance(u, (int, float)) and isinstance(zv, (int, float))
                             and zv else "-")
        lines.append(cells)
    return _fmt_table(lines)


def _fmt_table(lines: list[list[str]]) -> str:
    w = [max(len(str(r[i])) for r in lines) for i in range(len(lines[0]))]
    out = []
    for j, r in enumerate(lines):
        out.append("  ".join(str(c).ljust(w[i]) if i < 2 else str(c).rjust(w[i]) for i, c in enumerate(r)))
        if j == 0:
            out.append("  ".join("-" * x for x in w))
    return "\n".join(out)


def _disp_width(s: str) -> int:
    import unicodedata
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def hits_table(results: dict) -> str:
    names = [n for n in results["systems"] if "hits" in results["systems"][n]]
    if not names:
        return "(no hit counts)"
    queries = results["workload"]
    w = 48
    lines = ["  #  kind             " + "query".ljust(w) + "".join(f"{n:>15s}" for n in names)]
    ndiff = 0
    for i, q in enumerate(queries):
        cells = []
        for n in names:
            h = results["systems"][n]["hits"][i]
            if h.get("status") != 200:
                cells.append(f"HTTP {h.get('status')}")
            elif h.get("diagnostic"):
                cells.append("diag " + h["diagnostic"].split("/")[-1].split()[0])
            else:
                cells.append(str(h.get("hits")))
        diff = len(set(cells)) > 1
        ndiff += diff
        cql = q["cql"]
        while _disp_width(cql) > w - 1:
            cql = cql[:-2] + "…"
        pad = w - _disp_width(cql)
        lines.append(f"{'*' if diff else ' '}{q['n']:2d}  {q['kind']:15s}  {cql}{' ' * pad}"
                     + "".join(f"{c:>15s}" for c in cells))
    lines.append(f"(* = the servers disagree: {ndiff} of {len(queries)} queries; unioncat counts union records)")
    return "\n".join(lines)


def kinds_table(results: dict) -> str:
    """Single-shot latency (the hit-count pass) summed per query kind."""
    names = [n for n in results["systems"] if "hits" in results["systems"][n]]
    if not names:
        return ""
    kinds: dict[str, list[int]] = {}
    for i, q in enumerate(results["workload"]):
        kinds.setdefault(q["kind"], []).append(i)
    lines = [["kind", "queries"] + [f"{n} ms" for n in names]]
    for kind, idx in kinds.items():
        row = [kind, str(len(idx))]
        for n in names:
            hits = results["systems"][n]["hits"]
            ms = [hits[i].get("ms") for i in idx if hits[i].get("ms") is not None]
            row.append(f"{sum(ms):.1f}" if ms else "-")
        lines.append(row)
    return _fmt_table(lines)


# ---------------------------------------------------------------- main

def machine_info() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                info["mem_mb"] = int(line.split()[1]) // 1024
    except OSError:
        pass
    try:
        v = subprocess.run(["zebraidx", "-V"], capture_output=True, text=True, timeout=10).stdout
        info["zebra"] = " ".join(v.split()[:4])
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        info["git"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                     capture_output=True, text=True, timeout=10).stdout.strip()
        # unioncat runs from this checkout (editable install): note uncommitted changes
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
        info["git_modified"] = [ln[3:] for ln in dirty if ln.strip()]
    except (OSError, subprocess.TimeoutExpired):
        pass
    return info


def get_data(a) -> Path:
    if a.data:
        return Path(a.data)
    try:
        from loc_data import loc_records_path
    except ImportError:
        from bench.loc_data import loc_records_path  # when run as a package module
    return loc_records_path()


def report(results: dict, concurrency: list[int]) -> str:
    m = results.get("meta", {}).get("machine", {})
    parts = [
        f"records: {results.get('data', {}).get('records')}   machine: {m.get('cpus')} CPUs, {m.get('cpu', '')}, "
        f"{m.get('mem_mb', '?')} MB",
        "uc/X = unioncat / X: for 'higher' rows a ratio > 1 favours unioncat, for 'lower' rows < 1 does.",
        table(results, concurrency),
        "",
        hits_table(results),
        "",
        "time per query kind, single pass (sum of the kind's queries, ms; includes 10 MARCXML records)",
        kinds_table(results),
    ]
    errs = {n: r["error"] for n, r in results.get("systems", {}).items() if r.get("error")}
    for n, e in errs.items():
        parts.append(f"!! {n}: {e}")
    return "\n".join(parts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="unioncat vs Zebra on the same LoC records",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--records", type=int, default=None, help="use only the first N records")
    ap.add_argument("--skip-zebra", action="store_true")
    ap.add_argument("--skip-unioncat", action="store_true")
    ap.add_argument("--zebra-variants", default="icu,default",
                    help="comma list of icu,default,icu-words (default: icu,default; icu is the fair one "
                    "for Japanese, see bench/zebra.py)")
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--data", type=Path, default=None,
                    help="MARC file to use instead of the LoC file from bench/loc_data.py")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="work directory (default: a new temp dir, removed afterwards unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--unioncat", default=None, help="command for the unioncat CLI (default: unioncat)")
    ap.add_argument("--library", default="loc", help="library code for unioncat ingest (default: loc)")
    ap.add_argument("--seed", type=int, default=wl.DEFAULT_SEED)
    ap.add_argument("--concurrency", default="8,32", help="concurrent phases (default: 8,32)")
    ap.add_argument("--seq-requests", type=int, default=1000, help="max requests, sequential phase")
    ap.add_argument("--conc-requests", type=int, default=5000, help="max requests, each concurrent phase")
    ap.add_argument("--seconds", type=float, default=30, help="max seconds per load phase")
    ap.add_argument("--result-set-ttl", type=int, default=0, metavar="N",
                    help="resultSetTTL sent with every request to unioncat (default 0: every request runs "
                    "its search.  unioncat reuses a live result set of the same query, and the workload "
                    "repeats its 50 queries; Zebra never reuses one between SRU requests -- and YAZ answers "
                    "resultSetTTL with diagnostic 8, so it is not sent to Zebra).  -1: do not send it")
    ap.add_argument("--no-wrk", dest="wrk", action="store_false", help="skip the wrk runs")
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--load-timeout", type=float, default=3 * 3600, help="max seconds for ingest/index")
    ap.add_argument("--start-timeout", type=float, default=300, help="max seconds for a server to answer")
    ap.add_argument("--report", type=Path, default=None, metavar="JSON",
                    help="only print the tables of saved results (several files are merged)")
    ap.add_argument("--merge", type=Path, nargs="*", default=[], metavar="JSON",
                    help="with --report: further result files whose systems are added")
    a = ap.parse_args(argv)
    a.concurrency = [int(c) for c in a.concurrency.split(",") if c.strip()]
    a.extra = {"resultSetTTL": str(a.result_set_ttl)} if a.result_set_ttl >= 0 else None
    if a.report:
        results = json.loads(a.report.read_text())
        for extra in a.merge:
            other = json.loads(extra.read_text())
            if other.get("workload") != results.get("workload"):
                print(f"warning: {extra} has a different workload; hit counts are not comparable",
                      file=sys.stderr)
            for n, r in other.get("systems", {}).items():
                results["systems"].setdefault(n, r)
        print(report(results, a.concurrency))
        return 0
    variants = [v.strip() for v in a.zebra_variants.split(",") if v.strip()]
    for v in variants:
        if v not in zebra.VARIANTS:
            ap.error(f"unknown Zebra variant {v!r}")

    signal.signal(signal.SIGTERM, _sigterm)
    workdir = a.workdir or Path(tempfile.mkdtemp(prefix="unioncat-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {"meta": {"started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "argv": sys.argv,
                              "request": {"version": "1.2", "maximumRecords": 10, "recordSchema": "marcxml",
                                          "unioncat_extra": a.extra},
                              "machine": machine_info(), "workdir": str(workdir)},
                     "systems": {}}

    def save():
        a.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = a.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, ensure_ascii=False, indent=1))
        os.replace(tmp, a.out)

    rc = 0
    try:
        t0 = time.perf_counter()
        full = get_data(a)
        results["data"] = {"file": str(full), "fetch_s": round(time.perf_counter() - t0, 2)}
        path = full
        if a.records:
            path = workdir / f"first{a.records}.mrc"
            n = wl.write_subset(full, path, a.records)
            results["data"]["subset"] = str(path)
        t0 = time.perf_counter()
        raw = wl.split_records(path)
        results["data"]["records"] = len(raw)
        print(f"data: {path} ({len(raw)} records)", flush=True)
        queries = wl.build_workload(path, seed=a.seed, raw=raw, ja_source=full)
        del raw
        results["workload"] = [asdict(q) for q in queries]
        results["data"]["workload_s"] = round(time.perf_counter() - t0, 2)
        print(f"workload: {len(queries)} queries (seed {a.seed})", flush=True)
        cqls = [q.cql for q in queries]

        systems = []
        if not a.skip_unioncat:
            cmd, env = unioncat_command(a.unioncat)
            systems.append(UnioncatSystem(workdir / "unioncat", cmd, a.library, env, a.start_timeout))
        if not a.skip_zebra:
            zebra.check_installed()
            for v in variants:
                systems.append(ZebraSystem(workdir / f"zebra-{v}", v, a.start_timeout))

        for s in systems:
            res = results["systems"].setdefault(s.name, {})
            try:
                measure(s, path, cqls, a, res)
            except SystemFailed as e:
                res["load"] = e.info
                res["error"] = f"load failed (exit {e.info.get('returncode')})"
                print(f"!! {s.name}: {res['error']}\n{e.info.get('error', '')[-1500:]}", file=sys.stderr)
                rc = 1
            except (RuntimeError, TimeoutError, OSError) as e:
                res["error"] = f"{type(e).__name__}: {e}"
                print(f"!! {s.name}: {res['error']}", file=sys.stderr)
                rc = 1
            save()

        results["meta"]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
        print()
        print(report(results, a.concurrency))
        save()
        print(f"\nresults: {a.out}")
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        rc = 130
    finally:
        STARTED.stop_all()
        try:
            save()
        except OSError:
            pass
        if not a.keep and a.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
