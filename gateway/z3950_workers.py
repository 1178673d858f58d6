"""Z39.50 worker processes: the target on every core.

One process runs one event loop under one GIL, so however many associations are
open, one process answers at most one core's worth of requests. ``unioncat serve
--z3950-workers N`` therefore runs the Z39.50 target in N processes listening on
the same port with SO_REUSEPORT (Linux spreads new connections over them): the
serving process itself (which also answers HTTP) and N-1 workers. Each worker is
``unioncat serve ... --z3950-worker-of PID``: it opens its own catalog (the SQLite
file read-only, or the same Elasticsearch cluster), serves only Z39.50, and exits
when its parent does (it checks every second) or on SIGTERM. The parent starts
them after its own listener is up and stops them by PID when it shuts down.

Result sets live in the association, so they never need to cross processes. The
session limit (``max_sessions``) applies per process.  Each worker searches
through its own search route (search/route.py) over its own catalog handle.
"""
from __future__ import annotations

import asyncio
import os

from .workers import (
    Workers,
    availability_circulation,
    catalog_argv,
    freeze_startup_heap,
    serve_argv,
    until_stopped,
)

__all__ = ["Workers", "default_workers", "run_worker", "worker_argv"]

PER_CPU = 4            # processes per CPU by default ...
MAX_DEFAULT = 16       # ... and at most this many


def default_workers(cpus: int | None = None) -> int:
    """How many processes answer Z39.50 when ``--z3950-workers`` is not given: 4 per CPU,
    at most 16 (8 on a 2-core box, 16 on a 4-core one or larger, 4 on one core). Like
    zebrasrv's process per connection, more processes than cores let the kernel share the
    CPUs, so a short search does not wait behind another session's search in the same
    process. SO_REUSEPORT hashes connections unevenly: on a 2-core box 16 sessions on 8
    processes put the median search at 2.2-2.9x Zebra's, on 16 at 1.4-2.2x
    (docs/benchmarks.md, "the search median"), at twice the processes' memory and start-up;
    a site with many concurrent Z39.50 sessions on few cores can ask for more with
    ``--z3950-workers``. The default stays at 4 per CPU: every ``serve`` (the demo, a test)
    starts them all."""
    n = len(os.sched_getaffinity(0)) if cpus is None else cpus
    return max(1, min(MAX_DEFAULT, PER_CPU * n))


def worker_argv(args, data_dir, host: str, port: int, parent: int) -> list[str]:
    """The command line of one worker: the serve command's catalog options, Z39.50 only."""
    return serve_argv("z3950", args, data_dir, host, port, parent) + catalog_argv(args)


def run_worker(catalog, host: str, port: int, parent: int, circ_db: str | None = None, federation=None, *,
               data_dir, store_db: str | None = None) -> None:
    """Serve Z39.50 on host:port (SO_REUSEPORT) until SIGTERM or the parent's exit, with the
    serving process's search route (gateway/app.py catalog_route: libraries, new arrivals
    from ``data_dir``'s record store, the network's days, the federations), so that a client
    sees the same answers whichever process its connection lands on.
    ``circ_db``: the serving process's circulation database, read for availability
    (OPAC circulationData, the local.available limit) through a small pool of its own.
    ``federation``: the ``[federation.*]`` groups, databases here as in the serving process."""
    from pathlib import Path

    from .app import catalog_route
    from .z3950_server import Z3950Server, make_service

    async def main() -> None:
        circ = availability_circulation(circ_db)
        route = catalog_route(Path(data_dir), catalog, circulation=circ, federation=federation, store_db=store_db)
        server = Z3950Server(make_service(route))
        await server.start(host, port, reuse_port=True)
        freeze_startup_heap()
        try:
            await until_stopped(parent)
        finally:
            await server.close()
            if circ is not None:
                await circ.db.dispose()
            if hasattr(catalog, "aclose"):
                await catalog.aclose()
            elif hasattr(catalog, "close"):
                catalog.close()

    asyncio.run(main())
