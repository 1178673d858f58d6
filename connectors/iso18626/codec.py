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

from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from lxml import etree

from .. import xmldata
from . import model as m
from .model import NS, ErrorType, ProtocolError

_Q = "{%s}" % NS
_NSMAP = {"ill": NS}
_VERSION_ATTR = _Q + "version"
_SCHEME_ATTR = _Q + "scheme"


def _one_address(obj: Any) -> str | None:
    if isinstance(obj, m.Address) and (obj.electronic_address is None) == (obj.physical_address is None):
        return "one of electronicAddress or physicalAddress"
    return None


STRUCTURE = xmldata.Structure(NS, naming=xmldata.camel, order=m.ORDER, leaves=(m.SchemeValue,),
                              check=_one_address)


class _Errors:
    @staticmethod
    def syntax(detail: str, element: str | None = None) -> ProtocolError:
        return ProtocolError(ErrorType.BADLY_FORMED_MESSAGE, detail)

    @staticmethod
    def unknown(path: str, name: str) -> ProtocolError:
        return ProtocolError(ErrorType.UNRECOGNISED_DATA_ELEMENT, f"{path}/{name}")


ERRORS = _Errors()


# ----------------------------------------------------------------- leaf values

def _text(value) -> str:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, str):
        return xmldata.clean(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _datetime(raw: str) -> datetime:
    # xs:dateTime: YYYY-MM-DDThh:mm:ss(.s+)?(Z|±hh:mm)?
    if "T" not in raw or len(raw) < 19:
        raise ValueError(raw)
    return datetime.fromisoformat(raw)


class _Leaves:
    @staticmethod
    def put(parent: etree._Element, f: xmldata.Field, value) -> None:
        el = etree.SubElement(parent, _Q + f.xml)
        if f.type is m.SchemeValue:
            el.text = _text(value.text)
            if value.scheme:
                el.set(_SCHEME_ATTR, _text(value.scheme))
        else:
            el.text = _text(value)

    @staticmethod
    def read(f: xmldata.Field, el: etree._Element, path: str):
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


LEAVES = _Leaves()


def _spec(cls: type) -> tuple[xmldata.Field, ...]:
    """The fields of ``cls`` in the schema's order."""
    return STRUCTURE.fields(cls)


# ----------------------------------------------------------------- encoding

def to_element(message: m.Message) -> etree._Element:
    root = etree.Element(_Q + "ISO18626Message", nsmap=_NSMAP)
    root.set(_VERSION_ATTR, m.VERSION)
    body = etree.SubElement(root, _Q + m.ELEMENT[type(message)])
    STRUCTURE.fill(body, message, LEAVES)
    return root


def encode(message: m.Message) -> bytes:
    """The message as a UTF-8 XML document."""
    return etree.tostring(to_element(message), xml_declaration=True, encoding="UTF-8")


# ----------------------------------------------------------------- decoding

def _build(cls: type, el: etree._Element, path: str):
    return STRUCTURE.build(cls, el, path, LEAVES, ERRORS)


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
    return xmldata.parse(data, ERRORS)


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
    name = STRUCTURE.local(body, "ISO18626Message", ERRORS)
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
