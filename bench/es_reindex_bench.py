"""``unioncat reindex`` documents/s with 1, 2, ... building workers, side by side in
one run on one Elasticsearch node (issue 18).

The record store is the input: ``--data-dir`` (a catalog on the Elasticsearch
backend) or ``--store FILE`` (any unioncat catalog.sqlite, e.g. the embedded
backend's from ``bench/z3950_bench.py --keep``: it is copied into the work
directory and marked as an Elasticsearch catalog; the original is not touched).
Each round runs one reindex per worker count, alternating, so a change in the
machine's load hits every count alike.  Measured per run: wall time, documents/s,
CPU seconds of the reindex process tree (the workers included) and of the
Elasticsearch JVM, peak memory, and the load average before it.  Printed as a
table with the ratio against the first worker count, written as JSON.  Not a
pass/fail test.

    python bench/es_reindex_bench.py --store /work/benchdata/z250/unioncat-sqlite/data/catalog.sqlite \\
        --workers 1,2 --rounds 2 --es-heap 2g --out bench/results-es-reindex-250k.json
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(HERE))

import procmon  # noqa: E402

STARTED = procmon.Registry()


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except OSError:
        return "?"


def prepare_store(store: Path, data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    print(f"  copying {store} -> {data_dir}", flush=True)
    shutil.copyfile(store, data_dir / "catalog.sqlite")
    conn = sqlite3.connect(data_dir / "catalog.sqlite")
    conn.execute("INSERT INTO meta(key, value) VALUES ('backend', 'elasticsearch')"
                 " ON CONFLICT(key) DO UPDATE SET value=excluded.value")
    conn.commit()
    conn.close()


def one_run(cmd: list[str], data_dir: Path, url: str, alias: str, workers: int, es_pid: int | None,
            log: Path) -> dict:
    full = [*cmd, "reindex", "--data-dir", str(data_dir), "--backend", "elasticsearch", "--es-url", url,
            "--es-index", alias, "--workers", str(workers)]
    load = os.getloadavg()
    es0 = procmon.tree_cpu_s(es_pid) if es_pid else None
    res = procmon.run_measured(full, log_path=log, timeout=6 * 3600, register=STARTED)
    out = {"workers": workers, "command": " ".join(full), "returncode": res["returncode"],
           "wall_s": round(res["wall_s"], 2), "cpu_s": res["tree_cpu_s"], "peak_rss_mb": res["peak_rss_mb"],
           "peak_tree_rss_mb": res["tree"]["peak_rss_mb"], "loadavg_before": [round(x, 2) for x in load]}
    if es_pid:
        out["es_cpu_s"] = round(procmon.tree_cpu_s(es_pid) - (es0 or 0), 2)
    m = re.search(r"reindexed (\d+) union records into (\S+) in ([\d.]+) s", res["output"])
    if res["returncode"] == 0 and m:
        out["documents"] = int(m.group(1))
        out["docs_per_s"] = round(out["documents"] / res["wall_s"], 1)
        out["cpu_ms_per_doc"] = round(1000 * out["cpu_s"] / max(out["documents"], 1), 3)
        if "es_cpu_s" in out:
            out["es_cpu_ms_per_doc"] = round(1000 * out["es_cpu_s"] / max(out["documents"], 1), 3)
    else:
        out["error"] = res["output"][-2000:]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--data-dir", type=Path, help="a catalog on the Elasticsearch backend (reindexed in place)")
    src.add_argument("--store", type=Path, help="a catalog.sqlite to copy into the work directory")
    ap.add_argument("--es-url", default=None, help="an Elasticsearch node to use (default: start one here)")
    ap.add_argument("--es-pid", type=int, default=None, help="PID of the --es-url node, to measure its CPU")
    ap.add_argument("--es-heap", default="2g", help="heap of the node started here (default 2g)")
    ap.add_argument("--es-index", default="reindex-bench", help="the alias (default reindex-bench)")
    ap.add_argument("--workers", default="1,2", help="worker counts to compare (default 1,2)")
    ap.add_argument("--rounds", type=int, default=1, help="runs per worker count, alternating (default 1)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--unioncat", default=None, help="command for the unioncat CLI (default: this Python -m)")
    ap.add_argument("--out", type=Path, default=HERE / "results-es-reindex.json")
    a = ap.parse_args(argv)
    counts = [int(x) for x in a.workers.split(",") if x.strip()]
    cmd = a.unioncat.split() if a.unioncat else [sys.executable, "-m", "gateway.cli"]
    work = a.workdir or Path(tempfile.mkdtemp(prefix="unioncat-reindex-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    node = None
    node_dir: Path | None = None
    es_pid = None
    result: dict = {"commit": git_commit(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                    "cpus": os.cpu_count(), "workers": counts, "rounds": a.rounds, "runs": []}
    try:
        if a.store:
            data_dir = work / "data"
            prepare_store(a.store, data_dir)
        else:
            data_dir = a.data_dir
        if a.es_url:
            url, es_pid = a.es_url.rstrip("/"), a.es_pid
        else:
            from elasticsearch_node import ElasticsearchNode

            # a directory of its own from mkdtemp (the node's user must reach it)
            node_dir = Path(tempfile.mkdtemp(prefix="unioncat-reindex-bench-es-"))
            node = ElasticsearchNode(node_dir, heap=a.es_heap)
            node.start(timeout=300)
            if node.pid:
                STARTED.add(node.pid)
            url, es_pid = node.url, node.pid
            result["es_heap"] = a.es_heap
            print(f"  Elasticsearch {url} pid {es_pid} (heap {a.es_heap})", flush=True)
        conn = sqlite3.connect(data_dir / "catalog.sqlite")
        result["union_records"] = conn.execute("SELECT COUNT(*) FROM union_rec").fetchone()[0]
        conn.close()
        for r in range(a.rounds):
            for w in counts:
                print(f"== round {r + 1}, {w} worker(s)", flush=True)
                run = one_run(cmd, data_dir, url, a.es_index, w, es_pid, work / f"reindex-{r}-{w}.log")
                run["round"] = r + 1
                result["runs"].append(run)
                print("  ", {k: v for k, v in run.items() if k != "command"}, flush=True)
    finally:
        if node is not None:
            pid = node.pid
            node.stop()
            if pid:
                STARTED.discard(pid)
        STARTED.stop_all()
        if node_dir is not None:
            shutil.rmtree(node_dir, ignore_errors=True)
        if a.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    summary = {}
    for w in counts:
        ok = [r["docs_per_s"] for r in result["runs"] if r["workers"] == w and "docs_per_s" in r]
        if ok:
            runs = [r for r in result["runs"] if r["workers"] == w and "docs_per_s" in r]
            summary[w] = {"docs_per_s_median": statistics.median(ok), "docs_per_s_all": ok,
                          "cpu_ms_per_doc": statistics.median(r["cpu_ms_per_doc"] for r in runs),
                          "es_cpu_ms_per_doc": (statistics.median(r["es_cpu_ms_per_doc"] for r in runs)
                                                if all("es_cpu_ms_per_doc" in r for r in runs) else None)}
    result["summary"] = summary
    a.out.write_text(json.dumps(result, indent=2))
    base = summary.get(counts[0], {}).get("docs_per_s_median")
    print(f"\n{result['union_records']} union records, commit {result['commit']}")
    print("| workers | documents/s (median) | runs | reindex CPU ms/doc | ES CPU ms/doc | vs " f"{counts[0]} |")
    print("|---|---|---|---|---|---|")
    for w, s in summary.items():
        ratio = f"{s['docs_per_s_median'] / base:.2f}x" if base else "-"
        es_ms = f"{s['es_cpu_ms_per_doc']:.2f}" if s["es_cpu_ms_per_doc"] is not None else "-"
        print(f"| {w} | {s['docs_per_s_median']:,.0f} | {', '.join(f'{x:,.0f}' for x in s['docs_per_s_all'])} | "
              f"{s['cpu_ms_per_doc']:.2f} | {es_ms} | {ratio} |")
    print(f"results: {a.out}")
    return 0 if all("error" not in r for r in result["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
