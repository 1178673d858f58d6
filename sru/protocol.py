"""The SRU protocol core, sans-I/O: request parsing and response building for
SRU 1.1, 1.2 and 2.0.  Pure functions; the HTTP layer (gateway/) hands in the
merged query-string / form parameters and sends back the bytes.

Specifications followed (section names in the comments of each builder):
- SRU 1.2 (Library of Congress, www.loc.gov/standards/sru): "searchRetrieve
  Operation", "Scan", "Explain", "Diagnostics", "Version"; SRU 1.1 differs
  only in its request parameters (sortKeys and recordXPath exist in 1.1 and not
  in 1.2), its responses use the same namespace and elements.
- SRU 2.0 = OASIS searchRetrieve Version 1.0, Part 3 "APD Binding for SRU 2.0"
  and its schemas (sruResponse, diagnostic, scan, facetedResults).

Choices where the specifications leave room:
- No parameters at all -> explain in 2.0.  Without ``version`` a request is a
  2.0 request.  A requested version is a ceiling (SRU "Version" section): 1.5
  is answered as 1.2 and 3.0 as 2.0; a version below 1.1 or one that is not
  ``major.minor`` gets diagnostic 5, details "2.0" (the highest supported), in
  a 2.0 response.
- 2.0 infers the operation (query -> searchRetrieve, scanClause -> scan, else
  explain); an explicit ``operation`` is still honoured.  1.x needs
  ``operation`` as soon as any parameter is given (diagnostic 7).
- A parameter that the operation/version does not define gets diagnostic 8;
  ``x-`` extension parameters are collected in ``extra`` and otherwise ignored.
  A parameter repeated with different values gets diagnostic 6 (the list has no
  better number); repeated identical values are accepted.  Empty values count
  as not supplied.
- maximumRecords above the server maximum is lowered silently (the server "MAY
  return less"), likewise maximumTerms and resultSetTTL.
- 2.0: queryType "cql" or "pqf" (YAZ's prefix query format, as yaz-client
  sends it and Zebra answers it); any other -> 6 (11 is deprecated).  In every
  version the extension ``x-pquery`` (what yaz-client sends in 1.x) carries a
  PQF query when ``query`` is absent.  recordPacking
  "packed" is accepted, "unpacked" -> 71; a 1.x-style recordPacking=xml|string
  sent to 2.0 is read as recordXMLEscaping when that is absent.
- The JSON schema (MARC-in-JSON) travels only as an escaped string: packing
  defaults to string for it and an explicit xml packing gets diagnostic 71.
- 1.x responses do not carry echoedSearchRetrieveRequest (optional; its 1.x
  form expects an XCQL copy of the query); 2.0 responses do.
- Explain needs its record: a diagnostic for an explain request without one is
  sent as a searchRetrieveResponse holding the diagnostic.
"""
from __future__ import annotations

import copy
import re
import secrets
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from lxml import etree

from indexers.query_model import QueryError, SortKey

from . import records_text
from .diagnostics import (
    MANDATORY_PARAMETER_NOT_SUPPLIED,
    RESPONSE_POSITION_OUT_OF_RANGE,
    SORT_BOTH_QUERY_PREVAILS,
    SORT_NOT_SUPPORTED,
    UNSUPPORTED_DIRECTION,
    UNSUPPORTED_INDEX,
    UNSUPPORTED_MISSING_VALUE_ACTION,
    UNSUPPORTED_OPERATION,
    UNSUPPORTED_PARAMETER,
    UNSUPPORTED_PARAMETER_VALUE,
    UNSUPPORTED_RECORD_PACKING,
    UNSUPPORTED_VERSION,
    XPATH_RETRIEVAL_UNSUPPORTED,
    Diagnostic,
    SRUDiagnosticError,
)
from .record_schemas import (
    SCHEMAS,
    RecordSchema,
    RenderedRecord,
    render_record,
    resolve_schema,
    xml_safe,
)

SUPPORTED_VERSIONS = ("1.1", "1.2", "2.0")
# queryType (2.0) -> the query language; x-pquery (any version, YAZ's extension) is pqf
QUERY_TYPES = {"cql": "cql", "pqf": "pqf"}
HIGHEST_VERSION = "2.0"
HUGE = 10 ** 18            # an integer parameter with more digits than this means "beyond anything"

SRW_NS = "http://www.loc.gov/zing/srw/"
SRW_DIAG_NS = "http://www.loc.gov/zing/srw/diagnostic/"
SRU2_NS = "http://docs.oasis-open.org/ns/search-ws/sruResponse"
SRU2_DIAG_NS = "http://docs.oasis-open.org/ns/search-ws/diagnostic"
SRU2_SCAN_NS = "http://docs.oasis-open.org/ns/search-ws/scan"
FACET_NS = "http://docs.oasis-open.org/ns/search-ws/facetedResults"
ZEEREX_NS = "http://explain.z3950.org/dtd/2.0/"
DIAGNOSTIC_RECORD_SCHEMA = "info:srw/schema/1/diagnostics-v1.1"
RESULT_COUNT_EXACT = "info:srw/vocabulary/resultCountPrecision/1/exact"


# --------------------------------------------------------------------------
# Settings and requests
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class SRUSettings:
    default_maximum_records: int = 10
    max_maximum_records: int = 100
    default_result_set_ttl: int = 300
    max_result_set_ttl: int = 3600
    default_maximum_terms: int = 20
    max_maximum_terms: int = 100
    default_record_schema: str = "marcxml"
    default_facet_limit: int = 10
    max_facet_limit: int = 100
    database: str = "unioncat"
    database_title: str = "Union catalog"
    database_description: str = "Union catalog of the member libraries"
    host: str = "localhost"
    port: int = 8080
    path: str = "/sru"


@dataclass
class ExplainRequest:
    version: str
    record_packing: str = "xml"
    stylesheet: str | None = None
    extra: dict = field(default_factory=dict)

    operation = "explain"


@dataclass
class SearchRetrieveRequest:
    version: str
    query: str
    start_record: int = 1
    maximum_records: int = 10
    record_schema: str = "marcxml"
    record_packing: str = "xml"
    result_set_ttl: int | None = None
    sort_keys: str | None = None
    facet_limit: dict[str, int] | None = None  # {"*": n} for a bare facetLimit=n
    stylesheet: str | None = None
    query_type: str = "cql"          # "cql", or "pqf" (queryType=pqf in 2.0, x-pquery in any version)
    extra: dict = field(default_factory=dict)
    parsed_sort_keys: tuple[SortKey, ...] = ()
    echo: dict[str, str] = field(default_factory=dict)

    operation = "searchRetrieve"

    @property
    def schema(self) -> RecordSchema:
        return SCHEMAS[self.record_schema]


@dataclass
class ScanRequest:
    version: str
    scan_clause: str
    response_position: int = 1
    maximum_terms: int = 20
    stylesheet: str | None = None
    extra: dict = field(default_factory=dict)

    operation = "scan"


Request = ExplainRequest | SearchRetrieveRequest | ScanRequest

# Parameters each operation defines, per version (besides operation, version,
# stylesheet and x- extensions).  Known-but-unsupported ones are listed apart.
_PARAMS: dict[tuple[str, str], set[str]] = {
    ("searchRetrieve", "1.1"): {"query", "startRecord", "maximumRecords", "recordPacking",
                                "recordSchema", "resultSetTTL", "sortKeys", "recordXPath"},
    ("searchRetrieve", "1.2"): {"query", "startRecord", "maximumRecords", "recordPacking",
                                "recordSchema", "resultSetTTL"},
    ("searchRetrieve", "2.0"): {"query", "queryType", "startRecord", "maximumRecords",
                                "recordXMLEscaping", "recordPacking", "recordSchema",
                                "resultSetTTL", "sortKeys", "renderedBy", "httpAccept",
                                "responseType", "facetLimit"},
    ("scan", "1.1"): {"scanClause", "responsePosition", "maximumTerms"},
    ("scan", "1.2"): {"scanClause", "responsePosition", "maximumTerms"},
    ("scan", "2.0"): {"scanClause", "responsePosition", "maximumTerms", "httpAccept",
                      "responseType", "renderedBy"},
    ("explain", "1.1"): {"recordPacking"},
    ("explain", "1.2"): {"recordPacking"},
    ("explain", "2.0"): {"recordXMLEscaping", "recordPacking", "httpAccept",
                         "responseType", "renderedBy"},
}
_UNSUPPORTED_2_0 = {"facetStart", "facetSort", "facetCount", "facetRangeField",
                    "facetLowValue", "facetHighValue"}
_XML_MEDIA = {"application/sru+xml", "application/xml", "text/xml", "*/*"}


def _version_tuple(v: str) -> tuple[int, int]:
    a, b = v.split(".")
    return int(a), int(b)


def negotiate_version(requested: str, operation: str | None = None) -> str:
    """The version to answer in: the highest supported version not above the
    requested one.  Raises diagnostic 5 when there is none."""
    m = re.fullmatch(r"\s*([0-9]+)\.([0-9]+)\s*", requested)
    if m:
        want = (int(m.group(1)), int(m.group(2)))
        fitting = [v for v in SUPPORTED_VERSIONS if _version_tuple(v) <= want]
        if fitting:
            return fitting[-1]
    raise SRUDiagnosticError(
        UNSUPPORTED_VERSION, HIGHEST_VERSION,
        f"Unsupported version {requested!r}; supported: {', '.join(SUPPORTED_VERSIONS)}",
        HIGHEST_VERSION, operation)


def _single_values(params: Mapping[str, Sequence[str]], version_hint: str | None,
                   operation: str | None) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Flatten to one value per name (diagnostic 6 for conflicting repeats);
    x- extension parameters are returned apart with all their values."""
    single: dict[str, str] = {}
    extra: dict[str, list[str]] = {}
    for name, values in params.items():
        if isinstance(values, str):
            values = [values]
        values = list(values)
        if name.startswith("x-"):
            extra[name] = values
            continue
        distinct = {v for v in values}
        if len(distinct) > 1:
            raise SRUDiagnosticError(
                UNSUPPORTED_PARAMETER_VALUE, name,
                f"Parameter {name} given more than once with different values",
                version_hint, operation)
        single[name] = values[0] if values else ""
    return single, extra


def _infer_operation(single: Mapping[str, object]) -> str:
    if "query" in single or "x-pquery" in single:
        return "searchRetrieve"
    if "scanClause" in single:
        return "scan"
    return "explain"


def parse_request(params: Mapping[str, Sequence[str]], *,
                  defaults: SRUSettings = SRUSettings()) -> Request:
    """Parse SRU request parameters (name -> list of values) into a request
    object; every problem raises SRUDiagnosticError (with the version and
    operation the diagnostic response should use)."""
    # The operation a diagnostic response should be shaped for, before any check.
    op_vals = params.get("operation")
    op_hint = (op_vals if isinstance(op_vals, str) else op_vals[0]) if op_vals else None
    if op_hint is None:
        op_hint = _infer_operation(params)
    elif op_hint not in ("searchRetrieve", "scan", "explain"):
        op_hint = None

    single, extra = _single_values(params, None, op_hint)

    # -- version ("Version" section of SRU 1.2; OASIS Part 3 for 2.0)
    version = HIGHEST_VERSION
    if single.get("version"):
        version = negotiate_version(single["version"], op_hint)

    # -- operation
    operation = single.get("operation") or None
    if operation is None:
        if version == "2.0":
            operation = _infer_operation({**extra, **single})
        elif set(single) - {"version"} or extra:
            raise SRUDiagnosticError(MANDATORY_PARAMETER_NOT_SUPPLIED, "operation",
                                     "Parameter operation is mandatory in SRU 1.x",
                                     version, _infer_operation({**extra, **single}))
        else:
            operation = "explain"
    if operation not in ("searchRetrieve", "scan", "explain"):
        raise SRUDiagnosticError(UNSUPPORTED_OPERATION, operation,
                                 f"Unsupported operation {operation!r}", version, None)

    err = _ErrorFactory(version, operation)

    # -- unknown parameters
    allowed = _PARAMS[(operation, version)] | {"operation", "version", "stylesheet"}
    for name in single:
        if name not in allowed:
            if version == "2.0" and name in _UNSUPPORTED_2_0:
                raise err(UNSUPPORTED_PARAMETER, name, f"Parameter {name} is not supported")
            raise err(UNSUPPORTED_PARAMETER, name,
                      f"Parameter {name} is not defined for SRU {version} {operation}")

    def get(name: str) -> str | None:
        v = single.get(name)
        if v is None:
            return None
        v = v.strip()
        return v or None

    stylesheet = get("stylesheet")
    if version == "2.0":
        rendered_by = get("renderedBy")
        if rendered_by not in (None, "client"):
            raise err(UNSUPPORTED_PARAMETER_VALUE, "renderedBy",
                      "Only client-side stylesheet rendering is supported")
        for name in ("httpAccept", "responseType"):
            v = get(name)
            if v is not None and v.split(";")[0].strip().lower() not in _XML_MEDIA:
                raise err(UNSUPPORTED_PARAMETER_VALUE, name,
                          f"{name} {v!r} not supported; responses are application/sru+xml")

    if operation == "explain":
        packing = _packing(get, version, err, schema=None)
        return ExplainRequest(version, packing, stylesheet, extra)

    if operation == "scan":
        clause = get("scanClause")
        if clause is None:
            raise err(MANDATORY_PARAMETER_NOT_SUPPLIED, "scanClause",
                      "Parameter scanClause is mandatory for scan")
        max_terms = _integer(get, "maximumTerms", err, minimum=1)
        if max_terms is None:
            max_terms = defaults.default_maximum_terms
        max_terms = min(max_terms, defaults.max_maximum_terms)
        position = _integer(get, "responsePosition", err, minimum=0)
        if position is None:
            position = 1
        if position > max_terms + 1:
            raise err(RESPONSE_POSITION_OUT_OF_RANGE, str(position),
                      f"responsePosition must be between 0 and {max_terms + 1}")
        return ScanRequest(version, clause, position, max_terms, stylesheet, extra)

    # -- searchRetrieve
    echo: dict[str, str] = {}
    query = get("query")
    query_type = "cql"
    if query is None:
        pquery = _extension(extra, "x-pquery", err)
        if pquery is None:
            raise err(MANDATORY_PARAMETER_NOT_SUPPLIED, "query",
                      "Parameter query is mandatory for searchRetrieve")
        query, query_type = pquery, "pqf"
        if version == "2.0":
            echo["queryType"] = "pqf"
    echo["query"] = query
    if version == "2.0" and get("queryType") is not None:
        requested = get("queryType") or ""
        echo["queryType"] = requested
        known = QUERY_TYPES.get(requested.lower())
        if known is None:
            raise err(UNSUPPORTED_PARAMETER_VALUE, "queryType",
                      f"Query type {requested!r} not supported; only cql and pqf")
        query_type = known
    if version == "1.1" and get("recordXPath") is not None:
        raise err(XPATH_RETRIEVAL_UNSUPPORTED, get("recordXPath") or "",
                  "recordXPath is not supported")
    start = _integer(get, "startRecord", err, minimum=1)
    if start is not None:
        echo["startRecord"] = str(start)
    else:
        start = 1
    maximum = _integer(get, "maximumRecords", err, minimum=0)
    if maximum is not None:
        echo["maximumRecords"] = str(maximum)
    else:
        maximum = defaults.default_maximum_records
    maximum = min(maximum, defaults.max_maximum_records)

    schema_param = get("recordSchema")
    schema = _schema(schema_param or defaults.default_record_schema, err)
    if schema_param is not None:
        echo["recordSchema"] = schema.uri
    packing = _packing(get, version, err, schema=schema)
    if get("recordPacking") is not None or get("recordXMLEscaping") is not None:
        echo["recordXMLEscaping" if version == "2.0" else "recordPacking"] = packing

    ttl = _integer(get, "resultSetTTL", err, minimum=0)
    if ttl is not None:
        echo["resultSetTTL"] = str(ttl)
        ttl = min(ttl, defaults.max_result_set_ttl)

    sort_keys = get("sortKeys")
    parsed_sort: tuple[SortKey, ...] = ()
    if sort_keys is not None:
        parsed_sort = tuple(_with_context(parse_sort_keys, err, sort_keys))
        echo["sortKeys"] = sort_keys

    facet_limit = None
    if get("facetLimit") is not None:
        facet_limit = _with_context(parse_facet_limit, err, get("facetLimit"),
                                    maximum=defaults.max_facet_limit)
    if stylesheet is not None:
        echo["stylesheet"] = stylesheet

    return SearchRetrieveRequest(
        version=version, query=query, start_record=start, maximum_records=maximum,
        record_schema=schema.name, record_packing=packing, result_set_ttl=ttl,
        sort_keys=sort_keys, facet_limit=facet_limit, stylesheet=stylesheet,
        query_type=query_type, extra=extra, parsed_sort_keys=parsed_sort, echo=echo)


def _extension(extra: Mapping[str, list[str]], name: str, err) -> str | None:
    """The one value of an x- extension parameter (None when absent or empty)."""
    values = {v.strip() for v in extra.get(name, ()) if v.strip()}
    if len(values) > 1:
        raise err(UNSUPPORTED_PARAMETER_VALUE, name, f"Parameter {name} given more than once with different values")
    return values.pop() if values else None


class _ErrorFactory:
    def __init__(self, version: str, operation: str):
        self.version = version
        self.operation = operation

    def __call__(self, code: int, details: str, message: str | None = None):
        return SRUDiagnosticError(code, details, message, self.version, self.operation)


def _with_context(fn, err: _ErrorFactory, *args, **kw):
    try:
        return fn(*args, **kw)
    except SRUDiagnosticError as e:
        raise err(e.code, e.details, e.message) from None


def _schema(value: str, err: _ErrorFactory) -> RecordSchema:
    return _with_context(resolve_schema, err, value)


def _integer(get, name: str, err: _ErrorFactory, *, minimum: int) -> int | None:
    """An integer parameter.  Any number of digits is an integer: one beyond what
    the server could ever hold stands for "more than anything" (HUGE), so that
    startRecord=99999999999999999999 is answered like any position beyond the
    hits (diagnostic 61) and a huge maximumRecords is lowered like a large one."""
    v = get(name)
    if v is None:
        return None
    if not re.fullmatch(r"[+-]?[0-9]+", v):
        raise err(UNSUPPORTED_PARAMETER_VALUE, name, f"{name} must be an integer, not {v!r}")
    digits = v.lstrip("+-").lstrip("0")
    n = int(v) if len(digits) <= 18 else (-HUGE if v.startswith("-") else HUGE)
    if n < minimum:
        raise err(UNSUPPORTED_PARAMETER_VALUE, name, f"{name} must be at least {minimum}")
    return n


def _packing(get, version: str, err: _ErrorFactory, *, schema: RecordSchema | None) -> str:
    """recordPacking (1.x) / recordXMLEscaping (2.0) -> "xml" | "string"."""
    if version == "2.0":
        escaping = get("recordXMLEscaping")
        packing = get("recordPacking")
        if packing is not None:
            p = packing.lower()
            if p in ("xml", "string") and escaping is None:
                escaping = p  # a 1.x habit; read as recordXMLEscaping
            elif p != "packed":
                raise err(UNSUPPORTED_RECORD_PACKING, packing,
                          f"recordPacking {packing!r} not supported; only 'packed'")
        value, name = escaping, "recordXMLEscaping"
    else:
        value, name = get("recordPacking"), "recordPacking"
    if value is None:
        return "string" if schema is not None and not schema.is_xml else "xml"
    v = value.lower()
    if v not in ("xml", "string"):
        raise err(UNSUPPORTED_RECORD_PACKING, value,
                  f"{name} {value!r} not supported; use 'xml' or 'string'")
    if v == "xml" and schema is not None and not schema.is_xml:
        raise err(UNSUPPORTED_RECORD_PACKING, value,
                  f"Records in schema {schema.name} ({schema.uri}) are not XML and can "
                  f"only be sent with {name}=string")
    return v


def parse_sort_keys(raw: str, config=None) -> list[SortKey]:
    """SRU sortKeys (1.1, and 2.0): space-separated keys, each
    ``path,schema,ascending,caseSensitive,missingValue`` with trailing parts
    optional.  ascending is 1 (default) or 0 (else diagnostic 90);
    caseSensitive 0/1 is accepted and ignored (all sorting is on normalized
    text); missingValue highValue (default) or lowValue (else 92).  Without
    ``config`` the path is kept as written; with an IndexConfig it is resolved
    to a canonical index name by resolve_sort_keys."""
    keys = []
    for item in raw.split():
        parts = item.split(",")
        if len(parts) > 5 or not parts[0].strip('"'):
            raise SRUDiagnosticError(UNSUPPORTED_PARAMETER_VALUE, "sortKeys",
                                     f"Malformed sort key {item!r}")
        parts += [""] * (5 - len(parts))
        path, _schema_, asc, case, missing = parts
        if asc not in ("", "0", "1"):
            raise SRUDiagnosticError(UNSUPPORTED_DIRECTION, asc,
                                     f"Sort direction must be 0 or 1, not {asc!r}")
        if case not in ("", "0", "1"):
            raise SRUDiagnosticError(UNSUPPORTED_PARAMETER_VALUE, "sortKeys",
                                     f"caseSensitive must be 0 or 1, not {case!r}")
        if missing not in ("", "highValue", "lowValue"):
            raise SRUDiagnosticError(UNSUPPORTED_MISSING_VALUE_ACTION, missing,
                                     "Only highValue and lowValue are supported")
        keys.append(SortKey(path.strip('"'), asc != "0", missing or "highValue"))
    if config is not None:
        return list(resolve_sort_keys(keys, config))
    return keys


def resolve_sort_keys(keys: Iterable[SortKey], config) -> tuple[SortKey, ...]:
    """Map sort key paths to canonical index names of an IndexConfig
    (``title`` -> ``dc.title``; ``relevance`` -> ``cql.relevance``), with the
    same diagnostics as CQL sortby: an unknown index 16, an index without a
    sort column 80."""
    out = []
    for key in keys:
        path = key.index
        if path.lower() in ("relevance", "cql.relevance"):
            try:
                idef = config.resolve(path) if hasattr(config, "resolve") else None
            except QueryError:
                idef = None
            if idef is None or not getattr(idef, "sort", None):
                out.append(SortKey("cql.relevance", key.ascending, key.missing_value))
                continue
        try:
            if hasattr(config, "resolve"):
                idef = config.resolve(path)
            else:
                idef = next(config.indexes[c] for c in
                            [path] + [f"{p}.{path}" for p in ("dc", "bath", "cql")]
                            if c in config.indexes)
        except (QueryError, StopIteration):
            raise SRUDiagnosticError(UNSUPPORTED_INDEX, path,
                                     f"Cannot sort on {path!r}: no such index") from None
        if not getattr(idef, "sort", None):
            raise SRUDiagnosticError(SORT_NOT_SUPPORTED, idef.name,
                                     f"Index {idef.name} cannot be sorted on")
        out.append(SortKey(idef.name, key.ascending, key.missing_value))
    return tuple(out)


def effective_sort(query_sort: Sequence[SortKey], protocol_sort: Sequence[SortKey]
                   ) -> tuple[tuple[SortKey, ...], list[Diagnostic]]:
    """Sort given both in the query (CQL sortby) and in sortKeys: the query
    prevails, with the non-fatal diagnostic 94."""
    if query_sort and protocol_sort:
        return tuple(query_sort), [Diagnostic(SORT_BOTH_QUERY_PREVAILS, "",
                                              "sortby in the query is used, sortKeys ignored")]
    return tuple(query_sort or protocol_sort), []


def parse_facet_limit(raw: str, *, maximum: int = 100) -> dict[str, int]:
    """SRU 2.0 facetLimit: comma-separated ``count:index`` items, or a bare
    ``count`` for every facet (key "*")."""
    out: dict[str, int] = {}
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        count, sep, index = item.partition(":")
        count = count.strip()
        if not re.fullmatch(r"[0-9]{1,12}", count) or (sep and not index.strip()):  # not isdigit(): "²"
            raise SRUDiagnosticError(UNSUPPORTED_PARAMETER_VALUE, "facetLimit",
                                     f"Malformed facetLimit item {item!r}")
        out[index.strip() if sep else "*"] = min(int(count), maximum)
    if not out:
        raise SRUDiagnosticError(UNSUPPORTED_PARAMETER_VALUE, "facetLimit",
                                 "Empty facetLimit")
    return out


def resolve_facet_limit(facet_limit: Mapping[str, int] | None, facets: Mapping,
                        *, default: int = 10) -> dict[str, int]:
    """facetLimit keys (facet names or their CQL index names, "*" for all) ->
    {facet name: limit}.  ``facets`` is IndexConfig.facets (name -> FacetDef).
    No facetLimit -> no facets.  An unknown facet -> diagnostic 6."""
    if not facet_limit:
        return {}
    by_index = {getattr(fd, "index", name): name for name, fd in facets.items()}
    out: dict[str, int] = {}
    if "*" in facet_limit:
        for name in facets:
            out[name] = facet_limit["*"]
    for key, limit in facet_limit.items():
        if key == "*":
            continue
        name = key if key in facets else by_index.get(key)
        if name is None:
            raise SRUDiagnosticError(UNSUPPORTED_PARAMETER_VALUE, "facetLimit",
                                     f"No facet for {key!r}; facets: "
                                     + ", ".join(by_index))
        out[name] = limit
    return {k: v for k, v in out.items() if v > 0}


def next_record_position(start: int, returned: int, total: int) -> int | None:
    """nextRecordPosition: the position after the last returned record, or None
    when that was the last record of the result set."""
    nxt = start + returned
    return nxt if returned and nxt <= total else None


# --------------------------------------------------------------------------
# Response building
# --------------------------------------------------------------------------
# The placeholders' random part: drawn once per process (it never appears in a
# response, so a client cannot learn it and put a placeholder into its query).
_NONCE = secrets.token_hex(8)


class _Writer:
    """Element helpers bound to one version's namespaces."""

    def __init__(self, version: str):
        self.version = version
        # Records already serialized (MARCXML is built as text) are spliced into
        # the serialized response in place of a placeholder, instead of being
        # parsed into the tree only to be serialized again.
        self.splices: dict[str, str] = {}
        self._nonce = _NONCE
        self.v2 = version == "2.0"
        if self.v2:
            self.ns, self.prefix = SRU2_NS, "sru"
            self.diag_ns = SRU2_DIAG_NS
        else:
            self.ns, self.prefix = SRW_NS, "srw"
            self.diag_ns = SRW_DIAG_NS

    def root(self, name: str, ns: str | None = None, prefix: str | None = None):
        ns = ns or self.ns
        return etree.Element(f"{{{ns}}}{name}",
                             nsmap={prefix or self.prefix: ns, "diag": self.diag_ns})

    def el(self, parent, name: str, text=None, ns: str | None = None):
        e = etree.SubElement(parent, f"{{{ns or self.ns}}}{name}")
        if text is not None:
            e.text = xml_safe(str(text))
        return e

    def diagnostic(self, diag: Diagnostic | SRUDiagnosticError):
        d = etree.Element(f"{{{self.diag_ns}}}diagnostic", nsmap={"diag": self.diag_ns})
        self._diag_children(d, diag)
        return d

    def _diag_children(self, d, diag):
        ns = self.diag_ns
        etree.SubElement(d, f"{{{ns}}}uri").text = f"info:srw/diagnostic/1/{diag.code}"
        details = getattr(diag, "details", "")
        if details:
            etree.SubElement(d, f"{{{ns}}}details").text = xml_safe(str(details))
        message = diag.message if isinstance(diag, SRUDiagnosticError) else diag.text
        if message:
            etree.SubElement(d, f"{{{ns}}}message").text = xml_safe(message)

    def diagnostics(self, parent, diags, container_ns: str | None = None):
        diags = list(diags)
        if not diags:
            return
        c = etree.SubElement(parent, f"{{{container_ns or self.ns}}}diagnostics")
        for diag in diags:
            d = etree.SubElement(c, f"{{{self.diag_ns}}}diagnostic")
            self._diag_children(d, diag)

    def record(self, parent, schema_uri: str, packing: str, payload, text: str | None,
               position: int | None):
        """SRU 1.2 "Records" / Part 3 "recordData": recordSchema, recordPacking
        (1.x) or recordXMLEscaping (2.0), recordData, recordPosition."""
        rec = self.el(parent, "record")
        self.el(rec, "recordSchema", schema_uri)
        self.el(rec, "recordXMLEscaping" if self.v2 else "recordPacking", packing)
        data = self.el(rec, "recordData")
        if packing == "xml" and isinstance(payload, str):
            token = f"\ue000{self._nonce}-{len(self.splices)}\ue001"
            self.splices[token] = payload
            data.text = token
        elif packing == "xml" and payload is not None:
            data.append(payload)
        else:
            data.text = text if text is not None else (
                etree.tostring(payload, encoding="unicode") if payload is not None else "")
        if position is not None:
            self.el(rec, "recordPosition", position)
        return rec


def _finish(root, stylesheet: str | None, splices: Mapping[str, str] | None = None) -> bytes:
    if stylesheet:
        href = (stylesheet.replace("&", "&amp;").replace('"', "&quot;")
                .replace("<", "&lt;").replace(">", "&gt;"))
        root.addprevious(etree.ProcessingInstruction(
            "xml-stylesheet", f'type="text/xsl" href="{href}"'))
    body = etree.tostring(root.getroottree(), encoding="UTF-8")
    out = [b'<?xml version="1.0" encoding="UTF-8"?>\n']
    pos = 0
    for token, xml in (splices or {}).items():     # placeholders in document order: one pass
        t = token.encode("utf-8")
        at = body.find(t, pos)
        if at < 0:
            raise AssertionError(f"placeholder {token!r} not in the response")
        out += (body[pos:at], xml.encode("utf-8"))
        pos = at + len(t)
    out.append(body[pos:])
    return b"".join(out)


def _version_of(req) -> str:
    v = getattr(req, "version", HIGHEST_VERSION)
    return v if v in SUPPORTED_VERSIONS else HIGHEST_VERSION


def searchretrieve_response(
    req: SearchRetrieveRequest,
    *,
    total: int,
    records: Sequence[RenderedRecord] | Sequence = (),
    start: int | None = None,
    result_set_id: str | None = None,
    result_set_ttl: int | None = None,
    next_position: int | None = None,
    facets: Mapping[str, Sequence] | None = None,
    diagnostics: Iterable[Diagnostic] = (),
    facet_defs: Mapping | None = None,
) -> bytes:
    """A searchRetrieveResponse.

    1.x (SRU 1.2 "searchRetrieve Operation", response parameters): version,
    numberOfRecords, resultSetId, resultSetIdleTime, records, nextRecordPosition,
    diagnostics.  2.0 (Part 3 and sruResponse.xsd, whose sequence is followed):
    numberOfRecords, resultSetId, records, nextRecordPosition,
    echoedSearchRetrieveRequest, diagnostics, resultSetTTL, resultCountPrecision,
    facetedResults.

    ``records`` are RenderedRecords or UnionRecords (rendered here in
    req.record_schema; one that fails becomes a surrogate diagnostic); ``None``
    entries become surrogate diagnostic 65.  ``start`` is the position of the
    first record (default req.start_record).  ``facets``: facet name ->
    FacetValues; ``facet_defs`` (IndexConfig.facets) gives each facet's index
    and label.
    """
    w = _Writer(_version_of(req))
    start = req.start_record if start is None else start
    root = w.root("searchRetrieveResponse")
    if not w.v2:
        w.el(root, "version", w.version)
    w.el(root, "numberOfRecords", max(0, int(total)))
    if result_set_id:
        w.el(root, "resultSetId", result_set_id)
        if not w.v2 and result_set_ttl:
            w.el(root, "resultSetIdleTime", int(result_set_ttl))
    rendered = [r if isinstance(r, RenderedRecord) else render_record(r, req.schema)
                for r in records]
    if rendered:
        recs = w.el(root, "records")
        if req.record_packing == "xml" and records_text.ENABLED and all(map(records_text.is_text_xml, rendered)):
            # a page of MARCXML texts: written as text, spliced in whole (sru/records_text.py)
            token = f"\ue000{w._nonce}-{len(w.splices)}\ue001"
            w.splices[token] = records_text.records_text(w.prefix, w.v2, rendered, start)
            recs.text = token
        else:
            for i, r in enumerate(rendered):
                _add_record(w, recs, r, req.record_packing, start + i)
    if next_position is not None:
        w.el(root, "nextRecordPosition", int(next_position))
    if w.v2 and req.echo:
        _echo_2_0(w, root, req)
    w.diagnostics(root, diagnostics)
    if w.v2:
        if result_set_id and result_set_ttl is not None:
            w.el(root, "resultSetTTL", int(result_set_ttl))
        w.el(root, "resultCountPrecision", RESULT_COUNT_EXACT)
        if facets:
            _facets(w, root, req, facets, facet_defs or {})
    return _finish(root, req.stylesheet, w.splices)


def _add_record(w: _Writer, parent, r: RenderedRecord, packing: str, position: int):
    if r.diagnostic is not None:
        # SRU 1.2 "Surrogate Diagnostics": the diagnostic stands in for the record.
        d = w.diagnostic(r.diagnostic)
        w.record(parent, DIAGNOSTIC_RECORD_SCHEMA, packing, d,
                 None if packing == "xml" else etree.tostring(d, encoding="unicode"),
                 position)
        return
    assert r.schema is not None         # a rendered record has its schema (a surrogate, above, has none)
    if not r.is_xml:  # text-only schema (MARC-in-JSON): always escaped
        w.record(parent, r.schema.uri, "string", None, r.text or "", position)
        return
    if packing == "xml":
        payload = r.element if r.element is not None else r.text
        w.record(parent, r.schema.uri, packing, payload, None, position)
    else:
        w.record(parent, r.schema.uri, packing, None, r.as_string(), position)


def _echo_2_0(w: _Writer, root, req: SearchRetrieveRequest):
    # sruResponse.xsd echoedSearchRetrieveRequestDefinition order.
    e = w.el(root, "echoedSearchRetrieveRequest")
    for name in ("queryType", "query", "startRecord", "maximumRecords",
                 "recordXMLEscaping", "recordSchema", "resultSetTTL", "sortKeys",
                 "stylesheet"):
        if name in req.echo:
            w.el(e, name, req.echo[name])


def cql_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _split_sortby(query: str) -> tuple[str, str]:
    """Split "body sortby keys" at a sortby outside quotes."""
    in_quote = False
    i = 0
    while i < len(query):
        ch = query[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            in_quote = not in_quote
        elif not in_quote and query[i:i + 6].lower() == "sortby" and \
                (i == 0 or query[i - 1].isspace()) and \
                (i + 6 == len(query) or query[i + 6].isspace()):
            return query[:i].strip(), query[i + 6:].strip()
        i += 1
    return query.strip(), ""


def facet_query(original: str, index: str, value: str) -> str:
    """The CQL query that narrows ``original`` to one facet value."""
    body, sort = _split_sortby(original)
    q = f"({body}) and {index} == {cql_quote(value)}"
    return f"{q} sortby {sort}" if sort else q


def _facets(w: _Writer, root, req, facets: Mapping[str, Sequence], facet_defs: Mapping):
    """Part 3 "Faceted Results": facetedResults (sruResponse namespace, typed by
    facetedResults.xsd) / facet (facetDisplayLabel, index, terms/term
    (actualTerm, query, count))."""
    f_ns = FACET_NS
    made = None
    for name, values in facets.items():
        values = [v for v in values if v is not None]
        if not values:
            continue
        if made is None:
            made = etree.SubElement(root, f"{{{SRU2_NS}}}facetedResults",
                                    nsmap={"facet": f_ns})
        fdef = facet_defs.get(name)
        index = getattr(fdef, "index", None) or name
        label = getattr(fdef, "title", None) or name
        fe = etree.SubElement(made, f"{{{f_ns}}}facet")
        etree.SubElement(fe, f"{{{f_ns}}}facetDisplayLabel").text = xml_safe(label)
        etree.SubElement(fe, f"{{{f_ns}}}index").text = xml_safe(index)
        terms = etree.SubElement(fe, f"{{{f_ns}}}terms")
        for v in values:
            t = etree.SubElement(terms, f"{{{f_ns}}}term")
            etree.SubElement(t, f"{{{f_ns}}}actualTerm").text = xml_safe(v.display or v.value)
            etree.SubElement(t, f"{{{f_ns}}}query").text = xml_safe(
                facet_query(req.query, index, v.value))
            etree.SubElement(t, f"{{{f_ns}}}count").text = str(int(v.count))


def scan_response(req: ScanRequest, terms: Sequence, diagnostics: Iterable[Diagnostic] = ()
                  ) -> bytes:
    """A scanResponse.  1.x (SRU 1.2 "Scan"): version, terms/term(value,
    numberOfRecords, displayTerm), diagnostics, in the srw namespace.  2.0
    (scan.xsd): the same without version, in the scan namespace.  ``terms`` are
    indexers.records.ScanTerm (value, display, count)."""
    w = _Writer(_version_of(req))
    if w.v2:
        root = w.root("scanResponse", SRU2_SCAN_NS, "scan")
        ns = SRU2_SCAN_NS
    else:
        root = w.root("scanResponse")
        ns = SRW_NS
        w.el(root, "version", w.version)
    terms = list(terms)
    if terms:
        te = etree.SubElement(root, f"{{{ns}}}terms")
        for t in terms:
            term = etree.SubElement(te, f"{{{ns}}}term")
            etree.SubElement(term, f"{{{ns}}}value").text = xml_safe(t.value)
            etree.SubElement(term, f"{{{ns}}}numberOfRecords").text = str(int(t.count))
            display = getattr(t, "display", "")
            if display:
                etree.SubElement(term, f"{{{ns}}}displayTerm").text = xml_safe(display)
    w.diagnostics(root, diagnostics, container_ns=ns)
    return _finish(root, req.stylesheet)


def explain_response(req: ExplainRequest, explain_info, diagnostics: Iterable[Diagnostic] = ()
                     ) -> bytes:
    """An explainResponse (SRU 1.2 "Explain"; Part 3 explainResponseDefinition):
    [version,] record (recordSchema = the ZeeRex 2.0 identifier), diagnostics.
    ``explain_info`` is the element from sru.explain.explain_record (copied, so a
    cached one can be reused) or its serialized bytes."""
    w = _Writer(_version_of(req))
    root = w.root("explainResponse")
    if not w.v2:
        w.el(root, "version", w.version)
    if isinstance(explain_info, (bytes, str)):
        element = etree.fromstring(explain_info.encode() if isinstance(explain_info, str)
                                   else explain_info)
    else:
        element = copy.deepcopy(explain_info)
    packing = getattr(req, "record_packing", "xml")
    w.record(root, ZEEREX_NS, packing, element,
             None if packing == "xml" else etree.tostring(element, encoding="unicode"),
             None)
    w.diagnostics(root, diagnostics)
    return _finish(root, getattr(req, "stylesheet", None))


def diagnostic_response(operation: str | None, version: str | None,
                        diag: SRUDiagnosticError | Diagnostic, *,
                        explain_record=None, stylesheet: str | None = None) -> bytes:
    """A whole response holding only ``diag``, shaped for ``operation``
    (searchRetrieve -> numberOfRecords 0 + diagnostics; scan -> diagnostics;
    explain -> the explain record + diagnostics when ``explain_record`` is given,
    else a searchRetrieveResponse, since explainResponse requires a record).
    An unknown operation is answered as searchRetrieve."""
    if version not in SUPPORTED_VERSIONS:
        version = HIGHEST_VERSION
    if isinstance(diag, SRUDiagnosticError):
        diag = diag.diagnostic
    if operation == "scan":
        return scan_response(ScanRequest(version, "", stylesheet=stylesheet), [], [diag])
    if operation == "explain" and explain_record is not None:
        return explain_response(ExplainRequest(version, "xml", stylesheet), explain_record,
                                [diag])
    w = _Writer(version)
    root = w.root("searchRetrieveResponse")
    if not w.v2:
        w.el(root, "version", version)
    w.el(root, "numberOfRecords", 0)
    w.diagnostics(root, [diag])
    return _finish(root, stylesheet)


def error_response(err: SRUDiagnosticError, *, explain_record=None) -> bytes:
    """diagnostic_response for an SRUDiagnosticError from parse_request (or from
    a QueryError wrapped by sru.diagnostics.from_query_error)."""
    return diagnostic_response(err.operation, err.version or HIGHEST_VERSION, err,
                               explain_record=explain_record)
