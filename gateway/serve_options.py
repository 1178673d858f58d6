"""The options of `unioncat serve` that start worker processes, checked: the Z39.50
target's (--z3950-workers), SRU's (--sru-workers, --sru-port, --result-sets-db) and the
circulation API's (--api-workers, --api-port). The processes themselves are
gateway/workers.py and its users; the command is gateway/cli.py."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


class CircError(Exception):
    """Said in one line by `unioncat circ` and `unioncat serve`, exit status 2."""


def _z3950_port(p) -> None:
    p.add_argument("--z3950-port", type=int, default=2100, metavar="PORT",
                   help="also serve Z39.50 on --host:PORT (default 2100; 0 = no Z39.50)")
    p.add_argument("--event-loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                   help="auto (default): uvloop when installed (the [fast] extra), else asyncio's own loop")
    p.add_argument("--z3950-workers", type=int, default=None, metavar="N",
                   help="processes answering Z39.50 on the port (SO_REUSEPORT; default: 4 per CPU, at most 16)")
    p.add_argument("--z3950-worker-of", type=int, default=None, help=argparse.SUPPRESS)


def _z3950_workers(args, data_dir: Path) -> dict:
    """run_server's worker options: how many Z39.50 processes, and their command line."""
    from .z3950_workers import default_workers, worker_argv

    n = args.z3950_workers if args.z3950_workers is not None else default_workers()
    if n < 1:
        sys.exit("unioncat: --z3950-workers must be at least 1")
    return {"z3950_workers": n,
            "z3950_worker_argv": lambda port: worker_argv(args, data_dir, args.host, port, os.getpid())}


def _serve_sru_options(p) -> None:
    p.add_argument("--sru-workers", type=int, default=0, metavar="N",
                   help="also serve SRU on --sru-port from N processes of its own (SO_REUSEPORT); result sets "
                   "are then shared by every SRU process through DATA_DIR/result_sets.sqlite "
                   "(gateway/sru_workers.py; default 0: SRU from the serving process only)")
    p.add_argument("--sru-port", type=int, default=None, metavar="PORT",
                   help="the port of the SRU workers (default: --port + 2)")
    p.add_argument("--result-sets-db", default=None, metavar="URL",
                   help="keep SRU's result sets in this PostgreSQL database (postgresql://...), shared with "
                   "every gateway that names it: with the Elasticsearch backend, gateways on several machines "
                   "then serve one catalog and any of them pages any result set (docs/elasticsearch.md)")
    p.add_argument("--sru-worker-of", type=int, default=None, help=argparse.SUPPRESS)


def _sru_workers(args, data_dir: Path, circ_url: str | None):
    """The SRU worker processes of --sru-workers N (not started yet) and the shared store of
    result sets, emptied (a new server starts with no result sets), or (None, None).
    CircError: a bad option, said in one line."""
    if args.sru_workers < 0:
        raise CircError("--sru-workers must be 0 or more")
    db = args.result_sets_db
    if not args.sru_workers and not db:
        return None, None
    if args.sru_workers:
        if args.sru_port is None:
            args.sru_port = args.port + 2
        taken = {args.port, args.z3950_port, args.sip2_port, args.api_port if args.api_workers else 0}
        if not 0 < args.sru_port < 65536 or args.sru_port in taken:
            raise CircError(f"--sru-port {args.sru_port}: not a port of its own")
    import sqlite3

    from search.result_sets_shared import FILE_NAME, SharedResultSets

    from .sru_workers import sru_workers

    try:
        store = SharedResultSets.open(data_dir, db)
        if not db:          # the data dir's own file: a new server starts with no result sets
            store.clear()   # (a database other gateways share is not emptied)
    except (sqlite3.Error, OSError) as e:
        raise CircError(f"--sru-workers: cannot keep result sets in {data_dir / FILE_NAME}: {e}") from None
    except Exception as e:  # noqa: BLE001 - psycopg's errors and a bad URL, said in one line
        raise CircError(f"--result-sets-db: {type(e).__name__}: {e}") from None
    if not args.sru_workers:
        return None, store
    return (sru_workers(args, data_dir, args.host, args.sru_port, os.getpid(), circ_url,
                        args.sru_workers), store)


def _api_workers(args, data_dir: Path, circ: dict):
    """The API worker processes of --api-workers N (not started yet), or None. Checks the
    options (CircError); an API worker itself gets its port checked only."""
    if args.api_worker_of is None and not args.api_workers:
        return None
    if args.api_workers < 0 or (args.api_worker_of is None and args.api_workers < 1):
        raise CircError("--api-workers must be at least 1")
    if not circ:
        raise CircError("--api-workers needs a circulation database (--circ-db URL)")
    from sqlalchemy.engine import make_url

    if make_url(circ["circ_db"]).get_backend_name() != "postgresql":
        raise CircError("--api-workers needs PostgreSQL: on SQLite the circulation service runs as one "
                        "process (one writer at a time)")
    if args.api_port is None:
        args.api_port = args.port + 1
    if not 0 < args.api_port < 65536 or (args.api_worker_of is None and args.api_port == args.port):
        raise CircError(f"--api-port {args.api_port}: not a port of its own")
    if args.api_worker_of is not None:
        return None
    from .api_workers import api_worker_argv
    from .workers import Workers

    return Workers(api_worker_argv(args, data_dir, circ["circ_db"], args.host, args.api_port, os.getpid()),
                   args.api_workers)
