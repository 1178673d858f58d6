"""Type-1 (RPN) queries as BER (ASN.1 of Z39.50-2003 / YAZ's z3950v3.asn).
Every malformed input raises ``BERError``, never anything else; see the data
model notes in :mod:`z3950.rpn.model`.  Sans-I/O."""
from __future__ import annotations

from typing import Iterable, cast

from ..ber import (
    CONTEXT,
    INTEGER,
    OBJECT_IDENTIFIER,
    SEQUENCE,
    UNIVERSAL,
    BERError,
    Element,
    enc_bool,
    enc_explicit,
    enc_int,
    enc_null,
    enc_octets,
    enc_oid,
    enc_seq,
    enc_str,
    enc_tlv,
    encode,
)
from .model import (
    _TERM_TYPE_BY_TAG,
    APT,
    MAX_RPN_DEPTH,
    TERM_TYPES,
    AttributeElement,
    ProxSpec,
    ResultSetRef,
    RPNNode,
    RPNOp,
    RPNQuery,
    _check_int,
)

# Tags of the RPN structures (context class)
_OP = 0                 # RPNStructure op [0] Operand (explicit)
_RPN_RPN_OP = 1         # rpnRpnOp [1] IMPLICIT SEQUENCE
_RESULT_SET_ID = 31     # ResultSetId ::= [31] IMPLICIT InternationalString
_ATTRIBUTE_LIST = 44
_OPERATOR = 46          # Operator ::= [46] CHOICE (explicit)
_APT = 102
_RESULT_ATTR = 214
_ATTR_SET, _ATTR_TYPE, _ATTR_NUMERIC, _ATTR_COMPLEX = 1, 120, 121, 224
_OPERATOR_TAGS = {"and": 0, "or": 1, "and-not": 2, "prox": 3}
_OPERATOR_NAMES = {tag: name for name, tag in _OPERATOR_TAGS.items()}


# ---------------------------------------------------------------------------
# BER encoding


def _enc_attribute(a: AttributeElement, encoding: str) -> bytes:
    if not isinstance(a, AttributeElement):
        raise TypeError(f"not an AttributeElement: {a!r}")
    parts = []
    if a.attribute_set is not None:
        parts.append(enc_oid(_ATTR_SET, a.attribute_set))
    parts.append(enc_int(_ATTR_TYPE, _check_int(a.type, "attribute type")))
    value = a.value
    if isinstance(value, int):
        if a.semantic_action is not None:
            raise ValueError("a semantic action needs a complex (string or list) attribute value")
        parts.append(enc_int(_ATTR_NUMERIC, _check_int(value, "attribute value")))
    else:
        items = (value,) if isinstance(value, str) else value
        if not isinstance(items, tuple):
            raise TypeError(f"attribute value must be int, str or tuple, not {value!r}")
        encoded = []
        for item in items:
            if isinstance(item, str):
                encoded.append(enc_str(1, item, CONTEXT, encoding))
            elif isinstance(item, int):
                encoded.append(enc_int(2, _check_int(item, "attribute value")))
            else:
                raise TypeError(f"complex attribute values are str or int, not {item!r}")
        complex_ = [enc_seq(1, encoded)]
        if a.semantic_action is not None:
            complex_.append(enc_seq(2, [enc_int(INTEGER, _check_int(n, "semantic action"), UNIVERSAL)
                                        for n in a.semantic_action]))
        parts.append(enc_seq(_ATTR_COMPLEX, complex_))
    return enc_seq(SEQUENCE, parts, UNIVERSAL)


def encode_attribute_list(attrs: Iterable[AttributeElement], encoding: str = "utf-8") -> bytes:
    """AttributeList ::= [44] IMPLICIT SEQUENCE OF AttributeElement (whole TLV)."""
    return enc_seq(_ATTRIBUTE_LIST, [_enc_attribute(a, encoding) for a in attrs])


def _enc_term(apt: APT, encoding: str) -> bytes:
    kind, term = apt.term_type, apt.term
    tag = TERM_TYPES.get(kind)
    if tag is None:
        raise ValueError(f"unknown term type {kind!r}")
    if kind == "general":
        if isinstance(term, str):
            return enc_octets(tag, term.encode(encoding))
        if isinstance(term, (bytes, bytearray)):
            return enc_octets(tag, bytes(term))
    elif kind == "numeric":
        if isinstance(term, int):
            return enc_int(tag, _check_int(term, "numeric term"))
    elif kind == "characterString":
        if isinstance(term, str):
            return enc_str(tag, term, CONTEXT, encoding)
    elif kind == "oid":
        if isinstance(term, str):
            return enc_oid(tag, term)
    elif kind == "dateTime":
        if isinstance(term, str):
            return enc_str(tag, term, CONTEXT, "ascii")
    elif kind in ("external", "integerAndUnit"):
        if isinstance(term, (bytes, bytearray)):
            return enc_tlv(CONTEXT, True, tag, bytes(term))
    elif kind == "null":
        if term is None:
            return enc_null(tag)
    raise TypeError(f"a {kind} term cannot be {term!r}")


def encode_apt(apt: APT, encoding: str = "utf-8") -> bytes:
    """AttributesPlusTerm ::= [102] IMPLICIT SEQUENCE (whole TLV)."""
    if not isinstance(apt, APT):
        raise TypeError(f"not an APT: {apt!r}")
    return enc_seq(_APT, [encode_attribute_list(apt.attributes, encoding), _enc_term(apt, encoding)])


def _enc_prox(p: ProxSpec | None) -> bytes:
    if not isinstance(p, ProxSpec):
        raise TypeError(f"a prox operator needs a ProxSpec, not {p!r}")
    parts = []
    if p.exclusion is not None:
        parts.append(enc_bool(1, bool(p.exclusion)))
    parts += [enc_int(2, _check_int(p.distance, "distance")), enc_bool(3, bool(p.ordered)),
              enc_int(4, _check_int(p.relation, "proximity relation")),
              enc_explicit(5, enc_int(2 if p.unit_private else 1, _check_int(p.unit, "proximity unit")))]
    return enc_seq(_OPERATOR_TAGS["prox"], parts)


def _enc_structure(node, encoding: str, depth: int) -> bytes:
    if depth > MAX_RPN_DEPTH:
        raise ValueError(f"RPN tree deeper than {MAX_RPN_DEPTH} levels")
    if isinstance(node, APT):
        return enc_explicit(_OP, encode_apt(node, encoding))
    if isinstance(node, ResultSetRef):
        name = enc_str(_RESULT_SET_ID, node.name, CONTEXT, encoding)
        if node.attributes:
            return enc_explicit(_OP, enc_seq(_RESULT_ATTR, [name, encode_attribute_list(node.attributes, encoding)]))
        return enc_explicit(_OP, name)
    if isinstance(node, RPNOp):
        if node.op not in _OPERATOR_TAGS:
            raise ValueError(f"unknown RPN operator {node.op!r}")
        if node.op == "prox":
            operator = _enc_prox(node.prox)
        elif node.prox is not None:
            raise ValueError(f"operator {node.op!r} takes no ProxSpec")
        else:
            operator = enc_null(_OPERATOR_TAGS[node.op])
        return enc_seq(_RPN_RPN_OP, [_enc_structure(node.left, encoding, depth + 1),
                                     _enc_structure(node.right, encoding, depth + 1),
                                     enc_explicit(_OPERATOR, operator)])
    raise TypeError(f"not an RPN node: {node!r}")


def encode_rpn_query(q: RPNQuery, tag: int = 1, encoding: str = "utf-8") -> bytes:
    """The query as ``[tag] IMPLICIT RPNQuery`` (tag 1: type-1, 101: type-101)."""
    if not isinstance(q, RPNQuery):
        raise TypeError(f"not an RPNQuery: {q!r}")
    return enc_seq(tag, [enc_oid(OBJECT_IDENTIFIER, q.attribute_set, UNIVERSAL),
                         _enc_structure(q.root, encoding, 1)])


# ---------------------------------------------------------------------------
# BER decoding

class _Seq:
    """Walks the children of a constructed element in order."""

    def __init__(self, element: Element, what: str):
        self.element = element
        self.items = element.children
        self.i = 0
        self.what = what

    def peek(self) -> Element | None:
        return self.items[self.i] if self.i < len(self.items) else None

    def opt(self, cls: int, tag: int) -> Element | None:
        e = self.peek()
        if e is not None and e.is_(cls, tag):
            self.i += 1
            return e
        return None

    def req(self, cls: int, tag: int, name: str) -> Element:
        e = self.opt(cls, tag)
        if e is None:
            found = self.peek()
            raise BERError(f"{self.what}: {name} missing" + (f", found {found.describe()}" if found else ""),
                           found.offset if found else self.element.offset)
        return e

    def next(self, name: str) -> Element:
        e = self.peek()
        if e is None:
            raise BERError(f"{self.what}: {name} missing", self.element.offset)
        self.i += 1
        return e

    def end(self) -> None:
        e = self.peek()
        if e is not None:
            raise BERError(f"{self.what}: unexpected {e.describe()}", e.offset)


def _only_child(element: Element, what: str) -> Element:
    children = element.children
    if len(children) != 1:
        raise BERError(f"{what}: expected one element inside the tag, found {len(children)}", element.offset)
    return children[0]


def _int(element: Element) -> int:
    content = element.primitive()
    if len(content) > 8:
        raise BERError(f"INTEGER of {len(content)} octets (at most 8 accepted)", element.offset)
    return element.as_int()


def _dec_attribute(element: Element, encoding: str) -> AttributeElement:
    # the usual form first, checked as the walk below would: SEQUENCE { [120] type, [121] value },
    # two primitive INTEGERs of one to eight octets
    if element.cls == UNIVERSAL and element.tag == SEQUENCE and element.constructed and len(element.value) == 2:
        t, v = cast("tuple[Element, Element]", element.value)
        if (t.cls == CONTEXT and t.tag == _ATTR_TYPE and not t.constructed and 0 < len(t.value) <= 8
                and v.cls == CONTEXT and v.tag == _ATTR_NUMERIC and not v.constructed and 0 < len(v.value) <= 8):
            return AttributeElement(t.as_int(), v.as_int(), None, None)
    f = _Seq(element.expect(UNIVERSAL, SEQUENCE, True), "AttributeElement")
    aset = f.opt(CONTEXT, _ATTR_SET)
    atype = _int(f.req(CONTEXT, _ATTR_TYPE, "attributeType"))
    v = f.next("attributeValue")
    f.end()
    semantic = None
    if v.is_(CONTEXT, _ATTR_NUMERIC):
        value: int | str | tuple = _int(v)
    elif v.is_(CONTEXT, _ATTR_COMPLEX):
        g = _Seq(v, "ComplexAttribute")
        items: list[str | int] = []
        for item in g.req(CONTEXT, 1, "list").children:
            if item.is_(CONTEXT, 1):
                items.append(item.as_text(encoding))
            elif item.is_(CONTEXT, 2):
                items.append(_int(item))
            else:
                raise BERError(f"StringOrNumeric: unexpected {item.describe()}", item.offset)
        action = g.opt(CONTEXT, 2)
        g.end()
        if action is not None:
            semantic = tuple(_int(n.expect(UNIVERSAL, INTEGER, False)) for n in action.children)
        value = tuple(items)
    else:
        raise BERError(f"attributeValue: unexpected {v.describe()}", v.offset)
    return AttributeElement(atype, value, None if aset is None else aset.as_oid(), semantic)


def decode_attribute_list(element: Element, encoding: str = "utf-8") -> tuple[AttributeElement, ...]:
    """AttributeList ([44] IMPLICIT SEQUENCE OF AttributeElement)."""
    element.expect(CONTEXT, _ATTRIBUTE_LIST, True)
    return tuple(_dec_attribute(child, encoding) for child in element.children)


def _dec_term(element: Element, encoding: str) -> tuple[str | int | bytes | None, str]:
    kind = _TERM_TYPE_BY_TAG.get(element.tag) if element.cls == CONTEXT else None
    if kind is None:
        raise BERError(f"Term: unexpected {element.describe()}", element.offset)
    if kind in ("general", "characterString"):
        return element.as_text(encoding), kind
    if kind == "numeric":
        return _int(element), kind
    if kind == "oid":
        return element.as_oid(), kind
    if kind == "dateTime":
        return element.as_text("ascii"), kind
    if kind == "null":
        element.as_null()
        return None, kind
    return b"".join(encode(child) for child in element.children), kind   # external, integerAndUnit


def decode_apt(element: Element, encoding: str = "utf-8") -> APT:
    """AttributesPlusTerm ([102] IMPLICIT SEQUENCE { attributes, term })."""
    f = _Seq(element.expect(CONTEXT, _APT, True), "AttributesPlusTerm")
    attrs = decode_attribute_list(f.req(CONTEXT, _ATTRIBUTE_LIST, "attributes"), encoding)
    term, kind = _dec_term(f.next("term"), encoding)
    f.end()
    return APT(attrs, term, kind)


def _dec_operand(element: Element, encoding: str) -> APT | ResultSetRef:
    if element.is_(CONTEXT, _APT):
        return decode_apt(element, encoding)
    if element.is_(CONTEXT, _RESULT_SET_ID):
        return ResultSetRef(element.as_text(encoding))
    if element.is_(CONTEXT, _RESULT_ATTR):
        f = _Seq(element, "ResultSetPlusAttributes")
        name = f.req(CONTEXT, _RESULT_SET_ID, "resultSet").as_text(encoding)
        attrs = decode_attribute_list(f.req(CONTEXT, _ATTRIBUTE_LIST, "attributes"), encoding)
        f.end()
        return ResultSetRef(name, attrs)
    raise BERError(f"Operand: unexpected {element.describe()}", element.offset)


def _dec_operator(element: Element) -> tuple[str, ProxSpec | None]:
    choice = _only_child(element.expect(CONTEXT, _OPERATOR), "Operator")
    name = _OPERATOR_NAMES.get(choice.tag) if choice.cls == CONTEXT else None
    if name is None:
        raise BERError(f"Operator: unexpected {choice.describe()}", choice.offset)
    if name != "prox":
        choice.as_null()
        return name, None
    f = _Seq(choice, "ProximityOperator")
    exclusion = f.opt(CONTEXT, 1)
    distance = _int(f.req(CONTEXT, 2, "distance"))
    ordered = f.req(CONTEXT, 3, "ordered").as_bool()
    relation = _int(f.req(CONTEXT, 4, "relationType"))
    unit = _only_child(f.req(CONTEXT, 5, "proximityUnitCode"), "proximityUnitCode")
    f.end()
    if not (unit.cls == CONTEXT and unit.tag in (1, 2)):
        raise BERError(f"proximityUnitCode: unexpected {unit.describe()}", unit.offset)
    return name, ProxSpec(None if exclusion is None else exclusion.as_bool(), distance, ordered, relation,
                          _int(unit), unit.tag == 2)


def _dec_structure(element: Element, encoding: str, depth: int) -> RPNNode:
    if depth > MAX_RPN_DEPTH:
        raise BERError(f"RPN tree deeper than {MAX_RPN_DEPTH} levels", element.offset)
    if element.is_(CONTEXT, _OP):
        return _dec_operand(_only_child(element, "RPNStructure op"), encoding)
    if element.is_(CONTEXT, _RPN_RPN_OP):
        children = element.children
        if len(children) != 3:
            raise BERError(f"rpnRpnOp: expected 3 elements, found {len(children)}", element.offset)
        left = _dec_structure(children[0], encoding, depth + 1)
        right = _dec_structure(children[1], encoding, depth + 1)
        op, prox = _dec_operator(children[2])
        return RPNOp(op, left, right, prox)
    raise BERError(f"RPNStructure: unexpected {element.describe()}", element.offset)


def decode_rpn_query(element: Element, encoding: str = "utf-8") -> RPNQuery:
    """An RPNQuery from the query element: ``[1]`` (type-1) or ``[101]``
    (type-101) IMPLICIT, or a plain SEQUENCE.  Raises BERError only."""
    if not (element.constructed and (element.cls == CONTEXT and element.tag in (1, 101)
                                     or element.is_(UNIVERSAL, SEQUENCE))):
        raise BERError(f"RPNQuery: unexpected {element.describe()}", element.offset)
    f = _Seq(element, "RPNQuery")
    attribute_set = f.req(UNIVERSAL, OBJECT_IDENTIFIER, "attributeSet").as_oid()
    root = _dec_structure(f.next("rpn"), encoding, 1)
    f.end()
    return RPNQuery(attribute_set, root)


