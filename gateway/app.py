"""The HTTP service: a thin aiohttp shell around the sans-I/O SRU core.

/sru              the union catalog (every member library)
/sru/{database}   a virtual database: "default" (= /sru) or a member library's
                  code, which restricts every search to records that library holds
                  (like a Metaproxy virt_db route)
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from indexers.backend import BackendUnavailable, Catalog
from indexers.backends.sqlite_index import SqliteCatalog
from indexers.holdings import load_libraries
from indexers.query_model import Boolean, Clause, Query, QueryError
from sru import protocol as sp
from sru.cql import parse_cql
from sru.diagnostics import SRUDiagnosticError

from .result_sets import ResultSetStore

log = logging.getLogger("unioncat.gateway")
BACKEND_TIMEOUT = 10.0  # seconds before a search answers diagnostic 1


@dataclass
class SRUService:
    catalog: Catalog
    settings: sp.SRUSettings
    databases: dict[str, str | None] = field(default_factory=dict)  # name -> library filter (None = all)
    result_sets: ResultSetStore = field(default_factory=ResultSetStore)

    async def handle(self, params: dict[str, list[str]], database: str) -> bytes:
        op, version = _guess_op_version(params)
        try:
            req = sp.parse_request(params, defaults=self.settings)
            if database not in self.databases:
                raise SRUDiagnosticError(235, database, f"database {database} does not exist", version=req.version)
            if isinstance(req, sp.ExplainRequest):
                return sp.explain_response(req, self.explain_info(database))
            if isinstance(req, sp.ScanRequest):
                return await self.scan(req, database)
            return await self.search(req, database)
        except SRUDiagnosticError as e:
            return sp.diagnostic_response(op, e.version or version, e)
        except QueryError as e:
            return sp.diagnostic_response(op, version, SRUDiagnosticError(e.code, e.details, e.message, version=version))
        except (BackendUnavailable, asyncio.TimeoutError) as e:
            log.warning("backend unavailable: %r", e)
            return sp.diagnostic_response(
                op, version, SRUDiagnosticError(1, "", "the index is temporarily unavailable; try again", version=version)
            )

    def explain_info(self, database: str):
        return sp.ExplainInfo(database=database) if hasattr(sp, "ExplainInfo") else None

    def _restrict(self, query: Query, database: str) -> Query:
        lib = self.databases.get(database)
        if lib is None:
            return query
        flt = Clause("bath.possessingInstitution", "==", lib)
        return Query(Boolean("and", query.root, flt), query.sort)

    async def search(self, req: sp.SearchRetrieveRequest, database: str) -> bytes:
        config = getattr(self.catalog, "config", None)
        query = parse_cql(req.query, config)
        if req.sort_keys:
            query = Query(query.root, tuple(sp.parse_sort_keys(req.sort_keys, config)))
        query = self._restrict(query, database)
        key = f"{database}\x00{query!r}"
        rs = self.result_sets.find(key, query.sort)
        if rs is None:
            res = await asyncio.wait_for(
                self.catalog.search(query, result_sets=self.result_sets.as_mapping()), BACKEND_TIMEOUT
            )
            ttl = req.result_set_ttl if req.result_set_ttl is not None else self.settings.default_result_set_ttl
            ttl = min(ttl, self.settings.max_result_set_ttl)
            rs = self.result_sets.put(key, res.ids, ttl, query.sort)
        total = len(rs.ids)
        start = req.start_record
        if total and start > total or (not total and start > 1):
            raise SRUDiagnosticError(61, str(start), f"first record position {start} is beyond {total} hits",
                                     version=req.version)
        page_ids = rs.ids[start - 1 : start - 1 + req.maximum_records] if req.maximum_records else []
        records = await asyncio.wait_for(self.catalog.fetch(page_ids), BACKEND_TIMEOUT) if page_ids else []
        nxt = start + len(page_ids) if start - 1 + len(page_ids) < total and page_ids else None
        facets = None
        if req.facet_limit and req.version == "2.0":
            names, limits = _facet_request(req.facet_limit, config)
            facets = await asyncio.wait_for(self.catalog.facets(rs.ids, names, max(limits.values())), BACKEND_TIMEOUT)
            facets = {n: v[: limits[n]] for n, v in facets.items()}
        return sp.searchretrieve_response(
            req, total=total, records=records, start=start, result_set_id=rs.id, result_set_ttl=rs.ttl,
            next_position=nxt, facets=facets,
        )

    async def scan(self, req: sp.ScanRequest, database: str) -> bytes:
        config = getattr(self.catalog, "config", None)
        q = parse_cql(req.scan_clause, config)
        if not isinstance(q.root, Clause):
            raise SRUDiagnosticError(10, req.scan_clause, "scanClause must be a single index relation term",
                                     version=req.version)
        terms = await asyncio.wait_for(
            self.catalog.scan(q.root.index, q.root.term, req.response_position, req.maximum_terms), BACKEND_TIMEOUT
        )
        return sp.scan_response(req, terms)


def _facet_request(limits: dict[str, int], config) -> tuple[list[str], dict[str, int]]:
    """facetLimit "10:dc.language,5:dc.date" or a bare "10" (all facets) -> facet names."""
    by_index = {f.index: n for n, f in config.facets.items()}
    out: dict[str, int] = {}
    for idx, n in limits.items():
        if idx in ("*", ""):
            for name in config.facets:
                out.setdefault(name, n)
            continue
        name = by_index.get(idx) or (idx if idx in config.facets else None)
        if name is None:
            try:
                name = by_index.get(config.resolve(idx).name)
            except QueryError:
                name = None
        if name is None:
            raise QueryError(6, idx, f"no facet for index {idx}; facets: {', '.join(sorted(by_index))}")
        out[name] = n
    return list(out), out


def _guess_op_version(params: dict[str, list[str]]) -> tuple[str, str]:
    version = (params.get("version") or ["2.0"])[0]
    if version not in ("1.1", "1.2", "2.0"):
        version = "2.0"
    op = (params.get("operation") or [""])[0]
    if not op:
        op = "searchRetrieve" if "query" in params else "scan" if "scanClause" in params else "explain"
    if op not in ("searchRetrieve", "scan", "explain"):
        op = "searchRetrieve"
    return op, version


def make_app(data_dir: Path, *, catalog: Catalog | None = None, settings: sp.SRUSettings | None = None) -> web.Application:
    catalog = catalog or SqliteCatalog(Path(data_dir) / "catalog.sqlite")
    databases: dict[str, str | None] = {"default": None}
    for code in load_libraries().names():
        databases[code] = code
    svc = SRUService(catalog, settings or sp.SRUSettings(), databases)
    app = web.Application(client_max_size=1024 * 1024)
    app["sru"] = svc

    async def sru(request: web.Request) -> web.Response:
        params: dict[str, list[str]] = {}
        for k, v in request.query.items():
            params.setdefault(k, []).append(v)
        if request.method == "POST":
            try:
                form = await request.post()
            except Exception:  # noqa: BLE001 - an unreadable body is a client error, answered as SRU
                form = {}
            for k, v in form.items():
                if isinstance(v, str):
                    params.setdefault(k, []).append(v)
        database = request.match_info.get("database", "default")
        body = await svc.handle(params, database)
        return web.Response(body=body, content_type="text/xml", charset="utf-8")

    async def root(request: web.Request) -> web.Response:
        return web.Response(text="unioncat: SRU at /sru and /sru/{database}\n")

    app.router.add_route("GET", "/sru", sru)
    app.router.add_route("POST", "/sru", sru)
    app.router.add_route("GET", "/sru/{database}", sru)
    app.router.add_route("POST", "/sru/{database}", sru)
    app.router.add_get("/", root)

    async def close(_app):
        closer = getattr(catalog, "close", None)
        if closer:
            closer()

    app.on_cleanup.append(close)
    return app


def run_server(data_dir: Path, host: str, port: int) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    web.run_app(make_app(data_dir), host=host, port=port, access_log=None, print=lambda s: print(s, flush=True))
