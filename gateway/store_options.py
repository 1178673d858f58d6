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


def stored_meta(data_dir: Path, url: str | None) -> dict[str, str]:
    """The store's meta entries (backend, es_urls, es_index), if there is a store."""
    from indexers.store_sql import open_connection

    if not url and not (data_dir / "catalog.sqlite").exists():
        return {}
    try:
        conn = open_connection(url or (data_dir / "catalog.sqlite"), readonly=True)
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
    from indexers.store_sql import open_connection, store_errors

    url = store_db(args)
    if not url and not (data_dir / "catalog.sqlite").exists():
        print("no catalog", file=sys.stderr)
        return None
    try:
        conn = open_connection(url or (data_dir / "catalog.sqlite"), readonly=True)
        conn.execute("SELECT 1 FROM union_rec LIMIT 1").fetchall()
        return conn
    except store_errors() as e:
        print(f"no catalog: the record store {shown_store(data_dir, url)} cannot be read ({type(e).__name__})",
              file=sys.stderr)
        return None
