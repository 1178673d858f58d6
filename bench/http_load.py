"""SRU load generator: asyncio + aiohttp with keep-alive connections.

* :func:`hit_counts` -- one sequential pass over the workload, recording each
  query's ``numberOfRecords`` (or diagnostic) and latency; doubles as warm-up.
* :func:`run_load` -- the workload in a loop at concurrency C, bounded by a
  number of requests *and* a number of seconds (whichever comes first); reports
  p50/p90/p99/max latency and requests/s.  Each request is an SRU 1.2
  ``searchRetrieve`` with ``maximumRecords=10&recordSchema=marcxml``; the whole
  body is read before the clock stops.
* :func:`run_wrk` -- ``wrk`` (if installed) for one fixed URL.

The client runs on the same machine as the server, so at high request rates
part of the CPU goes to the client: compare servers with the same client, and
use the wrk figures (a C client) as a cross-check.

usage::

    python bench/http_load.py http://127.0.0.1:8080/sru --workload wl.json -c 8 -n 2000 -t 30
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.parse

import aiohttp
from yarl import URL

NUM_RE = re.compile(rb"<(?:[\w-]+:)?numberOfRecords>\s*(\d+)\s*</")
DIAG_RE = re.compile(rb"<(?:[\w-]+:)?uri>\s*(info:srw/diagnostic/[^<\s]+)\s*</")
DETAILS_RE = re.compile(rb"<(?:[\w-]+:)?(?:details|message)>([^<]*)</")
RECDATA_RE = re.compile(rb"<(?:[\w-]+:)?recordData[\s>]")


def sru_url(base: str, cql: str, *, maximum_records: int = 10, schema: str = "marcxml",
            version: str = "1.2", extra: dict | None = None) -> str:
    """An SRU searchRetrieve URL; ``extra`` adds parameters (e.g. resultSetTTL)."""
    params = {"operation": "searchRetrieve", "version": version, "query": cql,
              "maximumRecords": str(maximum_records), "recordSchema": schema, **(extra or {})}
    return base + "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)


def parse_sru(body: bytes) -> dict:
    m = NUM_RE.search(body)
    d = DIAG_RE.findall(body)
    out = {
        "hits": int(m.group(1)) if m else None,
        "returned": len(RECDATA_RE.findall(body)),
    }
    if d:
        det = DETAILS_RE.findall(body)
        out["diagnostic"] = d[0].decode("utf-8", "replace") + (
            " " + det[0].decode("utf-8", "replace").strip() if det else "")
    return out


def _pct(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    # nearest-rank percentile
    i = min(len(sorted_ms) - 1, max(0, math.ceil(q * len(sorted_ms)) - 1))
    return sorted_ms[i]


def summarize(lat_ms: list[float], wall_s: float, errors: int, **extra) -> dict:
    s = sorted(lat_ms)
    return {
        "requests": len(s),
        "errors": errors,
        "wall_s": round(wall_s, 3),
        "rps": round(len(s) / wall_s, 1) if wall_s > 0 else None,
        "p50_ms": round(_pct(s, 0.50), 3) if s else None,
        "p90_ms": round(_pct(s, 0.90), 3) if s else None,
        "p99_ms": round(_pct(s, 0.99), 3) if s else None,
        "max_ms": round(s[-1], 3) if s else None,
        "mean_ms": round(statistics.fmean(s), 3) if s else None,
        **extra,
    }


def _session(concurrency: int, timeout: float) -> aiohttp.ClientSession:
    conn = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency,
                                force_close=False, keepalive_timeout=60)
    return aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout),
                                 auto_decompress=False)


async def _hit_counts(base: str, queries: list[str], timeout: float, extra: dict | None) -> list[dict]:
    out = []
    async with _session(1, timeout) as s:
        for q in queries:
            url = URL(sru_url(base, q, extra=extra), encoded=True)
            t0 = time.perf_counter()
            try:
                async with s.get(url) as r:
                    body = await r.read()
                    status = r.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                out.append({"cql": q, "status": None, "error": f"{type(e).__name__}: {e}"})
                continue
            ms = (time.perf_counter() - t0) * 1000
            out.append({"cql": q, "status": status, "ms": round(ms, 3), **parse_sru(body)})
    return out


def hit_counts(base: str, queries: list[str], timeout: float = 60, extra: dict | None = None) -> list[dict]:
    """One sequential pass: hits/diagnostic/latency per query."""
    return asyncio.run(_hit_counts(base, queries, timeout, extra))


async def _run_load(base: str, queries: list[str], concurrency: int, max_requests: int,
                    max_seconds: float, timeout: float, extra: dict | None, by_query: bool = False) -> dict:
    urls = [URL(sru_url(base, q, extra=extra), encoded=True) for q in queries]
    lat: list[float] = []
    qlat: list[list[float]] = [[] for _ in urls]   # by_query: the latencies of each query
    errors = 0
    diags = 0
    next_i = 0
    deadline = 0.0

    async def worker(s: aiohttp.ClientSession):
        nonlocal next_i, errors, diags
        while True:
            i = next_i
            if i >= max_requests or time.perf_counter() >= deadline:
                return
            next_i += 1
            t0 = time.perf_counter()
            try:
                async with s.get(urls[i % len(urls)]) as r:
                    body = await r.read()
                    ok = r.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError):
                errors += 1
                continue
            ms = (time.perf_counter() - t0) * 1000
            lat.append(ms)
            qlat[i % len(urls)].append(ms)
            if not ok:
                errors += 1
            elif b"info:srw/diagnostic/" in body:
                diags += 1

    async with _session(concurrency, timeout) as s:
        # open the connections before the clock starts (one request each)
        async def warm(u):
            async with s.get(u) as r:
                await r.read()

        await asyncio.gather(*(warm(urls[k % len(urls)]) for k in range(concurrency)),
                             return_exceptions=True)
        t0 = time.perf_counter()
        deadline = t0 + max_seconds
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    out = summarize(lat, wall, errors, concurrency=concurrency, diagnostics=diags,
                    bounded_by="seconds" if next_i < max_requests else "requests")
    if by_query:
        out["by_query_ms"] = qlat
    return out


def run_load(base: str, queries: list[str], *, concurrency: int = 1, max_requests: int = 1000,
             max_seconds: float = 30, timeout: float = 60, extra: dict | None = None,
             by_query: bool = False) -> dict:
    """Run the workload (cycled) against ``base``; bounded by requests and seconds.
    ``by_query``: the result also has ``by_query_ms``, one list per query (workload
    order) of its requests' latencies -- together the ones the percentiles are taken
    over -- for bench/per_query.py."""
    return asyncio.run(_run_load(base, queries, concurrency, max_requests, max_seconds, timeout, extra,
                                 by_query))


# ---------------------------------------------------------------- wrk

_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(v: str) -> float | None:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v.strip())
    return float(m.group(1)) * _UNIT[m.group(2)] if m else None


def run_wrk(url: str, *, connections: int, seconds: int = 10, threads: int | None = None) -> dict | None:
    """``wrk --latency`` for one URL; None if wrk is not installed."""
    exe = shutil.which("wrk")
    if exe is None:
        return None
    threads = threads or min(connections, 2)
    cmd = [exe, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s", url]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    out = p.stdout
    res: dict = {"connections": connections, "threads": threads, "seconds": seconds,
                 "returncode": p.returncode}
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else None
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s*{pct}%\s+(\S+)", out, re.M)
        res[f"p{pct}_ms"] = round(_ms(m.group(1)), 3) if m and _ms(m.group(1)) is not None else None
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors:(.*)", out)
    res["socket_errors"] = m.group(1).strip() if m else None
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="SRU load test (aiohttp, keep-alive)")
    ap.add_argument("base", help="SRU base URL, e.g. http://127.0.0.1:8080/sru")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--workload", help="JSON list of queries (from workload.py --json)")
    g.add_argument("--cql", action="append", help="a CQL query (repeatable)")
    ap.add_argument("-c", "--concurrency", type=int, default=1)
    ap.add_argument("-n", "--requests", type=int, default=1000)
    ap.add_argument("-t", "--seconds", type=float, default=30)
    ap.add_argument("--hits", action="store_true", help="print hit counts first")
    ap.add_argument("--result-set-ttl", type=int, default=None,
                    help="send resultSetTTL=N (0: no result-set reuse between requests)")
    a = ap.parse_args(argv)
    extra = {"resultSetTTL": str(a.result_set_ttl)} if a.result_set_ttl is not None else None
    if a.workload:
        with open(a.workload) as f:
            qs = [q["cql"] if isinstance(q, dict) else q for q in json.load(f)]
    else:
        qs = a.cql
    if a.hits:
        for r in hit_counts(a.base, qs, extra=extra):
            print(json.dumps(r, ensure_ascii=False))
    print(json.dumps(run_load(a.base, qs, concurrency=a.concurrency, max_requests=a.requests,
                              max_seconds=a.seconds, extra=extra)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
