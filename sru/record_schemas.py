"""Record schemas: a union record rendered as MARCXML, SRW Dublin Core, MODS or
MARC-in-JSON.

Everything is built with lxml directly (no pymarc XML writer, no XSLT): the
MARCXML of a typical Library of Congress record takes well under a millisecond.
Strings are made safe for XML 1.0 on the way in: characters XML cannot carry
(C0 controls other than TAB/LF/CR, lone surrogates, U+FFFE/U+FFFF) become
U+FFFD REPLACEMENT CHARACTER, so a record with e.g. 0x1F inside its 001 still
gives well-formed XML and shows where the damage is.

The Dublin Core and MODS mappings are the project's own (written from the MARC 21
field definitions, not taken from any published crosswalk stylesheet); see
``docs``-style notes on each builder.  Linked 880 fields (MARC 21 "alternate
graphic representation") are paired with the field they belong to; displays
prefer the vernacular form (SEARCH_SEMANTICS.md), so the vernacular title comes
first and the romanized one follows.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pymarc
from lxml import etree

from indexers.marc_display import (
    MARC_NS,
    YEAR_RE,
    LinkedFields,
    clean_isbd,
    control_value,
    dc_values,
    isbns,
    join_subfields,
    languages,
    lccn_of,
    marc_of,
    marcxml_string,
    publication_fields,
    xml_safe,
)

from .diagnostics import (
    RECORD_DOES_NOT_EXIST,
    RECORD_NOT_AVAILABLE_IN_THIS_SCHEMA,
    UNKNOWN_SCHEMA_FOR_RETRIEVAL,
    Diagnostic,
    SRUDiagnosticError,
)

SRW_DC_NS = "info:srw/schema/1/dc-schema"
DC_NS = "http://purl.org/dc/elements/1.1/"
MODS_NS = "http://www.loc.gov/mods/v3"
MODS_VERSION = "3.4"


# --------------------------------------------------------------------------
# Schema registry
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordSchema:
    name: str  # the canonical short name used inside the project
    uri: str  # the identifier sent in recordSchema
    title: str
    namespace: str | None  # namespace of the record's root element; None = not XML
    location: str | None = None  # where the public schema lives (for explain)
    aliases: tuple[str, ...] = ()  # other names and URIs accepted in requests

    @property
    def is_xml(self) -> bool:
        return self.namespace is not None


MARCXML = RecordSchema(
    "marcxml",
    "info:srw/schema/1/marcxml-v1.1",
    "MARC 21 XML (MARCXML slim)",
    MARC_NS,
    "http://www.loc.gov/standards/marcxml/schema/MARC21slim.xsd",
    ("marc21", "marc21xml", "marc21-xml", "marcxml-v1.1", "usmarc", MARC_NS),
)
DC = RecordSchema(
    "dc",
    "info:srw/schema/1/dc-v1.1",
    "Dublin Core (SRW DC)",
    SRW_DC_NS,
    "http://www.loc.gov/standards/sru/recordSchemas/dc-schema.xsd",
    ("srw_dc", "dublincore", "dc-v1.1", SRW_DC_NS, "info:srw/schema/1/dc-v1.1"),
)
MODS = RecordSchema(
    "mods",
    f"info:srw/schema/1/mods-v{MODS_VERSION}",
    f"MODS {MODS_VERSION}",
    MODS_NS,
    "http://www.loc.gov/standards/mods/v3/mods-3-4.xsd",
    ("mods3", f"mods-v{MODS_VERSION}", MODS_NS),
)
# MARC-in-JSON has no registered SRU identifier; this one is the project's.
JSON = RecordSchema(
    "json",
    "info:unioncat/schema/marc-in-json-1",
    "MARC-in-JSON",
    None,
    None,
    ("marcjson", "marc-in-json", "application/marc+json"),
)

# YAZ's OPAC XML (etc/opacxml.xsd; no target namespace): the Z39.50 OPAC record -- the
# MARCXML record and its holdings with their circulation status -- as YAZ and Zebra give
# it under the schema name "opac". The identifier is the project's: none is registered.
OPAC = RecordSchema(
    "opac",
    "info:unioncat/schema/opacxml-1",
    "OPAC XML (YAZ): the MARCXML record with its holdings and their availability",
    "",
    None,
    ("opacxml", "opac-xml", "opacrecord"),
)

SCHEMAS: dict[str, RecordSchema] = {s.name: s for s in (MARCXML, DC, MODS, JSON, OPAC)}

_LOOKUP: dict[str, RecordSchema] = {}
for _s in SCHEMAS.values():
    for _n in (_s.name, _s.uri, *_s.aliases):
        _LOOKUP[_n.lower()] = _s


def resolve_schema(value: str) -> RecordSchema:
    """A recordSchema parameter (short name or URI, case-insensitive) ->
    RecordSchema; an unknown one raises diagnostic 66."""
    schema = _LOOKUP.get(value.strip().lower())
    if schema is None:
        raise SRUDiagnosticError(
            UNKNOWN_SCHEMA_FOR_RETRIEVAL,
            value,
            f"Unknown record schema {value!r}; supported: "
            + ", ".join(f"{s.name} ({s.uri})" for s in SCHEMAS.values()),
        )
    return schema


# --------------------------------------------------------------------------
# XML-safe text
# --------------------------------------------------------------------------
_PARSER = etree.XMLParser(resolve_entities=False, huge_tree=True)


# --------------------------------------------------------------------------
# Rendered records
# --------------------------------------------------------------------------
@dataclass
class RenderedRecord:
    """A record ready for recordData: for an XML schema its lxml element and/or
    its serialized text (whichever was cheaper to make; the other is derived on
    demand), for MARC-in-JSON the JSON text; or a surrogate diagnostic standing
    in for a record that could not be rendered."""

    schema: RecordSchema | None
    element: etree._Element | None = None
    text: str | None = None
    diagnostic: Diagnostic | None = None
    identifier: str | None = None

    @property
    def is_surrogate(self) -> bool:
        return self.diagnostic is not None

    @property
    def is_xml(self) -> bool:
        return self.schema is not None and self.schema.is_xml

    def as_element(self) -> etree._Element:
        if self.element is None:
            if not self.is_xml or self.text is None:
                raise ValueError("not an XML record")
            self.element = etree.fromstring(self.text.encode("utf-8"), _PARSER)
        return self.element

    def as_string(self) -> str:
        if self.text is not None:
            return self.text
        if self.element is not None:
            return etree.tostring(self.element, encoding="unicode")
        return ""


def render_record(record, schema: RecordSchema | str, holdings: Sequence[OpacHolding] | None = None
                  ) -> RenderedRecord:
    """Render a UnionRecord (or a bare pymarc.Record) in a schema.  A record that
    cannot be rendered gives a surrogate diagnostic (67) instead of an
    exception; ``None`` (a record withdrawn since the search) gives 65.
    ``holdings``: for the OPAC schema, the holdings with their circulation status
    (default: the record's own holdings, status unknown)."""
    if isinstance(schema, str):
        schema = resolve_schema(schema)
    if record is None:
        return RenderedRecord(
            None, diagnostic=Diagnostic(RECORD_DOES_NOT_EXIST, "",
                                        "Record no longer in the catalog"))
    rid = str(getattr(record, "id", "") or "")
    try:
        if schema is MARCXML:
            # a stored record writes its MARCXML from its bytes (indexers/store.py StoredUnionRecord)
            fast = getattr(record, "marcxml", None)
            text = fast() if fast is not None else None
            return RenderedRecord(schema, text=text if text is not None else marcxml_string(marc_of(record)),
                                  identifier=rid)
        if schema is DC:
            return RenderedRecord(schema, element=dc_element(record), identifier=rid)
        if schema is MODS:
            return RenderedRecord(schema, element=mods_element(record), identifier=rid)
        if schema is JSON:
            return RenderedRecord(schema, text=marc_json_text(marc_of(record)),
                                  identifier=rid)
        if schema is OPAC:
            return RenderedRecord(schema, element=opac_element(record, holdings), identifier=rid)
    except Exception as exc:  # noqa: BLE001 - never drop a record silently
        return RenderedRecord(
            None,
            diagnostic=Diagnostic(RECORD_NOT_AVAILABLE_IN_THIS_SCHEMA, rid,
                                  f"Record {rid} cannot be rendered as {schema.name}: "
                                  f"{type(exc).__name__}: {exc}"),
            identifier=rid,
        )
    raise SRUDiagnosticError(UNKNOWN_SCHEMA_FOR_RETRIEVAL, schema.uri)


def _holdings(record) -> list:
    return list(getattr(record, "holdings", ()) or ())




def marcxml_element(marc: pymarc.Record) -> etree._Element:
    """marcxml_string parsed into an lxml element (libxml2's parser is far
    faster than building the tree node by node from Python)."""
    return etree.fromstring(marcxml_string(marc).encode("utf-8"), _PARSER)


# --------------------------------------------------------------------------
# MARC-in-JSON
# --------------------------------------------------------------------------
def marc_json(marc: pymarc.Record) -> dict:
    """{"leader": ..., "fields": [{"001": "..."}, {"245": {"ind1", "ind2",
    "subfields": [{"a": "..."}]}}]}"""
    fields: list[dict] = []
    for f in marc.fields:
        if f.is_control_field():
            fields.append({f.tag: f.data})
        else:
            ind = f.indicators or ("", "")  # a data field has them (None only on control fields)
            fields.append({f.tag: {
                "ind1": ind[0] or " ",
                "ind2": ind[1] or " ",
                "subfields": [{c: v} for c, v in f.subfields],
            }})
    return {"leader": str(marc.leader), "fields": fields}


def marc_json_text(marc: pymarc.Record) -> str:
    # json escapes C0 controls itself; U+FFFE/U+FFFF and lone surrogates would
    # still break the XML the text travels in, so they are replaced.
    return xml_safe(json.dumps(marc_json(marc), ensure_ascii=False,
                               separators=(",", ":")))



_MODS_TYPES = {
    "a": "text", "t": "text", "c": "notated music", "d": "notated music",
    "e": "cartographic", "f": "cartographic", "g": "moving image",
    "i": "sound recording-nonmusical", "j": "sound recording-musical",
    "k": "still image", "m": "software, multimedia", "o": "mixed material",
    "p": "mixed material", "r": "three dimensional object",
}



# --------------------------------------------------------------------------
# Dublin Core (SRW DC: info:srw/schema/1/dc-schema container of DC 1.1 elements)
# --------------------------------------------------------------------------
_DC_ROOT = f"{{{SRW_DC_NS}}}dc"
_DC_NSMAP = {"srw_dc": SRW_DC_NS, "dc": DC_NS}




def dc_element(record) -> etree._Element:
    root = etree.Element(_DC_ROOT, nsmap=_DC_NSMAP)
    sub = etree.SubElement
    seen = set()
    for name, value in dc_values(record):
        if (name, value) in seen:
            continue
        seen.add((name, value))
        e = sub(root, f"{{{DC_NS}}}{name}")
        e.text = xml_safe(value)
    return root


# --------------------------------------------------------------------------
# MODS 3.4
# --------------------------------------------------------------------------
def _m(tag: str) -> str:
    return f"{{{MODS_NS}}}{tag}"


_MODS_NSMAP = {None: MODS_NS}
_NAME_TYPES = {"100": "personal", "700": "personal", "600": "personal",
               "110": "corporate", "710": "corporate", "610": "corporate",
               "111": "conference", "711": "conference", "611": "conference"}


def _base_tag(f: pymarc.Field) -> str:
    return (f.get("6") or "")[:3] if f.tag == "880" else f.tag


def _text(parent, tag: str, value: str, **attrib) -> etree._Element:
    e = etree.SubElement(parent, _m(tag), {k: v for k, v in attrib.items() if v})
    e.text = xml_safe(value)
    return e


def _alt(group: str | None, script: str | None) -> dict:
    a = {}
    if group:
        a["altRepGroup"] = group
    if script:
        a["script"] = script
    return a


def mods_element(record) -> etree._Element:
    """MODS 3.4 (the elements below, in this order):

    titleInfo (245; 246 as type="alternative"; altRepGroup/script tie a field
    to its 880), name (1XX usage="primary", 7XX) with namePart and role,
    typeOfResource (leader/06), originInfo (260/264: place, publisher,
    dateIssued; 008 date with encoding="marc"; issuance), language/languageTerm,
    physicalDescription/extent (300), abstract (520), note (500, 504),
    subject (6XX), classification (050, 082, 084), identifier (isbn, issn, lccn),
    location (one per holding library: physicalLocation = library,
    holdingSimple/copyInformation per holding: subLocation = branch and
    shelving location, shelfLocator = call number), recordInfo
    (recordContentSource, recordChangeDate, recordIdentifier of the union
    record and of every member record).
    """
    marc = marc_of(record)
    lk = LinkedFields(marc)
    mods = etree.Element(_m("mods"), nsmap=_MODS_NSMAP, version=MODS_VERSION)
    sub = etree.SubElement

    # titleInfo
    for f, group, script in lk.ordered("245"):
        ti = sub(mods, _m("titleInfo"), _alt(group, script))
        _text(ti, "title", join_subfields(f, "a") or "[no title]")
        if f.get("b"):
            _text(ti, "subTitle", join_subfields(f, "b"))
        if f.get("n"):
            _text(ti, "partNumber", join_subfields(f, "n"))
        if f.get("p"):
            _text(ti, "partName", join_subfields(f, "p"))
    for f, group, script in lk.ordered("246"):
        a = join_subfields(f, "a")
        if not a:
            continue
        ti = sub(mods, _m("titleInfo"), {"type": "alternative", **_alt(group, script)})
        _text(ti, "title", a)
        if f.get("b"):
            _text(ti, "subTitle", join_subfields(f, "b"))

    # name
    for f, group, script in lk.ordered("100", "110", "111", "700", "710", "711"):
        tag = _base_tag(f)
        attrs = {"type": _NAME_TYPES.get(tag, "personal"), **_alt(group, script)}
        if tag.startswith("1"):
            attrs["usage"] = "primary"
        name = sub(mods, _m("name"), attrs)
        if tag.endswith("00"):
            _text(name, "namePart", join_subfields(f, "abcq") or join_subfields(f, "a"))
            if f.get("d"):
                _text(name, "namePart", join_subfields(f, "d"), type="date")
        else:
            for c, v in f.subfields:
                if c in "ab" and v.strip():
                    _text(name, "namePart", clean_isbd(v))
            if f.get("d"):
                _text(name, "namePart", join_subfields(f, "d"), type="date")
        roles = [(clean_isbd(v), "text") for c, v in f.subfields if c == "e" and v.strip()]
        roles += [(v.strip(), "code") for c, v in f.subfields if c == "4" and v.strip()]
        if not roles and tag.startswith("1"):
            roles = [("creator", "text")]
        for value, kind in roles:
            role = sub(name, _m("role"))
            _text(role, "roleTerm", value, type=kind,
                  authority="marcrelator" if kind == "code" or value != "creator" else "")

    # typeOfResource
    ldr = str(marc.leader)
    tor = _MODS_TYPES.get(ldr[6:7]) if len(ldr) > 7 else None
    if tor:
        _text(mods, "typeOfResource", tor)

    # originInfo
    pubs = publication_fields(lk)
    d008 = control_value(marc, "008")
    first = True
    for f, group, script in pubs:
        oi = sub(mods, _m("originInfo"), _alt(group, script))
        if first and len(d008) >= 18 and d008[15:18].strip(" |"):
            place = sub(oi, _m("place"))
            _text(place, "placeTerm", d008[15:18].strip(), type="code",
                  authority="marccountry")
        for c, v in f.subfields:
            if c == "a" and clean_isbd(v):
                place = sub(oi, _m("place"))
                _text(place, "placeTerm", clean_isbd(v), type="text")
        for c, v in f.subfields:
            if c == "b" and clean_isbd(v):
                _text(oi, "publisher", clean_isbd(v))
        if f.get("c"):
            _text(oi, "dateIssued", join_subfields(f, "c"))
        if first and YEAR_RE.fullmatch(d008[7:11]):
            _text(oi, "dateIssued", d008[7:11], encoding="marc")
        if first and ldr[7:8] in ("m", "s", "i"):
            _text(oi, "issuance", {"m": "monographic", "s": "continuing",
                                   "i": "integrating resource"}[ldr[7]])
        first = False
    if first and YEAR_RE.fullmatch(d008[7:11]):
        oi = sub(mods, _m("originInfo"))
        _text(oi, "dateIssued", d008[7:11], encoding="marc")

    # language
    for lang in languages(lk):
        le = sub(mods, _m("language"))
        _text(le, "languageTerm", lang, type="code", authority="iso639-2b")

    # physicalDescription
    f300 = marc.get_fields("300")
    if f300:
        ext = join_subfields(f300[0], "abc")
        if ext:
            pd = sub(mods, _m("physicalDescription"))
            _text(pd, "extent", ext)

    for f in marc.get_fields("520"):
        if join_subfields(f, "a"):
            _text(mods, "abstract", join_subfields(f, "a"))
    for f in marc.get_fields("500", "504"):
        if join_subfields(f, "a"):
            _text(mods, "note", join_subfields(f, "a"))

    # subject
    for f, group, script in lk.ordered("600", "610", "611", "630", "648", "650", "651",
                                       "653"):
        tag = _base_tag(f)
        attrs = _alt(group, script)
        ind2 = (f.indicators or ("", ""))[1]
        if tag != "653":
            if ind2 == "0":
                attrs["authority"] = "lcsh"
            elif ind2 == "7" and f.get("2"):
                attrs["authority"] = f.get("2", "").strip()
        subj = sub(mods, _m("subject"), attrs)
        children = 0
        main = join_subfields(f, "abcdq")
        if main:
            children += 1
            if tag in _NAME_TYPES:
                nm = sub(subj, _m("name"), type=_NAME_TYPES[tag])
                _text(nm, "namePart", main)
            elif tag == "630":
                ti = sub(subj, _m("titleInfo"))
                _text(ti, "title", main)
            elif tag == "648":
                _text(subj, "temporal", main)
            elif tag == "651":
                _text(subj, "geographic", main)
            else:
                _text(subj, "topic", main)
        for c, v in f.subfields:
            v = clean_isbd(v)
            if not v:
                continue
            if c == "x":
                _text(subj, "topic", v)
            elif c == "y":
                _text(subj, "temporal", v)
            elif c == "z":
                _text(subj, "geographic", v)
            elif c == "v":
                _text(subj, "genre", v)
            else:
                continue
            children += 1
        if not children:
            mods.remove(subj)

    # classification
    for f in marc.get_fields("050"):
        v = join_subfields(f, "ab")
        if v:
            _text(mods, "classification", v, authority="lcc")
    for f in marc.get_fields("082"):
        v = join_subfields(f, "a")
        if v:
            _text(mods, "classification", v, authority="ddc")
    for f in marc.get_fields("084"):
        src = (f.get("2") or "").strip().lower()
        v = join_subfields(f, "a")
        if v and (src.startswith("njb") or src.startswith("ndc")):
            _text(mods, "classification", v, authority="ndc")

    # identifier
    for isbn, valid in isbns(marc):
        _text(mods, "identifier", isbn, type="isbn", invalid="" if valid else "yes")
    for f in marc.get_fields("022"):
        v = (f.get("a") or "").strip()
        if v:
            _text(mods, "identifier", v, type="issn")
    lccn = lccn_of(marc)
    if lccn:
        _text(mods, "identifier", lccn, type="lccn")

    # location: holdings grouped by library, in first-seen order
    by_lib: dict[str, list] = {}
    for h in _holdings(record):
        by_lib.setdefault(h.library, []).append(h)
    for lib, items in by_lib.items():
        loc = sub(mods, _m("location"))
        _text(loc, "physicalLocation", lib)
        hs = sub(loc, _m("holdingSimple"))
        for h in items:
            ci = sub(hs, _m("copyInformation"))
            if h.branch:
                _text(ci, "subLocation", h.branch)
            if h.location:
                _text(ci, "subLocation", h.location)
            if h.call_number:
                _text(ci, "shelfLocator", h.call_number)
            if h.barcode:
                _text(ci, "note", f"barcode {h.barcode}", type="item identifier")

    # recordInfo
    ri = sub(mods, _m("recordInfo"))
    src = control_value(marc, "003").strip()
    if src:
        _text(ri, "recordContentSource", src, authority="marcorg")
    changed = control_value(marc, "005").strip()
    if len(changed) >= 14 and changed[:14].isdigit():
        _text(ri, "recordChangeDate", changed[:14], encoding="iso8601")
    rid = getattr(record, "id", None)
    if rid is not None:
        _text(ri, "recordIdentifier", str(rid), source="unioncat")
    members = list(getattr(record, "members", ()) or ())
    if members:
        for lib, local in members:
            if local:
                _text(ri, "recordIdentifier", str(local).strip(), source=lib)
    elif control_value(marc, "001").strip():
        _text(ri, "recordIdentifier", control_value(marc, "001").strip(), source=src or "")
    if len(ri) == 0:
        mods.remove(ri)
    return mods


# --------------------------------------------------------------------------
# OPAC XML (YAZ's opacxml.xsd): the Z39.50 OPAC record in XML
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class OpacCirculation:
    """One ``circulation`` element: a copy's status (the Z39.50 CircRecord)."""

    available_now: bool
    availability_date: str | None = None
    available_thru: str | None = None
    restrictions: str | None = None
    item_id: str | None = None
    renewable: bool = False
    on_hold: bool = False
    temporary_location: str | None = None


@dataclass(frozen=True)
class OpacHolding:
    """One ``holding`` element (the Z39.50 holdingsAndCirc); ``circulation`` None: the
    status is unknown and the element has no ``circulations``."""

    nuc_code: str | None = None
    local_location: str | None = None
    shelving_location: str | None = None
    call_number: str | None = None
    copy_number: str | None = None
    public_note: str | None = None
    circulation: OpacCirculation | None = None


def opac_holding(h) -> OpacHolding:
    """A catalog holding (indexers.records.Holding) with its status unknown."""
    return OpacHolding(h.library, h.branch, h.location, h.call_number, h.barcode)


def _opt(parent, tag: str, value) -> None:
    if value is not None and value != "":
        etree.SubElement(parent, tag).text = xml_safe(str(value))


def _flag(parent, tag: str, value: bool) -> None:
    etree.SubElement(parent, tag, value="1" if value else "0")


def opac_element(record, holdings: Sequence[OpacHolding] | None = None) -> etree._Element:
    """``opacRecord``: ``bibliographicRecord`` holding the MARCXML record, and
    ``holdings`` with one ``holding`` per entry of ``holdings`` (default: the record's
    own holdings, status unknown), children in the schema's order; empty values are
    left out; booleans are ``value="1"``/``"0"`` as YAZ writes them."""
    if holdings is None:
        holdings = [opac_holding(h) for h in _holdings(record)]
    root = etree.Element("opacRecord")
    etree.SubElement(root, "bibliographicRecord").append(marcxml_element(marc_of(record)))
    hs = etree.SubElement(root, "holdings")
    for h in holdings:
        el = etree.SubElement(hs, "holding")
        _opt(el, "nucCode", h.nuc_code)
        _opt(el, "localLocation", h.local_location)
        _opt(el, "shelvingLocation", h.shelving_location)
        _opt(el, "callNumber", h.call_number)
        _opt(el, "copyNumber", h.copy_number)
        _opt(el, "publicNote", h.public_note)
        c = h.circulation
        if c is not None:
            circ = etree.SubElement(etree.SubElement(el, "circulations"), "circulation")
            _flag(circ, "availableNow", c.available_now)
            _opt(circ, "availabilityDate", c.availability_date)
            _opt(circ, "availableThru", c.available_thru)
            _opt(circ, "restrictions", c.restrictions)
            _opt(circ, "itemId", c.item_id)
            _flag(circ, "renewable", c.renewable)
            _flag(circ, "onHold", c.on_hold)
            _opt(circ, "temporaryLocation", c.temporary_location)
    return root
