"""ISO 18626 messages to XML and back (sans I/O: bytes in, data out).

:func:`encode` writes what the v1.2 schema says: elements in the schema's
order, the namespace ``http://illtransactions.org/2013/iso18626`` under the
prefix ``ill``, qualified attributes (``ill:version="1.2"``, ``ill:scheme``),
``multipleItemRequestId`` always present (empty when there is none).

:func:`decode` reads by namespace, never by prefix, and accepts what the schema
allows (any prefix or a default namespace, whitespace between elements and
around values, no XML declaration, any encoding the declaration names) and what
real peers are known to send beyond it: an unqualified ``version`` attribute or
none, no ``multipleItemRequestId``, unqualified ``scheme`` attributes, children in
another order than the schema's.  Anything else raises :class:`ProtocolError`
with the error type the confirmation must carry:

================================  =====================================================
BadlyFormedMessage                not XML, a DTD, the wrong root, a required element
                                  missing, a single element repeated, mixed content
UnrecognisedDataElement           an element the schema does not have there (or one in
                                  another namespace)
UnrecognisedDataValue             a value its type does not allow (a date, a number, a
                                  closed code list value, Y/N)
UnsupportedActionType             an ``action`` outside the code list
UnsupportedReasonForMessageType   a ``reasonForMessage`` outside the code list
================================  =====================================================

Parsing never resolves entities, loads DTDs or touches the network.
"""
from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import Enum

from lxml import etree

from . import model as m
from .model import NS, ErrorType, ProtocolError

_Q = "{%s}" % NS
_NSMAP = {"ill": NS}
_VERSION_ATTR = _Q + "version"
_SCHEME_ATTR = _Q + "scheme"

_PARSER_OPTIONS: dict[str, typing.Any] = dict(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False,
    remove_comments=True, remove_pis=True,
)


# ----------------------------------------------------------------- field specs

@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str          # Python attribute
    xml: str           # element local name
    type: type         # the item type (str, datetime, an Enum, SchemeValue, a dataclass, …)
    repeated: bool     # a tuple of items (maxOccurs > 1)
    required: bool     # no default


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


@functools.cache
def _spec(cls: type) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls)
    by_name = {}
    for f in dataclasses.fields(cls):
        t, repeated = hints[f.name], False
        if typing.get_origin(t) is tuple:
            t, repeated = typing.get_args(t)[0], True
        elif isinstance(t, types.UnionType):
            t = next(a for a in typing.get_args(t) if a is not type(None))
        required = (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        by_name[f.name] = _Field(f.name, f.metadata.get("xml", _camel(f.name)), t, repeated, required)
    order = m.ORDER.get(cls, tuple(by_name))
    return tuple(by_name[n] for n in order)


@functools.cache
def _by_xml(cls: type) -> dict[str, _Field]:
    return {f.xml: f for f in _spec(cls)}


# ----------------------------------------------------------------- encoding

# characters XML 1.0 cannot carry (C0 controls but tab/LF/CR, surrogates, U+FFFE/FFFF):
# dropped from what we send (a MARC title may hold one)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value) -> str:
    if isinstance(value, str) and not isinstance(value, Enum):
        return _NOT_XML.sub("", value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _put(parent: etree._Element, f: _Field, value) -> None:
    el = etree.SubElement(parent, _Q + f.xml)
    if dataclasses.is_dataclass(f.type) and f.type is not m.SchemeValue:
        _fill(el, value)
    elif f.type is m.SchemeValue:
        el.text = _text(value.text)
        if value.scheme:
            el.set(_SCHEME_ATTR, _text(value.scheme))
    else:
        el.text = _text(value)


def _fill(el: etree._Element, obj) -> None:
    cls: type = type(obj)
    for f in _spec(cls):
        value = getattr(obj, f.name)
        if f.repeated:
            for item in value:
                _put(el, f, item)
        elif value is not None:
            _put(el, f, value)


def to_element(message: m.Message) -> etree._Element:
    root = etree.Element(_Q + "ISO18626Message", nsmap=_NSMAP)
    root.set(_VERSION_ATTR, m.VERSION)
    body = etree.SubElement(root, _Q + m.ELEMENT[type(message)])
    _fill(body, message)
    return root


def encode(message: m.Message) -> bytes:
    """The message as a UTF-8 XML document."""
    return etree.tostring(to_element(message), xml_declaration=True, encoding="UTF-8")


# ----------------------------------------------------------------- decoding

def _value(f: _Field, el: etree._Element, path: str):
    if len(el):
        raise ProtocolError(ErrorType.BADLY_FORMED_MESSAGE, f"{path} has child elements")
    raw = (el.text or "").strip()
    t = f.type
    try:
        if t is str:
            return raw
        if t is m.SchemeValue:
            return m.SchemeValue(raw, el.get(_SCHEME_ATTR) or el.get("scheme") or None)
        if t is datetime:
            return _datetime(raw)
        if t is int:
            return int(raw)
        if t is Decimal:
            d = Decimal(raw)
            if not d.is_finite():
                raise ValueError(raw)
            return d
        if t is bool:
            if raw in ("true", "1"):
                return True
            if raw in ("false", "0"):
                return False
            raise ValueError(raw)
        if issubclass(t, Enum):
            return t(raw)
    except (ValueError, InvalidOperation, OverflowError):
        if t is m.Action:
            raise ProtocolError(ErrorType.UNSUPPORTED_ACTION_TYPE, raw) from None
        if t is m.ReasonForMessage:
            raise ProtocolError(ErrorType.UNSUPPORTED_REASON_FOR_MESSAGE_TYPE, raw) from None
        raise ProtocolError(ErrorType.UNRECOGNISED_DATA_VALUE, f"{path}: {raw[:200]!r}") from None
    raise TypeError(t)  # pragma: no cover - every field type is handled above


def _datetime(raw: str) -> datetime:
    # xs:dateTime: YYYY-MM-DDThh:mm:ss(.s+)?(Z|±hh:mm)?
    if "T" not in raw or len(raw) < 19:
        raise ValueError(raw)
    return datetime.fromisoformat(raw)


def _local(el: etree._Element, path: str) -> str:
    if not isinstance(el.tag, str):          # comments and PIs are removed by the parser
        raise ProtocolError(ErrorType.BADLY_FORMED_MESSAGE, f"{path}: unexpected node")
    q = etree.QName(el)
    if q.namespace != NS:
        raise ProtocolError(ErrorType.UNRECOGNISED_DATA_ELEMENT, f"{path}/{q.text}")
    return q.localname


def _build(cls: type, el: etree._Element, path: str):
    if (el.text or "").strip():
        raise ProtocolError(ErrorType.BADLY_FORMED_MESSAGE, f"{path} has text content")
    fields = _by_xml(cls)
    values: dict[str, typing.Any] = {}
    for child in el:
        name = _local(child, path)
        f = fields.get(name)
        if f is None:
            raise ProtocolError(ErrorType.UNRECOGNISED_DATA_ELEMENT, f"{path}/{name}")
        if (child.tail or "").strip():
            raise ProtocolError(ErrorType.BADLY_FORMED_MESSAGE, f"{path} has text content")
        sub = f"{path}/{name}"
        if dataclasses.is_dataclass(f.type) and f.type is not m.SchemeValue:
            item = _build(f.type, child, sub)
        else:
            item = _value(f, child, sub)
        if f.repeated:
            values.setdefault(f.name, []).append(item)
        elif f.name in values:
            raise ProtocolError(ErrorType.BADLY_FORMED_MESSAGE, f"{sub} repeated")
        else:
            values[f.name] = item
    for f in _spec(cls):
        if f.repeated and f.name in values:
            values[f.name] = tuple(values[f.name])
        elif f.required and f.name not in values:
            raise ProtocolError(ErrorType.BADLY_FORMED_MESSAGE, f"{path}/{f.xml} missing")
    if cls is m.Address and (values.get("electronic_address") is None) == (
            values.get("physical_address") is None):
        raise ProtocolError(ErrorType.BADLY_FORMED_MESSAGE,
                            f"{path}: one of electronicAddress or physicalAddress")
    return cls(**values)


def _header_ids(body: etree._Element) -> dict:
    """Whatever ids the header holds, read leniently (for an ERROR confirmation)."""
    out: dict = {}
    header = body.find(_Q + "header")
    if header is None:
        header = body.find(_Q + "confirmationHeader")
    if header is None:
        return out
    for key in ("supplyingAgencyId", "requestingAgencyId"):
        agency = header.find(_Q + key)
        if agency is not None:
            t, v = agency.findtext(_Q + "agencyIdType"), agency.findtext(_Q + "agencyIdValue")
            if t and v and t.strip() and v.strip():
                out[key] = m.AgencyId.of(t.strip(), v.strip())
    for key in ("requestingAgencyRequestId", "multipleItemRequestId", "timestamp"):
        text = header.findtext(_Q + key)
        if text is not None:
            out[key] = text.strip()
    return out


def parse_xml(data: bytes) -> etree._Element:
    """The document's root element; ProtocolError(BadlyFormedMessage) when it is
    not well-formed XML or carries a DTD."""
    parser = etree.XMLParser(**_PARSER_OPTIONS)
    try:
        root = etree.fromstring(data, parser)
    except (etree.XMLSyntaxError, ValueError) as e:
        raise ProtocolError(ErrorType.BADLY_FORMED_MESSAGE, f"not well-formed XML: {e}"[:300]) from None
    if root.getroottree().docinfo.doctype:
        raise ProtocolError(ErrorType.BADLY_FORMED_MESSAGE, "a DTD is not allowed")
    return root


def decode(data: bytes) -> m.Message:
    """One ISO 18626 message from its XML document; raises :class:`ProtocolError`."""
    return from_element(parse_xml(data))


def from_element(root: etree._Element) -> m.Message:
    if root.tag != _Q + "ISO18626Message":
        raise ProtocolError(ErrorType.BADLY_FORMED_MESSAGE,
                            f"root element is {etree.QName(root).text}, not ISO18626Message")
    version = root.get(_VERSION_ATTR) or root.get("version")
    if version is not None and not version.strip().startswith("1."):
        raise ProtocolError(ErrorType.UNRECOGNISED_DATA_VALUE, f"version {version[:20]!r}")
    children = [c for c in root if isinstance(c.tag, str)]
    if len(children) != 1 or (root.text or "").strip():
        raise ProtocolError(ErrorType.BADLY_FORMED_MESSAGE, "ISO18626Message must hold one message")
    body = children[0]
    name = _local(body, "ISO18626Message")
    cls = m.MESSAGE_TYPES.get(name)
    if cls is None:
        raise ProtocolError(ErrorType.UNRECOGNISED_DATA_ELEMENT, f"ISO18626Message/{name}")
    try:
        return _build(cls, body, name)
    except ProtocolError as e:
        e.kind, e.header = cls, _header_ids(body)
        raise
    except RecursionError:  # pragma: no cover - lxml refuses such depth first (huge_tree off)
        raise ProtocolError(ErrorType.BADLY_FORMED_MESSAGE, "too deeply nested", kind=cls) from None
