"""Type-1 (RPN) Z39.50 queries with Bib-1 attributes, in four modules:

* :mod:`z3950.rpn.model` -- the data model and shared constants;
* :mod:`z3950.rpn.codec` -- BER encoding and decoding;
* :mod:`z3950.rpn.pqf` -- YAZ's PQF, parser and printer (the grammar in its docstring);
* :mod:`z3950.rpn.bib1` -- the Bib-1 configuration and the mapping into the
  project's one query model (the semantics of every attribute in its docstring).

This package re-exports their public names.  Sans-I/O, pure functions.

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

"""
from __future__ import annotations

from .bib1 import (
                   BIB1_CONFIG_FILE,
                   Bib1Mapping,
                   UseAttribute,
                   apt_to_scan,
                   bib1_config_path,
                   load_bib1_mapping,
                   rpn_to_query,
                   sort_column_for,
                   validate_bib1_mapping,
)
from .codec import (
                   decode_apt,
                   decode_attribute_list,
                   decode_rpn_query,
                   encode_apt,
                   encode_attribute_list,
                   encode_rpn_query,
)
from .model import (
                   APT,
                   ATTRIBUTE_SETS,
                   BIB1,
                   MAX_BOOLEAN_OPERATORS,
                   MAX_PQF_ATTRIBUTES,
                   MAX_RPN_DEPTH,
                   TERM_TYPES,
                   AttributeElement,
                   ProxSpec,
                   ResultSetRef,
                   RPNNode,
                   RPNOp,
                   RPNQuery,
)
from .pqf import PQFError, parse_pqf, parse_pqf_scan, to_pqf

__all__ = [
    "BIB1", "MAX_RPN_DEPTH", "MAX_BOOLEAN_OPERATORS", "TERM_TYPES", "ATTRIBUTE_SETS",
    "AttributeElement", "APT", "ResultSetRef", "ProxSpec", "RPNOp", "RPNQuery", "RPNNode",
    "decode_rpn_query", "encode_rpn_query", "decode_apt", "encode_apt",
    "decode_attribute_list", "encode_attribute_list",
    "PQFError", "parse_pqf", "parse_pqf_scan", "to_pqf",
    "UseAttribute", "Bib1Mapping", "load_bib1_mapping", "validate_bib1_mapping",
    "rpn_to_query", "apt_to_scan", "sort_column_for",
    "BIB1_CONFIG_FILE", "bib1_config_path", "MAX_PQF_ATTRIBUTES",
]

