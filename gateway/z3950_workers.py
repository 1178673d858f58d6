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
import logging
import os
import signal
import subprocess
import sys

log = logging.getLogger("unioncat.z3950")


def worker_argv(args, data_dir, host: str, port: int, parent: int) -> list[str]:
    """The command line of one worker: the serve command's catalog options, Z39.50 only."""
    argv = [sys.executable, "-m", "gateway.cli", "serve", "--data-dir", str(data_dir), "--host", host,
            "--z3950-port", str(port), "--z3950-worker-of", str(parent),
            "--event-loop", getattr(args, "event_loop", "auto")]
    if getattr(args, "backend", None):
        argv += ["--backend", args.backend]
    for url in getattr(args, "es_url", None) or ():
        argv += ["--es-url", url]
    if getattr(args, "es_index", None):
        argv += ["--es-index", args.es_index]
    if getattr(args, "config", None):
        argv += ["--config", str(args.config)]
    return argv


class Workers:
    """The N-1 worker processes of a serving process (started, stopped by PID)."""

    def __init__(self, argv: list[str], count: int):
        self.argv, self.count = argv, count
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        # a process group of their own: a Ctrl-C at the terminal (SIGINT to the foreground
        # group) reaches the serving process only, which stops them by PID (SIGTERM)
        for _ in range(self.count):
            self.procs.append(subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, process_group=0))
        log.info("Z39.50 workers: %s", ", ".join(str(p.pid) for p in self.procs))

    def stop(self, timeout: float = 10) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


def run_worker(catalog, host: str, port: int, parent: int, circ_db: str | None = None, federation=None) -> None:
    """Serve Z39.50 on host:port (SO_REUSEPORT) until SIGTERM or the parent's exit.
    ``circ_db``: the serving process's circulation database, read for availability
    (OPAC circulationData, the local.available limit) through a small pool of its own.
    ``federation``: the ``[federation.*]`` groups, databases here as in the serving process."""
    from indexers.holdings import load_libraries
    from search.route import make_route

    from .z3950_server import Z3950Server, make_service

    async def main() -> None:
        circ = availability = None
        if circ_db:
            from circulation.availability_view import CirculationAvailability
            from circulation.service import Circulation
            from circulation.store import Database

            circ = Circulation(Database(circ_db, pool_size=4))
            availability = CirculationAvailability(circ)
        route = make_route(catalog, load_libraries().names(), availability=availability)
        if federation:
            from connectors.federation_targets import add_to_route
            from z3950 import rpn

            add_to_route(route, federation, rpn.load_bib1_mapping().use)
        server = Z3950Server(make_service(route))
        await server.start(host, port, reuse_port=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            while not stop.is_set() and os.getppid() == parent:
                try:
                    await asyncio.wait_for(stop.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
        finally:
            await server.close()
            if circ is not None:
                await circ.db.dispose()
            if hasattr(catalog, "aclose"):
                await catalog.aclose()
            elif hasattr(catalog, "close"):
                catalog.close()

    asyncio.run(main())
