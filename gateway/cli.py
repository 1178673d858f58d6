"""The `unioncat` command."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

DATA_DIR_ENV = "UNIONCAT_DATA_DIR"


def _data_dir(args) -> Path:
    d = args.data_dir or os.environ.get(DATA_DIR_ENV)
    if not d:
        sys.exit(f"unioncat: no data directory: give --data-dir DIR or set {DATA_DIR_ENV}")
    return Path(d)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", metavar="DIR",
                   help=f"where the catalog lives (default: ${DATA_DIR_ENV})")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="unioncat",
        description="Union-catalog gateway: load member libraries' MARC records into one union catalog "
        "and search it over SRU (CQL).",
    )
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")

    p = sub.add_parser("ingest", help="load one library's MARC files (ISO 2709 or MARCXML, .gz accepted)",
                       description="Load MARC records of one member library. Records are merged into union records "
                       "with other libraries' records of the same manifestation; bad records are quarantined "
                       "(DATA_DIR/quarantine/) with offset and reason. Safe to re-run after an interruption.")
    _common(p)
    p.add_argument("--library", required=True, metavar="CODE", help="member library code, e.g. iizuka")
    p.add_argument("--full", action="store_true",
                   help="the files are the library's whole catalog: withdraw its records that are missing")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes preparing ISO 2709 records (default: cores - 1; 0 = none)")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")

    p = sub.add_parser("serve", help="serve SRU (1.1, 1.2, 2.0) at /sru and /sru/{database}",
                       description="Serve the catalog over HTTP: SRU at /sru (all libraries) and /sru/{library} "
                       "(records held by that library).")
    _common(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8210)

    p = sub.add_parser("demo", help="load sample records of three libraries and serve them",
                       description="Write sample MARC files for three member libraries (both 880 conventions), "
                       "ingest them and serve SRU. Uses --data-dir, else $UNIONCAT_DATA_DIR, else ./demo-data.")
    _common(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8210)
    p.add_argument("--no-serve", action="store_true", help="only load the records")

    p = sub.add_parser("search", help="run a CQL query against the catalog and print the hits")
    _common(p)
    p.add_argument("query")
    p.add_argument("--max", type=int, default=10)

    p = sub.add_parser("stats", help="print record counts")
    _common(p)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.cmd is None:
        ap.print_help()
        return 2
    return {"ingest": cmd_ingest, "serve": cmd_serve, "demo": cmd_demo, "search": cmd_search,
            "stats": cmd_stats}[args.cmd](args)


def _print_counts(res, as_json: bool) -> None:
    c = res.counts.as_dict()
    if as_json:
        print(json.dumps({**c, "seconds": round(res.seconds, 3), "interrupted": res.interrupted,
                          "quarantine_file": str(res.quarantine_file) if res.quarantine_file else None}))
        return
    rate = c["read"] / res.seconds if res.seconds else 0
    print(f"read {c['read']}, added {c['added']}, updated {c['updated']}, unchanged {c['unchanged']}, "
          f"withdrawn {c['withdrawn']}, merged {c['merged']}, quarantined {c['quarantined']}"
          + (f", deletions of unknown records {c['deleted_unknown']}" if c["deleted_unknown"] else "")
          + f" ({res.seconds:.1f} s, {rate:.0f} records/s)")
    if res.quarantine_file:
        print(f"quarantined records: {res.quarantine_file}")
    if res.interrupted:
        print("interrupted: committed batches are kept; run the same command again to finish")


def cmd_ingest(args) -> int:
    from indexers.ingest import ingest

    for f in args.files:
        if not f.exists():
            print(f"unioncat ingest: {f}: no such file", file=sys.stderr)
            return 2
    res = ingest(_data_dir(args), args.library, args.files, full=args.full, quiet=args.quiet, workers=args.workers)
    _print_counts(res, args.json)
    return 130 if res.interrupted else 0


def cmd_serve(args) -> int:
    from .app import run_server

    data_dir = _data_dir(args)
    if not (data_dir / "catalog.sqlite").exists():
        print(f"unioncat serve: {data_dir} holds no catalog yet (run unioncat ingest first)", file=sys.stderr)
        return 2
    run_server(data_dir, args.host, args.port)
    return 0


def cmd_demo(args) -> int:
    from indexers.ingest import ingest

    from .demo import write_demo_files

    data_dir = Path(args.data_dir or os.environ.get(DATA_DIR_ENV) or "demo-data")
    files = write_demo_files(data_dir / "demo-input")
    for lib, path in files.items():
        res = ingest(data_dir, lib, [path], full=True, quiet=True)
        print(f"{lib}: ", end="")
        _print_counts(res, False)
    if args.no_serve:
        return 0
    from .app import run_server

    print(f"try: curl 'http://{args.host}:{args.port}/sru?query=dc.title%3D図書館&maximumRecords=3'")
    run_server(data_dir, args.host, args.port)
    return 0


def cmd_search(args) -> int:
    from indexers.backends.sqlite_index import SqliteCatalog
    from indexers.query_model import QueryError
    from sru.cql import parse_cql

    cat = SqliteCatalog(_data_dir(args) / "catalog.sqlite")
    try:
        q = parse_cql(args.query, cat.config)
        res = cat.search_sync(q)
    except QueryError as e:
        print(f"diagnostic {e.code}: {e.message}", file=sys.stderr)
        return 1
    print(f"{res.total} hits")
    for r in cat.fetch_sync(cat.page_sync(res, 0, args.max)):
        title = " ".join(sf.value for f in r.marc.get_fields("245") for sf in f.subfields if sf.code in "ab")
        vern = [sf.value for f in r.marc.get_fields("880") if (f.get("6") or "").startswith("245")
                for sf in f.subfields if sf.code == "a"]
        libs = sorted({h.library for h in r.holdings})
        print(f"{r.id}\t{title}" + (f" = {vern[0]}" if vern else "") + f"\t[{', '.join(libs)}]")
    return 0


def cmd_stats(args) -> int:
    from indexers.store import connect

    path = _data_dir(args) / "catalog.sqlite"
    if not path.exists():
        print("no catalog", file=sys.stderr)
        return 2
    conn = connect(path, readonly=True)
    unions = conn.execute("SELECT COUNT(*) FROM doc").fetchone()[0]
    print(f"union records: {unions}")
    for lib, n in conn.execute("SELECT library, COUNT(*) FROM source GROUP BY library ORDER BY library"):
        print(f"  {lib}: {n} records")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
