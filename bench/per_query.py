"""Latency per query of a measured phase, so a phase's tail can be attributed.

``bench/http_load.py``'s ``run_load(..., by_query=True)`` hands back the latencies of
each workload query (the workload is cycled); :func:`stats` turns them into one row
per query -- count, p50, p99, max, mean (nearest-rank percentiles, as the phase's
own) and ``tail``: how many of the query's requests took at least the phase's p99,
i.e. its share of the phase's slowest 1 %.  :func:`slowest_text` prints the few
slowest.  Pure functions.
"""
from __future__ import annotations

import math
import statistics
import unicodedata


def _width(s: str) -> int:
    """Columns s takes in a terminal (CJK characters two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def _pct(sorted_ms: list[float], q: float) -> float:
    i = min(len(sorted_ms) - 1, max(0, math.ceil(q * len(sorted_ms)) - 1))
    return sorted_ms[i]


def stats(lat_by_query: list[list[float]], cqls: list[str], *, numbers: list[int] | None = None) -> list[dict]:
    """One row per query, in workload order.  ``numbers``: the workload's query numbers
    (default 1..N).  ``tail`` counts the query's requests at or above the phase's p99,
    taken (nearest rank, as http_load's) over all the lists together, unrounded.  A query
    that never ran has count 0 and no latency figures."""
    if len(lat_by_query) != len(cqls):
        raise ValueError(f"{len(lat_by_query)} latency lists for {len(cqls)} queries")
    numbers = numbers or list(range(1, len(cqls) + 1))
    everything = sorted(x for lats in lat_by_query for x in lats)
    phase_p99 = _pct(everything, 0.99) if everything else None
    rows = []
    for n, cql, lats in zip(numbers, cqls, lat_by_query):
        s = sorted(lats)
        row: dict = {"n": n, "cql": cql, "count": len(s)}
        if s:
            row.update(p50_ms=round(_pct(s, 0.50), 3), p99_ms=round(_pct(s, 0.99), 3),
                       max_ms=round(s[-1], 3), mean_ms=round(statistics.fmean(s), 3))
        else:
            row.update(p50_ms=None, p99_ms=None, max_ms=None, mean_ms=None)
        row["tail"] = sum(1 for x in s if phase_p99 is not None and x >= phase_p99)
        rows.append(row)
    return rows


def slowest(rows: list[dict], k: int = 8) -> list[dict]:
    """The k queries with the most requests in the phase's tail, then the highest p99."""
    ran = [r for r in rows if r["count"]]
    return sorted(ran, key=lambda r: (-r["tail"], -r["p99_ms"], -r["max_ms"], r["n"]))[:k]


def slowest_text(rows: list[dict], k: int = 8, width: int = 44) -> str:
    """A few lines: the slowest queries with their figures."""
    top = slowest(rows, k)
    if not top:
        return "  (no latencies per query)"
    in_tail = sum(r["tail"] for r in rows)
    lines = [f"  slowest queries ({in_tail} requests at or above the phase's p99; tail = theirs):",
             f"  {'#':>3s}  {'query':{width}s}  {'n':>4s}  {'p50':>8s}  {'p99':>8s}  {'max':>8s}  tail"]
    for r in top:
        cql = r["cql"]
        while _width(cql) > width:
            cql = cql[:-2] + "…"
        cql += " " * (width - _width(cql))
        lines.append(f"  {r['n']:3d}  {cql}  {r['count']:4d}  {r['p50_ms']:8.1f}  {r['p99_ms']:8.1f}  "
                     f"{r['max_ms']:8.1f}  {r['tail']}")
    return "\n".join(lines)
