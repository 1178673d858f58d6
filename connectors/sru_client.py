"""An SRU client's protocol half, sans I/O: searchRetrieve parameters and the
response read into plain objects (SRU 1.1, 1.2 and 2.0; record packing xml or
string).  The harvester (connectors/harvest/) and the federated search's SRU
targets (connectors/federation.py) send the requests with aiohttp.

Diagnostics keep their number (the tail of ``info:srw/diagnostic/1/N``) and
details; a diagnostic inside a record position (a surrogate) stays in place of
the record.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

SRW_NS = "http://www.loc.gov/zing/srw/"
SRU2_NS = "http://docs.oasis-open.org/ns/search-ws/sruResponse"
DIAG_NS = "http://www.loc.gov/zing/srw/diagnostic/"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


class SRUProtocolError(Exception):
    """Not an SRU searchRetrieve response."""


@dataclass(frozen=True)
class SRUDiagnostic:
    uri: str
    details: str = ""
    message: str = ""

    @property
    def number(self) -> int | None:
        tail = self.uri.rsplit("/", 1)[-1]
        return int(tail) if tail.isdigit() else None

    def __str__(self) -> str:
        n = self.number
        text = f"diagnostic {n if n is not None else self.uri}"
        if self.message:
            text += f": {self.message}"
        if self.details:
            text += f" ({self.details})"
        return text


@dataclass
class SRURecord:
    position: int | None
    schema: str
    data: bytes | None = None              # the record's one element, serialized
    diagnostic: SRUDiagnostic | None = None


@dataclass
class SRUResponse:
    total: int
    records: list[SRURecord] = field(default_factory=list)
    next_position: int | None = None
    diagnostics: list[SRUDiagnostic] = field(default_factory=list)
    version: str = ""


def search_params(query: str, *, start: int = 1, maximum: int = 10, schema: str | None = "marcxml",
                  version: str = "1.2", packing: str = "xml") -> dict[str, str]:
    """The parameters of a searchRetrieve (GET or POST form)."""
    params = {"operation": "searchRetrieve", "version": version, "query": query,
              "startRecord": str(start), "maximumRecords": str(maximum)}
    if schema:
        params["recordSchema"] = schema
    if version == "2.0":
        del params["operation"]
        params["recordXMLEscaping"] = "xml" if packing == "xml" else "string"
    else:
        params["recordPacking"] = packing
    return params


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child(el, name: str):
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _text(el, name: str) -> str:
    c = _child(el, name) if el is not None else None
    return (c.text or "").strip() if c is not None else ""


def _diagnostic(el) -> SRUDiagnostic:
    return SRUDiagnostic(_text(el, "uri"), _text(el, "details"), _text(el, "message"))


def parse_search_response(body: bytes) -> SRUResponse:
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as e:
        raise SRUProtocolError(f"not XML: {e}") from None
    if _local(root.tag) != "searchRetrieveResponse":
        raise SRUProtocolError(f"not a searchRetrieveResponse (root element {root.tag!r})")
    total_text = _text(root, "numberOfRecords")
    out = SRUResponse(int(total_text) if total_text.isdigit() else 0, version=_text(root, "version"))
    nxt = _text(root, "nextRecordPosition")
    out.next_position = int(nxt) if nxt.isdigit() else None
    diags = _child(root, "diagnostics")
    if diags is not None:
        out.diagnostics = [_diagnostic(d) for d in diags if _local(d.tag) == "diagnostic"]
    records = _child(root, "records")
    for rec in records if records is not None else ():
        if _local(rec.tag) != "record":
            continue
        pos_text = _text(rec, "recordPosition")
        position = int(pos_text) if pos_text.isdigit() else None
        schema = _text(rec, "recordSchema")
        packing = _text(rec, "recordPacking") or _text(rec, "recordXMLEscaping") or "xml"
        data_el = _child(rec, "recordData")
        item = SRURecord(position, schema)
        if data_el is None:
            item.diagnostic = SRUDiagnostic("", "", "the record has no recordData")
        elif packing == "string":
            text = (data_el.text or "").strip()
            try:
                inner = etree.fromstring(text.encode("utf-8"), _PARSER)
            except etree.XMLSyntaxError as e:
                item.diagnostic = SRUDiagnostic("", "", f"recordData is not XML: {e}")
            else:
                item.data = etree.tostring(inner, encoding="utf-8")
                _surrogate(item, inner)
        else:
            elements = [c for c in data_el if isinstance(c.tag, str)]
            if len(elements) != 1:
                item.diagnostic = SRUDiagnostic("", "", f"recordData holds {len(elements)} elements, not one")
            else:
                item.data = etree.tostring(elements[0], encoding="utf-8")
                _surrogate(item, elements[0])
        out.records.append(item)
    return out


def _surrogate(item: SRURecord, el) -> None:
    """A surrogate diagnostic in place of a record (schema info:srw/schema/1/diagnostics-v1.1)."""
    if _local(el.tag) == "diagnostic" and el.tag.startswith("{" + DIAG_NS):
        item.diagnostic = _diagnostic(el)
        item.data = None
