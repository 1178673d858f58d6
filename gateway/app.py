"""The HTTP service: a thin aiohttp shell around the sans-I/O SRU core.

/sru              the union catalog (every member library)
/sru/{database}   a virtual database: "default" (= /sru) or a holding library's
                  code, which restricts every search to records that library holds
                  (search/databases.py; the same databases as Z39.50)

The same SRU service is also what an SRU worker process serves (``make_sru_app``,
gateway/sru_workers.py); the result sets then live in a file every process of the data
directory shares (search/result_sets_shared.py) instead of this process's memory.

Databases, result sets, the time budget and paging are the search route's
(search/route.py), shared with the Z39.50 target.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from aiohttp import web

from indexers.backend import BackendUnavailable, Catalog
from indexers.backends.sqlite_index import SqliteCatalog
from indexers.holdings import load_libraries
from indexers.query_model import Clause, Query, QueryError, SortKey, walk
from indexers.store import StoreArrivals
from search.databases import Database
from search.federation import problems_of, unavailable_message
from search.result_sets import ResultSets, ResultSetStore
from search.route import DEFAULT_TIMEOUT, Search, SearchRoute, make_route
from sru import protocol as sp
from sru.binding import decode_form, merge
from sru.cql import parse_cql
from sru.diagnostics import Diagnostic, SRUDiagnosticError
from sru.explain import explain_record
from sru.record_schemas import OPAC as OPAC_SCHEMA
from sru.record_schemas import render_record
from z3950 import rpn
from z3950.diagnostics import Bib1Diagnostic, to_query_error

from .availability import holdings_of_page, opac_holdings
from .http_shell import handler_args, use_tolerant_request_parser

log = logging.getLogger("unioncat.gateway")
BACKEND_TIMEOUT = DEFAULT_TIMEOUT  # seconds a request may spend in the catalog before it answers diagnostic 1
SRU_SERVICE = web.AppKey("sru_service", object)
Z3950_SERVICE = web.AppKey("z3950_service", object)


@dataclass
class SRUService:
    """SRU over the search route (search/route.py): parsing and responses here,
    databases, result sets, the time budget and paging there."""

    route: SearchRoute
    settings: sp.SRUSettings
    result_sets: ResultSetStore = field(default_factory=ResultSets)   # memory; shared with SRU workers
    _explain: dict = field(default_factory=dict)  # (database path, version) -> ZeeRex record, built once

    @property
    def catalog(self) -> Catalog:
        return self.route.catalog

    async def handle(self, params: dict[str, list[str]], database: str) -> bytes:
        req = None
        try:
            req = sp.parse_request(params, defaults=self.settings)
            async with self.route.request():
                try:
                    db = await self.route.database((database,))
                except QueryError as e:
                    raise SRUDiagnosticError(e.code, e.details, e.message) from None
                if isinstance(req, sp.ExplainRequest):
                    return sp.explain_response(req, self.explain_info(db, req.version))
                if isinstance(req, sp.ScanRequest):
                    return await self.scan(req, db)
                return await self.search(req, db)
        except SRUDiagnosticError as e:
            return self._diagnostic(req, e)
        except QueryError as e:
            return self._diagnostic(req, SRUDiagnosticError(e.code, e.details, e.message))
        except BackendUnavailable as e:
            log.warning("backend unavailable: %r", e)
            return self._diagnostic(req, SRUDiagnosticError(1, "", unavailable_message(e)))
        except Exception:  # a bug answers this request with a diagnostic, not an HTTP 500
            log.exception("SRU request failed: %r", params)
            return self._diagnostic(req, SRUDiagnosticError(1, "", "unexpected error in the server; it was logged"))

    def _diagnostic(self, req, err: SRUDiagnosticError) -> bytes:
        """The whole response for a fatal diagnostic, shaped for the request's
        operation and version (those the parser put on ``err`` when the request
        itself was bad)."""
        if req is not None:
            op = {sp.ScanRequest: "scan", sp.ExplainRequest: "explain"}.get(type(req), "searchRetrieve")
            return sp.diagnostic_response(op, req.version, err)
        return sp.error_response(err)

    def explain_info(self, db: Database, version: str = sp.HIGHEST_VERSION):
        """The ZeeRex record of a database, saying the version the response is in."""
        path = f"sru/{db.library or db.name}" if db.library or db.catalog is not None else "sru"
        if (path, version) not in self._explain:
            settings = dataclasses.replace(self.settings, database=path, path="/" + path)
            self._explain[path, version] = explain_record(self.catalog.config, settings, version=version)
        return self._explain[path, version]

    def _query(self, req: sp.SearchRetrieveRequest) -> tuple[Query, list[Diagnostic]]:
        """The request's query in the query model, with the sort it asks for."""
        config = self.catalog.config
        if req.query_type == "pqf":
            query = pqf_query(req.query, config)
        else:
            query = parse_cql(req.query, config)
        diagnostics: list[Diagnostic] = []
        if req.parsed_sort_keys:  # SRU 1.1 / 2.0 sortKeys: paths -> indexes -> sort columns
            keys = tuple(
                SortKey(config.sort_column(k.index), k.ascending, k.missing_value)
                for k in sp.resolve_sort_keys(req.parsed_sort_keys, config)
            )
            sort, diagnostics = sp.effective_sort(query.sort, keys)
            query = Query(query.root, sort)
        return query, diagnostics

    async def search(self, req: sp.SearchRetrieveRequest, db: Database) -> bytes:
        config = self.catalog.config
        query, diagnostics = self._query(req)
        ttl = req.result_set_ttl if req.result_set_ttl is not None else self.settings.default_result_set_ttl
        ttl = min(ttl, self.settings.max_result_set_ttl)
        # the same query again on an unchanged catalog reuses a live result set's ids
        # (paging is cheap); each request still gets its own result set id and TTL
        rs = await self.route.search(Search(query, self.result_sets, database=db, ttl=ttl,
                                            reuse=not refers_to_result_sets(query)))
        total = rs.result.total
        start = req.start_record
        # a federation's targets that failed or timed out: non-fatal diagnostics naming them (partial results)
        diagnostics += [Diagnostic(2, p.target, p.message) for p in problems_of(rs.result)]
        if start > max(total, 1) or (total == 0 and start > 1):
            diagnostics.append(Diagnostic(61, str(start), f"first record position {start} is beyond the {total} hits"))
            return sp.searchretrieve_response(req, total=total, records=[], result_set_id=rs.id,
                                              result_set_ttl=rs.ttl, diagnostics=diagnostics)
        page_ids = await self.route.page(rs, start - 1, req.maximum_records) if req.maximum_records else []
        records: list = await self.route.fetch(page_ids, rs.database)
        if req.schema is OPAC_SCHEMA and records:
            # holdings with their live status: one read of the circulation database per page
            page = await self.route.call(holdings_of_page(self.route.availability, records))
            records = [render_record(r, OPAC_SCHEMA, opac_holdings(page[r.id])) for r in records]
        facets = None
        limits = sp.resolve_facet_limit(req.facet_limit, config.facets) if req.version == "2.0" else {}
        if limits:
            got = await self.route.facets(rs, list(limits), max(limits.values()))
            facets = {n: v[: limits[n]] for n, v in got.items()}
        return sp.searchretrieve_response(
            req, total=total, records=records, start=start, result_set_id=rs.id, result_set_ttl=rs.ttl,
            next_position=sp.next_record_position(start, len(page_ids), total), facets=facets,
            diagnostics=diagnostics, facet_defs=config.facets,
        )

    async def scan(self, req: sp.ScanRequest, db: Database) -> bytes:
        config = self.catalog.config
        m = re.fullmatch(r'\s*(\S+?)\s*(=|==|exact)\s*""\s*', req.scan_clause)
        if m:  # scan from the start of an index: index = ""
            q = Query(Clause(config.resolve(m.group(1)).name, "=", ""))
        else:
            q = parse_cql(req.scan_clause, config)
        if not isinstance(q.root, Clause):
            raise SRUDiagnosticError(10, req.scan_clause, "scanClause must be a single index relation term",
                                     version=req.version)
        terms = await self.route.scan(q.root.index, q.root.term, req.response_position, req.maximum_terms)
        return sp.scan_response(req, terms)


MAX_BODY = 1024 * 1024      # bytes of a POST body


def pqf_query(text: str, config) -> Query:
    """A PQF query sent over SRU (x-pquery, queryType=pqf) in the query model, with
    the Bib-1 semantics Z39.50 gives it (z3950/rpn/bib1.py); its diagnostics in
    SRU's numbering (a syntax error is 10)."""
    try:
        return rpn.rpn_to_query(rpn.parse_pqf(text), config, rpn.load_bib1_mapping())
    except rpn.PQFError as e:
        raise QueryError(10, text, f"PQF: {e}") from None
    except Bib1Diagnostic as d:
        raise to_query_error(d) from None


def refers_to_result_sets(query: Query) -> bool:
    """Whether a query names a result set (its hits then never come from a reused set)."""
    return any(isinstance(n, Clause) and n.index.lower() == "cql.resultsetid" for n in walk(query.root))


def sru_xml(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="text/xml", charset="utf-8")


async def request_params(request: web.Request) -> dict[str, list[str]]:
    """The SRU parameters of a request: its query string and, for a POST, its form
    body (sru/binding.py reads both; bytes that are not UTF-8 are a diagnostic).
    A body over MAX_BODY raises web.HTTPRequestEntityTooLarge."""
    params = decode_form(request.rel_url.raw_query_string.encode("utf-8", "surrogateescape"))
    if request.method != "POST":
        return params
    if request.content_type == "multipart/form-data":
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge:
            raise
        except Exception:  # noqa: BLE001 - an unreadable body is the client's; answered as SRU
            raise SRUDiagnosticError(6, "request body", "the multipart body could not be read") from None
        return merge(params, {k: [v] for k, v in form.items() if isinstance(v, str)})
    if request.content_type not in ("application/x-www-form-urlencoded", "application/octet-stream", ""):
        return params        # not a form (a SOAP envelope...): SRU's parameters are in the URL
    return merge(params, decode_form(await request.read()))


def make_app(data_dir: Path, *, catalog: Catalog | None = None, settings: sp.SRUSettings | None = None,
             host: str = "127.0.0.1", port: int = 8210, z3950_port: int | None = None,
             z3950_settings=None, z3950_workers: int = 1,
             z3950_worker_argv: Callable[[int], list[str]] | None = None,
             circulation=None, mailer=None, circulation_jobs=None, ill_config=None, ncip_config=None,
             cookie_secure: bool | None = None, search_timeout: float = BACKEND_TIMEOUT,
             sip2_port: int | None = None, sip2_config=None, harvest_sources=None,
             federation=None, oai=None, sru_result_sets: ResultSetStore | None = None,
             store_db: str | None = None) -> web.Application:
    """The SRU application; with ``z3950_port`` the same catalogs are also served
    over Z39.50 on ``host``:``z3950_port`` (started and stopped with the app).
    ``z3950_workers`` > 1: the port is shared (SO_REUSEPORT) with that many - 1
    worker processes, ``z3950_worker_argv(port)`` each (gateway/z3950_workers.py).

    With ``circulation`` (a :class:`circulation.service.Circulation`) the patron and
    staff JSON API is served under /api/v1 (the package gateway/api/) and the
    circulation jobs run inside the service (``circulation_jobs``: job name → interval;
    None = every job at its default interval, the notices job only with ``mailer``, a
    :class:`connectors.smtp.Mailer`; {} = none). ``cookie_secure``: the session
    cookie's Secure flag; None = on unless ``host`` is a loopback address.
    ``search_timeout``: the time one SRU or Z39.50 request may spend in the
    catalog (never more than the catalog's own search timeout). ``sip2_port``: also
    serve the self-check kiosks over SIP2 on ``host``:``sip2_port`` (needs
    ``circulation``; ``sip2_config``: the ``[sip2]`` section, gateway/sip2_server.py).
    OAI-PMH is answered at /oai and the harvest status at /harvest (gateway/oai.py);
    ``harvest_sources``: the ``[harvest.*]`` sources its scheduler runs; ``oai``: the ``[oai]``
    settings of the provider (gateway/oai.py load_oai_settings). ``federation``:
    the ``[federation.*]`` groups (search/federation.py), databases on both protocols.
    ``sru_result_sets``: SRU's store of result sets (default: this process's memory; the
    shared file when SRU workers serve too, gateway/sru_workers.py). ``store_db``: the record
    store is this PostgreSQL database (/oai and local.added read it; indexers/store_sql.py)."""
    catalog = catalog or SqliteCatalog(Path(data_dir) / "catalog.sqlite")
    route = catalog_route(data_dir, catalog, search_timeout=search_timeout, circulation=circulation,
                          federation=federation, store_db=store_db)
    app = web.Application(client_max_size=MAX_BODY, handler_args=handler_args())
    mount_sru(app, route, settings or sru_settings(host, port), sru_result_sets)

    async def root(request: web.Request) -> web.Response:
        return web.Response(text="unioncat: SRU at /sru and /sru/{database}\n")

    from .oai import es_config_of
    from .oai import mount as mount_oai

    mount_oai(app, data_dir, f"http://{host}:{port}/oai", harvest_sources=harvest_sources,
              es=es_config_of(catalog), settings=oai, store_db=store_db)
    if circulation is None:
        app.router.add_get("/", root)           # with a circulation database the pages are at / (gateway/web/)

    if z3950_port is not None:
        from .workers import Workers
        from .z3950_server import Z3950Server, make_service

        z_server = Z3950Server(make_service(route, z3950_settings))
        app[Z3950_SERVICE] = z_server.service
        workers: list[Workers] = []

        async def start_z3950(_app):
            try:
                bound = await z_server.start(host, z3950_port, reuse_port=z3950_workers > 1)
            except OSError as e:
                raise SystemExit(f"unioncat: cannot listen for Z39.50 on {host}:{z3950_port}: {e.strerror or e} "
                                 "(choose another --z3950-port, or 0 for none)") from None
            if z3950_workers > 1 and z3950_worker_argv is not None:
                w = Workers(z3950_worker_argv(bound), z3950_workers - 1)
                w.start()
                workers.append(w)
            log.info("Z39.50 on tcp:%s:%d (databases: %s; %d process%s)", host, bound,
                     ", ".join(route.databases.names()),
                     max(1, z3950_workers), "es" if z3950_workers > 1 else "")
            print(f"Z39.50 on tcp:{host}:{bound}", flush=True)

        async def stop_z3950(_app):
            for w in workers:
                await asyncio.to_thread(w.stop)
            await z_server.close()

        app.on_startup.append(start_z3950)
        app.on_cleanup.append(stop_z3950)

    if circulation is not None:
        from . import ill_service
        from .api import API, is_loopback, make_api

        # ISO 18626 (/iso18626) and NCIP (/ncip) when configured (gateway/ill_service.py)
        ill = ill_service.mount(app, circulation, catalog, ill_config, ncip_config)
        secure = (not is_loopback(host)) if cookie_secure is None else cookie_secure
        app.add_subapp(API, make_api(circulation, mailer=mailer, jobs_spec=circulation_jobs,
                                     cookie_secure=secure, ill=ill))
        from .web import mount as mount_web

        mount_web(app, circulation, ill=ill, cookie_secure=secure,   # the pages at / (docs/web.md)
                  route=route)
        if sip2_port is not None:
            from . import sip2_server
            sip2_server.mount(app, circulation, host, sip2_port, sip2_config, ill_service.CatalogTitles(catalog))
    elif sip2_port is not None:
        raise ValueError("SIP2 needs the circulation service")

    app.on_cleanup.append(lambda _app: close_catalog(catalog))
    return app


def sru_settings(host: str, port: int) -> sp.SRUSettings:
    """The SRU settings of the union catalog served on host:port."""
    return sp.SRUSettings(host=host, port=port, database="sru", database_title="Union catalog",
                          database_description="Union catalog of the member libraries (unioncat)")


def catalog_route(data_dir: Path, catalog: Catalog, *, search_timeout: float = BACKEND_TIMEOUT, circulation=None,
                  federation=None, store_db: str | None = None) -> SearchRoute:
    """The search route of the served catalog (search/route.py): its libraries, live
    availability and the network's days when there is a circulation service, new
    arrivals from the record store, the ``[federation.*]`` databases."""
    availability = zone = None
    if circulation is not None:   # live availability in records and the local.available limit
        from circulation.availability_view import CirculationAvailability

        availability = CirculationAvailability(circulation)
        zone = circulation.clock.tz                              # the network's days for local.added
    store = Path(data_dir) / "catalog.sqlite"
    # new arrivals are asked of the record store; a gateway in front of an Elasticsearch index
    # without a store of its own answers local.added with a diagnostic (search/arrivals.py)
    from .oai import es_config_of

    if store_db:                              # the record store in PostgreSQL (--store-db)
        arrivals: StoreArrivals | None = StoreArrivals(store_db)
    else:
        arrivals = StoreArrivals(store) if store.exists() or es_config_of(catalog) is None else None
    route = make_route(catalog, load_libraries().names(), timeout=search_timeout, availability=availability,
                       arrivals=arrivals, zone=zone)
    if federation:   # [federation.<name>] groups: databases of their own (search/federation.py)
        from connectors.federation_targets import add_to_route

        add_to_route(route, federation, rpn.load_bib1_mapping().use)
    return route


def mount_sru(app: web.Application, route: SearchRoute, settings: sp.SRUSettings,
              result_sets: ResultSetStore | None = None) -> SRUService:
    """SRU at /sru and /sru/{database} (GET and POST) on ``app``; ``result_sets``: where
    the result sets live (default: this process's memory), closed with the app."""
    svc = SRUService(route, settings, result_sets if result_sets is not None else ResultSets())
    use_tolerant_request_parser()
    app[SRU_SERVICE] = svc

    async def sru(request: web.Request) -> web.Response:
        try:
            params = await request_params(request)
        except SRUDiagnosticError as e:
            return sru_xml(sp.error_response(e))
        except web.HTTPRequestEntityTooLarge:
            err = SRUDiagnosticError(6, "request body", f"the request body is larger than {MAX_BODY} bytes")
            return sru_xml(sp.error_response(err), status=413)
        database = request.match_info.get("database", "default")
        return sru_xml(await svc.handle(params, database))

    for method in ("GET", "POST"):
        app.router.add_route(method, "/sru", sru)
        app.router.add_route(method, "/sru/{database}", sru)
    close = getattr(svc.result_sets, "close", None)
    if close is not None:
        async def close_result_sets(_app):
            close()

        app.on_cleanup.append(close_result_sets)
    return svc


def make_sru_app(data_dir: Path, *, catalog: Catalog | None = None, host: str = "127.0.0.1", port: int = 8210,
                 circulation=None, federation=None, result_sets: ResultSetStore | None = None,
                 search_timeout: float = BACKEND_TIMEOUT, store_db: str | None = None) -> web.Application:
    """SRU alone (/sru and /sru/{database}), as an SRU worker process serves it: the same
    service as ``make_app``'s over its own catalog handle; the explain record names
    host:port, where the worker answers."""
    catalog = catalog or SqliteCatalog(Path(data_dir) / "catalog.sqlite")
    route = catalog_route(data_dir, catalog, search_timeout=search_timeout, circulation=circulation,
                          federation=federation, store_db=store_db)
    app = web.Application(client_max_size=MAX_BODY, handler_args=handler_args())
    mount_sru(app, route, sru_settings(host, port), result_sets)
    app.on_cleanup.append(lambda _app: close_catalog(catalog))
    return app


async def close_catalog(catalog: Catalog) -> None:
    if hasattr(catalog, "aclose"):
        await catalog.aclose()
    elif hasattr(catalog, "close"):
        catalog.close()


def use_event_loop(kind: str = "auto") -> str:
    """Choose the event loop for the server: "uvloop" (libuv; sockets, timers and
    thread-pool wake-ups cost a fraction of asyncio's own loop, which matters for
    Z39.50's many small requests), "asyncio", or "auto" (uvloop when installed:
    the [fast] extra). Returns the loop chosen; "uvloop" without uvloop is an error."""
    if kind == "asyncio":
        return "asyncio"
    try:
        import uvloop
    except ImportError:
        if kind == "uvloop":
            raise SystemExit("unioncat: --event-loop uvloop needs uvloop (pip install 'unioncat[fast]')") from None
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def run_server(data_dir: Path, host: str, port: int, catalog: Catalog | None = None,
               z3950_port: int | None = None, event_loop: str = "auto", z3950_workers: int = 1,
               z3950_worker_argv: Callable[[int], list[str]] | None = None,
               circ_db: str | None = None, mailer=None, cookie_secure: bool | None = None,
               ill_config=None, ncip_config=None, sip2_port: int | None = None, sip2_config=None,
               harvest_sources=None, federation=None, oai=None, sru_result_sets: ResultSetStore | None = None,
               store_db: str | None = None, circ_processes: int = 1) -> None:
    """Serve until interrupted. ``circ_db``: the circulation database's URL; with it the
    patron/staff API runs at /api/v1 together with the circulation jobs (the notices
    job only with ``mailer``); ``circ_processes``: how many processes serve that API
    (with --api-workers N: N + 1), which share the configured connection pool."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("unioncat").info("event loop: %s", use_event_loop(event_loop))
    circulation = None
    if circ_db:
        from circulation.service import Circulation
        from circulation.store import Database

        circulation = Circulation(Database(circ_db, pool_share=circ_processes))
        log.info("circulation API at /api/v1 (database %s)",
                 circulation.db.url.render_as_string(hide_password=True))

    app = make_app(data_dir, host=host, port=port, catalog=catalog, z3950_port=z3950_port,
                   z3950_workers=z3950_workers, z3950_worker_argv=z3950_worker_argv,
                   circulation=circulation, mailer=mailer, cookie_secure=cookie_secure,
                   ill_config=ill_config, ncip_config=ncip_config, sip2_port=sip2_port,
                   sip2_config=sip2_config, harvest_sources=harvest_sources, federation=federation,
                   oai=oai, sru_result_sets=sru_result_sets, store_db=store_db)

    async def freeze(_app: web.Application) -> None:      # the last start-up step (workers.py)
        from .workers import freeze_startup_heap
        freeze_startup_heap()
    app.on_startup.append(freeze)
    web.run_app(app, host=host, port=port, access_log=None, print=lambda s: print(s, flush=True))
