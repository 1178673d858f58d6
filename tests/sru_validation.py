"""Schema checks for SRU responses, reusable by every test that produces SRU XML.

validate_sru(xml_bytes, version) validates a whole response against the
project's own schemas in sru/schemas/ (written from the SRU 1.2 and OASIS SRU
2.0 specifications) and, for 2.0, also against the official OASIS schemas in
../shared/standards/sru2/ when that folder is there (they keep the extension
points and echoed requests the project's own schemas leave out;
tests/test_sru_official_schemas.py says so when it is missing), then every
record in it against the schema of its recordSchema: MARCXML slim, SRW Dublin Core, MODS (the subset the project
emits), ZeeRex 2.0 for explain, SRU diagnostics for surrogate diagnostics, and
MARC-in-JSON (parsed and shape-checked).  Records packed as strings are parsed
and checked the same way.  Any failure raises AssertionError with the schema's
error log; on success the parsed tree is returned.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from lxml import etree

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "sru" / "schemas"
OFFICIAL_SRU2_DIR = Path(__file__).resolve().parents[2] / "shared" / "standards" / "sru2"

SRW_NS = "http://www.loc.gov/zing/srw/"
SRU2_NS = "http://docs.oasis-open.org/ns/search-ws/sruResponse"
SCAN2_NS = "http://docs.oasis-open.org/ns/search-ws/scan"

RECORD_SCHEMA_FILES = {
    "info:srw/schema/1/marcxml-v1.1": "marcxml-slim.xsd",
    "info:srw/schema/1/dc-v1.1": "dc.xsd",
    "info:srw/schema/1/mods-v3.4": "mods-subset.xsd",
    "http://explain.z3950.org/dtd/2.0/": "zeerex-2.0.xsd",
}
DIAGNOSTIC_SCHEMA = "info:srw/schema/1/diagnostics-v1.1"
# YAZ's OPAC XML: validated against the official opacxml.xsd beside the checkout
# (../shared/standards/marcxml), its MARCXML record against the MARCXML schema
OPAC_SCHEMA = "info:unioncat/schema/opacxml-1"
OPACXML_XSD = Path(__file__).resolve().parents[2] / "shared" / "standards" / "marcxml" / "opacxml.xsd"
JSON_SCHEMA = "info:unioncat/schema/marc-in-json-1"


@functools.lru_cache(maxsize=None)
def load_schema(filename: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / filename)))


def _check(schema: etree.XMLSchema, node, what: str) -> None:
    target = node if isinstance(node, etree._ElementTree) else etree.ElementTree(node)
    if not schema.validate(target):
        errors = "\n".join(f"  line {e.line}: {e.message}" for e in schema.error_log)
        raise AssertionError(f"{what} is not valid:\n{errors}\n"
                             + etree.tostring(target, encoding="unicode")[:3000])


@functools.lru_cache(maxsize=None)
def official_schema(filename: str) -> etree.XMLSchema | None:
    """An official SRU 2.0 schema (sruResponse.xsd, scan.xsd), None without the folder."""
    path = OFFICIAL_SRU2_DIR / filename
    if not path.is_file():
        return None
    return etree.XMLSchema(etree.parse(str(path)))


def validate_official_2_0(tree) -> bool:
    """Validate a 2.0 response against the official OASIS schema of its root;
    False when the official schemas are not available here."""
    root = tree.getroot() if isinstance(tree, etree._ElementTree) else tree
    schema = official_schema("scan.xsd" if root.tag == f"{{{SCAN2_NS}}}scanResponse" else "sruResponse.xsd")
    if schema is None:
        return False
    _check(schema, tree, "SRU 2.0 response (official OASIS schema)")
    return True


def response_schema(version: str) -> etree.XMLSchema:
    if version in ("1.1", "1.2"):
        return load_schema("sru-1.2.xsd")
    if version == "2.0":
        return load_schema("sru-2.0.xsd")
    raise ValueError(f"no schema for SRU version {version!r}")


def validate_record(data, schema_uri: str, version: str) -> None:
    """Validate one record's content (an element, or its serialized text)."""
    if schema_uri == JSON_SCHEMA:
        obj = json.loads(data if isinstance(data, str) else etree.tostring(data))
        assert isinstance(obj.get("leader"), str) and len(obj["leader"]) == 24, obj
        assert isinstance(obj.get("fields"), list), obj
        for f in obj["fields"]:
            assert isinstance(f, dict) and len(f) == 1, f
            (tag, value), = f.items()
            assert len(tag) == 3, tag
            if isinstance(value, dict):
                assert set(value) == {"ind1", "ind2", "subfields"}, value
                for sf in value["subfields"]:
                    assert isinstance(sf, dict) and len(sf) == 1, sf
            else:
                assert isinstance(value, str), value
        return
    if isinstance(data, (str, bytes)):
        data = etree.fromstring(data.encode("utf-8") if isinstance(data, str) else data)
    if schema_uri == OPAC_SCHEMA:
        validate_opac(data)
        return
    if schema_uri == DIAGNOSTIC_SCHEMA:
        filename = "srw-diagnostic.xsd" if version in ("1.1", "1.2") else "sru-2.0-diagnostic.xsd"
    else:
        filename = RECORD_SCHEMA_FILES.get(schema_uri)
        if filename is None:
            raise AssertionError(f"no schema known for recordSchema {schema_uri!r}")
    _check(load_schema(filename), data, f"record ({schema_uri})")


@functools.lru_cache(maxsize=None)
def opacxml_schema() -> etree.XMLSchema:
    assert OPACXML_XSD.is_file(), f"the official opacxml.xsd is not beside this checkout ({OPACXML_XSD})"
    return etree.XMLSchema(etree.parse(str(OPACXML_XSD)))


def validate_opac(data) -> etree._Element:
    """An OPAC XML record (text or element) is valid against YAZ's official opacxml.xsd,
    and the MARCXML record inside it against the MARCXML schema."""
    if isinstance(data, (str, bytes)):
        data = etree.fromstring(data.encode("utf-8") if isinstance(data, str) else data)
    _check(opacxml_schema(), data, "OPAC XML record (opacxml.xsd)")
    bib = data.find("bibliographicRecord")
    for rec in bib:
        _check(load_schema("marcxml-slim.xsd"), rec, "the OPAC record's MARCXML record")
    return data


def validate_sru(xml_bytes: bytes, version: str) -> etree._ElementTree:
    """Validate a whole SRU response of the given version, records included."""
    assert isinstance(xml_bytes, bytes), type(xml_bytes)
    assert xml_bytes.startswith(b"<?xml version='1.0' encoding='UTF-8'?>") or \
        xml_bytes.startswith(b'<?xml version="1.0" encoding="UTF-8"?>'), xml_bytes[:60]
    tree = etree.ElementTree(etree.fromstring(xml_bytes))
    _check(response_schema(version), tree, f"SRU {version} response")
    if version == "2.0":
        validate_official_2_0(tree)
    root = tree.getroot()
    ns = SRU2_NS if version == "2.0" else SRW_NS
    if version != "2.0":
        v = root.find(f"{{{SRW_NS}}}version")
        assert v is not None and v.text == version, (version, v is not None and v.text)
    else:
        assert root.find(f"{{{SRU2_NS}}}version") is None
    for rec in root.iter(f"{{{ns}}}record"):
        schema_uri = rec.findtext(f"{{{ns}}}recordSchema")
        packing = rec.findtext(f"{{{ns}}}recordXMLEscaping" if version == "2.0"
                               else f"{{{ns}}}recordPacking") or "xml"
        data = rec.find(f"{{{ns}}}recordData")
        children = list(data)
        if packing == "xml":
            assert len(children) == 1, f"recordData must hold one element, has {len(children)}"
            assert not (data.text or "").strip(), "text beside the record element"
            validate_record(children[0], schema_uri, version)
        else:
            assert not children, "string packing with child elements"
            validate_record(data.text or "", schema_uri, version)
    return tree
