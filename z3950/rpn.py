"""Type-1 (RPN) Z39.50 queries with Bib-1 attributes: data model, BER codec,
YAZ PQF parser/printer, and the mapping into the project's one query model
(:mod:`indexers.query_model`).  Sans-I/O, pure functions.

Public API
==========

Data model (frozen dataclasses)::

    AttributeElement(type, value, attribute_set=None, semantic_action=None)
    APT(attributes, term, term_type="general")           # AttributesPlusTerm
    ResultSetRef(name, attributes=())                     # resultSet / resultAttr operand
    ProxSpec(exclusion=None, distance=1, ordered=False, relation=2, unit=2, unit_private=False)
    RPNOp(op, left, right, prox=None)                     # op: "and" | "or" | "and-not" | "prox"
    RPNQuery(attribute_set, root)

BER (ASN.1 of Z39.50-2003 / YAZ's z3950v3.asn; every malformed input raises
``BERError``, never anything else)::

    decode_rpn_query(element, encoding="utf-8") -> RPNQuery   # the [1] / [101] query element
    encode_rpn_query(q, tag=1, encoding="utf-8") -> bytes     # the whole [tag] TLV
    decode_apt(element, encoding="utf-8") -> APT              # [102] (also Scan)
    encode_apt(apt, encoding="utf-8") -> bytes
    decode_attribute_list(element, encoding="utf-8") -> tuple[AttributeElement, ...]   # [44] (also Sort)
    encode_attribute_list(attrs, encoding="utf-8") -> bytes

PQF (YAZ prefix query format)::

    parse_pqf(text) -> RPNQuery            # PQFError(ValueError) with .pos on a syntax error
    parse_pqf_scan(text) -> (attribute_set, APT)
    to_pqf(q) -> str                       # parse_pqf(to_pqf(q)) == q; ValueError if PQF cannot say it

Mapping to the query model (errors: :class:`z3950.diagnostics.Bib1Diagnostic`)::

    load_bib1_mapping(path=None) -> Bib1Mapping          # config/bib1.toml, cached
    validate_bib1_mapping(mapping, config)               # ValueError listing problems
    rpn_to_query(q, config=None, mapping=None) -> Query
    apt_to_scan(apt, config=None, mapping=None, attribute_set=BIB1) -> (index, term)
    sort_column_for(spec, config=None, mapping=None) -> str   # spec: sortfield str or attributes

Data model notes
================

* ``AttributeElement.value`` is an ``int`` (numeric), a ``str`` (a complex
  value holding one string -- what YAZ sends for ``@attr 1=title``), or a
  ``tuple`` of ``str``/``int`` (any other complex list).  A one-string tuple
  is normalized to the ``str`` (they encode alike).  ``attribute_set`` is a
  dotted OID or None (the query's set applies).
* ``APT.term`` by ``term_type``: ``general`` -> str (the OCTET STRING decoded with
  the session encoding), ``characterString`` -> str, ``numeric`` -> int,
  ``oid`` -> dotted str, ``dateTime`` -> str (GeneralizedTime text),
  ``external`` / ``integerAndUnit`` -> bytes (the canonical encoding of the
  element's contents), ``null`` -> None.
* Integers are limited to 64-bit two's complement on the wire (a longer INTEGER
  is a BERError; encoding one is a ValueError).  RPN trees are limited to
  ``MAX_RPN_DEPTH`` (100) levels, the root being level 1 (BERError, PQFError,
  ValueError on encoding, diagnostic 108 in the mapping).
* The ComplexAttribute value follows YAZ's z3950v3.asn (checked against the
  bytes yaz-client 5.34 sends): ``complex [224] IMPLICIT SEQUENCE { list [1]
  IMPLICIT SEQUENCE OF StringOrNumeric, semanticAction [2] IMPLICIT SEQUENCE OF
  INTEGER OPTIONAL }``.

PQF
===

The grammar of YAZ's pquery module::

    query      ::= ['@attrset' set] struct
    struct     ::= '@attr' [set] type'='value struct | '@term' termtype struct
                 | ('@and' | '@or' | '@not') struct struct
                 | '@prox' exclusion distance ordered relation which unit struct struct
                 | '@set' name | term

* Tokens are separated by white space; ``"..."`` and ``{...}`` quote a token;
  a backslash escapes the next character (also in unquoted tokens).  In terms,
  string attribute values and result set names the escapes ``\\t \\n \\r \\f``,
  ``\\xHH`` and ``\\ooo`` (octal, first digit 0-3) give those characters or
  bytes (escaped bytes must form UTF-8); ``\\c`` gives ``c``.
* ``@attr`` applies to every term of the structure that follows; as in YAZ, an
  inner attribute of a type overrides an outer one, and the attribute list is
  built last-written first (so ``@attr 1=4 @attr 4=1 x`` encodes 4=1 before
  1=4, byte for byte what yaz-client sends).  ``@1=4`` is short for
  ``@attr 1=4``.  An attribute value of digits is numeric, anything else is a
  string (complex) value; ``-123`` is numeric here (YAZ would send a string).
* ``@term general|numeric|string|oid|datetime|null`` sets the term type of the
  following terms, as in YAZ (the setting is not scoped).
* Set names: ``bib-1``, ``exp-1``, ``gils`` ... (case and hyphens ignored) or a
  dotted OID.  ``@attrset`` only at the start.  Query default: Bib-1.
* Deliberate differences from YAZ: an unknown ``@word`` is a syntax error
  (YAZ takes it as a term); an attribute written without a set has no set (YAZ
  gives it the set of the previous attribute); escapes are processed in ``@set``
  names too; ``@attr ... @set name`` keeps the attributes (a resultAttr operand).
* ``to_pqf`` raises ValueError for what PQF cannot express: two attributes of
  one type in one list, complex lists and semantic actions, an empty string
  attribute value, external / integerAndUnit terms, byte terms.

Mapping RPN to the query model (the Bib-1 semantics of this server)
====================================================================

Attribute checks, in this order, for every operand (first failure wins):

* The query's attribute set and every element's set must be Bib-1 -> else
  **121** (addinfo: the OID).
* Types 1-6 are Bib-1; type 7 (embedded sort, a Zebra extension) is accepted as
  described below; any other type -> **113** (addinfo: the type).
* A complex value with a list (not one string) -> **246** (addinfo: the type).
* The same type twice: harmless when the values are equal, else **123**
  (addinfo "type N given twice").  We do not guess which one the client meant.
* Values: relation 1-6, 102, 103, 104 (100 phonetic, 101 stem, others -> **117**);
  position 1-3 (-> **119**); structure 1-6, 105, 106, 108, 109 (100-104, 107 and
  others -> **118**); truncation 1-3, 100, 101, 104, 105, 106 (102/103 regular
  expressions and others -> **120**); completeness 1-3 (-> **122**).  A string
  value for these types gets the same diagnostic.  addinfo: the value.
* Use attribute: numeric values through ``config/bib1.toml``; unknown -> **114**
  (addinfo: the value).  A string value (``@attr 1=title``, as Zebra allows) is
  resolved like a CQL index name (aliases in bib1.toml first, e.g.
  ``_ALLRECORDS``); unknown -> **114** (addinfo: the string).  No use
  attribute: the server choice index.
* Term types: general, characterString and numeric (as its decimal text);
  others -> **229** (addinfo: the term type).  A blank term -> **125**.

Terms: characters that are masks or escapes in the query model (``* ? \\``, and
``"`` for canonical form) are escaped, so ``@attr 1=4 "C++?"`` searches the
literal text; the truncation attribute adds the (unescaped) masks.  Leading and
trailing blanks are dropped.

=====================  ==========================================================
truncation (5)         term in the model
=====================  ==========================================================
100 (default)          literal
1 right / 2 left       ``term*`` / ``*term``
3 left and right       ``*term*``
101 process #          ``#`` -> ``*`` (any run of characters, as in YAZ/Zebra)
104 Z39.58             ``#`` -> ``?`` (one character), ``?`` -> ``*``; ``?n``
                       (at most n characters) -> **120**
105 / 106 (Zebra)      ``*`` -> ``*``, ``!`` -> ``?``; 105 also right-truncates
=====================  ==========================================================

Relation (2):

* 1 ``<``, 2 ``<=``, 4 ``>=``, 5 ``>``, 6 ``<>``; 104 ``within`` (term "low high";
  Bath level 2 date range).  With a word-list structure (6, 105, 106) or with
  a term that truncation made masked -> **123**.  Structures 4, 5, 109 need an
  integer term -> **126**.  Position and completeness do not apply.
* 3 equal (default) and 102 relevance -> equality, below.  Result order: with
  102 on any term, by relevance (as CQL); without it, index order (ascending
  record id), as Zebra -- nothing is scored.  Sort keys (type 7, Sort) win.  103 AlwaysMatches: ``cql.allRecords`` when no use attribute is given
  (or the use is ``_ALLRECORDS``/``cql.allRecords``), else ``index = *`` (every
  record that has the index); the term is ignored.

Equality, by structure (4), completeness (6), position (3) and the use
attribute's kind (bib1.toml); the first row that applies wins:

=======================================  =======================================
attributes                               clause
=======================================  =======================================
structure 4 year, 5 date, 109 numeric    ``=`` (an integer term unless masked,
                                         else **126**); dates are years here
structure 6 word list                    ``all``
structure 105 free-form text             ``any`` (as Zebra's or-list, and YAZ's
                                         CQL mapping sends ``any`` as 4=105)
structure 106 document text              ``any``
  (word lists with position 1/2 or completeness 2/3 -> **123**)
kind year                                ``=``
completeness 2/3, structure 3 key,       ``==`` (the whole field)
structure 108 string
kind text, position 1/2 (first in        ``== "term*"`` when the term ends with
field / subfield; we index fields,       a mask, else ``== "term" or == "term *"``
not subfields)                           (the field starts with the words; CJK:
                                         with the characters)
kind key (identifiers, codes)            ``=`` (the whole normalized value; also
                                         for phrase, word and several words)
structure 1 phrase                       ``adj``
structure 2 word                         ``=`` for one word; several words ``all``
                                         (keyword search: every word)
no structure                             ``=`` (CQL default: word or phrase)
=======================================  =======================================

So the Bath profile (functional areas A and C) maps as follows (term T):
keyword (3=3 4=2 5=100 6=1) ``= T``; keyword with right truncation (5=1)
``= T*``; exact match (3=1 4=1 5=100 6=3) ``== T``; first words in field (3=1
4=1 5=100 6=1) ``== T or == "T *"``; first characters in field (3=1 4=1 5=1
6=1) ``== T*``; phrase (3=3 4=1) ``adj T``; standard identifier (1=1007)
``dc.identifier = T``; date of publication (1=31 4=4) ``dc.date = T``; ranges
with 2=1/2/4/5 or 2=104.

Operators: ``and`` / ``or`` / ``and-not`` -> Boolean and / or / not.  ``prox``
-> Prox(distance, comparison of relation 1-6, ordered); exclusion true ->
**131** (addinfo "exclusion"), another relation -> **131**, a unit other than
known 2 (word) -> **132** (addinfo: the unit, "private N" for private units),
distance outside 0..999999999 -> **202**, a result set operand -> **129**.
More than ``MAX_BOOLEAN_OPERATORS`` (250) operators -> **6**; a tree deeper
than ``MAX_RPN_DEPTH`` -> **108**.

Result sets: ``@set name`` -> ``Clause("cql.resultSetId", "=", name)`` (the
name as sent; empty -> **128**); with attributes (resultAttr, type-101 only)
-> **245**.

Embedded sort (type 7, Zebra's extension): an operand carrying type 7 (1
ascending, 2 descending; else **237**) is a sort key, not a search.  Its parent
operator must be ``@or`` (``@or <query> @attr 7=1 @attr 1=4 0``), else **237**;
the keys may sit anywhere in the tree (``@and x @or y <key>`` is ``x and y``,
sorted).  Its term is the key's level (0 primary, 1 secondary ...; not an
integer -> **237**); keys are ordered by level, then as they occur.  Its use
attribute gives the sort column (bib1.toml ``sort``; missing -> **116**; not
sortable -> **207**); other attribute types on it are ignored.  A query of sort
keys only -> **237**.

Scan (``apt_to_scan``): the attributes are checked as above (type 7 -> 113),
the use attribute gives the index (``cql.allRecords``/``cql.resultSetId`` ->
114), the term (escaped like a search term, not stripped, may be empty) is the
start point; relation, position, structure, truncation and completeness do
not change a scan, which always lists whole headings.

Sort (``sort_column_for``): a sort field string is a CQL index or sort name
(``title``, ``dc.date``, ``relevance``) or ``1=N``; attributes: the Bib-1 use
attribute (others ignored; none -> **116**) and its bib1.toml ``sort`` column.
Unknown names/columns -> **207**, unknown use values -> **114**.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping, Union

from indexers.index_config import IndexConfig, config_path, load_index_config
from indexers.query_model import Boolean, Clause, Node, Prox, Query, QueryError, SortKey

from .ber import (CONTEXT, INTEGER, OBJECT_IDENTIFIER, SEQUENCE, UNIVERSAL, BERError, Element,
                  enc_bool, enc_explicit, enc_int, enc_null, enc_octets, enc_oid, enc_seq, enc_str,
                  enc_tlv, encode, oid_content)
from .diagnostics import Bib1Diagnostic

__all__ = [
    "BIB1", "MAX_RPN_DEPTH", "MAX_BOOLEAN_OPERATORS", "TERM_TYPES", "ATTRIBUTE_SETS",
    "AttributeElement", "APT", "ResultSetRef", "ProxSpec", "RPNOp", "RPNQuery", "RPNNode",
    "decode_rpn_query", "encode_rpn_query", "decode_apt", "encode_apt",
    "decode_attribute_list", "encode_attribute_list",
    "PQFError", "parse_pqf", "parse_pqf_scan", "to_pqf",
    "UseAttribute", "Bib1Mapping", "load_bib1_mapping", "validate_bib1_mapping",
    "rpn_to_query", "apt_to_scan", "sort_column_for",
]

BIB1 = "1.2.840.10003.3.1"
MAX_RPN_DEPTH = 100
MAX_BOOLEAN_OPERATORS = 250     # as the CQL parser (sru.cql)
MAX_PQF_ATTRIBUTES = 512        # attributes in scope at one term (YAZ's limit)
_INT_MIN, _INT_MAX = -(2 ** 63), 2 ** 63 - 1

# Attribute sets by name (for PQF), from the Z39.50 OID register (1.2.840.10003.3.N).
ATTRIBUTE_SETS: dict[str, str] = {
    "bib-1": BIB1, "exp-1": "1.2.840.10003.3.2", "ext-1": "1.2.840.10003.3.3",
    "ccl-1": "1.2.840.10003.3.4", "gils": "1.2.840.10003.3.5", "stas": "1.2.840.10003.3.6",
    "collections": "1.2.840.10003.3.7", "cimi": "1.2.840.10003.3.8", "geo": "1.2.840.10003.3.9",
    "zbig": "1.2.840.10003.3.10", "util": "1.2.840.10003.3.11", "xd-1": "1.2.840.10003.3.12",
    "zthes": "1.2.840.10003.3.13", "fin-1": "1.2.840.10003.3.14", "dan-1": "1.2.840.10003.3.15",
    "holdings": "1.2.840.10003.3.16", "marc": "1.2.840.10003.3.17", "bib-2": "1.2.840.10003.3.18",
    "zeerex": "1.2.840.10003.3.19", "thesaurus": "1.2.840.10003.3.1000.81.1",
    "idxpath": "1.2.840.10003.3.1000.81.2", "extlite": "1.2.840.10003.3.1000.81.3",
}
_SET_BY_KEY = {name.replace("-", ""): oid for name, oid in ATTRIBUTE_SETS.items()}
_SET_NAME = {oid: name for name, oid in ATTRIBUTE_SETS.items()}

# Term ::= CHOICE -- context tags of the alternatives
TERM_TYPES: dict[str, int] = {
    "general": 45, "numeric": 215, "characterString": 216, "oid": 217, "dateTime": 218,
    "external": 219, "integerAndUnit": 220, "null": 221,
}
_TERM_TYPE_BY_TAG = {tag: name for name, tag in TERM_TYPES.items()}

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
# Data model

@dataclass(frozen=True)
class AttributeElement:
    """One attribute: ``type`` (1 use, 2 relation, ...), ``value`` (int, str or a
    tuple of str/int for a complex list), ``attribute_set`` (dotted OID or None
    for the query's set), ``semantic_action`` (complex values only)."""

    type: int
    value: int | str | tuple
    attribute_set: str | None = None
    semantic_action: tuple[int, ...] | None = None

    def __post_init__(self):
        value = self.value
        if isinstance(value, list):
            value = tuple(value)
        if isinstance(value, tuple) and len(value) == 1 and isinstance(value[0], str):
            value = value[0]
        object.__setattr__(self, "value", value)
        if isinstance(self.semantic_action, list):
            object.__setattr__(self, "semantic_action", tuple(self.semantic_action))


@dataclass(frozen=True)
class APT:
    """AttributesPlusTerm: a search term with its attributes."""

    attributes: tuple[AttributeElement, ...]
    term: str | int | bytes | None
    term_type: str = "general"

    def __post_init__(self):
        if isinstance(self.attributes, list):
            object.__setattr__(self, "attributes", tuple(self.attributes))


@dataclass(frozen=True)
class ResultSetRef:
    """A result set as operand; with attributes it is a resultAttr operand
    (ResultSetPlusAttributes, type-101 queries)."""

    name: str
    attributes: tuple[AttributeElement, ...] = ()

    def __post_init__(self):
        if isinstance(self.attributes, list):
            object.__setattr__(self, "attributes", tuple(self.attributes))


@dataclass(frozen=True)
class ProxSpec:
    """ProximityOperator: ``relation`` 1 < 2 <= 3 = 4 >= 5 > 6 <>; ``unit`` a
    KnownProximityUnit (2 word) or, with ``unit_private``, a private unit."""

    exclusion: bool | None = None
    distance: int = 1
    ordered: bool = False
    relation: int = 2
    unit: int = 2
    unit_private: bool = False


@dataclass(frozen=True)
class RPNOp:
    op: str                         # "and" | "or" | "and-not" | "prox"
    left: "RPNNode"
    right: "RPNNode"
    prox: ProxSpec | None = None    # for "prox" only


RPNNode = Union[APT, ResultSetRef, RPNOp]


@dataclass(frozen=True)
class RPNQuery:
    attribute_set: str              # dotted OID, normally BIB1
    root: RPNNode


# ---------------------------------------------------------------------------
# BER encoding

def _check_int(n, what: str) -> int:
    if not isinstance(n, int):
        raise TypeError(f"{what} must be an int, not {n!r}")
    if not _INT_MIN <= n <= _INT_MAX:
        raise ValueError(f"{what} {n} does not fit in 64 bits")
    return n


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


def _enc_prox(p: ProxSpec) -> bytes:
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
        items = []
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


# ---------------------------------------------------------------------------
# PQF

class PQFError(ValueError):
    """A PQF syntax error; ``pos`` is the 0-based character position."""

    def __init__(self, reason: str, pos: int):
        super().__init__(f"{reason} (at position {pos})")
        self.reason = reason
        self.pos = pos


_PQF_OPERATORS = frozenset({"attrset", "attr", "term", "set", "and", "or", "not", "prox"})
_PQF_TERM_TYPES = {"general": "general", "numeric": "numeric", "string": "characterString",
                   "oid": "oid", "datetime": "dateTime", "null": "null"}
_PQF_TERM_NAMES = {v: k for k, v in _PQF_TERM_TYPES.items()}
_PQF_OPERATOR_NAMES = {"and": "and", "or": "or", "and-not": "not", "prox": "prox"}
_INT_RE = re.compile(r"-?[0-9]+")
_SIMPLE_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


@dataclass(frozen=True)
class _Tok:
    kind: str       # "op" (text: operator name) | "word"
    text: str       # for words: the raw text, quotes removed, escapes not processed
    pos: int        # position of the token (its opening quote)
    quoted: bool = False

    @property
    def body(self) -> int:
        """Position of the first character of ``text``."""
        return self.pos + (1 if self.quoted else 0)


def _pqf_tokens(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return toks
        c = text[i]
        if c in '"{':
            close = '"' if c == '"' else "}"
            j = i + 1
            while j < n and text[j] != close:
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise PQFError("unterminated quoted string", i)
            toks.append(_Tok("word", text[i + 1:j], i, True))
            i = j + 1
            continue
        j = i
        while j < n and not text[j].isspace():
            j += 2 if text[j] == "\\" and j + 1 < n else 1
        raw = text[i:j]
        if raw.startswith("@"):
            if len(raw) > 1 and raw[1] in "0123456789":          # @1=4 is @attr 1=4 (as in YAZ)
                toks.append(_Tok("op", "attr", i))
                toks.append(_Tok("word", raw[1:], i + 1))
            elif raw[1:].lower() in _PQF_OPERATORS:
                toks.append(_Tok("op", raw[1:].lower(), i))
            else:
                raise PQFError(f"unknown operator {raw!r}", i)
        else:
            toks.append(_Tok("word", raw, i))
        i = j


def _pqf_unescape(raw: str, pos: int) -> str:
    """Process the escapes of a term, string attribute value or set name."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    pending = bytearray()
    start = 0           # where the escaped bytes in ``pending`` began

    def flush() -> None:
        if pending:
            try:
                out.append(pending.decode("utf-8"))
            except UnicodeDecodeError:
                raise PQFError("escaped bytes are not UTF-8", pos + start) from None
            pending.clear()

    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c != "\\" or i + 1 >= n:
            flush()
            out.append(c)
            i += 1
            continue
        d = raw[i + 1]
        if d in "x0123" and not pending:
            start = i
        if d == "x":
            digits = raw[i + 2:i + 4]
            if len(digits) != 2 or any(ch not in "0123456789abcdefABCDEF" for ch in digits):
                raise PQFError("\\x needs two hexadecimal digits", pos + i)
            pending.append(int(digits, 16))
            i += 4
        elif d in "0123":
            digits = raw[i + 1:i + 4]
            if len(digits) != 3 or any(ch not in "01234567" for ch in digits):
                raise PQFError("an octal escape needs three octal digits", pos + i)
            pending.append(int(digits, 8))
            i += 4
        else:
            flush()
            out.append(_SIMPLE_ESCAPES.get(d, d))
            i += 2
    flush()
    return "".join(out)


def _pqf_int(tok: _Tok, what: str) -> int:
    if not _INT_RE.fullmatch(tok.text):
        raise PQFError(f"{what} must be an integer, found {tok.text!r}", tok.pos)
    n = int(tok.text)
    if not _INT_MIN <= n <= _INT_MAX:
        raise PQFError(f"{what} {tok.text} does not fit in 64 bits", tok.pos)
    return n


def _pqf_set(tok: _Tok) -> str:
    name = tok.text
    oid = _SET_BY_KEY.get(name.lower().replace("-", "").replace("_", ""))
    if oid is not None:
        return oid
    try:
        oid_content(name)
    except ValueError:
        raise PQFError(f"unknown attribute set {name!r}", tok.pos) from None
    return name


def _effective(attrs: list[AttributeElement]) -> tuple[AttributeElement, ...]:
    """YAZ's attribute list: for each type the last written wins; last first."""
    seen: set[int] = set()
    out = []
    for a in reversed(attrs):
        if a.type not in seen:
            seen.add(a.type)
            out.append(a)
    return tuple(out)


class _PQFParser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _pqf_tokens(text)
        self.i = 0
        self.term_type = "general"

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, what: str) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise PQFError(f"missing {what}", len(self.text))
        self.i += 1
        return tok

    def word(self, what: str) -> _Tok:
        tok = self.take(what)
        if tok.kind != "word":
            raise PQFError(f"expected {what}, found @{tok.text}", tok.pos)
        return tok

    def top_set(self) -> str:
        tok = self.peek()
        if tok is not None and tok.kind == "op" and tok.text == "attrset":
            self.i += 1
            return _pqf_set(self.word("attribute set name"))
        return BIB1

    def done(self) -> None:
        tok = self.peek()
        if tok is not None:
            raise PQFError("extra token after the query", tok.pos)

    def query(self) -> RPNQuery:
        attribute_set = self.top_set()
        root = self.struct([], 1)
        self.done()
        return RPNQuery(attribute_set, root)

    def scan(self) -> tuple[str, APT]:
        attribute_set = self.top_set()
        attrs: list[AttributeElement] = []
        while True:
            tok = self.take("scan term")
            if tok.kind == "op" and tok.text in ("attr", "term"):
                self.prefix(tok, attrs)
            elif tok.kind == "word":
                apt = APT(_effective(attrs), self.term(tok), self.term_type)
                self.done()
                return attribute_set, apt
            else:
                raise PQFError(f"@{tok.text} not allowed in a scan term", tok.pos)

    def prefix(self, tok: _Tok, attrs: list[AttributeElement]) -> None:
        if tok.text == "attr":
            if len(attrs) >= MAX_PQF_ATTRIBUTES:
                raise PQFError(f"more than {MAX_PQF_ATTRIBUTES} attributes", tok.pos)
            attrs.append(self.attribute())
        else:
            name = self.word("term type")
            kind = _PQF_TERM_TYPES.get(name.text.lower())
            if kind is None:
                raise PQFError(f"unknown term type {name.text!r}", name.pos)
            self.term_type = kind

    def struct(self, attrs: list[AttributeElement], depth: int) -> RPNNode:
        attrs = list(attrs)
        while True:
            tok = self.take("operand")
            if depth > MAX_RPN_DEPTH:
                raise PQFError(f"query nested deeper than {MAX_RPN_DEPTH} levels", tok.pos)
            if tok.kind == "word":
                return APT(_effective(attrs), self.term(tok), self.term_type)
            if tok.text in ("attr", "term"):
                self.prefix(tok, attrs)
            elif tok.text == "set":
                name = self.word("result set name")
                return ResultSetRef(_pqf_unescape(name.text, name.body), _effective(attrs))
            elif tok.text in ("and", "or", "not", "prox"):
                prox = self.prox() if tok.text == "prox" else None
                left = self.struct(attrs, depth + 1)
                right = self.struct(attrs, depth + 1)
                return RPNOp("and-not" if tok.text == "not" else tok.text, left, right, prox)
            else:
                raise PQFError("@attrset is only allowed at the start of the query", tok.pos)

    def attribute(self) -> AttributeElement:
        tok = self.word("attribute")
        attribute_set = None
        if "=" not in tok.text:
            attribute_set = _pqf_set(tok)
            tok = self.word("attribute type=value")
            if "=" not in tok.text:
                raise PQFError(f"expected attribute type=value, found {tok.text!r}", tok.pos)
        type_text, _, value_text = tok.text.partition("=")
        atype = _pqf_int(_Tok("word", type_text, tok.body), "attribute type")
        value_pos = tok.body + len(type_text) + 1
        if not value_text:
            raise PQFError("missing attribute value after '='", value_pos)
        if _INT_RE.fullmatch(value_text):
            value: int | str = _pqf_int(_Tok("word", value_text, value_pos), "attribute value")
        else:
            value = _pqf_unescape(value_text, value_pos)
        return AttributeElement(atype, value, attribute_set)

    def term(self, tok: _Tok):
        kind = self.term_type
        if kind == "null":
            return None
        if kind == "numeric":
            return _pqf_int(tok, "numeric term")
        text = _pqf_unescape(tok.text, tok.body)
        if kind == "oid":
            try:
                oid_content(text)
            except ValueError:
                raise PQFError(f"not an OBJECT IDENTIFIER: {text!r}", tok.pos) from None
        return text

    def prox(self) -> ProxSpec:
        tok = self.word("proximity exclusion")
        flag = tok.text.lower()
        if flag in ("0", "1"):
            exclusion: bool | None = flag == "1"
        elif flag in ("void", "null", "v", "n"):
            exclusion = None
        else:
            raise PQFError(f"proximity exclusion must be 0, 1 or void, found {tok.text!r}", tok.pos)
        distance = _pqf_int(self.word("proximity distance"), "proximity distance")
        tok = self.word("proximity ordered flag")
        if tok.text not in ("0", "1"):
            raise PQFError(f"proximity ordered flag must be 0 or 1, found {tok.text!r}", tok.pos)
        ordered = tok.text == "1"
        relation = _pqf_int(self.word("proximity relation"), "proximity relation")
        tok = self.word("proximity unit kind")
        which = tok.text.lower()
        if which in ("k", "known", "1"):
            private = False
        elif which in ("p", "private", "2"):
            private = True
        else:
            raise PQFError(f"proximity unit kind must be known or private, found {tok.text!r}", tok.pos)
        unit = _pqf_int(self.word("proximity unit"), "proximity unit")
        return ProxSpec(exclusion, distance, ordered, relation, unit, private)


def parse_pqf(text: str) -> RPNQuery:
    """Parse a YAZ PQF query (see the module docstring)."""
    if not isinstance(text, str):
        raise TypeError("PQF text must be a str")
    return _PQFParser(text).query()


def parse_pqf_scan(text: str) -> tuple[str, APT]:
    """Parse a PQF scan term (``[@attrset set] {@attr ...} term``, as YAZ's
    yaz_pqf_scan): the attribute set and the APT."""
    if not isinstance(text, str):
        raise TypeError("PQF text must be a str")
    return _PQFParser(text).scan()


def _pqf_word(s: str) -> str:
    if s and s[0] not in '"{@' and "\\" not in s and not any(c.isspace() for c in s):
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _pqf_set_name(oid: str) -> str:
    name = _SET_NAME.get(oid)
    if name is not None:
        return name
    oid_content(oid)            # ValueError for a malformed OID
    return oid


def _pqf_attributes(attrs: tuple[AttributeElement, ...], out: list[str]) -> None:
    types = [a.type for a in attrs]
    if len(set(types)) != len(types):
        raise ValueError("PQF cannot express two attributes of one type in one list")
    for a in reversed(attrs):
        if a.semantic_action is not None or isinstance(a.value, tuple):
            raise ValueError(f"PQF cannot express the complex attribute value {a.value!r}")
        out.append("@attr")
        if a.attribute_set is not None:
            out.append(_pqf_set_name(a.attribute_set))
        value = a.value
        if isinstance(value, int):
            out.append(f"{int(_check_int(a.type, 'attribute type'))}={int(_check_int(value, 'attribute value'))}")
            continue
        if not isinstance(value, str):
            raise TypeError(f"attribute value must be int, str or tuple, not {value!r}")
        if not value:
            raise ValueError("PQF cannot express an empty string attribute value")
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        if _INT_RE.fullmatch(value):        # would read as a number: escape its first character
            escaped = f"\\x{ord(value[0]):02x}" + escaped[1:]
        token = f"{int(_check_int(a.type, 'attribute type'))}={escaped}"
        out.append(f'"{token}"' if any(c.isspace() for c in token) else token)


def to_pqf(q: RPNQuery) -> str:
    """The query in PQF; ``parse_pqf(to_pqf(q)) == q``.  ValueError for what PQF
    cannot express (see the module docstring)."""
    if not isinstance(q, RPNQuery):
        raise TypeError(f"not an RPNQuery: {q!r}")
    out: list[str] = []
    if q.attribute_set != BIB1:
        out += ["@attrset", _pqf_set_name(q.attribute_set)]
    state = {"term_type": "general"}

    def node(n, depth: int) -> None:
        if depth > MAX_RPN_DEPTH:
            raise ValueError(f"RPN tree deeper than {MAX_RPN_DEPTH} levels")
        if isinstance(n, RPNOp):
            if n.op not in _PQF_OPERATOR_NAMES:
                raise ValueError(f"unknown RPN operator {n.op!r}")
            out.append("@" + _PQF_OPERATOR_NAMES[n.op])
            if n.op == "prox":
                p = n.prox
                if not isinstance(p, ProxSpec):
                    raise TypeError(f"a prox operator needs a ProxSpec, not {p!r}")
                out.extend(["void" if p.exclusion is None else str(int(bool(p.exclusion))),
                        str(int(_check_int(p.distance, "distance"))), str(int(bool(p.ordered))),
                        str(int(_check_int(p.relation, "proximity relation"))), "p" if p.unit_private else "k",
                        str(int(_check_int(p.unit, "proximity unit")))])
            elif n.prox is not None:
                raise ValueError(f"operator {n.op!r} takes no ProxSpec")
            node(n.left, depth + 1)
            node(n.right, depth + 1)
        elif isinstance(n, APT):
            _pqf_attributes(n.attributes, out)
            kind = n.term_type
            if kind not in _PQF_TERM_NAMES:
                raise ValueError(f"PQF cannot express a {kind} term")
            if kind != state["term_type"]:
                out.extend(["@term", _PQF_TERM_NAMES[kind]])
                state["term_type"] = kind
            term = n.term
            if kind == "null":
                if term is not None:
                    raise TypeError("a null term must be None")
                out.append('""')
            elif kind == "numeric":
                out.append(str(int(_check_int(term, "numeric term"))))
            elif isinstance(term, str):
                if kind == "oid":
                    oid_content(term)
                out.append(_pqf_word(term))
            else:
                raise ValueError(f"PQF cannot express the {kind} term {term!r}")
        elif isinstance(n, ResultSetRef):
            _pqf_attributes(n.attributes, out)
            out.extend(["@set", _pqf_word(n.name)])
        else:
            raise TypeError(f"not an RPN node: {n!r}")

    node(q.root, 1)
    return " ".join(out)


# ---------------------------------------------------------------------------
# The Bib-1 mapping configuration (config/bib1.toml)

BIB1_CONFIG_FILE = "bib1.toml"
_KINDS = frozenset({"text", "key", "year"})
_USE_KEYS = frozenset({"name", "index", "sort", "kind", "note"})


@dataclass(frozen=True)
class UseAttribute:
    value: int
    name: str
    index: str                  # canonical index name (indexes.toml)
    sort: str | None = None     # sort column, None: not sortable
    kind: str = "text"          # "text" | "key" | "year"


@dataclass(frozen=True)
class Bib1Mapping:
    use: Mapping[int, UseAttribute]
    use_strings: Mapping[str, str] = field(default_factory=dict)    # lower-cased string -> index name
    path: str = ""

    def kind_of(self, index: str) -> str:
        """The kind of the first use attribute mapped to ``index`` (else text)."""
        low = index.lower()
        for entry in self.use.values():
            if entry.index.lower() == low:
                return entry.kind
        return "text"


def bib1_config_path(path: str | os.PathLike | None = None) -> Path:
    """``path`` (a file, or a directory holding bib1.toml), else
    $UNIONCAT_CONFIG_DIR/bib1.toml, else the repository's config/bib1.toml."""
    return config_path(path, BIB1_CONFIG_FILE)


def _build_mapping(data: dict, path: str) -> Bib1Mapping:
    use: dict[int, UseAttribute] = {}
    for key, spec in data.get("use", {}).items():
        if not (key.isascii() and key.isdigit()):
            raise ValueError(f"{path}: [use] key {key!r} is not a use attribute number")
        if not isinstance(spec, dict):
            raise ValueError(f"{path}: use {key}: expected a table")
        unknown = set(spec) - _USE_KEYS
        if unknown:
            raise ValueError(f"{path}: use {key}: unknown keys {sorted(unknown)}")
        index = spec.get("index")
        if not isinstance(index, str) or not index:
            raise ValueError(f"{path}: use {key}: 'index' is required")
        sort = spec.get("sort")
        if sort is not None and (not isinstance(sort, str) or not sort):
            raise ValueError(f"{path}: use {key}: 'sort' must be a column name")
        kind = spec.get("kind", "text")
        if kind not in _KINDS:
            raise ValueError(f"{path}: use {key}: kind {kind!r} is not one of {sorted(_KINDS)}")
        use[int(key)] = UseAttribute(int(key), str(spec.get("name", key)), index, sort, kind)
    strings = {}
    for key, index in data.get("use_string", {}).items():
        if not isinstance(index, str) or not index:
            raise ValueError(f"{path}: use_string {key!r}: expected an index name")
        strings[key.lower()] = index
    unknown = set(data) - {"use", "use_string"}
    if unknown:
        raise ValueError(f"{path}: unknown tables {sorted(unknown)}")
    return Bib1Mapping(use, strings, path)


@lru_cache(maxsize=8)
def _load_mapping(resolved: str) -> Bib1Mapping:
    with open(resolved, "rb") as fh:
        return _build_mapping(tomllib.load(fh), resolved)


def load_bib1_mapping(path: str | os.PathLike | None = None) -> Bib1Mapping:
    """The Bib-1 use attribute mapping (cached per file)."""
    return _load_mapping(str(bib1_config_path(path).resolve()))


def validate_bib1_mapping(mapping: Bib1Mapping, config: IndexConfig) -> None:
    """Check the mapping against the index configuration: every index resolves,
    every sort column exists.  Raises ValueError listing all problems."""
    problems = []
    columns = set(config.sort.values())
    for entry in mapping.use.values():
        try:
            config.resolve(entry.index)
        except QueryError:
            problems.append(f"use {entry.value}: index {entry.index!r} is not configured")
        if entry.sort is not None and entry.sort not in columns:
            problems.append(f"use {entry.value}: sort column {entry.sort!r} is not in [sort]")
    for key, index in mapping.use_strings.items():
        if index.lower() not in _SPECIAL:
            try:
                config.resolve(index)
            except QueryError:
                problems.append(f"use_string {key!r}: index {index!r} is not configured")
    if problems:
        raise ValueError("; ".join(problems))


# ---------------------------------------------------------------------------
# RPN -> query model

ALL_RECORDS = "cql.allRecords"
RESULT_SET_ID = "cql.resultSetId"
_SPECIAL = {ALL_RECORDS.lower(): ALL_RECORDS, RESULT_SET_ID.lower(): RESULT_SET_ID}

_RELATION_OPS = {1: "<", 2: "<=", 4: ">=", 5: ">", 6: "<>"}
_PROX_COMPARISONS = {1: "<", 2: "<=", 3: "=", 4: ">=", 5: ">", 6: "<>"}
_RELATIONS = frozenset({1, 2, 3, 4, 5, 6, 102, 103, 104})
_POSITIONS = frozenset({1, 2, 3})
_STRUCTURES = frozenset({1, 2, 3, 4, 5, 6, 105, 106, 108, 109})
_TRUNCATIONS = frozenset({1, 2, 3, 100, 101, 104, 105, 106})
_COMPLETENESS = frozenset({1, 2, 3})
_WORD_LISTS = frozenset({6, 105, 106})
_NUMBERS = frozenset({4, 5, 109})
_SORT_TYPE = 7
_WORD_UNIT = 2
_MAX_DISTANCE = 999_999_999
_YEAR_RE = re.compile(r"-?[0-9]{1,18}")
_MASK_CHARS = "\\*?\""


def _literal(text: str) -> str:
    """A literal text in the query model's term syntax (masks and escapes escaped)."""
    return "".join("\\" + c if c in _MASK_CHARS else c for c in text)


def _truncate(text: str, truncation: int) -> str:
    """The term in the query model's syntax, with the masks the truncation
    attribute asks for."""
    if truncation == 100:
        return _literal(text)
    if truncation in (1, 2, 3):
        return ("*" if truncation in (2, 3) else "") + _literal(text) + ("*" if truncation in (1, 3) else "")
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if truncation == 101 and c == "#":
            out.append("*")
        elif truncation == 104 and c == "#":
            out.append("?")
        elif truncation == 104 and c == "?":
            if i + 1 < n and text[i + 1] in "0123456789":
                raise Bib1Diagnostic(120, f"{truncation}: ?n (at most n characters) is not supported")
            out.append("*")
        elif truncation in (105, 106) and c in "*!":
            out.append("*" if c == "*" else "?")
        else:
            out.append(_literal(c))
        i += 1
    term = "".join(out)
    if truncation == 105 and not _ends_with_mask(term):
        term += "*"
    return term


def _mask_positions(term: str) -> list[int]:
    """Positions of the unescaped masks of a term in the model's syntax."""
    out = []
    i = 0
    while i < len(term):
        c = term[i]
        if c == "\\":
            i += 2
            continue
        if c in "*?":
            out.append(i)
        i += 1
    return out


def _ends_with_mask(term: str) -> bool:
    masks = _mask_positions(term)
    return bool(masks) and masks[-1] == len(term) - 1 and term[-1] == "*"


def _describe(value) -> str:
    return value if isinstance(value, str) else str(value)


class _Mapper:
    def __init__(self, config: IndexConfig, mapping: Bib1Mapping, attribute_set: str):
        self.config = config
        self.mapping = mapping
        self.attribute_set = attribute_set
        self.operators = 0
        self.server_choice = config.resolve(None).name

    # -- attributes ------------------------------------------------------------
    def collect(self, attributes, *, allow_sort: bool) -> dict[int, int | str]:
        found: dict[int, int | str] = {}
        for a in attributes:
            aset = a.attribute_set or self.attribute_set
            if aset != BIB1:
                raise Bib1Diagnostic(121, aset)
            if not (1 <= a.type <= 6 or (allow_sort and a.type == _SORT_TYPE)):
                raise Bib1Diagnostic(113, str(a.type))
            if isinstance(a.value, tuple):
                raise Bib1Diagnostic(246, str(a.type))
            if a.type in found:
                if found[a.type] != a.value or type(found[a.type]) is not type(a.value):
                    raise Bib1Diagnostic(123, f"type {a.type} given twice ({_describe(found[a.type])} and "
                                              f"{_describe(a.value)})")
                continue
            found[a.type] = a.value
        return found

    @staticmethod
    def value(attrs: dict, atype: int, default, allowed: frozenset, code: int):
        v = attrs.get(atype, default)
        if v is None:
            return None
        if isinstance(v, str) or v not in allowed:
            raise Bib1Diagnostic(code, _describe(v))
        return v

    def checked(self, attrs: dict) -> tuple[int, int, int | None, int, int]:
        return (self.value(attrs, 2, 3, _RELATIONS, 117),
                self.value(attrs, 3, 3, _POSITIONS, 119),
                self.value(attrs, 4, None, _STRUCTURES, 118),
                self.value(attrs, 5, 100, _TRUNCATIONS, 120),
                self.value(attrs, 6, 1, _COMPLETENESS, 122))

    def use(self, value) -> tuple[str, str, bool]:
        """(canonical index, kind, special) for a use attribute value."""
        if value is None:
            return self.server_choice, "text", False
        if isinstance(value, str):
            name = self.mapping.use_strings.get(value.lower(), value)
            try:
                index = self.config.resolve(name).name
            except QueryError:
                for cand in [name.lower()] + self.config.candidates(name):
                    if cand in _SPECIAL:
                        return _SPECIAL[cand], "text", True
                raise Bib1Diagnostic(114, value) from None
            return index, self.mapping.kind_of(index), False
        entry = self.mapping.use.get(value)
        if entry is None:
            raise Bib1Diagnostic(114, str(value))
        try:
            index = self.config.resolve(entry.index).name
        except QueryError:
            raise Bib1Diagnostic(114, str(value)) from None
        return index, entry.kind, False

    def sort_column(self, value) -> str:
        if value is None:
            raise Bib1Diagnostic(116, "sort key")
        if isinstance(value, str):
            name = self.mapping.use_strings.get(value.lower(), value)
            try:
                return self.config.sort_column(name)
            except QueryError as err:
                if err.code == 16:
                    raise Bib1Diagnostic(114, value) from None
                raise Bib1Diagnostic(207, value) from None
        entry = self.mapping.use.get(value)
        if entry is None:
            raise Bib1Diagnostic(114, str(value))
        if entry.sort is None or entry.sort not in self.config.sort.values():
            raise Bib1Diagnostic(207, f"use attribute {value} ({entry.name}) cannot be sorted on")
        return entry.sort

    # -- tree ------------------------------------------------------------------
    def split_sort(self, node, depth: int) -> tuple[RPNNode | None, list[tuple[int, SortKey]]]:
        """Remove embedded sort operands (type 7); return the rest and the keys."""
        if depth > MAX_RPN_DEPTH:
            raise Bib1Diagnostic(108, f"query nested deeper than {MAX_RPN_DEPTH} levels")
        if isinstance(node, APT):
            if any(a.type == _SORT_TYPE for a in node.attributes):
                return None, [self.sort_key(node)]
            return node, []
        if isinstance(node, RPNOp):
            left, lkeys = self.split_sort(node.left, depth + 1)
            right, rkeys = self.split_sort(node.right, depth + 1)
            if not (lkeys or rkeys):
                return node, []
            keys = lkeys + rkeys
            if left is None or right is None:       # a sort operand is a direct child
                if node.op != "or":
                    raise Bib1Diagnostic(237, "an embedded sort key (type 7) must be @or'ed with the query")
                return (right if left is None else left), keys
            return RPNOp(node.op, left, right, node.prox), keys
        return node, []

    def sort_key(self, apt: APT) -> tuple[int, SortKey]:
        attrs = self.collect(apt.attributes, allow_sort=True)
        order = attrs[_SORT_TYPE]
        if order not in (1, 2) or isinstance(order, str):
            raise Bib1Diagnostic(237, f"sort attribute 7={_describe(order)} (1 ascending, 2 descending)")
        term = apt.term
        if apt.term_type in ("general", "characterString") and isinstance(term, str) and \
                _INT_RE.fullmatch(term.strip()):
            level = int(term.strip())
        elif apt.term_type == "numeric" and isinstance(term, int):
            level = term
        else:
            raise Bib1Diagnostic(237, f"the term of a sort key is its level (0, 1 ...), not {term!r}")
        column = self.sort_column(attrs.get(1))
        return level, SortKey(column, order == 1)

    def node(self, node, depth: int) -> Node:
        if depth > MAX_RPN_DEPTH:
            raise Bib1Diagnostic(108, f"query nested deeper than {MAX_RPN_DEPTH} levels")
        if isinstance(node, RPNOp):
            self.operators += 1
            if self.operators > MAX_BOOLEAN_OPERATORS:
                raise Bib1Diagnostic(6, str(MAX_BOOLEAN_OPERATORS))
            if node.op == "prox":
                for side in (node.left, node.right):
                    if isinstance(side, ResultSetRef):
                        raise Bib1Diagnostic(129, side.name)
            left = self.node(node.left, depth + 1)
            right = self.node(node.right, depth + 1)
            if node.op in ("and", "or"):
                return Boolean(node.op, left, right)
            if node.op == "and-not":
                return Boolean("not", left, right)
            if node.op == "prox":
                return self.prox(node.prox, left, right)
            raise Bib1Diagnostic(110, str(node.op))
        if isinstance(node, APT):
            return self.apt(node)
        if isinstance(node, ResultSetRef):
            if node.attributes:
                raise Bib1Diagnostic(245, node.name)
            if not node.name:
                raise Bib1Diagnostic(128, "empty result set name")
            return Clause(RESULT_SET_ID, "=", node.name)
        raise Bib1Diagnostic(108, f"not an RPN operand: {type(node).__name__}")

    def prox(self, p: ProxSpec | None, left: Node, right: Node) -> Prox:
        if p is None:
            raise Bib1Diagnostic(108, "prox operator without proximity parameters")
        if p.exclusion:
            raise Bib1Diagnostic(131, "exclusion")
        if p.relation not in _PROX_COMPARISONS:
            raise Bib1Diagnostic(131, str(p.relation))
        if p.unit_private:
            raise Bib1Diagnostic(132, f"private {p.unit}")
        if p.unit != _WORD_UNIT:
            raise Bib1Diagnostic(132, str(p.unit))
        if not 0 <= p.distance <= _MAX_DISTANCE:
            raise Bib1Diagnostic(202, str(p.distance))
        return Prox(left, right, distance=p.distance, comparison=_PROX_COMPARISONS[p.relation], unit="word",
                    ordered=bool(p.ordered))

    def apt(self, apt: APT) -> Node:
        attrs = self.collect(apt.attributes, allow_sort=False)
        relation, position, structure, truncation, completeness = self.checked(attrs)
        index, kind, special = self.use(attrs.get(1))
        text = _term_text(apt)
        if special:
            if index == ALL_RECORDS:
                if relation not in (3, 102, 103):
                    raise Bib1Diagnostic(123, f"{ALL_RECORDS} with relation {relation}")
                return Clause(ALL_RECORDS, "=", "1")
            if relation not in (3, 102):
                raise Bib1Diagnostic(123, f"{RESULT_SET_ID} with relation {relation}")
            if not text:
                raise Bib1Diagnostic(128, "empty result set name")
            return Clause(RESULT_SET_ID, "=", text)
        if relation == 103:
            if 1 not in attrs:
                return Clause(ALL_RECORDS, "=", "1")
            return Clause(index, "=", "*")
        if not text.strip():
            raise Bib1Diagnostic(125, "empty term")
        term = _truncate(text.strip(), truncation)
        masked = bool(_mask_positions(term))
        if relation in _RELATION_OPS or relation == 104:
            if structure in _WORD_LISTS:
                raise Bib1Diagnostic(123, f"relation {relation} with structure {structure}")
            if masked:
                raise Bib1Diagnostic(123, f"relation {relation} with truncation {truncation}")
            if structure in _NUMBERS:
                parts = text.split() if relation == 104 else [text.strip()]
                for part in parts:
                    if not _YEAR_RE.fullmatch(part):
                        raise Bib1Diagnostic(126, text)
            return Clause(index, "within" if relation == 104 else _RELATION_OPS[relation], term)
        # equality: relation 3 or 102
        if structure in _NUMBERS:
            if not masked and not _YEAR_RE.fullmatch(text.strip()):
                raise Bib1Diagnostic(126, text)
            return Clause(index, "=", term)
        if structure in _WORD_LISTS:
            if attrs.get(3) in (1, 2) or completeness != 1:
                raise Bib1Diagnostic(123, f"structure {structure} with position {position} and "
                                          f"completeness {completeness}")
            return Clause(index, "all" if structure == 6 else "any", term)
        if kind == "year":
            return Clause(index, "=", term)
        if completeness in (2, 3) or structure in (3, 108):
            return Clause(index, "==", term)
        if kind == "text" and position in (1, 2):
            if _ends_with_mask(term):
                return Clause(index, "==", term)
            return Boolean("or", Clause(index, "==", term), Clause(index, "==", term + " *"))
        if kind == "key":
            return Clause(index, "=", term)
        if structure == 1:
            return Clause(index, "adj", term)
        if structure == 2 and len(text.split()) > 1:
            return Clause(index, "all", term)
        return Clause(index, "=", term)


def _term_text(apt: APT) -> str:
    kind, term = apt.term_type, apt.term
    if kind in ("general", "characterString") and isinstance(term, str):
        return term
    if kind == "numeric" and isinstance(term, int):
        return str(term)
    raise Bib1Diagnostic(229, str(kind))


def _defaults(config: IndexConfig | None, mapping: Bib1Mapping | None) -> tuple[IndexConfig, Bib1Mapping]:
    return (config if config is not None else load_index_config(),
            mapping if mapping is not None else load_bib1_mapping())


def rpn_to_query(q: RPNQuery, config: IndexConfig | None = None, mapping: Bib1Mapping | None = None) -> Query:
    """The query model for a type-1/type-101 query (Bib-1 semantics: see the
    module docstring).  Raises Bib1Diagnostic."""
    config, mapping = _defaults(config, mapping)
    if not isinstance(q, RPNQuery):
        raise TypeError(f"not an RPNQuery: {q!r}")
    if q.attribute_set != BIB1:
        raise Bib1Diagnostic(121, q.attribute_set)
    m = _Mapper(config, mapping, q.attribute_set)
    root, keys = m.split_sort(q.root, 1)
    if root is None:
        raise Bib1Diagnostic(237, "the query has only embedded sort keys")
    node = m.node(root, 1)
    keys.sort(key=lambda k: k[0])       # stable: keys of one level keep their order
    return Query(node, tuple(k[1] for k in keys), ranked=_asks_relevance(q.root))


def _asks_relevance(node) -> bool:
    """True if any term carries relation 102 (relevance)."""
    if isinstance(node, APT):
        return any(a.type == 2 and a.value == 102 for a in node.attributes)
    if isinstance(node, RPNOp):
        return _asks_relevance(node.left) or _asks_relevance(node.right)
    return False


def apt_to_scan(apt: APT, config: IndexConfig | None = None, mapping: Bib1Mapping | None = None,
                attribute_set: str | None = BIB1) -> tuple[str, str]:
    """(canonical index, start term in the model's escaped syntax) for a Scan
    request's term.  ``attribute_set`` is the request's (None: Bib-1)."""
    config, mapping = _defaults(config, mapping)
    if not isinstance(apt, APT):
        raise TypeError(f"not an APT: {apt!r}")
    m = _Mapper(config, mapping, attribute_set or BIB1)
    attrs = m.collect(apt.attributes, allow_sort=False)
    m.checked(attrs)
    index, _kind, special = m.use(attrs.get(1))
    if special:
        raise Bib1Diagnostic(114, _describe(attrs.get(1)))
    return index, _literal(_term_text(apt))


def sort_column_for(spec: str | Iterable[AttributeElement], config: IndexConfig | None = None,
                    mapping: Bib1Mapping | None = None) -> str:
    """The sort column for a Z39.50 sort key: a sortField string (a CQL index or
    sort name, or ``1=N``) or sortAttributes (Bib-1; only the use attribute
    counts).  Raises Bib1Diagnostic."""
    config, mapping = _defaults(config, mapping)
    m = _Mapper(config, mapping, BIB1)
    if isinstance(spec, str):
        text = spec.strip()
        use = re.fullmatch(r"1\s*=\s*([0-9]{1,9})", text)
        if use:
            return m.sort_column(int(use.group(1)))
        if not text:
            raise Bib1Diagnostic(207, "empty sort field")
        try:
            return config.sort_column(text)
        except QueryError:
            raise Bib1Diagnostic(207, spec) from None
    uses = []
    for a in spec:
        if not isinstance(a, AttributeElement):
            raise TypeError(f"not an AttributeElement: {a!r}")
        if (a.attribute_set or BIB1) != BIB1:
            raise Bib1Diagnostic(121, a.attribute_set)
        if not 1 <= a.type <= _SORT_TYPE:
            raise Bib1Diagnostic(113, str(a.type))
        if a.type == 1:
            if isinstance(a.value, tuple):
                raise Bib1Diagnostic(246, "1")
            uses.append(a.value)
    if not uses:
        raise Bib1Diagnostic(116, "sort key")
    if any(u != uses[0] or type(u) is not type(uses[0]) for u in uses[1:]):
        raise Bib1Diagnostic(123, "type 1 given twice")
    return m.sort_column(uses[0])
