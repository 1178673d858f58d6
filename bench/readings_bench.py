"""Ingest speed with readings (issue 16): records/s of `unioncat ingest` into the
embedded index for this tree against another tree (e.g. main without readings), on
two samples of the LoC records (bench/loc_data.py): the first N records (the real
mix, ~3% Japanese) and the first N Japanese ones (008/35-37 = jpn: every record gets
readings, most of their kanji 880s a generated one only when no reading exists).

    python bench/readings_bench.py --baseline /tmp/main-tree [--records 20000]
    python bench/readings_bench.py --queries [--records 20000]    # reading vs kanji p50/p99
    python bench/readings_bench.py --queries --whole              # the same on all 250,000 records

The baseline tree is run with its own sources (PYTHONPATH) and this venv's packages.
Prints one JSON line per sample and tree, and the ratio of the times."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from loc_data import loc_records_path  # noqa: E402


def _records(path: Path):
    """Raw ISO 2709 records (bytes), split on their leader's length."""
    with open(path, "rb") as fh:
        data = fh.read()
    i = 0
    while i + 5 <= len(data):
        try:
            n = int(data[i:i + 5])
        except ValueError:
            return
        yield data[i:i + n]
        i += n


def _lang(raw: bytes) -> bytes:
    base = int(raw[12:17])
    d = 24
    while raw[d:d + 1] != b"\x1e" and d + 12 <= base:
        if raw[d:d + 3] == b"008":
            start = base + int(raw[d + 7:d + 12])
            return raw[start + 35:start + 38]
        d += 12
    return b""


def samples(n: int, out: Path) -> dict[str, Path]:
    src = loc_records_path()
    mixed, jpn = out / f"mixed-{n}.mrc", out / f"jpn-{n}.mrc"
    if not (mixed.exists() and jpn.exists()):
        with open(mixed, "wb") as m, open(jpn, "wb") as j:
            got_m = got_j = 0
            for raw in _records(src):
                if got_m < n:
                    m.write(raw)
                    got_m += 1
                if got_j < n and _lang(raw) == b"jpn":
                    j.write(raw)
                    got_j += 1
                if got_m >= n and got_j >= n:
                    break
    return {"mixed": mixed, "jpn": jpn}


def ingest(tree: Path, sample: Path) -> dict:
    d = Path(tempfile.mkdtemp(prefix="readings-bench-"))
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "ingest", "--data-dir", str(d), "--library", "loc",
                        "--json", str(sample)], capture_output=True, text=True, cwd=tree, env=env)
    seconds = time.perf_counter() - t0
    shutil.rmtree(d, ignore_errors=True)
    if r.returncode != 0:
        raise SystemExit(r.stderr[-2000:])
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return {"read": out["read"], "seconds": round(seconds, 2), "records_per_s": round(out["read"] / seconds, 1)}


QUERY_PAIRS = [  # a reading query and a kanji query of about the same hit count
    ("dc.title=toshokan", "dc.title=図書館"), ("dc.title=としょかん", "dc.title=図書館"),
    ("dc.title=kenkyū", "dc.title=研究"), ("dc.title=けんきゅう", "dc.title=研究"),
    ("dc.title=rekishi", "dc.title=歴史"), ("dc.title=れきし", "dc.title=歴史"),
]


def queries(sample: Path, runs: int) -> None:
    """p50/p99 (ms) of reading against kanji queries on the embedded index of the
    Japanese sample."""
    sys.path.insert(0, str(ROOT))
    from indexers.backends.sqlite_index import SqliteCatalog
    from indexers.ingest import db_path
    from indexers.ingest import ingest as do_ingest
    from sru.cql import parse_cql

    d = Path(tempfile.mkdtemp(prefix="readings-q-"))
    do_ingest(d, "loc", [sample], quiet=True)
    cat = SqliteCatalog(db_path(d))

    def timing(q: str) -> dict:
        query = parse_cql(q)
        hits = cat.search_sync(query).total
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            cat.search_sync(query)
            ts.append((time.perf_counter() - t0) * 1000)
        ts.sort()
        return {"query": q, "hits": hits, "p50_ms": round(ts[len(ts) // 2], 3),
                "p99_ms": round(ts[min(len(ts) - 1, int(len(ts) * 0.99))], 3)}

    for reading, kanji in QUERY_PAIRS:
        print(json.dumps({"reading": timing(reading), "kanji": timing(kanji)}, ensure_ascii=False), flush=True)
    cat.close()
    shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", type=Path, help="a source tree without readings (git archive main)")
    ap.add_argument("--queries", action="store_true", help="search p50/p99 of reading vs kanji queries instead")
    ap.add_argument("--whole", action="store_true",
                    help="with --queries: index the whole LoC file (250,000 records), not the Japanese sample")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=2, help="ingest runs of each tree per sample")
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "readings-bench")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    if a.queries:
        queries(loc_records_path() if a.whole else samples(a.records, a.work)["jpn"], a.runs)
        return
    if a.baseline is None:
        raise SystemExit("--baseline is required for the ingest comparison")
    for name, path in samples(a.records, a.work).items():
        # alternated, twice each, the faster run of each kept: a shared machine's noise
        # and a cold file cache weigh on both sides alike
        runs: dict[str, list[dict]] = {"baseline": [], "readings": []}
        for _ in range(a.repeat):
            runs["baseline"].append(ingest(a.baseline, path))
            runs["readings"].append(ingest(ROOT, path))
        base, new = (min(runs[k], key=lambda r: r["seconds"]) for k in ("baseline", "readings"))
        print(json.dumps({"sample": name, "baseline": base, "readings": new,
                          "time_ratio": round(new["seconds"] / base["seconds"], 2),
                          "all_seconds": {k: [r["seconds"] for r in v] for k, v in runs.items()}}), flush=True)


if __name__ == "__main__":
    main()
