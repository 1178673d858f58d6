"""SRU worker processes: SRU on every core, result sets shared through the data directory.

One process answers at most one core's worth of SRU requests (one event loop under one
GIL; parsing, ranking glue and rendering ten MARCXML records are Python). ``unioncat serve
--sru-workers N --sru-port P`` therefore also serves SRU on port P from N processes of its
own, listening on the same port with SO_REUSEPORT (Linux spreads new connections over
them); the serving process keeps answering everything on ``--port`` as before, SRU
included. Each worker is ``unioncat serve ... --sru-worker-of PID``: it serves /sru and
/sru/{database} (explain, scan, searchRetrieve; every database, the ``[federation.*]``
ones too), opens its own catalog handle (the SQLite file read-only in WAL mode, or the same
Elasticsearch cluster) and, when there is one, the circulation database for live
availability (a small pool); it exits when its parent does (it checks every second) or on
SIGTERM, and the parent stops its workers by PID (gateway/workers.py).

What a client sees does not depend on the process that answers:

* result sets: with SRU workers every SRU process, the serving one included, keeps its
  result sets in DATA_DIR/result_sets.sqlite (search/result_sets_shared.py) -- a
  ``resultSetId`` from one request is usable in the next (``cql.resultSetId = X``) whichever
  process answers it, for as long as it is live (resultSetTTL renewed on use, the same
  bound and evictions, "deleted by the server" vs "never existed"); the serving process
  empties the file when it starts, as a restart empties the memory store. Only a
  federation's result sets stay in the process that searched its targets (their records
  are in its memory);
* a changed catalog: every process reads the catalog's generation (the embedded index's
  ``meta`` row an ingest bumps when it commits, or Elasticsearch's meta document) where it
  did before -- before reusing a live set's hits, and before resolving a database name it
  does not know -- so an ingest is seen by all of them at once, and a set made before it
  is never reused after it;
* the explain record names ``--host`` and the port the worker answers on (``--sru-port``).

Default ``--sru-workers 0``: one process, the result sets in its memory (as before).
"""
from __future__ import annotations

from pathlib import Path

from .workers import Workers, availability_circulation, catalog_argv, run_app_worker, serve_argv


def sru_worker_argv(args, data_dir, host: str, port: int, parent: int, circ_db: str | None) -> list[str]:
    """The command line of one SRU worker: the serve command's catalog options."""
    argv = serve_argv("sru", args, data_dir, host, port, parent) + catalog_argv(args)
    if getattr(args, "result_sets_db", None):
        argv += ["--result-sets-db", args.result_sets_db]
    if circ_db:
        argv += ["--circ-db", circ_db]
    return argv


def sru_workers(args, data_dir, host: str, port: int, parent: int, circ_db: str | None, count: int) -> Workers:
    return Workers(sru_worker_argv(args, data_dir, host, port, parent, circ_db), count, kind="SRU")


def run_sru_worker(data_dir: Path, catalog, host: str, port: int, parent: int, *, circ_db: str | None = None,
                   federation=None, result_sets_db: str | None = None, store_db: str | None = None) -> None:
    """Serve SRU on host:port (SO_REUSEPORT) until SIGTERM or the parent's exit, with the
    result sets in the data directory's shared store (or ``result_sets_db``'s)."""
    from search.result_sets_shared import SharedResultSets

    from .app import make_sru_app

    async def make():
        circ = availability_circulation(circ_db)
        app = make_sru_app(data_dir, catalog=catalog, host=host, port=port, circulation=circ,
                           federation=federation, result_sets=SharedResultSets.open(data_dir, result_sets_db),
                           store_db=store_db)
        if circ is not None:
            async def dispose(_app):
                await circ.db.dispose()

            app.on_cleanup.append(dispose)
        return app

    run_app_worker(make, host, port, parent, "SRU worker {pid} on {url}/sru")
