"""The Z39.50 target: a thin asyncio shell around the sans-I/O core in z3950/,
searching through the search route (search/route.py) that SRU uses too.

Databases are the route's (search/databases.py): ``Default`` (any case) is the
whole union catalog, a holding library's code restricts every search to the
records that library holds.

Per association the target keeps its named result sets (``namedResultSets``)
in a route result-set store, at most ``max_result_sets`` of them (Bib-1 112
beyond that).  Limits guard the service: ``max_sessions`` (a connection beyond
it gets Close 'resources'), ``init_timeout`` (no Init), ``idle_timeout`` (no
request; Close 'lackOfActivity'), ``request_timeout`` per request (the route's
budget; Bib-1 2, temporary system error), the negotiated message sizes, and the
BER limits of the decoder (malformed or oversized input: Close 'protocolError'
/ 'resources', logged).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from typing import Mapping

from indexers.backend import BackendUnavailable
from indexers.query_model import Query, QueryError, SortKey
from search.availability import AvailabilitySource
from search.federation import problems_of, unavailable_message
from search.result_sets import ResultSet, ResultSets
from search.route import Search, SearchRoute
from sru.cql import parse_cql
from sru.diagnostics import SRUDiagnosticError
from sru.record_schemas import OPAC as OPAC_SCHEMA
from sru.record_schemas import RecordSchema, render_record, resolve_schema
from z3950 import charneg, rpn
from z3950 import pdu as P
from z3950 import records as R
from z3950.ber import BERError
from z3950.diagnostics import Bib1Diagnostic, from_query_error
from z3950.session import TARGET, ConnectionClosed, NeedData, ProtocolViolation, Session

from .availability import holdings_of_page, opac_holdings, z3950_availability, z3950_record
from .tcp_server import TcpServer

log = logging.getLogger("unioncat.z3950")

SUPPORTED_OPTIONS = frozenset({"search", "present", "delSet", "scan", "sort", "namedResultSets",
                               "negotiationModel", "queryType104"})
MAX_MESSAGE_SIZE = 16 * 1024 * 1024
MAX_PRESENT = 1000                 # records in one Present; beyond: 1000 with presentStatus partial-4
MAX_SCAN_TERMS = 200


@dataclass
class Z3950Settings:
    max_sessions: int = 200
    max_result_sets: int = 50
    evict_result_sets: bool = True     # beyond max_result_sets drop the least recently used (False: Bib-1 112)
    init_timeout: float = 30.0
    idle_timeout: float = 600.0
    request_timeout: float = 10.0  # one request's budget in the route (never more than the route's own)
    max_apdu: int = 1024 * 1024    # largest request APDU accepted
    credentials: Mapping[str, str] | None = None   # user -> password; None: anyone may connect


@lru_cache(maxsize=1)
def _implementation_version() -> str:
    try:
        return metadata.version("unioncat")
    except metadata.PackageNotFoundError:
        return "dev"


@dataclass
class Z3950Service:
    route: SearchRoute
    settings: Z3950Settings = field(default_factory=Z3950Settings)
    # the circulation database's view (search/availability.py): OPAC circulationData and
    # SUTRS availability lines, read once per page of records; default: the route's
    availability: AvailabilitySource | None = None
    sessions: int = 0

    def __post_init__(self):
        if self.availability is None:
            self.availability = self.route.availability
        self.catalog = self.route.catalog
        self.config = self.catalog.config
        self.bib1 = rpn.load_bib1_mapping()

    def new_result_sets(self) -> ResultSets:
        """An association's store of named result sets."""
        return ResultSets(self.settings.max_result_sets, evict=self.settings.evict_result_sets)

    def request(self):
        """One request's time budget in the route."""
        return self.route.request(self.settings.request_timeout)

    # -- Init
    def init_response(self, req: P.InitializeRequest) -> tuple[P.InitializeResponse, str | None]:
        """The answer to an Init, and why it was rejected (None if accepted)."""
        reason = None
        if not req.protocol_version & {2, 3}:
            reason = f"protocol versions {sorted(req.protocol_version)} not supported (2 or 3)"
        elif self.settings.credentials is not None:
            auth = req.id_authentication
            user = password = None
            if isinstance(auth, P.IdPass):
                user, password = auth.user_id, auth.password
            elif isinstance(auth, P.IdOpen) and "/" in auth.text:
                user, password = auth.text.split("/", 1)
            if user is None or self.settings.credentials.get(user) != password:
                reason = "authentication failed"
        try:
            proposal = charneg.parse_proposal(req.other_info)
        except BERError as e:       # a malformed proposal is ignored, as if none was made
            log.info("z3950: ignoring a malformed character-set proposal in an Init: %s", e)
            proposal = None
        selection = charneg.negotiate(proposal)
        other = None
        if selection is not None and "negotiationModel" in req.options:
            other = charneg.selection_other_info(selection.charset, selection.records_in_selected_charsets)
        versions = frozenset(v for v in (1, 2, 3) if v in req.protocol_version)
        response = P.InitializeResponse(
            result=reason is None, protocol_version=versions, options=req.options & SUPPORTED_OPTIONS,
            preferred_message_size=max(4096, min(req.preferred_message_size, MAX_MESSAGE_SIZE)),
            exceptional_record_size=max(4096, min(req.exceptional_record_size, MAX_MESSAGE_SIZE)),
            reference_id=req.reference_id, implementation_id="unioncat",
            implementation_name="unioncat union-catalog gateway", implementation_version=_implementation_version(),
            other_info=other)
        return response, reason

    # -- helpers
    def _to_query(self, query) -> Query:
        try:
            if isinstance(query, rpn.RPNQuery):
                return rpn.rpn_to_query(query, self.config, self.bib1)
            if isinstance(query, P.CQLQuery):
                return parse_cql(query.text, self.config)
        except QueryError as e:
            raise from_query_error(e) from None
        raise Bib1Diagnostic(107, f"query type {getattr(query, 'type', '?')}")

    async def _timed(self, coro):
        """Await a route call, its errors said as Bib-1 diagnostics."""
        try:
            return await coro
        except BackendUnavailable as e:
            log.warning("backend unavailable: %r", e)
            raise Bib1Diagnostic(2, unavailable_message(e)) from None
        except QueryError as e:
            raise from_query_error(e) from None

    async def _records(self, rs: ResultSet, start: int, count: int, syntax: str, esn: str | None,
                       message_size: int, record_size: int, encoding: str,
                       schema: RecordSchema | None = None) -> tuple[list[P.NamePlusRecord], int]:
        """Records start..start+count-1 (1-based) as NamePlusRecords, cut at the
        message size; returns them and the presentStatus.  ``schema``: an XML
        schema other than MARCXML asked for by element set name (dc, mods)."""
        count = min(count, MAX_PRESENT)
        raw: dict[int, bytes | None] = {}
        fast = None
        if syntax == R.USMARC and esn == "F" and schema is None:
            # full USMARC records spliced from the stored ISO 2709, page and records in one call
            fast = await self._timed(self.route.page_iso2709(rs, start - 1, count))
        if fast is not None:
            ids, raw = fast
            slow = [i for i in ids if i in raw and raw[i] is None]
        else:
            ids = await self._timed(self.route.page(rs, start - 1, count))
            slow = ids
        fetched = await self._timed(self.route.fetch(slow, rs.database)) if slow else []
        page = None
        if self.availability is not None and (syntax in (R.OPAC, R.SUTRS) or schema is OPAC_SCHEMA):
            # the live status of the page's holdings: one read of the circulation database
            page = await self._timed(self.route.call(holdings_of_page(self.availability, fetched)))
        by_id = {r.id: r for r in fetched}
        out: list[P.NamePlusRecord] = []
        total = 0
        status = 0
        for rid in ids:
            iso = raw.get(rid)
            if iso is not None:
                data = R.usmarc_external(iso)
            else:
                record = by_id.get(rid)
                if record is None:        # withdrawn since the search
                    out.append(P.NamePlusRecord(rs.database.name, diagnostic=P.Diagnostic(
                        14, f"record {rid} was withdrawn since the search")))
                    continue
                try:
                    if schema is not None:
                        holdings = opac_holdings(page[rid]) if page is not None and schema is OPAC_SCHEMA else None
                        rendered = render_record(record, schema, holdings)
                        if rendered.diagnostic is not None:
                            raise R.RecordSyntaxError(R.DIAG_RECORD_NOT_IN_SYNTAX, str(rid),
                                                      rendered.diagnostic.text or "")
                        data = R.xml_external(rendered.as_string(), syntax)
                    else:
                        if page is not None:
                            data = R.encode_record(z3950_record(page, record), syntax, esn,
                                                   availability=z3950_availability, encoding=encoding)
                        else:
                            data = R.encode_record(record, syntax, esn, encoding=encoding)
                except R.RecordSyntaxError as e:
                    out.append(P.NamePlusRecord(rs.database.name, diagnostic=P.Diagnostic(e.code, e.addinfo)))
                    continue
            if len(data) > record_size:
                out.append(P.NamePlusRecord(rs.database.name, diagnostic=P.Diagnostic(
                    17, f"record of {len(data)} bytes exceeds exceptional record size {record_size}")))
                continue
            if out and total + len(data) > message_size:
                status = 2                # partial-2: message size too small for all records
                break
            total += len(data)
            out.append(P.NamePlusRecord(rs.database.name, record=data))
        return out, status

    # -- operations
    async def search(self, req: P.SearchRequest, state: "Association") -> P.SearchResponse:
        async with self.request():
            return await self._search(req, state)

    async def _search(self, req: P.SearchRequest, state: "Association") -> P.SearchResponse:
        name = req.result_set_name or "default"
        try:
            rs = await self._timed(self.route.search(Search(
                None, state.result_sets, databases=tuple(req.database_names), name=name,
                replace=req.replace_indicator, translate=lambda: self._to_query(req.query))))
        except Bib1Diagnostic as d:
            return P.SearchResponse(0, 0, 0, False, result_set_status=3, diagnostics=(P.Diagnostic(d.code, d.addinfo),),
                                    reference_id=req.reference_id)
        database = rs.database.name
        result = rs.result
        hits = result.total
        # piggy-backed records: small set -> all, medium set -> mediumSetPresentNumber
        if hits and hits <= req.small_set_upper_bound:
            count, esn = hits, req.small_set_element_set_names
        elif hits and hits < req.large_set_lower_bound:
            count, esn = min(req.medium_set_present_number, hits), req.medium_set_element_set_names
        else:
            count, esn = 0, None
        left_out = problems_of(result)
        if left_out:   # a federation with targets left out: a partial result set naming them (Bib-1 109)
            return P.SearchResponse(hits, 0, 1, False, result_set_status=1, reference_id=req.reference_id,
                                    diagnostics=tuple(P.Diagnostic(109, p.message) for p in left_out))
        if count <= 0:
            return P.SearchResponse(hits, 0, 1, True, reference_id=req.reference_id)
        try:
            syntax = R.resolve_syntax(req.preferred_record_syntax or R.USMARC)
            element_set, schema = _element_set(_generic_esn(esn, database), syntax)
            records, status = await self._records(rs, 1, count, syntax, element_set, state.message_size,
                                                  state.record_size, state.session.encoding, schema)
        except (Bib1Diagnostic, R.RecordSyntaxError) as d:
            return P.SearchResponse(hits, 0, 1, True, present_status=5,
                                    diagnostics=(P.Diagnostic(d.code, d.addinfo),), reference_id=req.reference_id)
        return P.SearchResponse(hits, len(records), 1 + len(records), True, present_status=status,
                                records=tuple(records), reference_id=req.reference_id)

    async def present(self, req: P.PresentRequest, state: "Association") -> P.PresentResponse:
        async with self.request():
            return await self._present(req, state)

    async def _present(self, req: P.PresentRequest, state: "Association") -> P.PresentResponse:
        def failure(code: int, addinfo: str) -> P.PresentResponse:
            return P.PresentResponse(0, 0, 5, diagnostics=(P.Diagnostic(code, addinfo),),
                                     reference_id=req.reference_id)
        rs = state.result_sets.get(req.result_set_id)
        if rs is None:
            return failure(*_missing_set(state, req.result_set_id))
        total = rs.result.total
        if req.start_point < 1 or req.start_point > total or req.number_of_records < 0:
            return failure(13, f"start {req.start_point}, {req.number_of_records} records of {total}")
        if req.comp_spec is not None:
            return failure(26, "complex record composition (CompSpec) is not supported; use element set names")
        if req.additional_ranges:
            return failure(243, "additional ranges are not supported")
        count = min(req.number_of_records, total - req.start_point + 1)
        try:
            syntax = R.resolve_syntax(req.preferred_record_syntax or R.USMARC)
            element_set, schema = _element_set(_generic_esn(req.element_set_names, rs.database.name), syntax)
            records, status = await self._records(
                rs, req.start_point, count, syntax, element_set,
                min(state.message_size, req.max_record_size or state.message_size), state.record_size,
                state.session.encoding, schema)
        except (Bib1Diagnostic, R.RecordSyntaxError) as d:
            return failure(d.code, d.addinfo)
        if count > MAX_PRESENT and not status:
            status = 4                    # partial-4: the target's limit on records per Present
        return P.PresentResponse(len(records), req.start_point + len(records), status, records=tuple(records),
                                 reference_id=req.reference_id)

    async def scan(self, req: P.ScanRequest, state: "Association") -> P.ScanResponse:
        async with self.request():
            return await self._scan(req, state)

    async def _scan(self, req: P.ScanRequest, state: "Association") -> P.ScanResponse:
        try:
            if req.attribute_set not in (None, rpn.BIB1):
                raise Bib1Diagnostic(121, req.attribute_set)
            await self._timed(self.route.database(tuple(req.database_names)))
            index, term = rpn.apt_to_scan(req.term, self.config, self.bib1)
            wanted = max(0, min(req.number_of_terms_requested, MAX_SCAN_TERMS))
            position = req.preferred_position if req.preferred_position is not None else 1
            position = max(1, min(position, wanted + 1))
            terms = await self._timed(self.route.scan(index, term, position, wanted)) if wanted else []
        except Bib1Diagnostic as d:
            return P.ScanResponse(6, 0, diagnostics=(P.Diagnostic(d.code, d.addinfo),), reference_id=req.reference_id)
        entries = tuple(P.ScanEntry(t.value, t.display, t.count) for t in terms)
        before = _terms_before(terms, term)
        status = 0 if len(entries) >= wanted else 4
        return P.ScanResponse(status, len(entries), before + 1 if entries else None, entries, step_size=0,
                              reference_id=req.reference_id)

    async def sort(self, req: P.SortRequest, state: "Association") -> P.SortResponse:
        async with self.request():
            return await self._sort(req, state)

    async def _sort(self, req: P.SortRequest, state: "Association") -> P.SortResponse:
        def failure(code: int, addinfo: str) -> P.SortResponse:
            return P.SortResponse(2, 4, (P.Diagnostic(code, addinfo),), reference_id=req.reference_id)
        if len(req.input_result_set_names) != 1:
            return failure(230, "sort one result set at a time")
        rs = state.result_sets.get(req.input_result_set_names[0])
        if rs is None:
            return failure(*_missing_set(state, req.input_result_set_names[0]))
        if state.result_sets.full(req.sorted_result_set_name):
            return failure(112, str(self.settings.max_result_sets))
        keys = []
        try:
            for spec in req.sort_sequence:
                if spec.relation not in (0, 1):
                    raise Bib1Diagnostic(237, f"sort relation {spec.relation}")
                if spec.missing_value_action == "abort" or isinstance(spec.missing_value_action, bytes):
                    raise Bib1Diagnostic(213, "missing value action: only 'null' (missing values sort last)")
                if spec.sort_field is not None:
                    column = rpn.sort_column_for(spec.sort_field, self.config, self.bib1)
                elif spec.attributes is not None:
                    if spec.attribute_set not in (None, rpn.BIB1):
                        raise Bib1Diagnostic(121, spec.attribute_set)
                    column = rpn.sort_column_for(spec.attributes, self.config, self.bib1)
                else:
                    raise Bib1Diagnostic(207, "sort keys are sort fields or Bib-1 use attributes")
                keys.append(SortKey(column, spec.relation == 0, "highValue"))
            query = Query(rs.query.root, tuple(keys), rs.query.ranked)
            sorted_rs = await self._timed(self.route.search(Search(
                query, state.result_sets, database=rs.database, name=req.sorted_result_set_name,
                drop_stale=False)))
        except Bib1Diagnostic as d:
            return failure(d.code, d.addinfo)
        return P.SortResponse(0, None, (), sorted_rs.result.total, reference_id=req.reference_id)

    async def delete(self, req: P.DeleteResultSetRequest, state: "Association") -> P.DeleteResultSetResponse:
        if req.delete_function == 1:
            n = state.result_sets.clear()
            return P.DeleteResultSetResponse(0, bulk_statuses=None, delete_message=f"{n} result sets deleted",
                                             reference_id=req.reference_id)
        statuses = []
        for name in req.result_set_list:
            statuses.append((name, 0 if state.result_sets.remove(name) else 1))
        overall = 0 if all(s == 0 for _, s in statuses) else 9
        return P.DeleteResultSetResponse(overall, tuple(statuses), reference_id=req.reference_id)


def failure_response(req, code: int, addinfo: str):
    """The response that reports a request as failed with one Bib-1 diagnostic."""
    diag = (P.Diagnostic(code, addinfo),)
    ref = req.reference_id
    if isinstance(req, P.SearchRequest):
        return P.SearchResponse(0, 0, 0, False, result_set_status=3, diagnostics=diag, reference_id=ref)
    if isinstance(req, P.PresentRequest):
        return P.PresentResponse(0, 0, 5, diagnostics=diag, reference_id=ref)
    if isinstance(req, P.ScanRequest):
        return P.ScanResponse(6, 0, diagnostics=diag, reference_id=ref)
    if isinstance(req, P.SortRequest):
        return P.SortResponse(2, 4, diag, reference_id=ref)
    return P.DeleteResultSetResponse(3, delete_message=addinfo, reference_id=ref)


def _element_set(name: str | None, syntax: str) -> tuple[str, RecordSchema | None]:
    """Z39.50's element set names F and B, and with an XML record syntax also the
    names (or URIs) of the SRU record schemas, as YAZ and Zebra clients choose an
    XML schema (``format xml``, ``elements dc``): marcxml (the full record), dc,
    mods.  Returns (F or B, the schema when it is not MARCXML); anything else
    raises RecordSyntaxError 25."""
    try:
        return R.resolve_element_set(name), None
    except R.RecordSyntaxError:
        if syntax in (R.XML, R.XML_APPLICATION) and name:
            try:
                schema = resolve_schema(name)
            except SRUDiagnosticError:
                schema = None
            if schema is not None and schema.is_xml:
                return "F", (None if schema.name == "marcxml" else schema)
        raise


def _missing_set(state: "Association", name: str) -> tuple[int, str]:
    """Bib-1 27 for a set the target dropped to make room, else 30."""
    return (27 if state.result_sets.was_evicted(name) else 30), name


def _generic_esn(esn: P.ElementSetNames | None, database: str) -> str | None:
    if esn is None or isinstance(esn, str):
        return esn
    for db, name in esn:
        if db.lower() == database.lower():
            return name
    return None


def _terms_before(terms, term: str) -> int:
    """How many returned terms sort before the scan term (its 1-based position - 1)."""
    from indexers import terms as T
    try:
        key = T.scan_key(None, term)
    except Exception:  # noqa: BLE001 - a term the normalizer rejects sorts first
        return 0
    numeric = key.lstrip("-").isdigit() and all(t.value.lstrip("-").isdigit() for t in terms)
    if numeric:
        return sum(1 for t in terms if int(t.value) < int(key))
    return sum(1 for t in terms if t.value < key)


@dataclass
class Association:
    session: Session
    peer: str
    result_sets: ResultSets = field(default_factory=ResultSets)
    message_size: int = 1024 * 1024
    record_size: int = 1024 * 1024
    initialised: bool = False


class _IdleWatch:
    """How long an association may wait for its next bytes (Init, then idle timeout),
    without a timer per read: one timer is armed for the earliest moment the current
    wait could run out; when it fires and the association has read since (or is busy
    with a request), it is armed again for the wait then current, else the wait is
    cancelled (``expired`` tells that cancellation from any other)."""

    __slots__ = ("loop", "task", "since", "limit", "handle", "fired")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.since: float | None = None       # when the current wait began (None: not waiting)
        self.limit = 0.0
        self.handle: asyncio.TimerHandle | None = None
        self.fired = False

    def waiting(self, limit: float) -> None:
        now = self.loop.time()
        self.since, self.limit = now, limit
        h = self.handle
        if h is None or h.when() > now + limit:
            if h is not None:
                h.cancel()
            self.handle = self.loop.call_at(now + limit, self._check)

    def busy(self) -> None:
        self.since = None

    def expired(self) -> bool:
        """Whether this watch cancelled the wait (and not someone else as well)."""
        if not self.fired:
            return False
        self.fired = False
        return self.task is None or self.task.uncancel() == 0

    def _check(self) -> None:
        self.handle = None
        if self.since is None:
            return                          # not waiting: the next wait arms it again
        due = self.since + self.limit
        if self.loop.time() < due:
            self.handle = self.loop.call_at(due, self._check)
        elif self.task is not None:
            self.fired = True
            self.task.cancel()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


class Z3950Server(TcpServer):
    """Accepts connections and runs one association per connection."""
    name = "z3950"

    def __init__(self, service: Z3950Service):
        super().__init__()
        self.service = service

    async def _serve(self, reader, writer, peer: str) -> None:
        svc, settings = self.service, self.service.settings
        session = Session(TARGET, max_apdu=settings.max_apdu)
        state = Association(session, peer, svc.new_result_sets())
        if svc.sessions >= settings.max_sessions:
            log.warning("z3950 %s: refused, %d sessions open", peer, svc.sessions)
            writer.write(session.send(P.Close(4, diagnostic_information="too many sessions; try later")))
            await writer.drain()
            return
        svc.sessions += 1
        try:
            await self._loop(reader, writer, session, state)
        finally:
            svc.sessions -= 1

    async def _loop(self, reader, writer, session: Session, state: Association) -> None:
        idle = _IdleWatch()
        try:
            await self._requests(reader, writer, session, state, idle)
        finally:
            idle.close()

    async def _requests(self, reader, writer, session: Session, state: Association, idle: "_IdleWatch") -> None:
        svc, settings = self.service, self.service.settings
        handlers = {P.SearchRequest: svc.search, P.PresentRequest: svc.present, P.ScanRequest: svc.scan,
                    P.SortRequest: svc.sort, P.DeleteResultSetRequest: svc.delete}
        while True:
            event = session.next_event()
            if isinstance(event, NeedData):
                idle.waiting(settings.init_timeout if state.session.state == "awaiting-init"
                             else settings.idle_timeout)
                try:
                    data = await reader.read(65536)
                except asyncio.CancelledError:
                    if not idle.expired():
                        raise
                    log.info("z3950 %s: closing idle association", state.peer)
                    writer.write(session.send(P.Close(7, diagnostic_information="idle timeout")))
                    await writer.drain()
                    return
                finally:
                    idle.busy()
                session.receive_data(data)
                continue
            if isinstance(event, ConnectionClosed):
                return
            if isinstance(event, ProtocolViolation):
                log.warning("z3950 %s: %s; closing", state.peer, event.reason)
                writer.write(session.close_for(event))
                await writer.drain()
                return
            if isinstance(event, P.Close):
                writer.write(session.send(P.Close(0, reference_id=event.reference_id,
                                                  diagnostic_information="association closed")))
                await writer.drain()
                return
            if isinstance(event, P.InitializeRequest):
                response, reason = svc.init_response(event)
                state.message_size = response.preferred_message_size
                state.record_size = response.exceptional_record_size
                if state.initialised:           # a re-Init starts afresh, as in Zebra: no result sets
                    state.result_sets = svc.new_result_sets()
                state.initialised = True
                writer.write(session.send(response))
                await writer.drain()
                if reason is not None:
                    log.info("z3950 %s: init rejected: %s", state.peer, reason)
                    return
                continue
            handler = handlers[type(event)]
            try:
                response = await handler(event, state)
            except Exception:  # a bug answers this request with a diagnostic, not a dropped line
                log.exception("z3950 %s: %s failed", state.peer, type(event).__name__)
                response = failure_response(event, 100, "unexpected error in the target; it was logged")
            writer.write(session.send(response))
            if writer.transport.get_write_buffer_size():
                await writer.drain()        # (an answer the socket took whole leaves nothing to wait for)


def make_service(route: SearchRoute, settings: Z3950Settings | None = None) -> Z3950Service:
    """The Z39.50 service over a search route (search.route.make_route)."""
    return Z3950Service(route, settings or Z3950Settings())
