"""SRU records written as text: a page of records whose payloads are XML text
(MARCXML, built as text by indexers/marc_display.py) becomes the ``records``
element's content in one string -- the same bytes lxml writes for the elements
``sru.protocol._Writer.record`` would build (tests/test_marcxml_fast.py compares the
two with ``ENABLED`` off), without an lxml element and a placeholder per record."""
from __future__ import annotations

from typing import Sequence

from indexers.marc_display import xml_safe

from .record_schemas import RenderedRecord

ENABLED = True          # off: every record as lxml elements (the reference the tests compare with)


def is_text_xml(r: RenderedRecord) -> bool:
    """A rendered record of an XML schema given as text (not a surrogate, not an element)."""
    return r.diagnostic is None and r.element is None and r.text is not None and r.is_xml


def text(value: str) -> str:
    """Text content as lxml serializes it (after ``xml_safe``)."""
    value = xml_safe(value)
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def records_text(prefix: str, v2: bool, rendered: Sequence[RenderedRecord], start: int) -> str:
    """The ``record`` elements (recordSchema, recordPacking / recordXMLEscaping "xml",
    recordData holding the record's XML text, recordPosition from ``start``) in the
    SRU namespace bound to ``prefix`` on the response's root."""
    p = prefix
    packing = f"<{p}:recordXMLEscaping>xml</{p}:recordXMLEscaping>" if v2 \
        else f"<{p}:recordPacking>xml</{p}:recordPacking>"
    return "".join([
        f"<{p}:record><{p}:recordSchema>{text(r.schema.uri)}</{p}:recordSchema>{packing}"  # type: ignore[union-attr]
        f"<{p}:recordData>{r.text}</{p}:recordData>"
        f"<{p}:recordPosition>{start + i}</{p}:recordPosition></{p}:record>"
        for i, r in enumerate(rendered)])
