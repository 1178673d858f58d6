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


def _common(p: argparse.ArgumentParser, backend: bool = True) -> None:
    p.add_argument("--data-dir", metavar="DIR",
                   help=f"where the catalog lives (default: ${DATA_DIR_ENV})")
    if not backend:
        return
    g = p.add_argument_group("index backend")
    g.add_argument("--backend", choices=["sqlite", "elasticsearch"], default=None,
                   help="embedded SQLite index (default) or an Elasticsearch cluster")
    g.add_argument("--es-url", action="append", metavar="URL",
                   help="an Elasticsearch node URL (repeatable; implies --backend elasticsearch)")
    g.add_argument("--es-index", metavar="NAME", help="the index alias (default: unioncat)")
    g.add_argument("--config", type=Path, metavar="FILE",
                   help="TOML: backend = \"elasticsearch\" and an [elasticsearch] section (urls, api_key, "
                   "username, password, ca_certs, index, shards, replicas, refresh ...; see "
                   "config/elasticsearch.toml); default DATA_DIR/unioncat.toml when present")


def _es_config(args, data_dir: Path):
    """The EsConfig when the catalog is on Elasticsearch, else None."""
    import tomllib

    cfg_file = args.config or (data_dir / "unioncat.toml")
    file_backend = None
    files = []
    if cfg_file.exists():
        with open(cfg_file, "rb") as fh:
            file_backend = tomllib.load(fh).get("backend")
        files.append(cfg_file)
    elif args.config:
        sys.exit(f"unioncat: {args.config}: no such file")
    stored = _stored(data_dir)
    backend = args.backend or ("elasticsearch" if args.es_url else None) or file_backend or stored.get("backend")
    if backend != "elasticsearch":
        return None
    from indexers.backends.elasticsearch_index import EsConfig

    # the URLs and alias an ingest used are remembered in the store (never credentials):
    # later commands on the data dir need no --es-url
    remembered = {}
    if stored.get("es_urls"):
        remembered = {"urls": json.loads(stored["es_urls"]), "index": stored.get("es_index")}
    try:
        cfg = EsConfig.load(files, **remembered) if remembered and not files else EsConfig.load(files)
        if args.es_url:
            cfg.urls = args.es_url
        if args.es_index:
            cfg.index = args.es_index
        return cfg
    except (ValueError, TypeError) as e:
        sys.exit(f"unioncat: {e}")


def _stored(data_dir: Path) -> dict[str, str]:
    """The store's meta entries (backend, es_urls, es_index), if there is a store."""
    from indexers.store import connect

    path = data_dir / "catalog.sqlite"
    if not path.exists():
        return {}
    try:
        conn = connect(path, readonly=True)
        try:
            return dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('backend', 'es_urls', 'es_index')"))
        finally:
            conn.close()
    except Exception:  # noqa: BLE001 - an old or empty store: the defaults
        return {}


def _catalog(args, data_dir: Path):
    es = _es_config(args, data_dir)
    if es is not None:
        from indexers.backends.elasticsearch_catalog import ElasticsearchCatalog

        return ElasticsearchCatalog(es)
    from indexers.backends.sqlite_index import SqliteCatalog

    return SqliteCatalog(data_dir / "catalog.sqlite")


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

    p = sub.add_parser("serve", help="serve SRU (1.1, 1.2, 2.0) at /sru and /sru/{database}, and Z39.50",
                       description="Serve the catalog over HTTP: SRU at /sru (all libraries) and /sru/{library} "
                       "(records held by that library); and over Z39.50 (databases Default and the library codes).")
    _common(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8210)
    _z3950_port(p)

    p = sub.add_parser("demo", help="load sample records of three libraries and serve them",
                       description="Write sample MARC files for three member libraries (both 880 conventions), "
                       "ingest them and serve SRU. Uses --data-dir, else $UNIONCAT_DATA_DIR, else ./demo-data.")
    _common(p, backend=False)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8210)
    p.add_argument("--no-serve", action="store_true", help="only load the records")
    _z3950_port(p)

    p = sub.add_parser("reindex", help="rebuild the Elasticsearch index from the record store",
                       description="Build a new Elasticsearch index from every union record in the store and "
                       "swap the alias to it atomically; searches keep answering from the old index meanwhile. "
                       "Also the way to recover a lost index.")
    _common(p)

    p = sub.add_parser("sync", help="push union records waiting in the outbox to Elasticsearch",
                       description="Send what an interrupted ingest (or an unavailable cluster) left in the "
                       "outbox; a later ingest does the same before it starts.")
    _common(p)

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
            "stats": cmd_stats, "reindex": cmd_reindex, "sync": cmd_sync}[args.cmd](args)


def _print_counts(res, as_json: bool) -> None:
    c = res.counts.as_dict()
    index = None
    if getattr(res, "index", None) is not None:
        index = {"indexed": res.index.indexed, "deleted": res.index.deleted, "failed": res.index.failed,
                 "pending": res.index_pending, "error": res.index_error}
    if as_json:
        print(json.dumps({**c, "seconds": round(res.seconds, 3), "interrupted": res.interrupted,
                          "quarantine_file": str(res.quarantine_file) if res.quarantine_file else None,
                          **({"elasticsearch": index} if index else {})}))
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
    if index:
        print(f"elasticsearch: indexed {index['indexed']}, deleted {index['deleted']}, rejected {index['failed']}"
              + (f", {index['pending']} waiting in the outbox" if index["pending"] else ""))
        if index["failed"]:
            print("rejected documents are kept in the store (table es_failed); `unioncat reindex` retries them")
        if index["pending"]:
            print(f"elasticsearch unavailable: {index['error']}\n"
                  "the records are stored; run `unioncat sync` (or the next ingest) when the cluster is back")


def cmd_ingest(args) -> int:
    from indexers.ingest import ingest

    for f in args.files:
        if not f.exists():
            print(f"unioncat ingest: {f}: no such file", file=sys.stderr)
            return 2
    from indexers.ingest import BackendMismatch, Busy

    data_dir = _data_dir(args)
    try:
        res = ingest(data_dir, args.library, args.files, full=args.full, quiet=args.quiet, workers=args.workers,
                     es=_es_config(args, data_dir))
    except (BackendMismatch, Busy) as e:
        print(f"unioncat ingest: {e}", file=sys.stderr)
        return 2
    _print_counts(res, args.json)
    if res.interrupted:
        return 130
    return 75 if res.index_pending else 0  # 75: EX_TEMPFAIL, try `unioncat sync` later


def _es_writer(args, cmd: str, not_es: str):
    """(data_dir, EsConfig, writer lock) for a command that writes to an
    Elasticsearch catalog, or the exit code after saying why not."""
    from indexers.ingest import Busy, db_path, writer_lock

    data_dir = _data_dir(args)
    es = _es_config(args, data_dir)
    if es is None:
        print(f"unioncat {cmd}: the catalog is on the embedded index; {not_es}", file=sys.stderr)
        return 2
    if not db_path(data_dir).exists():
        print(f"unioncat {cmd}: {data_dir} holds no record store", file=sys.stderr)
        return 2
    try:
        return data_dir, es, writer_lock(data_dir)
    except Busy as e:
        print(f"unioncat {cmd}: {e}", file=sys.stderr)
        return 2


def cmd_reindex(args) -> int:
    from indexers.backends.elasticsearch_index import reindex
    from indexers.ingest import db_path

    got = _es_writer(args, "reindex", "reindex rebuilds an Elasticsearch index "
                     "(give --backend elasticsearch --es-url URL)")
    if isinstance(got, int):
        return got
    data_dir, es, lock = got
    try:
        rep = reindex(db_path(data_dir), es)
    except Exception as e:  # noqa: BLE001 - the cluster's errors, said in one line
        print(f"unioncat reindex: failed, the old index (if any) still answers: {e}", file=sys.stderr)
        return 75
    finally:
        lock.close()
    print(f"reindexed {rep.documents} union records into {rep.index} in {rep.seconds:.1f} s"
          + (f" (replaced {rep.previous})" if rep.previous else ""))
    return 0


def cmd_sync(args) -> int:
    from indexers.backends.elasticsearch_index import IndexUnavailable, Pusher
    from indexers.ingest import db_path

    got = _es_writer(args, "sync", "nothing to push")
    if isinstance(got, int):
        return got
    data_dir, es, lock = got
    pusher = Pusher(db_path(data_dir), es)
    try:
        rep = pusher.drain()
    except IndexUnavailable as e:
        print(f"unioncat sync: {e}", file=sys.stderr)
        return 75
    finally:
        pusher.close()
        lock.close()
    print(f"indexed {rep.indexed}, deleted {rep.deleted}, rejected {rep.failed}")
    return 0


def _z3950_port(p) -> None:
    p.add_argument("--z3950-port", type=int, default=2100, metavar="PORT",
                   help="also serve Z39.50 on --host:PORT (default 2100; 0 = no Z39.50)")
    p.add_argument("--event-loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                   help="auto (default): uvloop when installed (the [fast] extra), else asyncio's own loop")
    p.add_argument("--z3950-workers", type=int, default=None, metavar="N",
                   help="processes answering Z39.50 on the port (SO_REUSEPORT; default: one per CPU)")
    p.add_argument("--z3950-worker-of", type=int, default=None, help=argparse.SUPPRESS)


def _z3950_workers(args, data_dir: Path) -> dict:
    """run_server's worker options: how many Z39.50 processes, and their command line."""
    from .z3950_workers import worker_argv

    n = args.z3950_workers if args.z3950_workers is not None else len(os.sched_getaffinity(0))
    if n < 1:
        sys.exit("unioncat: --z3950-workers must be at least 1")
    return {"z3950_workers": n,
            "z3950_worker_argv": lambda port: worker_argv(args, data_dir, args.host, port, os.getpid())}


def cmd_serve(args) -> int:
    from .app import run_server

    data_dir = _data_dir(args)
    es = _es_config(args, data_dir)
    if es is None and not (data_dir / "catalog.sqlite").exists():
        print(f"unioncat serve: {data_dir} holds no catalog yet (run unioncat ingest first)", file=sys.stderr)
        return 2
    if args.z3950_worker_of is not None:          # a Z39.50 worker of a serving process
        from .app import use_event_loop
        from .z3950_workers import run_worker

        use_event_loop(args.event_loop)
        run_worker(_catalog(args, data_dir), args.host, args.z3950_port, args.z3950_worker_of)
        return 0
    run_server(data_dir, args.host, args.port, catalog=_catalog(args, data_dir) if es else None,
               z3950_port=args.z3950_port or None, event_loop=args.event_loop, **_z3950_workers(args, data_dir))
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
    run_server(data_dir, args.host, args.port, z3950_port=args.z3950_port or None, event_loop=args.event_loop,
               **_z3950_workers(args, data_dir))
    return 0


def cmd_search(args) -> int:
    import asyncio

    from indexers.backend import BackendUnavailable
    from indexers.query_model import QueryError
    from sru.cql import parse_cql

    data_dir = _data_dir(args)
    cat = _catalog(args, data_dir)

    async def run():
        try:
            q = parse_cql(args.query, cat.config)
            res = await cat.search(q)
            return res, await cat.fetch(await cat.page(res, 0, args.max))
        finally:
            if hasattr(cat, "aclose"):
                await cat.aclose()

    try:
        res, recs = asyncio.run(run())
    except QueryError as e:
        print(f"diagnostic {e.code}: {e.message}", file=sys.stderr)
        return 1
    except BackendUnavailable as e:
        print(f"diagnostic 1: {e}", file=sys.stderr)
        return 1
    print(f"{res.total} hits")
    for r in recs:
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
    unions = conn.execute("SELECT COUNT(*) FROM union_rec").fetchone()[0]
    print(f"union records: {unions}")
    for lib, n in conn.execute("SELECT library, COUNT(*) FROM source GROUP BY library ORDER BY library"):
        print(f"  {lib}: {n} records")
    if _es_config(args, _data_dir(args)) is not None:
        import asyncio

        cat = _catalog(args, _data_dir(args))

        async def count():
            try:
                return await cat.count()
            finally:
                await cat.aclose()

        from indexers.backend import BackendUnavailable

        pending = conn.execute("SELECT COUNT(*) FROM es_outbox").fetchone()[0]
        failed = conn.execute("SELECT COUNT(*) FROM es_failed").fetchone()[0]
        try:
            docs = asyncio.run(count())
        except BackendUnavailable as e:
            docs = f"? ({e})"
        print(f"elasticsearch: {docs} documents, {pending} waiting in the outbox, {failed} rejected")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
