"""Ingest into Elasticsearch with the record store in SQLite vs in PostgreSQL (issue 18),
side by side in one run on the same LoC records.

One run starts a single-node Elasticsearch (tools/elasticsearch_node.py) and a
PostgreSQL (tools/postgres_node.py: fsync and synchronous_commit off, as for the tests)
in temp dirs, writes the first ``--records`` LoC records to a file, and runs
``unioncat ingest --es-url ... --quiet --json`` into a fresh data dir (and a fresh index)
with the store in ``DATA_DIR/catalog.sqlite`` (``sqlite-store``) and with
``--store-db postgresql://...`` (``pg-store``, a fresh database each time), in the order
sqlite, pg, pg, sqlite (``--rounds 2``), so that a drift in the machine's load falls on
both. It prints records/s of each ingest, the median per store, the ratio pg/sqlite and
the load average before and after each ingest, writes JSON with ``--out``, and stops both
servers by PID (also on errors).

``--baseline DIR`` (a checkout of an earlier commit, e.g. ``git worktree add`` or ``git
archive`` of it) adds a third kind, ``pg-store-baseline``: the same ingest with the
PostgreSQL store run from DIR's code, in each round next to the others (sqlite, pg,
baseline; then baseline, pg, sqlite), so that a change is measured against what it
replaces in the same run.

usage::

    python bench/es_store_bench.py --records 20000 --out bench/results-es-store-20k.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "bench"))


def first_records(src: Path, dest: Path, n: int) -> int:
    """The first ``n`` ISO 2709 records of ``src`` into ``dest``; how many were written."""
    count = 0
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        carry = b""
        while count < n:
            chunk = fin.read(1 << 20)
            if not chunk:
                break
            carry += chunk
            while count < n:
                end = carry.find(b"\x1d")
                if end < 0:
                    break
                fout.write(carry[:end + 1])
                carry = carry[end + 1:]
                count += 1
    return count


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def ingest(path: Path, es_url: str, store_url: str | None, timeout: float, sides: dict[str, int],
           code: Path = REPO) -> dict:
    """One ingest; ``sides``: the servers (name -> PID) whose CPU seconds are counted too."""
    import procmon

    data_dir = Path(tempfile.mkdtemp(prefix="unioncat-bench-store-"))
    index = f"bench-store-{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, "-m", "gateway.cli", "ingest", "--data-dir", str(data_dir), "--es-url", es_url,
            "--es-index", index, "--library", "loc", "--quiet", "--json", str(path)]
    if store_url:
        argv += ["--store-db", store_url]
    load_before = os.getloadavg()
    side0 = {k: procmon.tree_cpu_s(pid) for k, pid in sides.items()}
    cpu0 = _children_cpu_s()
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=code)
    seconds = time.perf_counter() - t0
    cpu = _children_cpu_s() - cpu0
    side = {f"{k}_cpu_s": round(procmon.tree_cpu_s(pid) - side0[k], 1) for k, pid in sides.items()}
    shutil.rmtree(data_dir, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"ingest failed ({proc.returncode}): {proc.stderr[-2000:]}")
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"seconds": round(seconds, 2), "read": counts.get("read"), "added": counts.get("added"),
            "rec_per_s": round(counts["read"] / seconds, 1), "ingest_cpu_s": round(cpu, 1), **side,
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()], "index": index}


def _commit(repo: Path) -> str | None:
    """The checkout's commit, with "+dirty" when files differ from it (None: not a git checkout)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=repo,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=repo).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=2, help="each round: sqlite, pg (then pg, sqlite, ...)")
    ap.add_argument("--data", type=Path, default=None, help="the LoC ISO 2709 file (default: bench/loc_data.py's)")
    ap.add_argument("--heap", default="1g", help="the Elasticsearch heap")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds one ingest may take")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                    help="also ingest with the PostgreSQL store from this checkout's code (pg-store-baseline)")
    a = ap.parse_args(argv)
    kinds = ["sqlite-store", "pg-store"] + (["pg-store-baseline"] if a.baseline else [])

    from elasticsearch_node import ElasticsearchNode
    from postgres_node import PostgresNode, create_database
    from run_bench import host_info

    if a.data is None:
        from loc_data import loc_records_path

        a.data = loc_records_path()
    work = Path(tempfile.mkdtemp(prefix="unioncat-bench-store-"))
    subset = work / f"loc-{a.records}.mrc"
    n = first_records(a.data, subset, a.records)
    es_dir, pg_dir = tempfile.mkdtemp(prefix="unioncat-bench-es-"), tempfile.mkdtemp(prefix="unioncat-bench-pg-")
    es = ElasticsearchNode(es_dir, heap=a.heap)
    pg = PostgresNode(pg_dir)
    results: dict = {"records": n, "host": host_info(), "runs": [], "commit": _commit(REPO),
                     "baseline": str(a.baseline) if a.baseline else None}
    try:
        es.start(timeout=300)
        pg.start()
        order = []
        for r in range(a.rounds):
            order += kinds if r % 2 == 0 else kinds[::-1]
        for i, kind in enumerate(order):
            store_url = None
            if kind != "sqlite-store":
                store_url = create_database(pg.url, f"bench_store_{i}").replace("+asyncpg", "")
            sides = {"es": es.pid or 0, "pg": pg.pid or 0}
            code = a.baseline if kind == "pg-store-baseline" else REPO
            run = {"store": kind, **ingest(subset, es.url, store_url, a.timeout, sides, code)}
            results["runs"].append(run)
            print(f"{kind:17s} {run['seconds']:8.1f} s {run['rec_per_s']:8.1f} rec/s   CPU s: ingest "
                  f"{run['ingest_cpu_s']}, ES {run['es_cpu_s']}, PostgreSQL {run['pg_cpu_s']}   load "
                  f"{run['load_before']} -> {run['load_after']}", flush=True)
    finally:
        es.stop()
        pg.stop()
        for d in (es_dir, pg_dir, work):
            shutil.rmtree(d, ignore_errors=True)
    med = {k: statistics.median(r["rec_per_s"] for r in results["runs"] if r["store"] == k) for k in kinds}
    results["median_rec_per_s"] = med
    results["ratio_pg_over_sqlite"] = round(med["pg-store"] / med["sqlite-store"], 3)
    cpu = {k: statistics.median(r["ingest_cpu_s"] + r["pg_cpu_s"] for r in results["runs"] if r["store"] == k)
           for k in kinds}
    results["median_cpu_s_ingest_plus_pg"] = cpu
    print(f"median rec/s: sqlite-store {med['sqlite-store']:.1f}, pg-store {med['pg-store']:.1f}; "
          f"pg/sqlite {results['ratio_pg_over_sqlite']:.2f}x; median CPU s (ingest + PostgreSQL): "
          f"sqlite-store {cpu['sqlite-store']:.1f}, pg-store {cpu['pg-store']:.1f}")
    if a.baseline:
        results["ratio_baseline_over_sqlite"] = round(med["pg-store-baseline"] / med["sqlite-store"], 3)
        print(f"pg-store-baseline: median {med['pg-store-baseline']:.1f} rec/s "
              f"({results['ratio_baseline_over_sqlite']:.2f}x sqlite-store), median CPU s (ingest + PostgreSQL) "
              f"{cpu['pg-store-baseline']:.1f}")
    if a.out:
        a.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
