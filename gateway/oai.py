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
from connectors.oai.repository import StoreRepository, StoreUnavailable
from indexers.holdings import load_libraries
from indexers.store_sql import store_errors
from sru.binding import decode_form
from sru.diagnostics import SRUDiagnosticError

log = logging.getLogger("unioncat.oai")
MAX_BODY = 64 * 1024
OAI_PROVIDER = web.AppKey("oai_provider", object)
HARVEST_SCHEDULER = web.AppKey("harvest_scheduler", object)


class OaiConfigError(Exception):
    """An ``[oai]`` table that cannot be used, said in one line."""


OAI_SETTINGS = {"base_url": str, "admin_email": str, "repository_name": str, "repository_identifier": str,
                "page_size": int}


def load_oai_settings(path: Path | None) -> dict:
    """The ``[oai]`` table of the configuration file, checked (what the provider's
    Identify says: ``base_url`` as clients reach it, e.g. behind a reverse proxy,
    ``admin_email``, ``repository_name``, ``repository_identifier``; ``page_size``:
    records a page).  None of it is needed: {} when there is no table or no file."""
    import re
    import tomllib

    if path is None or not Path(path).exists():
        return {}
    try:
        with open(path, "rb") as fh:
            table = tomllib.load(fh).get("oai", {})
    except tomllib.TOMLDecodeError as e:
        raise OaiConfigError(f"{path}: {e}") from None
    at = f"{path}: [oai]"
    if not isinstance(table, dict):
        raise OaiConfigError(f"{at} must be a table")
    for key, value in table.items():
        kind = OAI_SETTINGS.get(key)
        if kind is None:
            raise OaiConfigError(f"{at}: unknown setting {key!r} (known: {', '.join(OAI_SETTINGS)})")
        if not isinstance(value, kind) or isinstance(value, bool):
            raise OaiConfigError(f"{at}: {key} must be a {'whole number' if kind is int else 'string'}")
    if "page_size" in table and not 1 <= table["page_size"] <= 1000:
        raise OaiConfigError(f"{at}: page_size must be from 1 to 1000")
    if "base_url" in table and not re.match(r"https?://\S+\Z", table["base_url"]):
        raise OaiConfigError(f"{at}: base_url {table['base_url']!r}: an http:// or https:// URL is needed")
    if "admin_email" in table and not re.match(r"[^@\s]+@[^@\s]+\Z", table["admin_email"]):
        raise OaiConfigError(f"{at}: admin_email {table['admin_email']!r} is not an e-mail address")
    if "repository_identifier" in table and not re.match(r"[a-zA-Z][a-zA-Z0-9\-]*(\.[a-zA-Z][a-zA-Z0-9\-]*)*\Z",
                                                         table["repository_identifier"]):
        raise OaiConfigError(f"{at}: repository_identifier must be a domain-like name (unioncat, union.example.jp)")
    return dict(table)


def es_config_of(catalog):
    """The EsConfig of an Elasticsearch catalog (the harvests then index there too), else None."""
    if catalog is None or type(catalog).__module__ != "indexers.backends.elasticsearch_catalog":
        return None
    return catalog.cfg


def mount(app: web.Application, data_dir: Path, base_url: str, *, harvest_sources=None, es=None,
          settings: dict | None = None, store_db: str | None = None) -> Provider:
    """``settings``: the ``[oai]`` table (load_oai_settings); ``base_url``: the default;
    ``store_db``: the record store is this PostgreSQL database (indexers/store_sql.py)."""
    repo = StoreRepository(store_db or Path(data_dir) / "catalog.sqlite", load_libraries().names())
    provider = Provider(repo, Settings(**{"base_url": base_url, **(settings or {})}))
    unreadable: tuple[type[BaseException], ...] = (StoreUnavailable, *store_errors())
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
        try:
            data = await asyncio.to_thread(provider.handle, params, time.time())
        except unreadable as e:      # gone or unreadable since start-up
            log.warning("OAI-PMH: the record store cannot be read: %s", e)
            return web.Response(status=503, text="OAI-PMH: the record store cannot be read now\n",
                                headers={"Retry-After": "60"})
        return web.Response(body=data, content_type="text/xml", charset="utf-8")

    if es is not None and not store_db and not repo.path.exists():
        # a gateway in front of an Elasticsearch index that has no record store of its own
        # (docs/elasticsearch.md, several gateways): the provider lives where ingest writes
        log.warning("OAI-PMH provider off: no record store at %s (serve /oai from the data directory "
                    "that unioncat ingest writes)", repo.path)
    else:
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
