"""Type-1 (RPN) queries: the data model (frozen dataclasses) and the constants
the codec, the PQF parser and the Bib-1 mapping share.  Sans-I/O.

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

"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

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
_INT_RE = re.compile(r"-?[0-9]+")


def _check_int(n, what: str) -> int:
    if not isinstance(n, int):
        raise TypeError(f"{what} must be an int, not {n!r}")
    if not _INT_MIN <= n <= _INT_MAX:
        raise ValueError(f"{what} {n} does not fit in 64 bits")
    return n


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

