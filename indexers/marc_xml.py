"""Reading MARCXML: lxml's iterparse, one record element at a time.

The MARC slim namespace or no namespace; elements are cleared as they are read,
so memory stays flat whatever the file size.  A malformed record (no leader,
bad tag, indicator or subfield code, control characters) is a BadRecord with the
serialized XML as its raw bytes; a file that stops being well-formed XML ends
with a BadRecord describing the error (line and column; raw is what lxml had
built of the record being read, serialized).  MARCXML offsets and raw lengths
are not known (-1).
"""
from __future__ import annotations

import re
from collections.abc import Iterator

import pymarc
from lxml import etree

from .marc_items import TEXT_STRAY, BadRecord, Cursor, Prefixed, ReadRecord, char_name, new_record

__all__ = ["MarcXmlReader", "MARCXML_NS"]

MARCXML_NS = "http://www.loc.gov/MARC21/slim"
_TAG_RE = re.compile(r"[0-9A-Za-z]{3}\Z")


def _xml_bytes(elem) -> bytes:
    try:
        return etree.tostring(elem, encoding="utf-8", with_tail=False)
    except Exception:  # noqa: BLE001 - an element lxml cannot serialize: no raw bytes kept
        return b""


class MarcXmlReader:
    """The records of one MARCXML stream, in order (one format behind read_marc)."""

    def __init__(self, cursor: Cursor):
        self.cursor = cursor

    def records(self, head: bytes, stream) -> Iterator[ReadRecord | BadRecord]:
        """The items of the stream (``head``: its first bytes, already read)."""
        cursor = self.cursor
        src = Prefixed(head, stream)
        ns_tag = f"{{{MARCXML_NS}}}record"
        context = etree.iterparse(
            src,
            events=("start", "end"),
            tag=(ns_tag, "record"),
            huge_tree=True,
            resolve_entities=False,
            no_network=True,
        )
        current = None  # the record element being parsed (for a partial copy on error)
        try:
            for event, elem in context:
                if event == "start":
                    current = elem
                    continue
                current = None
                position = cursor.next_position()
                try:
                    item = self._xml_item(elem, position)
                except Exception as exc:  # noqa: BLE001 - defensive: never raise on data
                    item = BadRecord(
                        -1, position, f"cannot read record: {type(exc).__name__}: {exc}", _xml_bytes(elem)
                    )
                # free memory: this record and everything before it
                elem.clear(keep_tail=True)
                e = elem
                while True:
                    parent = e.getparent()
                    if parent is None:
                        break
                    while e.getprevious() is not None:
                        del parent[0]
                    e = parent
                cursor.offset = cursor.offset_fed
                yield item
        except etree.XMLSyntaxError as exc:
            position = cursor.next_position()
            # what lxml had built of the record being read (serialized, auto-closed)
            raw = _xml_bytes(current) if current is not None else b""
            line, col = getattr(exc, "position", None) or (0, 0)
            msg = getattr(exc, "msg", None) or str(exc)
            msg = re.sub(r", line \d+, column \d+$", "", msg)
            if cursor.stream_error:
                msg += f" ({cursor.stream_error})"
                cursor.stream_error = None
            cursor.offset = cursor.offset_fed
            yield BadRecord(
                -1,
                position,
                f"not well-formed XML at line {line}, column {col}: {msg}; the rest of the file cannot be read",
                raw,
            )

    def _xml_item(self, elem, position: int):
        tag = elem.tag
        prefix = tag[: -len("record")]
        leader = None
        fields: list = []
        problems: list[str] = []
        for child in elem:
            ctag = child.tag
            if not isinstance(ctag, str):
                continue  # comment / processing instruction
            if not ctag.startswith(prefix) or (prefix == "" and ctag.startswith("{")):
                continue  # foreign element
            name = ctag[len(prefix):]
            if name == "leader":
                text = child.text or ""
                if leader is not None:
                    problems.append("more than one leader")
                elif len(text) != 24:
                    problems.append(f"leader is {len(text)} characters, expected 24: {text!r}")
                leader = text
            elif name == "controlfield":
                ftag = child.get("tag")
                if ftag is None or not _TAG_RE.match(ftag):
                    problems.append(f"controlfield with malformed tag {ftag!r}")
                    continue
                text = child.text or ""
                m = TEXT_STRAY.search(text)
                if m:
                    problems.append(f"stray control character {char_name(m.group())} in field {ftag}")
                fields.append(pymarc.Field(tag=ftag, data=text))
            elif name == "datafield":
                ftag = child.get("tag")
                if ftag is None or not _TAG_RE.match(ftag):
                    problems.append(f"datafield with malformed tag {ftag!r}")
                    continue
                ind1, ind2 = child.get("ind1"), child.get("ind2")
                if ind1 is None or ind2 is None or len(ind1) != 1 or len(ind2) != 1:
                    problems.append(f"field {ftag}: malformed indicators ind1={ind1!r} ind2={ind2!r}")
                    continue
                subfields = []
                for sub in child:
                    stag = sub.tag
                    if not isinstance(stag, str) or stag != prefix + "subfield":
                        continue
                    code = sub.get("code")
                    if code is None or len(code) != 1:
                        problems.append(f"field {ftag}: malformed subfield code {code!r}")
                        continue
                    text = sub.text or ""
                    m = TEXT_STRAY.search(text)
                    if m:
                        problems.append(
                            f"stray control character {char_name(m.group())} in field {ftag} subfield ${code}"
                        )
                    subfields.append(pymarc.Subfield(code, text))
                fields.append(
                    pymarc.Field(tag=ftag, indicators=pymarc.Indicators(ind1, ind2), subfields=subfields)
                )
        if leader is None:
            problems.insert(0, "record has no leader")
        if problems:
            where = f" (line {elem.sourceline})" if elem.sourceline else ""
            return BadRecord(-1, position, "; ".join(problems) + where, _xml_bytes(elem))
        if not fields:
            return BadRecord(-1, position, f"record has no fields (line {elem.sourceline})", _xml_bytes(elem))
        assert leader is not None       # else a problem above
        return ReadRecord(new_record(leader, fields), -1, position, -1, "utf-8", [])
