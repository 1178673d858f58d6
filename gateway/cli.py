"""The `unioncat` command."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .serve_options import CircError, _api_workers, _serve_sru_options, _sru_workers, _z3950_port, _z3950_workers
from .store_options import add_copy_store, add_store_db, cmd_copy_store, open_store_reader, store_db, stored_meta

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
    stored = stored_meta(data_dir, store_db(args))
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
            cfg.urls = list(dict.fromkeys(args.es_url))     # a URL given twice is one node
        if args.es_index:
            cfg.index = args.es_index
        return cfg
    except (ValueError, TypeError) as e:
        sys.exit(f"unioncat: {e}")


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
    add_store_db(p)
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
    add_store_db(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8210)
    _z3950_port(p)
    _serve_sru_options(p)
    _serve_circ_options(p)

    p = sub.add_parser("demo", help="the whole product on sample data: catalog, Z39.50, circulation API",
                       description="Write sample MARC files for three member libraries (both 880 conventions) "
                       "and ingest them; set up a circulation database (DATA_DIR/circulation.db) with the "
                       "sample patrons, items, staff and calendar of config/samples/ and demo passwords, printed "
                       "on start; then serve SRU, Z39.50 and the circulation API. Uses --data-dir, else "
                       "$UNIONCAT_DATA_DIR, else ./demo-data.")
    _common(p, backend=False)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8210)
    p.add_argument("--no-serve", action="store_true", help="only load the records and the circulation database")
    _z3950_port(p)

    p = sub.add_parser("reindex", help="rebuild the Elasticsearch index from the record store",
                       description="Build a new Elasticsearch index from every union record in the store and "
                       "swap the alias to it atomically; searches keep answering from the old index meanwhile. "
                       "Also the way to recover a lost index.")
    _common(p)
    add_store_db(p)
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes building the documents (default: reindex_workers of the Elasticsearch "
                   "config; 0 there: one per CPU, at most 4); 1 builds them in the reindexing process")

    p = sub.add_parser("sync", help="push union records waiting in the outbox to Elasticsearch",
                       description="Send what an interrupted ingest (or an unavailable cluster) left in the "
                       "outbox; a later ingest does the same before it starts.")
    _common(p)
    add_store_db(p)

    p = sub.add_parser("search", help="run a CQL query against the catalog and print the hits")
    _common(p)
    p.add_argument("query")
    p.add_argument("--max", type=int, default=10)

    p = sub.add_parser("stats", help="print record counts (and the last harvest of each source)")
    _common(p)
    add_store_db(p)

    p = sub.add_parser("harvest", help="harvest partners' catalogues ([harvest.<library>] in the config file)",
                       description="Fetch the records a source publishes (OAI-PMH, SRU or Z39.50; the "
                       "[harvest.<library>] tables of --config FILE or DATA_DIR/unioncat.toml) and ingest them "
                       "as that library's records: incremental by default, resumed where an interrupted run "
                       "stopped; a report per source (docs/harvest.md).")
    _common(p)
    p.add_argument("sources", nargs="*", metavar="LIBRARY", help="the sources to run (default: all)")
    p.add_argument("--full", action="store_true",
                   help="everything the source has; the library's records that no longer come are withdrawn")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--json", action="store_true", help="print the reports as JSON, one a line")

    add_copy_store(sub, _common)
    _circ_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.cmd is None:
        ap.print_help()
        return 2
    return {"ingest": cmd_ingest, "serve": cmd_serve, "demo": cmd_demo, "search": cmd_search,
            "stats": cmd_stats, "reindex": cmd_reindex, "sync": cmd_sync, "circ": cmd_circ,
            "harvest": cmd_harvest,
            "copy-store": lambda a: cmd_copy_store(a, _data_dir(a))}[args.cmd](args)


def _print_counts(res, as_json: bool) -> None:
    c = res.counts.as_dict()
    index = None
    if getattr(res, "index", None) is not None:
        index = {"indexed": res.index.indexed, "deleted": res.index.deleted, "failed": res.index.failed,
                 "pending": res.index_pending, "error": res.index_error}
    if as_json:
        repaired_file = getattr(res, "repaired_file", None)
        print(json.dumps({**c, "seconds": round(res.seconds, 3), "interrupted": res.interrupted,
                          "quarantine_file": str(res.quarantine_file) if res.quarantine_file else None,
                          "repaired_file": str(repaired_file) if repaired_file else None,
                          **({"error": res.error} if getattr(res, "error", None) else {}),
                          **({"elasticsearch": index} if index else {})}))
        return
    rate = c["read"] / res.seconds if res.seconds else 0
    print(f"read {c['read']}, added {c['added']}, updated {c['updated']}, unchanged {c['unchanged']}, "
          f"withdrawn {c['withdrawn']}, merged {c['merged']}, quarantined {c['quarantined']}"
          + (f", deletions of unknown records {c['deleted_unknown']}" if c["deleted_unknown"] else "")
          + (f", repaired {c['repaired']}" if c.get("repaired") else "")
          + f" ({res.seconds:.1f} s, {rate:.0f} records/s)")
    if res.quarantine_file:
        print(f"quarantined records: {res.quarantine_file}")
    if getattr(res, "repaired_file", None):
        print(f"records stored with repairs (what was changed or guessed, and the bytes as read): "
              f"{res.repaired_file}")
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
    from indexers.ingest import BackendMismatch, Busy, StorageError

    data_dir = _data_dir(args)
    try:
        res = ingest(data_dir, args.library, args.files, full=args.full, quiet=args.quiet, workers=args.workers,
                     es=_es_config(args, data_dir), store_url=store_db(args))
    except (BackendMismatch, Busy) as e:
        print(f"unioncat ingest: {e}", file=sys.stderr)
        return 2
    except StorageError as e:  # nothing was started
        print(f"unioncat ingest: {e}", file=sys.stderr)
        return 74  # EX_IOERR
    _print_counts(res, args.json)
    if res.error:
        print(f"unioncat ingest: stopped: {res.error}\n"
              "the batches committed before are kept (the counts above); the batch being written was rolled "
              "back.  Fix the cause and run the same command again.", file=sys.stderr)
        return 74  # EX_IOERR
    if res.interrupted:
        return 130
    return 75 if res.index_pending else 0  # 75: EX_TEMPFAIL, try `unioncat sync` later


def _es_writer(args, cmd: str, not_es: str):
    """(data_dir, EsConfig, writer lock) for a command that writes to an
    Elasticsearch catalog, or the exit code after saying why not."""
    from indexers.ingest import Busy, StorageError, db_path, store_location, writer_lock

    data_dir = _data_dir(args)
    es = _es_config(args, data_dir)
    url = store_db(args)
    if es is None:
        print(f"unioncat {cmd}: the catalog is on the embedded index; {not_es}", file=sys.stderr)
        return 2
    if not url and not db_path(data_dir).exists():
        print(f"unioncat {cmd}: {data_dir} holds no record store", file=sys.stderr)
        return 2
    try:
        return store_location(data_dir, url), es, writer_lock(data_dir, url)
    except Busy as e:
        print(f"unioncat {cmd}: {e}", file=sys.stderr)
        return 2
    except StorageError as e:
        print(f"unioncat {cmd}: {e}", file=sys.stderr)
        return 74


def cmd_reindex(args) -> int:
    from indexers.backends.elasticsearch_index import ReindexFailed
    from indexers.backends.elasticsearch_reindex import reindex

    if args.workers is not None and args.workers < 1:
        print("unioncat reindex: --workers must be 1 or more", file=sys.stderr)
        return 2

    got = _es_writer(args, "reindex", "reindex rebuilds an Elasticsearch index "
                     "(give --backend elasticsearch --es-url URL)")
    if isinstance(got, int):
        return got
    store, es, lock = got
    try:
        rep = reindex(store, es, workers=args.workers)
    except ReindexFailed as e:  # the alias was not moved
        print(f"unioncat reindex: failed: {e}", file=sys.stderr)
        return 75
    except KeyboardInterrupt:
        print("unioncat reindex: interrupted; the alias was not moved", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - anything else, said in one line
        print(f"unioncat reindex: failed, the old index (if any) still answers: {e!r}", file=sys.stderr)
        return 75
    finally:
        lock.close()
    print(f"reindexed {rep.documents} union records into {rep.index} in {rep.seconds:.1f} s"
          f" ({rep.documents / max(rep.seconds, 1e-9):.0f} documents/s, {rep.workers} "
          f"worker{'s' if rep.workers > 1 else ''})" + (f" (replaced {rep.previous})" if rep.previous else ""))
    if rep.rejected:
        print(f"{rep.rejected} documents rejected by the cluster are kept in the store (table es_failed)")
    if rep.dropped:
        print(f"deleted what failed reindexes had left: {', '.join(rep.dropped)}")
    if rep.warning:
        print(f"unioncat reindex: {rep.warning}", file=sys.stderr)
    return 0


def cmd_sync(args) -> int:
    from indexers.backends.elasticsearch_index import IndexUnavailable, Pusher

    got = _es_writer(args, "sync", "nothing to push")
    if isinstance(got, int):
        return got
    store, es, lock = got
    try:
        pusher = Pusher(store, es)
    except Exception as e:  # noqa: BLE001 - the store cannot be opened: said in one line
        lock.close()
        print(f"unioncat sync: cannot open the record store: {type(e).__name__}: {e}", file=sys.stderr)
        return 74
    rep = None
    try:
        rep = pusher.drain()
    except IndexUnavailable as e:
        print(f"unioncat sync: {e}", file=sys.stderr)
        return 75
    except KeyboardInterrupt:
        print("unioncat sync: interrupted; what was acknowledged has left the outbox", file=sys.stderr)
        return 130
    finally:
        pusher.close()
        lock.close()
    print(f"indexed {rep.indexed}, deleted {rep.deleted}, rejected {rep.failed}")
    return 0


def _serve_circ_options(p) -> None:
    g = p.add_argument_group("circulation (the patron and staff API at /api/v1, and its scheduled jobs)")
    g.add_argument("--circ-db", metavar="URL",
                   help="the circulation database (SQLAlchemy async URL; default: $UNIONCAT_CIRC_DB, else "
                   "DATA_DIR/circulation.db when that file exists, which `unioncat circ init` creates); "
                   "without one no API is served")
    g.add_argument("--smtp-host", metavar="HOST",
                   help="send notices over SMTP via HOST (without it the notices job is not scheduled and "
                   "notices stay queued)")
    g.add_argument("--smtp-port", type=int, default=25, metavar="PORT")
    g.add_argument("--smtp-user", metavar="USER", help="SMTP login; password from $UNIONCAT_SMTP_PASSWORD")
    g.add_argument("--mail-from", metavar="ADDRESS", help="sender address of the notices (needed with --smtp-host)")
    g.add_argument("--sip2-port", type=int, default=0, metavar="PORT",
                   help="also serve self-check kiosks over SIP2 on --host:PORT (default 0 = none; kiosk "
                   "accounts are staff accounts with the role kiosk; [sip2] in the --config file: docs/sip2.md)")
    g.add_argument("--api-workers", type=int, default=0, metavar="N",
                   help="also serve the API (/api/v1 only) on --api-port from N processes of its own "
                   "(SO_REUSEPORT; PostgreSQL only; the scheduled jobs still run once per network: "
                   "gateway/api_workers.py)")
    g.add_argument("--api-port", type=int, default=None, metavar="PORT",
                   help="the port of the API workers (default: --port + 1)")
    g.add_argument("--api-worker-of", type=int, default=None, help=argparse.SUPPRESS)
    g.add_argument("--cookie-secure", choices=("auto", "always", "never"), default="auto",
                   help="the session cookie's Secure flag: auto (default) = on unless --host is a loopback "
                   "address; use 'always' behind a TLS proxy on loopback")


def _serve_circ_url(args, data_dir: Path) -> str | None:
    """The circulation database serve uses: --circ-db, $UNIONCAT_CIRC_DB, else
    DATA_DIR/circulation.db when it exists (also what a Z39.50 worker reads availability from)."""
    url = args.circ_db or os.environ.get(CIRC_DB_ENV)
    if not url and (data_dir / "circulation.db").exists():
        url = f"sqlite+aiosqlite:///{(data_dir / 'circulation.db').resolve()}"
    return url


def _serve_circulation(args, data_dir: Path) -> dict:
    """run_server's circulation options from the serve command line (CircError: said in one line)."""
    url = _serve_circ_url(args, data_dir)
    from .ill_service import ConfigError, load_config

    try:
        ill_cfg, ncip_cfg = load_config(args.config or (data_dir / "unioncat.toml"))
    except ConfigError as e:
        raise CircError(str(e)) from None
    sip2 = _serve_sip2(args, data_dir, url)
    if not url:
        if args.smtp_host:
            raise CircError("--smtp-host needs a circulation database (--circ-db URL)")
        if ill_cfg is not None or ncip_cfg is not None:
            raise CircError("[ill] and [ncip] need a circulation database (--circ-db URL)")
        return {}
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
    except ArgumentError:
        raise CircError(f"not a database URL: {url!r}") from None
    if u.get_backend_name() == "sqlite" and (not u.database or not Path(u.database).exists()):
        raise CircError(f"no circulation database at {u.database or url} (run `unioncat circ init` first)")
    from lifecycle.profiles import ProfileError, load_all, network_zone

    try:
        network_zone(load_all())             # one network, one time zone: said before serving
    except ProfileError as e:
        raise CircError(f"policy profiles: {e}") from None
    if u.get_backend_name() == "postgresql":
        from circulation.connections import pool_config

        try:
            pool_config()                        # circulation.toml's [pool]: said before serving
        except (OSError, ValueError) as e:
            raise CircError(str(e)) from None
    mailer = None
    if args.smtp_host:
        if not args.mail_from:
            raise CircError("--smtp-host needs --mail-from ADDRESS")
        from connectors.smtp import Mailer

        try:
            mailer = Mailer(args.smtp_host, args.smtp_port, from_address=args.mail_from,
                            username=args.smtp_user, password=os.environ.get(SMTP_PASSWORD_ENV))
        except ValueError as e:
            raise CircError(str(e)) from None
    elif args.mail_from:
        raise CircError("--mail-from needs --smtp-host HOST")
    secure = {"auto": None, "always": True, "never": False}[args.cookie_secure]
    return {"circ_db": url, "mailer": mailer, "cookie_secure": secure, "ill_config": ill_cfg,
            "ncip_config": ncip_cfg, **sip2}


def _serve_sip2(args, data_dir: Path, circ_url: str | None) -> dict:
    """run_server's SIP2 options (--sip2-port and the [sip2] section of the config file)."""
    if not args.sip2_port:
        return {}
    if args.sip2_port < 0 or args.sip2_port > 65535:
        raise CircError(f"--sip2-port {args.sip2_port}: not a port")
    if not circ_url:
        raise CircError("--sip2-port needs a circulation database (--circ-db URL)")
    from .sip2_server import ConfigError, load_config

    try:
        return {"sip2_port": args.sip2_port, "sip2_config": load_config(args.config or (data_dir / "unioncat.toml"))}
    except ConfigError as e:
        raise CircError(str(e)) from None


def cmd_serve(args) -> int:
    from .app import run_server

    data_dir = _data_dir(args)
    es = _es_config(args, data_dir)
    store = store_db(args)
    if store and es is None:
        print("unioncat serve: --store-db is for the Elasticsearch backend (the embedded index reads "
              "DATA_DIR/catalog.sqlite)", file=sys.stderr)
        return 2
    if args.z3950_worker_of is not None:          # a Z39.50 worker of a serving process
        from .app import use_event_loop
        from .z3950_workers import run_worker

        use_event_loop(args.event_loop)
        from connectors.federation_targets import load_federations
        from indexers.holdings import load_libraries

        run_worker(_catalog(args, data_dir), args.host, args.z3950_port, args.z3950_worker_of,
                   circ_db=_serve_circ_url(args, data_dir), data_dir=data_dir, store_db=store,
                   federation=load_federations(args.config or (data_dir / "unioncat.toml"),
                                               load_libraries().names()))
        return 0
    if args.sru_worker_of is not None:            # an SRU worker of a serving process
        from .app import use_event_loop
        from .sru_workers import run_sru_worker

        use_event_loop(args.event_loop)
        from connectors.federation_targets import load_federations
        from indexers.holdings import load_libraries

        run_sru_worker(data_dir, _catalog(args, data_dir) if es else None, args.host, args.sru_port,
                       args.sru_worker_of, circ_db=_serve_circ_url(args, data_dir),
                       result_sets_db=args.result_sets_db, store_db=store,
                       federation=load_federations(args.config or (data_dir / "unioncat.toml"),
                                                   load_libraries().names()))
        return 0
    try:
        circ = _serve_circulation(args, data_dir)
        api_workers = _api_workers(args, data_dir, circ)
    except CircError as e:
        print(f"unioncat serve: {e}", file=sys.stderr)
        return 2
    if args.api_worker_of is not None:            # an API worker of a serving process
        from .api_workers import run_api_worker
        from .app import use_event_loop

        use_event_loop(args.event_loop)
        run_api_worker(circ["circ_db"], args.host, args.api_port, args.api_worker_of, mailer=circ["mailer"],
                       cookie_secure=circ["cookie_secure"], processes=max(args.api_workers, 1) + 1)
        return 0
    from connectors.federation_targets import FederationConfigError, load_federations
    from connectors.harvest.config import ConfigError, load_sources
    from indexers.holdings import load_libraries
    from lifecycle.profiles import ProfileError, load_all, network_zone

    from .oai import OaiConfigError, load_oai_settings

    try:
        harvest_sources = load_sources(args.config or (data_dir / "unioncat.toml"),
                                       default_zone=network_zone(load_all()).key)   # daily times
        federation = load_federations(args.config or (data_dir / "unioncat.toml"), load_libraries().names())
        oai = load_oai_settings(args.config or (data_dir / "unioncat.toml"))
    except (ConfigError, FederationConfigError, OaiConfigError, ProfileError) as e:
        print(f"unioncat serve: {e}", file=sys.stderr)
        return 2
    if store and harvest_sources:     # harvests write DATA_DIR/catalog.sqlite (connectors/harvest/runner.py)
        print("unioncat serve: [harvest.*] sources are not run with --store-db: harvests write the data "
              "directory's record store; run them where ingest writes DATA_DIR/catalog.sqlite", file=sys.stderr)
        return 2
    if es is None and not (data_dir / "catalog.sqlite").exists():
        if not circ:
            print(f"unioncat serve: {data_dir} holds no catalog yet (run unioncat ingest first)", file=sys.stderr)
            return 2
        # the circulation API does not need records: serve it with an empty catalog, which
        # `unioncat ingest` fills while the server runs
        from indexers.ingest import open_store

        try:
            open_store(data_dir).conn.close()
        except OSError as e:
            print(f"unioncat serve: cannot create a catalog in {data_dir}: {e.strerror or e}", file=sys.stderr)
            return 2
        print(f"no records in {data_dir} yet: SRU and Z39.50 answer from an empty catalog until "
              f"`unioncat ingest --data-dir {data_dir} ...` loads some", flush=True)
    try:
        sru_workers, sru_result_sets = _sru_workers(args, data_dir, _serve_circ_url(args, data_dir))
    except CircError as e:
        print(f"unioncat serve: {e}", file=sys.stderr)
        return 2
    started = [w for w in (api_workers, sru_workers) if w is not None]
    for w in started:
        w.start()
    try:
        run_server(data_dir, args.host, args.port, catalog=_catalog(args, data_dir) if es else None,
                   z3950_port=args.z3950_port or None, event_loop=args.event_loop,
                   **_z3950_workers(args, data_dir), sru_result_sets=sru_result_sets,
                   harvest_sources=harvest_sources, federation=federation, oai=oai, store_db=store,
                   circ_processes=args.api_workers + 1 if api_workers is not None else 1, **circ)
    finally:
        for w in started:
            w.stop()
    return 0


def cmd_demo(args) -> int:
    import asyncio

    from indexers.ingest import ingest

    from .demo import DemoError, setup_circulation, write_demo_files

    data_dir = Path(args.data_dir or os.environ.get(DATA_DIR_ENV) or "demo-data")
    files = write_demo_files(data_dir / "demo-input")
    for lib, path in files.items():
        res = ingest(data_dir, lib, [path], full=True, quiet=True)
        print(f"{lib}: ", end="")
        _print_counts(res, False)
    circ_db = f"sqlite+aiosqlite:///{(data_dir / 'circulation.db').resolve()}"
    try:
        loaded, patrons, staff = asyncio.run(setup_circulation(circ_db))
    except DemoError as e:
        print(f"unioncat demo: {e}", file=sys.stderr)
        return 2
    for line in loaded:
        print(f"circulation {line}")
    base = f"http://{args.host}:{args.port}"
    print(f"\ncirculation API: {base}/api/v1/ (OpenAPI document: {base}/api/v1/openapi.json)")
    width = max(len(f"{p.who} / {p.password}") for p in patrons + staff)
    print("  patrons (card number / password):")
    for p in patrons:
        print(f"    {p.who + ' / ' + p.password:<{width}}  {p.name} ({p.library})")
    print("  staff (username / password):")
    for p in staff:
        print(f"    {p.who + ' / ' + p.password:<{width}}  {p.name} ({p.library}; {p.roles})")
    if args.no_serve:
        return 0
    from .app import run_server

    p = patrons[0]
    print(f"\ntry: curl '{base}/sru?query=dc.title%3D図書館&maximumRecords=3'\n"
          f"     curl -s -X POST {base}/api/v1/login -H 'Content-Type: application/json' "
          f"-d '{{\"card_number\": \"{p.who}\", \"password\": \"{p.password}\"}}'\n", flush=True)
    run_server(data_dir, args.host, args.port, z3950_port=args.z3950_port or None, event_loop=args.event_loop,
               **_z3950_workers(args, data_dir), circ_db=circ_db)
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
    conn = open_store_reader(args, _data_dir(args))
    if conn is None:
        return 2
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
        if isinstance(docs, int) and not pending and docs + failed != unions:
            print(f"elasticsearch: the index does not match the store ({unions} union records): "
                  "run `unioncat reindex`")
    from connectors.harvest.report import describe
    from connectors.harvest.state import last_runs

    for rep in last_runs(conn).values():
        print(describe(rep))
    return 0


def cmd_harvest(args) -> int:
    from connectors.harvest import cli as harvest_cli

    data_dir = _data_dir(args)
    return harvest_cli.run(data_dir, args.config or (data_dir / "unioncat.toml"), args.sources, full=args.full,
                           quiet=args.quiet, as_json=args.json, es=_es_config(args, data_dir))


# --------------------------------------------------------------------------- circ
#
# `unioncat circ ...`: the circulation database (reservations, loans, patrons, staff).

CIRC_DB_ENV = "UNIONCAT_CIRC_DB"
STAFF_PASSWORD_ENV = "UNIONCAT_STAFF_PASSWORD"
SMTP_PASSWORD_ENV = "UNIONCAT_SMTP_PASSWORD"


def _circ_parser(sub) -> None:
    c = sub.add_parser("circ", help="the circulation database: patrons, items, staff, holds, loans",
                       description="Manage the circulation database (SQLite or PostgreSQL). The database is "
                       f"--db URL, else ${CIRC_DB_ENV}, else sqlite+aiosqlite:///DATA_DIR/circulation.db. "
                       "Errors are said in one line, exit status 2.")
    csub = c.add_subparsers(dest="circ_cmd", metavar="COMMAND")

    def db_opts(p):
        p.add_argument("--db", metavar="URL", help=f"SQLAlchemy async URL, e.g. sqlite+aiosqlite:///circ.db or "
                       f"postgresql+asyncpg://user@host/db (default: ${CIRC_DB_ENV} or DATA_DIR/circulation.db)")
        p.add_argument("--data-dir", metavar="DIR", help=f"for the default SQLite file (default: ${DATA_DIR_ENV})")

    p = csub.add_parser("init", help="create the tables and install the libraries and branches of the profiles",
                        description="Create the circulation tables (idempotent) and install the network: the "
                        "city libraries and branches of config/profiles/*.toml and the university partners "
                        "of their [partners.*] sections.")
    db_opts(p)

    p = csub.add_parser("load", help="load a CSV file of patrons, items, staff or calendar entries",
                        description="Upsert the rows of a UTF-8 CSV file (header row; BOM accepted) by their "
                        "natural key. Bad rows are listed with line number and reason and the good rows load. "
                        "Exit status 0 when every row loaded, 1 when some were rejected, 2 when the file "
                        "could not be read. Samples: config/samples/*.csv.")
    p.add_argument("kind", choices=["patrons", "items", "staff", "calendar"])
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    db_opts(p)

    p = csub.add_parser("job", help="run one scheduled job once (shelf_expiry, overdue, purge_cancelled, "
                        "lapse_requests, notices)")
    p.add_argument("name", metavar="NAME")
    g = p.add_argument_group("mail (the notices job)")
    g.add_argument("--smtp-host", metavar="HOST")
    g.add_argument("--smtp-port", type=int, default=25, metavar="PORT")
    g.add_argument("--smtp-user", metavar="USER", help=f"password from ${SMTP_PASSWORD_ENV}")
    g.add_argument("--mail-from", metavar="ADDRESS", help="sender address")
    db_opts(p)

    p = csub.add_parser("history", help="print the audit trail of one request")
    p.add_argument("request_id", type=int, metavar="REQUEST_ID")
    db_opts(p)

    p = csub.add_parser("staff", help="add staff members, set their passwords")
    ssub = p.add_subparsers(dest="staff_cmd", metavar="COMMAND")
    sp = ssub.add_parser("add", help="add a staff member",
                         description=f"The password is read from ${STAFF_PASSWORD_ENV}, else asked twice "
                         "(on a terminal). Roles: circulation, requests, admin, network (network-wide: "
                         "running jobs by hand, with admin), kiosk (a self-check machine's SIP2 login, "
                         "with --branch; docs/sip2.md).")
    sp.add_argument("username")
    sp.add_argument("--library", required=True, metavar="CODE")
    sp.add_argument("--branch", metavar="CODE")
    sp.add_argument("--roles", required=True, metavar="ROLES", help='e.g. "circulation requests"')
    sp.add_argument("--name", default="", help="display name")
    db_opts(sp)
    sp = ssub.add_parser("passwd", help="set a staff member's password",
                         description=f"The password is read from ${STAFF_PASSWORD_ENV}, else asked twice.")
    sp.add_argument("username")
    db_opts(sp)


def _circ_url(args, *, creating: bool = False) -> str:
    url = args.db or os.environ.get(CIRC_DB_ENV)
    if not url:
        d = args.data_dir or os.environ.get(DATA_DIR_ENV)
        if not d:
            raise CircError(f"no database: give --db URL, set {CIRC_DB_ENV}, or give --data-dir DIR "
                            f"(or set {DATA_DIR_ENV}) for DIR/circulation.db")
        path = Path(d).resolve() / "circulation.db"
        if creating:
            path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite+aiosqlite:///{path}"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
    except ArgumentError:
        raise CircError(f"not a database URL: {url!r}") from None
    if u.get_backend_name() == "sqlite" and not creating:
        db = u.database or ""
        if not db or db == ":memory:" or not Path(db).exists():
            raise CircError(f"no circulation database at {db or url} (run `unioncat circ init` first)")
    return url


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _staff_password(confirm: bool = True) -> str:
    pw = os.environ.get(STAFF_PASSWORD_ENV)
    if pw:
        return pw
    if not sys.stdin.isatty():
        raise CircError(f"no password: set {STAFF_PASSWORD_ENV} or run on a terminal")
    import getpass

    pw = getpass.getpass("password: ")
    if confirm and getpass.getpass("again: ") != pw:
        raise CircError("the passwords differ")
    return pw


def cmd_circ(args) -> int:
    import asyncio

    if args.circ_cmd is None:
        print("usage: unioncat circ {init,load,job,history,staff} ... (unioncat circ --help)", file=sys.stderr)
        return 2
    if args.circ_cmd == "staff" and args.staff_cmd is None:
        print("usage: unioncat circ staff {add,passwd} USERNAME ... (unioncat circ staff --help)", file=sys.stderr)
        return 2
    name = args.circ_cmd + (f" {args.staff_cmd}" if args.circ_cmd == "staff" else "")
    try:
        return asyncio.run(_circ_main(args))
    except CircError as e:
        print(f"unioncat circ {name}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - database and configuration errors, said in one line
        print(f"unioncat circ {name}: {_one_line(e)}", file=sys.stderr)
        return 2


def _one_line(e: BaseException) -> str:
    orig = getattr(e, "orig", None)
    text = str(orig if orig is not None else e).strip() or type(e).__name__
    first = text.splitlines()[0]
    return first if first.startswith(type(orig or e).__name__) else f"{type(orig or e).__name__}: {first}"


async def _circ_main(args) -> int:
    from circulation.service import Circulation
    from circulation.store import Clock, Database
    from lifecycle.profiles import load_all

    cmd = args.circ_cmd
    url = _circ_url(args, creating=(cmd == "init"))
    profiles = load_all()
    circ = Circulation(Database(url), profiles, Clock())
    try:
        if cmd == "init":
            return await _circ_init(circ, url)
        if cmd == "load":
            return await _circ_load(circ, args)
        if cmd == "job":
            return await _circ_job(circ, args)
        if cmd == "history":
            return await _circ_history(circ, args.request_id)
        if cmd == "staff":
            return await _circ_staff(circ, args)
        raise CircError(f"unknown command {cmd!r}")
    finally:
        await circ.db.dispose()


async def _circ_init(circ, url: str) -> int:
    from circulation.store import install_network

    await circ.db.create_all()
    async with circ.db.transaction() as conn:
        await install_network(conn, circ.profiles)
    print(f"circulation database ready: {_shown(url)}")
    for _code, prof in sorted(circ.profiles.items()):
        print(f"  {prof.system}: {prof.name}, {len(prof.branches)} branches")
    partners = {c: p.name for prof in circ.profiles.values() for c, p in sorted(prof.partners.items())}
    if partners:
        print(f"  partners: {', '.join(f'{c} ({n})' for c, n in partners.items())}")
    return 0


async def _circ_load(circ, args) -> int:
    from circulation.loaders import LoadError, load_csv

    if not args.file.is_file():
        raise CircError(f"{args.file}: no such file")
    try:
        report = await load_csv(circ, args.kind, args.file)
    except LoadError as e:
        raise CircError(f"{args.file}: {e}") from None
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        for line, reason in report.errors:
            print(f"{args.file}:{line}: rejected: {reason}")
        print(report.summary())
    return 1 if report.rejected else 0


async def _circ_job(circ, args) -> int:
    try:
        from circulation.jobs import run_job
    except ImportError as e:
        raise CircError(f"the jobs module is not available: {e}") from None
    mailer = None
    if args.name == "notices" and not args.smtp_host:
        raise CircError("the notices job sends mail: give --smtp-host HOST and --mail-from ADDRESS")
    if args.smtp_host:
        from connectors.smtp import Mailer

        if not args.mail_from:
            raise CircError("--smtp-host needs --mail-from ADDRESS")
        mailer = Mailer(args.smtp_host, args.smtp_port, from_address=args.mail_from,
                        username=args.smtp_user, password=os.environ.get(SMTP_PASSWORD_ENV))
    try:
        changed = await run_job(circ, args.name, mailer)
    except ValueError as e:
        raise CircError(str(e)) from None
    print(f"{args.name}: {changed} changed")
    return 0


async def _circ_history(circ, request_id: int) -> int:
    from circulation.queries import request_trail
    from circulation.store import NotFound

    try:
        req, events = await request_trail(circ, request_id)
    except NotFound:
        raise CircError(f"no request {request_id}") from None
    title = f" {req.title}" if req.title else ""
    print(f"request {req.id}: {req.kind} {req.title_id}{title} for {req.card_number} "
          f"({req.library}), pickup {req.pickup_branch}, now {req.state}")
    for e in sorted(events, key=lambda e: e.at):          # by time; written order among equals
        move = f"{e.from_state or '-'} -> {e.to_state or '-'}"
        who = f"{e.actor_role}:{e.actor}" if e.actor else e.actor_role
        extra = "".join(f" {k}={v}" for k, v in (("channel", e.channel), ("branch", e.branch),
                                                  ("item", e.item_id), ("loan", e.loan_id)) if v)
        reason = f"  {e.reason}" if e.reason else ""
        print(f"{e.at:%Y-%m-%d %H:%M:%S}  {e.event:<24} {move:<32} {who}{extra}{reason}")
    return 0


async def _circ_staff(circ, args) -> int:
    from circulation import auth

    if args.staff_cmd == "add":
        d = await auth.create_staff(circ, username=args.username, password=_staff_password(),
                                    library=args.library, branch=args.branch, roles=args.roles,
                                    name=args.name)
        if not d.allowed:
            raise CircError(d.message_en)
        print(f"staff {args.username} added (id {d.details['id']}; roles {' '.join(auth.parse_roles(args.roles))})")
        return 0
    import getpass
    d = await auth.set_staff_password(circ, username=args.username, new_password=_staff_password(),
                                      actor=f"cli:{getpass.getuser()}")
    if not d.allowed:
        raise CircError(d.message_en)
    print(f"staff {args.username}: password set")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
