"""The ILL and NCIP services of ``unioncat serve``: titles resolved through the union
catalog, the ISO 18626 endpoint (``POST /iso18626``) with its background worker, and
the NCIP responder (``POST /ncip``), mounted when the configuration has ``[ill]`` /
``[ncip]`` and a circulation database is served.

The configuration file is the one given by ``--config`` (or ``DATA_DIR/unioncat.toml``);
see docs/ill.md and docs/ncip.md.
"""
from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import aiohttp
from aiohttp import web

from circulation.ill.common import Ill
from circulation.ill.node import IllNode
from circulation.ill.titles import Title, Wanted
from circulation.ill.worker import IllWorker
from connectors import ncip as ncip_connector
from connectors import opac_availability
from connectors.iso18626 import config as ill_config
from connectors.iso18626_client import Sender
from indexers.backend import BackendUnavailable, Catalog
from indexers.query_model import QueryError
from search.titles import isbn_title_id, isbns_of, parse_title_id, primary_title_id
from sru.cql import parse_cql

from . import iso18626_endpoint, ncip_endpoint

log = logging.getLogger("unioncat.ill")


class ConfigError(Exception):
    pass


def load_config(path: Path | None):
    """(ILL configuration or None, NCIP configuration or None) of a TOML file."""
    if path is None or not path.exists():
        return None, None
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: {e}") from None
    try:
        return ill_config.load(data), ncip_connector.load(data)
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None


def _first(marc, tag: str, codes: str) -> str:
    f = marc[tag] if tag in marc else None
    if f is None:
        return ""
    return " ".join(v.strip(" /:;,.") for v in f.get_subfields(*codes)).strip()


class CatalogTitles:
    """Titles as the union catalog knows them: a title id ``isbn:<ISBN-13>`` (the form the
    circulation items use) or the union record's number, mapped to and from union records
    by search/titles.py (the one place that mapping lives); the libraries holding it are
    the record's holdings."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    async def _records(self, cql: str, limit: int = 1):
        try:
            res = await self.catalog.search(parse_cql(cql, self.catalog.config))
            ids = await self.catalog.page(res, 0, limit)
            return await self.catalog.fetch(ids)
        except (QueryError, BackendUnavailable) as e:
            log.info("title lookup %r failed: %s", cql, e)
            return []

    def _title(self, rec, title_id: str | None = None) -> Title:
        marc = rec.marc
        isbns = isbns_of(rec)
        return Title(title_id or primary_title_id(rec),
                     title=_first(marc, "245", "ab"), author=_first(marc, "100", "a") or _first(marc, "110", "a"),
                     isbn=isbns[0] if isbns else "", publisher=_first(marc, "264", "b") or _first(marc, "260", "b"),
                     date=_first(marc, "264", "c") or _first(marc, "260", "c"),
                     libraries=frozenset(h.library for h in rec.holdings),
                     local_ids=dict(rec.members))

    async def describe(self, title_id: str, conn=None) -> Title | None:
        parsed = parse_title_id(title_id)
        if parsed is None:
            return None
        kind, value = parsed
        if kind == "isbn":
            recs = await self._records(f'bath.isbn="{value}"')
        else:
            recs = await self.catalog.fetch([int(value)])
        return self._title(recs[0], title_id) if recs else None

    async def find(self, wanted: Wanted, conn=None) -> Title | None:
        for isbn in wanted.isbns:
            title_id = isbn_title_id(isbn)
            found = await self.describe(title_id) if title_id else None
            if found is not None:
                return found
        for rid in wanted.record_ids:
            found = await self.describe(rid)
            if found is not None:
                return found
        return None


def mount(app: web.Application, circulation, catalog: Catalog, ill_cfg, ncip_cfg) -> Ill | None:
    """Mount what the configuration asks for on ``app`` (the ILL worker starts and stops
    with it). Returns the ILL node's :class:`Ill` for the staff API, or None."""
    ill = None
    if ncip_cfg is not None:
        from circulation.ncip import NcipNode
        ncip_endpoint.add_routes(app, NcipNode(circulation, ncip_cfg))
        log.info("NCIP responder at /ncip for %s", ", ".join(sorted(ncip_cfg.clients)) or "no client")
    if ill_cfg is None:
        return None
    ill = Ill(circulation, ill_cfg, CatalogTitles(catalog))
    iso18626_endpoint.add_routes(app, IllNode(ill))
    state: dict = {}

    async def start(_app):
        state["session"] = session = aiohttp.ClientSession()
        ill.probe = lambda partner, isbn: opac_availability.ask(session, partner.availability_sru, isbn)
        state["worker"] = IllWorker(ill, Sender(session))
        state["worker"].start()
        log.info("ISO 18626 at /iso18626 as %s (partners: %s)", ill_cfg.agency,
                 ", ".join(sorted(ill_cfg.partners)) or "none")

    async def stop_worker(_app):
        # on shutdown, which aiohttp runs before any cleanup: the worker is gone before
        # the circulation database is disposed (the API's cleanup)
        if "worker" in state:
            await state["worker"].stop()

    async def close_session(_app):
        if "session" in state:
            await state["session"].close()

    app.on_startup.append(start)
    app.on_shutdown.append(stop_worker)
    app.on_cleanup.append(close_session)
    return ill
