"""Z39.50-2003 APDUs on top of ``z3950.ber``: Init request/response and Close.

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

from .ber import (CONTEXT, UNIVERSAL, BERError, Element, Framer, NULL, SEQUENCE, VISIBLE_STRING,
                  DEFAULT_MAX_DEPTH, DEFAULT_MAX_ELEMENTS,
                  decode_all, enc_bits, enc_bool, enc_explicit, enc_int, enc_octets, enc_oid,
                  enc_seq, enc_str, encode)

__all__ = [
    "INIT_REQUEST", "INIT_RESPONSE", "CLOSE", "OPTION_BITS", "CLOSE_REASONS",
    "IdOpen", "IdPass", "IdAnonymous", "IdOther", "IdAuthentication",
    "InitializeRequest", "InitializeResponse", "Close", "PDU", "UnsupportedAPDU",
    "encode_pdu", "decode_pdu", "apdu_framer", "is_apdu_tag",
]

# APDU choice tags (context class, constructed)
INIT_REQUEST = 20
INIT_RESPONSE = 21
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


PDU = InitializeRequest | InitializeResponse | Close


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
    raise UnsupportedAPDU(element.tag, element.offset)


def is_apdu_tag(tag: int) -> bool:
    return FIRST_APDU_TAG <= tag <= LAST_APDU_TAG


def apdu_framer(max_length: int = 1024 * 1024, **limits: int) -> Framer:
    """A Framer that accepts only Z39.50 APDUs (context-class constructed tags
    20..50) at the top level, so a peer speaking something else is refused at
    its first bytes."""
    return Framer(max_length=max_length, accept=lambda cls, constructed, tag:
                  cls == CONTEXT and constructed and is_apdu_tag(tag), **limits)
