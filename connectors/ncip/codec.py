"""NCIP 2.02 messages to XML and back (sans I/O: bytes in, data out).

:func:`encode` writes what the schema says: ``NCIPMessage`` with the namespace
``http://www.niso.org/2008/ncip`` under the prefix ``ncip``, the qualified
``ncip:version`` attribute and qualified ``ncip:Scheme`` attributes, elements in the
schema's order; it refuses (``ValueError``) an object that breaks one of the schema's
choices (a programming error, never a peer's).

:func:`decode` reads by namespace, never by prefix, and accepts what the schema allows
(any prefix or a default namespace, whitespace between elements and around values, no
XML declaration, any encoding the declaration names, ``Ext`` extensions anywhere, the
schema's elements the services do not read) and what NCIP peers are known to send
beyond it: unqualified ``version`` and ``Scheme`` attributes (or no version at all; the
namespace is what says NCIP 2), children in another order than the schema's.
Anything else raises :class:`~.model.ProtocolError` with the Problem to answer:

=================================  =============================================================
Invalid Message Syntax Error       not XML, a DTD, not an ``NCIPMessage`` of the NCIP 2 namespace,
                                   a required element missing, a single one repeated, text where
                                   elements belong or elements where text does, a choice of the
                                   schema broken, a number that is not one
Unknown Element                    an element the schema does not have there (or one of another
                                   namespace)
Invalid Date (general)             a date that is not an ``xs:dateTime``
Unknown Service                    a message element NCIP does not have
Unsupported Service (general)      an NCIP 2.02 service other than the six the gateway offers
=================================  =============================================================

The error names the service whose response must carry the Problem (None when the
message could not even be recognised: a top-level Problem answers).  Parsing never
resolves entities, loads DTDs or touches the network.
"""
from __future__ import annotations

import dataclasses
import re
from datetime import datetime

from lxml import etree

from .. import xmldata
from . import model as m
from .model import NS, General, Messaging, ProtocolError

_Q = "{%s}" % NS
_NSMAP = {"ncip": NS}
_VERSION_ATTR = _Q + "version"
_SCHEME_ATTR = _Q + "Scheme"

STRUCTURE = xmldata.Structure(NS, naming=xmldata.pascal, order=m.ORDER, leaves=(m.SchemeValue,),
                              check=m.violation)


def _syntax(detail: str, element: str | None = None) -> ProtocolError:
    return ProtocolError(Messaging.INVALID_MESSAGE_SYNTAX_ERROR, detail, element=element)


class _Errors:
    syntax = staticmethod(_syntax)

    @staticmethod
    def unknown(path: str, name: str) -> ProtocolError:
        return ProtocolError(Messaging.UNKNOWN_ELEMENT, f"{path}/{name} is not read here", element=name)


ERRORS = _Errors()


def _skipped(cls: type, name: str) -> bool:
    """Elements the schema allows there that the services do not read: ``Ext`` anywhere."""
    return name == "Ext" or name in m.SKIPPED.get(cls, frozenset())


# ----------------------------------------------------------------- leaf values

def _text(value) -> str:
    if isinstance(value, str):
        return xmldata.clean(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _datetime(raw: str) -> datetime:
    # xs:dateTime: YYYY-MM-DDThh:mm:ss(.s+)?(Z|±hh:mm)?
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?",
                        raw):
        raise ValueError(raw)
    return datetime.fromisoformat(raw)


class _Leaves:
    @staticmethod
    def put(parent: etree._Element, f: xmldata.Field, value) -> None:
        if f.type is bool:                      # a flag: the empty element when set
            if value:
                etree.SubElement(parent, _Q + f.xml)
            return
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
            raise _syntax(f"{path} has child elements", f.xml)
        raw = (el.text or "").strip()
        t = f.type
        if t is str:
            return raw
        if t is m.SchemeValue:
            return m.SchemeValue(raw, (el.get(_SCHEME_ATTR) or el.get("Scheme") or "").strip() or None)
        if t is bool:
            if raw:
                raise _syntax(f"{path} is a flag and has no content", f.xml)
            return True
        if t is datetime:
            try:
                return _datetime(raw)
            except ValueError:
                raise ProtocolError(General.INVALID_DATE, f"{path}: not a date and time", element=f.xml,
                                    value=raw[:200]) from None
        if t is int:
            least = f.meta.get("min")
            if not re.fullmatch(r"[+-]?[0-9]{1,18}", raw) or (least is not None and int(raw) < least):
                raise ProtocolError(Messaging.INVALID_MESSAGE_SYNTAX_ERROR, f"{path}: not a valid number",
                                    element=f.xml, value=raw[:200])
            return int(raw)
        raise TypeError(t)  # pragma: no cover - every field type is handled above


LEAVES = _Leaves()


def _fill(el: etree._Element, obj) -> None:
    STRUCTURE.fill(el, obj, LEAVES)


def to_element(message: m.Message) -> etree._Element:
    root = etree.Element(_Q + "NCIPMessage", nsmap=_NSMAP)
    root.set(_VERSION_ATTR, m.VERSION)
    if isinstance(message, m.ProblemResponse):
        broken = m.violation(message)
        if broken:
            raise ValueError(f"ProblemResponse: {broken}")
        if message.service is None:
            for p in message.problem:
                _fill(etree.SubElement(root, _Q + "Problem"), p)
            return root
        body = etree.SubElement(root, _Q + message.service + "Response")
    else:
        body = etree.SubElement(root, _Q + type(message).__name__)
    _fill(body, message)
    return root


def encode(message: m.Message) -> bytes:
    """The message as a UTF-8 XML document."""
    return etree.tostring(to_element(message), xml_declaration=True, encoding="UTF-8")


# ----------------------------------------------------------------- decoding

def _build(cls: type, el: etree._Element, path: str):
    return STRUCTURE.build(cls, el, path, LEAVES, ERRORS, skip=_skipped)


def parse_xml(data: bytes) -> etree._Element:
    """The document's root element; ProtocolError (Invalid Message Syntax Error) when it
    is not well-formed XML or carries a DTD."""
    return xmldata.parse(data, ERRORS)


def decode(data: bytes) -> m.Message:
    """One NCIP message from its XML document; raises :class:`ProtocolError`."""
    return from_element(parse_xml(data))


def from_element(root: etree._Element) -> m.Message:
    if root.tag != _Q + "NCIPMessage":
        q = etree.QName(root)
        raise _syntax(f"root element is {q.text}, not the NCIPMessage of {NS}", q.localname)
    if (root.text or "").strip():
        raise _syntax("NCIPMessage has text content", "NCIPMessage")
    children = list(root)
    names = [STRUCTURE.local(c, "NCIPMessage", ERRORS) for c in children]
    if any((c.tail or "").strip() for c in children):
        raise _syntax("NCIPMessage has text content", "NCIPMessage")
    if names and names[0] == "Problem":
        if any(n != "Problem" for n in names):
            raise _syntax("NCIPMessage holds Problems or one message", "NCIPMessage")
        try:
            return m.ProblemResponse(tuple(_build(m.Problem, c, "NCIPMessage/Problem") for c in children))
        except RecursionError:  # pragma: no cover - lxml refuses such depth first (huge_tree off)
            raise _syntax("too deeply nested") from None
    if len(children) != 1 or names[0] == "Ext":
        raise _syntax("NCIPMessage must hold one message", "NCIPMessage")
    body, name = children[0], names[0]
    cls = m.MESSAGE_TYPES.get(name)
    if cls is None:
        if name in m.SERVICES:
            raise ProtocolError(General.UNSUPPORTED_SERVICE, f"{name} is not offered here", element=name,
                                service=name)
        service = name.removesuffix("Response")
        if service != name and service in m.SERVICES:
            return _problem_response(body, service)
        raise ProtocolError(Messaging.UNKNOWN_SERVICE, f"{name} is not an NCIP service", element=name)
    try:
        return _build(cls, body, name)
    except ProtocolError as e:
        e.service = name if cls in m.INITIATIONS else None
        raise
    except RecursionError:  # pragma: no cover - lxml refuses such depth first (huge_tree off)
        raise _syntax("too deeply nested") from None


def _problem_response(body: etree._Element, service: str) -> m.ProblemResponse:
    """The response of a service that is not modelled: Problems only."""
    out = _build(m.ProblemResponse, body, f"{service}Response")
    return dataclasses.replace(out, service=service)
