"""Frozen dataclasses ↔ namespaced XML elements: the structure shared by the protocol
codecs whose messages are plain data (ISO 18626, NCIP), sans I/O.

A :class:`Structure` knows a protocol's namespace, how a field name becomes an element
name (camelCase, PascalCase), the element order where a dataclass cannot declare it,
and which dataclasses are leaves (a value with attributes, such as a scheme value pair)
rather than nested elements. It writes an object's fields in order (:meth:`fill`) and
reads an element into an object (:meth:`build`), checking for unknown elements, a
single element repeated, text where elements belong and required elements missing;
how a leaf value is written and read, and which error each problem is, are the
protocol's (:class:`Leaves`, :class:`Errors`).

:func:`parse` is the one way such messages are parsed: no entities resolved, no DTD
loaded or allowed, no network, no huge trees.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from lxml import etree

_PARSER_OPTIONS: dict[str, Any] = dict(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False,
    remove_comments=True, remove_pis=True,
)

# characters XML 1.0 cannot carry (C0 controls but tab/LF/CR, surrogates, U+FFFE/FFFF):
# dropped from what is sent (a MARC title or a patron's name may hold one)
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def clean(text: str) -> str:
    return NOT_XML.sub("", text)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def pascal(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.split("_"))


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    name: str                  # Python attribute
    xml: str                   # element local name
    type: Any                  # the item type: str, datetime, an Enum, a leaf or nested dataclass, ...
    repeated: bool             # a tuple of items (maxOccurs > 1)
    required: bool             # no default
    meta: Mapping[str, Any]    # the dataclass field's metadata (e.g. "min" of an integer)


class Errors(Protocol):
    """The exceptions a protocol raises for what :meth:`Structure.build` finds."""

    def syntax(self, detail: str, element: str | None = None) -> Exception: ...

    def unknown(self, path: str, name: str) -> Exception: ...


class Leaves(Protocol):
    def put(self, el: etree._Element, f: Field, value: Any) -> None: ...

    def read(self, f: Field, el: etree._Element, path: str) -> Any: ...


class Structure:
    def __init__(self, namespace: str, *, naming: Callable[[str], str],
                 order: Mapping[type, tuple[str, ...]] | None = None, leaves: tuple[type, ...] = (),
                 check: Callable[[Any], str | None] = lambda obj: None):
        """``check(obj)``: what breaks one of the schema's rules a dataclass cannot say (a
        choice of elements), or None; checked on every object written and read."""
        self.ns, self.q = namespace, "{%s}" % namespace
        self.naming, self.order, self.leaf_types, self.check = naming, order or {}, leaves, check
        self._fields: dict[type, tuple[Field, ...]] = {}
        self._by_xml: dict[type, dict[str, Field]] = {}

    def nested(self, t: Any) -> bool:
        return dataclasses.is_dataclass(t) and t not in self.leaf_types

    def fields(self, cls: type) -> tuple[Field, ...]:
        got = self._fields.get(cls)
        if got is None:
            hints = typing.get_type_hints(cls)
            by_name = {}
            for f in dataclasses.fields(cls):
                t, repeated = hints[f.name], False
                if typing.get_origin(t) is tuple:
                    t, repeated = typing.get_args(t)[0], True
                elif isinstance(t, types.UnionType):
                    t = next(a for a in typing.get_args(t) if a is not type(None))
                required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                by_name[f.name] = Field(f.name, f.metadata.get("xml", self.naming(f.name)), t, repeated,
                                        required, f.metadata)
            got = self._fields[cls] = tuple(by_name[n] for n in self.order.get(cls, tuple(by_name)))
            self._by_xml[cls] = {f.xml: f for f in got}
        return got

    def by_xml(self, cls: type) -> dict[str, Field]:
        self.fields(cls)
        return self._by_xml[cls]

    # ------------------------------------------------------------- writing

    def fill(self, el: etree._Element, obj: Any, leaves: Leaves) -> None:
        """Write ``obj``'s fields as children of ``el``, in the schema's order; ValueError
        for an object that breaks the schema (a programming error, never a peer's)."""
        broken = self.check(obj)
        if broken:
            raise ValueError(f"{type(obj).__name__}: {broken}")
        for f in self.fields(type(obj)):
            value = getattr(obj, f.name)
            if f.repeated:
                for item in value:
                    self._put(el, f, item, leaves)
            elif value is not None:
                self._put(el, f, value, leaves)

    def _put(self, parent: etree._Element, f: Field, value: Any, leaves: Leaves) -> None:
        if self.nested(f.type):
            self.fill(etree.SubElement(parent, self.q + f.xml), value, leaves)
        else:
            leaves.put(parent, f, value)

    # ------------------------------------------------------------- reading

    def local(self, el: etree._Element, path: str, errors: Errors) -> str:
        """The local name of a child element of this namespace."""
        if not isinstance(el.tag, str):          # comments and PIs are removed by the parser
            raise errors.syntax(f"{path}: unexpected node")
        q = etree.QName(el)
        if q.namespace != self.ns:
            raise errors.unknown(path, q.localname)
        return q.localname

    def build(self, cls: type, el: etree._Element, path: str, leaves: Leaves, errors: Errors, *,
              skip: Callable[[type, str], bool] = lambda cls, name: False) -> Any:
        """The ``cls`` object an element holds. ``skip(cls, name)``: children of another
        element the protocol allows there but does not read."""
        if (el.text or "").strip():
            raise errors.syntax(f"{path} has text content", path.rsplit("/", 1)[-1])
        fields = self.by_xml(cls)
        values: dict[str, Any] = {}
        for child in el:
            name = self.local(child, path, errors)
            if (child.tail or "").strip():
                raise errors.syntax(f"{path} has text content", path.rsplit("/", 1)[-1])
            f = fields.get(name)
            if f is None:
                if skip(cls, name):
                    continue
                raise errors.unknown(path, name)
            sub = f"{path}/{name}"
            item = (self.build(f.type, child, sub, leaves, errors, skip=skip) if self.nested(f.type)
                    else leaves.read(f, child, sub))
            if f.repeated:
                values.setdefault(f.name, []).append(item)
            elif f.name in values:
                raise errors.syntax(f"{sub} repeated", name)
            else:
                values[f.name] = item
        for f in self.fields(cls):
            if f.repeated and f.name in values:
                values[f.name] = tuple(values[f.name])
            elif f.required and f.name not in values:
                raise errors.syntax(f"{path}/{f.xml} missing", f.xml)
        obj = cls(**values)
        broken = self.check(obj)
        if broken:
            raise errors.syntax(f"{path}: {broken}", cls.__name__)
        return obj


def parse(data: bytes, errors: Errors) -> etree._Element:
    """The document's root element; ``errors.syntax`` when it is not well-formed XML or
    carries a DTD."""
    parser = etree.XMLParser(**_PARSER_OPTIONS)
    try:
        root = etree.fromstring(data, parser)
    except (etree.XMLSyntaxError, ValueError) as e:
        raise errors.syntax(f"not well-formed XML: {e}"[:300]) from None
    if root.getroottree().docinfo.doctype:
        raise errors.syntax("a DTD is not allowed")
    return root
