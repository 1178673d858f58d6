"""``serve``'s harvesting side: the OAI-PMH provider at ``/oai`` (the core is
connectors/oai/provider.py, the records come from the record store), the harvest
scheduler for the ``[harvest.*]`` sources (connectors/harvest/runner.py), and
``GET /harvest``: the last run of each source as JSON (when, mode, counts,
outcome, errors, retries) and whether one is running.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from aiohttp import web

from connectors.oai.provider import Provider, Settings
from connectors.oai.repository import StoreRepository
from indexers.holdings import load_libraries
from sru.binding import decode_form
from sru.diagnostics import SRUDiagnosticError

log = logging.getLogger("unioncat.oai")
MAX_BODY = 64 * 1024
OAI_PROVIDER = web.AppKey("oai_provider", object)
HARVEST_SCHEDULER = web.AppKey("harvest_scheduler", object)


def es_config_of(catalog):
    """The EsConfig of an Elasticsearch catalog (the harvests then index there too), else None."""
    if catalog is None or type(catalog).__module__ != "indexers.backends.elasticsearch_catalog":
        return None
    return catalog.cfg


def mount(app: web.Application, data_dir: Path, base_url: str, *, harvest_sources=None, es=None,
          settings: Settings | None = None) -> Provider:
    repo = StoreRepository(Path(data_dir) / "catalog.sqlite", load_libraries().names())
    provider = Provider(repo, settings or Settings(base_url=base_url))
    app[OAI_PROVIDER] = provider

    async def oai(request: web.Request) -> web.Response:
        raw = request.rel_url.raw_query_string.encode("utf-8", "surrogateescape")
        if request.method == "POST":
            body = await request.content.read(MAX_BODY + 1)
            if len(body) > MAX_BODY:
                raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=len(body))
            raw = body
        try:
            params = decode_form(raw)
        except SRUDiagnosticError:
            params = {"verb": ["?"], "?": ["not UTF-8"]}      # answered as badVerb/badArgument
        data = await asyncio.to_thread(provider.handle, params, time.time())
        return web.Response(body=data, content_type="text/xml", charset="utf-8")

    app.router.add_route("GET", "/oai", oai)
    app.router.add_route("POST", "/oai", oai)

    from connectors.harvest.runner import Scheduler

    scheduler = Scheduler(Path(data_dir), harvest_sources or {}, es=es)
    app[HARVEST_SCHEDULER] = scheduler

    async def status(request: web.Request) -> web.Response:
        runs = await asyncio.to_thread(scheduler.last_runs)
        return web.json_response({
            "running": scheduler.running,
            "sources": {name: {"library": s.library, "protocol": s.protocol, "address": s.address,
                               "schedule": _schedule(s.schedule),
                               "last_run": runs[name].as_dict() if name in runs else None}
                        for name, s in scheduler.sources.items()},
            "other_runs": {n: r.as_dict() for n, r in runs.items() if n not in scheduler.sources}})

    app.router.add_get("/harvest", status)
    if harvest_sources and any(s.schedule for s in harvest_sources.values()):
        async def start(_app):
            scheduler.start()
            log.info("harvest scheduler: %s", ", ".join(n for n, s in harvest_sources.items() if s.schedule))

        async def stop(_app):
            await scheduler.stop()

        app.on_startup.append(start)
        app.on_cleanup.append(stop)
    return provider


def _schedule(s) -> str | None:
    if s is None:
        return None
    if s.every is not None:
        return f"every {s.every:g} s"
    return f"daily {s.daily[0]:02d}:{s.daily[1]:02d}"
