"""``--store-db URL``: the record store in PostgreSQL (issue 18; indexers/store_sql.py).

Given to ``unioncat ingest``, ``reindex``, ``sync``, ``stats`` and ``serve`` (with the
Elasticsearch backend), it names the database that holds the record store instead of
DATA_DIR/catalog.sqlite: ingests on several machines write one catalog, and stateless
gateways serve ``/oai`` and ``local.added`` from it. Like ``--result-sets-db`` it is an
option, never written into a file by unioncat; a password is best left to libpq
(``PGPASSWORD``, ``~/.pgpass``, ``PGSERVICE``) rather than put in the URL."""
from __future__ import annotations

import sys
from pathlib import Path

STORE_DB_HELP = ("keep the record store in this PostgreSQL database (postgresql://...; Elasticsearch backend "
                 "only) instead of DATA_DIR/catalog.sqlite: ingests on several machines write one catalog, "
                 "gateways serve /oai and local.added from it (docs/elasticsearch.md)")


def add_store_db(p) -> None:
    p.add_argument("--store-db", default=None, metavar="URL", help=STORE_DB_HELP)


def store_db(args) -> str | None:
    """The --store-db URL, checked (exit 2 with one line when it is not a postgresql:// URL)."""
    from indexers.store_sql import is_store_url

    url = getattr(args, "store_db", None)
    if url and not is_store_url(url):
        print(f"unioncat: --store-db {url!r}: a postgresql:// URL is needed", file=sys.stderr)
        sys.exit(2)
    return url or None


def _open_store(data_dir: Path, url: str | None):
    """A read-only connection to the record store (the --store-db database, else the data
    directory's file), or None when there is no store file (a database is always tried).
    Raises what the store raises (store_sql.store_errors) when it cannot be read."""
    from indexers.store_sql import open_connection

    if not url and not (data_dir / "catalog.sqlite").exists():
        return None
    return open_connection(url or (data_dir / "catalog.sqlite"), readonly=True)


def stored_meta(data_dir: Path, url: str | None) -> dict[str, str]:
    """The store's meta entries (backend, es_urls, es_index), if there is a store."""
    try:
        conn = _open_store(data_dir, url)
        if conn is None:
            return {}
        try:
            return dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('backend', 'es_urls', 'es_index')"))
        finally:
            conn.close()
    except Exception:  # noqa: BLE001 - an old, empty or unreachable store: the defaults (said when used)
        return {}


def open_store_reader(args, data_dir: Path):
    """A read-only connection to the record store (the --store-db database, else the data
    directory's file), or None after saying why there is none."""
    from indexers.ingest import shown_store
    from indexers.store_sql import store_errors

    url = store_db(args)
    conn = None
    try:
        conn = _open_store(data_dir, url)
        if conn is None:
            print("no catalog", file=sys.stderr)
            return None
        conn.execute("SELECT 1 FROM union_rec LIMIT 1").fetchall()
        return conn
    except store_errors() as e:
        if conn is not None:
            conn.close()
        print(f"no catalog: the record store {shown_store(data_dir, url)} cannot be read ({type(e).__name__})",
              file=sys.stderr)
        return None


# --------------------------------------------------------------------------- copy-store

def add_copy_store(sub, common) -> None:
    """The ``copy-store`` command's parser (``common``: cli._common, for --data-dir)."""
    p = sub.add_parser("copy-store", help="copy the data directory's record store into an empty PostgreSQL store",
                       description="Copy DATA_DIR/catalog.sqlite's record store (union records, source records, "
                       "match keys, display records, runs, the Elasticsearch outbox) into an empty PostgreSQL "
                       "database, for --store-db. The data directory is not changed. An embedded catalog is "
                       "converted to an Elasticsearch one: build its index afterwards with `unioncat reindex "
                       "--store-db URL --es-url URL` (docs/elasticsearch.md).")
    common(p, backend=False)
    p.add_argument("--store-db", required=True, metavar="URL",
                   help="the PostgreSQL database to copy into (postgresql://...; it must hold no record store)")
    p.add_argument("--es-url", action="append", metavar="URL",
                   help="an embedded catalog: the Elasticsearch node its index will be on, remembered in the "
                   "copy as an ingest remembers it (repeatable)")
    p.add_argument("--es-index", metavar="NAME", help="an embedded catalog: the index alias (default: unioncat)")
    p.add_argument("--quiet", action="store_true", help="no progress")


def cmd_copy_store(args, data_dir: Path) -> int:
    from indexers.ingest import Busy, StorageError, _why, db_path, writer_lock
    from indexers.store_copy import CopyError, TargetNotEmpty, copy_store
    from indexers.store_sql import shown_url, store_errors

    url = store_db(args)
    assert url is not None                          # required by the parser
    source = db_path(data_dir)
    if not source.is_file():
        print(f"unioncat copy-store: {data_dir} holds no record store (no catalog.sqlite)", file=sys.stderr)
        return 2
    try:
        lock = writer_lock(data_dir, url)           # no ingest changes the source, or writes the target
    except Busy as e:
        print(f"unioncat copy-store: {e}", file=sys.stderr)
        return 2
    except StorageError as e:
        print(f"unioncat copy-store: {e}", file=sys.stderr)
        return 74
    tty = sys.stderr.isatty()

    def progress(table: str, done: int, total: int) -> None:
        if not args.quiet:
            end = "\r" if tty and done < total else "\n"
            print(f"copy-store: {table} {done:,} of {total:,} rows", end=end, file=sys.stderr, flush=True)

    target = shown_url(url)
    try:
        rep = copy_store(source, url, es_urls=args.es_url, es_index=args.es_index, progress=progress)
    except TargetNotEmpty as e:
        print(f"unioncat copy-store: the record store {target} is not empty: {e}; give an empty database",
              file=sys.stderr)
        return 2
    except CopyError as e:
        print(f"unioncat copy-store: {e}; nothing was copied", file=sys.stderr)
        return 2
    except store_errors() as e:
        print(f"unioncat copy-store: failed, nothing was copied: {_why(e)}", file=sys.stderr)
        return 74
    except KeyboardInterrupt:
        print("unioncat copy-store: interrupted; nothing was copied", file=sys.stderr)
        return 130
    finally:
        lock.close()
    r = rep.rows
    print(f"copied the record store of {data_dir} into {target}: {r['union_rec']} union records, {r['source']} "
          f"source records, {r['run']} runs, {r['es_outbox']} waiting in the outbox ({rep.seconds:.1f} s)")
    if rep.converted:
        es = " ".join(f"--es-url {u}" for u in args.es_url) if rep.es_recorded else "--es-url URL"
        print(f"the catalog was on the embedded index; it is an Elasticsearch catalog in {target}: build its "
              f"index with `unioncat reindex --store-db {target} {es}`")
    if rep.harvest_sources:
        print(f"the harvest state of {rep.harvest_sources} sources stays in {source}: harvests are not run on a "
              "store in PostgreSQL")
    return 0
