"""Z39.50 record syntaxes, both directions, sans-I/O.

``encode_record`` turns a union record (``indexers.records.UnionRecord``, or a
bare ``pymarc.Record``) into the EXTERNAL that a Search or Present response
carries as a retrievalRecord; ``decode_external`` turns such an EXTERNAL (a
decoded ``z3950.ber.Element``) back into a ``RetrievedRecord`` on the client
side.

    EXTERNAL ::= [UNIVERSAL 8] IMPLICIT SEQUENCE {
        direct-reference      OBJECT IDENTIFIER,
        indirect-reference    INTEGER OPTIONAL,          -- accepted, ignored
        data-value-descriptor ObjectDescriptor OPTIONAL, -- accepted, ignored
        encoding CHOICE {
            single-ASN1-type [0] ANY,                    -- explicit: wraps the value
            octet-aligned    [1] IMPLICIT OCTET STRING,
            arbitrary        [2] IMPLICIT BIT STRING } }

Record syntaxes (OIDs under Z39.50's 1.2.840.10003.5):

========  =====================  ============================================
USMARC    1.2.840.10003.5.10     octet-aligned ISO 2709, UTF-8, leader/09 'a'
XML       1.2.840.10003.5.109.10 octet-aligned MARCXML (text/xml), UTF-8;
          1.2.840.10003.5.109.3  (application/xml) is accepted as the same
SUTRS     1.2.840.10003.5.101    single-ASN1-type [0] wrapping a GeneralString
                                 [UNIVERSAL 27] (as YAZ sends it); octet-aligned
                                 is accepted on input
OPAC      1.2.840.10003.5.102    single-ASN1-type [0] wrapping an OPACRecord
========  =====================  ============================================

Element sets: ``"F"`` (full record, also ``None`` and ``""``) and ``"B"``
(brief: leader, 001, 003, 005, 008, 010, 020, 022, 1XX, 245, 250, 260, 264,
300, 490, the 880s linked to any of these, and the 852 holdings), case-
insensitive.  Any other name is Bib-1 diagnostic 25.

Character sets.  USMARC and XML octets are always UTF-8: the MARC leader
(09 = 'a') and the XML document say so, and MARC 21 knows no other Unicode
encoding.  ``encoding`` applies to the InternationalStrings: the SUTRS text and
the OPAC holdings and circulation strings (characters the codec cannot carry
become '?').

OPAC holdings.  ``OPACRecord.bibliographicRecord`` is the USMARC EXTERNAL of the
record in the same element set; ``holdingsData`` has one ``holdingsAndCirc``
per ``Holding``, filled as follows (the ASN.1 comments give the MARC 21 holdings
subfields each element stands for; ours come from the display record's 852):

==================  ==========================================================
nucCode [8]         ``Holding.library`` -- the member library code (852 $a,
                    the institution: exactly what a NUC code identifies)
localLocation [9]   ``Holding.branch`` (852 $b, sublocation / branch)
shelvingLocation    ``Holding.location`` (852 $c, shelving location)
[10]
callNumber [11]     ``Holding.call_number`` (852 $h/$i)
copyNumber [13]     ``Holding.barcode``.  The ASN.1 comment says 852 $t (copy
                    number), which the union catalog does not keep; the barcode
                    (852 $p, piece designation) is the one identifier that
                    tells copies apart, and without circulation data it would
                    otherwise not reach the client at all
publicNote [14]     the holding's ``public_note`` when it has one (the server's
                    holdings carry the status in words: gateway/availability.py)
circulationData     one CircRecord when the ``availability`` callable gives an
[19]                ``Availability`` for the holding, none otherwise (the
                    server gives it from the circulation database, when it has
                    one); its itemId is ``Availability.item_id``, or the
                    barcode when that is None
==================  ==========================================================

typeOfRecord, encodingLevel, dateOfReport and the other elements are left out
rather than filled with made-up values: empty strings are never sent.

Errors.  ``RecordSyntaxError(code, addinfo)`` carries a Bib-1 diagnostic for
the server to send as a surrogate diagnostic for that one record:

* 239 "Record syntax not supported" -- addinfo: the requested syntax;
* 25 "Specified element set name not valid for specified database" --
  addinfo: the element set name;
* 238 "Record not available in requested syntax" -- a record that ISO 2709
  cannot carry (a field over 9,999 bytes, a record over 99,999 bytes, a tag
  that is not three ASCII letters or digits, a subfield code that is not one
  printable ASCII character) cannot be USMARC (nor
  OPAC, whose bibliographic record is USMARC); as Bib-1 defines for 238, the
  addinfo is the suggested alternative syntax (XML), and ``reason`` says what
  was wrong.  (227 "No data available in requested record syntax" is about a
  syntax in general; 238 is about this record.)

Decoding never raises anything but ``BERError``, and only for malformed BER or
a structure that contradicts the ASN.1 (unknown context tags inside the OPAC
structures are skipped, for forward compatibility).  USMARC octets are parsed
with the project's permissive reader (indexers.marc_reader: UTF-8 or MARC-8 by
leader/09, leaders that lie detected); a record it cannot parse gives
``marc=None`` with ``error`` set, and pymarc's warnings are collected into
``warnings`` (with warnings.catch_warnings, which is process-global state: do
not decode USMARC from several threads at once).  Strings that are not valid in
``encoding`` are decoded with U+FFFD replacements (SUTRS and XML also set
``error``).  An unknown syntax gives its raw bytes.
"""
from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import pymarc

from indexers.marc_display import (
    Iso2709Overflow,
    LinkedFields,
    dc_values,
    iso2709_assemble,
    iso2709_value,
    join_subfields,
    marcxml_string,
)
from indexers.marc_reader import BadRecord, read_marc

from .ber import (
    CONTEXT,
    EXTERNAL,
    GENERAL_STRING,
    INTEGER,
    OBJECT_IDENTIFIER,
    OCTET_STRING,
    SEQUENCE,
    UNIVERSAL,
    BERError,
    Element,
    decode_all,
    enc_explicit,
    enc_octets,
    enc_oid,
    enc_seq,
    enc_str,
    enc_tlv,
    encode,
)

__all__ = [
    "USMARC", "XML", "XML_APPLICATION", "SUTRS", "OPAC", "SYNTAXES", "syntax_name",
    "RecordSyntaxError", "resolve_syntax", "resolve_element_set",
    "Availability", "Volume", "HoldingsData", "OPACRecordData", "RetrievedRecord",
    "encode_record", "usmarc_external", "iso2709_bytes", "brief_record", "sutrs_text",
    "decode_external", "decode_external_bytes",
    "DIAG_ELEMENT_SET_NAME", "DIAG_RECORD_NOT_IN_SYNTAX", "DIAG_SYNTAX_UNSUPPORTED",
]

# ---------------------------------------------------------------------------
# Record syntaxes

USMARC = "1.2.840.10003.5.10"
XML = "1.2.840.10003.5.109.10"             # text/xml
XML_APPLICATION = "1.2.840.10003.5.109.3"  # application/xml, treated as XML
SUTRS = "1.2.840.10003.5.101"
OPAC = "1.2.840.10003.5.102"

SYNTAXES: dict[str, str] = {           # OID -> display name (YAZ's spelling)
    USMARC: "USmarc", XML: "text-XML", XML_APPLICATION: "application-XML",
    SUTRS: "SUTRS", OPAC: "OPAC",
}
_XML_OIDS = (XML, XML_APPLICATION)

_NAMES: dict[str, str] = {
    "usmarc": USMARC, "marc21": USMARC, "marc": USMARC,
    "xml": XML, "text-xml": XML, "application-xml": XML_APPLICATION,
    "sutrs": SUTRS, "opac": OPAC,
}

# Bib-1 diagnostics (ANSI/NISO Z39.50-2003, appendix 3)
DIAG_ELEMENT_SET_NAME = 25       # Specified element set name not valid for specified database
DIAG_RECORD_NOT_IN_SYNTAX = 238  # Record not available in requested syntax
DIAG_SYNTAX_UNSUPPORTED = 239    # Record syntax not supported
_DIAG_TEXT = {
    DIAG_ELEMENT_SET_NAME: "Specified element set name not valid for specified database",
    DIAG_RECORD_NOT_IN_SYNTAX: "Record not available in requested syntax",
    DIAG_SYNTAX_UNSUPPORTED: "Record syntax not supported",
}


class RecordSyntaxError(Exception):
    """A record cannot be sent as asked: ``code`` is the Bib-1 diagnostic,
    ``addinfo`` its additional information, ``reason`` a human explanation
    (for logs; defaults to the addinfo)."""

    def __init__(self, code: int, addinfo: str = "", reason: str | None = None):
        self.code = code
        self.addinfo = addinfo
        self.reason = reason if reason is not None else addinfo
        text = _DIAG_TEXT.get(code, "diagnostic")
        super().__init__(f"Bib-1 {code} ({text}): {self.reason}")


def syntax_name(oid: str) -> str:
    """A readable name for a record syntax OID (the OID itself if unknown)."""
    return SYNTAXES.get(oid, oid)


def resolve_syntax(oid_or_name) -> str:
    """A record syntax given as a dotted OID (str), a sequence of arcs or a name
    (case-insensitive: usmarc, marc21, xml, text-xml, application-xml, sutrs,
    opac) -> its dotted OID.  Anything else raises RecordSyntaxError(239)."""
    if isinstance(oid_or_name, (tuple, list)):
        try:
            key = ".".join(str(int(a)) for a in oid_or_name)
        except (TypeError, ValueError):
            key = repr(oid_or_name)
    else:
        key = str(oid_or_name).strip()
    if key in SYNTAXES:
        return key
    oid = _NAMES.get(key.lower())
    if oid is None:
        raise RecordSyntaxError(DIAG_SYNTAX_UNSUPPORTED, key,
                                f"record syntax {key!r} not supported; supported: "
                                + ", ".join(f"{n} ({o})" for o, n in SYNTAXES.items()))
    return oid


def resolve_element_set(name: str | None) -> str:
    """"F" or "B" for an element set name (None and "" mean F; case-insensitive);
    anything else raises RecordSyntaxError(25)."""
    if name is None or not name.strip():
        return "F"
    key = name.strip().upper()
    if key in ("F", "B"):
        return key
    raise RecordSyntaxError(DIAG_ELEMENT_SET_NAME, name,
                            f"element set name {name!r} not valid; use F (full) or B (brief)")


# ---------------------------------------------------------------------------
# Data types

@dataclass(frozen=True)
class Availability:
    """Circulation status of one item, as an OPAC CircRecord carries it.  The
    first six fields are what the server fills in; the others exist so that a
    decoded CircRecord loses nothing."""

    available_now: bool
    available_date: str | None = None     # availablityDate [2] (sic, the ASN.1 spelling)
    on_hold: bool = False
    renewable: bool = False
    restrictions: str | None = None
    item_id: str | None = None
    available_thru: str | None = None
    enum_and_chron: str | None = None
    midspine: str | None = None
    temporary_location: str | None = None


@dataclass(frozen=True)
class Volume:
    enumeration: str | None = None
    chronology: str | None = None
    enum_and_chron: str | None = None


@dataclass
class HoldingsData:
    """One OPAC HoldingsRecord: a holdingsAndCirc (all elements decoded) or a
    marcHoldingsRecord (``marc_holdings``, the other fields empty)."""

    type_of_record: str | None = None
    encoding_level: str | None = None
    format: str | None = None
    receipt_acq_status: str | None = None
    general_retention: str | None = None
    completeness: str | None = None
    date_of_report: str | None = None
    nuc_code: str | None = None
    local_location: str | None = None
    shelving_location: str | None = None
    call_number: str | None = None
    shelving_data: str | None = None
    copy_number: str | None = None
    public_note: str | None = None
    reproduction_note: str | None = None
    terms_use_repro: str | None = None
    enum_and_chron: str | None = None
    volumes: list[Volume] = field(default_factory=list)
    circulation: list[Availability] = field(default_factory=list)
    marc_holdings: RetrievedRecord | None = None


@dataclass
class OPACRecordData:
    bib: RetrievedRecord | None
    holdings: list[HoldingsData] = field(default_factory=list)


@dataclass
class RetrievedRecord:
    """A decoded EXTERNAL.  ``data``: the octets (MARC, XML, SUTRS, and unknown
    syntaxes: the octet-aligned content or the encoded single-ASN1-type value);
    ``text``: SUTRS and XML as text; ``marc``: the parsed USMARC record;
    ``opac``: the OPAC record; ``error``: why ``marc`` (or ``text``) could not be
    had cleanly; ``marc_encoding``: "utf-8" or "marc-8" as read."""

    syntax: str
    data: bytes | None = None
    text: str | None = None
    marc: pymarc.Record | None = None
    opac: OPACRecordData | None = None
    error: str | None = None
    marc_encoding: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def syntax_name(self) -> str:
        return syntax_name(self.syntax)


# ---------------------------------------------------------------------------
# Record access (UnionRecord or bare pymarc.Record)

def _marc_of(record) -> pymarc.Record:
    return record.marc if hasattr(record, "marc") else record


@dataclass(frozen=True)
class _H:
    """A holding read from an 852 when the record has no Holding objects."""
    library: str
    local_id: str = ""
    branch: str = ""
    call_number: str = ""
    location: str = ""
    barcode: str = ""


def _holdings_of(record) -> list:
    hs = getattr(record, "holdings", None)
    if hs is not None:
        return list(hs)
    out = []
    for f in _marc_of(record).get_fields("852"):
        out.append(_H(library=f.get("a") or "", branch=f.get("b") or "", location=f.get("c") or "",
                      call_number=" ".join(v for c, v in f.subfields if c in "hi" and v),
                      barcode=f.get("p") or ""))
    return out


# ---------------------------------------------------------------------------
# Element set B

_BRIEF_TAGS = frozenset({"001", "003", "005", "008", "010", "020", "022", "100", "110", "111", "130",
                         "245", "250", "260", "264", "300", "490", "852"})


def brief_record(marc: pymarc.Record) -> pymarc.Record:
    """Element set B: the leader, 001 003 005 008 010 020 022 1XX 245 250 260
    264 300 490 and 852 (holdings), and every 880 whose $6 names one of those
    tags; in the record's own order."""
    out = pymarc.Record(force_utf8=True, leader=str(marc.leader))
    for f in marc.fields:
        tag = f.tag
        if tag == "880":
            link = (f.get("6") or "") if not f.is_control_field() else ""
            keep = link[:3] in _BRIEF_TAGS
        else:
            keep = tag in _BRIEF_TAGS
        if keep:
            out.add_field(f)
    return out


def _select(record, element_set: str) -> pymarc.Record:
    marc = _marc_of(record)
    return brief_record(marc) if element_set == "B" else marc


# ---------------------------------------------------------------------------
# ISO 2709

_TAG_RE = re.compile(r"[0-9A-Za-z]{3}\Z")


def _too_big(reason: str) -> RecordSyntaxError:
    return RecordSyntaxError(DIAG_RECORD_NOT_IN_SYNTAX, XML,
                             f"cannot be sent as ISO 2709 (USMARC): {reason}; available as XML ({XML})")


def _indicator(ch) -> bytes:
    ch = "" if ch is None else str(ch)
    if len(ch) != 1 or not (" " <= ch <= "~"):
        return b" "
    return ch.encode("ascii")


def iso2709_bytes(marc: pymarc.Record) -> bytes:
    """One MARC 21 record as ISO 2709 in UTF-8 (``iso2709_assemble``: leader/09
    'a', lengths and base address computed, not pymarc's writer, which would write
    a wrong directory instead of failing).  Raises RecordSyntaxError(238) for what
    ISO 2709 cannot carry."""
    fields = []
    for f in marc.fields:
        tag = str(f.tag)
        if not _TAG_RE.match(tag):
            raise _too_big(f"tag {tag!r} is not three ASCII letters or digits")
        if f.is_control_field():
            body = iso2709_value(f.data)
        else:
            ind = list(f.indicators) if f.indicators is not None else []
            ind += [" ", " "]
            parts = [_indicator(ind[0]) + _indicator(ind[1])]
            for sf in f.subfields:
                code = str(sf.code)
                if len(code) != 1 or not ("!" <= code <= "~"):
                    raise _too_big(f"field {tag} has subfield code {code!r}, not one ASCII character")
                parts.append(b"\x1f" + code.encode("ascii") + iso2709_value(sf.value))
            body = b"".join(parts)
        fields.append((tag.encode("ascii"), body))
    try:
        return iso2709_assemble(str(marc.leader) if marc.leader is not None else "", fields)
    except Iso2709Overflow as e:
        raise _too_big(str(e)) from None


# ---------------------------------------------------------------------------
# SUTRS

_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")


def _line(s: str) -> str:
    return _LINE_BREAKS.sub(" ", s).strip()


def _pairs(lk, tags: tuple[str, ...], codes: str) -> Iterator[tuple[bool, str]]:
    """(is_reading, value) for the fields of ``tags`` with their linked 880s:
    the first form of a linked pair (the vernacular) is the main value, the
    other one its reading (or romanization)."""
    shown_group = None        # the pair whose main form was given
    for f, group, _script in lk.ordered(*tags):
        value = join_subfields(f, codes)
        if not value:
            continue
        is_reading = group is not None and group == shown_group
        shown_group = group
        yield is_reading, value


def _availability_text(a: Availability) -> str:
    parts = ["available" if a.available_now else "not available"]
    if a.available_date:
        parts.append(f"available from {a.available_date}")
    if a.available_thru:
        parts.append(f"until {a.available_thru}")
    if a.on_hold:
        parts.append("on hold")
    if a.renewable:
        parts.append("renewable")
    if a.restrictions:
        parts.append(a.restrictions)
    return ", ".join(parts)


def sutrs_text(record, element_set: str = "F",
               availability: Callable[[object], Availability | None] | None = None) -> str:
    """The SUTRS rendering: one "Label: value" line per element, each ending in
    "\\n".  Title (vernacular first) and "Title reading" for its linked form,
    Author / Author reading, Edition, Publisher, Date, ISBN, ISSN, LCCN,
    Subject (6XX, so not in B), then per holding "Holding: library / branch / location /
    call number / barcode" ("-" for an empty part) and, when the availability
    callable knows, "Availability: ...".  Values come from the same extractors
    as the SRU Dublin Core (indexers.marc_display.dc_values)."""
    marc = _select(record, resolve_element_set(element_set))
    lk = LinkedFields(marc)
    lines: list[tuple[str, str]] = []
    for is_reading, v in _pairs(lk, ("245",), "abnp"):
        lines.append(("Title reading" if is_reading else "Title", v))
    for is_reading, v in _pairs(lk, ("100", "110", "111"), "abcdq"):
        lines.append(("Author reading" if is_reading else "Author", v))
    for _is_reading, v in _pairs(lk, ("250",), "ab"):
        lines.append(("Edition", v))
    dc = dc_values(marc)
    for name, v in dc:
        if name == "publisher":
            lines.append(("Publisher", v))
    for name, v in dc:
        if name == "date":
            lines.append(("Date", v))
    for name, v in dc:
        if name == "identifier":
            for prefix, label in (("urn:isbn:", "ISBN"), ("urn:issn:", "ISSN"), ("info:lccn/", "LCCN")):
                if v.startswith(prefix):
                    lines.append((label, v[len(prefix):]))
    for name, v in dc:
        if name == "subject":
            lines.append(("Subject", v))
    out = [f"{label}: {_line(value)}\n" for label, value in lines]
    for h in _holdings_of(record):
        parts = [h.library, h.branch, h.location, h.call_number, h.barcode]
        out.append("Holding: " + " / ".join(_line(p or "") or "-" for p in parts) + "\n")
        a = availability(h) if availability is not None else None
        if a is not None:
            out.append(f"Availability: {_line(_availability_text(a))}\n")
    return "".join(out)


# ---------------------------------------------------------------------------
# Encoding

def _external(oid: str, encoding: bytes, tag: int = EXTERNAL, cls: int = UNIVERSAL) -> bytes:
    """An EXTERNAL (or an IMPLICIT-tagged one) from its encoding CHOICE element."""
    return enc_seq(tag, [enc_oid(OBJECT_IDENTIFIER, oid, UNIVERSAL), encoding], cls)


def _octet_aligned(data: bytes) -> bytes:
    return enc_octets(1, data)


def _istr(tag: int, value, encoding: str) -> bytes:
    """[tag] IMPLICIT InternationalString, or nothing when the value is empty."""
    if value is None or value == "":
        return b""
    return enc_str(tag, str(value).encode(encoding, "replace"))


def _bool(tag: int, value: bool) -> bytes:
    """[tag] IMPLICIT BOOLEAN with TRUE as 0x01, not ber.enc_bool's 0xFF: X.690
    8.2.2 allows any non-zero octet, and YAZ clients print the octet as a signed
    char ("availableNow: -1" for 0xFF; YAZ itself sends 0x01)."""
    return enc_tlv(CONTEXT, False, tag, b"\x01" if value else b"\x00")


def _circ_record(a: Availability, holding, encoding: str) -> bytes:
    item_id = a.item_id if a.item_id is not None else (getattr(holding, "barcode", "") or None)
    return enc_seq(SEQUENCE, [
        _bool(1, bool(a.available_now)),
        _istr(2, a.available_date, encoding),
        _istr(3, a.available_thru, encoding),
        _istr(4, a.restrictions, encoding),
        _istr(5, item_id, encoding),
        _bool(6, bool(a.renewable)),
        _bool(7, bool(a.on_hold)),
        _istr(8, a.enum_and_chron, encoding),
        _istr(9, a.midspine, encoding),
        _istr(10, a.temporary_location, encoding),
    ], UNIVERSAL)


def _holdings_and_circ(h, availability, encoding: str) -> bytes:
    parts = [
        _istr(8, h.library, encoding),         # nucCode
        _istr(9, h.branch, encoding),          # localLocation
        _istr(10, h.location, encoding),       # shelvingLocation
        _istr(11, h.call_number, encoding),    # callNumber
        _istr(13, h.barcode, encoding),        # copyNumber
        _istr(14, getattr(h, "public_note", None), encoding),   # publicNote, when the holding has one
    ]
    a = availability(h) if availability is not None else None
    if a is not None:
        parts.append(enc_seq(19, [_circ_record(a, h, encoding)]))  # circulationData
    return enc_seq(2, parts)   # HoldingsRecord: holdingsAndCirc [2] IMPLICIT


def usmarc_external(iso2709: bytes) -> bytes:
    """The USMARC EXTERNAL for ISO 2709 bytes already written (``encode_record``
    of a record whose ``iso2709_bytes`` are known, e.g. indexers.store.display_iso2709)."""
    return _external(USMARC, _octet_aligned(iso2709))


def xml_external(text: str, syntax_oid: str = XML) -> bytes:
    """The XML EXTERNAL for an XML document already written (a record the
    gateway rendered in another XML schema, e.g. Dublin Core or MODS)."""
    oid = resolve_syntax(syntax_oid)
    if oid not in _XML_OIDS:
        raise RecordSyntaxError(DIAG_RECORD_NOT_IN_SYNTAX, oid, "an XML document needs an XML record syntax")
    return _external(oid, _octet_aligned(text.encode("utf-8")))


def encode_record(record, syntax_oid, element_set: str | None = "F", *,
                  availability: Callable[[object], Availability | None] | None = None,
                  encoding: str = "utf-8") -> bytes:
    """The EXTERNAL (complete TLV) for ``record`` in a record syntax (OID or
    name, see resolve_syntax) and element set.  ``availability(holding)`` may
    give an Availability for the OPAC circulation data and the SUTRS text.
    Raises RecordSyntaxError (239 syntax, 25 element set, 238 record too large
    or not representable as ISO 2709)."""
    oid = resolve_syntax(syntax_oid)
    es = resolve_element_set(element_set)
    if oid == USMARC:
        return usmarc_external(iso2709_bytes(_select(record, es)))
    if oid in _XML_OIDS:
        return _external(oid, _octet_aligned(marcxml_string(_select(record, es)).encode("utf-8")))
    if oid == SUTRS:
        text = sutrs_text(record, es, availability)
        return _external(oid, enc_explicit(0, enc_str(GENERAL_STRING, text.encode(encoding, "replace"),
                                                      UNIVERSAL)))
    if oid == OPAC:
        bib = _external(USMARC, _octet_aligned(iso2709_bytes(_select(record, es))), tag=1, cls=CONTEXT)
        holdings = [_holdings_and_circ(h, availability, encoding) for h in _holdings_of(record)]
        body = [bib]
        if holdings:
            body.append(enc_seq(2, holdings))
        return _external(oid, enc_explicit(0, enc_seq(SEQUENCE, body, UNIVERSAL)))
    raise RecordSyntaxError(DIAG_SYNTAX_UNSUPPORTED, oid)  # pragma: no cover - resolve_syntax guards


# ---------------------------------------------------------------------------
# Decoding

MAX_NESTING = 4     # EXTERNALs inside OPAC records inside EXTERNALs...
_OBJECT_DESCRIPTOR = 7
_GRAPHIC_STRING = 25   # what YAZ reads data-value-descriptor as
_STRING_TAGS = frozenset({OCTET_STRING, 12, 18, 19, 20, 21, 22, 25, 26, 27, 28, 30})


def decode_external_bytes(data: bytes, encoding: str = "utf-8") -> RetrievedRecord:
    """decode_external on the BER bytes of one EXTERNAL (nothing may follow)."""
    return decode_external(decode_all(data), encoding)


def decode_external(element: Element, encoding: str = "utf-8") -> RetrievedRecord:
    """A retrievalRecord EXTERNAL ([UNIVERSAL 8]) -> RetrievedRecord.  ``encoding``
    reads InternationalStrings (SUTRS, OPAC holdings).  Raises only BERError."""
    element.expect(UNIVERSAL, EXTERNAL, constructed=True)
    return _decode_external(element, encoding, 0)


def _decode_external(element: Element, encoding: str, depth: int) -> RetrievedRecord:
    if depth > MAX_NESTING:
        raise BERError(f"EXTERNALs nested deeper than {MAX_NESTING}", element.offset)
    children = element.children
    if not children or not children[0].is_(UNIVERSAL, OBJECT_IDENTIFIER):
        raise BERError("EXTERNAL without a direct-reference OBJECT IDENTIFIER", element.offset)
    oid = children[0].as_oid()
    rest = list(children[1:])
    if rest and rest[0].is_(UNIVERSAL, INTEGER):          # indirect-reference
        rest[0].as_int()
        rest.pop(0)
    if rest and (rest[0].is_(UNIVERSAL, _OBJECT_DESCRIPTOR) or rest[0].is_(UNIVERSAL, _GRAPHIC_STRING)):
        rest.pop(0)                                        # data-value-descriptor
    if len(rest) != 1:
        raise BERError(f"EXTERNAL with {len(rest)} encoding elements after the references", element.offset)
    enc = rest[0]
    if enc.cls != CONTEXT or enc.tag not in (0, 1, 2):
        raise BERError(f"EXTERNAL encoding is {enc.describe()}, not [0], [1] or [2]", enc.offset)
    single: Element | None = None
    payload: bytes | None = None
    if enc.tag == 0:
        if not enc.constructed or len(enc.children) != 1:
            raise BERError("single-ASN1-type [0] must wrap exactly one element", enc.offset)
        single = enc.children[0]
        if single.cls == UNIVERSAL and single.tag in _STRING_TAGS:
            payload = single.octets()
    elif enc.tag == 1:
        payload = enc.octets()      # constructed: OCTET STRING segments (X.690 8.7.3)
    else:
        bits = enc.as_bits()
        if len(bits) % 8:
            raise BERError(f"arbitrary [2] encoding of {len(bits)} bits, not whole octets", enc.offset)
        payload = bytes(int("".join("1" if b else "0" for b in bits[i:i + 8]), 2)
                        for i in range(0, len(bits), 8))

    # without octets, the encoding was the single-ASN1-type [0] (tags 1 and 2 are octets)
    if oid == USMARC:
        if payload is None:
            assert single is not None
            raise BERError(f"USMARC record as {single.describe()}, not octets", single.offset)
        return _marc_record(oid, payload)
    if oid in _XML_OIDS:
        if payload is None:
            assert single is not None
            raise BERError(f"XML record as {single.describe()}, not octets", single.offset)
        text, err = _xml_text(payload)
        return RetrievedRecord(oid, data=payload, text=text, error=err)
    if oid == SUTRS:
        if payload is None:
            assert single is not None
            raise BERError(f"SUTRS record as {single.describe()}, not a string", single.offset)
        text, err = _text_or_error(payload, encoding, "SUTRS")
        return RetrievedRecord(oid, data=payload, text=text, error=err)
    if oid == OPAC:
        if single is None:
            raise BERError("OPAC record not in the single-ASN1-type encoding", enc.offset)
        return RetrievedRecord(oid, data=encode(single), opac=_opac(single, encoding, depth))
    if payload is None:
        assert single is not None
        payload = encode(single)
    return RetrievedRecord(oid, data=payload)


def _text_or_error(raw: bytes, encoding: str, what: str) -> tuple[str, str | None]:
    try:
        return raw.decode(encoding), None
    except (UnicodeDecodeError, LookupError) as exc:
        try:
            return raw.decode(encoding, "replace"), f"{what} text is not valid {encoding}: {exc}"
        except LookupError:
            return raw.decode("utf-8", "replace"), f"unknown encoding {encoding!r}"


_XML_DECL_ENC = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def _xml_text(raw: bytes) -> tuple[str, str | None]:
    """XML octets as text: the encoding its declaration names, else UTF-8 (a
    BOM is dropped)."""
    m = _XML_DECL_ENC.match(raw[:200])
    enc = m.group(1).decode("ascii") if m else "utf-8"
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    return _text_or_error(raw, enc, "XML")


def _marc_record(oid: str, payload: bytes) -> RetrievedRecord:
    """Parse ISO 2709 permissively with the project's reader: UTF-8 or MARC-8 by
    leader/09, with its checks for leaders that lie."""
    rec = RetrievedRecord(oid, data=payload)
    try:
        with warnings.catch_warnings(record=True) as caught:   # pymarc warns about odd data
            warnings.simplefilter("always")
            items = read_marc(io.BytesIO(payload), fmt="iso2709", decoder="pymarc")
            first = next(iter(items), None)
        rec.warnings.extend(str(w.message) for w in caught)
        if first is None:
            rec.error = "no ISO 2709 record in the octets"
        elif isinstance(first, BadRecord):
            rec.error = first.reason
        else:
            rec.marc = first.record
            rec.marc_encoding = first.encoding
            rec.warnings[:0] = first.warnings
    except Exception as exc:  # noqa: BLE001 - a bad record must not stop a client
        rec.marc = None
        rec.error = f"unreadable MARC record: {type(exc).__name__}: {exc}"
    return rec


def _text(el: Element, encoding: str) -> str:
    raw = el.octets()
    try:
        return raw.decode(encoding, "replace")
    except LookupError:
        return raw.decode("utf-8", "replace")


def _context_children(el: Element, what: str) -> Iterable[Element]:
    """Children of an IMPLICIT SEQUENCE; only context-class tags are read, others
    are an error (unknown context tags are skipped by the callers)."""
    for c in el.children:
        if c.cls != CONTEXT:
            raise BERError(f"{c.describe()} inside {what}", c.offset)
        yield c


_HOLDINGS_FIELDS = {
    1: "type_of_record", 2: "encoding_level", 3: "format", 4: "receipt_acq_status",
    5: "general_retention", 6: "completeness", 7: "date_of_report", 8: "nuc_code",
    9: "local_location", 10: "shelving_location", 11: "call_number", 12: "shelving_data",
    13: "copy_number", 14: "public_note", 15: "reproduction_note", 16: "terms_use_repro",
    17: "enum_and_chron",
}
_CIRC_STRINGS = {2: "available_date", 3: "available_thru", 4: "restrictions", 5: "item_id",
                 8: "enum_and_chron", 9: "midspine", 10: "temporary_location"}
_CIRC_BOOLS = {1: "available_now", 6: "renewable", 7: "on_hold"}
_VOLUME_FIELDS = {1: "enumeration", 2: "chronology", 3: "enum_and_chron"}


def _seq_of(el: Element, what: str) -> tuple[Element, ...]:
    items = el.children
    for it in items:
        it.expect(UNIVERSAL, SEQUENCE, constructed=True)
    return items


def _circ(el: Element, encoding: str) -> Availability:
    values: dict = {}
    for c in _context_children(el, "CircRecord"):
        if c.tag in _CIRC_BOOLS:
            values[_CIRC_BOOLS[c.tag]] = c.as_bool()
        elif c.tag in _CIRC_STRINGS:
            values[_CIRC_STRINGS[c.tag]] = _text(c, encoding)
    for tag, name in _CIRC_BOOLS.items():
        if name not in values:
            raise BERError(f"CircRecord without {name} [{tag}]", el.offset)
    return Availability(**values)


def _volume(el: Element, encoding: str) -> Volume:
    values = {}
    for c in _context_children(el, "Volume"):
        if c.tag in _VOLUME_FIELDS:
            values[_VOLUME_FIELDS[c.tag]] = _text(c, encoding)
    return Volume(**values)


def _holdings_and_circ_data(el: Element, encoding: str) -> HoldingsData:
    h = HoldingsData()
    for c in _context_children(el, "HoldingsAndCircData"):
        if c.tag in _HOLDINGS_FIELDS:
            setattr(h, _HOLDINGS_FIELDS[c.tag], _text(c, encoding))
        elif c.tag == 18:
            h.volumes = [_volume(v, encoding) for v in _seq_of(c, "volumes")]
        elif c.tag == 19:
            h.circulation = [_circ(v, encoding) for v in _seq_of(c, "circulationData")]
    return h


def _opac(el: Element, encoding: str, depth: int) -> OPACRecordData:
    el.expect(UNIVERSAL, SEQUENCE, constructed=True)
    out = OPACRecordData(bib=None)
    for c in _context_children(el, "OPACRecord"):
        if c.tag == 1:        # bibliographicRecord [1] IMPLICIT EXTERNAL
            if not c.constructed:
                raise BERError("bibliographicRecord is not constructed", c.offset)
            out.bib = _decode_external(c, encoding, depth + 1)
        elif c.tag == 2:      # holdingsData [2] IMPLICIT SEQUENCE OF HoldingsRecord
            for hr in c.children:
                if hr.is_(CONTEXT, 1) and hr.constructed:      # marcHoldingsRecord [1] IMPLICIT EXTERNAL
                    out.holdings.append(HoldingsData(marc_holdings=_decode_external(hr, encoding, depth + 1)))
                elif hr.is_(CONTEXT, 2) and hr.constructed:    # holdingsAndCirc [2] IMPLICIT
                    out.holdings.append(_holdings_and_circ_data(hr, encoding))
                else:
                    raise BERError(f"HoldingsRecord is {hr.describe()}", hr.offset)
    return out
