"""Worker processes of a serving process: what the Z39.50, SRU and API workers share.

``unioncat serve`` answers on every core by starting worker processes that listen on a
port with SO_REUSEPORT (Linux spreads new connections over them): Z39.50
(gateway/z3950_workers.py), SRU (gateway/sru_workers.py) and the circulation API
(gateway/api_workers.py). Each worker is ``unioncat serve ... --<kind>-worker-of PID``.
Here, once for all of them:

* :class:`Workers` -- the serving process starts its workers in a process group of their
  own and stops them by PID (SIGTERM, then SIGKILL after a timeout);
* :func:`until_stopped` -- a worker serves until SIGTERM/SIGINT or until its parent is
  gone (it looks every second), so no worker outlives a killed serving process;
* :func:`run_app_worker` -- an aiohttp application on host:port with SO_REUSEPORT until then;
* :func:`catalog_argv` -- the serve options that name the catalog, for a worker's command line;
* :func:`availability_circulation` -- the circulation database a worker reads availability from;
* :func:`freeze_startup_heap` -- what start-up built, kept out of every later full garbage collection.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import subprocess
import sys
from typing import Awaitable, Callable

log = logging.getLogger("unioncat.workers")


def freeze_startup_heap() -> int:
    """Move everything start-up left on the heap (modules, configuration, the catalog's
    plans, SQLAlchemy's metadata: ~100,000 objects) into the collector's permanent
    generation (``gc.freeze``), so that no later full collection walks it: on this
    2-core machine one such pass took ~35 ms, a pause every request in flight shares.
    Objects made afterwards are collected as before. Called once a serving process (or
    worker) is listening -- never by an application built in a test process, where the
    frozen objects would never be freed. Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("start-up heap frozen: %d objects", frozen)
    return frozen


def serve_argv(kind: str, args, data_dir, host: str, port: int, parent: int) -> list[str]:
    """The start of a worker's command line: ``serve --<kind>-port PORT --<kind>-worker-of PARENT``."""
    return [sys.executable, "-m", "gateway.cli", "serve", "--data-dir", str(data_dir), "--host", host,
            f"--{kind}-port", str(port), f"--{kind}-worker-of", str(parent),
            "--event-loop", getattr(args, "event_loop", "auto")]


def catalog_argv(args) -> list[str]:
    """The serve command's options that name the catalog (and the config file)."""
    argv: list[str] = []
    if getattr(args, "backend", None):
        argv += ["--backend", args.backend]
    for url in getattr(args, "es_url", None) or ():
        argv += ["--es-url", url]
    if getattr(args, "es_index", None):
        argv += ["--es-index", args.es_index]
    if getattr(args, "config", None):
        argv += ["--config", str(args.config)]
    if getattr(args, "store_db", None):
        argv += ["--store-db", args.store_db]
    return argv


def availability_circulation(circ_db: str | None):
    """The circulation service a worker reads live availability through (OPAC records,
    the local.available limit): the serving process's database through a small pool of
    the worker's own; None without a circulation database."""
    if not circ_db:
        return None
    from circulation.service import Circulation
    from circulation.store import Database

    return Circulation(Database(circ_db, pool_size=4))


class Workers:
    """The worker processes of a serving process (started, stopped by PID)."""

    def __init__(self, argv: list[str], count: int, kind: str = "Z39.50"):
        self.argv, self.count, self.kind = argv, count, kind
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        # a process group of their own: a Ctrl-C at the terminal (SIGINT to the foreground
        # group) reaches the serving process only, which stops them by PID (SIGTERM)
        for _ in range(self.count):
            self.procs.append(subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, process_group=0))
        log.info("%s workers: %s", self.kind, ", ".join(str(p.pid) for p in self.procs))

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


async def until_stopped(parent: int) -> None:
    """Return on SIGTERM or SIGINT, or once the process ``parent`` is no longer this
    process's parent (it died; checked every second). ``parent`` 0: no parent to watch."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set() and (not parent or os.getppid() == parent):
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            pass


def run_app_worker(make_app: Callable[[], Awaitable], host: str, port: int, parent: int, banner: str) -> None:
    """Serve the aiohttp application ``await make_app()`` builds on host:port (SO_REUSEPORT)
    until :func:`until_stopped`; prints ``banner`` (``{pid}``, ``{url}``) once listening."""
    from aiohttp import web

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        runner = web.AppRunner(await make_app(), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, reuse_port=True).start()
            line = banner.format(pid=os.getpid(), url=f"http://{host}:{port}")
            freeze_startup_heap()
            log.info("%s", line)
            print(line, flush=True)
            await until_stopped(parent)
        finally:
            await runner.cleanup()          # the application's own cleanup closes what it opened

    asyncio.run(main())
