"""An asyncio Z39.50 client (the *origin*), for federated search of partner targets.

The protocol work is done by the sans-I/O core: ``z3950.session.Session`` (state
table and framing), ``z3950.pdu`` (APDUs), ``z3950.rpn`` (PQF), ``z3950.charneg``
(character-set negotiation) and ``z3950.records`` (record decoding).  This module
owns the socket and the clock::

    async with Z3950Client.connect("127.0.0.1", 210, database="Default", timeout=10) as z:
        print(z.implementation_name, z.charset)
        hits = await z.search("@attr 1=4 library")
        for rec in await z.present(1, 10, syntax="usmarc"):
            print(rec.marc["245"] if isinstance(rec, RetrievedRecord) else rec)

``connect`` may be awaited (``z = await Z3950Client.connect(...)``, then
``await z.close()``) or used as an async context manager.

Operations
----------
``search(query)`` -> hit count.  The query is PQF text (``querytype="pqf"``, the
default), CQL text (``querytype="cql"``, sent as a type-104 query), or an
``rpn.RPNQuery`` / ``pdu.CQLQuery`` object.  A failed search raises
``Z3950Diagnostic(code, addinfo, diagnostic_set)``.

``present(start, count, syntax=, element_set=)`` -> list of ``RetrievedRecord``
or ``pdu.Diagnostic`` (surrogate diagnostics stay in place).  When the target
returns fewer records than asked (message size), further Present requests follow
until ``count`` records or the end of the result set.

``scan(pqf_term, count=, preferred_position=)`` -> ``ScanResult`` (entries,
position of the term, status).  ``sort(keys, input=, output=)`` -> the
``SortResponse``; keys like ``("1=4", "<")``, ``"1=31 >"`` or ``SortKeySpec``.
``delete_result_sets(names | "all")`` -> the ``DeleteResultSetResponse``.
``close()`` sends Close, waits (bounded) for the target's Close, closes the socket.

Deadlines, failures, retries
----------------------------
Every operation has a deadline (``timeout`` of the client, or per call).  When
it passes, ``Z3950Timeout`` is raised and the connection is abandoned: a
response may still be on its way, so the association is in an unknown state.
The socket is closed, and later calls raise ``Z3950ConnectionError`` until
``reconnect()``.  The same holds after a lost connection (``Z3950ConnectionError``),
a target Close (``Z3950Closed(reason, message)``) and a protocol violation by the
target (``Z3950ProtocolError``; the client sends Close protocolError first when
it can).  Cancelling an operation abandons the connection as well.

Connecting (TCP connect + Init) is retried with exponential backoff (tenacity)
on refused/reset connections and timeouts: ``connect_retries`` retries after
the first attempt.  ``search_and_present`` re-runs search and present, on a new
association (result sets belong to the association), after a lost connection,
a timeout or a target Close for a transient reason, up to ``attempts`` times.
Diagnostics, rejected Inits and protocol errors are never retried.
"""
from __future__ import annotations

import asyncio
import codecs
import itertools
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from typing import Callable, Iterable, Sequence

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from z3950 import charneg, rpn
from z3950 import pdu as P
from z3950.ber import BERError, encode
from z3950.records import RecordSyntaxError, RetrievedRecord, decode_external, resolve_syntax
from z3950.session import ORIGIN, ConnectionClosed, LocalProtocolError, NeedData, ProtocolViolation, Session

__all__ = [
    "Z3950Client", "ScanResult", "SearchResult", "sort_key",
    "Z3950Error", "Z3950ConnectionError", "Z3950Timeout", "Z3950Closed", "Z3950ProtocolError",
    "Z3950Diagnostic", "Z3950InitRejected", "RetrievedRecord",
]

log = logging.getLogger("unioncat.z3950_client")

DEFAULT_MESSAGE_SIZE = 4 * 1024 * 1024
# Close reasons after which a new association may well succeed
TRANSIENT_CLOSE_REASONS = frozenset({1, 2, 4, 7, 8})   # shutdown, systemProblem, resources, lackOfActivity, peerAbort
_READ_SIZE = 64 * 1024
_CLOSE_GRACE = 1.0          # bound on sending our Close after a violation / answering the target's Close


# --------------------------------------------------------------------------- errors

class Z3950Error(Exception):
    """Base class of the client's errors."""


class Z3950ConnectionError(Z3950Error):
    """No usable connection: connect failed, the connection was lost, or it was
    abandoned earlier (timeout, Close, protocol error) and not ``reconnect()``-ed.
    ``attempts``: connection attempts made, when raised by connect."""

    def __init__(self, message: str, *, attempts: int | None = None):
        super().__init__(message)
        self.attempts = attempts


class Z3950Timeout(Z3950Error, TimeoutError):
    """An operation (or connect + Init) missed its deadline; the connection is abandoned."""

    def __init__(self, message: str, *, attempts: int | None = None):
        super().__init__(message)
        self.attempts = attempts


class Z3950Closed(Z3950ConnectionError):
    """The target closed the association (``reason``: a pdu.CLOSE_REASONS key)."""

    def __init__(self, reason: int, message: str | None = None):
        self.reason = reason
        self.message = message
        name = P.CLOSE_REASONS.get(reason, str(reason))
        super().__init__(f"target closed the association: {name}" + (f" ({message})" if message else ""))

    @property
    def reason_name(self) -> str:
        return P.CLOSE_REASONS.get(self.reason, str(self.reason))


class Z3950ProtocolError(Z3950Error):
    """The target broke the protocol (garbage, malformed BER, an APDU out of order)."""


class Z3950InitRejected(Z3950Error):
    """The target rejected the Init (e.g. wrong credentials)."""

    def __init__(self, response: P.InitializeResponse):
        self.response = response
        super().__init__(f"Init rejected by {response.implementation_name or 'target'}")


class Z3950Diagnostic(Z3950Error):
    """A (non-surrogate) diagnostic from the target: ``code`` in ``diagnostic_set``
    (Bib-1, 1.2.840.10003.4.1, unless the target says otherwise)."""

    def __init__(self, code: int, addinfo: str | None = None, diagnostic_set: str = P.BIB1_DIAGNOSTICS,
                 diagnostics: tuple[P.Diagnostic, ...] = ()):
        self.code = code
        self.addinfo = addinfo
        self.diagnostic_set = diagnostic_set
        self.diagnostics = diagnostics
        where = "" if diagnostic_set == P.BIB1_DIAGNOSTICS else f" (set {diagnostic_set})"
        super().__init__(f"diagnostic {code}{where}" + (f": {addinfo}" if addinfo else ""))

    @classmethod
    def from_pdu(cls, diagnostics: Sequence[P.Diagnostic], fallback: str = "") -> "Z3950Diagnostic":
        if not diagnostics:
            return cls(0, fallback or "operation failed without a diagnostic", "")
        d = diagnostics[0]
        return cls(d.condition, d.addinfo, d.diagnostic_set, tuple(diagnostics))


def _retryable(exc: BaseException) -> bool:
    """Worth a new association: lost/refused connections, timeouts, a transient Close."""
    if isinstance(exc, Z3950Closed):
        return exc.reason in TRANSIENT_CLOSE_REASONS
    return isinstance(exc, (Z3950ConnectionError, Z3950Timeout))


# --------------------------------------------------------------------------- results

@dataclass
class ScanResult:
    """A Scan response: ``entries`` (ScanEntry, or pdu.Diagnostic for a surrogate),
    ``position`` of the start term among them (1-based, None if the target gave
    none), ``status`` (pdu.SCAN_STATUS key) and the non-surrogate diagnostics
    of a partial result."""
    entries: list
    position: int | None
    status: int
    step_size: int | None = None
    diagnostics: tuple[P.Diagnostic, ...] = ()

    @property
    def status_name(self) -> str:
        return P.SCAN_STATUS.get(self.status, str(self.status))

    @property
    def terms(self) -> list[str]:
        return [e.display_term or str(e.term) for e in self.entries if isinstance(e, P.ScanEntry)]


@dataclass
class SearchResult:
    """What ``search_and_present`` found, and how many attempts it took."""
    hits: int
    records: list = field(default_factory=list)
    attempts: int = 1


# --------------------------------------------------------------------------- helpers

_OID_RE = re.compile(r"^\d+(\.\d+)+$")
_ASC, _DESC = 0, 1


def _syntax_oid(syntax: str | None) -> str | None:
    if syntax is None:
        return None
    if _OID_RE.match(syntax):
        return syntax
    try:
        return resolve_syntax(syntax)
    except RecordSyntaxError as exc:
        raise ValueError(str(exc)) from None


def _attribute(token: str):
    kind, _, value = token.partition("=")
    try:
        kind_n = int(kind)
    except ValueError:
        raise ValueError(f"bad sort attribute {token!r} (want type=value, e.g. 1=4)") from None
    return rpn.AttributeElement(kind_n, int(value) if value.lstrip("-").isdigit() else value)


def sort_key(key, order: str | None = None) -> P.SortKeySpec:
    """A SortKeySpec from ``"1=4 <"``, ``("1=4", "<")``, ``("1=4 4=1", ">i")``, a
    sort field name (``("title", ">")``) or a SortKeySpec.  Flags as in yaz-client:
    ``<``/``a`` ascending (default), ``>``/``d`` descending, ``i`` case-insensitive
    (default), ``s`` case-sensitive."""
    if isinstance(key, P.SortKeySpec):
        return key
    if isinstance(key, (tuple, list)):
        if len(key) != 2:
            raise ValueError(f"sort key {key!r}: want (attributes or field, order)")
        key, order = key
    tokens = str(key).replace(",", " ").split()
    flags = order or ""
    attrs, names = [], []
    for token in tokens:
        if "=" in token:
            attrs.append(_attribute(token))
        elif order is None and set(token) <= set("<>adis"):
            flags += token
        else:
            names.append(token)
    if attrs and names or len(names) > 1 or not (attrs or names):
        raise ValueError(f"sort key {key!r}: want Bib-1 attributes (1=4) or one sort field name")
    relation, case = _ASC, 1
    for flag in flags:
        if flag in "<a":
            relation = _ASC
        elif flag in ">d":
            relation = _DESC
        elif flag == "i":
            case = 1
        elif flag == "s":
            case = 0
        elif not flag.isspace():
            raise ValueError(f"sort flag {flag!r}: use < > a d i s")
    if attrs:
        return P.SortKeySpec(attributes=tuple(attrs), attribute_set=rpn.BIB1, relation=relation,
                             case_sensitivity=case)
    return P.SortKeySpec(sort_field=names[0], relation=relation, case_sensitivity=case)


def _is_key_pair(value) -> bool:
    """("1=4", "<"): one key with its order, not a list of two keys."""
    return (isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value)
            and set(value[1]) <= set("<>adis "))


def _implementation_version() -> str:
    try:
        return metadata.version("unioncat")
    except metadata.PackageNotFoundError:
        return "dev"


class _Connecting:
    """What ``Z3950Client.connect`` returns: awaitable (-> the connected client)
    and an async context manager (closes the client on exit)."""

    def __init__(self, client: "Z3950Client"):
        self._client = client

    async def _run(self) -> "Z3950Client":
        await self._client._open()
        return self._client

    def __await__(self):
        return self._run().__await__()

    async def __aenter__(self) -> "Z3950Client":
        return await self._run()

    async def __aexit__(self, *exc) -> None:
        await self._client.close()


# --------------------------------------------------------------------------- the client

class Z3950Client:
    """One association with one target.  Operations are serialized (one request
    outstanding at a time, as without the concurrentOperations option)."""

    def __init__(self, host: str, port: int, *, database: str = "Default", databases: Sequence[str] | None = None,
                 user: str | None = None, password: str | None = None, group: str | None = None,
                 charset: str | None = "UTF-8", encoding: str = "utf-8", timeout: float = 10.0,
                 connect_retries: int = 3, retry_backoff: float = 0.2, retry_backoff_max: float = 5.0,
                 preferred_message_size: int = DEFAULT_MESSAGE_SIZE,
                 exceptional_record_size: int | None = None,
                 implementation_name: str = "unioncat Z39.50 client"):
        self.host, self.port = host, port
        self.databases: tuple[str, ...] = tuple(databases) if databases else (database,)
        self.user, self.password, self.group = user, password, group
        self.charset_proposal = charset
        self.default_encoding = encoding
        self.timeout = timeout
        self.connect_retries = connect_retries
        self.retry_backoff = retry_backoff
        self.retry_backoff_max = retry_backoff_max
        self.preferred_message_size = preferred_message_size
        self.exceptional_record_size = exceptional_record_size or preferred_message_size
        self.implementation_name_sent = implementation_name

        self.init_response: P.InitializeResponse | None = None
        self.charset: str | None = None           # negotiated character set (None: none selected)
        self.encoding = encoding                  # what InternationalStrings are read/written as
        self.connect_attempts = 0                 # attempts made by the last connect/reconnect
        self.close_response: P.Close | None = None  # the target's Close answering ours
        self.last_search: P.SearchResponse | None = None
        self.requests: Counter[str] = Counter()  # APDUs sent, by type name (all associations)

        self._session: Session | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._broken: str | None = "not connected"
        self._lock = asyncio.Lock()
        self._refs = itertools.count(1)
        self._hits: dict[str, int] = {}           # result set -> hit count (this association)

    # ---------------------------------------------------------------- connect
    @classmethod
    def connect(cls, host: str, port: int, **kwargs) -> _Connecting:
        """Connect and Init (retried, see the module doc).  Await it for the client,
        or use it with ``async with``."""
        return _Connecting(cls(host, port, **kwargs))

    async def reconnect(self) -> None:
        """Drop the current connection (if any) and open a new association.
        Result sets of the old association are gone."""
        async with self._lock:
            self._abandon("reconnecting")
        await self._open()

    @property
    def usable(self) -> bool:
        return self._broken is None

    @property
    def implementation_name(self) -> str | None:
        return None if self.init_response is None else self.init_response.implementation_name

    @property
    def implementation_version(self) -> str | None:
        return None if self.init_response is None else self.init_response.implementation_version

    @property
    def options(self) -> frozenset[str]:
        return frozenset() if self.init_response is None else self.init_response.options

    def _retrying(self, attempts: int) -> AsyncRetrying:
        return AsyncRetrying(stop=stop_after_attempt(max(1, attempts)),
                             wait=wait_exponential(multiplier=self.retry_backoff, max=self.retry_backoff_max),
                             retry=retry_if_exception(_retryable), reraise=True)

    async def _open(self) -> None:
        async with self._lock:
            self.connect_attempts = 0
            try:
                async for attempt in self._retrying(self.connect_retries + 1):
                    with attempt:
                        self.connect_attempts += 1
                        await self._open_once()
            except BaseException as exc:
                self._abandon("connect failed")
                self._broken = f"connect failed: {exc}"
                if isinstance(exc, Z3950Timeout):
                    raise Z3950Timeout(f"{exc} (after {self.connect_attempts} attempts)",
                                       attempts=self.connect_attempts) from exc
                if isinstance(exc, Z3950Closed):
                    exc.attempts = self.connect_attempts
                elif isinstance(exc, Z3950ConnectionError):
                    raise Z3950ConnectionError(f"{exc} (after {self.connect_attempts} attempts)",
                                               attempts=self.connect_attempts) from exc
                raise

    def _init_request(self) -> P.InitializeRequest:
        auth = None
        if self.password is not None or self.group is not None:
            auth = P.IdPass(group_id=self.group, user_id=self.user, password=self.password)
        elif self.user is not None:
            auth = P.IdOpen(self.user)
        options = {"search", "present", "delSet", "scan", "sort", "namedResultSets"}
        other = None
        if self.charset_proposal:
            options.add("negotiationModel")
            other = charneg.proposal_other_info((self.charset_proposal,))
        return P.InitializeRequest(
            protocol_version=frozenset({1, 2, 3}), options=frozenset(options),
            preferred_message_size=self.preferred_message_size,
            exceptional_record_size=self.exceptional_record_size,
            reference_id=self._next_ref(), id_authentication=auth,
            implementation_id="unioncat", implementation_name=self.implementation_name_sent,
            implementation_version=_implementation_version(), other_info=other)

    async def _open_once(self) -> None:
        self._abandon("reconnecting")
        self._broken = "connecting"
        max_apdu = max(self.preferred_message_size, self.exceptional_record_size) * 2 + 64 * 1024
        self._session = Session(ORIGIN, max_apdu=max_apdu, encoding=self.default_encoding)
        self.encoding = self.default_encoding
        self._hits.clear()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        where = f"{self.host}:{self.port}"
        try:
            async with asyncio.timeout_at(deadline):
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        except TimeoutError:
            raise Z3950Timeout(f"connect to {where}: no connection within {self.timeout:g} s") from None
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise Z3950ConnectionError(f"connect to {where}: {reason}") from exc
        self._broken = None
        try:
            response = await self._exchange(self._init_request(), deadline, what="Init")
        except Z3950Error:
            self._abandon("Init failed")
            raise
        if not isinstance(response, P.InitializeResponse):      # the session table prevents this
            self._abandon("bad Init response")
            raise Z3950ProtocolError(f"{type(response).__name__} in answer to Init")
        self.init_response = response
        if not response.result:
            self._abandon("Init rejected")
            raise Z3950InitRejected(response)
        selection = None
        try:
            selection = charneg.parse_selection(response.other_info)
        except BERError as exc:
            log.warning("%s: unreadable charset negotiation in Init response: %s", where, exc)
        self.charset = selection.charset if selection is not None else None
        if self.charset is not None:
            try:
                self.encoding = codecs.lookup(self.charset).name
            except LookupError:
                log.info("%s: target selected charset %r; keeping %s", where, self.charset, self.encoding)
            self._session.encoding = self.encoding
        log.debug("%s: Init accepted by %s %s, charset %s", where, response.implementation_name,
                  response.implementation_version, self.charset)

    # ---------------------------------------------------------------- plumbing
    def _next_ref(self) -> bytes:
        return str(next(self._refs)).encode("ascii")

    def _ensure_usable(self) -> None:
        if self._broken is not None or self._writer is None:
            raise Z3950ConnectionError(f"no usable connection to {self.host}:{self.port} "
                                       f"({self._broken or 'not connected'}); call reconnect()")

    def _abandon(self, reason: str) -> None:
        """Give up the connection at once (no I/O, no waiting)."""
        if self._broken is None:
            self._broken = reason
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.transport.abort()

    def _deadline(self, timeout: float | None) -> float:
        return asyncio.get_running_loop().time() + (self.timeout if timeout is None else timeout)

    async def _exchange(self, request, deadline: float, *, what: str | None = None):
        """Send ``request`` and return the APDU that answers it (checked by the
        session table), within ``deadline`` (loop time)."""
        self._ensure_usable()
        what = what or type(request).__name__
        try:
            data = self._session.send(request)
        except LocalProtocolError as exc:         # a bug here, or the association is closing
            raise Z3950ConnectionError(f"cannot send {what}: {exc}") from exc
        except UnicodeEncodeError as exc:         # nothing sent, the association is intact
            raise ValueError(f"{what}: text cannot be sent in the target's character set "
                             f"{self.encoding}: {exc}") from None
        self.requests[type(request).__name__] += 1
        try:
            async with asyncio.timeout_at(deadline):
                self._writer.write(data)
                await self._writer.drain()
                response = await self._next_pdu()
        except TimeoutError:
            self._abandon(f"{what} timed out")
            raise Z3950Timeout(f"{what} to {self.host}:{self.port}: no answer within the deadline") from None
        except asyncio.CancelledError:
            self._abandon(f"{what} cancelled")
            raise
        except OSError as exc:
            self._abandon(f"connection lost: {exc}")
            raise Z3950ConnectionError(f"{what} to {self.host}:{self.port}: connection lost ({exc})") from exc
        ref = getattr(response, "reference_id", None)
        if ref is not None and getattr(request, "reference_id", None) is not None and ref != request.reference_id:
            await self._protocol_abort(ProtocolViolation(f"referenceId {ref!r} does not answer "
                                                         f"{request.reference_id!r}"))
            raise Z3950ProtocolError(f"{what}: response carries another request's referenceId")
        return response

    async def _next_pdu(self):
        while True:
            event = self._session.next_event()
            if isinstance(event, NeedData):
                chunk = await self._reader.read(_READ_SIZE)
                self._session.receive_data(chunk)
                continue
            if isinstance(event, ProtocolViolation):
                await self._protocol_abort(event)
                raise Z3950ProtocolError(f"{self.host}:{self.port}: {event.reason}")
            if isinstance(event, ConnectionClosed):
                self._abandon("target closed the connection")
                raise Z3950ConnectionError(f"{self.host}:{self.port} closed the connection")
            if isinstance(event, P.Close):
                await self._answer_close(event)
                raise Z3950Closed(event.close_reason, event.diagnostic_information)
            return event

    async def _send_quietly(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            async with asyncio.timeout(_CLOSE_GRACE):
                await self._writer.drain()
        except (OSError, TimeoutError, AttributeError):
            pass

    async def _protocol_abort(self, violation: ProtocolViolation) -> None:
        log.warning("%s:%s broke the protocol: %s", self.host, self.port, violation.reason)
        try:
            data = self._session.close_for(violation)
        except LocalProtocolError:
            data = None
        if data is not None and self._writer is not None:
            await self._send_quietly(data)
        self._abandon(f"protocol error: {violation.reason}")

    async def _answer_close(self, close: P.Close) -> None:
        name = P.CLOSE_REASONS.get(close.close_reason, close.close_reason)
        log.info("%s:%s closed the association: %s %s", self.host, self.port, name,
                 close.diagnostic_information or "")
        try:
            data = self._session.send(P.Close(close_reason=0, reference_id=close.reference_id))
        except LocalProtocolError:
            data = None
        if data is not None and self._writer is not None:
            await self._send_quietly(data)
        self._abandon(f"target closed the association ({name})")

    # ---------------------------------------------------------------- operations
    def _query(self, query, querytype: str | None):
        if isinstance(query, (rpn.RPNQuery, P.CQLQuery, P.OtherQuery)):
            return query
        if not isinstance(query, str):
            raise TypeError(f"query must be PQF/CQL text, an RPNQuery or a CQLQuery, not {type(query).__name__}")
        kind = (querytype or "pqf").lower()
        if kind in ("cql", "cql-104", "104"):
            return P.CQLQuery(query)
        if kind in ("pqf", "rpn", "prefix"):
            return rpn.parse_pqf(query)
        raise ValueError(f"querytype {querytype!r}: use 'pqf' or 'cql'")

    async def search(self, query, *, result_set: str = "default", databases: Sequence[str] | None = None,
                     querytype: str | None = None, timeout: float | None = None) -> int:
        """Search; the hit count.  Raises Z3950Diagnostic if the search failed."""
        request = P.SearchRequest(
            query=self._query(query, querytype), database_names=tuple(databases or self.databases),
            result_set_name=result_set, replace_indicator=True, small_set_upper_bound=0,
            large_set_lower_bound=1, medium_set_present_number=0, reference_id=self._next_ref())
        async with self._lock:
            self._hits.pop(result_set, None)
            response = await self._exchange(request, self._deadline(timeout), what="Search")
        self.last_search = response
        if not response.search_status or (response.diagnostics and response.result_count == 0):
            raise Z3950Diagnostic.from_pdu(response.diagnostics, "search failed")
        self._hits[result_set] = response.result_count
        return response.result_count

    def hits(self, result_set: str = "default") -> int | None:
        """The hit count of a result set of this association (None if unknown)."""
        return self._hits.get(result_set)

    def _decode(self, npr: P.NamePlusRecord):
        if npr.diagnostic is not None:
            return npr.diagnostic
        if npr.record is None:
            return P.Diagnostic(14, f"record fragment [{npr.fragment[0] if npr.fragment else '?'}] "
                                    "(segmentation was not asked for)")
        try:
            return decode_external(npr.record, self.encoding)
        except BERError as exc:
            oid = ""
            children = npr.record.children if npr.record.constructed else ()
            if children:
                try:
                    oid = children[0].as_oid()
                except BERError:
                    pass
            return RetrievedRecord(oid, data=encode(npr.record), error=f"undecodable record: {exc}")

    async def present(self, start: int = 1, count: int = 10, *, result_set: str = "default",
                      syntax: str | None = "usmarc", element_set: str | None = "F",
                      timeout: float | None = None) -> list:
        """Records ``start`` .. ``start+count-1`` of ``result_set`` (fewer at the end
        of the set): RetrievedRecord, or pdu.Diagnostic where the target sent a
        surrogate diagnostic.  One deadline covers all the Present requests."""
        if start < 1 or count < 0:
            raise ValueError("start must be >= 1 and count >= 0")
        oid = _syntax_oid(syntax)
        known = self._hits.get(result_set)
        if known is not None:
            count = min(count, max(0, known - start + 1))
        out: list = []
        if count == 0:
            return out
        deadline = self._deadline(timeout)
        position, remaining = start, count
        async with self._lock:
            while remaining > 0:
                request = P.PresentRequest(
                    result_set_id=result_set, start_point=position, number_of_records=remaining,
                    element_set_names=element_set or None, preferred_record_syntax=oid,
                    reference_id=self._next_ref())
                response = await self._exchange(request, deadline, what="Present")
                if response.diagnostics:
                    if not out:
                        raise Z3950Diagnostic.from_pdu(response.diagnostics)
                    log.info("%s:%s: Present stopped at %d: %s", self.host, self.port, position,
                             response.diagnostics[0])
                    break
                records = response.records or ()
                out.extend(self._decode(r) for r in records)
                if not records or response.present_status == 5 or response.next_result_set_position == 0:
                    break
                position += len(records)
                remaining -= len(records)
        return out

    def _scan_term(self, term):
        if isinstance(term, rpn.APT):
            return term, None
        if isinstance(term, str):
            attribute_set, apt = rpn.parse_pqf_scan(term)
            return apt, attribute_set
        if isinstance(term, rpn.RPNQuery) and isinstance(term.root, rpn.APT):
            return term.root, term.attribute_set
        raise TypeError(f"scan term must be PQF text, an APT or a one-term RPNQuery, not {term!r}")

    async def scan(self, term, *, count: int = 20, preferred_position: int = 1, step_size: int | None = None,
                   databases: Sequence[str] | None = None, timeout: float | None = None) -> ScanResult:
        """Scan an index from ``term`` (PQF, e.g. ``"@attr 1=4 comp"``)."""
        apt, attribute_set = self._scan_term(term)
        request = P.ScanRequest(term=apt, database_names=tuple(databases or self.databases),
                                attribute_set=attribute_set, number_of_terms_requested=count,
                                step_size=step_size, preferred_position=preferred_position,
                                reference_id=self._next_ref())
        async with self._lock:
            response = await self._exchange(request, self._deadline(timeout), what="Scan")
        entries = list(response.entries or ())
        if response.scan_status == 6 or (response.diagnostics and not entries):
            raise Z3950Diagnostic.from_pdu(response.diagnostics, "scan failed")
        return ScanResult(entries, response.position_of_term, response.scan_status, response.step_size,
                          tuple(response.diagnostics))

    async def sort(self, keys: Iterable, *, input: str | Sequence[str] = "default", output: str = "default",
                   timeout: float | None = None) -> P.SortResponse:
        """Sort ``input`` into ``output`` by ``keys`` (see ``sort_key``).  Raises
        Z3950Diagnostic when the sort failed."""
        if isinstance(keys, (str, P.SortKeySpec)) or _is_key_pair(keys):
            keys = [keys]
        specs = tuple(sort_key(k) for k in keys)
        if not specs:
            raise ValueError("sort needs at least one key")
        inputs = (input,) if isinstance(input, str) else tuple(input)
        request = P.SortRequest(input_result_set_names=inputs, sorted_result_set_name=output,
                                sort_sequence=specs, reference_id=self._next_ref())
        async with self._lock:
            response = await self._exchange(request, self._deadline(timeout), what="Sort")
        if response.sort_status == 2:
            raise Z3950Diagnostic.from_pdu(response.diagnostics, "sort failed")
        if response.result_count is not None:
            self._hits[output] = response.result_count
        elif len(inputs) == 1 and inputs[0] in self._hits:
            self._hits[output] = self._hits[inputs[0]]
        return response

    async def delete_result_sets(self, names: str | Sequence[str] = "all", *,
                                 timeout: float | None = None) -> P.DeleteResultSetResponse:
        """Delete the named result sets, or all of them (``"all"``).  The response
        tells per set what happened (pdu.DELETE_SET_STATUS)."""
        if names == "all":
            request = P.DeleteResultSetRequest(delete_function=1, reference_id=self._next_ref())
            gone = list(self._hits)
        else:
            names = (names,) if isinstance(names, str) else tuple(names)
            request = P.DeleteResultSetRequest(delete_function=0, result_set_list=names,
                                               reference_id=self._next_ref())
            gone = list(names)
        async with self._lock:
            response = await self._exchange(request, self._deadline(timeout), what="DeleteResultSet")
        for name in gone:
            self._hits.pop(name, None)
        return response

    async def search_and_present(self, query, count: int = 10, *, start: int = 1, attempts: int = 3,
                                 result_set: str = "default", databases: Sequence[str] | None = None,
                                 querytype: str | None = None, syntax: str | None = "usmarc",
                                 element_set: str | None = "F", timeout: float | None = None,
                                 on_retry: Callable[[int, BaseException], None] | None = None) -> SearchResult:
        """Search, then present up to ``count`` records from ``start``.  After a lost
        connection, a timeout or a transient target Close the association is
        re-opened and both are run again, up to ``attempts`` times in all (with
        exponential backoff).  ``on_retry(attempt_number, exception)`` is called
        before each retry.  Diagnostics are raised at once."""
        made = 0

        def before_sleep(state) -> None:
            exc = state.outcome.exception()
            log.info("%s:%s: attempt %d failed (%s); retrying", self.host, self.port, state.attempt_number, exc)
            if on_retry is not None:
                on_retry(state.attempt_number, exc)

        retrying = self._retrying(attempts)
        retrying.before_sleep = before_sleep
        async for attempt in retrying:
            with attempt:
                made += 1
                if not self.usable:
                    await self.reconnect()
                hits = await self.search(query, result_set=result_set, databases=databases,
                                         querytype=querytype, timeout=timeout)
                records = []
                if count > 0 and hits >= start:
                    records = await self.present(start, count, result_set=result_set, syntax=syntax,
                                                 element_set=element_set, timeout=timeout)
        return SearchResult(hits, records, made)

    # ---------------------------------------------------------------- close
    async def close(self, *, timeout: float | None = None) -> None:
        """Send Close (finished), wait for the target's Close (at most ``timeout``,
        default the client's), close the socket.  Never raises for a dead peer."""
        async with self._lock:
            if self._writer is None:
                self._broken = self._broken or "closed"
                return
            if self._broken is None:
                try:
                    data = self._session.send(P.Close(close_reason=0, reference_id=self._next_ref(),
                                                      diagnostic_information="finished"))
                except LocalProtocolError:
                    data = None
                if data is not None:
                    try:
                        async with asyncio.timeout(self.timeout if timeout is None else timeout):
                            self._writer.write(data)
                            await self._writer.drain()
                            while True:
                                event = self._session.next_event()
                                if isinstance(event, NeedData):
                                    self._session.receive_data(await self._reader.read(_READ_SIZE))
                                    continue
                                if isinstance(event, P.Close):
                                    self.close_response = event
                                break
                    except (OSError, TimeoutError):
                        pass
            self._broken = "closed by client"
            writer, self._writer, self._reader = self._writer, None, None
            writer.close()
            try:
                async with asyncio.timeout(_CLOSE_GRACE):
                    await writer.wait_closed()
            except (OSError, TimeoutError):
                writer.transport.abort()

    async def __aenter__(self) -> "Z3950Client":
        if not self.usable:
            await self._open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "open" if self.usable else self._broken
        return f"<Z3950Client {self.host}:{self.port} {'/'.join(self.databases)} {state}>"
