"""Z39.50-2003 APDUs on top of ``z3950.ber``: Init, Search, Present,
DeleteResultSet, Scan, Sort (requests and responses) and Close.

Follows the ASN.1 module Z39-50-APDU-1995 in ANSI/NISO Z39.50-2003:
the module's default tagging is EXPLICIT, so a tag written without IMPLICIT wraps
the inner encoding (``idAuthentication [7]``, ``userInformationField [11]``).

    PDU ::= CHOICE { initRequest [20] IMPLICIT InitializeRequest,
                     initResponse [21] IMPLICIT InitializeResponse, ...
                     close [48] IMPLICIT Close, ... }

Character strings (InternationalString ::= GeneralString) are read and written
as UTF-8 unless another ``encoding`` is given.  Parts this layer does not model
(userInformationField, otherInfo, resourceReport, idAuthentication 'other') are
kept as raw ``Element`` trees and re-encoded as they came.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple, Union

from .ber import (CONTEXT, UNIVERSAL, BERError, Element, Framer, EXTERNAL, GENERAL_STRING, INTEGER, NULL,
                  OBJECT_IDENTIFIER, SEQUENCE, VISIBLE_STRING, DEFAULT_MAX_DEPTH, DEFAULT_MAX_ELEMENTS,
                  decode_all, enc_bits, enc_bool, enc_explicit, enc_int, enc_null, enc_octets, enc_oid,
                  enc_seq, enc_str, encode)

__all__ = [
    "INIT_REQUEST", "INIT_RESPONSE", "SEARCH_REQUEST", "SEARCH_RESPONSE", "PRESENT_REQUEST",
    "PRESENT_RESPONSE", "DELETE_RESULT_SET_REQUEST", "DELETE_RESULT_SET_RESPONSE", "SCAN_REQUEST",
    "SCAN_RESPONSE", "SORT_REQUEST", "SORT_RESPONSE", "CLOSE", "OPTION_BITS", "CLOSE_REASONS",
    "BIB1_DIAGNOSTICS", "CQL_QUERY_OID", "PRESENT_STATUS", "SCAN_STATUS", "SORT_STATUS", "DELETE_SET_STATUS",
    "IdOpen", "IdPass", "IdAnonymous", "IdOther", "IdAuthentication",
    "InitializeRequest", "InitializeResponse", "Close", "Diagnostic", "CQLQuery", "OtherQuery",
    "SearchRequest", "SearchResponse", "NamePlusRecord", "PresentRequest", "PresentResponse",
    "DeleteResultSetRequest", "DeleteResultSetResponse", "ScanRequest", "ScanResponse", "ScanEntry",
    "SortKeySpec", "SortRequest", "SortResponse", "PDU", "UnsupportedAPDU",
    "encode_pdu", "decode_pdu", "decode_diagnostic", "enc_diagnostic", "apdu_framer", "is_apdu_tag",
]

# APDU choice tags (context class, constructed)
INIT_REQUEST = 20
INIT_RESPONSE = 21
SEARCH_REQUEST = 22
SEARCH_RESPONSE = 23
PRESENT_REQUEST = 24
PRESENT_RESPONSE = 25
DELETE_RESULT_SET_REQUEST = 26
DELETE_RESULT_SET_RESPONSE = 27
SCAN_REQUEST = 35
SCAN_RESPONSE = 36
SORT_REQUEST = 43
SORT_RESPONSE = 44
CLOSE = 48
FIRST_APDU_TAG, LAST_APDU_TAG = 20, 50   # initRequest .. duplicateDetectionResponse

# Tags inside the Init and Close sequences
_REFERENCE_ID = 2               # ReferenceId ::= [2] IMPLICIT OCTET STRING
_PROTOCOL_VERSION = 3           # ProtocolVersion ::= [3] IMPLICIT BIT STRING
_OPTIONS = 4                    # Options ::= [4] IMPLICIT BIT STRING
_PREFERRED_MESSAGE_SIZE = 5
_EXCEPTIONAL_RECORD_SIZE = 6
_ID_AUTHENTICATION = 7          # [7] IdAuthentication (explicit)
_USER_INFORMATION = 11          # [11] EXTERNAL (explicit)
_RESULT = 12
_IMPLEMENTATION_ID, _IMPLEMENTATION_NAME, _IMPLEMENTATION_VERSION = 110, 111, 112
_OTHER_INFO = 201               # OtherInformation ::= [201] IMPLICIT SEQUENCE OF ...
_CLOSE_REASON = 211             # CloseReason ::= [211] IMPLICIT INTEGER
_DIAGNOSTIC_INFORMATION = 3
_RESOURCE_REPORT_FORMAT = 4     # [4] IMPLICIT ResourceReportId (an OBJECT IDENTIFIER)
_RESOURCE_REPORT = 5            # [5] ResourceReport (explicit)

# Options ::= [4] IMPLICIT BIT STRING: bits 0-14 as named in Z39.50-2003 (9 is
# unused); 15-21 as named in current toolkits' ASN.1 (e.g. YAZ's z3950v3.asn).
OPTION_BITS: dict[str, int] = {
    "search": 0, "present": 1, "delSet": 2, "resourceReport": 3, "triggerResourceCtrl": 4,
    "resourceCtrl": 5, "accessCtrl": 6, "scan": 7, "sort": 8, "extendedServices": 10,
    "level-1Segmentation": 11, "level-2Segmentation": 12, "concurrentOperations": 13,
    "namedResultSets": 14, "encapsulation": 15, "resultCount": 16, "negotiationModel": 17,
    "duplicateDetection": 18, "queryType104": 19, "pQESCorrection": 20, "stringSchema": 21,
}
_OPTION_NAMES = {bit: name for name, bit in OPTION_BITS.items()}

# CloseReason values
CLOSE_REASONS: dict[int, str] = {
    0: "finished", 1: "shutdown", 2: "systemProblem", 3: "costLimit", 4: "resources",
    5: "securityViolation", 6: "protocolError", 7: "lackOfActivity", 8: "peerAbort",
    9: "unspecified",
}


# ---------------------------------------------------------------------------
# IdAuthentication ::= CHOICE { open VisibleString, idPass SEQUENCE {...},
#                               anonymous NULL, other EXTERNAL }
# (Z39.50-2003 types it ANY and recommends this CHOICE; anything else is IdOther.)

@dataclass(frozen=True)
class IdOpen:
    text: str


@dataclass(frozen=True)
class IdPass:
    """idPass SEQUENCE { groupId [0], userId [1], password [2] } (all IMPLICIT
    InternationalString OPTIONAL)."""
    group_id: str | None = None
    user_id: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class IdAnonymous:
    pass


@dataclass(frozen=True)
class IdOther:
    """Any other encoding (EXTERNAL, or whatever a peer put under [7])."""
    element: Element


IdAuthentication = IdOpen | IdPass | IdAnonymous | IdOther


@dataclass(frozen=True)
class InitializeRequest:
    """InitializeRequest (Z39.50-2003 3.2.1, Init facility).  ``protocol_version`` holds version
    numbers (bit n of ProtocolVersion is version n+1); ``options`` holds names
    from OPTION_BITS, or ``"bit<n>"`` for a bit without a name."""
    protocol_version: frozenset[int] = frozenset({1, 2, 3})
    options: frozenset[str] = frozenset()
    preferred_message_size: int = 1024 * 1024
    exceptional_record_size: int = 1024 * 1024
    reference_id: bytes | None = None
    id_authentication: IdAuthentication | None = None
    implementation_id: str | None = None
    implementation_name: str | None = None
    implementation_version: str | None = None
    user_information: Element | None = None     # the EXTERNAL under [11]
    other_info: Element | None = None           # the whole [201] element


@dataclass(frozen=True)
class InitializeResponse:
    """InitializeResponse (Z39.50-2003 3.2.1); ``result`` False is a reject."""
    result: bool = True
    protocol_version: frozenset[int] = frozenset({1, 2, 3})
    options: frozenset[str] = frozenset()
    preferred_message_size: int = 1024 * 1024
    exceptional_record_size: int = 1024 * 1024
    reference_id: bytes | None = None
    implementation_id: str | None = None
    implementation_name: str | None = None
    implementation_version: str | None = None
    user_information: Element | None = None
    other_info: Element | None = None


@dataclass(frozen=True)
class Close:
    """Close (Z39.50-2003 3.2.11, Termination facility); ``close_reason`` is a CLOSE_REASONS key."""
    close_reason: int = 0
    reference_id: bytes | None = None
    diagnostic_information: str | None = None
    resource_report_format: str | None = None   # OBJECT IDENTIFIER, dotted
    resource_report: Element | None = None      # the ResourceReport under [5]
    other_info: Element | None = None




class UnsupportedAPDU(BERError):
    """A well-framed APDU of a kind this module does not decode (yet); ``tag``
    is its PDU choice tag, e.g. 22 for searchRequest."""

    def __init__(self, tag: int, offset: int = 0):
        super().__init__(f"APDU [{tag}] is not supported", offset)
        self.tag = tag


# ---------------------------------------------------------------------------
# Encoding

def _versions_bits(versions: frozenset[int]) -> list[bool]:
    if any(not isinstance(v, int) or v < 1 for v in versions):
        raise ValueError(f"protocol versions are numbers from 1: {sorted(versions)!r}")
    return [v + 1 in versions for v in range(max(versions, default=0))]


def _options_bits(options: frozenset[str]) -> list[bool]:
    numbers = set()
    for name in options:
        if name in OPTION_BITS:
            numbers.add(OPTION_BITS[name])
        elif name.startswith("bit") and name[3:].isascii() and name[3:].isdigit():
            numbers.add(int(name[3:]))
        else:
            raise ValueError(f"unknown Init option {name!r}")
    return [n in numbers for n in range(max(numbers, default=-1) + 1)]


def _opt_str(tag: int, value: str | None, encoding: str) -> bytes:
    return b"" if value is None else enc_str(tag, value, CONTEXT, encoding)


def _enc_id_authentication(auth: IdAuthentication, encoding: str) -> bytes:
    if isinstance(auth, IdOpen):
        inner = enc_str(VISIBLE_STRING, auth.text, UNIVERSAL, "ascii")
    elif isinstance(auth, IdPass):
        inner = enc_seq(SEQUENCE, [_opt_str(0, auth.group_id, encoding), _opt_str(1, auth.user_id, encoding),
                                   _opt_str(2, auth.password, encoding)], UNIVERSAL)
    elif isinstance(auth, IdAnonymous):
        inner = b"\x05\x00"   # NULL
    elif isinstance(auth, IdOther):
        inner = encode(auth.element)
    else:
        raise TypeError(f"not an IdAuthentication: {auth!r}")
    return enc_explicit(_ID_AUTHENTICATION, inner)


def _enc_init(pdu: InitializeRequest | InitializeResponse, encoding: str) -> bytes:
    parts = [
        b"" if pdu.reference_id is None else enc_octets(_REFERENCE_ID, pdu.reference_id),
        enc_bits(_PROTOCOL_VERSION, _versions_bits(pdu.protocol_version)),
        enc_bits(_OPTIONS, _options_bits(pdu.options)),
        enc_int(_PREFERRED_MESSAGE_SIZE, pdu.preferred_message_size),
        enc_int(_EXCEPTIONAL_RECORD_SIZE, pdu.exceptional_record_size),
    ]
    if isinstance(pdu, InitializeRequest):
        if pdu.id_authentication is not None:
            parts.append(_enc_id_authentication(pdu.id_authentication, encoding))
        tag = INIT_REQUEST
    else:
        parts.append(enc_bool(_RESULT, pdu.result))
        tag = INIT_RESPONSE
    parts += [
        _opt_str(_IMPLEMENTATION_ID, pdu.implementation_id, encoding),
        _opt_str(_IMPLEMENTATION_NAME, pdu.implementation_name, encoding),
        _opt_str(_IMPLEMENTATION_VERSION, pdu.implementation_version, encoding),
        b"" if pdu.user_information is None else enc_explicit(_USER_INFORMATION, encode(pdu.user_information)),
        b"" if pdu.other_info is None else encode(pdu.other_info),
    ]
    return enc_seq(tag, parts)


def _enc_close(pdu: Close, encoding: str) -> bytes:
    return enc_seq(CLOSE, [
        b"" if pdu.reference_id is None else enc_octets(_REFERENCE_ID, pdu.reference_id),
        enc_int(_CLOSE_REASON, pdu.close_reason),
        _opt_str(_DIAGNOSTIC_INFORMATION, pdu.diagnostic_information, encoding),
        b"" if pdu.resource_report_format is None else enc_oid(_RESOURCE_REPORT_FORMAT, pdu.resource_report_format),
        b"" if pdu.resource_report is None else enc_explicit(_RESOURCE_REPORT, encode(pdu.resource_report)),
        b"" if pdu.other_info is None else encode(pdu.other_info),
    ])


def encode_pdu(pdu: PDU, *, encoding: str = "utf-8") -> bytes:
    """The BER encoding of one APDU, ready to send."""
    if isinstance(pdu, (InitializeRequest, InitializeResponse)):
        return _enc_init(pdu, encoding)
    if isinstance(pdu, Close):
        return _enc_close(pdu, encoding)
    encoder = _ENCODERS.get(type(pdu))
    if encoder is not None:
        return encoder(pdu, encoding)
    raise TypeError(f"not an APDU: {pdu!r}")


# ---------------------------------------------------------------------------
# Decoding

class _Fields:
    """Walk the components of a SEQUENCE in order, taking optional ones if their
    tag is next; whatever is left at the end is an error."""

    def __init__(self, seq: Element, what: str):
        self.items, self.i, self.seq, self.what = seq.children, 0, seq, what

    def opt(self, cls: int, tag: int) -> Element | None:
        if self.i < len(self.items) and self.items[self.i].is_(cls, tag):
            self.i += 1
            return self.items[self.i - 1]
        return None

    def req(self, cls: int, tag: int, name: str) -> Element:
        element = self.opt(cls, tag)
        if element is None:
            at = self.items[self.i].offset if self.i < len(self.items) else self.seq.offset
            raise BERError(f"{self.what}: {name} missing", at)
        return element

    def end(self) -> None:
        if self.i < len(self.items):
            extra = self.items[self.i]
            raise BERError(f"{self.what}: unexpected {extra.describe()}", extra.offset)


def _explicit_inner(element: Element) -> Element:
    """The single encoding inside an EXPLICIT tag."""
    if len(element.children) != 1:
        raise BERError(f"explicit tag {element.describe()} with {len(element.children)} elements inside",
                       element.offset)
    return element.children[0]


def _opt_text(element: Element | None, encoding: str) -> str | None:
    return None if element is None else element.as_text(encoding)


def _dec_id_authentication(wrapper: Element, encoding: str) -> IdAuthentication:
    inner = _explicit_inner(wrapper)
    if inner.is_(UNIVERSAL, VISIBLE_STRING):
        return IdOpen(inner.as_text("ascii"))
    if inner.is_(UNIVERSAL, SEQUENCE) and inner.constructed:
        f = _Fields(inner, "idPass")
        auth = IdPass(_opt_text(f.opt(CONTEXT, 0), encoding), _opt_text(f.opt(CONTEXT, 1), encoding),
                      _opt_text(f.opt(CONTEXT, 2), encoding))
        f.end()
        return auth
    if inner.is_(UNIVERSAL, NULL):
        inner.as_null()
        return IdAnonymous()
    return IdOther(inner)


def _dec_versions(element: Element) -> frozenset[int]:
    return frozenset(i + 1 for i, bit in enumerate(element.as_bits()) if bit)


def _dec_options(element: Element) -> frozenset[str]:
    return frozenset(_OPTION_NAMES.get(i, f"bit{i}") for i, bit in enumerate(element.as_bits()) if bit)


def _dec_init(apdu: Element, encoding: str) -> InitializeRequest | InitializeResponse:
    request = apdu.tag == INIT_REQUEST
    f = _Fields(apdu, "initRequest" if request else "initResponse")
    ref = f.opt(CONTEXT, _REFERENCE_ID)
    fields = dict(
        reference_id=None if ref is None else ref.octets(),
        protocol_version=_dec_versions(f.req(CONTEXT, _PROTOCOL_VERSION, "protocolVersion")),
        options=_dec_options(f.req(CONTEXT, _OPTIONS, "options")),
        preferred_message_size=f.req(CONTEXT, _PREFERRED_MESSAGE_SIZE, "preferredMessageSize").as_int(),
        exceptional_record_size=f.req(CONTEXT, _EXCEPTIONAL_RECORD_SIZE, "exceptionalRecordSize").as_int(),
    )
    if request:
        auth = f.opt(CONTEXT, _ID_AUTHENTICATION)
        fields["id_authentication"] = None if auth is None else _dec_id_authentication(auth, encoding)
    else:
        fields["result"] = f.req(CONTEXT, _RESULT, "result").as_bool()
    fields["implementation_id"] = _opt_text(f.opt(CONTEXT, _IMPLEMENTATION_ID), encoding)
    fields["implementation_name"] = _opt_text(f.opt(CONTEXT, _IMPLEMENTATION_NAME), encoding)
    fields["implementation_version"] = _opt_text(f.opt(CONTEXT, _IMPLEMENTATION_VERSION), encoding)
    user = f.opt(CONTEXT, _USER_INFORMATION)
    fields["user_information"] = None if user is None else _explicit_inner(user)
    fields["other_info"] = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    return InitializeRequest(**fields) if request else InitializeResponse(**fields)


def _dec_close(apdu: Element, encoding: str) -> Close:
    f = _Fields(apdu, "close")
    ref = f.opt(CONTEXT, _REFERENCE_ID)
    reason = f.req(CONTEXT, _CLOSE_REASON, "closeReason").as_int()
    diagnostic = _opt_text(f.opt(CONTEXT, _DIAGNOSTIC_INFORMATION), encoding)
    report_format = f.opt(CONTEXT, _RESOURCE_REPORT_FORMAT)
    report = f.opt(CONTEXT, _RESOURCE_REPORT)
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    return Close(close_reason=reason, reference_id=None if ref is None else ref.octets(),
                 diagnostic_information=diagnostic,
                 resource_report_format=None if report_format is None else report_format.as_oid(),
                 resource_report=None if report is None else _explicit_inner(report), other_info=other)


def decode_pdu(data: bytes, *, encoding: str = "utf-8", max_length: int | None = None,
               max_depth: int = DEFAULT_MAX_DEPTH, max_elements: int = DEFAULT_MAX_ELEMENTS) -> PDU:
    """Decode one complete APDU (as cut by ``apdu_framer``).  Raises BERError for
    anything malformed, UnsupportedAPDU for a valid APDU tag not handled here."""
    element = decode_all(data, max_length=max_length or max(len(data), 1), max_depth=max_depth,
                         max_elements=max_elements)
    if not (element.cls == CONTEXT and element.constructed and is_apdu_tag(element.tag)):
        raise BERError(f"not a Z39.50 APDU: {element.describe()}", element.offset)
    if element.tag in (INIT_REQUEST, INIT_RESPONSE):
        return _dec_init(element, encoding)
    if element.tag == CLOSE:
        return _dec_close(element, encoding)
    decoder = _DECODERS.get(element.tag)
    if decoder is not None:
        try:
            return decoder(element, encoding)
        except RecursionError:
            raise BERError("APDU nested too deeply", element.offset) from None
    raise UnsupportedAPDU(element.tag, element.offset)


def is_apdu_tag(tag: int) -> bool:
    return FIRST_APDU_TAG <= tag <= LAST_APDU_TAG


def apdu_framer(max_length: int = 1024 * 1024, **limits: int) -> Framer:
    """A Framer that accepts only Z39.50 APDUs (context-class constructed tags
    20..50) at the top level, so a peer speaking something else is refused at
    its first bytes."""
    return Framer(max_length=max_length, accept=lambda cls, constructed, tag:
                  cls == CONTEXT and constructed and is_apdu_tag(tag), **limits)


# ---------------------------------------------------------------------------
# Search, Present, DeleteResultSet, Scan, Sort (Z39.50-2003 3.2.2 - 3.2.7)
#
#   DatabaseName ::= [105] IMPLICIT InternationalString
#   ResultSetId ::= [31] IMPLICIT InternationalString
#   ElementSetNames ::= CHOICE { genericElementSetName [0] IMPLICIT InternationalString,
#       databaseSpecific [1] IMPLICIT SEQUENCE OF SEQUENCE { dbName DatabaseName, esn ElementSetName } }
#   ElementSetName ::= [103] IMPLICIT InternationalString
#   DiagRec ::= CHOICE { defaultFormat DefaultDiagFormat, externallyDefined EXTERNAL }
#   DefaultDiagFormat ::= SEQUENCE { diagnosticSetId OBJECT IDENTIFIER, condition INTEGER,
#       addinfo CHOICE { v2Addinfo VisibleString, v3Addinfo InternationalString } }

BIB1_DIAGNOSTICS = "1.2.840.10003.4.1"
CQL_QUERY_OID = "1.2.840.10003.16.2"     # type-104 query definition for CQL

_DATABASE_NAME = 105
_RESULT_SET_ID = 31
_ELEMENT_SET_NAME = 103
_PREFERRED_RECORD_SYNTAX = 104
_ADDITIONAL_SEARCH_INFO = 203
_RESPONSE_RECORDS, _NON_SURROGATE_DIAGNOSTIC, _MULTIPLE_NON_SUR_DIAGNOSTICS = 28, 130, 205
_PRESENT_STATUS = 27

PRESENT_STATUS = {0: "success", 1: "partial-1", 2: "partial-2", 3: "partial-3", 4: "partial-4", 5: "failure"}
RESULT_SET_STATUS = {1: "subset", 2: "interim", 3: "none"}
SCAN_STATUS = {0: "success", 1: "partial-1", 2: "partial-2", 3: "partial-3", 4: "partial-4", 5: "partial-5",
               6: "failure"}
SORT_STATUS = {0: "success", 1: "partial-1", 2: "failure"}
DELETE_SET_STATUS = {
    0: "success", 1: "resultSetDidNotExist", 2: "previouslyDeletedByTarget", 3: "systemProblemAtTarget",
    4: "accessNotAllowed", 5: "resourceControlAtOrigin", 6: "resourceControlAtTarget",
    7: "bulkDeleteNotSupported", 8: "notAllRsltSetsDeletedOnBulkDlte", 9: "notAllRequestedResultSetsDeleted",
    10: "resultSetInUse",
}

# An element set name: generic ("F", "B") or per database ((database, name), ...)
ElementSetNames = Union[str, Tuple[Tuple[str, str], ...]]


@dataclass(frozen=True)
class Diagnostic:
    """A DiagRec: ``condition`` from ``diagnostic_set`` (Bib-1 by default) with
    its addinfo.  An externally defined DiagRec keeps its EXTERNAL in ``external``
    (condition is then 0 and the other fields are empty)."""
    condition: int
    addinfo: str | None = None
    diagnostic_set: str = BIB1_DIAGNOSTICS
    external: Element | None = None


@dataclass(frozen=True)
class CQLQuery:
    """A type-104 query whose definition is CQL (1.2.840.10003.16.2)."""
    text: str


@dataclass(frozen=True)
class OtherQuery:
    """A query of a type this layer does not interpret (type-0, 2, 100, 102, a
    type-104 other than CQL); ``element`` is the Query choice as it came."""
    type: int
    element: Element


@dataclass(frozen=True)
class SearchRequest:
    query: object                       # rpn.RPNQuery | CQLQuery | OtherQuery
    database_names: tuple[str, ...] = ("Default",)
    result_set_name: str = "default"
    replace_indicator: bool = True
    small_set_upper_bound: int = 0
    large_set_lower_bound: int = 1
    medium_set_present_number: int = 0
    small_set_element_set_names: ElementSetNames | None = None
    medium_set_element_set_names: ElementSetNames | None = None
    preferred_record_syntax: str | None = None
    reference_id: bytes | None = None
    additional_search_info: Element | None = None   # the [203] element
    other_info: Element | None = None
    rpn_type: int = 1                   # 1 or 101 for an RPN query


@dataclass(frozen=True)
class NamePlusRecord:
    """One response record: the EXTERNAL (``record``; encoded bytes when built
    for sending, the decoded Element when received) or a surrogate diagnostic.
    A fragment (segmentation, not used by this gateway) arrives in ``fragment``
    as ([3..5] tag, element)."""
    database: str | None = None
    record: bytes | Element | None = None
    diagnostic: Diagnostic | None = None
    fragment: tuple[int, Element] | None = None


@dataclass(frozen=True)
class SearchResponse:
    result_count: int
    number_of_records_returned: int = 0
    next_result_set_position: int = 1
    search_status: bool = True
    result_set_status: int | None = None      # RESULT_SET_STATUS, only when search_status is False
    present_status: int | None = None         # PRESENT_STATUS, when records were asked for
    records: tuple[NamePlusRecord, ...] | None = None
    diagnostics: tuple[Diagnostic, ...] = ()  # non-surrogate: one -> [130], several -> [205]
    reference_id: bytes | None = None
    additional_search_info: Element | None = None
    other_info: Element | None = None


@dataclass(frozen=True)
class PresentRequest:
    result_set_id: str
    start_point: int = 1
    number_of_records: int = 1
    element_set_names: ElementSetNames | None = None
    preferred_record_syntax: str | None = None
    additional_ranges: tuple[tuple[int, int], ...] = ()
    comp_spec: Element | None = None          # recordComposition complex [209], as it came
    max_segment_count: int | None = None
    max_record_size: int | None = None
    max_segment_size: int | None = None
    reference_id: bytes | None = None
    other_info: Element | None = None


@dataclass(frozen=True)
class PresentResponse:
    number_of_records_returned: int = 0
    next_result_set_position: int = 0
    present_status: int = 0
    records: tuple[NamePlusRecord, ...] | None = None
    diagnostics: tuple[Diagnostic, ...] = ()
    reference_id: bytes | None = None
    other_info: Element | None = None


@dataclass(frozen=True)
class DeleteResultSetRequest:
    delete_function: int = 0                  # 0 list, 1 all
    result_set_list: tuple[str, ...] = ()
    reference_id: bytes | None = None
    other_info: Element | None = None


@dataclass(frozen=True)
class DeleteResultSetResponse:
    delete_operation_status: int = 0          # DELETE_SET_STATUS
    delete_list_statuses: tuple[tuple[str, int], ...] | None = None
    number_not_deleted: int | None = None
    bulk_statuses: tuple[tuple[str, int], ...] | None = None
    delete_message: str | None = None
    reference_id: bytes | None = None
    other_info: Element | None = None


@dataclass(frozen=True)
class ScanRequest:
    term: object                              # rpn.APT: attributes plus the start term
    database_names: tuple[str, ...] = ("Default",)
    attribute_set: str | None = None
    number_of_terms_requested: int = 20
    step_size: int | None = None
    preferred_position: int | None = None
    reference_id: bytes | None = None
    other_info: Element | None = None


@dataclass(frozen=True)
class ScanEntry:
    """A TermInfo: the term (text for general and characterString terms,
    int for numeric, the raw Element for other term types)."""
    term: str | int | Element
    display_term: str | None = None
    occurrences: int | None = None
    term_type: str = "general"


@dataclass(frozen=True)
class ScanResponse:
    scan_status: int = 0
    number_of_entries_returned: int = 0
    position_of_term: int | None = None
    entries: tuple[ScanEntry | Diagnostic, ...] | None = None
    diagnostics: tuple[Diagnostic, ...] = ()  # ListEntries.nonsurrogateDiagnostics
    step_size: int | None = None
    attribute_set: str | None = None
    reference_id: bytes | None = None
    other_info: Element | None = None


@dataclass(frozen=True)
class SortKeySpec:
    """One key of a Sort request.  The key is a sort field name, or Bib-1
    style sort attributes (``attributes``, rpn.AttributeElement tuple, with
    ``attribute_set``), or an element spec / database-specific keys kept as
    Elements.  ``relation`` 0 ascending, 1 descending (3, 4 by frequency);
    ``missing_value_action`` is "abort", "null", missing-value bytes or None."""
    sort_field: str | None = None
    attributes: tuple | None = None
    attribute_set: str | None = None
    element_spec: Element | None = None
    database_specific: Element | None = None
    relation: int = 0
    case_sensitivity: int = 1
    missing_value_action: str | bytes | None = None


@dataclass(frozen=True)
class SortRequest:
    input_result_set_names: tuple[str, ...]
    sorted_result_set_name: str
    sort_sequence: tuple[SortKeySpec, ...]
    reference_id: bytes | None = None
    other_info: Element | None = None


@dataclass(frozen=True)
class SortResponse:
    sort_status: int = 0
    result_set_status: int | None = None      # 1 empty, 2 interim, 3 unchanged, 4 none
    diagnostics: tuple[Diagnostic, ...] = ()
    result_count: int | None = None
    reference_id: bytes | None = None
    other_info: Element | None = None


# -- encoding helpers

def _ref(ref: bytes | None) -> bytes:
    return b"" if ref is None else enc_octets(_REFERENCE_ID, ref)


def _raw(element: Element | None) -> bytes:
    return b"" if element is None else encode(element)


def _opt_int(tag: int, value: int | None) -> bytes:
    return b"" if value is None else enc_int(tag, value)


def _enc_db_names(tag: int, names: tuple[str, ...], encoding: str) -> bytes:
    return enc_seq(tag, [enc_str(_DATABASE_NAME, n, CONTEXT, encoding) for n in names])


def _enc_esn(names: ElementSetNames, encoding: str) -> bytes:
    """ElementSetNames (a CHOICE, so callers wrap it in their explicit tag)."""
    if isinstance(names, str):
        return enc_str(0, names, CONTEXT, encoding)
    return enc_seq(1, [enc_seq(SEQUENCE, [enc_str(_DATABASE_NAME, db, CONTEXT, encoding),
                                          enc_str(_ELEMENT_SET_NAME, esn, CONTEXT, encoding)], UNIVERSAL)
                       for db, esn in names])


def enc_diagnostic(diag: Diagnostic, encoding: str = "utf-8") -> bytes:
    """A DiagRec: DefaultDiagFormat as a universal SEQUENCE (v3 addinfo), or the EXTERNAL."""
    if diag.external is not None:
        return encode(diag.external)
    return enc_seq(SEQUENCE, _default_diag_parts(diag, encoding), UNIVERSAL)


def _default_diag_parts(diag: Diagnostic, encoding: str) -> list[bytes]:
    return [enc_oid(OBJECT_IDENTIFIER, diag.diagnostic_set, UNIVERSAL), enc_int(INTEGER, diag.condition, UNIVERSAL),
            enc_str(GENERAL_STRING, diag.addinfo or "", UNIVERSAL, encoding)]


def _enc_records(records: tuple[NamePlusRecord, ...] | None, diagnostics: tuple[Diagnostic, ...],
                 encoding: str) -> bytes:
    if records is not None and diagnostics:
        raise ValueError("a response carries records or non-surrogate diagnostics, not both")
    if diagnostics:
        if len(diagnostics) == 1 and diagnostics[0].external is None:
            return enc_seq(_NON_SURROGATE_DIAGNOSTIC, _default_diag_parts(diagnostics[0], encoding))
        return enc_seq(_MULTIPLE_NON_SUR_DIAGNOSTICS, [enc_diagnostic(d, encoding) for d in diagnostics])
    if records is None:
        return b""
    parts = []
    for npr in records:
        if npr.diagnostic is not None:
            inner = enc_explicit(2, enc_diagnostic(npr.diagnostic, encoding))
        elif npr.record is not None:
            ext = npr.record if isinstance(npr.record, (bytes, bytearray)) else encode(npr.record)
            inner = enc_explicit(1, bytes(ext))
        elif npr.fragment is not None:
            inner = enc_explicit(npr.fragment[0], encode(npr.fragment[1]))
        else:
            raise ValueError("NamePlusRecord without a record or a diagnostic")
        parts.append(enc_seq(SEQUENCE, [_opt_str(0, npr.database, encoding), enc_explicit(1, inner)], UNIVERSAL))
    return enc_seq(_RESPONSE_RECORDS, parts)


def _enc_query(query, rpn_type: int, encoding: str) -> bytes:
    from . import rpn
    if isinstance(query, rpn.RPNQuery):
        return rpn.encode_rpn_query(query, tag=rpn_type, encoding=encoding)
    if isinstance(query, CQLQuery):   # [104] IMPLICIT EXTERNAL, CQL text as single-ASN1-type
        return enc_seq(104, [enc_oid(OBJECT_IDENTIFIER, CQL_QUERY_OID, UNIVERSAL),
                             enc_explicit(0, enc_str(GENERAL_STRING, query.text, UNIVERSAL, encoding))])
    if isinstance(query, OtherQuery):
        return encode(query.element)
    raise TypeError(f"not a query: {query!r}")


def _enc_search_request(pdu: SearchRequest, encoding: str) -> bytes:
    return enc_seq(SEARCH_REQUEST, [
        _ref(pdu.reference_id),
        enc_int(13, pdu.small_set_upper_bound), enc_int(14, pdu.large_set_lower_bound),
        enc_int(15, pdu.medium_set_present_number), enc_bool(16, pdu.replace_indicator),
        enc_str(17, pdu.result_set_name, CONTEXT, encoding),
        _enc_db_names(18, pdu.database_names, encoding),
        b"" if pdu.small_set_element_set_names is None
        else enc_explicit(100, _enc_esn(pdu.small_set_element_set_names, encoding)),
        b"" if pdu.medium_set_element_set_names is None
        else enc_explicit(101, _enc_esn(pdu.medium_set_element_set_names, encoding)),
        b"" if pdu.preferred_record_syntax is None else enc_oid(_PREFERRED_RECORD_SYNTAX, pdu.preferred_record_syntax),
        enc_explicit(21, _enc_query(pdu.query, pdu.rpn_type, encoding)),
        _raw(pdu.additional_search_info), _raw(pdu.other_info),
    ])


def _enc_search_response(pdu: SearchResponse, encoding: str) -> bytes:
    return enc_seq(SEARCH_RESPONSE, [
        _ref(pdu.reference_id),
        enc_int(23, pdu.result_count), enc_int(24, pdu.number_of_records_returned),
        enc_int(25, pdu.next_result_set_position), enc_bool(22, pdu.search_status),
        _opt_int(26, pdu.result_set_status), _opt_int(_PRESENT_STATUS, pdu.present_status),
        _enc_records(pdu.records, pdu.diagnostics, encoding),
        _raw(pdu.additional_search_info), _raw(pdu.other_info),
    ])


def _enc_present_request(pdu: PresentRequest, encoding: str) -> bytes:
    ranges = b"" if not pdu.additional_ranges else enc_seq(212, [
        enc_seq(SEQUENCE, [enc_int(1, start), enc_int(2, count)], UNIVERSAL) for start, count in pdu.additional_ranges])
    if pdu.comp_spec is not None:
        composition = encode(pdu.comp_spec)
    elif pdu.element_set_names is not None:
        composition = enc_explicit(19, _enc_esn(pdu.element_set_names, encoding))
    else:
        composition = b""
    return enc_seq(PRESENT_REQUEST, [
        _ref(pdu.reference_id), enc_str(_RESULT_SET_ID, pdu.result_set_id, CONTEXT, encoding),
        enc_int(30, pdu.start_point), enc_int(29, pdu.number_of_records), ranges, composition,
        b"" if pdu.preferred_record_syntax is None else enc_oid(_PREFERRED_RECORD_SYNTAX, pdu.preferred_record_syntax),
        _opt_int(204, pdu.max_segment_count), _opt_int(206, pdu.max_record_size), _opt_int(207, pdu.max_segment_size),
        _raw(pdu.other_info),
    ])


def _enc_present_response(pdu: PresentResponse, encoding: str) -> bytes:
    return enc_seq(PRESENT_RESPONSE, [
        _ref(pdu.reference_id), enc_int(24, pdu.number_of_records_returned),
        enc_int(25, pdu.next_result_set_position), enc_int(_PRESENT_STATUS, pdu.present_status),
        _enc_records(pdu.records, pdu.diagnostics, encoding), _raw(pdu.other_info),
    ])


def _enc_list_statuses(tag: int, statuses: tuple[tuple[str, int], ...] | None, encoding: str) -> bytes:
    if statuses is None:
        return b""
    return enc_seq(tag, [enc_seq(SEQUENCE, [enc_str(_RESULT_SET_ID, name, CONTEXT, encoding), enc_int(33, status)],
                                 UNIVERSAL) for name, status in statuses])


def _enc_delete_request(pdu: DeleteResultSetRequest, encoding: str) -> bytes:
    names = b"" if not pdu.result_set_list else enc_seq(SEQUENCE, [
        enc_str(_RESULT_SET_ID, n, CONTEXT, encoding) for n in pdu.result_set_list], UNIVERSAL)
    return enc_seq(DELETE_RESULT_SET_REQUEST, [_ref(pdu.reference_id), enc_int(32, pdu.delete_function), names,
                                               _raw(pdu.other_info)])


def _enc_delete_response(pdu: DeleteResultSetResponse, encoding: str) -> bytes:
    return enc_seq(DELETE_RESULT_SET_RESPONSE, [
        _ref(pdu.reference_id), enc_int(0, pdu.delete_operation_status),
        _enc_list_statuses(1, pdu.delete_list_statuses, encoding), _opt_int(34, pdu.number_not_deleted),
        _enc_list_statuses(35, pdu.bulk_statuses, encoding), _opt_str(36, pdu.delete_message, encoding),
        _raw(pdu.other_info),
    ])


def _enc_scan_request(pdu: ScanRequest, encoding: str) -> bytes:
    from . import rpn
    return enc_seq(SCAN_REQUEST, [
        _ref(pdu.reference_id), _enc_db_names(3, pdu.database_names, encoding),
        b"" if pdu.attribute_set is None else enc_oid(OBJECT_IDENTIFIER, pdu.attribute_set, UNIVERSAL),
        rpn.encode_apt(pdu.term, encoding=encoding), _opt_int(5, pdu.step_size),
        enc_int(6, pdu.number_of_terms_requested), _opt_int(7, pdu.preferred_position), _raw(pdu.other_info),
    ])


def _enc_term(term, term_type: str, encoding: str) -> bytes:
    if isinstance(term, Element):
        return encode(term)
    if term_type == "numeric":
        return enc_int(215, int(term))
    if term_type == "characterString":
        return enc_str(216, str(term), CONTEXT, encoding)
    return enc_str(45, term, CONTEXT, encoding)


def _enc_scan_response(pdu: ScanResponse, encoding: str) -> bytes:
    entries = b""
    if pdu.entries is not None or pdu.diagnostics:
        items = []
        for entry in pdu.entries or ():
            if isinstance(entry, Diagnostic):
                items.append(enc_explicit(2, enc_diagnostic(entry, encoding)))
            else:
                items.append(enc_seq(1, [
                    _enc_term(entry.term, entry.term_type, encoding), _opt_str(0, entry.display_term, encoding),
                    _opt_int(2, entry.occurrences)]))
        entries = enc_seq(7, [
            b"" if pdu.entries is None else enc_seq(1, items),
            b"" if not pdu.diagnostics else enc_seq(2, [enc_diagnostic(d, encoding) for d in pdu.diagnostics])])
    return enc_seq(SCAN_RESPONSE, [
        _ref(pdu.reference_id), _opt_int(3, pdu.step_size), enc_int(4, pdu.scan_status),
        enc_int(5, pdu.number_of_entries_returned), _opt_int(6, pdu.position_of_term), entries,
        b"" if pdu.attribute_set is None else enc_oid(8, pdu.attribute_set), _raw(pdu.other_info),
    ])


def _enc_sort_key_spec(spec: SortKeySpec, encoding: str) -> bytes:
    from . import rpn
    if spec.database_specific is not None:
        element = encode(spec.database_specific)
    else:
        if spec.sort_field is not None:
            key = enc_str(0, spec.sort_field, CONTEXT, encoding)
        elif spec.attributes is not None:
            key = enc_seq(2, [enc_oid(OBJECT_IDENTIFIER, spec.attribute_set or "1.2.840.10003.3.1", UNIVERSAL),
                              rpn.encode_attribute_list(spec.attributes, encoding=encoding)])
        elif spec.element_spec is not None:
            key = encode(spec.element_spec)
        else:
            raise ValueError("SortKeySpec needs a sort field, attributes or an element spec")
        element = enc_explicit(1, key)
    mva = spec.missing_value_action
    missing = b"" if mva is None else enc_explicit(3, (
        enc_null(1) if mva == "abort" else enc_null(2) if mva == "null" else enc_octets(3, bytes(mva))))
    return enc_seq(SEQUENCE, [element, enc_int(1, spec.relation), enc_int(2, spec.case_sensitivity), missing],
                   UNIVERSAL)


def _enc_sort_request(pdu: SortRequest, encoding: str) -> bytes:
    return enc_seq(SORT_REQUEST, [
        _ref(pdu.reference_id),
        enc_seq(3, [enc_str(GENERAL_STRING, n, UNIVERSAL, encoding) for n in pdu.input_result_set_names]),
        enc_str(4, pdu.sorted_result_set_name, CONTEXT, encoding),
        enc_seq(5, [_enc_sort_key_spec(s, encoding) for s in pdu.sort_sequence]), _raw(pdu.other_info),
    ])


def _enc_sort_response(pdu: SortResponse, encoding: str) -> bytes:
    return enc_seq(SORT_RESPONSE, [
        _ref(pdu.reference_id), enc_int(3, pdu.sort_status), _opt_int(4, pdu.result_set_status),
        b"" if not pdu.diagnostics else enc_seq(5, [enc_diagnostic(d, encoding) for d in pdu.diagnostics]),
        _opt_int(6, pdu.result_count), _raw(pdu.other_info),
    ])


# -- decoding helpers

def _ref_of(f: _Fields) -> bytes | None:
    ref = f.opt(CONTEXT, _REFERENCE_ID)
    return None if ref is None else ref.octets()


def _opt_int_of(element: Element | None) -> int | None:
    return None if element is None else element.as_int()


def _db_names(element: Element, encoding: str) -> tuple[str, ...]:
    return tuple(c.expect(CONTEXT, _DATABASE_NAME).as_text(encoding) for c in element.children)


def _dec_esn(wrapper: Element, encoding: str) -> ElementSetNames:
    inner = _explicit_inner(wrapper)
    if inner.is_(CONTEXT, 0):
        return inner.as_text(encoding)
    inner.expect(CONTEXT, 1, True)
    pairs = []
    for item in inner.children:
        f = _Fields(item.expect(UNIVERSAL, SEQUENCE, True), "databaseSpecific")
        pairs.append((f.req(CONTEXT, _DATABASE_NAME, "dbName").as_text(encoding),
                      f.req(CONTEXT, _ELEMENT_SET_NAME, "esn").as_text(encoding)))
        f.end()
    return tuple(pairs)


def _dec_default_diag(parts: Element, encoding: str) -> Diagnostic:
    f = _Fields(parts, "DefaultDiagFormat")
    oid = f.req(UNIVERSAL, OBJECT_IDENTIFIER, "diagnosticSetId").as_oid()
    condition = f.req(UNIVERSAL, INTEGER, "condition").as_int()
    addinfo = f.opt(UNIVERSAL, GENERAL_STRING) or f.opt(UNIVERSAL, VISIBLE_STRING)
    f.end()
    return Diagnostic(condition, None if addinfo is None else addinfo.as_text(encoding), oid)


def decode_diagnostic(element: Element, encoding: str = "utf-8") -> Diagnostic:
    """A DiagRec (DefaultDiagFormat SEQUENCE or EXTERNAL)."""
    if element.is_(UNIVERSAL, EXTERNAL):
        element.children
        return Diagnostic(0, None, "", element)
    return _dec_default_diag(element.expect(UNIVERSAL, SEQUENCE, True), encoding)


def _dec_records(f: _Fields, encoding: str) -> tuple[tuple[NamePlusRecord, ...] | None, tuple[Diagnostic, ...]]:
    single = f.opt(CONTEXT, _NON_SURROGATE_DIAGNOSTIC)
    if single is not None:
        return None, (_dec_default_diag(single, encoding),)
    multiple = f.opt(CONTEXT, _MULTIPLE_NON_SUR_DIAGNOSTICS)
    if multiple is not None:
        return None, tuple(decode_diagnostic(d, encoding) for d in multiple.children)
    records = f.opt(CONTEXT, _RESPONSE_RECORDS)
    if records is None:
        return None, ()
    out = []
    for item in records.children:
        g = _Fields(item.expect(UNIVERSAL, SEQUENCE, True), "NamePlusRecord")
        name = _opt_text(g.opt(CONTEXT, 0), encoding)
        choice = _explicit_inner(g.req(CONTEXT, 1, "record"))
        g.end()
        if choice.cls != CONTEXT or not choice.constructed or not 1 <= choice.tag <= 5:
            raise BERError(f"NamePlusRecord: unexpected record choice {choice.describe()}", choice.offset)
        inner = _explicit_inner(choice)
        if choice.tag == 1:
            inner.expect(UNIVERSAL, EXTERNAL, True)
            out.append(NamePlusRecord(name, record=inner))
        elif choice.tag == 2:
            out.append(NamePlusRecord(name, diagnostic=decode_diagnostic(inner, encoding)))
        else:
            out.append(NamePlusRecord(name, fragment=(choice.tag, inner)))
    return tuple(out), ()


def _dec_query(wrapper: Element, encoding: str):
    from . import rpn
    query = _explicit_inner(wrapper)
    if query.cls != CONTEXT:
        raise BERError(f"query: unexpected {query.describe()}", query.offset)
    if query.tag in (1, 101) and query.constructed:
        return rpn.decode_rpn_query(query, encoding=encoding), query.tag
    if query.tag == 104 and query.constructed:
        g = _Fields(query, "type-104 EXTERNAL")
        oid = g.req(UNIVERSAL, OBJECT_IDENTIFIER, "direct-reference").as_oid()
        g.opt(UNIVERSAL, INTEGER)
        g.opt(UNIVERSAL, 7)       # ObjectDescriptor
        if oid == CQL_QUERY_OID:
            enc = g.opt(CONTEXT, 0)
            if enc is not None:
                text = _explicit_inner(enc).as_text(encoding)
            else:
                text = g.req(CONTEXT, 1, "encoding").as_text(encoding)
            g.end()
            return CQLQuery(text), 1
    return OtherQuery(query.tag, query), 1


def _dec_search_request(apdu: Element, encoding: str) -> SearchRequest:
    f = _Fields(apdu, "searchRequest")
    ref = _ref_of(f)
    small = f.req(CONTEXT, 13, "smallSetUpperBound").as_int()
    large = f.req(CONTEXT, 14, "largeSetLowerBound").as_int()
    medium = f.req(CONTEXT, 15, "mediumSetPresentNumber").as_int()
    replace = f.req(CONTEXT, 16, "replaceIndicator").as_bool()
    name = f.req(CONTEXT, 17, "resultSetName").as_text(encoding)
    dbs = _db_names(f.req(CONTEXT, 18, "databaseNames"), encoding)
    ssesn = f.opt(CONTEXT, 100)
    msesn = f.opt(CONTEXT, 101)
    syntax = f.opt(CONTEXT, _PREFERRED_RECORD_SYNTAX)
    query, rpn_type = _dec_query(f.req(CONTEXT, 21, "query"), encoding)
    additional = f.opt(CONTEXT, _ADDITIONAL_SEARCH_INFO)
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    return SearchRequest(
        query=query, database_names=dbs, result_set_name=name, replace_indicator=replace,
        small_set_upper_bound=small, large_set_lower_bound=large, medium_set_present_number=medium,
        small_set_element_set_names=None if ssesn is None else _dec_esn(ssesn, encoding),
        medium_set_element_set_names=None if msesn is None else _dec_esn(msesn, encoding),
        preferred_record_syntax=None if syntax is None else syntax.as_oid(), reference_id=ref,
        additional_search_info=additional, other_info=other, rpn_type=rpn_type)


def _dec_search_response(apdu: Element, encoding: str) -> SearchResponse:
    f = _Fields(apdu, "searchResponse")
    ref = _ref_of(f)
    count = f.req(CONTEXT, 23, "resultCount").as_int()
    returned = f.req(CONTEXT, 24, "numberOfRecordsReturned").as_int()
    nxt = f.req(CONTEXT, 25, "nextResultSetPosition").as_int()
    status = f.req(CONTEXT, 22, "searchStatus").as_bool()
    rs_status = _opt_int_of(f.opt(CONTEXT, 26))
    present_status = _opt_int_of(f.opt(CONTEXT, _PRESENT_STATUS))
    records, diagnostics = _dec_records(f, encoding)
    additional = f.opt(CONTEXT, _ADDITIONAL_SEARCH_INFO)
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    return SearchResponse(count, returned, nxt, status, rs_status, present_status, records, diagnostics, ref,
                          additional, other)


def _dec_present_request(apdu: Element, encoding: str) -> PresentRequest:
    f = _Fields(apdu, "presentRequest")
    ref = _ref_of(f)
    rs = f.req(CONTEXT, _RESULT_SET_ID, "resultSetId").as_text(encoding)
    start = f.req(CONTEXT, 30, "resultSetStartPoint").as_int()
    number = f.req(CONTEXT, 29, "numberOfRecordsRequested").as_int()
    ranges_el = f.opt(CONTEXT, 212)
    ranges = []
    for r in () if ranges_el is None else ranges_el.children:
        g = _Fields(r.expect(UNIVERSAL, SEQUENCE, True), "Range")
        ranges.append((g.req(CONTEXT, 1, "startingPosition").as_int(), g.req(CONTEXT, 2, "numberOfRecords").as_int()))
        g.end()
    simple = f.opt(CONTEXT, 19)
    complex_ = f.opt(CONTEXT, 209) if simple is None else None
    syntax = f.opt(CONTEXT, _PREFERRED_RECORD_SYNTAX)
    seg_count = _opt_int_of(f.opt(CONTEXT, 204))
    rec_size = _opt_int_of(f.opt(CONTEXT, 206))
    seg_size = _opt_int_of(f.opt(CONTEXT, 207))
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    return PresentRequest(
        rs, start, number, None if simple is None else _dec_esn(simple, encoding),
        None if syntax is None else syntax.as_oid(), tuple(ranges), complex_, seg_count, rec_size, seg_size,
        ref, other)


def _dec_present_response(apdu: Element, encoding: str) -> PresentResponse:
    f = _Fields(apdu, "presentResponse")
    ref = _ref_of(f)
    returned = f.req(CONTEXT, 24, "numberOfRecordsReturned").as_int()
    nxt = f.req(CONTEXT, 25, "nextResultSetPosition").as_int()
    status = f.req(CONTEXT, _PRESENT_STATUS, "presentStatus").as_int()
    records, diagnostics = _dec_records(f, encoding)
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    return PresentResponse(returned, nxt, status, records, diagnostics, ref, other)


def _dec_list_statuses(element: Element | None, encoding: str) -> tuple[tuple[str, int], ...] | None:
    if element is None:
        return None
    out = []
    for item in element.children:
        g = _Fields(item.expect(UNIVERSAL, SEQUENCE, True), "ListStatuses")
        out.append((g.req(CONTEXT, _RESULT_SET_ID, "id").as_text(encoding), g.req(CONTEXT, 33, "status").as_int()))
        g.end()
    return tuple(out)


def _dec_delete_request(apdu: Element, encoding: str) -> DeleteResultSetRequest:
    f = _Fields(apdu, "deleteResultSetRequest")
    ref = _ref_of(f)
    function = f.req(CONTEXT, 32, "deleteFunction").as_int()
    names = f.opt(UNIVERSAL, SEQUENCE)
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    return DeleteResultSetRequest(
        function, () if names is None else tuple(c.expect(CONTEXT, _RESULT_SET_ID).as_text(encoding)
                                                  for c in names.children), ref, other)


def _dec_delete_response(apdu: Element, encoding: str) -> DeleteResultSetResponse:
    f = _Fields(apdu, "deleteResultSetResponse")
    ref = _ref_of(f)
    status = f.req(CONTEXT, 0, "deleteOperationStatus").as_int()
    statuses = _dec_list_statuses(f.opt(CONTEXT, 1), encoding)
    not_deleted = _opt_int_of(f.opt(CONTEXT, 34))
    bulk = _dec_list_statuses(f.opt(CONTEXT, 35), encoding)
    message = _opt_text(f.opt(CONTEXT, 36), encoding)
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    return DeleteResultSetResponse(status, statuses, not_deleted, bulk, message, ref, other)


def _dec_scan_request(apdu: Element, encoding: str) -> ScanRequest:
    from . import rpn
    f = _Fields(apdu, "scanRequest")
    ref = _ref_of(f)
    dbs = _db_names(f.req(CONTEXT, 3, "databaseNames"), encoding)
    attrset = f.opt(UNIVERSAL, OBJECT_IDENTIFIER)
    apt = rpn.decode_apt(f.req(CONTEXT, 102, "termListAndStartPoint"), encoding=encoding)
    step = _opt_int_of(f.opt(CONTEXT, 5))
    number = f.req(CONTEXT, 6, "numberOfTermsRequested").as_int()
    position = _opt_int_of(f.opt(CONTEXT, 7))
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    return ScanRequest(apt, dbs, None if attrset is None else attrset.as_oid(), number, step, position, ref, other)


def _dec_term(element: Element, encoding: str) -> tuple[str | int | Element, str]:
    if element.is_(CONTEXT, 45):
        return element.as_text(encoding), "general"
    if element.is_(CONTEXT, 215):
        return element.as_int(), "numeric"
    if element.is_(CONTEXT, 216):
        return element.as_text(encoding), "characterString"
    if element.cls == CONTEXT and element.tag in (217, 218, 219, 220, 221):
        return element, "other"
    raise BERError(f"Term: unexpected {element.describe()}", element.offset)


def _dec_scan_response(apdu: Element, encoding: str) -> ScanResponse:
    f = _Fields(apdu, "scanResponse")
    ref = _ref_of(f)
    step = _opt_int_of(f.opt(CONTEXT, 3))
    status = f.req(CONTEXT, 4, "scanStatus").as_int()
    number = f.req(CONTEXT, 5, "numberOfEntriesReturned").as_int()
    position = _opt_int_of(f.opt(CONTEXT, 6))
    list_entries = f.opt(CONTEXT, 7)
    attrset = f.opt(CONTEXT, 8)
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    entries: list | None = None
    diagnostics: tuple[Diagnostic, ...] = ()
    if list_entries is not None:
        g = _Fields(list_entries, "ListEntries")
        items = g.opt(CONTEXT, 1)
        diags = g.opt(CONTEXT, 2)
        g.end()
        if items is not None:
            entries = []
            for item in items.children:
                if item.is_(CONTEXT, 2):
                    entries.append(decode_diagnostic(_explicit_inner(item), encoding))
                    continue
                h = _Fields(item.expect(CONTEXT, 1, True), "TermInfo")
                if h.i >= len(h.items):
                    raise BERError("TermInfo without a term", item.offset)
                term, term_type = _dec_term(h.items[0], encoding)
                h.i = 1
                display = _opt_text(h.opt(CONTEXT, 0), encoding)
                h.opt(CONTEXT, 44)           # suggestedAttributes
                h.opt(CONTEXT, 4)            # alternativeTerm
                occurrences = _opt_int_of(h.opt(CONTEXT, 2))
                h.opt(CONTEXT, 3)            # byAttributes
                h.opt(CONTEXT, _OTHER_INFO)
                h.end()
                entries.append(ScanEntry(term, display, occurrences, term_type))
        if diags is not None:
            diagnostics = tuple(decode_diagnostic(d, encoding) for d in diags.children)
    return ScanResponse(status, number, position, None if entries is None else tuple(entries), diagnostics, step,
                        None if attrset is None else attrset.as_oid(), ref, other)


def _dec_sort_key_spec(element: Element, encoding: str) -> SortKeySpec:
    from . import rpn
    f = _Fields(element.expect(UNIVERSAL, SEQUENCE, True), "SortKeySpec")
    if f.i >= len(f.items):
        raise BERError("SortKeySpec without a sort element", element.offset)
    sort_element = f.items[0]
    f.i = 1
    fields: dict = {}
    if sort_element.is_(CONTEXT, 1):
        key = _explicit_inner(sort_element)
        if key.is_(CONTEXT, 0):
            fields["sort_field"] = key.as_text(encoding)
        elif key.is_(CONTEXT, 2) and key.constructed:
            g = _Fields(key, "sortAttributes")
            fields["attribute_set"] = g.req(UNIVERSAL, OBJECT_IDENTIFIER, "id").as_oid()
            fields["attributes"] = rpn.decode_attribute_list(g.req(CONTEXT, 44, "list"), encoding=encoding)
            g.end()
        elif key.is_(CONTEXT, 1):
            fields["element_spec"] = key
        else:
            raise BERError(f"SortKey: unexpected {key.describe()}", key.offset)
    elif sort_element.is_(CONTEXT, 2) and sort_element.constructed:
        fields["database_specific"] = sort_element
    else:
        raise BERError(f"SortElement: unexpected {sort_element.describe()}", sort_element.offset)
    fields["relation"] = f.req(CONTEXT, 1, "sortRelation").as_int()
    fields["case_sensitivity"] = f.req(CONTEXT, 2, "caseSensitivity").as_int()
    missing = f.opt(CONTEXT, 3)
    f.end()
    if missing is not None:
        action = _explicit_inner(missing)
        if action.is_(CONTEXT, 1):
            fields["missing_value_action"] = "abort"
        elif action.is_(CONTEXT, 2):
            fields["missing_value_action"] = "null"
        elif action.is_(CONTEXT, 3):
            fields["missing_value_action"] = action.octets()
        else:
            raise BERError(f"missingValueAction: unexpected {action.describe()}", action.offset)
    return SortKeySpec(**fields)


def _dec_sort_request(apdu: Element, encoding: str) -> SortRequest:
    f = _Fields(apdu, "sortRequest")
    ref = _ref_of(f)
    inputs = tuple(c.as_text(encoding) for c in f.req(CONTEXT, 3, "inputResultSetNames").children)
    sorted_name = f.req(CONTEXT, 4, "sortedResultSetName").as_text(encoding)
    keys = tuple(_dec_sort_key_spec(c, encoding) for c in f.req(CONTEXT, 5, "sortSequence").children)
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    return SortRequest(inputs, sorted_name, keys, ref, other)


def _dec_sort_response(apdu: Element, encoding: str) -> SortResponse:
    f = _Fields(apdu, "sortResponse")
    ref = _ref_of(f)
    status = f.req(CONTEXT, 3, "sortStatus").as_int()
    rs_status = _opt_int_of(f.opt(CONTEXT, 4))
    diags = f.opt(CONTEXT, 5)
    count = _opt_int_of(f.opt(CONTEXT, 6))
    other = f.opt(CONTEXT, _OTHER_INFO)
    f.end()
    return SortResponse(status, rs_status, () if diags is None else tuple(decode_diagnostic(d, encoding)
                                                                          for d in diags.children),
                        count, ref, other)


_ENCODERS = {
    SearchRequest: _enc_search_request, SearchResponse: _enc_search_response,
    PresentRequest: _enc_present_request, PresentResponse: _enc_present_response,
    DeleteResultSetRequest: _enc_delete_request, DeleteResultSetResponse: _enc_delete_response,
    ScanRequest: _enc_scan_request, ScanResponse: _enc_scan_response,
    SortRequest: _enc_sort_request, SortResponse: _enc_sort_response,
}
_DECODERS = {
    SEARCH_REQUEST: _dec_search_request, SEARCH_RESPONSE: _dec_search_response,
    PRESENT_REQUEST: _dec_present_request, PRESENT_RESPONSE: _dec_present_response,
    DELETE_RESULT_SET_REQUEST: _dec_delete_request, DELETE_RESULT_SET_RESPONSE: _dec_delete_response,
    SCAN_REQUEST: _dec_scan_request, SCAN_RESPONSE: _dec_scan_response,
    SORT_REQUEST: _dec_sort_request, SORT_RESPONSE: _dec_sort_response,
}

PDU = Union[InitializeRequest, InitializeResponse, Close, SearchRequest, SearchResponse, PresentRequest,
            PresentResponse, DeleteResultSetRequest, DeleteResultSetResponse, ScanRequest, ScanResponse,
            SortRequest, SortResponse]
