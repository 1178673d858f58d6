"""Init and Close (Z39.50-2003 3.2.1 and 3.2.11): the APDUs that open and
close an association, with IdAuthentication and the Options bits."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..ber import (
    CONTEXT,
    NULL,
    SEQUENCE,
    UNIVERSAL,
    VISIBLE_STRING,
    Element,
    enc_bits,
    enc_bool,
    enc_explicit,
    enc_int,
    enc_octets,
    enc_oid,
    enc_seq,
    enc_str,
    encode,
)
from .fields import (
    _OTHER_INFO,
    _REFERENCE_ID,
    CLOSE,
    INIT_REQUEST,
    INIT_RESPONSE,
    _explicit_inner,
    _Fields,
    _opt_str,
    _opt_text,
)

# Tags inside the Init and Close sequences
_PROTOCOL_VERSION = 3           # ProtocolVersion ::= [3] IMPLICIT BIT STRING
_OPTIONS = 4                    # Options ::= [4] IMPLICIT BIT STRING
_PREFERRED_MESSAGE_SIZE = 5
_EXCEPTIONAL_RECORD_SIZE = 6
_ID_AUTHENTICATION = 7          # [7] IdAuthentication (explicit)
_USER_INFORMATION = 11          # [11] EXTERNAL (explicit)
_RESULT = 12
_IMPLEMENTATION_ID, _IMPLEMENTATION_NAME, _IMPLEMENTATION_VERSION = 110, 111, 112
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
    fields: dict[str, Any] = dict(
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

