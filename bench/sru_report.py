"""The tables bench/run_bench.py prints from its results (also ``--report`` of saved
JSON): the figures side by side with the ratios es/sqlite, es/zebra and sqlite/zebra,
the hit counts, the queries where unioncat-es and unioncat-sqlite differ, the time per
query kind, and the slowest queries of each system's sequential phase (``per_query``,
bench/per_query.py).  Pure functions of the results dict."""
from __future__ import annotations

import re

import per_query

ROWS = [  # label, path, better ("higher"/"lower"), fmt
    ("load: records/s", ("load", "records_per_s"), "higher", "{:.0f}"),
    ("load: wall s", ("load", "wall_s"), "lower", "{:.1f}"),
    ("load: CPU s (user+sys, all processes, incl. ES JVM)", ("load", "cpu_s"), "lower", "{:.1f}"),
    ("load: ES JVM CPU s", ("load", "es_cpu_s"), "lower", "{:.1f}"),
    ("load: peak RSS MB (loader process)", ("load", "peak_rss_mb"), "lower", "{:.0f}"),
    ("load: ES JVM peak RSS MB", ("load", "es_peak_rss_mb"), "lower", "{:.0f}"),
    ("on disk MB (total)", ("load", "disk_mb"), "lower", "{:.0f}"),
    ("  ES: record store MB (catalog.sqlite)", ("load", "store_mb"), "lower", "{:.0f}"),
    ("  ES: index MB (_cat/indices store.size)", ("load", "es_index_mb"), "lower", "{:.0f}"),
    ("  ES: wait for merges after load s", ("load", "merge_settle", "wait_s"), "lower", "{:.1f}"),
    ("reindex: docs/s", ("reindex", "docs_per_s"), "higher", "{:.0f}"),
    ("reindex: wall s", ("reindex", "wall_s"), "lower", "{:.1f}"),
    ("reindex: ES index MB after", ("reindex", "es_index_mb"), "lower", "{:.0f}"),
    ("server start s", ("start_s",), "lower", "{:.2f}"),
    ("server idle RSS MB", ("server_idle_rss_mb",), "lower", "{:.0f}"),
    ("server peak RSS MB (tree)", ("server_mem", "peak_rss_mb"), "lower", "{:.0f}"),
    ("server peak PSS MB (tree)", ("server_mem", "peak_pss_mb"), "lower", "{:.0f}"),
    ("server peak anon RSS MB (tree)", ("server_mem", "peak_anon_mb"), "lower", "{:.0f}"),
    ("ES JVM idle RSS MB", ("es_idle_rss_mb",), "lower", "{:.0f}"),
    ("ES JVM peak RSS MB (serving)", ("es_mem", "peak_rss_mb"), "lower", "{:.0f}"),
    ("server + ES JVM peak RSS MB", ("_total_rss",), "lower", "{:.0f}"),
    ("c1 (seq): p50 ms", ("seq", "p50_ms"), "lower", "{:.2f}"),
    ("c1 (seq): p99 ms", ("seq", "p99_ms"), "lower", "{:.2f}"),
    ("c1 (seq): req/s", ("seq", "rps"), "higher", "{:.0f}"),
    ("c1 (seq): server CPU ms/req", ("seq", "server_cpu_ms_per_req"), "lower", "{:.2f}"),
    ("c1 (seq): gateway CPU ms/req (ES: w/o JVM)", ("seq", "gateway_cpu_ms_per_req"), "lower", "{:.2f}"),
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

ES, SQL = "unioncat-es", "unioncat-sqlite"


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
    srv = _get(res, ("server_mem", "peak_rss_mb"))
    if srv is not None:
        res["_total_rss"] = srv + (_get(res, ("es_mem", "peak_rss_mb")) or 0)


def ratio_pairs(names: list[str]) -> list[tuple[str, str, str]]:
    """(column head, numerator, denominator): es/sqlite, es/each Zebra, sqlite/each Zebra."""
    zebras = [n for n in names if n.startswith("zebra")]
    pairs = []
    if ES in names and SQL in names:
        pairs.append(("es/sqlite", ES, SQL))
    for num, short in ((ES, "es"), (SQL, "sqlite")):
        if num in names:
            pairs += [(f"{short}/{z[6:]}", num, z) for z in zebras]
    return pairs


def _ratio(u, v) -> str:
    return f"{u / v:.2f}" if isinstance(u, (int, float)) and isinstance(v, (int, float)) and v else "-"


def table(results: dict, concurrency: list[int]) -> str:
    names = list(results["systems"])
    for n in names:
        _derived(results["systems"][n])
    pairs = ratio_pairs(names)
    rows = [r for r in ROWS if not re.match(r"c(\d+):", r[0]) or int(re.match(r"c(\d+)", r[0]).group(1))
            in concurrency]
    head = ["metric", "better"] + names + [p[0] for p in pairs]
    lines = [head]
    for label, path, better, fmt in rows:
        vals = [_get(results["systems"][n], path) for n in names]
        if all(v is None for v in vals):
            continue
        cells = [label, better] + [fmt.format(v) if isinstance(v, (int, float)) else "-" for v in vals]
        for _, num, den in pairs:
            cells.append(_ratio(_get(results["systems"][num], path), _get(results["systems"][den], path)))
        lines.append(cells)
    return _fmt_table(lines)


def summary_table(results: dict, concurrency: list[int]) -> str:
    """One line per system: ingest records/s, then p50/p99/req/s at c1 and each concurrency;
    ratio lines below."""
    names = list(results["systems"])
    for n in names:
        _derived(results["systems"][n])
    cols = [("ingest rec/s", ("load", "records_per_s"), "{:.0f}")]
    for label, key in [("c1", "seq")] + [(f"c{c}", f"c{c}") for c in concurrency]:
        cols += [(f"{label} p50 ms", (key, "p50_ms"), "{:.1f}"), (f"{label} p99 ms", (key, "p99_ms"), "{:.1f}"),
                 (f"{label} req/s", (key, "rps"), "{:.0f}")]
    cols = [c for c in cols if any(_get(results["systems"][n], c[1]) is not None for n in names)]
    lines = [["system", ""] + [c[0] for c in cols]]
    for n in names:
        r = results["systems"][n]
        lines.append([n, ""] + [fmt.format(v) if isinstance(v := _get(r, path), (int, float)) else "-"
                                for _, path, fmt in cols])
    for head, num, den in ratio_pairs(names):
        lines.append([head, "ratio"] + [_ratio(_get(results["systems"][num], path),
                                               _get(results["systems"][den], path)) for _, path, _ in cols])
    return _fmt_table(lines)


def es_sqlite_diffs(results: dict) -> list[dict] | None:
    """The queries whose hit count (or diagnostic) differs between unioncat-es and
    unioncat-sqlite; None when the run has not both."""
    sy = results.get("systems", {})
    if not ("hits" in sy.get(ES, {}) and "hits" in sy.get(SQL, {})):
        return None
    out = []
    for q, he, hs in zip(results["workload"], sy[ES]["hits"], sy[SQL]["hits"]):
        ke = (he.get("status"), he.get("hits"), he.get("diagnostic"))
        ks = (hs.get("status"), hs.get("hits"), hs.get("diagnostic"))
        if ke != ks:
            out.append({"n": q["n"], "kind": q["kind"], "cql": q["cql"],
                        "es": he.get("hits") if he.get("status") == 200 and not he.get("diagnostic") else
                        (he.get("diagnostic") or he.get("error") or f"HTTP {he.get('status')}"),
                        "sqlite": hs.get("hits") if hs.get("status") == 200 and not hs.get("diagnostic") else
                        (hs.get("diagnostic") or hs.get("error") or f"HTTP {hs.get('status')}")})
    return out


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
    lines = ["  #  kind             " + "query".ljust(w) + "".join(f"{n:>16s}" for n in names)]
    ndiff = nes = 0
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
        es_diff = ES in names and SQL in names and cells[names.index(ES)] != cells[names.index(SQL)]
        nes += es_diff
        cql = q["cql"]
        while _disp_width(cql) > w - 1:
            cql = cql[:-2] + "…"
        pad = w - _disp_width(cql)
        mark = "E" if es_diff else "*" if diff else " "
        lines.append(f"{mark}{q['n']:2d}  {q['kind']:15s}  {cql}{' ' * pad}"
                     + "".join(f"{c:>16s}" for c in cells))
    lines.append(f"(* = the servers disagree: {ndiff} of {len(queries)} queries; unioncat counts union records)")
    if ES in names and SQL in names:
        lines.append(f"(E = {ES} and {SQL} disagree: {nes} of {len(queries)} queries -- they should never)")
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


def report(results: dict, concurrency: list[int]) -> str:
    m = results.get("meta", {}).get("machine", {})
    # the node that served: a --reuse run's (its marker may name only the node directory), else the load's
    es_node = next((r[k]["es_node"] for r in results.get("systems", {}).values() for k in ("reuse", "load")
                    if isinstance(r.get(k), dict) and r[k].get("es_node")), None)
    parts = [
        f"records: {results.get('data', {}).get('records')}   machine: {m.get('cpus')} CPUs, {m.get('cpu', '')}, "
        f"{m.get('mem_mb', '?')} MB" + (f"   Elasticsearch {es_node.get('version')} heap {es_node.get('heap')}"
                                        if es_node else ""),
        "a/b = a's figure / b's: for 'higher' rows a ratio > 1 favours a, for 'lower' rows < 1 does.",
        summary_table(results, concurrency),
        "",
        table(results, concurrency),
        "",
        hits_table(results),
    ]
    diffs = es_sqlite_diffs(results)
    if diffs is not None:
        results["es_vs_sqlite_hit_diffs"] = diffs
        parts.append("")
        if diffs:
            parts.append(f"!! hit counts differ between {ES} and {SQL} on {len(diffs)} queries:")
            parts += [f"   #{d['n']} {d['kind']}: {d['cql']}   es={d['es']} sqlite={d['sqlite']}" for d in diffs]
        else:
            parts.append(f"hit counts: {ES} and {SQL} agree on all {len(results['workload'])} queries")
    parts += [
        "",
        "time per query kind, single pass (sum of the kind's queries, ms; includes 10 MARCXML records)",
        kinds_table(results),
    ]
    for n, r in results.get("systems", {}).items():
        rows = (r.get("seq") or {}).get("per_query")
        if rows:    # results before per-query latencies have none
            parts += ["", f"{n}, sequential phase:", per_query.slowest_text(rows, k=8)]
    for n, r in results.get("systems", {}).items():
        if r.get("error"):
            parts.append(f"!! {n}: {r['error']}")
        for prob in r.get("problems", []):
            parts.append(f"!! {n}: {prob}")
        if (r.get("load") or {}).get("warning"):
            parts.append(f"!! {n}: {r['load']['warning']}")
    return "\n".join(parts)


def _legacy_names(results: dict) -> dict:
    """Results written before the Elasticsearch backend call the SQLite system "unioncat"."""
    sy = results.get("systems", {})
    if "unioncat" in sy and SQL not in sy:
        results["systems"] = {(SQL if k == "unioncat" else k): v for k, v in sy.items()}
    return results
